//! Core protocol: paths, nodes, directories, bad input, watches, transactions.

use super::*;
use crate::engine::ConnError;
use alloc::format;
use alloc::vec;

#[test]
fn initial_tree() {
    let mut h = H::new();
    let c = h.dom0();
    assert_eq!(h.one(c, ty::DIRECTORY, "/"), Ok(b"tool\0".to_vec()));
    assert_eq!(
        h.one(c, ty::DIRECTORY, "/tool"),
        Ok(b"xenstored\0".to_vec())
    );
    assert_eq!(
        h.one(c, ty::GET_PERMS, "/tool/xenstored"),
        Ok(b"n0\0".to_vec())
    );
    assert_eq!(h.one(c, ty::GET_PERMS, "/"), Ok(b"n0\0".to_vec()));
    assert_eq!(h.read(c, "/tool"), Ok(vec![]));
    assert_eq!(h.e.check(), Ok(()));
}

#[test]
fn write_read_mkdir_rm() {
    let mut h = H::new();
    let c = h.dom0();
    assert_eq!(h.write(c, "/a/b/c", b"v\0x"), ok());
    assert_eq!(h.read(c, "/a/b/c"), Ok(b"v\0x".to_vec()));
    assert_eq!(h.read(c, "/a/b"), Ok(vec![]));
    assert_eq!(h.write(c, "/a/e", b""), ok());
    assert_eq!(h.read(c, "/a/e"), Ok(vec![]));
    assert_eq!(h.one(c, ty::MKDIR, "/a/d"), ok());
    assert_eq!(h.write(c, "/a/b/c", b"new"), ok());
    assert_eq!(h.one(c, ty::MKDIR, "/a/b/c"), ok());
    assert_eq!(h.read(c, "/a/b/c"), Ok(b"new".to_vec()));
    assert_eq!(h.one(c, ty::DIRECTORY, "/a"), Ok(b"b\0e\0d\0".to_vec()));
    assert_eq!(h.one(c, ty::RM, "/a/b"), ok());
    assert_eq!(h.read(c, "/a/b/c"), err("ENOENT"));
    assert_eq!(h.one(c, ty::RM, "/a/b"), ok());
    assert_eq!(h.one(c, ty::RM, "/a/b/c"), err("ENOENT"));
    assert_eq!(h.one(c, ty::RM, "/"), err("EINVAL"));
    assert_eq!(h.read(c, "/nope"), err("ENOENT"));
    assert_eq!(h.one(c, ty::DIRECTORY, "/nope"), err("ENOENT"));
    assert_eq!(h.e.check(), Ok(()));
}

#[test]
fn relative_paths_are_under_the_domain_home() {
    let mut h = H::new();
    let c = h.dom0();
    assert_eq!(h.write(c, "x", b"1"), ok());
    assert_eq!(h.read(c, "/local/domain/0/x"), Ok(b"1".to_vec()));
    let g = h.guest(3);
    assert_eq!(h.write(c, "/local/domain/3", b""), ok());
    assert_eq!(h.args(c, ty::SET_PERMS, &["/local/domain/3", "n3"]), ok());
    assert_eq!(h.write(g, "data/k", b"v"), ok());
    assert_eq!(h.read(c, "/local/domain/3/data/k"), Ok(b"v".to_vec()));
    assert_eq!(
        h.one(g, ty::GET_DOMAIN_PATH, "3"),
        Ok(b"/local/domain/3\0".to_vec())
    );
}

