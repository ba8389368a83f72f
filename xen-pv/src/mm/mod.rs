//! Memory: pfn→mfn translation (the p2m list; mfn→pfn is `arch::mfn_to_pfn`, the M2P), the
//! page-frame allocator over the free frames, page tables
//! grown with `mmu_update` (any frame at any VA), and the kernel heap (`linked_list_allocator`
//! as the global allocator, with statistics).
//!
//! Boot order: `mm::init(start_info)` extends the builder's 1:1 map (VA = PFN × 4096) to every
//! page of the domain, puts the frame allocator's bitmap in the first free frames, hands most
//! free frames to the heap as one contiguous run and keeps [`frames::frame_reserve`] frames in
//! the pool for page tables and granted pages. After it returns, `alloc` works.

pub mod bitmap;
pub mod frames;
pub mod paging;

#[cfg(target_os = "none")]
mod grant;
#[cfg(target_os = "none")]
mod heap;
#[cfg(target_os = "none")]
mod pagetable;
#[cfg(target_os = "none")]
mod shared_page;
#[cfg(target_os = "none")]
mod stack;

#[cfg(target_os = "none")]
pub use grant::{map_grant, map_grant_table_frame, unmap_grant};
#[cfg(target_os = "none")]
pub use heap::{stats as heap_stats, HeapStats};
#[cfg(target_os = "none")]
pub use pagetable::{ensure_l1, l4_mfn as root_mfn, lookup, map_frame, unmap_frame};
#[cfg(target_os = "none")]
pub use shared_page::{alias_pool_frame, unalias, SharedPage};
#[cfg(target_os = "none")]
pub use stack::{leaked_stacks, Stack};
#[cfg(target_os = "none")]
pub use target::*;

use core::fmt;

/// Stack size of spawned threads.
pub const STACK_SIZE: usize = 16 * 1024;
/// Value written at the low end of every stack; found changed on a switch = stack overflow.
pub const STACK_CANARY: u64 = 0x5354_4143_4b5f_454e;

/// What `mm::init` set up; printed by the demo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryLayout {
    /// Pages of the domain (`start_info.nr_pages`).
    pub nr_pages: u64,
    /// First PFN after the boot image, p2m, start_info, rings, page tables and boot stack.
    pub first_free_pfn: u64,
    /// Pages holding the frame allocator's bitmap (right at `first_free_pfn`).
    pub bitmap_pages: u64,
    /// Pages the builder had not mapped that `init` added to the 1:1 map.
    pub direct_map_added: u64,
    /// Page-table frames `init` allocated to do so.
    pub pt_frames_added: u64,
    /// First VA of the heap.
    pub heap_start: usize,
    /// Heap pages.
    pub heap_pages: u64,
    /// Frames left in the frame pool after the heap took its share.
    pub pool_frames: u64,
}

impl fmt::Display for MemoryLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kib = |pages: u64| pages * 4;
        writeln!(
            f,
            "memory: {} pages ({} KiB); boot image pfn 0..{:#x}",
            self.nr_pages,
            kib(self.nr_pages),
            self.first_free_pfn
        )?;
        writeln!(
            f,
            "memory: 1:1 map extended by {} pages using {} new page-table frames",
            self.direct_map_added, self.pt_frames_added
        )?;
        writeln!(
            f,
            "memory: heap {:#x}..{:#x} ({} KiB); frame pool {} frames; bitmap {} page(s)",
            self.heap_start,
            self.heap_start + self.heap_pages as usize * paging::PAGE_SIZE,
            kib(self.heap_pages),
            self.pool_frames,
            self.bitmap_pages
        )
    }
}

/// Why a memory operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmError {
    /// The frame pool is empty.
    OutOfFrames,
    /// The VA is non-canonical, unaligned or inside Xen's hole.
    BadVa(usize),
    /// A hypercall failed.
    Xen(&'static str, crate::hypercall::Errno),
    /// A frame that had to be mapped in the 1:1 map is not.
    NotMapped(usize),
    /// The frame is not one handed out by the frame pool.
    NotPoolFrame(u64),
    /// The heap has no free block of this many bytes.
    HeapExhausted(usize),
}

impl fmt::Display for MmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MmError::OutOfFrames => write!(f, "out of free page frames"),
            MmError::BadVa(va) => write!(f, "VA {va:#x} cannot be mapped by a PV guest"),
            MmError::Xen(what, e) => write!(f, "{what} failed: {e}"),
            MmError::NotMapped(va) => write!(f, "VA {va:#x} is not mapped"),
            MmError::NotPoolFrame(pfn) => write!(f, "pfn {pfn:#x} is not an allocated pool frame"),
            MmError::HeapExhausted(n) => write!(f, "the heap has no free block of {n} bytes"),
        }
    }
}

#[cfg(target_os = "none")]
mod target {
    use super::frames::{bitmap_pages, frame_reserve, FrameAllocator, Pfn};
    use super::paging::PAGE_SIZE;
    use super::{heap, pagetable, MemoryLayout, MmError};
    use crate::start_info::StartInfo;
    use crate::sync::IrqMutex;
    use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    static P2M: AtomicUsize = AtomicUsize::new(0);
    static NR_PAGES: AtomicU64 = AtomicU64::new(0);
    static FRAMES: IrqMutex<Option<FrameAllocator<&'static mut [u64]>>> = IrqMutex::new(None);
    /// The heap's run of frames: first PFN and count (set once by `init`).
    static HEAP_FIRST: AtomicU64 = AtomicU64::new(0);
    static HEAP_PAGES: AtomicU64 = AtomicU64::new(0);

