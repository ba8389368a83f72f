//! `xs-bench --server NAME=SOCKET:PID ... [--floor NAME=SOCKET:PID ...] [--baseline NAME]
//! [--seconds S] [--repeat N] [--nodes N]`: the same client workloads against several
//! xenstore servers, one server at a time, printing a table with ratios against the baseline
//! (C xenstored) and whether ferrostore's targets are met. Server CPU time comes from
//! /proc/PID/stat. `--floor` servers (`xs-null`, which answers OK without doing any work) run
//! only the write+read workloads: what the socket and wake-up work alone costs here.
//!
//! Workloads: one connection write+read; 8 connections write+read; watch write-to-event
//! latency (p50/p99); 8 clients committing conflicting transactions on one counter; a tree of
//! N nodes (default 100,000): write and read time per operation and resident memory per node.
#![forbid(unsafe_code)]

use std::process::{Command, ExitCode};
use std::sync::{Arc, Barrier};
use std::time::Instant;
use xs_conformance::stats::{median, percentile, rss_bytes};
use xs_conformance::wire::{self, MsgType};
use xs_conformance::Client;

struct Server {
    name: String,
    socket: String,
    pid: u32,
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("read /proc/{pid}/stat: {e}"))?;
    let after = s.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // Fields after the command: state is index 0, utime index 11, stime index 12.
    Ok(num(11) + num(12))
}

/// The 1-minute load average, to show how busy the machine was during the run.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn connect(s: &Server) -> Result<Client, String> {
    Client::connect(&s.socket).map_err(|e| format!("{}: connect {}: {e}", s.name, s.socket))
}

fn must(what: &str, r: xs_conformance::XsResult) -> Result<Vec<u8>, String> {
    r.map_err(|e| format!("{what}: {e}"))
}

/// `conns` connections doing write+read on their own key for `secs`; returns (req/s, server
/// CPU µs per request).
fn write_read(s: &Server, conns: usize, secs: f64, tck: f64) -> Result<(f64, f64), String> {
    let barrier = Arc::new(Barrier::new(conns + 1));
    let mut handles = Vec::new();
    for i in 0..conns {
        let mut c = connect(s)?;
        let b = barrier.clone();
        handles.push(std::thread::spawn(move || -> Result<u64, String> {
            let key = format!("/bench/wr/k{i}");
            b.wait();
            let t = Instant::now();
            let mut n = 0u64;
            while t.elapsed().as_secs_f64() < secs {
                must("write", c.write(0, &key, b"value"))?;
                must("read", c.read(0, &key))?;
                n += 2;
            }
            Ok(n)
        }));
    }
    let c0 = cpu_ticks(s.pid)?;
    barrier.wait();
    let t = Instant::now();
    let total = join_sum(handles)?;
    let el = t.elapsed().as_secs_f64();
    let cpu = (cpu_ticks(s.pid)? - c0) as f64 / tck;
    Ok((total as f64 / el, cpu * 1e6 / total as f64))
}

/// Waits for every client thread and adds up their counts.
fn join_sum(handles: Vec<std::thread::JoinHandle<Result<u64, String>>>) -> Result<u64, String> {
    let mut total = 0;
    for h in handles {
        total += h
            .join()
            .map_err(|_| "client thread panicked".to_string())??;
    }
    Ok(total)
}

/// Write-to-event latency percentiles (µs): p50, p99.
fn watch_latency(s: &Server, samples: usize) -> Result<(f64, f64), String> {
    let mut w = connect(s)?;
    let mut c = connect(s)?;
    must("mkdir", c.mkdir(0, "/bench/w"))?;
    must("watch", w.watch("/bench/w", "lat"))?;
    w.next_event().ok_or("no initial watch event")?;
    let mut lat = Vec::with_capacity(samples);
    for i in 0..samples {
        let mut pl = wire::strings(&["/bench/w/x"]);
        pl.extend_from_slice(i.to_string().as_bytes());
        let t = Instant::now();
        let id = c
            .send(MsgType::Write.code(), 0, &pl)
            .map_err(|e| e.to_string())?;
        let ev = w.next_event().ok_or("watch event missing")?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        if ev.0 != "/bench/w/x" {
            return Err(format!("unexpected event {ev:?}"));
        }
        c.recv_reply(id).map_err(|e| e.to_string())?;
    }
    Ok((percentile(&mut lat, 0.50), percentile(&mut lat, 0.99)))
}