#[test]
fn bad_input_answers_with_errors() {
    let mut h = H::new();
    let c = h.dom0();
    let cases: &[(u32, &[u8], &str)] = &[
        (ty::READ, b"", "EINVAL"),
        (ty::READ, b"/tool", "EINVAL"),
        (ty::READ, b"/a\0b\0", "EINVAL"),
        (ty::READ, b"\0", "EINVAL"),
        (ty::READ, b"/tool/\0", "EINVAL"),
        (ty::READ, b"//\0", "EINVAL"),
        (ty::READ, b"/a//b\0", "EINVAL"),
        (ty::READ, b"/a b\0", "EINVAL"),
        (ty::READ, b"/a\xff\0", "EINVAL"),
        (ty::READ, b"@foo\0", "EINVAL"),
        (ty::READ, b"/local/domain/\0", "EINVAL"),
        (ty::READ, b"/local/domain/x\0", "ENOENT"),
        (ty::READ, b"/local/domain/99999999999\0", "ENOENT"),
        (ty::WRITE, b"/novalue", "EINVAL"),
        (ty::WATCH, b"/a\0", "EINVAL"),
        (ty::WATCH, b"//\0t\0", "EINVAL"),
        (ty::WATCH, b"/a\0t\0x\0", "EINVAL"),
        (ty::UNWATCH, b"/a\0t\0", "ENOENT"),
        (ty::UNWATCH, b"/a//b\0t\0", "EINVAL"),
        (ty::UNWATCH, b"@foo\0t\0", "ENOENT"),
        (ty::TRANSACTION_END, b"X\0", "EINVAL"),
        (ty::SET_PERMS, b"/tool\0", "EINVAL"),
        (ty::SET_PERMS, b"/tool\0x0\0", "EINVAL"),
        (ty::SET_PERMS, b"@foo\0n0\0", "ENOENT"),
        (ty::GET_PERMS, b"@foo\0", "ENOENT"),
        (ty::GET_PERMS, b"@releaseDomain/5\0", "ENOENT"),
        (ty::DIRECTORY_PART, b"/tool\0", "EINVAL"),
        (ty::INTRODUCE, b"5\x001\0", "EINVAL"),
        (ty::INTRODUCE, b"5\x001\x000\0", "EINVAL"),
        (ty::RELEASE, b"0\0", "EINVAL"),
        (ty::RELEASE, b"5\0", "ENOENT"),
        (ty::RESUME, b"5\0", "ENOENT"),
        (ty::SET_TARGET, b"1\0", "EINVAL"),
        (ty::CONTROL, b"bogus\0", "EINVAL"),
        (ty::CONTROL, b"", "EINVAL"),
        (ty::WATCH_EVENT, b"x\0", "ENOSYS"),
        (ty::ERROR, b"x\0", "ENOSYS"),
        (20, b"", "ENOSYS"),
        (27, b"", "ENOSYS"),
        (0xFFFF, b"", "ENOSYS"),
    ];
    for (t, p, e) in cases {
        assert_eq!(h.call(c, *t, 0, p), err(e), "type {t} payload {p:?}");
    }
    assert_eq!(h.call(c, ty::TRANSACTION_END, 0, b"T\0"), err("ENOENT"));
    assert_eq!(h.e.check(), Ok(()));
}

#[test]
fn path_limits() {
    let mut h = H::new();
    let c = h.dom0();
    let g = h.guest(5);
    h.home(c, 5);
    // As current C: a privileged caller has no path limit (but the payload's).
    let long = format!("/{}", "a".repeat(3999));
    assert_eq!(h.write(c, &long, b""), ok());
    // A guest's `path-max` quota (2048) bounds the part below its home, or the whole path
    // elsewhere.
    let home = format!("/local/domain/5/{}/{}", "b".repeat(1000), "b".repeat(1047));
    assert_eq!(h.write(g, &home, b""), ok());
    assert_eq!(h.write(g, &format!("{home}b"), b""), err("EINVAL"));
    let rel = format!("{}/{}", "r".repeat(1000), "r".repeat(1047));
    assert_eq!(h.write(g, &rel, b""), ok());
    assert_eq!(h.write(g, &format!("{rel}r"), b""), err("EINVAL"));
    let other = format!("/{}", "a".repeat(2047));
    assert_eq!(h.read(g, &other), err("EACCES"));
    assert_eq!(h.read(g, &format!("{other}a")), err("EINVAL"));
    assert_eq!(
        h.args(g, ty::WATCH, &[&format!("@{}", "w".repeat(2047)), "t"]),
        ok()
    );
    assert_eq!(
        h.args(g, ty::WATCH, &[&format!("@{}", "w".repeat(2048)), "t"]),
        err("EINVAL")
    );
    // Special nodes: their permissions are read like a node's.
    assert_eq!(
        h.one(c, ty::GET_PERMS, "@releaseDomain"),
        Ok(b"n0\0".to_vec())
    );
    assert_eq!(h.one(g, ty::GET_PERMS, "@releaseDomain"), err("EACCES"));
    assert_eq!(
        h.args(c, ty::SET_PERMS, &["@releaseDomain", "n0", "r5"]),
        ok()
    );
    assert_eq!(
        h.one(g, ty::GET_PERMS, "@releaseDomain"),
        Ok(b"n0\0r5\0".to_vec())
    );
}

#[test]
fn oversized_header_closes_only_that_connection() {
    let mut h = H::new();
    let bad = h.dom0();
    let good = h.dom0();
    let mut m = msg(ty::READ, 1, 0, b"/tool\0");
    m[12..16].copy_from_slice(&4097u32.to_le_bytes());
    assert_eq!(h.e.feed(bad, &m), Err(ConnError::Proto));
    assert_eq!(
        h.e.feed(bad, &msg(ty::READ, 1, 0, b"/tool\0")),
        Err(ConnError::Closed)
    );
    assert_eq!(h.read(good, "/tool"), Ok(vec![]));
    let mut huge = msg(ty::READ, 1, 0, b"");
    huge[12..16].copy_from_slice(&0x4000_0000u32.to_le_bytes());
    assert_eq!(h.e.feed(good, &huge), Err(ConnError::Proto));
}

