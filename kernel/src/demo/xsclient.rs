//! Xenstore-client mode (`cmdline = "xsclient"`, xen-config/xsclient.cfg): the kernel uses
//! its own store ring through [`crate::xenbus`] — reads, writes, errors, a value larger than
//! the ring, requests from several threads in flight together, a transaction retried after
//! EAGAIN, an aborted transaction, and watches: events interleaved with replies, a wait that
//! times out, a wait cancelled from another thread, an event for another thread's write and
//! one for dom0's write. Asserted by tests/boot/stub-guest-xsclient.sh.
//!
//! Markers (one per line; `<n>` are numbers that vary, everything else is exact):
//! - `xsclient: connected to the store ring (port <n>)`
//! - `xsclient: read domid = <n>` · `xsclient: read name = ferrostore-xsclient`
//! - `xsclient: wrote data/hello, read back "world"`
//! - `xsclient: directory data = dir hello`
//! - `xsclient: rm data/dir, then read -> ENOENT`
//! - `xsclient: read data/missing -> ENOENT`
//! - `xsclient: read /local/domain/0/name -> EACCES`
//! - `xsclient: write /tool/evil -> EACCES`
//! - `xsclient: 1800-byte value crossed the 1024-byte ring both ways intact`
//! - `xsclient: 4 threads x 25 write+read pairs, all replies matched (<n> in flight at most)`
//! - `xsclient: transaction: attempt 1 -> EAGAIN, attempt 2 committed, data/counter = 101`
//! - `xsclient: aborted transaction left no trace (ENOENT)`
//! - `xsclient: watch data/watched fired at registration`
//! - `xsclient: 3 writes, then their events in order: data/watched/a data/watched/b data/watched/c`
//! - `xsclient: read_watch timed out after <n> ms (deadline 200 ms)`
//! - `xsclient: read_watch cancelled from another thread; requests ran during and after the wait`
//! - `xsclient: a waiting thread got the event of another thread's write: data/watched/d`
//! - `xsclient: waiting for dom0 to write data/from-dom0`
//! - `xsclient: dom0 wrote data/from-dom0 = "hello-from-dom0"`
//! - `xsclient: unwatch ok, again -> ENOENT`
//! - `xsclient: stats: <n> requests, <n> watch events, <n> ring-full waits, <n> split replies, <n> stray`
//! - `xsclient: done` — or `xsclient: FAILED: <what>` and the mode stops there.

use crate::start_info::StartInfo;
use crate::sync::IrqMutex;
use crate::xenbus::client::{WatchEvent, XsError};
use crate::xenbus::{self, Cancel};
use crate::{println, sched, time};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};
use xenstore_engine::Error;

/// Size of the value that must cross the ring in pieces (under the 2048-byte node quota).
const BIG: usize = 1800;
/// Threads issuing requests together, and write+read pairs each.
const THREADS: u32 = 4;
const PAIRS: u32 = 25;
/// The deadline of the wait that must time out.
const TIMEOUT_MS: u64 = 200;
/// How long a wait that must succeed (or be cancelled) may take.
const LONG_NS: u64 = 60_000_000_000;
const MS: u64 = 1_000_000;

static PAIRS_OK: AtomicU32 = AtomicU32::new(0);
static CANCEL: Cancel = Cancel::new();
static NEVER: Cancel = Cancel::new();
static WAITED: IrqMutex<Option<Result<WatchEvent, XsError>>> = IrqMutex::new(None);

type Step<T> = Result<T, String>;

/// `r`, or a failure line naming `what`.
fn ok<T>(what: &str, r: Result<T, XsError>) -> Step<T> {
    r.map_err(|e| format!("{what}: {e}"))
}

fn expect_err<T>(what: &str, r: Result<T, XsError>, want: Error) -> Step<()> {
    match r {
        Err(XsError::Server(e)) if e == want => {
            println!("xsclient: {what} -> {}", want.name());
            Ok(())
        }
        Err(e) => Err(format!("{what}: expected {}, got {e}", want.name())),
        Ok(_) => Err(format!("{what}: expected {}, it succeeded", want.name())),
    }
}

fn read_str(path: &str) -> Step<String> {
    let v = ok(&format!("read {path}"), xenbus::read(0, path))?;
    Ok(String::from_utf8_lossy(&v).into_owned())
}

fn deadline(ns: u64) -> u64 {
    time::now_ns() + ns
}

/// Runs the mode; prints `xsclient: done` or the failure.
pub fn run(si: &StartInfo) {
    match steps(si) {
        Ok(()) => println!("xsclient: done"),
        Err(e) => println!("xsclient: FAILED: {e}"),
    }
}

