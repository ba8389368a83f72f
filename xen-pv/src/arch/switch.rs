//! The context switch (the mechanism under `sched`): a [`Context`] is a thread's CPU state
//! while it is switched out — the stack pointer below its six saved callee-saved registers —
//! together with the stack it runs on. [`switch_to`] saves the running context and resumes
//! another; the arch layer tracks which context runs, so a context can only be resumed at the
//! point it was switched away from (or at its entry, the first time).
//!
//! Lifetimes: the running context is kept alive by [`CURRENT`]; the one being switched away
//! from by [`PREVIOUS`] until the switch completed (the resumed side drops it, so a thread
//! that exited is freed on another stack, never on its own).

use super::sync::IrqMutex;
use crate::mm::Stack;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicUsize, Ordering};

core::arch::global_asm!(
    ".global ferrostore_switch_context",
    "ferrostore_switch_context:",
    "push rbp",
    "push rbx",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "mov [rdi], rsp",
    "mov rsp, rsi",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbx",
    "pop rbp",
    "ret",
);

extern "C" {
    /// Saves the current context's stack pointer to `*save_rsp`, continues on `next_rsp`.
    fn ferrostore_switch_context(save_rsp: *mut usize, next_rsp: usize);
}

struct Inner {
    /// Saved stack pointer while switched out (written only by the switch).
    rsp: AtomicUsize,
    /// The stack the context runs on; None for the boot context (the image's boot stack).
    stack: Option<Stack>,
    /// Entered on the first switch to a new context.
    entry: Option<extern "C" fn() -> !>,
}

/// A thread's execution context; clones share it.
#[derive(Clone)]
pub struct Context(Arc<Inner>);

/// The context running now.
static CURRENT: IrqMutex<Option<Context>> = IrqMutex::new(None);
/// The context just switched away from, kept until the switch completed.
static PREVIOUS: IrqMutex<Option<Context>> = IrqMutex::new(None);

impl Context {
    /// The context running now, on the boot stack; `None` once adopted (the first call).
    pub fn adopt_boot() -> Option<Context> {
        let mut cur = CURRENT.lock();
        if cur.is_some() {
            return None;
        }
        let ctx = Context(Arc::new(Inner {
            rsp: AtomicUsize::new(0),
            stack: None,
            entry: None,
        }));
        *cur = Some(ctx.clone());
        Some(ctx)
    }

    /// A new context that enters `entry` on `stack` when it is first switched to.
    pub fn new(mut stack: Stack, entry: extern "C" fn() -> !) -> Context {
        let rsp = crate::context::initial_frame(stack.words(), context_start);
        Context(Arc::new(Inner {
            rsp: AtomicUsize::new(rsp),
            stack: Some(stack),
            entry: Some(entry),
        }))
    }

    /// The context's own stack (None for the boot context).
    pub fn stack(&self) -> Option<&Stack> {
        self.0.stack.as_ref()
    }
}

/// Drops the context the switch that led here came from (see the module doc).
fn finish_switch() {
    let prev = PREVIOUS.lock().take();
    drop(prev);
}

/// First code of every new context: completes the switch, then enters the context's entry.
extern "C" fn context_start() -> ! {
    finish_switch();
    let entry = CURRENT.lock().as_ref().and_then(|c| c.0.entry);
    match entry {
        Some(f) => f(),
        None => panic!("switch: a new context without an entry"),
    }
}

/// Saves the running context and continues `next`; returns when some thread switches back to
/// the caller's context. Panics if `next` is the running context or no context was adopted.
/// Call with events disabled.
pub fn switch_to(next: Context) {
    let next_rsp = next.0.rsp.load(Ordering::Relaxed);
    let prev = {
        let mut cur = CURRENT.lock();
        let Some(prev) = cur.take() else {
            panic!("switch: no running context (Context::adopt_boot not called)");
        };
        if Arc::ptr_eq(&prev.0, &next.0) {
            *cur = Some(prev);
            panic!("switch: switching to the running context");
        }
        *cur = Some(next);
        prev
    };
    let save = prev.0.rsp.as_ptr();
    *PREVIOUS.lock() = Some(prev);
    // SAFETY: `save` points into the previous context's `Inner`, which PREVIOUS keeps alive
    // until the resumed side runs `finish_switch`, after the asm stored to it. `next_rsp` is
    // the stack pointer of a context that is not running (checked), so it is either its
    // initial frame (laid out by `Context::new` on the stack it owns) or the one the asm saved
    // when it switched away; CURRENT now holds `next`, so its stack lives while it runs, and
    // nothing else runs on that stack in between. The asm saves and restores every
    // callee-saved register, so the caller resumes with its state intact.
    unsafe { ferrostore_switch_context(save, next_rsp) };
    finish_switch();
}
