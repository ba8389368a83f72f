//! Live update: dump → restore → dump is byte-identical, a restored engine answers every
//! later request as the original does, and broken streams are refused without a panic.

use super::random::{Rng, Sequence};
use super::*;
use crate::stream::rec;
use crate::RestoreError;
use alloc::format;
use alloc::string::ToString;

extern crate std;

/// Runs `steps` random requests, then leaves what requests do not: quotas and features
/// set, depth and relative watches, queued replies and events (one partly sent), and
/// partial requests pending on some connections (their rest is returned).
fn random_state(seed: u64, steps: usize) -> (H, Sequence, Vec<(ConnId, Vec<u8>)>) {
    let mut h = H::new();
    let mut s = Sequence::new(&mut h, seed);
    for step in 0..steps {
        h.p.now.set(step as u64 * 7);
        let _ = s.step(&mut h, step);
    }
    let r = &mut s.r;
    let [d, d2, g3, g4] = s.conns;
    let quota = format!("{}", 50 + r.below(500));
    let _ = h.args(d, ty::SET_QUOTA, &["3", "nodes", &quota]);
    let _ = h.args(d, ty::SET_FEATURE, &["4", "5"]);
    let _ = h.args(d, ty::CONTROL, &["quota", "set", "watches", "77"]);
    let _ = h.args(d, ty::CONTROL, &["log", "on"]);
    let _ = h.args(g3, ty::WATCH, &["data", "rel", "1"]);
    let _ = h.args(d2, ty::WATCH, &["/", "deep", "70000"]);
    let _ = h.args(d2, ty::WATCH, &["@releaseDomain", "r", "1"]);
    let _ = h.events(g3);
    let _ = h.events(d2);
    // Queued output: replies and events nobody has read yet.
    for (i, &c) in s.conns.iter().enumerate() {
        let path = format!("/q{i}");
        h.e.feed(
            c,
            &msg(ty::WRITE, 900 + i as u32, 0, &z(&[path.as_bytes()])),
        )
        .unwrap();
    }
    let mut head = [0u8; 5];
    h.e.output_into(d2, &mut head);
    // Partial requests.
    let mut rest = Vec::new();
    for &c in &[d, g4] {
        let whole = msg(ty::READ, 950, 0, &z(&[b"/a"]));
        let cut = 1 + r.below(whole.len() as u64 - 1) as usize;
        h.e.feed(c, &whole[..cut]).unwrap();
        rest.push((c, whole[cut..].to_vec()));
    }
    (h, s, rest)
}

#[test]
fn dump_restore_dump_is_byte_identical() {
    for seed in 1..13u64 {
        let (mut h, _, _) = random_state(seed, 40 * seed as usize);
        let first = h.e.dump();
        assert_eq!(h.e.dump(), first, "seed {seed}: dumping twice");
        let mut u = h.updated();
        assert_eq!(u.e.check(), Ok(()));
        assert_eq!(u.e.dump(), first, "seed {seed}");
    }
}

/// Every connection's queued output, raw.
fn all_output(h: &mut H, conns: &[ConnId]) -> Vec<Vec<u8>> {
    conns
        .iter()
        .map(|&c| {
            let mut out = Vec::new();
            h.e.output_all(c, &mut out);
            out
        })
        .collect()
}

#[test]
fn restored_engine_answers_as_the_original() {
    let mut open_at_update = 0;
    for seed in 1..9u64 {
        let (mut h, s, rest) = random_state(seed, 25 * seed as usize);
        open_at_update += s.txs.len();
        let mut u = h.updated();
        let conns = s.conns;
        assert_eq!(all_output(&mut u, &conns), all_output(&mut h, &conns));
        // The partial requests complete the same way.
        for (c, rest) in &rest {
            h.e.feed(*c, rest).unwrap();
            u.e.feed(*c, rest).unwrap();
        }
        assert_eq!(all_output(&mut u, &conns), all_output(&mut h, &conns));
        let (mut s1, mut s2) = (s.clone(), s);
        for step in 1000..1300 {
            h.p.now.set(step as u64 * 7);
            u.p.now.set(step as u64 * 7);
            let a = s1.step(&mut h, step);
            let b = s2.step(&mut u, step);
            assert_eq!(a, b, "seed {seed} step {step}");
        }
        assert_eq!(all_output(&mut u, &conns), all_output(&mut h, &conns));
        assert_eq!(u.e.dump(), h.e.dump(), "seed {seed}");
    }
    assert!(
        open_at_update >= 4,
        "{open_at_update} transactions open at the updates"
    );
}

