//! Property tests: random byte streams and random request sequences never panic and leave
//! a consistent store (`check`). [`Sequence`] is shared with the live-update tests.

use super::*;
use alloc::format;

/// xorshift64*: a small seeded PRNG.
#[derive(Clone)]
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub(super) fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

#[test]
fn random_byte_streams() {
    for seed in 1..40u64 {
        let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut h = H::new();
        let conns = [h.dom0(), h.guest(3), h.guest(4)];
        for _ in 0..300 {
            let c = *r.pick(&conns);
            let mut bytes = Vec::new();
            let len = r.below(64) as usize;
            if r.below(3) == 0 {
                // A plausible header with a random type and a small length.
                let t = r.below(30) as u32;
                let l = r.below(40) as u32;
                bytes.extend(msg(t, 1, r.below(3) as u32, &[]));
                bytes[12..16].copy_from_slice(&l.to_le_bytes());
            }
            for _ in 0..len {
                bytes.push(*r.pick(b"/ab\0@0123xyz-_ T F"));
            }
            if h.e.feed(c, &bytes).is_err() {
                h.e.reset_connection(c);
            }
            let mut sink = Vec::new();
            h.e.output_all(c, &mut sink);
        }
        assert_eq!(h.e.check(), Ok(()), "seed {seed}");
    }
}

/// Introduces guest `g` again with its home; returns its new connection.
fn reintroduce(h: &mut H, d: ConnId, g: u32) -> ConnId {
    let c = h.guest(g);
    let home = format!("/local/domain/{g}");
    assert_eq!(h.write(d, &home, b""), ok());
    assert_eq!(
        h.args(d, ty::SET_PERMS, &[&home, &format!("n{g}"), "r0"]),
        ok()
    );
    c
}

/// The paths random requests name (absolute and relative).
const PATHS: [&str; 9] = [
    "/a",
    "/a/b",
    "/a/b/c",
    "/x/y",
    "data",
    "data/k",
    "/local/domain/3/q",
    "/local/domain/4/q/r",
    "/",
];

/// A random request sequence over two dom0 connections and guests 3 and 4: plain
/// requests, transactions (with conflicting outside writes, deep paths, and gifts to a guest
/// that goes away), watches and churn. The same seed on two engines in the same state makes
/// the same requests.
#[derive(Clone)]
pub(super) struct Sequence {
    pub(super) r: Rng,
    seed: u64,
    pub(super) d: ConnId,
    pub(super) conns: [ConnId; 4],
    pub(super) txs: Vec<(ConnId, u32)>,
}

impl Sequence {
    pub(super) fn new(h: &mut H, seed: u64) -> Sequence {
        let d = h.dom0();
        let d2 = h.dom0();
        let conns = [d, d2, reintroduce(h, d, 3), reintroduce(h, d, 4)];
        Sequence {
            r: Rng(seed.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1),
            seed,
            d,
            conns,
            txs: Vec::new(),
        }
    }

