//! Transaction conflicts as C xenstored 4.17 decides them: a node is seen as it is when the
//! transaction first accesses it, and only a change after that access is a conflict.

use super::*;
use alloc::format;

#[test]
fn changes_before_the_first_access_are_no_conflict() {
    let mut h = H::new();
    let c = h.dom0();
    let o = h.dom0();
    assert_eq!(h.write(c, "/f/v", b"old"), ok());
    let t = h.tx_start(c);
    // Outside, after the start but before the transaction looks: a write and a creation.
    assert_eq!(h.write(o, "/f/v", b"new"), ok());
    assert_eq!(h.write(o, "/f/n", b"created"), ok());
    assert_eq!(h.call(c, ty::READ, t, b"/f/v\0"), Ok(b"new".to_vec()));
    assert_eq!(h.call(c, ty::READ, t, b"/f/n\0"), Ok(b"created".to_vec()));
    assert_eq!(h.call(c, ty::WRITE, t, b"/f/out\0x"), ok());
    assert_eq!(h.call(c, ty::TRANSACTION_END, t, b"T\0"), ok());
    assert_eq!(h.read(c, "/f/out"), Ok(b"x".to_vec()));
    // The transaction's own writes survive the rebuild of its view.
    let t = h.tx_start(c);
    assert_eq!(h.call(c, ty::WRITE, t, b"/f/v\0mine"), ok());
    assert_eq!(h.write(o, "/f/other", b"1"), ok());
    assert_eq!(h.call(c, ty::READ, t, b"/f/v\0"), Ok(b"mine".to_vec()));
    assert_eq!(h.call(c, ty::READ, t, b"/f/other\0"), Ok(b"1".to_vec()));
    assert_eq!(h.call(c, ty::TRANSACTION_END, t, b"T\0"), ok());
    assert_eq!(h.read(c, "/f/v"), Ok(b"mine".to_vec()));
    assert_eq!(h.e.check(), Ok(()));
}

#[test]
fn changes_after_the_first_access_conflict() {
    let mut h = H::new();
    let c = h.dom0();
    let o = h.dom0();
    assert_eq!(h.write(c, "/g/v", b"1"), ok());
    // Read, then changed outside.
    let t = h.tx_start(c);
    assert_eq!(h.call(c, ty::READ, t, b"/g/v\0"), Ok(b"1".to_vec()));
    assert_eq!(h.write(o, "/g/v", b"2"), ok());
    assert_eq!(h.call(c, ty::READ, t, b"/g/v\0"), Ok(b"1".to_vec()));
    assert_eq!(h.call(c, ty::TRANSACTION_END, t, b"T\0"), err("EAGAIN"));
    // Found absent, then created outside.
    let t = h.tx_start(c);
    assert_eq!(h.call(c, ty::READ, t, b"/g/none\0"), err("ENOENT"));
    assert_eq!(h.write(o, "/g/none", b""), ok());
    assert_eq!(h.call(c, ty::TRANSACTION_END, t, b"T\0"), err("EAGAIN"));
    // Written (C reads a node before writing it), then written outside.
    let t = h.tx_start(c);
    assert_eq!(h.call(c, ty::WRITE, t, b"/g/v\0t"), ok());
    assert_eq!(h.write(o, "/g/v", b"o"), ok());
    assert_eq!(h.call(c, ty::TRANSACTION_END, t, b"T\0"), err("EAGAIN"));
    assert_eq!(h.read(c, "/g/v"), Ok(b"o".to_vec()));
    // Listed, then a child added outside.
    let t = h.tx_start(c);
    assert_eq!(
        h.call(c, ty::DIRECTORY, t, b"/g\0"),
        Ok(b"v\0none\0".to_vec())
    );
    assert_eq!(h.write(o, "/g/w", b""), ok());
    assert_eq!(h.call(c, ty::TRANSACTION_END, t, b"T\0"), err("EAGAIN"));
    assert_eq!(h.e.check(), Ok(()));
}

