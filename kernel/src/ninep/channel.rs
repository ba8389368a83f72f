//! The Xen 9pfs transport (xen.git docs/misc/9pfs.pandoc), frontend side: one ring of order 1,
//! i.e. an interface page plus two data pages, `in` (replies, the backend produces) and
//! `out` (requests, we produce), 4 KiB each. Pure logic over [`RingPage`]s, host-tested.
//!
//! The backend's indices are checked: a producer index more than a ring ahead of ours, or a
//! reply whose size is under a header or over `msize`, breaks the channel for good.

use super::wire::{self, HEADER_LEN};
use alloc::vec::Vec;
use xenstore_engine::ring::RingPage;

/// Bytes of each data ring (`(1 << order) * 4096 / 2` with order 1).
pub const RING_SIZE: u32 = 4096;
/// The ring order written to the interface page.
pub const RING_ORDER: u32 = 1;

// `struct xen_9pfs_data_intf` (ring.h's DEFINE_XEN_FLEX_RING_AND_INTF): in_cons, in_prod,
// 56 bytes of padding, out_cons, out_prod, 56 bytes of padding, ring_order,
// ref[1 << ring_order]. (The byte diagram in 9pfs.pandoc leaves out the second padding.)
const IN_CONS: usize = 0;
const IN_PROD: usize = 4;
const OUT_CONS: usize = 64;
const OUT_PROD: usize = 68;
const ORDER: usize = 128;
const REFS: usize = 132;

/// Why the channel stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broken {
    /// The backend moved an index more than a ring away from ours.
    Indices,
    /// A reply's size is under a header or over the negotiated `msize`.
    ReplySize(u32),
}

impl core::fmt::Display for Broken {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Broken::Indices => f.write_str("the backend's ring indices are out of range"),
            Broken::ReplySize(n) => write!(f, "a reply of {n} bytes (outside the limits)"),
        }
    }
}

/// Our side of one ring.
pub struct Channel<P> {
    intf: P,
    data_in: P,
    data_out: P,
    /// Our copies of the indices we own.
    in_cons: u32,
    out_prod: u32,
}

impl<P: RingPage> Channel<P> {
    /// Fills the interface page: indices 0, order 1, the grant refs of the `in` and `out`
    /// data pages.
    pub fn new(mut intf: P, data_in: P, data_out: P, refs: [u32; 2]) -> Channel<P> {
        for off in [IN_CONS, IN_PROD, OUT_CONS, OUT_PROD] {
            intf.store_u32(off, 0);
        }
        intf.store_u32(ORDER, RING_ORDER);
        intf.store_u32(REFS, refs[0]);
        intf.store_u32(REFS + 4, refs[1]);
        intf.barrier();
        Channel {
            intf,
            data_in,
            data_out,
            in_cons: 0,
            out_prod: 0,
        }
    }

    /// Queues `msg` whole if the `out` ring has room: `Ok(true)` when it went in (notify the
    /// backend), `Ok(false)` when it must wait for room.
    pub fn send(&mut self, msg: &[u8]) -> Result<bool, Broken> {
        let cons = self.intf.load_u32(OUT_CONS);
        self.intf.barrier();
        let used = self.out_prod.wrapping_sub(cons);
        if used > RING_SIZE {
            return Err(Broken::Indices);
        }
        let Ok(len) = u32::try_from(msg.len()) else {
            return Ok(false);
        };
        if len > RING_SIZE - used {
            return Ok(false);
        }
        let start = (self.out_prod % RING_SIZE) as usize;
        let first = msg.len().min(RING_SIZE as usize - start);
        let (a, b) = msg.split_at(first);
        self.data_out.write(start, a);
        self.data_out.write(0, b);
        self.intf.barrier();
        self.out_prod = self.out_prod.wrapping_add(len);
        self.intf.store_u32(OUT_PROD, self.out_prod);
        Ok(true)
    }

    /// Takes one whole reply (at most `msize` bytes) if the backend has produced it:
    /// `Ok(true)` with the reply in `msg` (tell the backend: it may wait for room).
    pub fn receive(&mut self, msize: u32, msg: &mut Vec<u8>) -> Result<bool, Broken> {
        let prod = self.intf.load_u32(IN_PROD);
        self.intf.barrier();
        let avail = prod.wrapping_sub(self.in_cons);
        if avail > RING_SIZE {
            return Err(Broken::Indices);
        }
        if (avail as usize) < HEADER_LEN {
            return Ok(false);
        }
        let mut header = [0u8; HEADER_LEN];
        self.copy_in(0, &mut header);
        let size = wire::size_of(&header).unwrap_or(0);
        if (size as usize) < HEADER_LEN || size > msize || size > RING_SIZE {
            return Err(Broken::ReplySize(size));
        }
        if avail < size {
            return Ok(false);
        }
        msg.clear();
        msg.resize(size as usize, 0);
        self.copy_in(0, msg);
        self.intf.barrier();
        self.in_cons = self.in_cons.wrapping_add(size);
        self.intf.store_u32(IN_CONS, self.in_cons);
        Ok(true)
    }