fn steps(si: &StartInfo) -> Step<()> {
    xenbus::init(si).map_err(|e| format!("xenbus::init: {e}"))?;
    println!(
        "xsclient: connected to the store ring (port {})",
        si.store_evtchn
    );
    basics()?;
    big_value()?;
    threads()?;
    transactions()?;
    watches()?;
    let s = xenbus::stats();
    println!(
        "xsclient: stats: {} requests, {} watch events, {} ring-full waits, {} split replies, {} stray",
        s.requests, s.events, s.ring_full, s.split_messages, s.stray_replies
    );
    Ok(())
}

fn basics() -> Step<()> {
    println!("xsclient: read domid = {}", read_str("domid")?);
    println!("xsclient: read name = {}", read_str("name")?);
    ok("write data/hello", xenbus::write(0, "data/hello", b"world"))?;
    println!(
        "xsclient: wrote data/hello, read back \"{}\"",
        read_str("data/hello")?
    );
    ok("mkdir data/dir", xenbus::mkdir(0, "data/dir"))?;
    let mut names = ok("directory data", xenbus::directory(0, "data"))?;
    names.sort();
    println!("xsclient: directory data = {}", names.join(" "));
    ok("rm data/dir", xenbus::rm(0, "data/dir"))?;
    expect_err(
        "rm data/dir, then read",
        xenbus::read(0, "data/dir"),
        Error::Noent,
    )?;
    expect_err(
        "read data/missing",
        xenbus::read(0, "data/missing"),
        Error::Noent,
    )?;
    expect_err(
        "read /local/domain/0/name",
        xenbus::read(0, "/local/domain/0/name"),
        Error::Acces,
    )?;
    expect_err(
        "write /tool/evil",
        xenbus::write(0, "/tool/evil", b"x"),
        Error::Acces,
    )
}

fn big_value() -> Step<()> {
    let value: Vec<u8> = (0..BIG).map(|i| b'a' + (i % 26) as u8).collect();
    ok("write data/big", xenbus::write(0, "data/big", &value))?;
    let back = ok("read data/big", xenbus::read(0, "data/big"))?;
    if back != value {
        return Err(format!(
            "data/big read back {} bytes, not the {BIG} written",
            back.len()
        ));
    }
    println!("xsclient: {BIG}-byte value crossed the 1024-byte ring both ways intact");
    Ok(())
}

fn pairs(t: u32) {
    let path = format!("data/thread{t}");
    for j in 0..PAIRS {
        let v = format!("{t}-{j}");
        if xenbus::write(0, &path, v.as_bytes()).is_err() {
            return;
        }
        match xenbus::read(0, &path) {
            Ok(back) if back == v.as_bytes() => {
                PAIRS_OK.fetch_add(1, Ordering::Relaxed);
            }
            _ => return,
        }
    }
}

fn threads() -> Step<()> {
    let mut handles = Vec::new();
    for t in 0..THREADS {
        let h = sched::spawn("xs-pairs", move || pairs(t)).map_err(|e| format!("spawn: {e}"))?;
        handles.push(h);
    }
    handles.into_iter().for_each(sched::join);
    let done = PAIRS_OK.load(Ordering::Relaxed);
    if done != THREADS * PAIRS {
        return Err(format!(
            "{done} of {} write+read pairs matched",
            THREADS * PAIRS
        ));
    }
    println!(
        "xsclient: {THREADS} threads x {PAIRS} write+read pairs, all replies matched ({} in flight at most)",
        xenbus::stats().max_in_flight
    );
    Ok(())
}

fn transactions() -> Step<()> {
    ok("write data/counter", xenbus::write(0, "data/counter", b"0"))?;
    let result = xenbus::transaction(5, |tx, attempt| {
        let v = xenbus::read(tx, "data/counter")?;
        let n: u32 = core::str::from_utf8(&v)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(XsError::BadReply)?;
        if attempt == 1 {
            // A conflicting write outside the transaction: the commit must fail with EAGAIN.
            xenbus::write(0, "data/counter", b"100")?;
        }
        xenbus::write(tx, "data/counter", format!("{}", n + 1).as_bytes())
    });
    let ((), attempt) = ok("transaction on data/counter", result)?;
    let counter = read_str("data/counter")?;
    if attempt != 2 || counter != "101" {
        return Err(format!(
            "transaction committed on attempt {attempt} with data/counter = {counter}, expected 2 and 101"
        ));
    }
    println!(
        "xsclient: transaction: attempt 1 -> EAGAIN, attempt 2 committed, data/counter = {counter}"
    );

    let tx = ok("transaction_start", xenbus::transaction_start())?;
    ok(
        "write data/aborted in a transaction",
        xenbus::write(tx, "data/aborted", b"x"),
    )?;
    ok("transaction_end(abort)", xenbus::transaction_end(tx, false))?;
    match xenbus::read(0, "data/aborted") {
        Err(XsError::Server(Error::Noent)) => {
            println!("xsclient: aborted transaction left no trace (ENOENT)");
            Ok(())
        }
        other => Err(format!(
            "read data/aborted after abort: expected ENOENT, got {other:?}"
        )),
    }
}