#[test]
fn partial_messages_wait_for_the_rest() {
    let mut h = H::new();
    let c = h.dom0();
    let m = msg(ty::WRITE, 9, 0, b"/p\0val");
    for b in &m[..m.len() - 1] {
        h.e.feed(c, core::slice::from_ref(b)).unwrap();
        assert!(!h.e.has_output(c));
    }
    h.e.feed(c, &m[m.len() - 1..]).unwrap();
    assert_eq!(
        h.drain(c),
        vec![Msg {
            ty: ty::WRITE,
            req_id: 9,
            tx_id: 0,
            payload: b"OK\0".to_vec()
        }]
    );
    // Two requests in one chunk, and a zero-length payload.
    let mut two = msg(ty::READ, 1, 0, b"/p\0");
    two.extend(msg(ty::READ, 2, 0, b""));
    h.e.feed(c, &two).unwrap();
    let out = h.drain(c);
    assert_eq!(out[0].payload, b"val");
    assert_eq!(
        out[1],
        Msg {
            ty: ty::ERROR,
            req_id: 2,
            tx_id: 0,
            payload: b"EINVAL\0".to_vec()
        }
    );
}

#[test]
fn directory_too_big_and_directory_part() {
    let mut h = H::new();
    let c = h.dom0();
    let mut names = Vec::new();
    for i in 0..300 {
        let n = format!("child-number-{i:04}");
        assert_eq!(h.write(c, &format!("/big/{n}"), b""), ok());
        names.push(n);
    }
    assert_eq!(h.one(c, ty::DIRECTORY, "/big"), err("E2BIG"));
    let mut all = Vec::new();
    let mut off = 0usize;
    loop {
        let r = h
            .args(c, ty::DIRECTORY_PART, &["/big", &format!("{off}")])
            .unwrap();
        assert!(r.len() <= 4096);
        let gen_end = r.iter().position(|&b| b == 0).unwrap();
        let body = &r[gen_end + 1..];
        if body == b"\0" {
            break;
        }
        let last = body.ends_with(b"\0\0");
        let body = if last { &body[..body.len() - 1] } else { body };
        off += body.len();
        all.extend_from_slice(body);
        if last {
            break;
        }
    }
    let expect: Vec<u8> = names.iter().flat_map(|n| n.bytes().chain([0])).collect();
    assert_eq!(all, expect);
    let gen = h.e.check();
    assert_eq!(gen, Ok(()));
    let r = h.args(c, ty::DIRECTORY_PART, &["/big", "999999"]).unwrap();
    assert!(r.ends_with(b"\0\0") && !r[..r.len() - 2].contains(&0));
    let r = h.args(c, ty::DIRECTORY_PART, &["/tool", "0"]).unwrap();
    assert!(r.ends_with(b"\0xenstored\0\0"));
}

#[test]
fn deep_tree_rm_is_iterative() {
    let mut h = H::new();
    let c = h.dom0();
    let mut p = String::new();
    for _ in 0..1000 {
        p.push_str("/d");
    }
    assert_eq!(h.write(c, &p, b"leaf"), ok());
    assert_eq!(h.e.node_count(), 3 + 1000);
    assert_eq!(h.one(c, ty::RM, "/d"), ok());
    assert_eq!(h.e.node_count(), 3);
    assert_eq!(h.e.check(), Ok(()));
}

#[test]
fn watches_fire_on_registration_changes_and_deletion() {
    let mut h = H::new();
    let c = h.dom0();
    let w = h.dom0();
    assert_eq!(h.args(w, ty::WATCH, &["/a", "tok"]), ok());
    assert_eq!(h.events(w), ["/a|tok|"]);
    assert_eq!(h.args(w, ty::WATCH, &["/a", "tok"]), err("EEXIST"));
    assert_eq!(h.args(w, ty::WATCH, &["/a/b/c", "exact"]), ok());
    assert_eq!(h.events(w), ["/a/b/c|exact|"]);
    assert_eq!(h.write(c, "/a/b/c", b"1"), ok());
    assert_eq!(h.events(w), ["/a/b/c|tok|", "/a/b/c|exact|"]);
    assert_eq!(h.write(c, "/other", b"1"), ok());
    assert_eq!(h.events(w), Vec::<String>::new());
    assert_eq!(h.read(c, "/a/b/c"), Ok(b"1".to_vec()));
    assert_eq!(h.events(w), Vec::<String>::new());
    assert_eq!(h.args(c, ty::SET_PERMS, &["/a/b", "b0"]), ok());
    assert_eq!(h.events(w), ["/a/b|tok|"]);
    assert_eq!(h.one(c, ty::RM, "/a/b"), ok());
    assert_eq!(h.events(w), ["/a/b/c|exact|", "/a/b|tok|"]);
    assert_eq!(h.args(w, ty::UNWATCH, &["/a", "tok"]), ok());
    assert_eq!(h.args(w, ty::UNWATCH, &["/a", "tok"]), err("ENOENT"));
    assert_eq!(h.write(c, "/a/x", b""), ok());
    assert_eq!(h.events(w), Vec::<String>::new());
}

