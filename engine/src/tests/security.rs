//! Permissions, quotas and the XSA cases that concern them.

use super::*;
use alloc::format;
use alloc::vec;

/// dom0 connection plus guest `domid` with a home `/local/domain/<domid>` it owns.
fn setup(h: &mut H, domid: u32) -> (ConnId, ConnId) {
    let c = h.dom0();
    let g = h.guest(domid);
    let home = format!("/local/domain/{domid}");
    assert_eq!(h.write(c, &home, b""), ok());
    assert_eq!(
        h.args(c, ty::SET_PERMS, &[&home, &format!("n{domid}")]),
        ok()
    );
    (c, g)
}

#[test]
fn guest_permissions() {
    let mut h = H::new();
    let (c, g) = setup(&mut h, 5);
    assert_eq!(h.read(g, "/tool"), err("EACCES"));
    assert_eq!(h.read(g, "/tool/nope"), err("EACCES"));
    assert_eq!(h.read(g, "/nope"), err("EACCES"));
    assert_eq!(h.write(g, "/x", b""), err("EACCES"));
    assert_eq!(h.one(g, ty::RM, "/tool"), err("EACCES"));
    assert_eq!(h.one(g, ty::RM, "/"), err("EACCES"));
    assert_eq!(h.one(c, ty::RM, "/"), err("EINVAL"));
    assert_eq!(h.one(g, ty::DIRECTORY, "/"), err("EACCES"));
    assert_eq!(h.args(g, ty::SET_PERMS, &["/", "b5"]), err("EACCES"));
    // A missing owner is ENOENT before the path is validated (as C).
    assert_eq!(h.args(c, ty::SET_PERMS, &["/bad/", "w2000"]), err("ENOENT"));
    assert_eq!(h.read(g, "nope"), err("ENOENT"));
    assert_eq!(h.write(g, "a/b", b"1"), ok());
    assert_eq!(
        h.one(c, ty::GET_PERMS, "/local/domain/5/a/b"),
        Ok(b"n5\0".to_vec())
    );
    // Readable-by-all node, write-only for domain 6.
    assert_eq!(h.write(c, "/pub", b"p"), ok());
    assert_eq!(h.args(c, ty::SET_PERMS, &["/pub", "r0", "w5"]), ok());
    assert_eq!(h.read(g, "/pub"), err("EACCES"));
    assert_eq!(h.write(g, "/pub", b"q"), ok());
    assert_eq!(h.args(c, ty::SET_PERMS, &["/pub", "r0"]), ok());
    assert_eq!(h.read(g, "/pub"), Ok(b"q".to_vec()));
    assert_eq!(h.read(g, "/pub/nope"), err("ENOENT"));
    assert_eq!(h.write(g, "/pub", b"z"), err("EACCES"));
    // Guest-created child of a node it may write: owned by the guest.
    assert_eq!(h.args(c, ty::SET_PERMS, &["/pub", "b0"]), ok());
    assert_eq!(h.write(g, "/pub/mine", b""), ok());
    assert_eq!(h.one(c, ty::GET_PERMS, "/pub/mine"), Ok(b"b5\0".to_vec()));
    // Owner may set permissions but not give the node away (XSA-352).
    assert_eq!(h.args(g, ty::SET_PERMS, &["/pub/mine", "n5", "r0"]), ok());
    assert_eq!(h.args(g, ty::SET_PERMS, &["/pub/mine", "n0"]), err("EPERM"));
    assert_eq!(h.args(g, ty::SET_PERMS, &["/pub", "n5"]), err("EACCES"));
    assert_eq!(h.args(c, ty::SET_PERMS, &["/pub/mine", "n7"]), ok());
    assert_eq!(h.one(c, ty::GET_PERMS, "/pub/mine"), Ok(b"n7\0".to_vec()));
    assert_eq!(h.e.check(), Ok(()));
}

