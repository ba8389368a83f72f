//! Domain registry, special watches, back-pressure, rate limits and timeouts.

use super::*;
use crate::FEATURES;
use alloc::format;
use alloc::vec;

#[test]
fn introduce_release_and_special_watches() {
    let mut h = H::new();
    let c = h.dom0();
    assert_eq!(h.args(c, ty::WATCH, &["@introduceDomain", "i"]), ok());
    assert_eq!(h.args(c, ty::WATCH, &["@releaseDomain", "r"]), ok());
    assert_eq!(h.args(c, ty::WATCH, &["@releaseDomain", "r1", "1"]), ok());
    assert_eq!(h.args(c, ty::WATCH, &["@releaseDomain/7", "only7"]), ok());
    assert_eq!(
        h.events(c),
        [
            "@introduceDomain|i|",
            "@releaseDomain|r|",
            "@releaseDomain|r1|",
            "@releaseDomain/7|only7|"
        ]
    );
    assert_eq!(h.one(c, ty::IS_DOMAIN_INTRODUCED, "7"), Ok(b"F\0".to_vec()));
    assert_eq!(h.args(c, ty::INTRODUCE, &["7", "1234", "9"]), ok());
    assert_eq!(h.events(c), ["@introduceDomain|i|"]);
    assert_eq!(h.one(c, ty::IS_DOMAIN_INTRODUCED, "7"), Ok(b"T\0".to_vec()));
    assert_eq!(h.one(c, ty::IS_DOMAIN_INTRODUCED, "0"), Ok(b"T\0".to_vec()));
    assert_eq!(
        h.one(c, ty::IS_DOMAIN_INTRODUCED, "32752"),
        Ok(b"T\0".to_vec())
    );
    let g = h.e.domain_connection(7).unwrap();
    assert_eq!(h.p.introduced.borrow().as_slice(), [(g, 7)]);
    // Re-introduce: no new connection, no event; the connection is reset.
    assert_eq!(h.args(g, ty::WATCH, &["x", "t"]), ok());
    assert_eq!(h.args(c, ty::INTRODUCE, &["7", "1234", "9"]), ok());
    assert_eq!(h.events(c), Vec::<String>::new());
    assert_eq!(h.e.domain_connection(7), Some(g));
    assert!(!h.e.has_output(g));
    assert_eq!(h.args(g, ty::UNWATCH, &["x", "t"]), err("ENOENT"));
    // Shutdown fires once until RESUME.
    h.e.domain_shutdown(7);
    assert_eq!(
        h.events(c),
        [
            "@releaseDomain|r|",
            "@releaseDomain/7|r1|",
            "@releaseDomain/7|only7|"
        ]
    );
    h.e.domain_shutdown(7);
    assert_eq!(h.events(c), Vec::<String>::new());
    assert_eq!(h.one(c, ty::RESUME, "7"), ok());
    h.e.domain_shutdown(7);
    assert_eq!(h.events(c).len(), 3);
    assert_eq!(h.one(c, ty::RELEASE, "7"), ok());
    assert_eq!(
        h.events(c),
        [
            "@releaseDomain|r|",
            "@releaseDomain/7|r1|",
            "@releaseDomain/7|only7|"
        ]
    );
    assert_eq!(h.one(c, ty::IS_DOMAIN_INTRODUCED, "7"), Ok(b"F\0".to_vec()));
    assert_eq!(h.one(c, ty::RELEASE, "7"), err("ENOENT"));
    assert_eq!(h.p.released.borrow().as_slice(), [(g, 7)]);
    assert_eq!(
        h.e.feed(g, &msg(ty::READ, 1, 0, b"/\0")),
        Err(crate::ConnError::Closed)
    );
    h.e.domain_gone(8);
    assert_eq!(h.events(c), Vec::<String>::new());
    // The host introducing a domain itself fires the event at once.
    assert_eq!(h.e.introduce(9, 0, 3), Ok(()));
    assert_eq!(h.events(c), ["@introduceDomain|i|"]);
    assert_eq!(h.e.introduce(9, 0, 0), Err(crate::Error::Inval));
    assert_eq!(h.e.introduce(0x7FF0, 0, 3), Err(crate::Error::Inval));
}

