//! The ring transport over a byte array.

use super::*;
use crate::ring::{self, *};
use alloc::vec;

struct Guest {
    page: Vec<u8>,
}

impl Guest {
    fn new() -> Guest {
        let mut page = vec![0u8; 4096];
        ring::reset(page.as_mut_slice(), crate::FEATURES);
        Guest { page }
    }
    fn u32(&self, off: usize) -> u32 {
        self.page.as_slice().load_u32(off)
    }
    fn set(&mut self, off: usize, v: u32) {
        self.page.as_mut_slice().store_u32(off, v);
    }
    /// Writes as much of `data` as fits into the request ring; returns how much.
    fn send(&mut self, data: &[u8]) -> usize {
        let (cons, prod) = (self.u32(REQ_CONS), self.u32(REQ_PROD));
        let free = (RING_SIZE - prod.wrapping_sub(cons)) as usize;
        let n = free.min(data.len());
        for (i, &b) in data[..n].iter().enumerate() {
            self.page[REQ + (prod.wrapping_add(i as u32) & 1023) as usize] = b;
        }
        self.set(REQ_PROD, prod.wrapping_add(n as u32));
        n
    }
    /// Takes everything in the response ring.
    fn recv(&mut self) -> Vec<u8> {
        let (cons, prod) = (self.u32(RSP_CONS), self.u32(RSP_PROD));
        let mut v = Vec::new();
        let mut i = cons;
        while i != prod {
            v.push(self.page[RSP + (i & 1023) as usize]);
            i = i.wrapping_add(1);
        }
        self.set(RSP_CONS, prod);
        v
    }
}

fn replies(raw: &[u8]) -> Vec<(u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(h) = raw.get(pos..).and_then(Header::parse) {
        let end = pos + HEADER_LEN + h.len as usize;
        out.push((h.ty, raw[pos + HEADER_LEN..end].to_vec()));
        pos = end;
    }
    assert_eq!(pos, raw.len());
    out
}

#[test]
fn reset_advertises_features() {
    let g = Guest::new();
    assert_eq!(g.u32(SERVER_FEATURES), 7);
    assert_eq!(g.u32(CONNECTION), CONNECTED);
}

#[test]
fn messages_split_across_the_wrap() {
    let mut h = H::new();
    let c = h.guest(2);
    let mut g = Guest::new();
    let d = h.dom0();
    assert_eq!(h.write(d, "/local/domain/2", b""), ok());
    assert_eq!(h.args(d, ty::SET_PERMS, &["/local/domain/2", "n2"]), ok());
    // Start the indices near the end of the ring and near u32 wrap-around.
    for off in [REQ_CONS, REQ_PROD, RSP_CONS, RSP_PROD] {
        g.set(off, u32::MAX - 9);
    }
    let value = vec![b'v'; 900];
    let mut w = z(&[b"/local/domain/2/k"]);
    w.extend_from_slice(&value);
    let m = msg(ty::WRITE, 1, 0, &w);
    let r = msg(ty::READ, 2, 0, b"/local/domain/2/k\0");
    let mut all = m.clone();
    all.extend_from_slice(&r);
    let mut sent = 0;
    let mut got = Vec::new();
    let mut rounds = 0;
    while sent < all.len() || got.len() < 19 + 16 + 900 {
        sent += g.send(&all[sent..]);
        assert_eq!(
            ring::service(&mut h.e, c, g.page.as_mut_slice()).error,
            None
        );
        got.extend(g.recv());
        rounds += 1;
        assert!(rounds < 10);
    }
    assert_eq!(
        replies(&got),
        vec![(ty::WRITE, b"OK\0".to_vec()), (ty::READ, value)]
    );
}