#[test]
fn events_precede_the_reply_of_the_writer() {
    let mut h = H::new();
    let c = h.dom0();
    assert_eq!(h.args(c, ty::WATCH, &["/w", "t"]), ok());
    assert_eq!(h.events(c), ["/w|t|"]);
    let out = h.send(c, ty::WRITE, 0, b"/w/a\0x");
    assert_eq!(out.len(), 2);
    assert_eq!(
        (out[0].ty, show(&out[0].payload)),
        (ty::WATCH_EVENT, String::from("/w/a|t|"))
    );
    assert_eq!(
        (out[1].ty, out[1].payload.clone()),
        (ty::WRITE, b"OK\0".to_vec())
    );
}

#[test]
fn relative_watch_gets_relative_events_and_root_watch_sees_all() {
    let mut h = H::new();
    let c = h.dom0();
    assert_eq!(h.args(c, ty::WATCH, &["rel/x", "t"]), ok());
    assert_eq!(h.args(c, ty::WATCH, &["/", "root"]), ok());
    assert_eq!(h.events(c), ["rel/x|t|", "/|root|"]);
    assert_eq!(h.write(c, "/local/domain/0/rel/x/y", b"v"), ok());
    assert_eq!(h.events(c), ["rel/x/y|t|", "/local/domain/0/rel/x/y|root|"]);
}

#[test]
fn watch_depth_limits_levels() {
    let mut h = H::new();
    let c = h.dom0();
    assert_eq!(h.args(c, ty::WATCH, &["/d", "t0", "0"]), ok());
    assert_eq!(h.args(c, ty::WATCH, &["/d", "t1", "1"]), ok());
    assert_eq!(h.events(c), ["/d|t0|", "/d|t1|"]);
    assert_eq!(h.write(c, "/d", b""), ok());
    assert_eq!(h.events(c), ["/d|t0|", "/d|t1|"]);
    assert_eq!(h.write(c, "/d/a", b""), ok());
    assert_eq!(h.events(c), ["/d/a|t1|"]);
    assert_eq!(h.write(c, "/d/a/b", b""), ok());
    assert_eq!(h.events(c), Vec::<String>::new());
    assert_eq!(
        h.args(c, ty::WATCH, &["@releaseDomain", "t", "2"]),
        err("EINVAL")
    );
}

#[test]
fn identical_pending_events_are_coalesced() {
    let mut h = H::new();
    let c = h.dom0();
    let w = h.dom0();
    assert_eq!(h.args(w, ty::WATCH, &["/a", "t"]), ok());
    for _ in 0..3 {
        assert_eq!(h.write(c, "/a", b"x"), ok());
    }
    assert_eq!(h.write(c, "/a/b", b"x"), ok());
    // The registration event was taken with the WATCH reply; the three writes coalesce.
    assert_eq!(h.events(w), ["/a|t|", "/a|t|", "/a/b|t|"]);
}

#[test]
fn huge_token_event_is_dropped_not_sent() {
    let mut h = H::new();
    let c = h.dom0();
    let tok = "t".repeat(4000);
    let p = format!("/{}", "p".repeat(50));
    assert_eq!(h.args(c, ty::WATCH, &[&p, &tok]), ok());
    assert_eq!(h.events(c), [format!("{p}|{tok}|")]);
    assert_eq!(h.write(c, &format!("{p}/{}", "c".repeat(100)), b""), ok());
    assert_eq!(h.events(c), Vec::<String>::new());
    assert_eq!(h.write(c, &p, b"x"), ok());
    assert_eq!(h.events(c), [format!("{p}|{tok}|")]);
}