#[test]
fn set_target_grants_the_targets_access() {
    let mut h = H::new();
    let (c, _g5) = setup(&mut h, 5);
    let g6 = h.guest(6);
    assert_eq!(h.write(c, "/local/domain/5/d", b"v"), ok());
    assert_eq!(h.read(g6, "/local/domain/5/d"), err("EACCES"));
    assert_eq!(h.args(g6, ty::SET_TARGET, &["6", "5"]), err("EACCES"));
    assert_eq!(h.args(c, ty::SET_TARGET, &["6", "5"]), ok());
    assert_eq!(h.read(g6, "/local/domain/5/d"), Ok(b"v".to_vec()));
    assert_eq!(h.write(g6, "/local/domain/5/d", b"w"), ok());
    assert_eq!(h.args(c, ty::SET_TARGET, &["9", "5"]), err("ENOENT"));
}

#[test]
fn xsa115_watch_events_need_read_access() {
    let mut h = H::new();
    let (c, g) = setup(&mut h, 5);
    assert_eq!(h.args(g, ty::WATCH, &["/", "all"]), ok());
    assert_eq!(h.args(g, ty::WATCH, &["@releaseDomain", "rel"]), ok());
    assert_eq!(h.args(g, ty::WATCH, &["@introduceDomain", "intro"]), ok());
    assert_eq!(
        h.events(g),
        ["/|all|", "@releaseDomain|rel|", "@introduceDomain|intro|"]
    );
    assert_eq!(h.write(c, "/secret", b"s"), ok());
    assert_eq!(h.events(g), Vec::<String>::new());
    assert_eq!(h.write(c, "/local/domain/5/x", b""), ok());
    assert_eq!(h.events(g), ["/local/domain/5/x|all|"]);
    // Losing access through SET_PERMS still reports the change.
    assert_eq!(h.args(c, ty::SET_PERMS, &["/local/domain/5/x", "n0"]), ok());
    assert_eq!(h.events(g), ["/local/domain/5/x|all|"]);
    let _ = h.guest(7);
    assert_eq!(h.events(g), Vec::<String>::new());
    // Granting read on the special node lets the guest see it.
    assert_eq!(
        h.args(c, ty::SET_PERMS, &["@introduceDomain", "n0", "r5"]),
        ok()
    );
    let _ = h.guest(8);
    assert_eq!(h.events(g), ["@introduceDomain|intro|"]);
}

#[test]
fn xsa322_417_reused_domid_does_not_inherit_permissions() {
    let mut h = H::new();
    let c = h.dom0();
    let g = h.guest(5);
    assert_eq!(h.write(c, "/shared", b"s"), ok());
    assert_eq!(h.args(c, ty::SET_PERMS, &["/shared", "n0", "r5"]), ok());
    assert_eq!(h.read(g, "/shared"), Ok(b"s".to_vec()));
    assert_eq!(h.one(c, ty::RELEASE, "5"), ok());
    // The entry named a domain that is gone: purged (as current upstream).
    assert_eq!(h.one(c, ty::GET_PERMS, "/shared"), Ok(b"n0\0".to_vec()));
    let g = h.guest(5);
    assert_eq!(h.read(g, "/shared"), err("EACCES"));
    assert_eq!(h.write(c, "/shared", b"t"), ok());
    assert_eq!(h.one(c, ty::GET_PERMS, "/shared"), Ok(b"n0\0".to_vec()));
    assert_eq!(h.read(g, "/shared"), err("EACCES"));
    // Set anew, the entry names the new domain 5.
    assert_eq!(h.args(c, ty::SET_PERMS, &["/shared", "n0", "r5"]), ok());
    assert_eq!(h.read(g, "/shared"), Ok(b"t".to_vec()));
    // A domain that does not exist at all: ignored entry; as owner, ENOENT.
    assert_eq!(h.args(c, ty::SET_PERMS, &["/shared", "n0", "r4000"]), ok());
    assert_eq!(
        h.one(c, ty::GET_PERMS, "/shared"),
        Ok(b"n0\0r4000\0".to_vec())
    );
    assert_eq!(h.args(c, ty::WRITE, &["/shared/child"]), ok());
    assert_eq!(
        h.one(c, ty::GET_PERMS, "/shared/child"),
        Ok(b"n0\0r4000\0".to_vec())
    );
    assert_eq!(
        h.args(c, ty::SET_PERMS, &["/shared", "n4000"]),
        err("ENOENT")
    );
}