/// 8 clients incrementing one counter in transactions; returns commits/s after checking the
/// counter equals the number of successful commits.
fn tx_conflicts(s: &Server, secs: f64) -> Result<f64, String> {
    let mut c = connect(s)?;
    must("init", c.write(0, "/bench/counter", b"0"))?;
    let barrier = Arc::new(Barrier::new(9));
    let mut handles = Vec::new();
    for _ in 0..8 {
        let mut c = connect(s)?;
        let b = barrier.clone();
        handles.push(std::thread::spawn(move || -> Result<u64, String> {
            b.wait();
            let t = Instant::now();
            let mut commits = 0;
            while t.elapsed().as_secs_f64() < secs {
                let tx = c.tx_start()?;
                let v = must("read", c.read(tx, "/bench/counter"))?;
                let n: u64 = String::from_utf8_lossy(&v).parse().unwrap_or(0);
                must(
                    "write",
                    c.write(tx, "/bench/counter", (n + 1).to_string().as_bytes()),
                )?;
                match c.tx_end(tx, true) {
                    Ok(_) => commits += 1,
                    Err(e) if e == "EAGAIN" => {}
                    Err(e) => return Err(format!("commit: {e}")),
                }
            }
            Ok(commits)
        }));
    }
    barrier.wait();
    let t = Instant::now();
    let total = join_sum(handles)?;
    let el = t.elapsed().as_secs_f64();
    let v = must("read counter", c.read(0, "/bench/counter"))?;
    let final_value: u64 = String::from_utf8_lossy(&v).parse().unwrap_or(0);
    if final_value != total {
        return Err(format!(
            "counter is {final_value} after {total} successful commits: lost or phantom update"
        ));
    }
    Ok(total as f64 / el)
}

/// Sends `reqs` with at most 32 in flight, checking each reply's type.
fn pipelined(c: &mut Client, ty: MsgType, reqs: &[Vec<u8>]) -> Result<(), String> {
    let mut inflight = std::collections::VecDeque::new();
    for pl in reqs {
        if inflight.len() == 32 {
            let id = inflight.pop_front().unwrap_or(0);
            let m = c.recv_reply(id).map_err(|e| e.to_string())?;
            if m.ty != ty.code() {
                return Err(format!("{ty:?} failed: {}", m.describe()));
            }
        }
        inflight.push_back(c.send(ty.code(), 0, pl).map_err(|e| e.to_string())?);
    }
    for id in inflight {
        let m = c.recv_reply(id).map_err(|e| e.to_string())?;
        if m.ty != ty.code() {
            return Err(format!("{ty:?} failed: {}", m.describe()));
        }
    }
    Ok(())
}

/// Builds an N-node tree; returns (write µs/op, read µs/op, RSS growth bytes/node, RSS MiB).
fn tree(s: &Server, nodes: usize) -> Result<(f64, f64, f64, f64), String> {
    let mut c = connect(s)?;
    let rss0 = rss_bytes(s.pid)?;
    let paths: Vec<String> = (0..nodes)
        .map(|i| format!("/bench/tree/d{}/n{}", i / 100, i % 100))
        .collect();
    let writes: Vec<Vec<u8>> = paths
        .iter()
        .map(|p| {
            let mut pl = wire::strings(&[p]);
            pl.extend_from_slice(b"some-value");
            pl
        })
        .collect();
    let t = Instant::now();
    pipelined(&mut c, MsgType::Write, &writes)?;
    let w = t.elapsed().as_secs_f64() * 1e6 / nodes as f64;
    let rss1 = rss_bytes(s.pid)?;
    let reads: Vec<Vec<u8>> = paths.iter().map(|p| wire::strings(&[p])).collect();
    let t = Instant::now();
    pipelined(&mut c, MsgType::Read, &reads)?;
    let r = t.elapsed().as_secs_f64() * 1e6 / nodes as f64;
    let total_nodes = nodes + nodes.div_ceil(100);
    let per_node = (rss1.saturating_sub(rss0)) as f64 / total_nodes as f64;
    must("rm tree", c.rm(0, "/bench/tree"))?;
    Ok((w, r, per_node, rss1 as f64 / (1024.0 * 1024.0)))
}

