//! xs-scale: the scale benchmarks on unix sockets, for every server given, in one run
//! (issue 12): one client's READ latency with 0, 512 and 2,000 other connections open (a
//! quarter of them holding a watch); a watch storm (one write firing 1,000 watches held by
//! 100 connections: time until every event is in, none lost or doubled); 50 concurrent
//! transactions on one connection incrementing one counter (commits/s, conflict rate).
//! A `--floor` server (xs-null: answers every request OK, doing no work) takes part in the
//! idle-connection rows only: what the kernel's sockets and epoll cost with that many
//! connections open, the bound of any server's growth on this machine.
//!
//! usage: xs-scale --server NAME=SOCK [--server NAME=SOCK ...] [--floor NAME=SOCK]
//!                 [--baseline NAME]
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};
use xs_conformance::client::Client;
use xs_conformance::stats::median;

struct Server {
    name: String,
    sock: String,
    /// Answers without doing any work: measured in the idle-connection rows only.
    floor: bool,
}

impl Server {
    fn label(&self) -> String {
        if self.floor {
            format!("{} (floor)", self.name)
        } else {
            self.name.clone()
        }
    }
}

fn connect(s: &Server) -> Result<Client, String> {
    Client::connect(&s.sock).map_err(|e| format!("connect to {}: {e}", s.name))
}

/// µs per READ for one client while `idle` other connections are open (a quarter of them
/// watching a node of their own); Err if the server does not take them all.
fn idle_connections(s: &Server, idle: usize) -> Result<f64, String> {
    let mut c = connect(s)?;
    c.write(0, "/scale/probe", b"p")
        .map_err(|e| format!("write: {e}"))?;
    let mut others = Vec::new();
    for i in 0..idle {
        let mut o = connect(s).map_err(|e| format!("{e} (after {i} idle connections)"))?;
        if i % 4 == 0 {
            o.watch(&format!("/scale/idle/{i}"), "t")
                .map_err(|e| format!("watch on idle connection {i}: {e}"))?;
        } else {
            o.read(0, "/scale/probe")
                .map_err(|e| format!("idle connection {i} not served: {e}"))?;
        }
        others.push(o);
    }
    let mut runs = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..2000 {
            c.read(0, "/scale/probe")
                .map_err(|e| format!("read: {e}"))?;
        }
        runs.push(t.elapsed().as_secs_f64() * 1e6 / 2000.0);
    }
    Ok(median(runs))
}

/// Milliseconds from one write to the last of the 1,000 events it fires (100 connections
/// × 10 watches); Err if an event is lost or doubled.
fn watch_storm(s: &Server) -> Result<f64, String> {
    let mut w = connect(s)?;
    let mut watchers = Vec::new();
    for i in 0..100 {
        let mut c = connect(s)?;
        for k in 0..10 {
            c.watch("/scale/storm", &format!("c{i}w{k}"))
                .map_err(|e| format!("watch: {e}"))?;
        }
        for _ in 0..10 {
            c.next_event().ok_or("initial watch event missing")?;
        }
        watchers.push(c);
    }
    let mut runs = Vec::new();
    for round in 0..5 {
        let t = Instant::now();
        w.write(0, "/scale/storm", round.to_string().as_bytes())
            .map_err(|e| format!("write: {e}"))?;
        for (i, c) in watchers.iter_mut().enumerate() {
            let mut tokens: Vec<String> = (0..10)
                .map(|_| c.next_event().map(|e| e.1).unwrap_or_default())
                .collect();
            tokens.sort();
            let mut want: Vec<String> = (0..10).map(|k| format!("c{i}w{k}")).collect();
            want.sort();
            if tokens != want {
                return Err(format!("connection {i} got {tokens:?}"));
            }
        }
        runs.push(t.elapsed().as_secs_f64() * 1e3);
        // Nothing more may come: a round trip on each connection sees no extra event.
        for (i, c) in watchers.iter_mut().enumerate() {
            c.read(0, "/scale/storm")
                .map_err(|e| format!("read: {e}"))?;
            let extra = c.take_queued_events();
            if !extra.is_empty() {
                return Err(format!("connection {i} got extra events {extra:?}"));
            }
        }
    }
    Ok(median(runs))
}

