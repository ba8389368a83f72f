//! The context switch: saves the callee-saved registers and the stack pointer of the thread
//! giving up the CPU, loads the other thread's. A new thread's stack is prepared so that the
//! first switch to it "returns" into its entry function.

#[cfg(target_os = "none")]
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

#[cfg(target_os = "none")]
extern "C" {
    /// Saves the current context's stack pointer to `*save_rsp`, continues on `next_rsp`.
    fn ferrostore_switch_context(save_rsp: *mut usize, next_rsp: usize);
}

/// Switches to the context whose saved stack pointer is `next_rsp`; returns when some other
/// thread switches back to this one.
///
/// # Safety
/// `save_rsp` must stay valid until this context is resumed; `next_rsp` must come from a
/// previous switch away from a live thread or from [`initial_frame`] on a live stack.
#[cfg(target_os = "none")]
pub unsafe fn switch(save_rsp: *mut usize, next_rsp: usize) {
    // SAFETY: forwarded caller contract; the asm preserves every callee-saved register.
    unsafe { ferrostore_switch_context(save_rsp, next_rsp) }
}

/// Lays out a fresh stack (`words`, 8-byte aligned) so that switching to the returned stack
/// pointer enters `entry` with the ABI's alignment (rsp ≡ 8 mod 16 at entry) and zeroed
/// callee-saved registers.
pub fn initial_frame(words: &mut [u64], entry: extern "C" fn() -> !) -> usize {
    let base = words.as_ptr() as usize;
    let top = (base + words.len() * 8) & !15;
    // Word indices (from `base`) of: fake return address, entry, six saved registers.
    let ret_slot = (top - 8 - base) / 8;
    words[ret_slot] = 0;
    words[ret_slot - 1] = entry as usize as u64;
    for w in &mut words[ret_slot - 7..ret_slot - 1] {
        *w = 0;
    }
    top - 64
}

#[cfg(test)]
mod tests {
    use super::*;

    extern "C" fn entry() -> ! {
        panic!("never called")
    }

    #[test]
    fn first_switch_pops_six_zero_registers_then_returns_into_entry() {
        let mut stack = vec![0xAAu64; 64];
        let base = stack.as_ptr() as usize;
        let f: extern "C" fn() -> ! = entry;
        let rsp = initial_frame(&mut stack, f);
        assert_eq!(rsp % 16, 0);
        let at = |addr: usize| stack[(addr - base) / 8];
        for reg in 0..6 {
            assert_eq!(at(rsp + reg * 8), 0, "saved register {reg}");
        }
        assert_eq!(at(rsp + 48), f as usize as u64);
        // After `ret` the entry sees rsp ≡ 8 (mod 16) with a zero return address on top.
        let entry_rsp = rsp + 56;
        assert_eq!(entry_rsp % 16, 8);
        assert_eq!(at(entry_rsp), 0);
        assert!(entry_rsp < base + 64 * 8);
        assert_eq!(stack[0], 0xAA, "the low end (canary slot) is untouched");
    }
}