    /// One random request (or a few): its reply and the events it queued on its connection.
    pub(super) fn step(
        &mut self,
        h: &mut H,
        step: usize,
    ) -> (Result<Vec<u8>, String>, Vec<String>) {
        let (r, d, seed) = (&mut self.r, self.d, self.seed);
        let (conns, txs) = (&mut self.conns, &mut self.txs);
        let c = *r.pick(conns);
        let p = *r.pick(&PATHS);
        let tx = if r.below(3) == 0 {
            txs.iter()
                .filter(|t| t.0 == c)
                .map(|t| t.1)
                .next()
                .unwrap_or(0)
        } else {
            0
        };
        let res = match r.below(17) {
            0 | 1 => h.write(c, p, format!("v{step}").as_bytes()),
            2 => h.call(c, ty::MKDIR, tx, &z(&[p.as_bytes()])),
            3 => h.call(c, ty::RM, tx, &z(&[p.as_bytes()])),
            4 => h.call(c, ty::READ, tx, &z(&[p.as_bytes()])),
            5 => h.call(c, ty::DIRECTORY, tx, &z(&[p.as_bytes()])),
            6 => h.call(c, ty::SET_PERMS, tx, &z(&[p.as_bytes(), b"b3", b"r4"])),
            7 => h.args(c, ty::WATCH, &[p, "t"]),
            8 => {
                let res = h.call(c, ty::TRANSACTION_START, 0, b"\0");
                if let Ok(id) = &res {
                    let id = core::str::from_utf8(&id[..id.len() - 1])
                        .unwrap()
                        .parse()
                        .unwrap();
                    txs.push((c, id));
                }
                res
            }
            9 => match txs.iter().position(|t| t.0 == c) {
                Some(i) => {
                    let (_, id) = txs.remove(i);
                    let arg: &[u8] = if r.below(4) == 0 { b"F\0" } else { b"T\0" };
                    h.call(c, ty::TRANSACTION_END, id, arg)
                }
                None => ok(),
            },
            10 => h.call(c, ty::WRITE, tx, &z(&[p.as_bytes(), b"w"])),
            // Alternating writes of two nodes in a transaction, with outside changes.
            11 if tx != 0 => {
                let q = *r.pick(&PATHS);
                let mut res = ok();
                for i in 0..r.below(40) {
                    let (target, t) = if i % 5 == 4 {
                        (q, 0)
                    } else {
                        ([p, q][i as usize % 2], tx)
                    };
                    let v = format!("a{i}");
                    res = res.and(h.call(c, ty::WRITE, t, &z(&[target.as_bytes(), v.as_bytes()])));
                    let _ = h.write(d, "/churn", v.as_bytes());
                }
                res
            }
            // A transaction gives a node to a guest that is released (and comes back)
            // before the commit: it must end up with no owner that is gone.
            12 => {
                let g = 3 + r.below(2) as u32;
                let t = h.tx_start(d);
                let owner = format!("n{g}");
                let mut res = h.call(d, ty::WRITE, t, &z(&[b"/gift", b"x"]));
                res = res.and(h.call(
                    d,
                    ty::SET_PERMS,
                    t,
                    &z(&[b"/gift", owner.as_bytes(), b"r4"]),
                ));
                let gone = r.below(3);
                if gone > 0 {
                    h.e.domain_gone(g);
                    txs.retain(|x| x.0 != conns[g as usize - 1]);
                }
                if gone == 2 {
                    conns[g as usize - 1] = reintroduce(h, d, g);
                }
                let end = h.call(d, ty::TRANSACTION_END, t, b"T\0");
                assert_eq!(h.e.check(), Ok(()), "seed {seed} step {step}");
                if gone == 1 {
                    conns[g as usize - 1] = reintroduce(h, d, g);
                }
                res.and(end)
            }
            // Idle transactions while dom0 churns a subtree.
            13 => {
                for i in 0..r.below(30) {
                    let _ = h.write(d, &format!("/big/n{}", i % 7), format!("{step}").as_bytes());
                }
                let _ = h.call(d, ty::RM, 0, b"/big\0");
                ok()
            }
            // Deep transactional paths.
            14 if tx != 0 => {
                let depth = 1 + r.below(120) as usize;
                let deep = format!("deep{}", "/d".repeat(depth));
                h.call(c, ty::WRITE, tx, &z(&[deep.as_bytes(), b"v"]))
            }
            _ => h.call(c, ty::GET_PERMS, tx, &z(&[p.as_bytes()])),
        };
        if let Err(e) = &res {
            assert!(
                [
                    "ENOENT", "EACCES", "EINVAL", "EEXIST", "EAGAIN", "ENOSPC", "EPERM", "E2BIG",
                    "ENOMEM"
                ]
                .contains(&e.as_str()),
                "seed {seed} step {step}: unexpected {e}"
            );
        }
        (res, h.events(c))
    }
}

#[test]
fn random_request_sequences() {
    for seed in 1..30u64 {
        let mut h = H::new();
        let mut s = Sequence::new(&mut h, seed);
        for step in 0..600 {
            let _ = s.step(&mut h, step);
            if step % 10 == 0 {
                assert_eq!(h.e.check(), Ok(()), "seed {seed} step {step}");
            }
        }
        for g in [3, 4] {
            h.e.domain_gone(g);
        }
        assert_eq!(h.e.check(), Ok(()), "seed {seed}");
        assert_eq!(h.e.nodes_owned(3) + h.e.nodes_owned(4), 0);
    }
}
