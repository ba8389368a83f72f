//! The first frame of a new context: its stack is prepared so that the first switch to it
//! (`arch::switch`, which pops six callee-saved registers and returns) enters its entry
//! function. Pure layout, kept here to be host-tested; `arch::switch::Context::new` uses it.

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