    /// The machine frame backing pseudo-physical frame `pfn` (from the builder's p2m list).
    pub fn pfn_to_mfn(pfn: Pfn) -> u64 {
        assert!(
            pfn < NR_PAGES.load(Ordering::Relaxed),
            "pfn_to_mfn: pfn {pfn:#x} is outside the domain"
        );
        let p2m = P2M.load(Ordering::Relaxed) as *const u64;
        // SAFETY: the p2m list holds nr_pages entries and stays mapped for the kernel's life.
        unsafe { p2m.add(pfn as usize).read_volatile() }
    }

    /// VA of a pseudo-physical frame in the 1:1 map.
    pub const fn pfn_to_va(pfn: Pfn) -> usize {
        pfn as usize * PAGE_SIZE
    }

    /// Pseudo-physical frame of a VA in the 1:1 map.
    pub const fn va_to_pfn(va: usize) -> Pfn {
        (va / PAGE_SIZE) as Pfn
    }

    /// One zero-filled free frame from the pool (mapped RW at `pfn_to_va`).
    pub fn alloc_frame() -> Result<Pfn, MmError> {
        let pfn = FRAMES
            .lock()
            .as_mut()
            .and_then(|f| f.alloc())
            .ok_or(MmError::OutOfFrames)?;
        let va = pfn_to_va(pfn);
        if pagetable::lookup(va).is_none() {
            free_frame(pfn);
            return Err(MmError::NotMapped(va));
        }
        // SAFETY: the frame was free, so nothing else references its 1:1 page, and it is
        // mapped (checked above; pool frames are mapped RW).
        unsafe { core::ptr::write_bytes(va as *mut u8, 0, PAGE_SIZE) };
        Ok(pfn)
    }

    /// Returns a frame from [`alloc_frame`] to the pool; it must be unmapped everywhere but
    /// the 1:1 map and no longer granted.
    pub fn free_frame(pfn: Pfn) {
        if let Some(f) = FRAMES.lock().as_mut() {
            if let Err(e) = f.free(pfn) {
                panic!("free_frame({pfn:#x}): {e:?}");
            }
        }
    }

    /// True for a frame [`alloc_frame`] handed out and not yet freed: a page of the 1:1 map
    /// that no Rust object lives in (the heap's run is excluded).
    pub fn is_pool_frame(pfn: Pfn) -> bool {
        let heap_first = HEAP_FIRST.load(Ordering::Relaxed);
        let in_heap = (heap_first..heap_first + HEAP_PAGES.load(Ordering::Relaxed)).contains(&pfn);
        !in_heap && FRAMES.lock().as_ref().is_some_and(|f| f.is_allocated(pfn))
    }

    /// Free frames left in the pool.
    pub fn free_frames() -> u64 {
        FRAMES.lock().as_ref().map_or(0, |f| f.free_count())
    }

    /// Sets up memory (see the module doc); panics with a message if the domain's memory
    /// cannot be used (the boot cannot go on without a heap).
    pub fn init(si: &StartInfo) -> MemoryLayout {
        NR_PAGES.store(si.nr_pages, Ordering::Relaxed);
        P2M.store(si.mfn_list as usize, Ordering::Relaxed);
        pagetable::init(si.pt_base as usize);

        let nr_pages = si.nr_pages;
        let first_free = si.first_free_pfn();
        let bm_pages = bitmap_pages(nr_pages);
        assert!(
            first_free + bm_pages + 64 < nr_pages,
            "mm: only {nr_pages} pages, the boot image ends at pfn {first_free:#x}"
        );
        for pfn in first_free..first_free + bm_pages {
            if pagetable::lookup(pfn_to_va(pfn)).is_none() {
                panic!("mm: frame bitmap page {pfn:#x} is not mapped by the builder");
            }
        }
        let words = super::bitmap::words_for(nr_pages as usize);
        // SAFETY: the bitmap pages lie after everything the builder placed, are mapped RW
        // (checked above) and are kept out of the pool, so nothing else ever uses them.
        let storage =
            unsafe { core::slice::from_raw_parts_mut(pfn_to_va(first_free) as *mut u64, words) };
        *FRAMES.lock() = Some(FrameAllocator::new(
            storage,
            nr_pages,
            first_free + bm_pages,
        ));

        let before = free_frames();
        let added = match pagetable::extend_direct_map(nr_pages) {
            Ok(n) => n,
            Err(e) => panic!("mm: extending the 1:1 map: {e}"),
        };
        let pt_frames = before - free_frames();

        let free = free_frames();
        let heap_pages = free - frame_reserve(free);
        let heap_pfn = FRAMES
            .lock()
            .as_mut()
            .and_then(|f| f.alloc_contiguous(heap_pages))
            .unwrap_or_else(|| panic!("mm: no contiguous run of {heap_pages} heap frames"));
        HEAP_FIRST.store(heap_pfn, Ordering::Relaxed);
        HEAP_PAGES.store(heap_pages, Ordering::Relaxed);
        // SAFETY: the run was free and is now owned by the heap alone; it is mapped RW.
        unsafe { heap::init(pfn_to_va(heap_pfn), heap_pages as usize * PAGE_SIZE) };

        MemoryLayout {
            nr_pages,
            first_free_pfn: first_free,
            bitmap_pages: bm_pages,
            direct_map_added: added,
            pt_frames_added: pt_frames,
            heap_start: pfn_to_va(heap_pfn),
            heap_pages,
            pool_frames: free_frames(),
        }
    }
}
