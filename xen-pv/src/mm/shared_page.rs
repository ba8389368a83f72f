//! [`SharedPage`]: a mapped 4 KiB page that Xen or another domain may change at any time (the
//! console ring, the xenstore rings, grant-mapped pages, pool frames granted away). Every
//! access is volatile (through `volatile`'s `VolatilePtr`) or atomic and bounds-checked:
//! offsets outside the page (or misaligned words) read as 0 and write nothing. It implements the engine's [`RingPage`].
//!
//! A view can only be made here, for pages no Rust object ever lives in: the start-of-day
//! console and store frames (below the frame pool), the grant-table and grant-map areas, the
//! `map_frame` alias page, and frames handed out by the frame pool (never heap). So a view
//! never aliases kernel data; if its page is unmapped under it, an access faults (a crash
//! report), it cannot corrupt memory.

use super::paging::{gntmap_slot_va, layout, PAGE_SIZE};
use super::{is_pool_frame, map_frame, pfn_to_mfn, pfn_to_va, unmap_frame, MmError};
use crate::arch;
use crate::start_info::StartInfo;
use core::mem::{align_of, size_of};
use core::ptr::NonNull;
use core::sync::atomic::{fence, AtomicU16, AtomicU32, Ordering};
use volatile::VolatilePtr;
use xenstore_engine::ring::RingPage;

/// A view of one shared page (a VA; copying the view does not copy the page).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedPage {
    va: usize,
}

impl SharedPage {
    /// The console ring (`start_info.console.domU.mfn`, in the start-of-day region).
    pub fn console(si: &StartInfo) -> SharedPage {
        SharedPage {
            va: arch::mfn_to_virt(si.console_mfn),
        }
    }

    /// This domain's xenstore ring (`start_info.store_mfn`, in the start-of-day region), if
    /// it has one.
    pub fn store(si: &StartInfo) -> Option<SharedPage> {
        (si.store_mfn != 0).then(|| SharedPage {
            va: arch::mfn_to_virt(si.store_mfn),
        })
    }

    /// Page `i` of the grant-table area; panics on a page outside the area.
    pub(super) fn grant_table_frame(i: usize) -> SharedPage {
        assert!(
            i < layout::GNTTAB_MAX_FRAMES,
            "grant-table frame {i} out of range"
        );
        SharedPage {
            va: layout::GNTTAB_BASE + i * PAGE_SIZE,
        }
    }

    /// Slot `slot` of the grant-map area (see `gntmap`); panics on a slot outside the area
    /// (slots come from the kernel's own allocator, never from guest data).
    pub fn grant_slot(slot: usize) -> SharedPage {
        assert!(
            slot < layout::GNTMAP_SLOTS,
            "grant-map slot {slot} out of range"
        );
        SharedPage {
            va: gntmap_slot_va(slot),
        }
    }

    /// The 1:1 page of `pfn`, a frame the frame pool handed out (`alloc_frame`).
    pub fn pool_frame(pfn: u64) -> Result<SharedPage, MmError> {
        if !is_pool_frame(pfn) {
            return Err(MmError::NotPoolFrame(pfn));
        }
        Ok(SharedPage { va: pfn_to_va(pfn) })
    }

    /// VA of the page.
    pub fn va(&self) -> usize {
        self.va
    }

    fn ptr(&self, off: usize, len: usize, align: usize) -> Option<*mut u8> {
        let in_page = off.checked_add(len).is_some_and(|end| end <= PAGE_SIZE);
        (in_page && off.is_multiple_of(align)).then(|| (self.va + off) as *mut u8)
    }

