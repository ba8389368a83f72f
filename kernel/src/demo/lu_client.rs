//! Live-update test guest (`cmdline = "lu-client"`): keeps using the store while the stub is
//! replaced under it (tests/boot/stub-live-update.sh). It opens a transaction first and
//! keeps it open; then, until dom0 writes `data/lu/stop`, it writes a counter to
//! `data/lu/n` and reads it back, and writes `data/lu/watched` and waits for that watch's
//! event, each within 10 s (a request or event lost in a switch fails it); last it commits
//! the transaction, which must succeed, and checks that no watch event came twice.
//!
//! Markers: `lu-client: transaction open, watching data/lu/watched` ·
//! `lu-client: <n> write+read pairs, <n> watch events for <n> writes, each once` ·
//! `lu-client: the transaction opened before the updates committed: data/lutx/value =
//! "committed"` · `lu-client: done` — or `lu-client: FAILED: <what>`.

use crate::start_info::StartInfo;
use crate::xenbus::client::XsError;
use crate::xenbus::{self, Cancel};
use crate::{println, sched, time};
use alloc::format;
use alloc::string::String;

/// How long one request or one watch event may take, updates included.
const WAIT_NS: u64 = 10_000_000_000;
/// Pause between rounds.
const ROUND_NS: u64 = 20_000_000;
const TOKEN: &str = "lu";

static NEVER: Cancel = Cancel::new();

type Step<T> = Result<T, String>;

fn ok<T>(what: &str, r: Result<T, XsError>) -> Step<T> {
    r.map_err(|e| format!("{what}: {e}"))
}

/// Runs the mode; prints `done` or `FAILED`.
pub fn run(si: &StartInfo) {
    match steps(si) {
        Ok(()) => println!("lu-client: done"),
        Err(e) => println!("lu-client: FAILED: {e}"),
    }
}

/// The next event of our watch, or why there was none in time.
fn event() -> Step<String> {
    let deadline = time::now_ns() + WAIT_NS;
    ok(
        "waiting for a watch event",
        xenbus::read_watch(TOKEN, deadline, &NEVER),
    )
    .map(|ev| ev.path)
}

fn steps(si: &StartInfo) -> Step<()> {
    xenbus::init(si).map_err(|e| format!("xenbus::init: {e}"))?;
    ok("mkdir data/lutx", xenbus::mkdir(0, "data/lutx"))?;
    let tx = ok("transaction start", xenbus::transaction_start())?;
    ok(
        "write in the transaction",
        xenbus::write(tx, "data/lutx/value", b"committed"),
    )?;
    ok(
        "watch data/lu/watched",
        xenbus::watch("data/lu/watched", TOKEN),
    )?;
    let first = event()?;
    if first != "data/lu/watched" {
        return Err(format!("first event for {first}, not data/lu/watched"));
    }
    println!("lu-client: transaction open, watching data/lu/watched");
    let mut pairs = 0u64;
    let mut events = 0u64;
    loop {
        match xenbus::read(0, "data/lu/stop") {
            Ok(_) => break,
            Err(XsError::Server(xenstore_engine::Error::Noent)) => {}
            Err(e) => return Err(format!("read data/lu/stop: {e}")),
        }
        let value = format!("{pairs}");
        ok(
            "write data/lu/n",
            xenbus::write(0, "data/lu/n", value.as_bytes()),
        )?;
        let back = ok("read data/lu/n", xenbus::read(0, "data/lu/n"))?;
        if back != value.as_bytes() {
            return Err(format!(
                "read data/lu/n = {:?} after writing {value}",
                String::from_utf8_lossy(&back)
            ));
        }
        pairs += 1;
        ok(
            "write data/lu/watched",
            xenbus::write(0, "data/lu/watched", value.as_bytes()),
        )?;
        let path = event()?;
        if path != "data/lu/watched" {
            return Err(format!("an event for {path}"));
        }
        events += 1;
        sched::sleep_until(time::now_ns() + ROUND_NS);
    }
    // An event delivered twice would be waiting now.
    let deadline = time::now_ns() + 500_000_000;
    match xenbus::read_watch(TOKEN, deadline, &NEVER) {
        Err(XsError::TimedOut) => {}
        Ok(ev) => return Err(format!("an extra watch event for {}", ev.path)),
        Err(e) => return Err(format!("waiting for extra events: {e}")),
    }
    println!(
        "lu-client: {pairs} write+read pairs, {events} watch events for {pairs} writes, each once"
    );
    ok("transaction commit", xenbus::transaction_end(tx, true))?;
    let v = ok("read data/lutx/value", xenbus::read(0, "data/lutx/value"))?;
    println!(
        "lu-client: the transaction opened before the updates committed: data/lutx/value = \"{}\"",
        String::from_utf8_lossy(&v)
    );
    Ok(())
}
