//! xs-hostile: what a hostile guest costs everyone else (issue 13). Against ferrostored with
//! `--domain-socket-dir`, one simulated guest runs each attack while a dom0 client reads in a
//! loop; prints dom0's READ latency p50/p99 against the quiet figure, and the memory the
//! server keeps for a guest's 10 idle transactions against the guest's memory quota.
//!
//! usage: xs-hostile --socket SOCK --domain-dir DIR --pid PID [--seconds S] [--name NAME]
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use xs_conformance::client::Client;
use xs_conformance::stats::{percentile, rss_bytes};
use xs_conformance::wire::{self, MsgType};

const GUEST: u32 = 77;
/// C xenstored's default memory quota per domain.
const QUOTA: u64 = 2560 * 1024;

struct Opts {
    socket: String,
    domain_dir: String,
    pid: u32,
    seconds: f64,
    name: String,
}

fn opts() -> Result<Opts, String> {
    let mut o = Opts {
        socket: String::new(),
        domain_dir: String::new(),
        pid: 0,
        seconds: 3.0,
        name: String::from("ferrostored"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--socket" => o.socket = val()?,
            "--domain-dir" => o.domain_dir = val()?,
            "--pid" => o.pid = val()?.parse().map_err(|e| format!("--pid: {e}"))?,
            "--seconds" => o.seconds = val()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--name" => o.name = val()?,
            _ => return Err(format!("unknown option {a}")),
        }
    }
    if o.socket.is_empty() || o.domain_dir.is_empty() || o.pid == 0 {
        return Err(String::from(
            "usage: xs-hostile --socket SOCK --domain-dir DIR --pid PID [--seconds S] [--name NAME]",
        ));
    }
    Ok(o)
}

fn must<T>(what: &str, r: Result<T, String>) -> T {
    r.unwrap_or_else(|e| {
        eprintln!("xs-hostile: {what} failed: {e}");
        std::process::exit(1)
    })
}

/// dom0 reads one node in a loop until `stop`; returns the latencies in microseconds.
fn probe(socket: String, stop: Arc<AtomicBool>) -> thread::JoinHandle<Vec<f64>> {
    thread::spawn(move || {
        let mut c = must(
            "dom0 probe connect",
            Client::connect(&socket).map_err(|e| e.to_string()),
        );
        let mut lat = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            must("dom0 READ", c.read(0, "/probe").map(|_| ()));
            lat.push(t.elapsed().as_secs_f64() * 1e6);
            thread::sleep(Duration::from_micros(200));
        }
        lat
    })
}

