//! Domain registry, special watches, back-pressure, rate limits and timeouts.

use super::*;
use crate::FEATURES;
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

#[test]
fn write_rate_limit_pauses_input_until_credit_returns() {
    let mut h = H::new();
    let c = h.dom0();
    let g = h.guest(3);
    assert_eq!(h.write(c, "/local/domain/3", b""), ok());
    assert_eq!(h.args(c, ty::SET_PERMS, &["/local/domain/3", "n3"]), ok());
    let mut n = 0;
    while h.e.wants_input(g) {
        assert_eq!(h.write(g, "k", b"v"), ok());
        n += 1;
        assert!(n < 1000, "never limited");
    }
    assert_eq!(n, 51);
    h.p.now.set(h.p.now.get() + 10);
    assert!(h.e.wants_input(g));
    assert_eq!(h.write(g, "k", b"v"), ok());
    assert_eq!(h.write(g, "k", b"v"), ok());
    assert!(!h.e.wants_input(g));
    // Reads are not charged; dom0 is never limited.
    assert!(h.e.wants_input(c));
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
    assert_eq!(h.e.take_ready(), vec![d]);
    assert_eq!(h.e.take_ready(), Vec::<ConnId>::new());
}