#[test]
fn partial_requests_complete_after_the_update() {
    let mut h = H::new();
    let d = h.dom0();
    assert_eq!(h.write(d, "/a", b"hello"), ok());
    let whole = msg(ty::READ, 7, 0, &z(&[b"/a"]));
    h.e.feed(d, &whole[..10]).unwrap();
    let mut u = h.updated();
    u.e.feed(d, &whole[10..]).unwrap();
    let got = u.drain(d);
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].ty, got[0].req_id, &got[0].payload[..]),
        (ty::READ, 7, &b"hello"[..])
    );
}

#[test]
fn partly_sent_reply_resumes_where_it_stopped() {
    let mut h = H::new();
    let d = h.dom0();
    h.e.feed(d, &msg(ty::READ, 7, 0, &z(&[b"/tool"]))).unwrap();
    h.e.feed(d, &msg(ty::GET_PERMS, 8, 0, &z(&[b"/tool"])))
        .unwrap();
    let mut first = [0u8; 6];
    assert_eq!(h.e.output_into(d, &mut first), 6);
    let mut u = h.updated();
    let mut rest = Vec::new();
    u.e.output_all(d, &mut rest);
    let mut orig = Vec::new();
    h.e.output_all(d, &mut orig);
    assert_eq!(rest, orig);
    let mut whole = first.to_vec();
    whole.extend_from_slice(&rest);
    let mut expect = msg(ty::READ, 7, 0, b"");
    expect.extend(msg(ty::GET_PERMS, 8, 0, b"n0\0"));
    assert_eq!(whole, expect);
}

/// A transaction that read `/a` and wrote `/b` before the update; `outside` changes `/a`
/// meanwhile (on whichever engine). The commit answers as it would have without the update.
fn commit_across_update(outside: bool) {
    let mut h = H::new();
    let d = h.dom0();
    let g = h.guest(3);
    h.home(d, 3);
    assert_eq!(h.write(g, "a", b"1"), ok());
    let t = h.tx_start(g);
    assert_eq!(h.call(g, ty::READ, t, b"a\0"), Ok(b"1".to_vec()));
    assert_eq!(h.call(g, ty::WRITE, t, b"b\0two"), ok());
    assert_eq!(h.call(g, ty::MKDIR, t, b"c/d/e\0"), ok());
    let mut u = h.updated();
    for x in [&mut h, &mut u] {
        if outside {
            assert_eq!(x.write(d, "/local/domain/3/a", b"2"), ok());
        }
        assert_eq!(x.call(g, ty::READ, t, b"b\0"), Ok(b"two".to_vec()));
        assert_eq!(x.call(g, ty::DIRECTORY, t, b"c/d\0"), Ok(b"e\0".to_vec()));
        let end = x.call(g, ty::TRANSACTION_END, t, b"T\0");
        if outside {
            assert_eq!(end, err("EAGAIN"));
            assert_eq!(x.read(g, "b"), err("ENOENT"));
        } else {
            assert_eq!(end, ok());
            assert_eq!(x.read(g, "b"), Ok(b"two".to_vec()));
            assert_eq!(x.read(g, "c/d/e"), Ok(Vec::new()));
        }
        assert_eq!(x.e.check(), Ok(()));
    }
    assert_eq!(u.e.dump(), h.e.dump());
}

#[test]
fn transaction_commits_across_the_update() {
    commit_across_update(false);
}

#[test]
fn transaction_conflicts_across_the_update() {
    commit_across_update(true);
}

#[test]
fn rings_are_adopted_not_introduced_again() {
    let mut h = H::new();
    let d = h.dom0();
    assert_eq!(h.args(d, ty::INTRODUCE, &["5", "4321", "9"]), ok());
    assert_eq!(h.args(d, ty::SET_TARGET, &["5", "0"]), ok());
    let g = h.e.domain_connection(5).unwrap();
    let u = h.updated();
    assert_eq!(*u.p.adopted.borrow(), [(g, 5, 4321, 9)]);
    assert!(u.p.introduced.borrow().is_empty());
    assert_eq!(u.e.domain_connection(5), Some(g));
    assert_eq!(u.e.connection_domid(d), Some(0));
}

#[test]
fn a_platform_that_cannot_adopt_refuses_the_restore() {
    struct NoAdopt(TestPlatform);
    impl Platform for NoAdopt {
        fn introduce(&mut self, c: ConnId, d: u32, m: u64, p: u32) -> Result<(), Error> {
            self.0.introduce(c, d, m, p)
        }
        fn reintroduce(&mut self, c: ConnId, d: u32, p: u32) -> Result<(), Error> {
            self.0.reintroduce(c, d, p)
        }
        fn release(&mut self, c: ConnId, d: u32) {
            self.0.release(c, d)
        }
        fn domain_exists(&mut self, d: u32) -> bool {
            self.0.domain_exists(d)
        }
        fn now_ms(&self) -> u64 {
            0
        }
        fn log(&mut self, _: &str) {}
    }
    let mut h = H::new();
    h.guest(3);
    let stream = h.e.dump();
    let r = Engine::restore(NoAdopt(TestPlatform::default()), Config::default(), &stream);
    let e = r.err().unwrap();
    assert_eq!(e.what, "the platform could not adopt the ring");
    assert_eq!(e.record, Some(rec::CONNECTION_DATA));
    // Without rings, the default is no obstacle.
    let h = &mut H::new();
    h.dom0();
    let stream = h.e.dump();
    assert!(Engine::restore(NoAdopt(TestPlatform::default()), Config::default(), &stream).is_ok());
}