#[test]
fn features_and_domain_paths() {
    let mut h = H::new();
    let c = h.dom0();
    let _g = h.guest(3);
    assert_eq!(
        h.one(c, ty::GET_FEATURE, "3"),
        Ok(alloc::format!("{FEATURES}\0").into_bytes())
    );
    assert_eq!(h.args(c, ty::SET_FEATURE, &["3", "1"]), ok());
    assert_eq!(h.one(c, ty::GET_FEATURE, "3"), Ok(b"1\0".to_vec()));
    assert_eq!(h.e.domain_features(3), 1);
    assert_eq!(h.args(c, ty::SET_FEATURE, &["3", "64"]), err("EINVAL"));
    assert_eq!(h.one(c, ty::GET_FEATURE, "4"), err("ENOENT"));
    assert_eq!(
        h.one(c, ty::GET_DOMAIN_PATH, "12"),
        Ok(b"/local/domain/12\0".to_vec())
    );
    assert_eq!(
        h.one(c, ty::GET_DOMAIN_PATH, "abc"),
        Ok(b"/local/domain/0\0".to_vec())
    );
}

#[test]
fn outstanding_replies_apply_back_pressure() {
    let mut h = H::new();
    let g = h.guest(3);
    let mut batch = Vec::new();
    for i in 0..20 {
        batch.extend(msg(ty::GET_DOMAIN_PATH, i, 0, b"3\0"));
    }
    assert!(h.e.wants_input(g));
    h.e.feed(g, &batch).unwrap();
    assert!(!h.e.wants_input(g));
    let mut one = [0u8; 32];
    assert_eq!(h.e.output_into(g, &mut one), 32);
    assert_eq!(&one[16..], b"/local/domain/3\0");
    assert!(h.e.wants_input(g));
    h.e.feed(g, &batch[..16 + 2]).unwrap();
    assert!(!h.e.wants_input(g));
    let rest = h.drain(g);
    assert_eq!(rest.len(), 20);
    assert!(h.e.wants_input(g));
    let d = h.dom0();
    h.e.feed(d, &batch).unwrap();
    assert!(h.e.wants_input(d));
}

/// Writes from `g` (to `k`) accepted while the engine wants its input.
fn writes_until_paused(h: &mut H, g: ConnId) -> usize {
    let mut n = 0;
    while h.e.wants_input(g) {
        assert_eq!(h.write(g, "k", b"v"), ok());
        n += 1;
        assert!(n < 10_000, "never limited");
    }
    n
}