    /// Copies `buf.len()` bytes of the `in` ring starting `skip` bytes after our consumer.
    fn copy_in(&self, skip: u32, buf: &mut [u8]) {
        let start = (self.in_cons.wrapping_add(skip) % RING_SIZE) as usize;
        let first = buf.len().min(RING_SIZE as usize - start);
        let (a, b) = buf.split_at_mut(first);
        self.data_in.read(start, a);
        self.data_in.read(0, b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    use crate::test_host::HostPage as Page;

    fn channel() -> Channel<Page> {
        Channel::new(Page::new(), Page::new(), Page::new(), [7, 8])
    }

    /// The backend: takes what we produced on `out`, and produces `bytes` on `in`.
    fn backend_take(c: &mut Channel<Page>) -> Vec<u8> {
        let cons = c.intf.load_u32(OUT_CONS);
        let prod = c.intf.load_u32(OUT_PROD);
        let out: Vec<u8> = (cons..prod)
            .map(|i| c.data_out.0[(i % RING_SIZE) as usize])
            .collect();
        c.intf.store_u32(OUT_CONS, prod);
        out
    }

    fn backend_put(c: &mut Channel<Page>, bytes: &[u8]) {
        let prod = c.intf.load_u32(IN_PROD);
        for (i, b) in bytes.iter().enumerate() {
            c.data_in.0[(prod as usize + i) % RING_SIZE as usize] = *b;
        }
        c.intf
            .store_u32(IN_PROD, prod.wrapping_add(bytes.len() as u32));
    }

    fn msg(n: usize, fill: u8) -> Vec<u8> {
        let mut m = (n as u32).to_le_bytes().to_vec();
        m.extend(core::iter::repeat_n(fill, n - 4));
        m
    }

    #[test]
    fn interface_page_is_filled() {
        let c = channel();
        assert_eq!(c.intf.load_u32(ORDER), 1);
        assert_eq!((c.intf.load_u32(REFS), c.intf.load_u32(REFS + 4)), (7, 8));
    }

    #[test]
    fn messages_cross_the_wrap_both_ways() {
        let mut c = channel();
        let mut got = Vec::new();
        for round in 0..20u8 {
            let m = msg(700 + usize::from(round) * 3, round);
            assert_eq!(c.send(&m), Ok(true));
            assert_eq!(backend_take(&mut c), m);
            assert_eq!(c.receive(4096, &mut got), Ok(false));
            backend_put(&mut c, &m[..5]);
            assert_eq!(c.receive(4096, &mut got), Ok(false), "partial header");
            backend_put(&mut c, &m[5..600]);
            assert_eq!(c.receive(4096, &mut got), Ok(false), "partial body");
            backend_put(&mut c, &m[600..]);
            assert_eq!(c.receive(4096, &mut got), Ok(true));
            assert_eq!(got, m);
        }
    }

    #[test]
    fn a_full_ring_waits_for_room() {
        let mut c = channel();
        assert_eq!(c.send(&msg(3000, 1)), Ok(true));
        assert_eq!(c.send(&msg(2000, 2)), Ok(false));
        backend_take(&mut c);
        assert_eq!(c.send(&msg(2000, 2)), Ok(true));
        assert_eq!(c.send(&vec![0; 5000]), Ok(false));
    }

    #[test]
    fn hostile_indices_and_sizes_break_the_channel() {
        let mut c = channel();
        c.intf.store_u32(IN_PROD, RING_SIZE + 1);
        let mut got = Vec::new();
        assert_eq!(c.receive(4096, &mut got), Err(Broken::Indices));
        let mut c = channel();
        c.intf.store_u32(OUT_CONS, 5);
        assert_eq!(c.send(b"x"), Err(Broken::Indices));
        let mut c = channel();
        backend_put(&mut c, &msg(8, 0)[..7]);
        c.data_in.0[..4].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(c.receive(4096, &mut got), Err(Broken::ReplySize(3)));
        let mut c = channel();
        backend_put(&mut c, &msg(3000, 0));
        assert_eq!(c.receive(2048, &mut got), Err(Broken::ReplySize(3000)));
    }
}
