//! Thread stacks (the mechanism; `sched` decides the size and when to check): [`STACK_SIZE`]
//! bytes from the heap, page aligned, with the page below them unmapped as a guard (an
//! overflow faults at once instead of corrupting the heap) and a canary in the lowest word
//! (checked at every switch, for frames that jump past the guard).

use crate::mm::paging::PAGE_SIZE;
use crate::mm::{self, MmError, STACK_CANARY, STACK_SIZE};
use alloc::alloc::{alloc, dealloc};
use core::alloc::Layout;
use core::sync::atomic::{AtomicU64, Ordering};

/// Stacks whose guard page could not be mapped back, so their memory was leaked.
static LEAKED: AtomicU64 = AtomicU64::new(0);

/// How many stacks were leaked (their guard page could not be mapped back).
pub fn leaked_stacks() -> u64 {
    LEAKED.load(Ordering::Relaxed)
}

/// Guard page + stack.
const LAYOUT: Layout = match Layout::from_size_align(PAGE_SIZE + STACK_SIZE, PAGE_SIZE) {
    Ok(l) => l,
    Err(_) => panic!("bad stack layout"),
};

/// A thread stack; dropping it maps the guard page back and frees the memory.
pub struct Stack {
    /// VA of the guard page (the allocation's start); the stack follows it. The memory is
    /// owned by this value alone.
    guard: usize,
}

impl Stack {
    /// A fresh stack with its guard page unmapped.
    pub fn new() -> Result<Stack, MmError> {
        // SAFETY: LAYOUT has a non-zero size.
        let guard = unsafe { alloc(LAYOUT) };
        if guard.is_null() {
            return Err(MmError::HeapExhausted(LAYOUT.size()));
        }
        // SAFETY: the guard page is the first page of our own, page-aligned allocation, which
        // nothing else uses; it is mapped back before the memory is freed (Drop).
        if let Err(e) = unsafe { mm::unmap_frame(guard as usize) } {
            // SAFETY: allocated above with LAYOUT and still mapped.
            unsafe { dealloc(guard, LAYOUT) };
            return Err(e);
        }
        let mut s = Stack {
            guard: guard as usize,
        };
        s.words()[0] = STACK_CANARY;
        Ok(s)
    }

    /// The usable stack, lowest address first.
    pub fn words(&mut self) -> &mut [u64] {
        // SAFETY: the STACK_SIZE bytes after the guard page are ours, mapped RW and aligned.
        unsafe {
            core::slice::from_raw_parts_mut((self.guard + PAGE_SIZE) as *mut u64, STACK_SIZE / 8)
        }
    }

    /// False once something wrote over the lowest word (the thread overflowed its stack).
    pub fn canary_intact(&self) -> bool {
        // SAFETY: the lowest word of the stack is mapped (it is above the guard page).
        unsafe { ((self.guard + PAGE_SIZE) as *const u64).read_volatile() == STACK_CANARY }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let va = self.guard;
        let mfn = mm::pfn_to_mfn(mm::va_to_pfn(va));
        // SAFETY: puts back the 1:1 mapping of our own heap page that `new` removed.
        match unsafe { mm::map_frame(va, mfn, true) } {
            // SAFETY: allocated in `new` with LAYOUT; the whole block is mapped again.
            Ok(()) => unsafe { dealloc(va as *mut u8, LAYOUT) },
            // Freeing a block with an unmapped page would fault in the allocator: leak it
            // (the scheduler reports it).
            Err(_) => {
                LEAKED.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
