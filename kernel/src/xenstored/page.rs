//! A guest's xenstore ring page, grant-mapped into the stub, seen through the engine's
//! [`RingPage`] trait with volatile accesses (the guest changes it at any time). Offsets
//! outside the 4 KiB page read as 0 and write nothing.

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{fence, Ordering};
use xenstore_engine::ring::RingPage;

const PAGE: usize = 4096;

/// A view of a mapped ring page. The owner of the mapping keeps it mapped for as long as a
/// view exists (the service loop unmaps released rings only between passes).
pub struct MappedPage {
    base: *mut u8,
}

impl MappedPage {
    /// A view of the page mapped at `va`.
    ///
    /// # Safety
    /// `va` must be a page-aligned mapping of one writable 4 KiB page that stays mapped
    /// while the view is used, and no Rust reference may point into it.
    pub unsafe fn new(va: usize) -> MappedPage {
        MappedPage {
            base: va as *mut u8,
        }
    }

    fn in_page(off: usize, len: usize) -> bool {
        off.checked_add(len).is_some_and(|end| end <= PAGE)
    }
}

impl RingPage for MappedPage {
    fn load_u32(&self, off: usize) -> u32 {
        if !Self::in_page(off, 4) || off % 4 != 0 {
            return 0;
        }
        // SAFETY: in bounds and aligned (checked); the page is mapped (contract of `new`).
        unsafe { read_volatile(self.base.add(off) as *const u32) }
    }

    fn store_u32(&mut self, off: usize, v: u32) {
        if !Self::in_page(off, 4) || off % 4 != 0 {
            return;
        }
        // SAFETY: as in `load_u32`; the mapping is writable.
        unsafe { write_volatile(self.base.add(off) as *mut u32, v) }
    }

    fn read(&self, off: usize, buf: &mut [u8]) {
        if !Self::in_page(off, buf.len()) {
            return;
        }
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: `off + i` is inside the mapped page (checked above).
            *b = unsafe { read_volatile(self.base.add(off + i)) };
        }
    }

    fn write(&mut self, off: usize, data: &[u8]) {
        if !Self::in_page(off, data.len()) {
            return;
        }
        for (i, b) in data.iter().enumerate() {
            // SAFETY: `off + i` is inside the mapped, writable page (checked above).
            unsafe { write_volatile(self.base.add(off + i), *b) };
        }
    }

    fn barrier(&self) {
        fence(Ordering::SeqCst);
    }
}
