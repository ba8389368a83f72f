//! The metrics counters and per-domain figures.

use super::*;
use crate::wire::ty;

#[test]
fn requests_by_type_and_errors_by_name_are_counted() {
    let mut h = H::new();
    let d = h.dom0();
    h.write(d, "/a", b"1").unwrap();
    h.read(d, "/a").unwrap();
    h.read(d, "/a").unwrap();
    assert!(h.read(d, "/missing").is_err());
    assert!(h.one(d, ty::RM, "/missing/x").is_err());
    h.send(d, 99, 0, b"x\0");
    let c = h.e.counters();
    let requests: Vec<(&str, u64)> = c.requests().collect();
    assert_eq!(
        requests,
        [("READ", 3), ("WRITE", 1), ("RM", 1), ("OTHER", 1)]
    );
    assert_eq!(c.errors.get("ENOENT"), Some(&2));
    assert_eq!(
        c.errors.values().sum::<u64>(),
        3,
        "and one EINVAL: {:?}",
        c.errors
    );
}

#[test]
fn domain_figures_count_nodes_watches_transactions_against_quotas() {
    let mut h = H::new();
    let d0 = h.dom0();
    let g = h.guest(5);
    h.home(d0, 5);
    h.write(g, "/local/domain/5/x", b"hello").unwrap();
    h.call(g, ty::WATCH, 0, &z(&[b"/local/domain/5/x", b"tok"]))
        .unwrap();
    let tx = h.tx_start(g);
    assert!(tx > 0);
    let figs = h.e.domain_figures();
    let f = figs.iter().find(|f| f.domid == 5).expect("dom5");
    assert_eq!(
        (f.nodes, f.watches, f.transactions),
        (2, 1, 1),
        "its home and x"
    );
    assert!(f.memory > 0);
    assert_eq!(f.quotas.nodes, 1000);
    assert!(figs.iter().any(|f| f.domid == 0));
}
