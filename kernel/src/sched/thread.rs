//! Threads, the schedule loop, sleeping, joining and wait queues (kernel target).

use super::policy::{Next, Policy, Slot};
use crate::arch::switch::{switch_to, Context};
use crate::mm::{MmError, Stack};
use crate::sync::IrqMutex;
use crate::{events, time};
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

type Entry = Box<dyn FnOnce() + Send>;

struct Thread {
    id: u64,
    name: &'static str,
    /// Its CPU context and stack (no stack of its own for the boot thread).
    ctx: Context,
    entry: Option<Entry>,
}

struct Sched {
    policy: Policy,
    threads: Vec<Option<Box<Thread>>>,
    next_id: u64,
    switches: u64,
}

static SCHED: IrqMutex<Option<Sched>> = IrqMutex::new(None);
/// Woken whenever a thread exits (for [`join`]).
static EXITED: WaitQueue = WaitQueue::new();

fn with<R>(f: impl FnOnce(&mut Sched) -> R) -> R {
    let mut g = SCHED.lock();
    match g.as_mut() {
        Some(s) => f(s),
        None => panic!("sched used before sched::init"),
    }
}

/// A spawned thread, for [`join`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadHandle {
    slot: Slot,
    id: u64,
}

/// Scheduler counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedStats {
    /// Threads alive, the boot thread included until [`run`].
    pub threads: usize,
    /// Context switches since [`init`].
    pub switches: u64,
}

/// Adopts the calling context as thread 0 ("boot"). Call once, after `mm::init`.
pub fn init() {
    let mut g = SCHED.lock();
    assert!(g.is_none(), "sched::init called twice");
    let Some(ctx) = Context::adopt_boot() else {
        panic!("sched::init: the boot context was adopted before");
    };
    *g = Some(Sched {
        policy: Policy::new(),
        threads: vec![Some(Box::new(Thread {
            id: 0,
            name: "boot",
            ctx,
            entry: None,
        }))],
        next_id: 1,
        switches: 0,
    });
}

/// Starts `f` in a new thread named `name` with a [`super::STACK_SIZE`] stack (guard page
/// below it); it first runs when the current thread yields or blocks. Fails only when the
/// heap has no room for the stack.
pub fn spawn(
    name: &'static str,
    f: impl FnOnce() + Send + 'static,
) -> Result<ThreadHandle, MmError> {
    let ctx = Context::new(Stack::new()?, thread_start);
    Ok(with(|s| {
        let slot = s.policy.add();
        let id = s.next_id;
        s.next_id += 1;
        let t = Box::new(Thread {
            id,
            name,
            ctx,
            entry: Some(Box::new(f)),
        });
        if slot == s.threads.len() {
            s.threads.push(Some(t));
        } else {
            s.threads[slot] = Some(t);
        }
        ThreadHandle { slot, id }
    }))
}

/// Scheduler counters now.
pub fn stats() -> SchedStats {
    with(|s| SchedStats {
        threads: s.policy.live(),
        switches: s.switches,
    })
}

/// Entry of every spawned thread (reached by the first switch to it).
extern "C" fn thread_start() -> ! {
    after_switch();
    let entry = with(|s| {
        let slot = s.policy.current();
        s.threads[slot].as_mut().and_then(|t| t.entry.take())
    });
    events::enable();
    if let Some(f) = entry {
        f();
    }
    exit();
}

/// Frees the stack of a thread that exited before the switch that led here.
fn after_switch() {
    let zombie = with(|s| {
        let z = s.policy.take_zombie()?;
        s.threads.get_mut(z).and_then(Option::take)
    });
    drop(zombie);
}

