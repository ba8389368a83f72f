//! Time: the Xen pvclock (vcpu_time_info read under its version seqlock, TSC delta scaled to
//! ns), the wall clock from shared_info, one-shot timers with `set_timer_op`, and blocking the
//! domain until an event or a deadline (`block_until`). VIRQ_TIMER is bound at init; its
//! handler counts timer events and calls an optional hook (the scheduler wakes sleepers there).

/// Scales a TSC delta to nanoseconds as pvclock defines it: shift first, then a 32.32
/// fixed-point multiply (128-bit product).
pub fn scale_delta(delta: u64, mul: u32, shift: i8) -> u64 {
    let d = if shift >= 0 {
        delta << shift
    } else {
        delta >> shift.unsigned_abs()
    };
    ((u128::from(d) * u128::from(mul)) >> 32) as u64
}

/// Nanoseconds per second.
pub const NS_PER_SEC: u64 = 1_000_000_000;

/// Wall-clock time from Xen's boot-time base (`wc_sec_hi:wc_sec`, `wc_nsec`) plus system time.
pub fn wallclock_from(wc_sec: u64, wc_nsec: u32, system_ns: u64) -> (u64, u32) {
    let total =
        u128::from(wc_sec) * u128::from(NS_PER_SEC) + u128::from(wc_nsec) + u128::from(system_ns);
    (
        (total / u128::from(NS_PER_SEC)) as u64,
        (total % u128::from(NS_PER_SEC)) as u32,
    )
}

#[cfg(target_os = "none")]
pub use kernel::*;

#[cfg(target_os = "none")]
mod kernel {
    use super::scale_delta;
    use crate::arch;
    use crate::events::{self, Port};
    use crate::hypercall::{self, virq};
    use crate::sync::IrqMutex;
    use core::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

    static TIMER_EVENTS: AtomicU64 = AtomicU64::new(0);
    static TIMER_PORT: AtomicU32 = AtomicU32::new(0);
    /// The deadline the one-shot timer is armed for (0: none armed, or it has fired).
    static ARMED: AtomicU64 = AtomicU64::new(0);
    static HOOK: IrqMutex<Option<fn()>> = IrqMutex::new(None);
    /// System time when [`init`] ran.
    static BOOTED_NS: AtomicU64 = AtomicU64::new(0);

    /// System time (pvclock): nanoseconds since Xen booted.
    pub fn now_ns() -> u64 {
        let t = &arch::vcpu().time;
        loop {
            let v1 = t.version.load(Ordering::Acquire);
            if v1 & 1 != 0 {
                arch::pause();
                continue;
            }
            fence(Ordering::Acquire);
            let tsc_ts = t.tsc_timestamp.load(Ordering::Relaxed);
            let sys = t.system_time.load(Ordering::Relaxed);
            let mul = t.tsc_to_system_mul.load(Ordering::Relaxed);
            let shift = t.tsc_shift.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if t.version.load(Ordering::Acquire) != v1 {
                continue;
            }
            let delta = arch::rdtsc().wrapping_sub(tsc_ts);
            return sys.wrapping_add(scale_delta(delta, mul, shift));
        }
    }

    /// Wall-clock time now: (seconds since the epoch, nanoseconds).
    pub fn wallclock() -> (u64, u32) {
        let si = arch::shared_info();
        loop {
            let v1 = si.wc_version.load(Ordering::Acquire);
            if v1 & 1 != 0 {
                arch::pause();
                continue;
            }
            fence(Ordering::Acquire);
            let sec = (u64::from(si.wc_sec_hi.load(Ordering::Relaxed)) << 32)
                | u64::from(si.wc_sec.load(Ordering::Relaxed));
            let nsec = si.wc_nsec.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if si.wc_version.load(Ordering::Acquire) == v1 {
                return super::wallclock_from(sec, nsec, now_ns());
            }
        }
    }

    /// Arms the one-shot timer: one VIRQ_TIMER event at system time `deadline_ns` (0 cancels).
    /// A deadline in the past fires at once.
    pub fn set_timer(deadline_ns: u64) {
        if let Err(e) = hypercall::set_timer_op(deadline_ns) {
            panic!("set_timer_op({deadline_ns}) failed: {e}");
        }
        ARMED.store(deadline_ns, Ordering::Relaxed);
    }

    /// Sets the function VIRQ_TIMER calls (events disabled) after counting the event.
    pub fn set_timer_hook(hook: fn()) {
        *HOOK.lock() = Some(hook);
    }

    fn on_timer(_port: Port) {
        TIMER_EVENTS.fetch_add(1, Ordering::Relaxed);
        ARMED.store(0, Ordering::Relaxed);
        let hook = *HOOK.lock();
        if let Some(h) = hook {
            h();
        }
    }

    /// Timer events (VIRQ_TIMER) received since `init`.
    pub fn timer_events() -> u64 {
        TIMER_EVENTS.load(Ordering::Relaxed)
    }

    /// Nanoseconds since this kernel set up its clock.
    pub fn uptime_ns() -> u64 {
        now_ns().saturating_sub(BOOTED_NS.load(Ordering::Relaxed))
    }

    /// The port VIRQ_TIMER is bound to.
    pub fn timer_port() -> Port {
        TIMER_PORT.load(Ordering::Relaxed)
    }

    /// Stops Xen's default 10 ms periodic timer and binds VIRQ_TIMER for one-shot timers.
    pub fn init() {
        BOOTED_NS.store(now_ns(), Ordering::Relaxed);
        if let Err(e) = hypercall::vcpu_stop_periodic_timer(0) {
            panic!("VCPUOP_stop_periodic_timer failed: {e}");
        }
        let port = match events::bind_virq(virq::TIMER) {
            Ok(p) => p,
            Err(e) => panic!("bind_virq(VIRQ_TIMER) failed: {e}"),
        };
        TIMER_PORT.store(port, Ordering::Relaxed);
        events::set_handler(port, on_timer);
        events::unmask(port);
    }

    /// Blocks the domain until an event arrives or `deadline_ns` passes (0: no deadline).
    /// Call with events disabled (after checking there is no work); pending handlers have run
    /// when it returns, and events are disabled again. The timer is armed only when it is not
    /// already armed for this deadline (a busy service blocks many times per tick; each
    /// hypercall saved counts under emulation).
    pub fn block_until(deadline_ns: u64) {
        if deadline_ns != 0 && ARMED.load(Ordering::Relaxed) != deadline_ns {
            set_timer(deadline_ns);
        }
        // SCHEDOP_block re-enables events; Xen delivers the upcall before returning here.
        hypercall::sched_block();
        events::disable();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_delta_applies_shift_then_fixed_point_multiply() {
        // mul = 2^31 is ×0.5.
        assert_eq!(scale_delta(1000, 1 << 31, 0), 500);
        assert_eq!(scale_delta(1000, 1 << 31, 1), 1000);
        assert_eq!(scale_delta(1000, 1 << 31, -1), 250);
        // No overflow with large deltas: 2^40 ticks × 0.75.
        assert_eq!(scale_delta(1 << 40, 3 << 30, 0), 3 << 38);
    }

    #[test]
    fn wallclock_carries_nanoseconds_into_seconds() {
        assert_eq!(
            wallclock_from(100, 900_000_000, 250_000_000),
            (101, 150_000_000)
        );
        assert_eq!(wallclock_from(0, 0, 5 * NS_PER_SEC + 7), (5, 7));
    }
}