    /// A volatile view of the `T` at `off`, if it lies inside the page and is aligned.
    fn cell<T: Copy>(&self, off: usize) -> Option<VolatilePtr<'_, T>> {
        let p = self.ptr(off, size_of::<T>(), align_of::<T>())?;
        let p = NonNull::new(p.cast::<T>())?;
        // SAFETY: inside the mapped page and aligned (checked), in a page no Rust object
        // lives in (see the module doc); the view lives no longer than `self`. A store through
        // a read-only grant mapping faults (a crash report), it writes nothing.
        Some(unsafe { VolatilePtr::new(p) })
    }

    /// The byte at `off`.
    pub fn read_u8(&self, off: usize) -> u8 {
        self.cell(off).map_or(0, VolatilePtr::read)
    }

    /// Stores byte `v` at `off`.
    pub fn write_u8(&self, off: usize, v: u8) {
        if let Some(c) = self.cell(off) {
            c.write(v);
        }
    }

    /// Copies `buf.len()` bytes from `off` (nothing if they do not all fit in the page).
    pub fn read_bytes(&self, off: usize, buf: &mut [u8]) {
        if self.ptr(off, buf.len(), 1).is_some() {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = self.read_u8(off + i);
            }
        }
    }

    /// Copies `data` to `off` (nothing if it does not all fit in the page).
    pub fn write_bytes(&self, off: usize, data: &[u8]) {
        if self.ptr(off, data.len(), 1).is_some() {
            for (i, &b) in data.iter().enumerate() {
                self.write_u8(off + i, b);
            }
        }
    }

    /// Volatile store of the aligned u16 at `off`.
    pub fn write_u16(&self, off: usize, v: u16) {
        if let Some(c) = self.cell(off) {
            c.write(v);
        }
    }

    /// Atomic compare-and-exchange of the aligned u16 at `off` (for fields the peer updates
    /// atomically, like grant-entry flags); `Err(0)` if `off` is out of the page.
    pub fn atomic_compare_exchange_u16(
        &self,
        off: usize,
        current: u16,
        new: u16,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u16, u16> {
        match self.ptr(off, 2, 2) {
            // SAFETY: inside the mapped page and 2-aligned (checked); the peer accesses the
            // field only atomically, never through a Rust object.
            Some(p) => unsafe { AtomicU16::from_ptr(p as *mut u16) }
                .compare_exchange(current, new, success, failure),
            None => Err(0),
        }
    }

    /// Atomic load of the aligned u16 at `off`.
    pub fn atomic_load_u16(&self, off: usize, order: Ordering) -> u16 {
        match self.ptr(off, 2, 2) {
            // SAFETY: as in `atomic_compare_exchange_u16`.
            Some(p) => unsafe { AtomicU16::from_ptr(p as *mut u16) }.load(order),
            None => 0,
        }
    }

    /// Volatile load of the aligned u32 at `off`.
    pub fn read_u32(&self, off: usize) -> u32 {
        self.cell(off).map_or(0, VolatilePtr::read)
    }

    /// Volatile store of the aligned u32 at `off`.
    pub fn write_u32(&self, off: usize, v: u32) {
        if let Some(c) = self.cell(off) {
            c.write(v);
        }
    }

    /// Volatile load of the aligned u64 at `off`.
    pub fn read_u64(&self, off: usize) -> u64 {
        self.cell(off).map_or(0, VolatilePtr::read)
    }

    /// Volatile store of the aligned u64 at `off`.
    pub fn write_u64(&self, off: usize, v: u64) {
        if let Some(c) = self.cell(off) {
            c.write(v);
        }
    }

    /// Atomic load of the aligned u32 at `off` (for indices the peer updates).
    pub fn atomic_load_u32(&self, off: usize, order: Ordering) -> u32 {
        match self.ptr(off, 4, 4) {
            // SAFETY: inside the mapped page and 4-aligned (checked); the peer accesses the
            // word only atomically or with plain word stores, never through a Rust object.
            Some(p) => unsafe { AtomicU32::from_ptr(p as *mut u32) }.load(order),
            None => 0,
        }
    }

    /// Atomic store of the aligned u32 at `off` (to publish an index to the peer).
    pub fn atomic_store_u32(&self, off: usize, v: u32, order: Ordering) {
        if let Some(p) = self.ptr(off, 4, 4) {
            // SAFETY: as in `atomic_load_u32`; a read-only mapping faults (see `write_u8`).
            unsafe { AtomicU32::from_ptr(p as *mut u32) }.store(v, order)
        }
    }

    /// A full memory barrier (orders ring data against index updates).
    pub fn fence() {
        fence(Ordering::SeqCst);
    }
}

impl RingPage for SharedPage {
    fn load_u32(&self, off: usize) -> u32 {
        self.read_u32(off)
    }

    fn store_u32(&mut self, off: usize, v: u32) {
        self.write_u32(off, v)
    }

    fn read(&self, off: usize, buf: &mut [u8]) {
        self.read_bytes(off, buf)
    }

    fn write(&mut self, off: usize, data: &[u8]) {
        self.write_bytes(off, data)
    }

    fn barrier(&self) {
        SharedPage::fence()
    }
}

/// Maps pool frame `pfn` a second time, at the first page of the `map_frame` area (one alias
/// at a time: a new alias replaces the previous one).
pub fn alias_pool_frame(pfn: u64) -> Result<SharedPage, MmError> {
    if !is_pool_frame(pfn) {
        return Err(MmError::NotPoolFrame(pfn));
    }
    let va = layout::MAP_BASE;
    // SAFETY: the map_frame area holds no Rust object (only views made here point into it)
    // and the frame is an allocated pool frame of this domain.
    unsafe { map_frame(va, pfn_to_mfn(pfn), true) }?;
    Ok(SharedPage { va })
}

/// Removes an alias made by [`alias_pool_frame`].
pub fn unalias(alias: SharedPage) -> Result<(), MmError> {
    if alias.va != layout::MAP_BASE {
        return Err(MmError::BadVa(alias.va));
    }
    // SAFETY: the alias page holds no Rust object; a view used after this faults.
    unsafe { unmap_frame(alias.va) }
}
