//! Cooperative scheduler: threads with their own 16 KiB stacks (guard page below),
//! [`yield_now`], [`sleep_until`], [`WaitQueue`]s that event handlers wake, [`join`], and an
//! idle path that blocks the domain (`SCHEDOP_block` with a one-shot timer at the earliest
//! deadline) when nothing can run.
//!
//! Model: one vCPU, no preemption. [`init`] adopts the calling (boot) context as thread 0;
//! [`spawn`] adds threads; whichever thread gives up the CPU runs the scheduler on its own
//! stack, so there is no idle thread: when nothing is runnable the current stack blocks the
//! domain. Scheduler state lives in an `IrqMutex` (events masked while held) and events stay
//! masked across a context switch; each thread restores its own event state when it resumes.
//! [`run`] retires the boot thread for good. Decisions are in [`policy`] (host-tested); the
//! mechanisms are `arch::switch` (the context switch) and `mm::Stack` (guarded stacks).

pub mod policy;

#[cfg(any(test, target_os = "none"))]
mod switch;
#[cfg(target_os = "none")]
mod thread;

#[cfg(target_os = "none")]
pub(crate) use switch::initial_frame;
#[cfg(target_os = "none")]
pub use thread::*;

/// Stack size of spawned threads.
pub const STACK_SIZE: usize = 16 * 1024;
/// Value written at the low end of every stack; found changed on a switch = stack overflow.
pub const STACK_CANARY: u64 = 0x5354_4143_4b5f_454e;