#[test]
fn transactions_isolate_and_commit() {
    let mut h = H::new();
    let c = h.dom0();
    let w = h.dom0();
    assert_eq!(h.write(c, "/t/a", b"1"), ok());
    assert_eq!(h.args(w, ty::WATCH, &["/t", "t"]), ok());
    assert_eq!(h.events(w), ["/t|t|"]);
    assert_eq!(
        h.call(c, ty::TRANSACTION_START, 0, b"\0"),
        Ok(b"1\0".to_vec())
    );
    assert_eq!(
        h.call(c, ty::TRANSACTION_START, 0, b"\0"),
        Ok(b"2\0".to_vec())
    );
    assert_eq!(h.call(c, ty::TRANSACTION_START, 1, b"\0"), err("EBUSY"));
    assert_eq!(h.call(c, ty::TRANSACTION_START, 9, b"\0"), err("ENOENT"));
    assert_eq!(h.call(c, ty::READ, 9, b"/t/a\0"), err("ENOENT"));
    assert_eq!(h.call(c, ty::WRITE, 1, b"/t/a\0two"), ok());
    assert_eq!(h.call(c, ty::WRITE, 1, b"/t/new/x\0n"), ok());
    assert_eq!(h.call(c, ty::READ, 1, b"/t/a\0"), Ok(b"two".to_vec()));
    assert_eq!(h.read(c, "/t/a"), Ok(b"1".to_vec()));
    assert_eq!(h.read(c, "/t/new/x"), err("ENOENT"));
    assert_eq!(h.call(c, ty::READ, 2, b"/t/a\0"), Ok(b"1".to_vec()));
    assert_eq!(h.events(w), Vec::<String>::new());
    assert_eq!(h.call(c, ty::TRANSACTION_END, 1, b"T\0"), ok());
    assert_eq!(h.events(w), ["/t/a|t|", "/t/new/x|t|"]);
    assert_eq!(h.read(c, "/t/new/x"), Ok(b"n".to_vec()));
    assert_eq!(h.call(c, ty::READ, 2, b"/t/a\0"), Ok(b"1".to_vec()));
    assert_eq!(h.call(c, ty::TRANSACTION_END, 2, b"T\0"), err("EAGAIN"));
    assert_eq!(h.call(c, ty::TRANSACTION_END, 2, b"T\0"), err("ENOENT"));
    assert_eq!(h.e.check(), Ok(()));
}

#[test]
fn commit_conflicts_only_on_nodes_the_transaction_used() {
    let mut h = H::new();
    let c = h.dom0();
    assert_eq!(h.write(c, "/x/a", b"1"), ok());
    assert_eq!(h.write(c, "/x/b", b"1"), ok());
    assert_eq!(
        h.call(c, ty::TRANSACTION_START, 0, b"\0"),
        Ok(b"1\0".to_vec())
    );
    assert_eq!(h.call(c, ty::READ, 1, b"/x/a\0"), Ok(b"1".to_vec()));
    assert_eq!(h.call(c, ty::WRITE, 1, b"/x/c\0new"), ok());
    // Unrelated outside changes: a sibling written, another node created.
    assert_eq!(h.write(c, "/x/b", b"2"), ok());
    assert_eq!(h.write(c, "/x/d", b"2"), ok());
    assert_eq!(h.call(c, ty::TRANSACTION_END, 1, b"T\0"), ok());
    assert_eq!(h.one(c, ty::DIRECTORY, "/x"), Ok(b"a\0b\0d\0c\0".to_vec()));
    // A node the transaction created is created outside first: conflict.
    assert_eq!(
        h.call(c, ty::TRANSACTION_START, 0, b"\0"),
        Ok(b"2\0".to_vec())
    );
    assert_eq!(h.call(c, ty::WRITE, 2, b"/x/e\0t"), ok());
    assert_eq!(h.write(c, "/x/e", b"o"), ok());
    assert_eq!(h.call(c, ty::TRANSACTION_END, 2, b"T\0"), err("EAGAIN"));
    assert_eq!(h.read(c, "/x/e"), Ok(b"o".to_vec()));
    // Abort discards; create-then-delete inside one transaction (XSA-421).
    assert_eq!(
        h.call(c, ty::TRANSACTION_START, 0, b"\0"),
        Ok(b"3\0".to_vec())
    );
    assert_eq!(h.call(c, ty::MKDIR, 3, b"/y/b\0"), ok());
    assert_eq!(h.call(c, ty::RM, 3, b"/y\0"), ok());
    assert_eq!(h.call(c, ty::TRANSACTION_END, 3, b"T\0"), ok());
    assert_eq!(h.read(c, "/y"), err("ENOENT"));
    assert_eq!(
        h.call(c, ty::TRANSACTION_START, 0, b"\0"),
        Ok(b"4\0".to_vec())
    );
    assert_eq!(h.call(c, ty::WRITE, 4, b"/z\0z"), ok());
    assert_eq!(h.call(c, ty::TRANSACTION_END, 4, b"F\0"), ok());
    assert_eq!(h.read(c, "/z"), err("ENOENT"));
    assert_eq!(h.e.check(), Ok(()));
}

