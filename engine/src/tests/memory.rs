//! The memory bounds: data held by open transactions is charged to the domain's `memory`
//! quota (XSA-326), and `Config::global_memory` bounds what all domains together hold.

use super::*;
use alloc::format;
use alloc::vec;

fn write_in(h: &mut H, c: ConnId, tx: u32, p: &str, v: &[u8]) -> Result<Vec<u8>, String> {
    let mut pl = z(&[p.as_bytes()]);
    pl.extend_from_slice(v);
    h.call(c, ty::WRITE, tx, &pl)
}

/// The largest value a guest may write into a new node with one permission entry (record
/// 24 + 8 + value must stay below `node-size` 2048).
const MAX_VALUE: usize = 2015;

#[test]
fn xsa326_open_transactions_are_charged_to_the_memory_quota() {
    let mut h = H::new();
    let c = h.dom0();
    let g = h.guest(5);
    h.home(c, 5);
    let value = vec![b'v'; MAX_VALUE];
    let txs: Vec<u32> = (0..10).map(|_| h.tx_start(g)).collect();
    // Round robin over the 10 transactions, max-size values, until each one is refused
    // (spread over directories: a parent's record, its child names, is limited too).
    let mut errors: Vec<Option<String>> = vec![None; txs.len()];
    let mut written = 0usize;
    for i in 0..1024 {
        for (t, &tx) in txs.iter().enumerate() {
            if errors[t].is_some() {
                continue;
            }
            match write_in(&mut h, g, tx, &format!("t{t}/d{}/n{i}", i % 16), &value) {
                Ok(_) => written += value.len(),
                Err(e) => errors[t] = Some(e),
            }
        }
    }
    let quota = 2560 * 1024;
    assert_eq!(
        errors,
        vec![Some(String::from("ENOMEM")); 10],
        "{written} bytes written"
    );
    assert!(written <= quota, "{written} bytes held by transactions");
    // Records (headers, permissions, paths) and the paths accessed come on top of the values.
    assert!(
        written > quota / 100 * 90,
        "{written} bytes held by transactions"
    );
    // Outside the transactions the quota is used up too.
    assert_eq!(h.write(g, "outside", &value), err("ENOMEM"));
    // Commit and abort give the transaction charge back.
    assert_eq!(h.call(g, ty::TRANSACTION_END, txs[0], b"T\0"), ok());
    for &tx in &txs[1..] {
        assert_eq!(h.call(g, ty::TRANSACTION_END, tx, b"F\0"), ok());
    }
    assert_eq!(h.write(g, "outside", &value), ok());
    assert_eq!(h.e.check(), Ok(()));
}

#[test]
fn rewrites_in_a_transaction_hold_one_value_per_node() {
    let mut cfg = Config::default();
    cfg.quotas.nodes = 5000;
    let mut h = H::with(cfg);
    let c = h.dom0();
    let g = h.guest(5);
    h.home(c, 5);
    let value = vec![b'v'; MAX_VALUE];
    let t = h.tx_start(g);
    // Rewriting nodes, one again and again or two alternately, keeps one value per node
    // (an overlay of final states, not a log): never refused, nothing grows.
    for _ in 0..2000 {
        assert_eq!(write_in(&mut h, g, t, "same", &value), ok());
    }
    for i in 0..4000 {
        let p = if i % 2 == 0 { "a" } else { "b" };
        let v = format!("{i}").into_bytes();
        assert_eq!(write_in(&mut h, g, t, p, &v), ok());
    }
    // The quota left is what three nodes leave: nearly all of it, outside too.
    for i in 0..2000 {
        if let Err(e) = h.write(g, &format!("o{}/n{i}", i % 16), &value) {
            assert_eq!(e, "ENOMEM");
            assert!(i > 2400 * 1024 / MAX_VALUE, "refused after {i} writes");
            break;
        }
    }
    assert_eq!(h.call(g, ty::TRANSACTION_END, t, b"T\0"), ok());
    assert_eq!(h.read(g, "a"), Ok(b"3998".to_vec()));
    assert_eq!(h.read(g, "b"), Ok(b"3999".to_vec()));
    assert_eq!(h.read(g, "same"), Ok(value.clone()));
    // Reconnection drops a transaction and its charge.
    let t = h.tx_start(g);
    assert_eq!(write_in(&mut h, g, t, "x", b"1"), ok());
    h.e.reset_connection(g);
    assert_eq!(h.e.check(), Ok(()));
}