#[test]
fn creating_nodes_conflicts_on_missing_parents_and_changed_permissions() {
    let mut h = H::new();
    let c = h.dom0();
    let g = h.guest(5);
    assert_eq!(h.write(c, "/d", b""), ok());
    assert_eq!(h.args(c, ty::SET_PERMS, &["/d", "n0", "w5"]), ok());
    // A sibling created outside is no conflict.
    let t = h.tx_start(g);
    assert_eq!(h.call(g, ty::WRITE, t, b"/d/mine\0m"), ok());
    assert_eq!(h.write(c, "/d/theirs", b""), ok());
    assert_eq!(h.call(g, ty::TRANSACTION_END, t, b"T\0"), ok());
    assert_eq!(h.one(c, ty::GET_PERMS, "/d/mine"), Ok(b"n5\0w5\0".to_vec()));
    // The parent's permissions change: the guest may no longer create there.
    let t = h.tx_start(g);
    assert_eq!(h.call(g, ty::WRITE, t, b"/d/late\0l"), ok());
    assert_eq!(h.args(c, ty::SET_PERMS, &["/d", "n0"]), ok());
    assert_eq!(h.call(g, ty::TRANSACTION_END, t, b"T\0"), err("EAGAIN"));
    assert_eq!(h.read(c, "/d/late"), err("ENOENT"));
    // A missing intermediate node is created outside.
    let t = h.tx_start(c);
    assert_eq!(h.call(c, ty::WRITE, t, b"/d/a/b/c\0x"), ok());
    assert_eq!(h.write(c, "/d/a", b"outside"), ok());
    assert_eq!(h.call(c, ty::TRANSACTION_END, t, b"T\0"), err("EAGAIN"));
    assert_eq!(h.read(c, "/d/a/b"), err("ENOENT"));
    assert_eq!(h.e.check(), Ok(()));
}

#[test]
fn rewriting_one_node_in_a_transaction_commits_the_last_value() {
    let mut h = H::new();
    let c = h.dom0();
    let w = h.dom0();
    assert_eq!(h.write(c, "/r", b""), ok());
    assert_eq!(h.args(w, ty::WATCH, &["/r", "w"]), ok());
    assert_eq!(h.events(w), ["/r|w|"]);
    let t = h.tx_start(c);
    for i in 0..1000 {
        let pl = alloc::format!("/r/n\0{i}");
        assert_eq!(h.call(c, ty::WRITE, t, pl.as_bytes()), ok());
    }
    assert_eq!(h.call(c, ty::MKDIR, t, b"/r/n\0"), ok());
    // The view is rebuilt after an outside change: still the last value.
    assert_eq!(h.write(c, "/other", b""), ok());
    assert_eq!(h.call(c, ty::READ, t, b"/r/n\0"), Ok(b"999".to_vec()));
    assert_eq!(h.call(c, ty::TRANSACTION_END, t, b"T\0"), ok());
    assert_eq!(h.read(c, "/r/n"), Ok(b"999".to_vec()));
    assert_eq!(h.events(w), ["/r/n|w|"]);
    assert_eq!(h.e.check(), Ok(()));
}

#[test]
fn a_deep_write_over_the_transaction_node_quota_records_nothing() {
    let mut h = H::new();
    let c = h.dom0();
    let g = h.guest(5);
    h.home(c, 5);
    assert_eq!(
        h.args(c, ty::SET_QUOTA, &["5", "transaction-nodes", "10"]),
        ok()
    );
    let t = h.tx_start(g);
    // 50 new nodes at once: refused before any of them is recorded.
    let deep = format!("{}leaf", "d/".repeat(49));
    assert_eq!(
        h.call(g, ty::WRITE, t, format!("{deep}\0v").as_bytes()),
        err("ENOSPC")
    );
    // So the whole quota is still there.
    for i in 0..10 {
        assert_eq!(h.call(g, ty::WRITE, t, format!("n{i}\0v").as_bytes()), ok());
    }
    assert_eq!(h.call(g, ty::WRITE, t, b"n10\0v"), err("ENOSPC"));
    assert_eq!(h.call(g, ty::TRANSACTION_END, t, b"T\0"), ok());
    // A deep path that fits: the nodes between are created, and a conflict on the
    // topmost one (created outside meanwhile) fails the commit.
    assert_eq!(
        h.args(c, ty::SET_QUOTA, &["5", "transaction-nodes", "1024"]),
        ok()
    );
    let t = h.tx_start(g);
    let deep = format!("{}leaf", "e/".repeat(900));
    assert_eq!(
        h.call(g, ty::WRITE, t, format!("{deep}\0v").as_bytes()),
        ok()
    );
    assert_eq!(
        h.call(g, ty::READ, t, &z(&[deep.as_bytes()])),
        Ok(b"v".to_vec())
    );
    assert_eq!(h.write(g, "e/x", b""), ok());
    assert_eq!(h.call(g, ty::TRANSACTION_END, t, b"T\0"), err("EAGAIN"));
    let t = h.tx_start(g);
    assert_eq!(
        h.call(g, ty::WRITE, t, format!("{deep}\0w").as_bytes()),
        ok()
    );
    assert_eq!(h.call(g, ty::TRANSACTION_END, t, b"T\0"), ok());
    assert_eq!(h.read(g, &deep), Ok(b"w".to_vec()));
    assert_eq!(h.e.check(), Ok(()));
}
