//! The kernel heap: `linked_list_allocator` over one contiguous run of the 1:1 map, installed
//! as the `#[global_allocator]`, counting allocations for [`stats`].
//!
//! The heap lock is an `IrqMutex`: events stay masked while it is held, so an upcall never
//! lands in the middle of an allocation and event handlers may allocate too.

use crate::sync::{IrqMutex, IrqMutexGuard};
use core::alloc::{GlobalAlloc, Layout};
use core::fmt;
use core::ptr::{null_mut, NonNull};
use linked_list_allocator::Heap;

struct Inner {
    heap: Heap,
    allocs: u64,
    frees: u64,
    live: u64,
    peak_used: usize,
}

/// The global allocator.
struct KernelHeap(IrqMutex<Inner>);

#[global_allocator]
static HEAP: KernelHeap = KernelHeap(IrqMutex::new(Inner {
    heap: Heap::empty(),
    allocs: 0,
    frees: 0,
    live: 0,
    peak_used: 0,
}));

impl KernelHeap {
    fn lock(&self) -> IrqMutexGuard<'_, Inner> {
        self.0.lock()
    }
}

// SAFETY: allocation and deallocation are delegated to linked_list_allocator under a lock;
// blocks it hands out are disjoint parts of the heap run given to `init`.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut g = self.lock();
        match g.heap.allocate_first_fit(layout) {
            Ok(p) => {
                g.allocs += 1;
                g.live += 1;
                g.peak_used = g.peak_used.max(g.heap.used());
                p.as_ptr()
            }
            Err(()) => null_mut(),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(p) = NonNull::new(ptr) else {
            return;
        };
        let mut g = self.lock();
        // SAFETY: the caller passes a block this allocator returned, with its layout.
        unsafe { g.heap.deallocate(p, layout) };
        g.frees += 1;
        g.live -= 1;
    }
}

/// Gives the heap its memory.
///
/// # Safety
/// `start..start+size` must be mapped RW, unused by anything else, forever; called once.
pub(super) unsafe fn init(start: usize, size: usize) {
    let mut g = HEAP.lock();
    assert!(g.heap.size() == 0, "heap initialised twice");
    // SAFETY: forwarded caller contract.
    unsafe { g.heap.init(start as *mut u8, size) };
}

/// A snapshot of the heap's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes the heap manages.
    pub size: usize,
    /// Bytes in live blocks (as the allocator rounds them).
    pub used: usize,
    /// Bytes free.
    pub free: usize,
    /// Highest `used` seen.
    pub peak_used: usize,
    /// Allocations since boot.
    pub allocs: u64,
    /// Deallocations since boot.
    pub frees: u64,
    /// Live blocks (`allocs - frees`).
    pub live: u64,
}

impl fmt::Display for HeapStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "size {} KiB, used {} B in {} blocks, free {} B, peak {} B, {} allocs / {} frees",
            self.size / 1024,
            self.used,
            self.live,
            self.free,
            self.peak_used,
            self.allocs,
            self.frees
        )
    }
}

/// The heap's counters now.
pub fn stats() -> HeapStats {
    let g = HEAP.lock();
    HeapStats {
        size: g.heap.size(),
        used: g.heap.used(),
        free: g.heap.free(),
        peak_used: g.peak_used,
        allocs: g.allocs,
        frees: g.frees,
        live: g.live,
    }
}