/// A small stream with one of everything.
fn small_stream() -> Vec<u8> {
    let mut h = H::new();
    let d = h.dom0();
    let g = h.guest(3);
    h.home(d, 3);
    assert_eq!(h.args(g, ty::WATCH, &["x", "tok", "2"]), ok());
    let _ = h.events(g);
    let t = h.tx_start(g);
    assert_eq!(h.call(g, ty::WRITE, t, b"x/y\0v"), ok());
    h.e.feed(d, &msg(ty::READ, 1, 0, b"/lo")[..19]).unwrap();
    h.e.feed(g, &msg(ty::WRITE, 2, 0, b"x\0w")).unwrap();
    h.e.dump()
}

fn restore(stream: &[u8]) -> Result<Engine<TestPlatform>, RestoreError> {
    Engine::restore(TestPlatform::default(), Config::default(), stream)
}

#[test]
fn truncated_streams_are_refused() {
    let s = small_stream();
    assert!(restore(&s).is_ok());
    for len in 0..s.len() {
        assert!(restore(&s[..len]).is_err(), "length {len}");
    }
    let msg = |len: usize| restore(&s[..len]).err().unwrap().to_string();
    assert_eq!(
        msg(0),
        "state stream: not a xenstore state stream (offset 0)"
    );
    assert_eq!(msg(12), "state stream: truncated header (offset 12)");
    assert_eq!(
        msg(16),
        "state stream: truncated record header (no END) (offset 16)"
    );
    assert_eq!(
        msg(20),
        "state stream: truncated record header (no END) (offset 16)"
    );
    assert_eq!(
        msg(24),
        "state stream: record longer than the stream (GLOBAL_DATA record, offset 16)"
    );
}

#[test]
fn corrupted_streams_are_refused_or_consistent() {
    let s = small_stream();
    let mut r = Rng(0x1234_5678_9abc_def1);
    let (mut refused, mut accepted) = (0, 0);
    for _ in 0..4000 {
        let mut bad = s.clone();
        for _ in 0..1 + r.below(3) {
            let i = r.below(bad.len() as u64) as usize;
            bad[i] = match r.below(3) {
                0 => bad[i] ^ (1 << r.below(8)),
                1 => r.next() as u8,
                _ => 0xFF,
            };
        }
        match restore(&bad) {
            Err(e) => {
                assert!(!e.to_string().is_empty());
                refused += 1;
            }
            Ok(mut e) => {
                assert_eq!(e.check(), Ok(()));
                // It serves requests (from every connection) and dumps again.
                let c = e.new_connection(0);
                let conns = [Some(c), e.domain_connection(3)];
                for c in conns.into_iter().flatten() {
                    for m in [
                        msg(ty::DIRECTORY, 1, 0, b"/\0"),
                        msg(ty::WRITE, 2, 0, b"x/z\0v"),
                        msg(ty::TRANSACTION_END, 3, 1, b"T\0"),
                    ] {
                        let _ = e.feed(c, &m);
                    }
                }
                e.tick();
                let again = e.dump();
                assert!(restore(&again).is_ok());
                accepted += 1;
            }
        }
    }
    assert!(
        refused > 1000 && accepted > 100,
        "{refused} refused, {accepted} accepted"
    );
}

