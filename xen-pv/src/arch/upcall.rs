//! The PV "cli/sti": event upcalls are masked and unmasked through `vcpu_info`'s
//! `evtchn_upcall_mask`; unmasking with an upcall pending asks Xen to deliver it at once.

use crate::arch;
use crate::hypercall;
use core::sync::atomic::{compiler_fence, Ordering};

/// Masks event upcalls; returns true if they were enabled (pass it to [`restore`]).
pub fn disable() -> bool {
    let was = arch::vcpu().evtchn_upcall_mask.swap(1, Ordering::Relaxed);
    compiler_fence(Ordering::SeqCst);
    was == 0
}

/// Re-enables event upcalls; anything that became pending meanwhile is delivered now.
pub fn enable() {
    let v = arch::vcpu();
    compiler_fence(Ordering::SeqCst);
    v.evtchn_upcall_mask.store(0, Ordering::Relaxed);
    compiler_fence(Ordering::SeqCst);
    if v.evtchn_upcall_pending.load(Ordering::Relaxed) != 0 {
        hypercall::force_event_delivery();
    }
}

/// Restores the state [`disable`] returned.
pub fn restore(were_enabled: bool) {
    if were_enabled {
        enable();
    }
}

/// True while upcalls are enabled.
pub fn are_enabled() -> bool {
    arch::vcpu().evtchn_upcall_mask.load(Ordering::Relaxed) == 0
}

/// Runs `f` with events disabled.
pub fn without<R>(f: impl FnOnce() -> R) -> R {
    let were = disable();
    let r = f();
    restore(were);
    r
}