#[test]
fn privileged_transactions_are_not_charged() {
    let mut cfg = Config::default();
    cfg.quotas.memory = 16 * 1024;
    let mut h = H::with(cfg);
    let c = h.dom0();
    let g = h.guest(5);
    h.home(c, 5);
    let value = vec![b'v'; MAX_VALUE];
    let t = h.tx_start(c);
    for i in 0..20 {
        assert_eq!(write_in(&mut h, c, t, &format!("/big/n{i}"), &value), ok());
    }
    let t = h.tx_start(g);
    for i in 0..7 {
        assert_eq!(write_in(&mut h, g, t, &format!("n{i}"), &value), ok());
    }
    assert_eq!(write_in(&mut h, g, t, "n7", &value), err("ENOMEM"));
    // A refused request that is wrong anyway gets its own error, as in C.
    assert_eq!(
        write_in(&mut h, g, t, "/local/domain/0/x", &value),
        err("EACCES")
    );
    assert_eq!(h.call(g, ty::TRANSACTION_END, t, b"T\0"), ok());
    assert!(h.read(c, "/local/domain/5/n6") == Ok(value));
    assert_eq!(h.e.check(), Ok(()));
}

fn memreport_total(h: &mut H, c: ConnId) -> (String, i64) {
    let r = h.one(c, ty::CONTROL, "memreport").unwrap();
    let text = String::from_utf8(r).unwrap();
    let mut sum = 0;
    let mut total = String::new();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("domain ") {
            let bytes = rest
                .split(", ")
                .nth(1)
                .unwrap()
                .strip_suffix(" bytes")
                .unwrap();
            sum += bytes.parse::<i64>().unwrap();
        } else if l.starts_with("total: ") {
            total = String::from(l);
        }
    }
    (total, sum)
}

#[test]
fn global_memory_bounds_all_domains_together() {
    let cfg = Config {
        global_memory: 64 * 1024,
        ..Config::default()
    };
    let mut h = H::with(cfg);
    let c = h.dom0();
    let guests: Vec<ConnId> = (5..8).map(|d| h.guest(d)).collect();
    for d in 5..8 {
        h.home(c, d);
    }
    let value = vec![b'v'; 1000];
    // Round robin: each domain stays far below its own 2.5 MiB quota.
    let mut refused = 0;
    let mut written = 0;
    for i in 0..40 {
        for &g in &guests {
            match h.write(g, &format!("n{i}"), &value) {
                Ok(_) => written += 1,
                Err(e) => {
                    assert_eq!(e, "ENOMEM");
                    refused += 1;
                }
            }
        }
    }
    assert!((55..64).contains(&written), "{written} writes accepted");
    assert_eq!(refused, 120 - written);
    let (line, sum) = memreport_total(&mut h, c);
    assert_eq!(line, format!("total: {sum} bytes charged, limit 65536"));
    assert!(
        sum <= 64 * 1024 && sum > 64 * 1024 - 1100,
        "{sum} bytes charged"
    );
    // Growth inside transactions is refused too; dom0 is never refused.
    let t = h.tx_start(guests[0]);
    assert_eq!(write_in(&mut h, guests[0], t, "tx", &value), err("ENOMEM"));
    assert_eq!(h.call(guests[0], ty::TRANSACTION_END, t, b"F\0"), ok());
    assert_eq!(h.write(c, "/dom0/big", &value), ok());
    assert_eq!(h.write(guests[1], "more", &value), err("ENOMEM"));
    // One domain frees memory: the others can write again.
    for i in 0..10 {
        assert_eq!(h.one(guests[2], ty::RM, &format!("n{i}")), ok());
    }
    assert_eq!(h.write(guests[1], "more", &value), ok());
    assert_eq!(h.write(guests[0], "more", &value), ok());
    // CONTROL changes the bound: 0 lifts it and drops the memreport line.
    assert_eq!(
        h.args(c, ty::CONTROL, &["quota", "set", "global-memory", "0"]),
        ok()
    );
    assert_eq!(h.write(guests[1], "more2", &value), ok());
    assert_eq!(memreport_total(&mut h, c).0, "");
    assert_eq!(
        h.args(c, ty::CONTROL, &["quota", "set", "global-memory", "x"]),
        err("EINVAL")
    );
    assert_eq!(h.e.check(), Ok(()));
}