#[derive(Default, Clone)]
struct Results {
    one: f64,
    one_cpu: f64,
    eight: f64,
    eight_cpu: f64,
    p50: f64,
    p99: f64,
    tx: f64,
    tree_w: f64,
    tree_r: f64,
    per_node: f64,
    rss: f64,
}

/// Samples of the repeated workloads for one server.
#[derive(Default)]
struct Samples {
    one: Vec<f64>,
    one_cpu: Vec<f64>,
    eight: Vec<f64>,
    eight_cpu: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    tx: Vec<f64>,
}

/// One round of the write+read workloads (all a floor server runs).
fn sample_write_read(s: &Server, secs: f64, tck: f64, out: &mut Samples) -> Result<(), String> {
    let (r, c) = write_read(s, 1, secs, tck)?;
    out.one.push(r);
    out.one_cpu.push(c);
    let (r, c) = write_read(s, 8, secs, tck)?;
    out.eight.push(r);
    out.eight_cpu.push(c);
    Ok(())
}

/// One round of the repeated workloads.
fn sample(s: &Server, secs: f64, tck: f64, out: &mut Samples) -> Result<(), String> {
    sample_write_read(s, secs, tck, out)?;
    let (a, b) = watch_latency(s, 2000)?;
    out.p50.push(a);
    out.p99.push(b);
    out.tx.push(tx_conflicts(s, secs)?);
    Ok(())
}

/// The tree workload, then medians of the samples.
fn finish(s: &Server, smp: Samples, nodes: usize) -> Result<Results, String> {
    let (tree_w, tree_r, per_node, rss) = tree(s, nodes)?;
    let _ = connect(s)?.rm(0, "/bench");
    Ok(Results {
        one: median(smp.one),
        one_cpu: median(smp.one_cpu),
        eight: median(smp.eight),
        eight_cpu: median(smp.eight_cpu),
        p50: median(smp.p50),
        p99: median(smp.p99),
        tx: median(smp.tx),
        tree_w,
        tree_r,
        per_node,
        rss,
    })
}

/// `NAME=SOCKET:PID`.
fn parse_server(v: &str) -> Option<Server> {
    let (name, rest) = v.split_once('=')?;
    let (sock, pid) = rest.rsplit_once(':')?;
    Some(Server {
        name: name.to_string(),
        socket: sock.to_string(),
        pid: pid.parse().ok()?,
    })
}

/// The best any floor server reached: 8-connection req/s, CPU µs/request with 1 and with 8
/// connections.
#[derive(Clone, Copy)]
struct Floor {
    eight: f64,
    one_cpu: f64,
    eight_cpu: f64,
}

