//! Threads demo: two threads ping-pong 100 times over a loopback event channel (alloc_unbound
//! to ourselves + bind_interdomain to that port), each waiting on a wait queue that its port's
//! event handler wakes; three threads taking turns with `yield_now` (round robin); then
//! sleep_until and a wait with a deadline that times out. Must run
//! in a thread context after `sched::init` (the boot thread is fine: it joins the two).
//!
//! Markers (one per line; `<n>` are numbers that vary, everything else is exact):
//! - `threads: ping and pong spawned`
//! - `ping-pong: 100 round trips over event channel <n><-><n>`
//! - `ping-pong: events delivered: 100 to ping, 100 to pong`
//! - `sched: yield_now round robin 123123123`
//! - `sched: sleep_until woke on time`
//! - `sched: wait with deadline timed out on time`
//! - `sched: <n> threads, <n> context switches`
//! - `threads: demo ok`
//!
//! Failures print a line starting `threads: FAILED` and the demo stops there.

use crate::events::{self, Port};
use crate::hypercall::DOMID_SELF;
use crate::sched::{self, WaitQueue};
use crate::{println, time};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Round trips the two threads make.
pub const ROUND_TRIPS: u32 = 100;
/// Threads in the round-robin check, and turns each takes.
const YIELDERS: u64 = 3;
const YIELDS: u32 = 3;
/// The order the round-robin check expects: every thread once per turn, in spawn order.
const ROUND_ROBIN: u64 = 123_123_123;
/// How long the sleep check sleeps.
const SLEEP_NS: u64 = 20_000_000;
/// How long the deadline check waits for a condition that never comes true.
const WAIT_NS: u64 = 10_000_000;

static PING_SEQ: AtomicU32 = AtomicU32::new(0);
static PONG_SEQ: AtomicU32 = AtomicU32::new(0);
static PING_EVENTS: AtomicU64 = AtomicU64::new(0);
static PONG_EVENTS: AtomicU64 = AtomicU64::new(0);
static PING_PORT: AtomicU32 = AtomicU32::new(0);
static PONG_PORT: AtomicU32 = AtomicU32::new(0);
static PING_WAIT: WaitQueue = WaitQueue::new();
static PONG_WAIT: WaitQueue = WaitQueue::new();
static NEVER: WaitQueue = WaitQueue::new();
/// Decimal digits of the yielders' ids, in the order they ran.
static ORDER: AtomicU64 = AtomicU64::new(0);

fn on_ping_port(_port: Port) {
    PING_EVENTS.fetch_add(1, Ordering::Relaxed);
    PING_WAIT.wake_all();
}

fn on_pong_port(_port: Port) {
    PONG_EVENTS.fetch_add(1, Ordering::Relaxed);
    PONG_WAIT.wake_all();
}

fn ping() {
    let port = PING_PORT.load(Ordering::Relaxed);
    for i in 1..=ROUND_TRIPS {
        PING_SEQ.store(i, Ordering::Release);
        if let Err(e) = events::send(port) {
            println!("threads: FAILED: ping send on port {port}: {e}");
            return;
        }
        PING_WAIT.wait_until(|| PONG_SEQ.load(Ordering::Acquire) >= i);
    }
}

fn pong() {
    let port = PONG_PORT.load(Ordering::Relaxed);
    for i in 1..=ROUND_TRIPS {
        PONG_WAIT.wait_until(|| PING_SEQ.load(Ordering::Acquire) >= i);
        PONG_SEQ.store(i, Ordering::Release);
        if let Err(e) = events::send(port) {
            println!("threads: FAILED: pong send on port {port}: {e}");
            return;
        }
    }
}

/// Runs the demo; prints `threads: demo ok` on success.
pub fn run() {
    if ping_pong() && round_robin() && sleeps() {
        let st = sched::stats();
        println!(
            "sched: {} threads, {} context switches",
            st.threads, st.switches
        );
        println!("threads: demo ok");
    }
}

fn ping_pong() -> bool {
    let a = match events::alloc_unbound(DOMID_SELF) {
        Ok(p) => p,
        Err(e) => {
            println!("threads: FAILED: EVTCHNOP_alloc_unbound: {e}");
            return false;
        }
    };
    let b = match events::bind_interdomain(DOMID_SELF, a) {
        Ok(p) => p,
        Err(e) => {
            println!("threads: FAILED: EVTCHNOP_bind_interdomain to port {a}: {e}");
            let _ = events::close(a);
            return false;
        }
    };
    // Xen marks a freshly bound port pending; drop that so only the pings count.
    events::clear_pending(b);
    PING_PORT.store(a, Ordering::Relaxed);
    PONG_PORT.store(b, Ordering::Relaxed);
    events::set_handler(a, on_ping_port);
    events::set_handler(b, on_pong_port);
    events::unmask(a);
    events::unmask(b);

    let (t_ping, t_pong) = match (sched::spawn("ping", ping), sched::spawn("pong", pong)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            println!("threads: FAILED: spawn: {e}");
            return false;
        }
    };
    println!("threads: ping and pong spawned");
    sched::join(t_ping);
    sched::join(t_pong);
    let _ = events::close(a);
    let _ = events::close(b);

    let (pinged, ponged) = (
        PING_SEQ.load(Ordering::Acquire),
        PONG_SEQ.load(Ordering::Acquire),
    );
    if pinged != ROUND_TRIPS || ponged != ROUND_TRIPS {
        println!("threads: FAILED: ping-pong stopped at ping {pinged}, pong {ponged}");
        return false;
    }
    println!("ping-pong: {ROUND_TRIPS} round trips over event channel {a}<->{b}");
    let (to_ping, to_pong) = (
        PING_EVENTS.load(Ordering::Relaxed),
        PONG_EVENTS.load(Ordering::Relaxed),
    );
    println!("ping-pong: events delivered: {to_ping} to ping, {to_pong} to pong");
    true
}

fn yielder(id: u64) {
    for _ in 0..YIELDS {
        let _ = ORDER.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |o| Some(o * 10 + id));
        sched::yield_now();
    }
}

fn round_robin() -> bool {
    let mut handles = [None; YIELDERS as usize];
    for (i, h) in handles.iter_mut().enumerate() {
        match sched::spawn("yielder", move || yielder(i as u64 + 1)) {
            Ok(t) => *h = Some(t),
            Err(e) => {
                println!("threads: FAILED: spawn: {e}");
                return false;
            }
        }
    }
    handles.into_iter().flatten().for_each(sched::join);
    let order = ORDER.load(Ordering::Relaxed);
    if order != ROUND_ROBIN {
        println!("threads: FAILED: yielders ran in order {order}, expected {ROUND_ROBIN}");
        return false;
    }
    println!("sched: yield_now round robin {order}");
    true
}

fn sleeps() -> bool {
    let deadline = time::now_ns() + SLEEP_NS;
    sched::sleep_until(deadline);
    let now = time::now_ns();
    if now < deadline {
        println!("threads: FAILED: sleep_until({deadline}) returned at {now}");
        return false;
    }
    println!("sched: sleep_until woke on time");

    let deadline = time::now_ns() + WAIT_NS;
    if NEVER.wait_until_or(deadline, || false) {
        println!("threads: FAILED: a wait for a false condition succeeded");
        return false;
    }
    let now = time::now_ns();
    if now < deadline {
        println!("threads: FAILED: wait deadline {deadline} ended early at {now}");
        return false;
    }
    println!("sched: wait with deadline timed out on time");
    true
}
