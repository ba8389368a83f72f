//! Traps and hypervisor callbacks: the trap table given to Xen with `set_trap_table`, the
//! event/failsafe callbacks registered with `callback_op`, and the Rust side of the entry
//! stubs in `boot/entry.S`. A fault prints vector, error code, rip, cr2 (from vcpu_info) and a
//! stack dump, then crashes the domain; `int3` is logged and execution continues after it.

#[cfg(target_os = "none")]
pub use kernel::*;

/// Vector names for the report line.
pub fn vector_name(vector: u64) -> &'static str {
    match vector {
        0 => "divide error",
        1 => "debug",
        3 => "int3",
        4 => "overflow",
        5 => "bounds",
        6 => "invalid opcode",
        7 => "device not available",
        9 => "coprocessor segment overrun",
        10 => "invalid TSS",
        11 => "segment not present",
        12 => "stack segment",
        13 => "general protection",
        14 => "page fault",
        15 => "spurious interrupt",
        16 => "x87 error",
        17 => "alignment check",
        19 => "SIMD error",
        256 => "event upcall",
        _ => "unknown",
    }
}

#[cfg(target_os = "none")]
mod kernel {
    use super::vector_name;
    use crate::arch::{self, frame::TrapFrame};
    use crate::hypercall::{self, ShutdownReason, TrapInfo, TrapInfoFlags, FLAT_KERNEL_CS};
    use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

    extern "C" {
        fn trap_divide_error();
        fn trap_debug();
        fn trap_int3();
        fn trap_overflow();
        fn trap_bounds();
        fn trap_invalid_op();
        fn trap_device_not_available();
        fn trap_coprocessor_segment_overrun();
        fn trap_invalid_tss();
        fn trap_segment_not_present();
        fn trap_stack_segment();
        fn trap_general_protection();
        fn trap_page_fault();
        fn trap_spurious_interrupt_bug();
        fn trap_coprocessor_error();
        fn trap_alignment_check();
        fn trap_simd_coprocessor_error();
    }

    /// Prints a line of a fatal report without taking the console lock if it is held (the
    /// fault may have hit inside the console).
    macro_rules! report {
        ($($arg:tt)*) => {
            crate::console::emergency_fmt(format_args!("{}\n", format_args!($($arg)*)))
        };
    }

    static INT3_COUNT: AtomicU64 = AtomicU64::new(0);
    static FAULT_DEPTH: AtomicU32 = AtomicU32::new(0);

    fn gate(vector: u8, dpl: u8, handler: arch::EntryPoint) -> TrapInfo {
        TrapInfo {
            vector,
            flags: dpl | TrapInfoFlags::MASK_EVENTS.bits(),
            cs: FLAT_KERNEL_CS,
            address: handler as usize as u64,
        }
    }

    /// Installs the trap table and the event/failsafe callbacks.
    pub fn init() {
        arch::entry::set_handlers(on_trap, crate::events::upcall, on_failsafe);
        let table = [
            gate(0, 0, trap_divide_error),
            gate(1, 0, trap_debug),
            gate(3, 3, trap_int3),
            gate(4, 3, trap_overflow),
            gate(5, 3, trap_bounds),
            gate(6, 0, trap_invalid_op),
            gate(7, 0, trap_device_not_available),
            gate(9, 0, trap_coprocessor_segment_overrun),
            gate(10, 0, trap_invalid_tss),
            gate(11, 0, trap_segment_not_present),
            gate(12, 0, trap_stack_segment),
            gate(13, 0, trap_general_protection),
            gate(14, 0, trap_page_fault),
            gate(15, 0, trap_spurious_interrupt_bug),
            gate(16, 0, trap_coprocessor_error),
            gate(17, 0, trap_alignment_check),
            gate(19, 0, trap_simd_coprocessor_error),
            TrapInfo::default(),
        ];
        if let Err(e) = hypercall::set_trap_table(&table) {
            panic!("set_trap_table failed: {e}");
        }
        if let Err((kind, e)) = arch::register_callbacks() {
            panic!("callback_op(register, type {kind}) failed: {e}");
        }
    }

    /// Breakpoints taken (and resumed) since boot.
    pub fn int3_count() -> u64 {
        INT3_COUNT.load(Ordering::Relaxed)
    }

    /// A trap (`trap_common` in boot/entry.S, through `arch::entry`), with events masked.
    fn on_trap(frame: &mut TrapFrame) {
        if frame.vector == 3 {
            INT3_COUNT.fetch_add(1, Ordering::Relaxed);
            crate::println!("trap: int3 at rip {:#x}, resuming", frame.rip);
            return;
        }
        if FAULT_DEPTH.fetch_add(1, Ordering::SeqCst) > 0 {
            report!("trap: fault while reporting a fault");
            crash();
        }
        let cr2 = arch::vcpu().cr2.load(Ordering::Relaxed);
        report!(
            "FATAL trap: vector {} ({}) error code {:#x} rip {:#x} cr2 {:#x}",
            frame.vector,
            vector_name(frame.vector),
            frame.error_code,
            frame.rip,
            cr2
        );
        report!(
            "  rax {:#018x} rbx {:#018x} rcx {:#018x} rdx {:#018x}",
            frame.rax,
            frame.rbx,
            frame.rcx,
            frame.rdx
        );
        report!(
            "  rsi {:#018x} rdi {:#018x} rbp {:#018x} rsp {:#018x}",
            frame.rsi,
            frame.rdi,
            frame.rbp,
            frame.rsp
        );
        dump_stack(frame.rsp);
        crash();
    }

    fn dump_stack(rsp: u64) {
        report!("  stack at {rsp:#x}:");
        if !rsp.is_multiple_of(8) || rsp < 0x1000 || rsp >= arch::MACH2PHYS_VIRT_START as u64 {
            report!("  (rsp not a plausible kernel stack address)");
            return;
        }
        for row in 0..4u64 {
            let base = rsp + row * 32;
            let mut words = [0u64; 4];
            for (i, w) in words.iter_mut().enumerate() {
                // A fault here is caught by FAULT_DEPTH and ends the report.
                *w = arch::read_stack_word(base + i as u64 * 8);
            }
            report!(
                "  {base:#018x}: {:016x} {:016x} {:016x} {:016x}",
                words[0],
                words[1],
                words[2],
                words[3]
            );
        }
    }

    /// The failsafe callback: Xen failed to reload a segment returning to us.
    fn on_failsafe(frame: &[u64; 9]) -> ! {
        report!(
            "FATAL failsafe callback: ds {:#x} es {:#x} fs {:#x} gs {:#x} rip {:#x} cs {:#x}",
            frame[0],
            frame[1],
            frame[2],
            frame[3],
            frame[4],
            frame[5]
        );
        crash();
    }

    /// Crashes the domain (`SCHEDOP_shutdown(crash)`); never returns.
    pub fn crash() -> ! {
        loop {
            // A crash shutdown does not return; loop in case Xen refuses it.
            let _ = hypercall::sched_shutdown(ShutdownReason::Crash);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::vector_name;

    #[test]
    fn names_the_vectors_it_installs() {
        assert_eq!(vector_name(14), "page fault");
        assert_eq!(vector_name(3), "int3");
        assert_eq!(vector_name(256), "event upcall");
        assert_eq!(vector_name(2), "unknown");
    }
}