/// Commits/s and conflict rate of 50 transactions at a time on one connection, each
/// incrementing one counter, for 2 s; Err on a lost update.
fn transactions(s: &Server) -> Result<(f64, f64), String> {
    let mut c = connect(s)?;
    c.write(0, "/scale/ctr", b"0")
        .map_err(|e| format!("write: {e}"))?;
    let (mut ok, mut conflicts) = (0u64, 0u64);
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(2) {
        let mut txs = Vec::new();
        for _ in 0..50 {
            let tx = c
                .tx_start()
                .map_err(|e| format!("TRANSACTION_START: {e}"))?;
            let v = c.read(tx, "/scale/ctr").map_err(|e| format!("read: {e}"))?;
            let n: u64 = String::from_utf8_lossy(&v).parse().unwrap_or(0);
            c.write(tx, "/scale/ctr", (n + 1).to_string().as_bytes())
                .map_err(|e| format!("write: {e}"))?;
            txs.push(tx);
        }
        for tx in txs {
            match c.tx_end(tx, true) {
                Ok(_) => ok += 1,
                Err(e) if e == "EAGAIN" => conflicts += 1,
                Err(e) => return Err(format!("TRANSACTION_END: {e}")),
            }
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let v = c.read(0, "/scale/ctr").map_err(|e| format!("read: {e}"))?;
    if String::from_utf8_lossy(&v) != ok.to_string() {
        return Err(format!("lost update: counter {v:?} after {ok} commits"));
    }
    Ok((
        ok as f64 / secs,
        conflicts as f64 / (ok + conflicts).max(1) as f64,
    ))
}

fn main() {
    let mut servers = Vec::new();
    let mut baseline = String::from("c");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_default();
        match a.as_str() {
            "--server" | "--floor" => match v.split_once('=') {
                Some((n, s)) => servers.push(Server {
                    name: n.to_string(),
                    sock: s.to_string(),
                    floor: a == "--floor",
                }),
                None => {
                    eprintln!("xs-scale: {a} wants NAME=SOCK, not '{v}'");
                    std::process::exit(2);
                }
            },
            "--baseline" => baseline = v,
            _ => {
                eprintln!(
                    "usage: xs-scale --server NAME=SOCK [--server NAME=SOCK ...] [--floor NAME=SOCK] [--baseline NAME]"
                );
                std::process::exit(2);
            }
        }
    }
    let show =
        |what: &str, unit: &str, v: &[(&Server, Result<f64, String>)], lower_is_better: bool| {
            println!("{what} ({unit})");
            let b = v
                .iter()
                .find(|(s, _)| s.name == baseline)
                .and_then(|(_, r)| r.as_ref().ok())
                .copied();
            for (s, r) in v {
                let label = s.label();
                match r {
                    Ok(x) if s.floor => println!("  {label:<20} {x:>10.1}"),
                    Ok(x) => {
                        let ratio = b.map(|b| if lower_is_better { b / x } else { x / b });
                        let ratio =
                            ratio.map_or(String::new(), |r| format!("  {r:.2}x {baseline}"));
                        println!("  {label:<20} {x:>10.1}{ratio}");
                    }
                    Err(e) => println!("  {label:<20} {:>10}  ({e})", "failed"),
                }
            }
        };
    println!("xs-scale: ratios are against {baseline} (above 1 is better)");
    let mut by_idle = Vec::new();
    for idle in [0usize, 512, 2000] {
        let v: Vec<_> = servers
            .iter()
            .map(|s| (s, idle_connections(s, idle)))
            .collect();
        show(
            &format!("READ latency with {idle} other connections open"),
            "µs",
            &v,
            true,
        );
        by_idle.push(v);
    }
    if let (Some(first), Some(last)) = (by_idle.first(), by_idle.last()) {
        println!("  growth from 0 to 2,000 other connections (latency at 2,000 / at 0; 1 is flat)");
        for ((s, a), (_, z)) in first.iter().zip(last) {
            let label = s.label();
            match (a, z) {
                (Ok(a), Ok(z)) if *a > 0.0 => println!("  {label:<20} {:>10.2}x", z / a),
                _ => println!("  {label:<20} {:>10}", "?"),
            }
        }
    }
    let working: Vec<&Server> = servers.iter().filter(|s| !s.floor).collect();
    let v: Vec<_> = working.iter().map(|s| (*s, watch_storm(s))).collect();
    show(
        "watch storm: 1 write, 1,000 watches on 100 connections, until the last event",
        "ms",
        &v,
        true,
    );
    let v: Vec<_> = working.iter().map(|s| (*s, transactions(s))).collect();
    let commits: Vec<_> = v
        .iter()
        .map(|(s, r)| (*s, r.clone().map(|x| x.0)))
        .collect();
    let conflicts: Vec<_> = v
        .iter()
        .map(|(s, r)| (*s, r.clone().map(|x| x.1 * 100.0)))
        .collect();
    show(
        "50 concurrent transactions on one counter: commits",
        "per s",
        &commits,
        false,
    );
    show("  their conflict rate", "% EAGAIN", &conflicts, true);
}
