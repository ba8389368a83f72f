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
//! mechanisms are `arch::switch` (the context switch) and `mm::Stack` (guarded stacks), in
//! the privileged crate `xen-pv`.

pub mod policy;

#[cfg(target_os = "none")]
mod thread;

#[cfg(target_os = "none")]
pub use thread::*;

pub use crate::mm::{STACK_CANARY, STACK_SIZE};
