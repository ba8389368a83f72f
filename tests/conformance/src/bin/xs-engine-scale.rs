//! xs-engine-scale: the engine in-process with 1, 100 and 1,000 introduced unprivileged
//! domains, each holding about 100 nodes and 10 watches under its home (a typical guest's
//! share), with the stub's settings (a global memory bound). Measures what one domain's
//! request costs at each size: a write and a read in its home, a write that fires its own
//! watch, and dom0 writing into a guest's home. Target: flat (1,000 domains within 1.2x of 1).
//!
//! usage: xs-engine-scale [--sizes 1,100,1000] [--millis MS]
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};
use xenstore_engine::perms::Perm;
use xenstore_engine::tree::{self, Node, Tree};
use xenstore_engine::{Config, ConnId, Engine, Error, Platform};
use xs_conformance::stats::median;
use xs_conformance::wire::{self, MsgType};

/// A platform where every domain exists and nothing else happens.
struct Quiet {
    start: Instant,
}

impl Platform for Quiet {
    fn introduce(&mut self, _c: ConnId, _d: u32, _mfn: u64, _port: u32) -> Result<(), Error> {
        Ok(())
    }
    fn reintroduce(&mut self, _c: ConnId, _d: u32, _port: u32) -> Result<(), Error> {
        Ok(())
    }
    fn release(&mut self, _c: ConnId, _d: u32) {}
    fn domain_exists(&mut self, _d: u32) -> bool {
        true
    }
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
    fn log(&mut self, _line: &str) {}
}

struct Bench {
    e: Engine<Quiet>,
    d0: ConnId,
    sink: Vec<u8>,
    req: u32,
}

impl Bench {
    /// Sends one request and takes every queued output of `c` and of the guests it woke.
    fn call(&mut self, c: ConnId, ty: MsgType, payload: &[u8]) {
        self.req = self.req.wrapping_add(1);
        let m = wire::encode(ty.code(), self.req, 0, payload);
        if self.e.feed(c, &m).is_err() {
            eprintln!("xs-engine-scale: request refused");
            std::process::exit(1);
        }
        for r in self.e.take_ready() {
            self.sink.clear();
            self.e.output_all(r, &mut self.sink);
        }
    }
}

fn setup(n: u32) -> (Bench, Vec<ConnId>) {
    let cfg = Config {
        global_memory: 64 << 20,
        ..Config::default()
    };
    let e = Engine::new(
        Quiet {
            start: Instant::now(),
        },
        cfg,
    );
    let mut b = Bench {
        e,
        d0: 0,
        sink: Vec::new(),
        req: 0,
    };
    b.d0 = b.e.new_connection(0);
    let mut guests = Vec::new();
    for d in 1..=n {
        let home = format!("/local/domain/{d}");
        let d0 = b.d0;
        b.call(
            d0,
            MsgType::Introduce,
            &wire::strings(&[&d.to_string(), "1", "1"]),
        );
        b.call(d0, MsgType::Mkdir, &wire::strings(&[&home]));
        b.call(
            d0,
            MsgType::SetPerms,
            &wire::strings(&[&home, &format!("n{d}")]),
        );
        let Some(g) = b.e.domain_connection(d) else {
            eprintln!("xs-engine-scale: domain {d} has no connection");
            std::process::exit(1);
        };
        for dev in 0..10 {
            for k in 0..10 {
                let p = format!("device/vif/{dev}/k{k}");
                b.call(g, MsgType::Write, &[p.as_bytes(), b"\0value"].concat());
            }
            let w = format!("device/vif/{dev}");
            b.call(g, MsgType::Watch, &wire::strings(&[&w, "tok"]));
        }
        guests.push(g);
    }
    (b, guests)
}