/// The next event of `token`, which must be for `path`.
fn expect_event(token: &str, path: &str) -> Step<()> {
    let ev = ok(
        &format!("read_watch {token}"),
        xenbus::read_watch(token, deadline(LONG_NS), &NEVER),
    )?;
    if ev.path != path {
        return Err(format!(
            "watch {token}: event for {}, expected {path}",
            ev.path
        ));
    }
    Ok(())
}

fn watches() -> Step<()> {
    ok("watch data/watched", xenbus::watch("data/watched", "w1"))?;
    expect_event("w1", "data/watched")?;
    println!("xsclient: watch data/watched fired at registration");

    let paths = ["data/watched/a", "data/watched/b", "data/watched/c"];
    for p in paths {
        ok(&format!("write {p}"), xenbus::write(0, p, b"1"))?;
    }
    for p in paths {
        expect_event("w1", p)?;
    }
    println!(
        "xsclient: 3 writes, then their events in order: {}",
        paths.join(" ")
    );

    let start = time::now_ns();
    match xenbus::read_watch("w1", start + TIMEOUT_MS * MS, &NEVER) {
        Err(XsError::TimedOut) => {}
        other => {
            return Err(format!(
                "quiet read_watch: expected TimedOut, got {other:?}"
            ))
        }
    }
    let waited = (time::now_ns() - start) / MS;
    if waited < TIMEOUT_MS {
        return Err(format!("read_watch timed out early, after {waited} ms"));
    }
    println!("xsclient: read_watch timed out after {waited} ms (deadline {TIMEOUT_MS} ms)");

    cancelled_wait()?;
    event_for_other_thread()?;

    ok(
        "watch data/from-dom0",
        xenbus::watch("data/from-dom0", "dom0"),
    )?;
    expect_event("dom0", "data/from-dom0")?;
    println!("xsclient: waiting for dom0 to write data/from-dom0");
    expect_event("dom0", "data/from-dom0")?;
    println!(
        "xsclient: dom0 wrote data/from-dom0 = \"{}\"",
        read_str("data/from-dom0")?
    );

    ok("unwatch w1", xenbus::unwatch("data/watched", "w1"))?;
    match xenbus::unwatch("data/watched", "w1") {
        Err(XsError::Server(Error::Noent)) => {
            println!("xsclient: unwatch ok, again -> ENOENT");
            Ok(())
        }
        other => Err(format!("second unwatch: expected ENOENT, got {other:?}")),
    }
}

/// A thread waits (60 s deadline) on a quiet watch; this thread makes requests meanwhile,
/// then cancels the wait; the waiter must return `Cancelled` and the client stay usable.
fn cancelled_wait() -> Step<()> {
    CANCEL.reset();
    *WAITED.lock() = None;
    let h = sched::spawn("xs-waiter", || {
        let r = xenbus::read_watch("w1", deadline(LONG_NS), &CANCEL);
        *WAITED.lock() = Some(r);
    })
    .map_err(|e| format!("spawn: {e}"))?;
    sched::sleep_until(deadline(50 * MS));
    if WAITED.lock().is_some() {
        return Err("the waiter returned before it was cancelled".into());
    }
    if read_str("data/hello")? != "world" {
        return Err("read data/hello during the wait gave another value".into());
    }
    CANCEL.cancel();
    sched::join(h);
    match WAITED.lock().take() {
        Some(Err(XsError::Cancelled)) => {}
        other => return Err(format!("cancelled read_watch returned {other:?}")),
    }
    ok(
        "write after cancel",
        xenbus::write(0, "data/after-cancel", b"1"),
    )?;
    if read_str("data/after-cancel")? != "1" {
        return Err("read data/after-cancel gave another value".into());
    }
    println!(
        "xsclient: read_watch cancelled from another thread; requests ran during and after the wait"
    );
    Ok(())
}

/// A thread waits for an event that this thread's write causes.
fn event_for_other_thread() -> Step<()> {
    *WAITED.lock() = None;
    let h = sched::spawn("xs-waiter", || {
        let r = xenbus::read_watch("w1", deadline(LONG_NS), &NEVER);
        *WAITED.lock() = Some(r);
    })
    .map_err(|e| format!("spawn: {e}"))?;
    sched::yield_now();
    ok(
        "write data/watched/d",
        xenbus::write(0, "data/watched/d", b"1"),
    )?;
    sched::join(h);
    match WAITED.lock().take() {
        Some(Ok(ev)) if ev.path == "data/watched/d" => {
            println!(
                "xsclient: a waiting thread got the event of another thread's write: {}",
                ev.path
            );
            Ok(())
        }
        other => Err(format!("the waiting thread got {other:?}")),
    }
}