/// Prints the write+read medians of the floor servers (`xs-null`, which answers OK without
/// doing any work), each with its CPU per request against the baseline's; returns the best.
fn print_floors(
    floors: &[Server],
    samples: Vec<Result<Samples, String>>,
    base: Option<&Results>,
) -> Option<Floor> {
    let mut best: Option<Floor> = None;
    println!(
        "floor: servers that answer every request OK without doing any work (xs-null), \
         same client; CPU/request against the baseline:"
    );
    for (f, smp) in floors.iter().zip(samples) {
        let smp = match smp {
            Ok(smp) => smp,
            Err(e) => {
                println!("  {:<22} error: {e}", f.name);
                continue;
            }
        };
        let (r1, c1) = (median(smp.one), median(smp.one_cpu));
        let (r8, c8) = (median(smp.eight), median(smp.eight_cpu));
        let vs = |c: f64, b: Option<f64>| b.map_or("n/a".to_string(), |b| format!("{:.2}x", c / b));
        println!(
            "  {:<22} 1 conn {:>7.0} req/s {:>6.2} us ({}); 8 conn {:>7.0} req/s {:>6.2} us ({})",
            f.name,
            r1,
            c1,
            vs(c1, base.map(|b| b.one_cpu)),
            r8,
            c8,
            vs(c8, base.map(|b| b.eight_cpu))
        );
        best = Some(best.map_or(
            Floor {
                eight: r8,
                one_cpu: c1,
                eight_cpu: c8,
            },
            |b| Floor {
                eight: b.eight.max(r8),
                one_cpu: b.one_cpu.min(c1),
                eight_cpu: b.eight_cpu.min(c8),
            },
        ));
    }
    best
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut servers = Vec::new();
    let mut floors = Vec::new();
    let mut baseline = "c".to_string();
    let mut secs = 1.0;
    let mut repeat = 3;
    let mut nodes = 100_000;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "--server" | "--floor" => match parse_server(&v) {
                Some(s) if a == "--server" => servers.push(s),
                Some(s) => floors.push(s),
                None => {
                    eprintln!("xs-bench: {a} wants NAME=SOCKET:PID, got {v}");
                    return ExitCode::from(2);
                }
            },
            "--baseline" => baseline = v,
            "--seconds" => secs = v.parse().unwrap_or(1.0),
            "--repeat" => repeat = v.parse().unwrap_or(3),
            "--nodes" => nodes = v.parse().unwrap_or(100_000),
            _ => {
                eprintln!(
                    "usage: xs-bench --server NAME=SOCKET:PID... [--floor NAME=SOCKET:PID...] \
                     [--baseline NAME] [--seconds S] [--repeat N] [--nodes N]"
                );
                return ExitCode::from(2);
            }
        }
    }
    let tck = clk_tck();
    let load_before = loadavg();
    // Rounds alternate between the servers (then the floors, which run only the write+read
    // workloads) so that background load on the machine affects them alike; the tree
    // workload runs once per server at the end.
    let mut samples: Vec<Result<Samples, String>> = servers
        .iter()
        .chain(&floors)
        .map(|s| {
            let _ = connect(s)?.rm(0, "/bench");
            Ok(Samples::default())
        })
        .collect();
    for round in 1..=repeat {
        for (i, (s, smp)) in servers
            .iter()
            .chain(&floors)
            .zip(samples.iter_mut())
            .enumerate()
        {
            eprintln!(
                "xs-bench: round {round}/{repeat}: {} (pid {})",
                s.name, s.pid
            );
            if let Ok(out) = smp {
                let r = if i < servers.len() {
                    sample(s, secs, tck, out)
                } else {
                    sample_write_read(s, secs, tck, out)
                };
                if let Err(e) = r {
                    *smp = Err(e);
                }
            }
        }
    }
    let floor_samples = samples.split_off(servers.len());
    let mut results = Vec::new();
    for (s, smp) in servers.iter().zip(samples) {
        eprintln!("xs-bench: {}-node tree: {}", nodes, s.name);
        match smp.and_then(|x| finish(s, x, nodes)) {
            Ok(r) => results.push(Some(r)),
            Err(e) => {
                eprintln!("xs-bench: {}: {e}", s.name);
                results.push(None);
            }
        }
    }
    let base = servers
        .iter()
        .position(|s| s.name == baseline)
        .and_then(|i| results[i].clone());
    type Row = (&'static str, fn(&Results) -> f64, &'static str);
    let rows: [Row; 11] = [
        ("1 conn write+read (req/s)", |r| r.one, "%.0f"),
        ("8 conn write+read (req/s)", |r| r.eight, "%.0f"),
        ("server CPU/request, 1 conn (us)", |r| r.one_cpu, "%.2f"),
        ("server CPU/request, 8 conn (us)", |r| r.eight_cpu, "%.2f"),
        ("watch write->event p50 (us)", |r| r.p50, "%.1f"),
        ("watch write->event p99 (us)", |r| r.p99, "%.1f"),
        ("8 conflicting tx (commits/s)", |r| r.tx, "%.0f"),
        ("tree write (us/op, pipelined)", |r| r.tree_w, "%.2f"),
        ("tree read (us/op, pipelined)", |r| r.tree_r, "%.2f"),
        ("tree RSS growth (bytes/node)", |r| r.per_node, "%.0f"),
        ("RSS with tree (MiB)", |r| r.rss, "%.1f"),
    ];
    println!(
        "{repeat} rounds of {secs} s; load average {load_before} before, {} after \
         (other processes share the CPUs: compare within one run)",
        loadavg()
    );
    print!("{:<34}", format!("workload ({nodes} nodes tree)"));
    for s in &servers {
        print!("{:>15}", s.name);
    }
    for s in servers.iter().filter(|s| s.name != baseline) {
        print!("{:>15}", format!("{}/{}", s.name, baseline));
    }
    println!();
    for (label, f, fmt) in rows {
        print!("{label:<34}");
        for r in &results {
            let cell = match r {
                Some(r) if fmt == "%.0f" => format!("{:.0}", f(r)),
                Some(r) if fmt == "%.1f" => format!("{:.1}", f(r)),
                Some(r) => format!("{:.2}", f(r)),
                None => "error".into(),
            };
            print!("{cell:>15}");
        }
        for (s, r) in servers.iter().zip(&results) {
            if s.name == baseline {
                continue;
            }
            let cell = match (r, &base) {
                (Some(r), Some(b)) => format!("{:.2}x", f(r) / f(b)),
                _ => "n/a".into(),
            };
            print!("{cell:>15}");
        }
        println!();
    }
    let floor = if floors.is_empty() {
        None
    } else {
        print_floors(&floors, floor_samples, base.as_ref())
    };
    if let (Some(b), Some((i, _))) = (
        &base,
        servers
            .iter()
            .enumerate()
            .find(|(_, s)| s.name == "ferrostored"),
    ) {
        if let Some(f) = &results[i] {
            let verdict = |ok: bool| if ok { "MET" } else { "NOT MET" };
            println!("targets (ferrostored against {baseline}):");
            println!(
                "  >= 2x throughput, 1 connection:   {:.2}x  {}",
                f.one / b.one,
                verdict(f.one >= 2.0 * b.one)
            );
            println!(
                "  >= 2x throughput, 8 connections:  {:.2}x  {}",
                f.eight / b.eight,
                verdict(f.eight >= 2.0 * b.eight)
            );
            println!(
                "  <= 1/2 server CPU per request:    {:.2}x (1 conn), {:.2}x (8 conn)  {}",
                f.one_cpu / b.one_cpu,
                f.eight_cpu / b.eight_cpu,
                verdict(f.one_cpu <= 0.5 * b.one_cpu && f.eight_cpu <= 0.5 * b.eight_cpu)
            );
            println!(
                "  watch p99 <= 1/2:                 {:.2}x  {}",
                f.p99 / b.p99,
                verdict(f.p99 <= 0.5 * b.p99)
            );
            println!(
                "  memory per node (report only):    {:.0} bytes (baseline {:.0})",
                f.per_node, b.per_node
            );
            if let Some(fl) = floor {
                println!(
                    "  the floor (best server doing no work): {:.2}x throughput with 8 connections, \
                     {:.2}x CPU/request (1 conn), {:.2}x (8 conn)",
                    fl.eight / b.eight,
                    fl.one_cpu / b.one_cpu,
                    fl.eight_cpu / b.eight_cpu
                );
            }
        }
    }
    if results.iter().any(Option::is_none) {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
