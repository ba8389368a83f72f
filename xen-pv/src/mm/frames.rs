//! The page-frame allocator over the domain's free pseudo-physical frames, and the boot-time
//! split of those frames between the kernel heap and the frame pool. Pure logic, host-tested.

use super::bitmap::{words_for, Bitmap, BitmapError};
use super::paging::PAGE_SIZE;

/// A pseudo-physical frame number.
pub type Pfn = u64;

/// Allocator of single frames and contiguous runs, lowest PFN first, over a bitmap indexed by
/// PFN. Frames outside the free range given at creation are never handed out.
pub struct FrameAllocator<S> {
    map: Bitmap<S>,
    free_start: Pfn,
}

/// Frames (pages) the allocator's bitmap needs to track `nr_pages` PFNs.
pub const fn bitmap_pages(nr_pages: u64) -> u64 {
    (words_for(nr_pages as usize) * 8).div_ceil(PAGE_SIZE) as u64
}

impl<S: AsRef<[u64]> + AsMut<[u64]>> FrameAllocator<S> {
    /// Tracks PFNs `0..nr_pages`; only `free_start..nr_pages` start free.
    pub fn new(storage: S, nr_pages: u64, free_start: Pfn) -> Self {
        let map = Bitmap::new(storage, nr_pages as usize, free_start as usize);
        FrameAllocator { map, free_start }
    }

    /// One free frame.
    pub fn alloc(&mut self) -> Option<Pfn> {
        self.map.alloc().map(|i| i as Pfn)
    }

    /// `n` physically contiguous free frames; returns the first.
    pub fn alloc_contiguous(&mut self, n: u64) -> Option<Pfn> {
        self.map.alloc_run(n as usize).map(|i| i as Pfn)
    }

    /// Returns a frame to the pool; frames below the pool (the boot image) are refused.
    pub fn free(&mut self, pfn: Pfn) -> Result<(), BitmapError> {
        if pfn < self.free_start {
            return Err(BitmapError::OutOfRange(pfn as usize));
        }
        self.map.free(pfn as usize)
    }

    /// True for a frame of the free range that is handed out now.
    pub fn is_allocated(&self, pfn: Pfn) -> bool {
        pfn >= self.free_start && (pfn as usize) < self.map.len() && !self.map.is_free(pfn as usize)
    }

    /// Free frames left.
    pub fn free_count(&self) -> u64 {
        self.map.free_count() as u64
    }
}

/// Frames left in the frame pool (page tables, granted pages) when the heap takes the rest:
/// 1/16 of the free frames, at least 32 and at most 1024, never more than half.
pub fn frame_reserve(free_frames: u64) -> u64 {
    (free_frames / 16).clamp(32, 1024).min(free_frames / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(nr_pages: u64, free_start: Pfn) -> FrameAllocator<Vec<u64>> {
        let storage = vec![0u64; words_for(nr_pages as usize)];
        FrameAllocator::new(storage, nr_pages, free_start)
    }

    #[test]
    fn hands_out_only_free_pfns_lowest_first() {
        let mut f = frames(2048, 0x30);
        assert_eq!(f.free_count(), 2048 - 0x30);
        assert_eq!(f.alloc(), Some(0x30));
        assert_eq!(f.alloc(), Some(0x31));
        f.free(0x30).unwrap();
        assert!(!f.is_allocated(0x30));
        assert_eq!(f.alloc(), Some(0x30));
        assert!(f.is_allocated(0x30));
        assert!(!f.is_allocated(0x10), "boot frame");
        assert!(!f.is_allocated(2048), "outside the domain");
        assert_eq!(
            f.free(0x10),
            Err(BitmapError::OutOfRange(0x10)),
            "boot frame"
        );
    }

    #[test]
    fn boot_frames_are_never_freeable_twice_or_out_of_range() {
        let mut f = frames(64, 8);
        assert_eq!(f.free(8), Err(BitmapError::AlreadyFree(8)));
        assert_eq!(f.free(64), Err(BitmapError::OutOfRange(64)));
        assert_eq!(f.free(7), Err(BitmapError::OutOfRange(7)));
        assert_eq!(f.free_count(), 56);
    }

    #[test]
    fn exhausts_then_recovers() {
        let mut f = frames(40, 36);
        let got: Vec<_> = core::iter::from_fn(|| f.alloc()).collect();
        assert_eq!(got, vec![36, 37, 38, 39]);
        assert_eq!(f.free_count(), 0);
        assert_eq!(f.alloc(), None);
        f.free(38).unwrap();
        assert_eq!(f.alloc(), Some(38));
    }

    #[test]
    fn contiguous_runs_follow_single_allocations() {
        let mut f = frames(1024, 100);
        assert_eq!(f.alloc(), Some(100));
        assert_eq!(f.alloc_contiguous(800), Some(101));
        assert_eq!(f.alloc_contiguous(200), None);
        assert_eq!(f.alloc_contiguous(123), Some(901));
        assert_eq!(f.free_count(), 0);
    }

    #[test]
    fn bitmap_fits_in_pages() {
        assert_eq!(bitmap_pages(1024), 1);
        assert_eq!(bitmap_pages(2048), 1);
        assert_eq!(bitmap_pages(32768), 1);
        assert_eq!(bitmap_pages(32769), 2);
        assert_eq!(bitmap_pages(262144), 8);
    }

    #[test]
    fn reserve_scales_with_memory() {
        // 4 MiB and 8 MiB stub domains, a 64 MiB demo, a 4 GiB domain, a tiny pool.
        assert_eq!(frame_reserve(900), 56);
        assert_eq!(frame_reserve(1900), 118);
        assert_eq!(frame_reserve(16000), 1000);
        assert_eq!(frame_reserve(1_000_000), 1024);
        assert_eq!(frame_reserve(100), 32);
        assert_eq!(frame_reserve(40), 20);
    }
}