#[test]
fn xsa440_two_transactions_delete_the_same_nodes() {
    let mut h = H::new();
    let c = h.dom0();
    for i in 0..50 {
        assert_eq!(h.write(c, &format!("/n/{i}"), b""), ok());
    }
    assert_eq!(
        h.call(c, ty::TRANSACTION_START, 0, b"\0"),
        Ok(b"1\0".to_vec())
    );
    assert_eq!(
        h.call(c, ty::TRANSACTION_START, 0, b"\0"),
        Ok(b"2\0".to_vec())
    );
    for t in [1, 2] {
        for i in 0..50 {
            assert_eq!(h.call(c, ty::RM, t, format!("/n/{i}\0").as_bytes()), ok());
        }
    }
    assert_eq!(h.call(c, ty::TRANSACTION_END, 1, b"T\0"), ok());
    assert_eq!(h.call(c, ty::TRANSACTION_END, 2, b"T\0"), err("EAGAIN"));
    assert_eq!(h.one(c, ty::DIRECTORY, "/n"), Ok(vec![]));
    assert_eq!(h.e.check(), Ok(()));
}

#[test]
fn reset_watches_drops_watches_and_transactions_even_inside_one() {
    let mut h = H::new();
    let c = h.dom0();
    assert_eq!(h.args(c, ty::WATCH, &["/r", "t"]), ok());
    assert_eq!(h.events(c), ["/r|t|"]);
    assert_eq!(
        h.call(c, ty::TRANSACTION_START, 0, b"\0"),
        Ok(b"1\0".to_vec())
    );
    assert_eq!(h.call(c, ty::RESET_WATCHES, 1, b""), ok());
    assert_eq!(h.call(c, ty::READ, 1, b"/tool\0"), err("ENOENT"));
    assert_eq!(h.write(c, "/r", b""), ok());
    assert_eq!(h.events(c), Vec::<String>::new());
    assert_eq!(
        h.call(c, ty::TRANSACTION_START, 0, b"\0"),
        Ok(b"2\0".to_vec())
    );
}

/// The harness's trace lines with request ids blanked (the harness numbers its requests).
fn traced(h: &H) -> Vec<String> {
    h.p.log
        .borrow()
        .iter()
        .map(|l| {
            let mut w: Vec<&str> = l.split(' ').collect();
            if let Some(i) = w.iter().position(|x| *x == "id") {
                if let Some(n) = w.get_mut(i + 1) {
                    *n = "_";
                }
            }
            w.join(" ")
        })
        .collect()
}

#[test]
fn log_on_traces_requests_replies_and_events_until_log_off() {
    let mut h = H::new();
    let c = h.dom0();
    let g = h.guest(3);
    assert_eq!(
        h.call(c, ty::WATCH, 0, &z(&[b"/a", b"t"])),
        Ok(b"OK\0".to_vec())
    );
    h.drain(c);
    assert_eq!(h.args(c, ty::CONTROL, &["log", "on"]), Ok(b"OK\0".to_vec()));
    h.p.log.borrow_mut().clear();
    assert_eq!(h.call(c, ty::WRITE, 0, b"/a\0v"), Ok(b"OK\0".to_vec()));
    assert_eq!(h.call(g, ty::READ, 0, b"/b\0"), Err("EACCES".into()));
    assert_eq!(
        h.args(c, ty::CONTROL, &["log", "off"]),
        Ok(b"OK\0".to_vec())
    );
    assert_eq!(h.call(c, ty::READ, 0, b"/a\0"), Ok(b"v".to_vec()));
    assert_eq!(
        traced(&h),
        [
            "IN  dom0 WRITE id _ tx 0 (/a v)",
            "EVT dom0 WATCH_EVENT id _ tx 0 (/a t )",
            "OUT dom0 WRITE id _ tx 0 (OK )",
            "IN  dom3 READ id _ tx 0 (/b )",
            "OUT dom3 ERROR id _ tx 0 (EACCES )",
            "IN  dom0 CONTROL id _ tx 0 (log off )",
        ]
    );
}

