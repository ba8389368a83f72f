//! The frontend's packet queues: tx and rx buffers (one granted page each) moving through the
//! two rings. Everything the backend writes is checked: a response whose id, length, offset,
//! status or flags is out of range is dropped and counted, never trusted. Pure logic over
//! [`RingPage`]s, host-tested.

use super::ring::{BadIndex, FrontRing, RX_SLOT, TX_SLOT};
use alloc::vec::Vec;
use xenstore_engine::ring::RingPage;

/// The largest IP packet sent or accepted.
pub const MTU: usize = 1500;
/// The largest Ethernet frame sent or accepted (MTU plus the 14-byte header).
pub const FRAME_MAX: usize = MTU + 14;
/// Bytes of a buffer page.
pub const PAGE: usize = 4096;

/// `netif_tx_response.status`: the packet went out.
const RSP_OKAY: i16 = 0;
/// `NETRXF_more_data` / `NETRXF_extra_info`: parts of features we never ask for.
const RXF_MORE_DATA: u16 = 1 << 2;
const RXF_EXTRA_INFO: u16 = 1 << 3;

/// A page granted to the backend, by grant reference.
pub struct Buffer<P> {
    pub page: P,
    pub gref: u32,
}

/// What crossed the rings, and what was refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Packets the backend reported it could not receive into our buffer (negative status).
    pub rx_errors: u64,
    /// Packets the backend reported it could not send (status other than okay).
    pub tx_errors: u64,
    /// Tx responses taken (good or not).
    pub tx_completed: u64,
    /// Responses dropped for an id, length, offset or flags out of range.
    pub rejected: u64,
}

/// The rx and tx queues of one device.
pub struct Queues<P> {
    tx: FrontRing<P>,
    rx: FrontRing<P>,
    tx_bufs: Vec<Buffer<P>>,
    /// Tx buffer ids not in flight.
    tx_free: Vec<u16>,
    tx_busy: Vec<bool>,
    rx_bufs: Vec<Buffer<P>>,
    rx_posted: Vec<bool>,
    /// The last response said more fragments follow (never negotiated): drop them too.
    rx_fragments: bool,
    /// Slots holding a `netif_extra_info` (never negotiated) still to skip.
    rx_extras: u32,
    stats: Stats,
}