#[test]
fn write_rate_limit_applies_while_a_transaction_is_open() {
    let mut h = H::new();
    let c = h.dom0();
    let g = h.guest(3);
    assert_eq!(h.write(c, "/local/domain/3", b""), ok());
    assert_eq!(h.args(c, ty::SET_PERMS, &["/local/domain/3", "n3"]), ok());
    // The new domain took a burst of 10 writes from the reserve. Each node write costs
    // one; with a transaction open the credit may go negative, which pauses the input.
    let t = h.call(c, ty::TRANSACTION_START, 0, b"\0").unwrap();
    assert_eq!(t, b"1\0");
    // "k" is new: the node and its parent, 2 writes; then 1 each.
    assert_eq!(writes_until_paused(&mut h, g), 10);
    assert_eq!(h.call(c, ty::TRANSACTION_END, 1, b"F\0"), ok());
    // With no transaction open a domain is never held back (as C) but its writes use up
    // what it earns, so it cannot save a burst for when a transaction opens.
    h.p.now.set(h.p.now.get() + 5);
    for _ in 0..100 {
        assert_eq!(h.write(g, "k", b"v"), ok());
    }
    assert!(h.e.wants_input(g));
    h.p.now.set(h.p.now.get() + 50);
    for _ in 0..100 {
        assert_eq!(h.write(g, "k", b"v"), ok());
    }
    let t = h.call(c, ty::TRANSACTION_START, 0, b"\0").unwrap();
    assert_eq!(t, b"2\0");
    assert_eq!(writes_until_paused(&mut h, g), 1);
    // One domain earns 200 writes/s: 1 write per 5 ms.
    h.p.now.set(h.p.now.get() + 4);
    assert!(!h.e.wants_input(g));
    h.p.now.set(h.p.now.get() + 1);
    assert!(h.e.wants_input(g));
    // Creating a/b/c writes 3 new nodes and their parent: 4 writes, 20 ms to earn back.
    assert_eq!(h.write(g, "a/b/c", b""), ok());
    h.p.now.set(h.p.now.get() + 19);
    assert!(!h.e.wants_input(g));
    h.p.now.set(h.p.now.get() + 1);
    assert!(h.e.wants_input(g));
    // Reads are free; dom0 is never limited.
    for _ in 0..50 {
        assert_eq!(h.read(g, "k"), Ok(b"v".to_vec()));
    }
    assert!(h.e.wants_input(g));
    assert!(h.e.wants_input(c));
    // Writes inside the guest's own transaction are charged like writes outside: they
    // cannot grow a transaction faster than the domain's write rate. Its commit costs one.
    h.p.now.set(h.p.now.get() + 1000);
    assert!(h.e.wants_input(g));
    let gt = h.call(g, ty::TRANSACTION_START, 0, b"\0").unwrap();
    assert_eq!(gt, b"1\0");
    let mut n = 0;
    while h.e.wants_input(g) {
        assert_eq!(h.call(g, ty::WRITE, 1, format!("t{n}\0x").as_bytes()), ok());
        n += 1;
        assert!(n < 100, "transaction writes never paused");
    }
    // What it earned and could borrow from the reserve, then no more.
    assert!((9..200).contains(&n), "paused after {n} writes");
    h.p.now.set(h.p.now.get() + 1000);
    assert!(h.e.wants_input(g));
    assert_eq!(h.call(g, ty::TRANSACTION_END, 1, b"T\0"), ok());
    // With no transaction open, nothing is charged any more.
    assert_eq!(h.call(c, ty::TRANSACTION_END, 2, b"F\0"), ok());
    h.p.now.set(h.p.now.get() + 5);
    for _ in 0..100 {
        assert_eq!(h.write(g, "k", b"v"), ok());
    }
    assert!(h.e.wants_input(g));
}

#[test]
fn write_rate_credit_of_idle_domains_goes_to_the_reserve() {
    let mut h = H::new();
    let c = h.dom0();
    let g = h.guest(3);
    let _idle = h.guest(4);
    assert_eq!(h.write(c, "/local/domain/3", b""), ok());
    assert_eq!(h.args(c, ty::SET_PERMS, &["/local/domain/3", "n3"]), ok());
    assert_eq!(h.write(g, "k", b""), ok());
    assert_eq!(
        h.call(c, ty::TRANSACTION_START, 0, b"\0"),
        Ok(b"1\0".to_vec())
    );
    // Two domains share 200 writes/s. After 1 s each earned 100 writes; what exceeds the
    // burst of 10 went to the reserve (which had lent 20 to the new domains): 178 writes
    // for whoever is in debt. Domain 3 has 8 left of its burst (creating "k" cost 2).
    h.p.now.set(1000);
    h.e.tick();
    assert_eq!(writes_until_paused(&mut h, g), 10 + 178 + 1);
    // Domain 3 now earns 100 writes/s: one per 10 ms.
    h.p.now.set(1009);
    assert!(!h.e.wants_input(g));
    h.p.now.set(1010);
    assert!(h.e.wants_input(g));
}

