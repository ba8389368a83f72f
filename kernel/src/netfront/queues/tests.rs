//! The queues against a simulated backend, honest and hostile.

use super::*;
use crate::test_host::HostPage;

const RSP_PROD: usize = 8;
const SLOTS: usize = 64;

fn queues(tx: usize, rx: usize) -> Queues<HostPage> {
    let bufs = |n: usize, base: u32| {
        (0..n)
            .map(|i| Buffer {
                page: HostPage::new(),
                gref: base + i as u32,
            })
            .collect()
    };
    Queues::new(
        HostPage::new(),
        HostPage::new(),
        bufs(tx, 100),
        bufs(rx, 200),
    )
}

/// The backend answers the rx request in slot `slot` with a packet of `data` at `offset`,
/// or with raw values.
fn rx_response(q: &mut Queues<HostPage>, slot: u32, id: u16, offset: u16, flags: u16, status: i16) {
    let page = &mut q.rx.page_mut().0;
    let off = SLOTS + (slot as usize % 256) * RX_SLOT;
    page[off..off + 2].copy_from_slice(&id.to_le_bytes());
    page[off + 2..off + 4].copy_from_slice(&offset.to_le_bytes());
    page[off + 4..off + 6].copy_from_slice(&flags.to_le_bytes());
    page[off + 6..off + 8].copy_from_slice(&status.to_le_bytes());
    q.rx.page_mut().store_u32(RSP_PROD, slot + 1);
}

fn fill(q: &mut Queues<HostPage>, id: u16, offset: usize, data: &[u8]) {
    q.rx_bufs[usize::from(id)].page.0[offset..offset + data.len()].copy_from_slice(data);
}

#[test]
fn every_rx_buffer_is_posted_with_its_grant() {
    let mut q = queues(4, 8);
    assert!(q.push_rx());
    assert_eq!(q.rx.page().load_u32(0), 8, "req_prod");
    let page = &q.rx.page().0;
    for i in 0..8usize {
        let off = SLOTS + i * RX_SLOT;
        assert_eq!(u16::from_le_bytes([page[off], page[off + 1]]), i as u16);
        assert_eq!(page.as_slice().load_u32(off + 4), 200 + i as u32);
    }
}

#[test]
fn a_packet_is_received_and_its_buffer_posted_again() {
    let mut q = queues(4, 8);
    q.push_rx();
    let frame: Vec<u8> = (0..60u8).collect();
    fill(&mut q, 5, 100, &frame);
    rx_response(&mut q, 0, 5, 100, 0, 60);
    let mut out = Vec::new();
    assert_eq!(q.receive(&mut out), Ok(true));
    assert_eq!(out, frame);
    assert_eq!(q.receive(&mut out), Ok(false));
    assert!(q.push_rx() || q.rx.page().load_u32(0) == 9);
    let off = SLOTS + 8 * RX_SLOT;
    assert_eq!(q.rx.page().0[off], 5, "id 5 reposted in slot 8");
    assert_eq!((q.stats().rx_packets, q.stats().rx_bytes), (1, 60));
}

#[test]
fn hostile_rx_responses_are_dropped_and_counted() {
    let mut q = queues(4, 8);
    q.push_rx();
    let mut out = Vec::new();
    let bad: [(u16, u16, u16, i16); 6] = [
        (8, 0, 0, 60),                     // id out of range
        (9999, 0, 0, 60),                  // id far out of range
        (1, 4000, 0, 200),                 // offset + length past the page
        (2, 0, 0, (FRAME_MAX + 1) as i16), // longer than a frame
        (3, 0, RXF_MORE_DATA, 60),         // fragments never negotiated
        (4, 0, 0, 5),                      // shorter than an Ethernet header
    ];
    for (slot, &(id, offset, flags, status)) in bad.iter().enumerate() {
        rx_response(&mut q, slot as u32, id, offset, flags, status);
        assert_eq!(q.receive(&mut out), Ok(false), "response {slot}");
    }
    assert_eq!(q.stats().rejected, 6);
    rx_response(&mut q, 6, 6, 0, 0, -1);
    assert_eq!(q.receive(&mut out), Ok(false));
    assert_eq!(q.stats().rx_errors, 1);
    rx_response(&mut q, 7, 1, 0, 0, 60);
    assert_eq!(
        q.receive(&mut out),
        Ok(true),
        "id 1 was reposted after its bad response"
    );
    // The same buffer answered twice: the second is not ours to take.
    q.push_rx();
    rx_response(&mut q, 8, 7, 0, 0, 60);
    assert_eq!(q.receive(&mut out), Ok(true));
    rx_response(&mut q, 9, 7, 0, 0, 60);
    assert_eq!(
        q.receive(&mut out),
        Ok(true),
        "id 7 was reposted: a fresh response"
    );
    assert_eq!(q.stats().rx_packets, 3);
}