#[test]
fn control_commands() {
    let mut h = H::new();
    let c = h.dom0();
    assert_eq!(h.one(c, ty::CONTROL, "check"), Ok(b"OK\0".to_vec()));
    assert_eq!(h.args(c, ty::CONTROL, &["log", "on"]), Ok(b"OK\0".to_vec()));
    assert_eq!(
        h.args(c, ty::CONTROL, &["log", "off"]),
        Ok(b"OK\0".to_vec())
    );
    assert_eq!(
        h.args(c, ty::CONTROL, &["print", "hello"]),
        Ok(b"OK\0".to_vec())
    );
    assert_eq!(
        traced(&h),
        [
            "OUT dom0 CONTROL id _ tx 0 (OK )",
            "IN  dom0 CONTROL id _ tx 0 (log off )",
            "hello"
        ]
    );
    assert_eq!(
        h.one(c, ty::CONTROL, "quota"),
        Ok(b"Quota settings:\n\
nodes            :     1000 Nodes per domain\n\
watches          :      128 Watches per domain\n\
outstanding      :       20 Outstanding requests per domain\n\
memory           :  2621440 Total Xenstore memory per domain (error level)\n\
transactions     :       10 Active transactions per domain\n\
transaction-nodes:     1024 Max. number of accessed nodes per transaction\n\
node-permissions :        5 Max. number of permissions per node\n\
path-max         :     2048 Max. length of a node path\n\
node-size        :     2048 Max. size of a node\n\0"
            .to_vec())
    );
    assert_eq!(
        h.args(c, ty::CONTROL, &["quota", "set", "nodes", "7"]),
        Ok(b"OK\0".to_vec())
    );
    assert_eq!(
        h.args(c, ty::CONTROL, &["quota", "set", "bogus", "7"]),
        err("EINVAL")
    );
    assert_eq!(
        h.args(c, ty::CONTROL, &["quota", "0"]),
        Ok(b"Domain 0:\nnodes           :        3\nwatches         :        0\ntransactions    :        0\n\
outstanding     :        0\nmemory          :      111\n\0"
            .to_vec())
    );
    assert_eq!(
        h.one(c, ty::CONTROL, "quota-soft"),
        Ok(b"Quota settings:\nmemory           :  2097152 Total Xenstore memory per domain (warning level)\n\0".to_vec())
    );
    assert_eq!(
        h.one(c, ty::CONTROL, "help"),
        Ok(b"check           \nlog             [on|off]\n\
live-update     [-c <cmdline>] [-F] [-t <timeout>] <file>\n    Default timeout is 60 seconds.\n\
memreport       [<file>]\n\
print           <string>\nquota           [set <name> <val>|<domid>]\n\
quota-soft      [set <name> <val>]\nhelp            \n\0"
            .to_vec())
    );
    assert_eq!(
        h.one(c, ty::CONTROL, "memreport"),
        Ok(b"domain 0: 3 nodes, 111 bytes\nconnections: 1\n\0".to_vec())
    );
    // The host appends its own figures.
    h.p.mem
        .borrow_mut()
        .push_str("heap: 4096 bytes used of 65536\n");
    assert_eq!(
        h.one(c, ty::CONTROL, "memreport"),
        Ok(
            b"domain 0: 3 nodes, 111 bytes\nconnections: 1\nheap: 4096 bytes used of 65536\n\0"
                .to_vec()
        )
    );
    // A reply that would exceed 4096 bytes is E2BIG (C xenstored's send_reply).
    h.p.mem.borrow_mut().push_str(&"x".repeat(4096));
    assert_eq!(h.one(c, ty::CONTROL, "memreport"), err("E2BIG"));
}

#[test]
fn commit_events_come_in_c_order_once_per_node() {
    let mut h = H::new();
    let c = h.dom0();
    let w = h.dom0();
    assert_eq!(h.write(c, "/q/m", b""), ok());
    assert_eq!(h.args(w, ty::WATCH, &["/q", "a"]), ok());
    assert_eq!(h.events(w), ["/q|a|"]);
    assert_eq!(
        h.call(c, ty::TRANSACTION_START, 0, b"\0"),
        Ok(b"1\0".to_vec())
    );
    assert_eq!(h.call(c, ty::WRITE, 1, b"/q/t1\0a"), ok());
    assert_eq!(h.call(c, ty::WRITE, 1, b"/q/t1\0b"), ok());
    assert_eq!(h.call(c, ty::RM, 1, b"/q/m\0"), ok());
    assert_eq!(h.call(c, ty::SET_PERMS, 1, b"/q\0b0\0"), ok());
    assert_eq!(h.call(c, ty::RM, 1, b"/q/nothing/x\0"), err("ENOENT"));
    assert_eq!(h.call(c, ty::TRANSACTION_END, 1, b"T\0"), ok());
    assert_eq!(h.events(w), ["/q/t1|a|", "/q|a|", "/q/m|a|"]);
}