#[test]
fn xsa419_nodes_of_a_dead_domain_are_removed() {
    let mut h = H::new();
    let (c, g5) = setup(&mut h, 5);
    let _g6 = h.guest(6);
    assert_eq!(h.write(c, "/tool/x", b""), ok());
    assert_eq!(h.args(c, ty::SET_PERMS, &["/tool/x", "n0", "w5"]), ok());
    let before = h.e.node_count();
    assert_eq!(h.write(g5, "/tool/x/y/z", b"1"), ok());
    assert_eq!(h.write(g5, "data", b"1"), ok());
    assert_eq!(h.e.nodes_owned(5), 4);
    assert_eq!(h.args(c, ty::WATCH, &["@releaseDomain", "r"]), ok());
    assert_eq!(h.args(c, ty::WATCH, &["/tool/x", "t"]), ok());
    assert_eq!(h.events(c), ["@releaseDomain|r|", "/tool/x|t|"]);
    h.e.domain_gone(5);
    assert_eq!(h.events(c), ["/tool/x/y|t|", "@releaseDomain|r|"]);
    assert_eq!(h.e.node_count(), before - 1);
    assert_eq!(h.e.nodes_owned(5), 0);
    assert_eq!(h.read(c, "/tool/x"), Ok(vec![]));
    assert_eq!(h.read(c, "/local/domain/5"), err("ENOENT"));
    assert_eq!(h.p.released.borrow().as_slice(), [(g5, 5)]);
    assert_eq!(h.e.check(), Ok(()));
}

#[test]
fn node_and_size_quotas() {
    let mut h = H::new();
    let (c, g) = setup(&mut h, 5);
    assert_eq!(h.args(c, ty::SET_QUOTA, &["5", "nodes", "5"]), ok());
    assert_eq!(
        h.args(c, ty::GET_QUOTA, &["5", "nodes"]),
        Ok(b"5\0".to_vec())
    );
    assert_eq!(h.write(g, "a", b""), ok());
    assert_eq!(h.write(g, "b/c", b""), ok());
    // XSA-414: a create that would pass the quota part-way fails as a whole.
    assert_eq!(h.write(g, "d/e", b""), err("ENOSPC"));
    assert_eq!(h.read(g, "d"), err("ENOENT"));
    assert_eq!(h.write(g, "d", b""), ok());
    assert_eq!(h.write(g, "e", b""), err("ENOSPC"));
    assert_eq!(h.one(g, ty::RM, "d"), ok());
    assert_eq!(h.write(g, "e", b""), ok());
    // dom0 is not limited.
    for i in 0..10 {
        assert_eq!(h.write(c, &format!("/many/{i}"), b""), ok());
    }
    // Node size: 24 + 8 per permission + value + child names must stay below 2048.
    assert_eq!(h.args(c, ty::SET_QUOTA, &["5", "nodes", "100"]), ok());
    assert_eq!(h.write(g, "a", &[b'x'; 2048 - 24 - 8 - 1]), ok());
    assert_eq!(h.write(g, "a", &[b'x'; 2048 - 24 - 8]), err("ENOSPC"));
    assert_eq!(h.write(c, "/local/domain/5/a", &[b'x'; 4000]), ok());
    // Permissions per node.
    assert_eq!(
        h.args(g, ty::SET_PERMS, &["b", "n5", "r1", "r2", "r3", "r4"]),
        ok()
    );
    assert_eq!(
        h.args(g, ty::SET_PERMS, &["b", "n5", "r1", "r2", "r3", "r4", "r6"]),
        err("ENOSPC")
    );
    assert_eq!(
        h.args(
            c,
            ty::SET_PERMS,
            &["/local/domain/5/b", "n5", "r1", "r2", "r3", "r4", "r6"]
        ),
        ok()
    );
    assert_eq!(
        h.args(c, ty::SET_QUOTA, &["5", "bogus", "1"]),
        err("EINVAL")
    );
    assert_eq!(
        h.args(c, ty::SET_QUOTA, &["77", "nodes", "1"]),
        err("ENOENT")
    );
    assert_eq!(
        h.args(g, ty::SET_QUOTA, &["5", "nodes", "1000"]),
        err("EACCES")
    );
    assert_eq!(h.e.check(), Ok(()));
}