/// Gives up the CPU after the caller changed the current thread's state (yield/block/exit);
/// returns when the thread runs again. Call with events disabled.
fn schedule() {
    loop {
        let next = with(|s| {
            let next = s.policy.pick(time::now_ns());
            match next {
                Next::Switch { from, to } => {
                    let prev = s.threads[from].as_ref().map(|t| {
                        if t.ctx.stack().is_some_and(|st| !st.canary_intact()) {
                            panic!("sched: thread '{}' overflowed its stack", t.name);
                        }
                    });
                    let next = s.threads[to].as_ref().map(|t| t.ctx.clone());
                    s.switches += 1;
                    match (prev, next) {
                        (Some(()), Some(n)) => Ok(n),
                        _ => panic!("sched: switch {from}->{to} between missing threads"),
                    }
                }
                Next::Stay => Err(None),
                Next::Idle(deadline) => Err(Some(deadline)),
            }
        });
        match next {
            Ok(next) => {
                switch_to(next);
                after_switch();
                return;
            }
            Err(None) => return,
            Err(Some(deadline)) => time::block_until(deadline.unwrap_or(0)),
        }
    }
}

/// Lets every other runnable thread run once, then continues.
pub fn yield_now() {
    let were = events::disable();
    with(|s| s.policy.yield_current());
    schedule();
    events::restore(were);
}

/// Sleeps until system time `deadline_ns` (see `time::now_ns`).
pub fn sleep_until(deadline_ns: u64) {
    while time::now_ns() < deadline_ns {
        let were = events::disable();
        with(|s| s.policy.block_current(Some(deadline_ns)));
        schedule();
        events::restore(were);
    }
}

/// Ends the current thread (returning from a thread's function does the same).
pub fn exit() -> ! {
    events::disable();
    with(|s| s.policy.exit_current());
    EXITED.wake_all();
    schedule();
    panic!("sched: an exited thread was scheduled again");
}

/// Retires the boot thread: from now on only spawned threads run, and the domain blocks when
/// none can.
pub fn run() -> ! {
    exit()
}

/// Waits until the thread has exited.
pub fn join(h: ThreadHandle) {
    EXITED.wait_until(|| {
        with(|s| {
            let same = s.threads.get(h.slot).and_then(Option::as_ref).map(|t| t.id) == Some(h.id);
            !same || s.policy.state(h.slot) == Some(super::policy::State::Exited)
        })
    });
}

/// Threads waiting for a condition that an event handler (or another thread) makes true.
///
/// Waiters check their condition with events masked before blocking, so a `wake_all` from a
/// handler cannot slip between the check and the block. `wake_all` never allocates.
pub struct WaitQueue {
    waiters: IrqMutex<Vec<Slot>>,
}

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl WaitQueue {
    /// An empty queue (usable in a `static`).
    pub const fn new() -> WaitQueue {
        WaitQueue {
            waiters: IrqMutex::new(Vec::new()),
        }
    }

    /// Blocks until `cond()` is true (checked now and after every wake-up).
    pub fn wait_until(&self, mut cond: impl FnMut() -> bool) {
        self.wait_until_deadline(None, &mut cond);
    }

    /// Blocks until `cond()` is true (returns true) or system time reaches `deadline_ns`
    /// (returns false).
    pub fn wait_until_or(&self, deadline_ns: u64, mut cond: impl FnMut() -> bool) -> bool {
        self.wait_until_deadline(Some(deadline_ns), &mut cond)
    }

    fn wait_until_deadline(&self, deadline: Option<u64>, cond: &mut dyn FnMut() -> bool) -> bool {
        loop {
            let were = events::disable();
            let met = cond();
            if met || deadline.is_some_and(|d| time::now_ns() >= d) {
                if deadline.is_some() {
                    // A deadline wake-up leaves our entry behind: drop it.
                    let me = with(|s| s.policy.current());
                    self.waiters.lock().retain(|&s| s != me);
                }
                events::restore(were);
                return met;
            }
            let me = with(|s| s.policy.current());
            {
                let mut w = self.waiters.lock();
                if !w.contains(&me) {
                    w.push(me);
                }
            }
            with(|s| s.policy.block_current(deadline));
            schedule();
            events::restore(were);
        }
    }

    /// Makes every waiting thread runnable (they re-check their conditions when they run).
    pub fn wake_all(&self) {
        let mut w = self.waiters.lock();
        if w.is_empty() {
            return;
        }
        with(|s| {
            for &slot in w.iter() {
                s.policy.wake(slot);
            }
        });
        w.clear();
    }
}
