//! Remaining XSA cases from the test list (the others sit next to the rule they test:
//! 38/ring, 72/DIRECTORY, 115, 322/417, 323, 324, 352, 353, 414, 415, 418, 419, 420, 421,
//! 440, 481, 484).

use super::*;
use crate::ring::{self, RingPage};
use alloc::format;
use alloc::vec;

#[test]
fn xsa233_guest_and_its_stub_die_together() {
    let mut h = H::new();
    let c = h.dom0();
    let g5 = h.guest(5);
    let _g6 = h.guest(6);
    h.home(c, 5);
    assert_eq!(h.args(c, ty::SET_TARGET, &["6", "5"]), ok());
    assert_eq!(h.write(g5, "x", b""), ok());
    h.e.domain_gone(5);
    h.e.domain_gone(6);
    h.e.domain_gone(6);
    assert_eq!(h.e.domain_connection(6), None);
    assert_eq!(h.e.check(), Ok(()));
}

#[test]
fn xsa272_default_node_quota_is_enforced() {
    let mut h = H::new();
    let c = h.dom0();
    let g = h.guest(5);
    h.home(c, 5);
    // Spread over 10 directories: a parent's record (its child names) is limited too.
    for i in 0..989 {
        assert_eq!(
            h.write(g, &format!("d{}/n{i}", i % 10), b""),
            ok(),
            "node {i}"
        );
    }
    assert_eq!(h.e.nodes_owned(5), 1000);
    assert_eq!(h.write(g, "one-more", b""), err("ENOSPC"));
}

#[test]
fn xsa325_garbage_on_the_ring_still_gets_release_domain() {
    let mut h = H::new();
    let c = h.dom0();
    let g = h.guest(5);
    assert_eq!(h.args(c, ty::WATCH, &["@releaseDomain", "r"]), ok());
    assert_eq!(h.events(c), ["@releaseDomain|r|"]);
    let mut page = vec![0u8; 4096];
    ring::reset(page.as_mut_slice(), crate::FEATURES);
    let junk = [0xffu8; 64];
    page[..64].copy_from_slice(&junk);
    page.as_mut_slice().store_u32(ring::REQ_PROD, 64);
    assert_eq!(
        ring::service(&mut h.e, g, page.as_mut_slice()).error,
        Some(ring::ERROR_PROTO)
    );
    h.e.domain_gone(5);
    assert_eq!(h.events(c), ["@releaseDomain|r|"]);
}

#[test]
fn xsa330_reset_watches_really_drops_them() {
    let mut h = H::new();
    let c = h.dom0();
    let g = h.guest(5);
    h.home(c, 5);
    for round in 0..3 {
        for i in 0..129 {
            assert_eq!(
                h.args(g, ty::WATCH, &[&format!("w{i}"), "t"]),
                ok(),
                "round {round}"
            );
        }
        assert_eq!(h.args(g, ty::WATCH, &["w-extra", "t"]), err("E2BIG"));
        assert_eq!(h.events(g).len(), 129);
        assert_eq!(h.call(g, ty::RESET_WATCHES, 0, b"\0"), ok());
    }
}

#[test]
fn xsa326_unread_events_stay_bounded() {
    let mut h = H::new();
    let c = h.dom0();
    let g = h.guest(5);
    h.home(c, 5);
    assert_eq!(
        h.args(c, ty::SET_PERMS, &["/local/domain/5", "n5", "r0"]),
        ok()
    );
    // 128 watches with ~4 KB tokens: every write makes ~512 KB of events.
    let pad = "x".repeat(4000);
    for i in 0..128 {
        assert_eq!(
            h.args(g, ty::WATCH, &["/local/domain/5", &format!("{i:03}{pad}")]),
            ok()
        );
    }
    let _ = h.events(g);
    for i in 0..100 {
        assert_eq!(h.write(c, &format!("/local/domain/5/n{i}"), b""), ok());
    }
    let mut raw = Vec::new();
    h.e.output_all(g, &mut raw);
    // About 50 MB of events were generated; what stayed queued fits the domain's 2.5 MiB
    // memory quota (together with its nodes) and fills it.
    let quota = 2560 * 1024;
    assert!(raw.len() <= quota, "{} bytes queued", raw.len());
    assert!(raw.len() > quota - 16 * 1024, "{} bytes queued", raw.len());
    let mut pos = 0;
    while let Some(hd) = raw.get(pos..).and_then(Header::parse) {
        assert_eq!(hd.ty, ty::WATCH_EVENT);
        pos += HEADER_LEN + hd.len as usize;
    }
    assert_eq!(pos, raw.len());
}

#[test]
fn xsa483_reused_domid_gets_a_fresh_quota() {
    let mut h = H::new();
    let c = h.dom0();
    let g = h.guest(5);
    h.home(c, 5);
    assert_eq!(h.args(c, ty::SET_QUOTA, &["5", "nodes", "3"]), ok());
    assert_eq!(h.write(g, "a", b""), ok());
    assert_eq!(h.write(g, "b", b""), ok());
    assert_eq!(h.write(g, "c", b""), err("ENOSPC"));
    h.e.domain_gone(5);
    let g = h.guest(5);
    h.home(c, 5);
    assert_eq!(
        h.args(c, ty::GET_QUOTA, &["5", "nodes"]),
        Ok(b"1000\0".to_vec())
    );
    for i in 0..10 {
        assert_eq!(h.write(g, &format!("n{i}"), b""), ok());
    }
    assert_eq!(h.e.nodes_owned(5), 11);
}