impl<P: RingPage> Queues<P> {
    /// Initialises both rings on `tx_page` and `rx_page` and posts every rx buffer. At most
    /// 256 buffers of each kind are used (a ring's slots).
    pub fn new(
        tx_page: P,
        rx_page: P,
        mut tx_bufs: Vec<Buffer<P>>,
        mut rx_bufs: Vec<Buffer<P>>,
    ) -> Queues<P> {
        let slots = super::ring::RING_SLOTS as usize;
        tx_bufs.truncate(slots);
        rx_bufs.truncate(slots);
        let mut q = Queues {
            tx: FrontRing::new(tx_page, TX_SLOT),
            rx: FrontRing::new(rx_page, RX_SLOT),
            tx_free: (0..tx_bufs.len() as u16).rev().collect(),
            tx_busy: alloc::vec![false; tx_bufs.len()],
            rx_posted: alloc::vec![false; rx_bufs.len()],
            rx_fragments: false,
            rx_extras: 0,
            tx_bufs,
            rx_bufs,
            stats: Stats::default(),
        };
        for id in 0..q.rx_bufs.len() as u16 {
            q.post_rx(id);
        }
        q
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Tx buffers the backend has not answered yet.
    pub fn tx_in_flight(&self) -> usize {
        self.tx_bufs.len() - self.tx_free.len()
    }

    /// Whether [`Queues::send`] would take a frame now.
    pub fn can_send(&self) -> bool {
        !self.tx_free.is_empty()
    }

    /// Copies `frame` into a free tx buffer and queues it; false when none is free or the
    /// frame is empty or over [`FRAME_MAX`].
    pub fn send(&mut self, frame: &[u8]) -> bool {
        if frame.is_empty() || frame.len() > FRAME_MAX {
            return false;
        }
        let Some(id) = self.tx_free.pop() else {
            return false;
        };
        let (Some(buf), Some(busy)) = (
            self.tx_bufs.get_mut(usize::from(id)),
            self.tx_busy.get_mut(usize::from(id)),
        ) else {
            return false;
        };
        buf.page.write(0, frame);
        let mut req = [0u8; TX_SLOT];
        req[0..4].copy_from_slice(&buf.gref.to_le_bytes());
        // offset 0 and flags 0 (bytes 4..8): a whole frame in one slot, checksums filled in.
        req[8..10].copy_from_slice(&id.to_le_bytes());
        req[10..12].copy_from_slice(&(frame.len() as u16).to_le_bytes());
        if !self.tx.put(&req) {
            self.tx_free.push(id);
            return false;
        }
        *busy = true;
        self.stats.tx_packets += 1;
        self.stats.tx_bytes += frame.len() as u64;
        true
    }

    /// Publishes queued tx requests: true when the backend must be notified.
    pub fn push_tx(&mut self) -> bool {
        self.tx.push()
    }

    /// Takes the backend's tx responses, freeing their buffers: true when more came in while
    /// asking for the next event (call again).
    pub fn reap_tx(&mut self) -> Result<bool, BadIndex> {
        let ready = self.tx.ready()?;
        for n in 0..ready {
            let mut rsp = [0u8; 4];
            self.tx.response(n, &mut rsp);
            let id = u16::from_le_bytes([rsp[0], rsp[1]]);
            let status = i16::from_le_bytes([rsp[2], rsp[3]]);
            match self.tx_busy.get_mut(usize::from(id)) {
                Some(busy) if *busy => {
                    *busy = false;
                    self.tx_free.push(id);
                    self.stats.tx_completed += 1;
                    if status != RSP_OKAY {
                        self.stats.tx_errors += 1;
                    }
                }
                _ => self.stats.rejected += 1,
            }
        }
        self.tx.consume(ready)
    }

    /// Takes the next good packet from the rx ring into `out`, reposting its buffer; bad
    /// responses on the way are counted and skipped. `Ok(false)` when none is ready.
    pub fn receive(&mut self, out: &mut Vec<u8>) -> Result<bool, BadIndex> {
        // Bounded: a backend answering as fast as we repost cannot keep us here.
        for _ in 0..super::ring::RING_SLOTS {
            if self.rx.ready()? == 0 && !self.rx.consume(0)? {
                return Ok(false);
            }
            let mut rsp = [0u8; RX_SLOT];
            self.rx.response(0, &mut rsp);
            self.rx.consume(1)?;
            if self.rx_extras > 0 {
                self.rx_extras -= 1;
                continue;
            }
            let id = u16::from_le_bytes([rsp[0], rsp[1]]);
            let offset = usize::from(u16::from_le_bytes([rsp[2], rsp[3]]));
            let flags = u16::from_le_bytes([rsp[4], rsp[5]]);
            let status = i16::from_le_bytes([rsp[6], rsp[7]]);
            if flags & RXF_EXTRA_INFO != 0 {
                // The next slot holds a `netif_extra_info`, not a response (the id of the
                // buffer it used is gone with it, so that buffer is lost): skip it.
                self.rx_extras = 1;
            }
            let fragment = core::mem::replace(&mut self.rx_fragments, flags & RXF_MORE_DATA != 0);
            let Some(true) = self.rx_posted.get(usize::from(id)).copied() else {
                self.stats.rejected += 1;
                continue;
            };
            if let Some(posted) = self.rx_posted.get_mut(usize::from(id)) {
                *posted = false;
            }
            let good = !fragment && self.take_rx(id, offset, flags, status, out);
            if fragment {
                self.stats.rejected += 1;
            }
            self.post_rx(id);
            if good {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Publishes reposted rx buffers: true when the backend must be notified.
    pub fn push_rx(&mut self) -> bool {
        self.rx.push()
    }

    /// Copies a response's packet out of buffer `id` if its values are in range.
    fn take_rx(
        &mut self,
        id: u16,
        offset: usize,
        flags: u16,
        status: i16,
        out: &mut Vec<u8>,
    ) -> bool {
        if status < 0 {
            self.stats.rx_errors += 1;
            return false;
        }
        let len = status as usize;
        let in_range = (14..=FRAME_MAX).contains(&len) && offset + len <= PAGE;
        if !in_range || flags & (RXF_MORE_DATA | RXF_EXTRA_INFO) != 0 {
            self.stats.rejected += 1;
            return false;
        }
        let Some(buf) = self.rx_bufs.get(usize::from(id)) else {
            return false;
        };
        out.clear();
        out.resize(len, 0);
        buf.page.read(offset, out);
        self.stats.rx_packets += 1;
        self.stats.rx_bytes += len as u64;
        true
    }

    /// Offers rx buffer `id` to the backend again.
    fn post_rx(&mut self, id: u16) {
        let (Some(buf), Some(posted)) = (
            self.rx_bufs.get(usize::from(id)),
            self.rx_posted.get_mut(usize::from(id)),
        ) else {
            return;
        };
        let mut req = [0u8; RX_SLOT];
        req[0..2].copy_from_slice(&id.to_le_bytes());
        req[4..8].copy_from_slice(&buf.gref.to_le_bytes());
        if self.rx.put(&req) {
            *posted = true;
        }
    }
}

#[cfg(test)]
mod tests;