/// Xen's own records only, version 1: no ferrostore record, no depth.
fn xen_v1_stream(extra_watch: bool) -> Vec<u8> {
    let mut s = b"xenstore".to_vec();
    s.extend(1u32.to_be_bytes());
    s.extend(0u32.to_be_bytes());
    let mut record = |ty: u32, body: &[u8]| {
        s.extend(ty.to_le_bytes());
        s.extend((body.len() as u32).to_le_bytes());
        s.extend(body);
        s.resize(s.len().next_multiple_of(8), 0);
    };
    // A ring connection for dom3 (no target, port 11) with a pending event.
    let mut conn = Vec::new();
    conn.extend(1u32.to_le_bytes());
    conn.extend([0, 0, 0, 0]);
    conn.extend(3u16.to_le_bytes());
    conn.extend(0x7FF4u16.to_le_bytes());
    conn.extend(11u32.to_le_bytes());
    let event = msg(ty::WATCH_EVENT, 0, 0, b"/old\0t\0");
    conn.extend(0u16.to_le_bytes());
    conn.extend(0u16.to_le_bytes());
    conn.extend((event.len() as u32).to_le_bytes());
    conn.extend(&event);
    record(rec::CONNECTION_DATA, &conn);
    let mut watch = Vec::new();
    watch.extend(1u32.to_le_bytes());
    watch.extend(5u16.to_le_bytes());
    watch.extend(2u16.to_le_bytes());
    watch.extend(b"home\0t\0");
    record(rec::WATCH_DATA, &watch);
    if extra_watch {
        let mut w = Vec::new();
        w.extend(1u32.to_le_bytes());
        w.extend(2u16.to_le_bytes());
        w.extend(2u16.to_le_bytes());
        w.extend([1, 0, 0, 0]);
        w.extend(b"/\0u\0");
        record(rec::WATCH_DATA_EXTENDED, &w);
    }
    for (path, owner) in [
        ("/", 0u16),
        ("/local", 0),
        ("/local/domain", 0),
        ("/local/domain/3", 3),
        ("/local/domain/3/home", 3),
    ] {
        let mut n = Vec::new();
        n.extend([0; 8]);
        n.extend((path.len() as u16 + 1).to_le_bytes());
        n.extend(2u16.to_le_bytes());
        n.extend(0u16.to_le_bytes());
        n.extend(1u16.to_le_bytes());
        n.extend([b'r', 0]);
        n.extend(owner.to_le_bytes());
        n.extend(path.as_bytes());
        n.push(0);
        n.extend(b"hi");
        record(rec::NODE_DATA, &n);
    }
    record(rec::END, &[]);
    s
}

#[test]
fn version_1_streams_are_read() {
    let p = TestPlatform::default();
    let mut e = Engine::restore(p.clone(), Config::default(), &xen_v1_stream(false)).unwrap();
    assert_eq!(*p.adopted.borrow(), [(0, 3, 0, 11)]);
    let mut h = H {
        e,
        p,
        rid: 1,
        stash: Default::default(),
    };
    let g = h.e.domain_connection(3).unwrap();
    assert_eq!(h.events(g), ["/old|t|"]);
    assert_eq!(h.read(g, "home"), Ok(b"hi".to_vec()));
    assert_eq!(h.args(g, ty::GET_PERMS, &["home"]), Ok(b"r3\0".to_vec()));
    assert_eq!(h.write(g, "home/x", b"1"), ok());
    assert_eq!(h.events(g), ["home/x|t|"]);
    let d = h.dom0();
    assert_eq!(h.args(d, ty::GET_FEATURE, &["3"]), Ok(b"7\0".to_vec()));
    e = restore(&h.e.dump()).unwrap();
    assert_eq!(e.check(), Ok(()));
    let r = restore(&xen_v1_stream(true)).err().unwrap();
    assert_eq!(
        r.to_string(),
        "state stream: WATCH_DATA_EXTENDED in a version 1 stream (WATCH_DATA_EXTENDED record, offset 104)"
    );
}

#[test]
fn malformed_records_are_named() {
    let s = small_stream();
    // The GLOBAL_DATA record's type turned into an unknown one.
    let mut bad = s.clone();
    bad[16] = 0x63;
    assert_eq!(
        restore(&bad).err().unwrap().to_string(),
        "state stream: unknown record type (unknown record, offset 24)"
    );
    let mut bad = s.clone();
    bad[8..12].copy_from_slice(&3u32.to_be_bytes());
    assert_eq!(
        restore(&bad).err().unwrap().to_string(),
        "state stream: unsupported version (offset 8)"
    );
    let mut bad = s.clone();
    bad.extend([0; 8]);
    assert_eq!(
        restore(&bad).err().unwrap().to_string(),
        format!("state stream: data after END (offset {})", s.len())
    );
}

#[test]
fn stream_size_of_a_10000_node_store() {
    let mut h = H::new();
    let d = h.dom0();
    for i in 0..100 {
        for j in 0..97 {
            let p = format!("/local/domain/{i}/device/vif/{j}");
            let v = format!("value-{i}-{j}");
            h.e.feed(
                d,
                &msg(
                    ty::WRITE,
                    1,
                    0,
                    &[p.as_bytes(), b"\0", v.as_bytes()].concat(),
                ),
            )
            .unwrap();
        }
        let _ = h.drain(d);
    }
    let nodes = h.e.node_count();
    let stream = h.e.dump();
    std::println!("{nodes} nodes: stream of {} bytes", stream.len());
    assert_eq!(nodes, 10_005);
    // About 80 bytes a node for paths like /local/domain/42/device/vif/17.
    assert_eq!(stream.len(), 795_216);
    let mut u = h.updated();
    assert_eq!(u.e.dump(), stream);
}