/// Runs `attack` for `secs` while dom0 probes; returns (p50, p99, samples, attack ops).
fn measure(o: &Opts, attack: &mut dyn FnMut(Instant) -> u64) -> (f64, f64, usize, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let h = probe(o.socket.clone(), stop.clone());
    let end = Instant::now() + Duration::from_secs_f64(o.seconds);
    let ops = attack(end);
    while Instant::now() < end {
        thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    let mut lat = h.join().unwrap_or_default();
    let n = lat.len();
    (
        percentile(&mut lat, 0.5),
        percentile(&mut lat, 0.99),
        n,
        ops,
    )
}

fn guest(o: &Opts) -> Client {
    let path = format!("{}/{GUEST}", o.domain_dir);
    let t = Instant::now();
    loop {
        if let Ok(c) = Client::connect(&path) {
            return c;
        }
        if t.elapsed() > Duration::from_secs(5) {
            must::<()>("guest connect", Err(format!("{path} did not appear")));
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn main() {
    let o = must("options", opts());
    let mut d0 = must(
        "dom0 connect",
        Client::connect(&o.socket).map_err(|e| e.to_string()),
    );
    must("dom0 write", d0.write(0, "/probe", b"p").map(|_| ()));
    let pl = wire::strings(&[&GUEST.to_string(), "4096", "1"]);
    must("INTRODUCE", d0.call(MsgType::Introduce, 0, &pl).map(|_| ()));
    let home = format!("/local/domain/{GUEST}");
    must("home", d0.write(0, &home, b"").map(|_| ()));
    must(
        "home perms",
        d0.set_perms(0, &home, &[&format!("n{GUEST}")]).map(|_| ()),
    );
    let mut g = guest(&o);

    // A first quiet run warms up both sides; the second is the reference.
    measure(&o, &mut |_| 0);
    let (q50, q99, qn, _) = measure(&o, &mut |_| 0);

    // Defect 1: a transaction grown by writes (up to 40,000 of them, for at most 10 s),
    // then, measured, one write outside and one read inside again and again. `spread`
    // nodes are written in turn: 2 (alternating, the log attack), or 1,000 distinct ones
    // (as many as transaction-nodes allows: the most an overlay can hold).
    let replay = |g: &mut Client, spread: u64| {
        let tx = must("guest TRANSACTION_START", g.tx_start());
        let grow_end = Instant::now() + Duration::from_secs(10);
        let mut grown = 0u64;
        while grown < 40_000 && Instant::now() < grow_end {
            let _ = g.write(tx, &format!("n{}", grown % spread), b"v");
            grown += 1;
        }
        let r = measure(&o, &mut |end| {
            let mut ops = 0u64;
            while Instant::now() < end {
                let _ = g.write(0, "outside", b"o");
                let _ = g.read(tx, "n0");
                ops += 2;
            }
            ops
        });
        let _ = g.tx_end(tx, false);
        (r, grown)
    };
    let ((a50, a99, an, aops), grown) = replay(&mut g, 2);
    let ((w50, w99, wn, wops), wgrown) = replay(&mut g, 1000);

    // Defect 3: 10 idle transactions while dom0 rewrites a 2 MB subtree again and again.
    let value = vec![b'x'; 1000];
    let rewrite = |d0: &mut Client, round: usize| {
        for i in 0..2000 {
            let mut v = value.clone();
            v[0] = b'a' + (round % 26) as u8;
            must(
                "dom0 subtree write",
                d0.write(0, &format!("/big/n{i}"), &v).map(|_| ()),
            );
        }
    };
    rewrite(&mut d0, 0);
    // The same dom0 churn without the guest: the reference for the latency under it.
    let (c50, c99, cn, _) = measure(&o, &mut |_| {
        for round in 0..10 {
            rewrite(&mut d0, round + 1);
        }
        0
    });
    let base = must("server RSS", rss_bytes(o.pid));
    let mut txs = Vec::new();
    let (i50, i99, inn, _) = measure(&o, &mut |_| {
        for round in 0..10 {
            let tx = must("guest TRANSACTION_START", g.tx_start());
            let _ = g.read(tx, "a");
            txs.push(tx);
            rewrite(&mut d0, round + 11);
        }
        0
    });
    let pinned = must("server RSS", rss_bytes(o.pid)).saturating_sub(base);
    for tx in txs {
        let _ = g.tx_end(tx, false);
    }

    let name = &o.name;
    println!("xs-hostile: dom0 READ latency (µs) while guest {GUEST} attacks {name}; target: within 2x of quiet");
    println!(
        "{:<44} {:>8} {:>8} {:>9} {:>7} {:>7}  guest ops",
        "phase", "p50", "p99", "samples", "p50/ref", "p99/ref"
    );
    let row = |label: &str, p50: f64, p99: f64, n: usize, reference: (f64, f64), ops: String| {
        println!(
            "{label:<44} {p50:>8.1} {p99:>8.1} {n:>9} {:>6.2}x {:>6.2}x  {ops}",
            p50 / reference.0,
            p99 / reference.1
        );
    };
    row("quiet", q50, q99, qn, (q50, q99), String::new());
    row(
        "defect 1: replaying a grown transaction",
        a50,
        a99,
        an,
        (q50, q99),
        format!("{aops} after {grown} writes in the transaction"),
    );
    row(
        "defect 1, 1,000 distinct nodes written",
        w50,
        w99,
        wn,
        (q50, q99),
        format!("{wops} after {wgrown} writes in the transaction"),
    );
    row(
        "dom0 rewriting 2 MB 10 times (vs quiet)",
        c50,
        c99,
        cn,
        (q50, q99),
        String::new(),
    );
    row(
        "defect 3: the same with 10 idle transactions",
        i50,
        i99,
        inn,
        (c50, c99),
        String::from("(vs the same churn alone)"),
    );
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "latency target (p50 and p99 within 2x of quiet): defect 1 {} (1,000 nodes: {}), defect 3 {}",
        met(a50 <= 2.0 * q50 && a99 <= 2.0 * q99),
        met(w50 <= 2.0 * q50 && w99 <= 2.0 * q99),
        met(i50 <= 2.0 * c50 && i99 <= 2.0 * c99)
    );
    println!(
        "memory kept for 10 idle transactions while dom0 rewrote 2 MB 10 times: {pinned} bytes (server RSS growth; guest quota {QUOTA}): {}",
        met(pinned <= QUOTA)
    );
}