#[test]
fn global_memory_drops_events_and_refuses_big_replies() {
    let cfg = Config {
        global_memory: 8 * 1024,
        ..Config::default()
    };
    let mut h = H::with(cfg);
    let c = h.dom0();
    let g = h.guest(5);
    h.home(c, 5);
    assert_eq!(h.write(c, "/local/domain/5/v", &[b'x'; 3000]), ok());
    assert_eq!(h.read(g, "v"), Ok(vec![b'x'; 3000]));
    // dom0's records count too: now the total is over the bound.
    assert_eq!(h.write(c, "/dom0/v", &[b'y'; 4000]), ok());
    assert_eq!(h.write(c, "/dom0/w", &[b'y'; 4000]), ok());
    assert_eq!(h.read(g, "v"), err("ENOMEM"));
    assert_eq!(h.args(g, ty::WATCH, &["v", "t"]), ok());
    assert_eq!(h.events(g), Vec::<String>::new());
    assert_eq!(h.read(c, "/local/domain/5/v"), Ok(vec![b'x'; 3000]));
}

#[test]
fn unread_output_counts_against_node_writes() {
    let mut h = H::new();
    let c = h.dom0();
    let g = h.guest(5);
    h.home(c, 5);
    assert_eq!(h.write(c, "/m", b""), ok());
    assert_eq!(h.args(c, ty::SET_PERMS, &["/m", "n0", "r5"]), ok());
    assert_eq!(h.args(c, ty::SET_QUOTA, &["5", "memory", "1000"]), ok());
    let token = "t".repeat(300);
    assert_eq!(h.args(g, ty::WATCH, &["/m", &token]), ok());
    assert_eq!(h.events(g).len(), 1);
    // Two unread events of 16 + 5 + 301 bytes, and the home's record (32 bytes), leave
    // less than the 334 bytes this write adds (record 24 + 8 + 300, name in the home).
    assert_eq!(h.write(c, "/m/0", b""), ok());
    assert_eq!(h.write(c, "/m/1", b""), ok());
    let value = [b'v'; 300];
    let mut req = z(&[b"n"]);
    req.extend_from_slice(&value);
    h.e.feed(g, &msg(ty::WRITE, 1, 0, &req)).unwrap();
    let shown: Vec<(u32, String)> = h
        .drain(g)
        .iter()
        .map(|m| (m.ty, show(&m.payload)))
        .collect();
    let ev = |p: &str| (ty::WATCH_EVENT, format!("{p}|{token}|"));
    assert_eq!(
        shown,
        [ev("/m/0"), ev("/m/1"), (ty::ERROR, String::from("ENOMEM|"))]
    );
    // Once the events are taken the same write fits.
    assert_eq!(h.write(g, "n", &value), ok());
    assert_eq!(h.e.check(), Ok(()));
}

#[test]
fn host_memory_low_refuses_unprivileged_growth_only() {
    let mut h = H::new();
    let c = h.dom0();
    let g = h.guest(5);
    h.home(c, 5);
    assert_eq!(h.write(g, "a", b"1"), ok());
    h.p.low.set(true);
    // Growth from the guest is refused, in and out of transactions; reads still work.
    assert_eq!(h.write(g, "b", b"2"), err("ENOMEM"));
    let t = h.tx_start(g);
    assert_eq!(write_in(&mut h, g, t, "c", b"3"), err("ENOMEM"));
    assert_eq!(h.call(g, ty::TRANSACTION_END, t, b"F\0"), ok());
    assert_eq!(h.one(g, ty::READ, "a"), Ok(b"1".to_vec()));
    // dom0 is never refused.
    assert_eq!(h.write(c, "/dom0/x", b"y"), ok());
    h.p.low.set(false);
    assert_eq!(h.write(g, "b", b"2"), ok());
}