/// The floor: a bare tree of the same shape (`n` homes of 100 nodes), and one walk to a
/// node of a home in the middle: what looking a path up costs at this size, whatever the
/// server does around it.
fn walk_floor(n: u32, ms: u64) -> f64 {
    let perms = || vec![Perm { domid: 0, bits: 0 }];
    let mut t = Tree::new(Node::new(Vec::new(), perms(), 0));
    t.attach(
        "/",
        "local",
        tree::chain(&["local", "domain"], perms(), Vec::new(), 0),
        0,
    );
    for d in 1..=n {
        let name = d.to_string();
        t.attach("/local/domain", &name, Node::new(Vec::new(), perms(), 0), 0);
        let home = format!("/local/domain/{d}");
        t.attach(
            &home,
            "data",
            tree::chain(&["data", "x"], perms(), b"v".to_vec(), 0),
            0,
        );
        for k in 0..98 {
            t.attach(
                &home,
                &format!("k{k}"),
                Node::new(b"v".to_vec(), perms(), 0),
                0,
            );
        }
    }
    let path = format!("/local/domain/{}/data/x", n / 2 + 1);
    time(ms, || {
        std::hint::black_box(t.get(std::hint::black_box(&path)));
    })
}

/// Nanoseconds per call of `f` over about `ms` milliseconds (median of 5 runs).
fn time(ms: u64, mut f: impl FnMut()) -> f64 {
    let mut runs = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let mut n = 0u64;
        while t.elapsed() < Duration::from_millis(ms / 5) {
            for _ in 0..64 {
                f();
            }
            n += 64;
        }
        runs.push(t.elapsed().as_nanos() as f64 / n as f64);
    }
    median(runs)
}

fn main() {
    let mut sizes = vec![1u32, 100, 1000];
    let mut ms = 1000u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_default();
        match a.as_str() {
            "--sizes" => sizes = v.split(',').filter_map(|s| s.parse().ok()).collect(),
            "--millis" => ms = v.parse().unwrap_or(ms),
            _ => {
                eprintln!("usage: xs-engine-scale [--sizes 1,100,1000] [--millis MS]");
                std::process::exit(2);
            }
        }
    }
    println!("xs-engine-scale: one unprivileged domain's request, in-process (ns per request; ratio to the smallest size)");
    println!(
        "{:>8} {:>10} {:>12} {:>14} {:>14} {:>16} {:>8}",
        "domains", "nodes", "write+read", "watched write", "dom0 write", "floor: 1 walk", "setup s"
    );
    let mut first: Option<[f64; 4]> = None;
    let mut worst = 0f64;
    for &n in &sizes {
        let t = Instant::now();
        let (mut b, guests) = setup(n);
        let setup_s = t.elapsed().as_secs_f64();
        let g = guests[guests.len() / 2];
        let d = n / 2 + 1;
        let wr = time(ms, || {
            b.call(g, MsgType::Write, b"data/x\0v");
            b.call(g, MsgType::Read, b"data/x\0");
        }) / 2.0;
        let ww = time(ms, || b.call(g, MsgType::Write, b"device/vif/3/k1\0v"));
        let path = format!("/local/domain/{d}/device/vif/4/k2\0v");
        let d0 = b.d0;
        let dw = time(ms, || b.call(d0, MsgType::Write, path.as_bytes()));
        let fl = walk_floor(n, ms);
        let now = [wr, ww, dw, fl];
        let base = *first.get_or_insert(now);
        let ratio = |i: usize| now[i] / base[i];
        worst = worst.max(ratio(0)).max(ratio(1)).max(ratio(2));
        println!(
            "{n:>8} {:>10} {:>7.0} {:>3.2}x {:>9.0} {:>3.2}x {:>9.0} {:>3.2}x {:>11.0} {:>3.2}x {setup_s:>8.2}",
            b.e.node_count(),
            wr,
            ratio(0),
            ww,
            ratio(1),
            dw,
            ratio(2),
            fl,
            ratio(3)
        );
    }
    println!(
        "largest ratio to the smallest size: {worst:.2}x (target: within 1.2x): {}",
        if worst <= 1.2 { "met" } else { "NOT met" }
    );
    println!(
        "(the floor column is one path walk in a bare tree of the same shape: a lookup among more homes costs more there too; requests walk a path a few times)"
    );
}