#[test]
fn watch_transaction_and_path_quotas() {
    let mut h = H::new();
    let (c, g) = setup(&mut h, 5);
    assert_eq!(h.args(c, ty::SET_QUOTA, &["5", "watches", "2"]), ok());
    for t in ["a", "b", "c"] {
        assert_eq!(h.args(g, ty::WATCH, &["w", t]), ok());
    }
    assert_eq!(h.args(g, ty::WATCH, &["w", "d"]), err("E2BIG"));
    assert_eq!(h.events(g).len(), 3);
    assert_eq!(h.args(c, ty::SET_QUOTA, &["5", "transactions", "1"]), ok());
    assert_eq!(
        h.call(g, ty::TRANSACTION_START, 0, b"\0"),
        Ok(b"1\0".to_vec())
    );
    assert_eq!(
        h.call(g, ty::TRANSACTION_START, 0, b"\0"),
        Ok(b"2\0".to_vec())
    );
    assert_eq!(h.call(g, ty::TRANSACTION_START, 0, b"\0"), err("ENOSPC"));
    assert_eq!(
        h.args(c, ty::SET_QUOTA, &["5", "transaction-nodes", "2"]),
        ok()
    );
    assert_eq!(h.call(g, ty::WRITE, 1, b"t1\0"), ok());
    assert_eq!(h.call(g, ty::WRITE, 1, b"t2\0"), ok());
    assert_eq!(h.call(g, ty::READ, 1, b"t1\0"), Ok(vec![]));
    assert_eq!(h.call(g, ty::WRITE, 1, b"t3\0"), err("ENOSPC"));
    assert_eq!(h.call(g, ty::TRANSACTION_END, 1, b"T\0"), ok());
    assert_eq!(h.read(g, "t2"), Ok(vec![]));
    assert_eq!(h.args(c, ty::SET_QUOTA, &["5", "path-max", "10"]), ok());
    assert_eq!(h.write(g, "0123456789", b""), ok());
    assert_eq!(h.write(g, "01234567890", b""), err("EINVAL"));
    // Nodes created inside a transaction count against the quota (XSA-415).
    assert_eq!(h.args(c, ty::SET_QUOTA, &["5", "nodes", "5"]), ok());
    assert_eq!(h.e.nodes_owned(5), 4);
    assert_eq!(h.call(g, ty::WRITE, 2, b"q/r\0"), err("ENOSPC"));
    assert_eq!(h.call(g, ty::WRITE, 2, b"q\0"), ok());
    assert_eq!(h.call(g, ty::TRANSACTION_END, 2, b"T\0"), ok());
    assert_eq!(h.e.nodes_owned(5), 5);
    assert_eq!(h.e.check(), Ok(()));
}

#[test]
fn unprivileged_callers_cannot_use_privileged_requests() {
    let mut h = H::new();
    let (_c, g) = setup(&mut h, 5);
    for (t, p) in [
        (ty::CONTROL, &b"check\0"[..]),
        (ty::INTRODUCE, b"9\x001\x001\0"),
        (ty::RELEASE, b"5\0"),
        (ty::IS_DOMAIN_INTRODUCED, b"5\0"),
        (ty::RESUME, b"5\0"),
        (ty::SET_TARGET, b"5\x000\0"),
        (ty::GET_FEATURE, b"5\0"),
        (ty::SET_FEATURE, b"5\x000\0"),
        (ty::GET_QUOTA, b"5\0nodes\0"),
        (ty::SET_QUOTA, b"5\0nodes\x001\0"),
    ] {
        assert_eq!(h.call(g, t, 0, p), err("EACCES"), "type {t}");
    }
}