#[test]
fn a_privileged_connection_that_does_not_read_is_bounded() {
    let mut h = H::with(Config {
        priv_queue_limit: 64 * 1024,
        ..Config::default()
    });
    let c = h.dom0();
    let idle = h.dom0();
    assert_eq!(h.args(idle, ty::WATCH, &["/w", "t"]), ok());
    assert_eq!(h.events(idle), ["/w|t|"]);
    // The same event again and again is queued once.
    for _ in 0..1000 {
        assert_eq!(h.write(c, "/w", b"v"), ok());
    }
    assert_eq!(h.events(idle), ["/w|t|"]);
    // 20,000 distinct events: the oldest go, the newest stay, the queue stays bounded,
    // and one warning says so.
    for i in 0..20_000 {
        assert_eq!(h.write(c, &format!("/w/n{i}"), b""), ok());
    }
    let events = h.events(idle);
    let bytes: usize = events.iter().map(|e| e.len() + 16).sum();
    assert!(bytes <= 64 * 1024, "{bytes} bytes queued");
    assert!(events.len() > 1000, "{} events kept", events.len());
    assert_eq!(events.last().map(String::as_str), Some("/w/n19999|t|"));
    let warnings =
        h.p.log
            .borrow()
            .iter()
            .filter(|l| l.contains("does not read"))
            .count();
    assert_eq!(warnings, 1);
    // Once it has read, a new backlog is reported again; dedup still works.
    for i in 0..20_000 {
        assert_eq!(h.write(c, &format!("/w/m{i}"), b""), ok());
    }
    assert_eq!(h.write(c, "/w/m19999", b""), ok());
    let events = h.events(idle);
    assert_eq!(events.iter().filter(|e| *e == "/w/m19999|t|").count(), 1);
    // The same when the output is taken as a ring takes it (in pieces).
    for i in 0..20_000 {
        assert_eq!(h.write(c, &format!("/w/r{i}"), b""), ok());
    }
    let mut buf = [0u8; 1000];
    while h.e.output_into(idle, &mut buf) > 0 {}
    for i in 0..20_000 {
        assert_eq!(h.write(c, &format!("/w/s{i}"), b""), ok());
    }
    let _ = h.events(idle);
    let warnings =
        h.p.log
            .borrow()
            .iter()
            .filter(|l| l.contains("does not read"))
            .count();
    assert_eq!(warnings, 4);
    assert_eq!(h.e.check(), Ok(()));
}

#[test]
fn idle_transactions_keep_no_old_store_alive() {
    let mut h = H::new();
    let c = h.dom0();
    let g = h.guest(5);
    h.home(c, 5);
    for i in 0..200 {
        assert_eq!(h.write(c, &format!("/big/n{i}"), &[b'x'; 1000]), ok());
    }
    assert_eq!(h.write(g, "mine", b"1"), ok());
    let txs: Vec<u32> = (0..10).map(|_| h.tx_start(g)).collect();
    for &t in &txs {
        assert_eq!(h.call(g, ty::READ, t, b"mine\0"), Ok(b"1".to_vec()));
    }
    assert_eq!(h.e.views_held(), (10, 0));
    // dom0 rewrites a large subtree: the idle transactions keep no view of the old one.
    assert_eq!(h.call(c, ty::RM, 0, b"/big\0"), ok());
    assert_eq!(h.e.views_held(), (0, 0));
    for &t in &txs {
        assert_eq!(h.call(g, ty::READ, t, b"mine\0"), Ok(b"1".to_vec()));
    }
    // A transaction whose commit will fail keeps only copies of the nodes it accessed.
    assert_eq!(h.write(g, "mine", b"2"), ok());
    assert_eq!(h.e.views_held(), (0, 10));
    for &t in &txs {
        assert_eq!(h.call(g, ty::READ, t, b"mine\0"), Ok(b"1".to_vec()));
        assert_eq!(h.call(g, ty::TRANSACTION_END, t, b"T\0"), err("EAGAIN"));
    }
    assert_eq!(h.e.check(), Ok(()));
}

#[test]
fn paths_accessed_by_transactions_are_charged() {
    let mut h = H::new();
    let c = h.dom0();
    let g = h.guest(5);
    h.home(c, 5);
    // Reads of long missing paths in 10 transactions: each path is kept for the conflict
    // check, so the domain pays for it; the quota ends it.
    let long = "p".repeat(1900);
    let txs: Vec<u32> = (0..10).map(|_| h.tx_start(g)).collect();
    let mut held = 0;
    let mut refused = None;
    'out: for i in 0..1024 {
        for &t in &txs {
            let p = format!("{long}{i}");
            match h.call(g, ty::READ, t, &z(&[p.as_bytes()])) {
                Err(e) if e == "ENOENT" => held += p.len(),
                other => {
                    refused = Some(other);
                    break 'out;
                }
            }
        }
    }
    assert_eq!(refused, Some(err("ENOMEM")));
    assert!(held <= 2560 * 1024, "{held} bytes of paths held");
    assert!(held > 2000 * 1024, "{held} bytes of paths held");
    assert_eq!(h.e.check(), Ok(()));
}
