//! The assembly → Rust boundary: the symbols boot/head.S and boot/entry.S call. `_start` calls
//! the kernel's main function, which the kernel names with [`kernel_main!`](crate::kernel_main);
//! traps, event upcalls and the failsafe callback go to the handlers the kernel registers
//! (a trap before registration crashes the domain).

use crate::arch::frame::TrapFrame;
use crate::hypercall::{self, ShutdownReason};
use spin::Once;

/// What the kernel does with a trap or an event upcall (events masked).
pub type FrameHandler = fn(&mut TrapFrame);
/// What the kernel does when Xen fails to reload a segment (the saved ds, es, fs, gs, rip,
/// cs, rflags, rsp, ss).
pub type FailsafeHandler = fn(&[u64; 9]) -> !;

static TRAP: Once<FrameHandler> = Once::new();
static UPCALL: Once<FrameHandler> = Once::new();
static FAILSAFE: Once<FailsafeHandler> = Once::new();

/// Registers the trap, upcall and failsafe handlers (once; later calls change nothing).
pub fn set_handlers(trap: FrameHandler, upcall: FrameHandler, failsafe: FailsafeHandler) {
    TRAP.call_once(|| trap);
    UPCALL.call_once(|| upcall);
    FAILSAFE.call_once(|| failsafe);
}

fn crash() -> ! {
    loop {
        let _ = hypercall::sched_shutdown(ShutdownReason::Crash);
    }
}

/// Names the kernel's main function, `fn(EntryStartInfo) -> !`, which `_start` calls on the
/// boot stack with the start_info VA Xen passed in rsi.
#[macro_export]
macro_rules! kernel_main {
    ($main:path) => {
        #[no_mangle]
        extern "C" fn ferrostore_start(entry: $crate::arch::EntryStartInfo) -> ! {
            $main(entry)
        }
    };
}

/// Called by `trap_common` (boot/entry.S) with events masked.
#[no_mangle]
extern "C" fn ferrostore_trap(frame: &mut TrapFrame) {
    match TRAP.get() {
        Some(h) => h(frame),
        None => crash(),
    }
}

/// Called by `hypervisor_callback` (boot/entry.S) with events masked by Xen.
#[no_mangle]
extern "C" fn ferrostore_upcall(frame: &mut TrapFrame) {
    match UPCALL.get() {
        Some(h) => h(frame),
        None => crash(),
    }
}

/// Called by `failsafe_callback` (boot/entry.S).
#[no_mangle]
extern "C" fn ferrostore_failsafe(frame: &[u64; 9]) -> ! {
    match FAILSAFE.get() {
        Some(h) => h(frame),
        None => crash(),
    }
}