#[test]
fn stale_events_for_guests_time_out() {
    let mut h = H::new();
    let c = h.dom0();
    let g = h.guest(3);
    assert_eq!(h.write(c, "/local/domain/3", b""), ok());
    assert_eq!(h.args(c, ty::SET_PERMS, &["/local/domain/3", "n3"]), ok());
    assert_eq!(h.args(g, ty::WATCH, &["/local/domain/3", "t"]), ok());
    assert_eq!(h.events(g), ["/local/domain/3|t|"]);
    assert_eq!(h.write(c, "/local/domain/3", b"1"), ok());
    assert_eq!(h.args(c, ty::WATCH, &["/local/domain/3", "t"]), ok());
    h.p.now.set(19_999);
    h.e.tick();
    assert!(h.e.has_output(g));
    h.p.now.set(20_000);
    h.e.tick();
    assert!(!h.e.has_output(g));
    assert_eq!(h.events(c), ["/local/domain/3|t|"]);
}

#[test]
fn close_and_reset_connections() {
    let mut h = H::new();
    let c = h.dom0();
    assert_eq!(h.args(c, ty::WATCH, &["/a", "t"]), ok());
    assert_eq!(h.events(c), ["/a|t|"]);
    h.e.close_connection(c);
    assert_eq!(
        h.e.feed(c, &msg(ty::READ, 1, 0, b"/\0")),
        Err(crate::ConnError::Closed)
    );
    let d = h.dom0();
    assert_eq!(d, c);
    assert_eq!(h.write(d, "/a", b""), ok());
    assert_eq!(h.events(d), Vec::<String>::new());
    assert_eq!(
        h.e.take_ready(),
        Vec::<ConnId>::new(),
        "its output was taken"
    );
    assert_eq!(h.e.feed(d, &msg(ty::READ, 2, 0, b"/a\0")), Ok(()));
    assert_eq!(h.e.take_ready(), vec![d]);
    assert_eq!(h.e.take_ready(), Vec::<ConnId>::new());
}

#[test]
fn queued_output_is_charged_to_the_memory_quota() {
    let mut h = H::new();
    let c = h.dom0();
    let g = h.guest(5);
    let value = [b'v'; 80];
    assert_eq!(h.write(c, "/m", &value), ok());
    assert_eq!(h.args(c, ty::SET_PERMS, &["/m", "n0", "r5"]), ok());
    assert_eq!(h.args(c, ty::SET_QUOTA, &["5", "memory", "300"]), ok());
    let token = "t".repeat(60);
    assert_eq!(h.args(g, ty::WATCH, &["/m", &token]), ok());
    assert_eq!(h.events(g).len(), 1);
    // Each event is 16 + 3 + 61 = 80 bytes: three fit in 300 bytes, the rest are dropped.
    for i in 0..5 {
        assert_eq!(h.write(c, &format!("/m/{i}"), b""), ok());
    }
    // A reply over 16 bytes that does not fit is ENOMEM; a short one is always sent; the
    // new watch's first event does not fit either.
    h.e.feed(g, &msg(ty::READ, 1, 0, b"/m\0")).unwrap();
    h.e.feed(g, &msg(ty::GET_DOMAIN_PATH, 2, 0, b"5\0"))
        .unwrap();
    h.e.feed(g, &msg(ty::WATCH, 3, 0, b"/m/0\0s\0")).unwrap();
    let msgs = h.drain(g);
    let shown: Vec<(u32, String)> = msgs.iter().map(|m| (m.ty, show(&m.payload))).collect();
    let ev = |p: &str| (ty::WATCH_EVENT, format!("{p}|{token}|"));
    assert_eq!(
        shown,
        [
            ev("/m/0"),
            ev("/m/1"),
            ev("/m/2"),
            (ty::ERROR, String::from("ENOMEM|")),
            (ty::GET_DOMAIN_PATH, String::from("/local/domain/5|")),
            (ty::WATCH, String::from("OK|")),
        ]
    );
    // Once the output is taken, events and replies flow again.
    assert_eq!(h.read(g, "/m"), Ok(value.to_vec()));
    assert_eq!(h.write(c, "/m/5", b""), ok());
    assert_eq!(h.events(g), [format!("/m/5|{token}|")]);
}