#[test]
fn full_reply_ring_applies_back_pressure() {
    let mut h = H::new();
    let c = h.guest(2);
    let mut g = Guest::new();
    let d = h.dom0();
    let big = vec![b'x'; 1000];
    assert_eq!(h.write(d, "/big", &big), ok());
    assert_eq!(h.args(d, ty::SET_PERMS, &["/big", "r0"]), ok());
    let mut reqs = Vec::new();
    for i in 0..5 {
        reqs.extend(msg(ty::READ, i, 0, b"/big\0"));
    }
    assert_eq!(g.send(&reqs), reqs.len());
    let o = ring::service(&mut h.e, c, g.page.as_mut_slice());
    assert!(o.notify);
    assert_eq!(g.u32(RSP_PROD).wrapping_sub(g.u32(RSP_CONS)), 1024);
    let mut got = g.recv();
    for _ in 0..10 {
        ring::service(&mut h.e, c, g.page.as_mut_slice());
        got.extend(g.recv());
    }
    let r = replies(&got);
    assert_eq!(r.len(), 5);
    assert!(r.iter().all(|(t, p)| *t == ty::READ && *p == big));
}

#[test]
fn bad_indices_set_ringidx() {
    let mut h = H::new();
    let c = h.guest(2);
    let mut g = Guest::new();
    g.set(REQ_PROD, 5000);
    let o = ring::service(&mut h.e, c, g.page.as_mut_slice());
    assert_eq!(
        o,
        Outcome {
            notify: true,
            error: Some(ERROR_RINGIDX)
        }
    );
    assert_eq!(g.u32(ERROR), ERROR_RINGIDX);
    // Silent until the guest reconnects.
    g.set(REQ_PROD, 0);
    assert_eq!(
        ring::service(&mut h.e, c, g.page.as_mut_slice()).error,
        Some(ERROR_RINGIDX)
    );
    g.set(CONNECTION, RECONNECT);
    let o = ring::service(&mut h.e, c, g.page.as_mut_slice());
    assert_eq!(
        o,
        Outcome {
            notify: true,
            error: None
        }
    );
    assert_eq!(
        (
            g.u32(CONNECTION),
            g.u32(ERROR),
            g.u32(REQ_CONS),
            g.u32(RSP_PROD)
        ),
        (CONNECTED, 0, 0, 0)
    );
    g.send(&msg(ty::GET_DOMAIN_PATH, 1, 0, b"2\0"));
    ring::service(&mut h.e, c, g.page.as_mut_slice());
    assert_eq!(
        replies(&g.recv()),
        vec![(ty::GET_DOMAIN_PATH, b"/local/domain/2\0".to_vec())]
    );
    // Response indices corrupted too.
    g.set(RSP_CONS, 3000);
    g.send(&msg(ty::GET_DOMAIN_PATH, 1, 0, b"2\0"));
    assert_eq!(
        ring::service(&mut h.e, c, g.page.as_mut_slice()).error,
        Some(ERROR_RINGIDX)
    );
}

#[test]
fn oversized_message_sets_proto_and_reconnect_clears_watches() {
    let mut h = H::new();
    let c = h.guest(2);
    let mut g = Guest::new();
    g.send(&msg(ty::WATCH, 1, 0, b"/x\0t\0"));
    ring::service(&mut h.e, c, g.page.as_mut_slice());
    assert_eq!(replies(&g.recv()).len(), 2);
    let mut bad = msg(ty::READ, 1, 0, b"");
    bad[12..16].copy_from_slice(&5000u32.to_le_bytes());
    g.send(&bad);
    let o = ring::service(&mut h.e, c, g.page.as_mut_slice());
    assert_eq!(o.error, Some(ERROR_PROTO));
    g.set(CONNECTION, RECONNECT);
    ring::service(&mut h.e, c, g.page.as_mut_slice());
    g.send(&msg(ty::UNWATCH, 1, 0, b"/x\0t\0"));
    ring::service(&mut h.e, c, g.page.as_mut_slice());
    assert_eq!(replies(&g.recv()), vec![(ty::ERROR, b"ENOENT\0".to_vec())]);
}
