//! The netif shared rings (xen/include/public/io/netif.h over io/ring.h), frontend side: one
//! page each for tx and rx, a 64-byte header (`req_prod`, `req_event`, `rsp_prod`,
//! `rsp_event`, padding) then 256 slots a request and its response share. Pure logic over a
//! [`RingPage`], host-tested.
//!
//! The backend moves `rsp_prod` and writes responses; both are checked: a `rsp_prod` that
//! claims more responses than published requests outstanding breaks the ring for good.

use xenstore_engine::ring::RingPage;

/// Slots of each ring: `(4096 - 64) / slot size` rounded down to a power of two, for both.
pub const RING_SLOTS: u32 = 256;

const REQ_PROD: usize = 0;
const REQ_EVENT: usize = 4;
const RSP_PROD: usize = 8;
const RSP_EVENT: usize = 12;
const SLOTS: usize = 64;

/// Bytes of a tx slot: `netif_tx_request` (gref u32, offset, flags, id, size: u16).
pub const TX_SLOT: usize = 12;
/// Bytes of an rx slot: `netif_rx_request` (id u16, pad, gref u32) and `netif_rx_response`
/// (id, offset, flags u16, status i16).
pub const RX_SLOT: usize = 8;

/// The backend moved `rsp_prod` past the requests we made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadIndex;

/// One shared ring of `slot`-byte slots, seen from the frontend.
pub struct FrontRing<P> {
    page: P,
    slot: usize,
    /// Requests written, published or not.
    req_prod_pvt: u32,
    /// Requests visible to the backend.
    req_prod: u32,
    /// Responses consumed.
    rsp_cons: u32,
}

impl<P: RingPage> FrontRing<P> {
    /// Initialises the header of `page` (`SHARED_RING_INIT`): indices 0, events 1.
    pub fn new(mut page: P, slot: usize) -> FrontRing<P> {
        page.store_u32(REQ_PROD, 0);
        page.store_u32(RSP_PROD, 0);
        page.store_u32(REQ_EVENT, 1);
        page.store_u32(RSP_EVENT, 1);
        page.barrier();
        FrontRing {
            page,
            slot,
            req_prod_pvt: 0,
            req_prod: 0,
            rsp_cons: 0,
        }
    }