#[test]
fn responses_beyond_the_requests_break_the_ring() {
    let mut q = queues(4, 8);
    q.push_rx();
    q.rx.page_mut().store_u32(RSP_PROD, 9);
    assert_eq!(q.receive(&mut Vec::new()), Err(BadIndex));
    let mut q = queues(4, 8);
    q.tx.page_mut().store_u32(RSP_PROD, 1);
    assert_eq!(q.reap_tx(), Err(BadIndex));
}

fn tx_response(q: &mut Queues<HostPage>, slot: u32, id: u16, status: i16) {
    let page = &mut q.tx.page_mut().0;
    let off = SLOTS + (slot as usize % 256) * TX_SLOT;
    page[off..off + 2].copy_from_slice(&id.to_le_bytes());
    page[off + 2..off + 4].copy_from_slice(&status.to_le_bytes());
    q.tx.page_mut().store_u32(RSP_PROD, slot + 1);
}

#[test]
fn tx_buffers_are_freed_by_responses_and_hostile_ones_counted() {
    let mut q = queues(2, 1);
    let frame = [0xabu8; 100];
    assert!(q.send(&frame));
    assert!(q.send(&frame[..60]));
    assert!(!q.can_send() && !q.send(&frame), "both buffers in flight");
    assert!(q.push_tx());
    let page = &q.tx.page().0;
    let (gref, id, size) = (
        page.as_slice().load_u32(SLOTS),
        u16::from_le_bytes([page[SLOTS + 8], page[SLOTS + 9]]),
        u16::from_le_bytes([page[SLOTS + 10], page[SLOTS + 11]]),
    );
    assert_eq!((gref, size), (100 + u32::from(id), 100));
    assert_eq!(q.tx_bufs[usize::from(id)].page.0[..100], frame);
    tx_response(&mut q, 0, id, 0);
    assert_eq!(q.reap_tx(), Ok(false));
    assert!(q.can_send());
    tx_response(&mut q, 1, id, 0);
    assert_eq!(q.reap_tx(), Ok(false));
    assert_eq!(q.stats().rejected, 1, "the same buffer answered twice");
    tx_response(&mut q, 2, id, 0);
    assert_eq!(q.reap_tx(), Err(BadIndex), "more responses than requests");
    let mut q = queues(2, 1);
    q.send(&frame);
    q.send(&frame);
    tx_response(&mut q, 0, 7, 0);
    assert_eq!(
        q.reap_tx(),
        Err(BadIndex),
        "answers to requests not published"
    );
    let mut q = queues(2, 1);
    q.send(&frame);
    q.send(&frame);
    q.push_tx();
    tx_response(&mut q, 0, 7, 0);
    tx_response(&mut q, 1, 1, -1);
    assert_eq!(q.reap_tx(), Ok(false));
    assert_eq!((q.stats().rejected, q.stats().tx_errors), (1, 1));
    assert!(!q.send(&[]) && !q.send(&[0; FRAME_MAX + 1]));
}

#[test]
fn fragments_and_extra_info_slots_are_never_taken_as_frames() {
    let mut q = queues(1, 8);
    q.push_rx();
    let mut out = Vec::new();
    // A frame in three fragments: all three dropped, their buffers posted again.
    rx_response(&mut q, 0, 0, 0, RXF_MORE_DATA, 60);
    rx_response(&mut q, 1, 1, 0, RXF_MORE_DATA, 60);
    rx_response(&mut q, 2, 2, 0, 0, 60);
    assert_eq!(q.receive(&mut out), Ok(false));
    assert_eq!(q.stats().rejected, 3);
    // A response flagged extra-info: the slot after it is skipped, whatever it holds.
    rx_response(&mut q, 3, 3, 0, RXF_EXTRA_INFO, 60);
    rx_response(&mut q, 4, 4, 0, 0, 60);
    assert_eq!(q.receive(&mut out), Ok(false));
    rx_response(&mut q, 5, 5, 0, 0, 60);
    assert_eq!(q.receive(&mut out), Ok(true), "the next real response");
    assert_eq!((q.stats().rejected, q.stats().rx_packets), (4, 1));
}