#[test]
fn commit_fails_if_the_parent_of_a_created_node_was_removed() {
    let mut h = H::new();
    let c = h.dom0();
    assert_eq!(h.write(c, "/p/a", b""), ok());
    assert_eq!(
        h.call(c, ty::TRANSACTION_START, 0, b"\0"),
        Ok(b"1\0".to_vec())
    );
    assert_eq!(h.call(c, ty::WRITE, 1, b"/p/a/b\0x"), ok());
    assert_eq!(h.call(c, ty::WRITE, 1, b"/p/a/b/c/d\0x"), ok());
    assert_eq!(h.call(c, ty::WRITE, 1, b"/p/a/b/c/e\0x"), ok());
    // A sibling created outside is not a conflict.
    assert_eq!(h.write(c, "/p/a/z", b""), ok());
    assert_eq!(
        h.call(c, ty::TRANSACTION_START, 0, b"\0"),
        Ok(b"2\0".to_vec())
    );
    assert_eq!(h.call(c, ty::WRITE, 2, b"/p/a/q\0x"), ok());
    assert_eq!(h.call(c, ty::TRANSACTION_END, 1, b"T\0"), ok());
    assert_eq!(h.one(c, ty::RM, "/p/a"), ok());
    assert_eq!(h.call(c, ty::TRANSACTION_END, 2, b"T\0"), err("EAGAIN"));
    assert_eq!(h.read(c, "/p/a"), err("ENOENT"));
    assert_eq!(h.e.check(), Ok(()));
}

#[test]
fn rm_events_follow_deletion_order() {
    let mut h = H::new();
    let c = h.dom0();
    for p in ["/o/a", "/o/b", "/o/a/x", "/o/c/y"] {
        assert_eq!(h.write(c, p, b""), ok());
    }
    for p in ["/o", "/o/a", "/o/b", "/o/a/x", "/o/c", "/o/c/y"] {
        assert_eq!(h.args(c, ty::WATCH, &[p, "w"]), ok());
    }
    assert_eq!(h.events(c).len(), 6);
    assert_eq!(h.one(c, ty::RM, "/o"), ok());
    assert_eq!(
        h.events(c),
        [
            "/o/a/x|w|",
            "/o/a|w|",
            "/o/b|w|",
            "/o/c/y|w|",
            "/o/c|w|",
            "/o|w|"
        ]
    );
}

#[test]
fn requests_are_counted_whatever_their_answer() {
    let mut h = H::new();
    let c = h.dom0();
    let g = h.guest(3);
    let before = h.e.requests();
    assert_eq!(h.call(c, ty::WRITE, 0, b"/a\0v"), Ok(b"OK\0".to_vec()));
    assert_eq!(h.call(g, ty::READ, 0, b"/a\0"), Err("EACCES".into()));
    assert_eq!(h.call(c, ty::READ, 0, b"/a\0"), Ok(b"v".to_vec()));
    assert_eq!(h.e.requests() - before, 3);
}

#[test]
fn watch_events_are_counted_once_each_as_queued() {
    let mut h = H::new();
    let c = h.dom0();
    let d = h.dom0();
    assert_eq!(h.call(c, ty::WATCH, 0, b"/w\0t\0"), ok());
    assert_eq!(h.call(d, ty::WATCH, 0, b"/w\0u\0"), ok());
    assert_eq!(h.events(c), ["/w|t|"]);
    assert_eq!(h.events(d), ["/w|u|"]);
    let before = h.e.events();
    assert_eq!(h.call(c, ty::WRITE, 0, b"/w/x\0v"), ok());
    assert_eq!(h.e.events() - before, 2);
    assert_eq!(h.events(c), ["/w/x|t|"]);
    assert_eq!(h.events(d), ["/w/x|u|"]);
}

#[test]
fn a_connection_whose_output_was_taken_at_once_is_not_ready() {
    // The stub's own connections (log device, metrics vif) take each reply with
    // output_all as they call; were they left ready, the dispatcher would hand them back on
    // every pass and the log device would re-read its backend's state each time.
    let mut h = H::new();
    let c = h.dom0();
    assert_eq!(h.e.take_ready(), Vec::<ConnId>::new());
    assert_eq!(h.e.feed(c, &msg(ty::READ, 1, 0, b"/\0")), Ok(()));
    let mut out = Vec::new();
    h.e.output_all(c, &mut out);
    assert!(!out.is_empty());
    assert_eq!(h.e.take_ready(), Vec::<ConnId>::new());
    assert_eq!(h.e.feed(c, &msg(ty::READ, 2, 0, b"/\0")), Ok(()));
    assert_eq!(h.e.take_ready(), vec![c]);
}