#[test]
fn priv_domid_is_privileged() {
    let mut h = H::with(Config {
        priv_domid: Some(4),
        ..Config::default()
    });
    let g = h.guest(4);
    assert_eq!(h.read(g, "/tool/xenstored"), Ok(vec![]));
    assert_eq!(h.one(g, ty::CONTROL, "check"), Ok(b"OK\0".to_vec()));
}

#[test]
fn a_transaction_cannot_give_a_node_to_a_dead_domain() {
    let mut h = H::new();
    let c = h.dom0();
    let g = h.guest(5);
    let _ = g;
    // dom0's transaction makes /vm5 domain 5's; domain 5 goes before the commit.
    let t = h.tx_start(c);
    assert_eq!(h.call(c, ty::WRITE, t, b"/vm5\0secret"), ok());
    assert_eq!(h.call(c, ty::SET_PERMS, t, b"/vm5\0n5\0r7\0"), ok());
    assert_eq!(h.call(c, ty::WRITE, t, b"/shared\0s"), ok());
    assert_eq!(h.call(c, ty::SET_PERMS, t, b"/shared\0n0\0r5\0"), ok());
    assert_eq!(h.one(c, ty::RELEASE, "5"), ok());
    assert_eq!(h.call(c, ty::TRANSACTION_END, t, b"T\0"), ok());
    // Ownership passed to dom0, entries naming the dead domain are gone.
    assert_eq!(h.one(c, ty::GET_PERMS, "/vm5"), Ok(b"n0\0r7\0".to_vec()));
    assert_eq!(h.one(c, ty::GET_PERMS, "/shared"), Ok(b"n0\0".to_vec()));
    assert_eq!(h.args(c, ty::CONTROL, &["quota", "5"]), err("ENOENT"));
    // A new domain 5 neither reads, writes nor pays for them.
    let g = h.guest(5);
    assert_eq!(h.read(g, "/vm5"), err("EACCES"));
    assert_eq!(h.write(g, "/vm5", b"mine"), err("EACCES"));
    assert_eq!(h.read(g, "/shared"), err("EACCES"));
    assert_eq!(h.e.nodes_owned(5), 0);
    // The same in a transaction of a domain that is gone and back before the commit.
    let t = h.tx_start(c);
    assert_eq!(h.call(c, ty::WRITE, t, b"/vm5b\0x"), ok());
    assert_eq!(h.call(c, ty::SET_PERMS, t, b"/vm5b\0n5\0"), ok());
    assert_eq!(h.one(c, ty::RELEASE, "5"), ok());
    let g = h.guest(5);
    assert_eq!(h.call(c, ty::TRANSACTION_END, t, b"T\0"), ok());
    assert_eq!(h.one(c, ty::GET_PERMS, "/vm5b"), Ok(b"n0\0".to_vec()));
    assert_eq!(h.read(g, "/vm5b"), err("EACCES"));
    // Nodes created for a domain that dies before it is ever introduced go with it.
    assert_eq!(h.write(c, "/local/domain/9/x", b"v"), ok());
    assert_eq!(h.args(c, ty::SET_PERMS, &["/local/domain/9", "n9"]), ok());
    assert_eq!(h.args(c, ty::SET_PERMS, &["/local/domain/9/x", "n9"]), ok());
    h.e.domain_gone(9);
    assert_eq!(h.read(c, "/local/domain/9/x"), err("ENOENT"));
    h.e.domain_gone(9);
    assert_eq!(h.e.check(), Ok(()));
}