    /// Requests the backend has not answered yet.
    pub fn outstanding(&self) -> u32 {
        self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// Writes one request (`bytes`, at most a slot) if a slot is free.
    pub fn put(&mut self, bytes: &[u8]) -> bool {
        if self.outstanding() >= RING_SLOTS || bytes.len() > self.slot {
            return false;
        }
        let off = self.offset(self.req_prod_pvt);
        self.page.write(off, bytes);
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        true
    }

    /// Publishes the requests written (`RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`): true when the
    /// backend asked to be told (its `req_event` falls among the new requests).
    pub fn push(&mut self) -> bool {
        let old = self.req_prod;
        let new = self.req_prod_pvt;
        if old == new {
            return false;
        }
        self.page.barrier();
        self.page.store_u32(REQ_PROD, new);
        self.req_prod = new;
        self.page.barrier();
        let event = self.page.load_u32(REQ_EVENT);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// Responses ready to be read with [`FrontRing::response`]: never more than the
    /// published requests not answered yet (the backend cannot answer what it has not seen).
    pub fn ready(&self) -> Result<u32, BadIndex> {
        let prod = self.page.load_u32(RSP_PROD);
        self.page.barrier();
        let ready = prod.wrapping_sub(self.rsp_cons);
        if ready > self.req_prod.wrapping_sub(self.rsp_cons) {
            return Err(BadIndex);
        }
        Ok(ready)
    }

    /// Copies the `n`th ready response (0 is the oldest) into `buf` (at most a slot).
    pub fn response(&self, n: u32, buf: &mut [u8]) {
        let len = buf.len().min(self.slot);
        let off = self.offset(self.rsp_cons.wrapping_add(n));
        if let Some(b) = buf.get_mut(..len) {
            self.page.read(off, b);
        }
    }

    /// Marks `n` responses consumed and asks for an event at the next one
    /// (`RING_FINAL_CHECK_FOR_RESPONSES`): true when more arrived meanwhile.
    pub fn consume(&mut self, n: u32) -> Result<bool, BadIndex> {
        self.rsp_cons = self.rsp_cons.wrapping_add(n);
        self.page
            .store_u32(RSP_EVENT, self.rsp_cons.wrapping_add(1));
        self.page.barrier();
        Ok(self.ready()? > 0)
    }

    fn offset(&self, index: u32) -> usize {
        SLOTS + (index % RING_SLOTS) as usize * self.slot
    }

    #[cfg(test)]
    pub fn page_mut(&mut self) -> &mut P {
        &mut self.page
    }

    #[cfg(test)]
    pub fn page(&self) -> &P {
        &self.page
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_host::HostPage;

    fn page() -> HostPage {
        HostPage::new()
    }

    #[test]
    fn the_slots_fit_the_page() {
        for slot in [TX_SLOT, RX_SLOT] {
            let fits = (4096 - SLOTS) / slot;
            assert!(RING_SLOTS as usize <= fits && fits < 2 * RING_SLOTS as usize);
        }
    }

    #[test]
    fn push_notifies_only_when_the_backend_asked() {
        let mut r = FrontRing::new(page(), RX_SLOT);
        assert!(r.put(&[1; RX_SLOT]));
        assert!(r.push(), "req_event 1 is among the new request");
        assert!(!r.push(), "nothing new");
        r.put(&[2; RX_SLOT]);
        assert!(!r.push(), "the backend has not asked for event 2");
        r.page_mut().store_u32(REQ_EVENT, 3);
        r.put(&[3; RX_SLOT]);
        assert!(r.push());
        assert_eq!(r.page().load_u32(REQ_PROD), 3);
    }

    #[test]
    fn a_full_ring_refuses_and_responses_free_slots() {
        let mut r = FrontRing::new(page(), TX_SLOT);
        for i in 0..RING_SLOTS {
            assert!(r.put(&i.to_le_bytes()), "slot {i}");
        }
        assert!(!r.put(&[0; 4]));
        r.push();
        r.page_mut().store_u32(RSP_PROD, 10);
        assert_eq!(r.ready(), Ok(10));
        let mut b = [0u8; 4];
        r.response(3, &mut b);
        assert_eq!(
            u32::from_le_bytes(b),
            3,
            "a response sits in its request's slot"
        );
        assert_eq!(r.consume(10), Ok(false));
        assert_eq!(r.page().load_u32(RSP_EVENT), 11);
        assert!(r.put(&[0; 4]));
        assert!(!r.put(&[0; TX_SLOT + 1]), "larger than a slot");
    }

    #[test]
    fn a_hostile_rsp_prod_breaks_the_ring() {
        let mut r = FrontRing::new(page(), RX_SLOT);
        r.put(&[0; RX_SLOT]);
        r.push();
        r.page_mut().store_u32(RSP_PROD, 2);
        assert_eq!(r.ready(), Err(BadIndex), "two responses to one request");
        r.put(&[0; RX_SLOT]);
        assert_eq!(
            r.ready(),
            Err(BadIndex),
            "an answer to a request not published yet"
        );
        r.push();
        assert_eq!(r.ready(), Ok(2));
        r.page_mut().store_u32(RSP_PROD, u32::MAX);
        assert_eq!(r.ready(), Err(BadIndex), "behind our consumer");
    }

    #[test]
    fn indices_wrap() {
        let mut r = FrontRing::new(page(), RX_SLOT);
        for round in 0..3 * RING_SLOTS {
            assert!(r.put(&round.to_le_bytes()));
            r.push();
            r.page_mut().store_u32(RSP_PROD, round.wrapping_add(1));
            let mut b = [0u8; 4];
            r.response(0, &mut b);
            assert_eq!(u32::from_le_bytes(b), round);
            assert_eq!(r.consume(1), Ok(false));
        }
    }
}
