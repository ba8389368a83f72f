//! Fairness on the request rings: [`Budgeted`] wraps a ring page so that one
//! `ring::service` call reads at most a fixed number of request bytes. The dispatcher gives
//! every ring one budget per pass, so a guest that writes flat out gets its turn like any
//! other ring and cannot starve dom0 or other guests.
//!
//! How: loads of `req_prod` are clamped to `req_cons + remaining`, and every store to
//! `req_cons` charges the bytes it consumed. Indices that are already insane pass through
//! unchanged, so the engine still detects a corrupt ring.

use xenstore_engine::ring::{RingPage, REQ_CONS, REQ_PROD, RING_SIZE};

/// Request bytes one ring may have read per pass: one full ring.
pub const PASS_BUDGET: u32 = RING_SIZE;

/// A ring page whose readable request bytes are limited to a budget.
pub struct Budgeted<'a, R: RingPage + ?Sized> {
    page: &'a mut R,
    remaining: u32,
}

impl<'a, R: RingPage + ?Sized> Budgeted<'a, R> {
    /// Wraps `page`, allowing `budget` request bytes to be consumed.
    pub fn new(page: &'a mut R, budget: u32) -> Self {
        Budgeted {
            page,
            remaining: budget,
        }
    }

    /// Bytes of budget left.
    pub fn remaining(&self) -> u32 {
        self.remaining
    }
}

impl<R: RingPage + ?Sized> RingPage for Budgeted<'_, R> {
    fn load_u32(&self, off: usize) -> u32 {
        let v = self.page.load_u32(off);
        if off != REQ_PROD {
            return v;
        }
        let cons = self.page.load_u32(REQ_CONS);
        let avail = v.wrapping_sub(cons);
        if avail > RING_SIZE {
            return v;
        }
        cons.wrapping_add(avail.min(self.remaining))
    }

    fn store_u32(&mut self, off: usize, v: u32) {
        if off == REQ_CONS {
            let consumed = v.wrapping_sub(self.page.load_u32(REQ_CONS));
            self.remaining = self.remaining.saturating_sub(consumed);
        }
        self.page.store_u32(off, v);
    }

    fn read(&self, off: usize, buf: &mut [u8]) {
        self.page.read(off, buf);
    }

    fn write(&mut self, off: usize, data: &[u8]) {
        self.page.write(off, data);
    }

    fn barrier(&self) {
        self.page.barrier();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_host::TestHost;
    use alloc::vec;
    use alloc::vec::Vec;
    use xenstore_engine::ring::{self, ERROR, ERROR_RINGIDX, REQ, RSP_PROD};
    use xenstore_engine::{Config, Engine};

    /// A READ of "/" request (xsd_sockmsg: type 2, req_id, tx 0, len 2, "/\0").
    fn read_root(req_id: u32) -> Vec<u8> {
        let mut m = Vec::new();
        for v in [2u32, req_id, 0, 2] {
            m.extend_from_slice(&v.to_le_bytes());
        }
        m.extend_from_slice(b"/\0");
        m
    }

    fn put_requests(page: &mut [u8], bytes: &[u8]) {
        let prod = page.load_u32(REQ_PROD);
        for (i, b) in bytes.iter().enumerate() {
            page[REQ + (prod as usize + i) % RING_SIZE as usize] = *b;
        }
        page.store_u32(REQ_PROD, prod + bytes.len() as u32);
    }

    #[test]
    fn one_pass_reads_at_most_the_budget() {
        let mut engine = Engine::new(TestHost::default(), Config::default());
        let conn = engine.new_connection(0);
        let mut page = vec![0u8; 4096];
        let mut reqs = Vec::new();
        for i in 0..40 {
            reqs.extend(read_root(i));
        }
        // 40 requests of 18 bytes = 720 bytes; a budget of 90 bytes reads 5 of them.
        put_requests(&mut page, &reqs);
        let mut b = Budgeted::new(&mut page[..], 90);
        let out = ring::service(&mut engine, conn, &mut b);
        assert!(out.notify);
        assert_eq!(out.error, None);
        assert_eq!(b.remaining(), 0);
        assert_eq!(page.load_u32(REQ_CONS), 90);
        // Five replies (a 16-byte header, "/" has an empty value) went out.
        assert_eq!(page.load_u32(RSP_PROD), 5 * 16);
        // The next pass reads the rest.
        let mut b = Budgeted::new(&mut page[..], PASS_BUDGET);
        ring::service(&mut engine, conn, &mut b);
        assert_eq!(b.remaining(), PASS_BUDGET - 630);
        assert_eq!(page.load_u32(REQ_CONS), 720);
    }

    #[test]
    fn insane_indices_still_reach_the_engine() {
        let mut engine = Engine::new(TestHost::default(), Config::default());
        let conn = engine.new_connection(0);
        let mut page = vec![0u8; 4096];
        page.store_u32(REQ_PROD, 5000);
        let mut b = Budgeted::new(&mut page[..], 10);
        assert_eq!(b.load_u32(REQ_PROD), 5000);
        let out = ring::service(&mut engine, conn, &mut b);
        assert_eq!(out.error, Some(ERROR_RINGIDX));
        assert_eq!(page.load_u32(ERROR), ERROR_RINGIDX);
    }

    #[test]
    fn a_consumer_moving_backwards_exhausts_the_budget() {
        let mut page = vec![0u8; 4096];
        page.store_u32(REQ_CONS, 100);
        page.store_u32(REQ_PROD, 200);
        let mut b = Budgeted::new(&mut page[..], 50);
        assert_eq!(b.load_u32(REQ_PROD), 150);
        // A store that "consumes" a wrapped-around amount charges all of it.
        b.store_u32(REQ_CONS, 50);
        assert_eq!(b.remaining(), 0);
        assert_eq!(b.load_u32(REQ_PROD), 50);
    }
}
