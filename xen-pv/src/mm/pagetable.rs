//! The live page tables, changed only through Xen: walking them (via the M2P), growing them
//! with `mmu_update` (new tables are zeroed, remapped read-only, then linked into their
//! parent), mapping any machine frame at any VA and extending the 1:1 map at boot.

use super::paging::{
    frame_address, guest_may_map, make_pte, pte_mfn, pte_present, table_index, ENTRIES, L1_PROT,
    L1_PROT_RO, PAGE_SIZE, TABLE_PROT,
};
use super::{alloc_frame, pfn_to_mfn, pfn_to_va, va_to_pfn, MmError};
use crate::arch::mfn_to_pfn;
use crate::hypercall::{
    mmu_update, update_va_mapping, MmuUpdate, DOMID_SELF, MMU_NORMAL_PT_UPDATE, UVMF_INVLPG,
};
use crate::sync::IrqMutex;
use core::sync::atomic::{AtomicUsize, Ordering};

/// VA of the L4 table (`start_info.pt_base`).
static L4_VA: AtomicUsize = AtomicUsize::new(0);
/// Serialises table growth (two threads must not both add the same table).
static GROW: IrqMutex<()> = IrqMutex::new(());

/// Records the L4 table the builder loaded.
pub(super) fn init(pt_base: usize) {
    L4_VA.store(pt_base, Ordering::Relaxed);
}

/// Machine frame of the L4 table in use.
pub fn l4_mfn() -> u64 {
    pfn_to_mfn(va_to_pfn(L4_VA.load(Ordering::Relaxed)))
}

/// Reads entry `idx` of the page table in machine frame `mfn` (reachable through the 1:1 map:
/// every page table is one of the domain's own frames).
fn read_entry(table_mfn: u64, idx: usize) -> u64 {
    let table = pfn_to_va(mfn_to_pfn(table_mfn)) as *const u64;
    // SAFETY: page tables are mapped (read-only) in the 1:1 map and idx < 512.
    unsafe { table.add(idx).read_volatile() }
}

/// Machine address of entry `idx` of the table in `table_mfn`, as `mmu_update` wants it.
fn entry_ma(table_mfn: u64, idx: usize) -> u64 {
    frame_address(table_mfn).as_u64() + (idx as u64) * 8
}

/// The L1 entry mapping `va`, if every level is present.
pub fn lookup(va: usize) -> Option<u64> {
    let mut mfn = l4_mfn();
    for level in (1..=4).rev() {
        let e = read_entry(mfn, table_index(va, level));
        if !pte_present(e) {
            return None;
        }
        if level == 1 {
            return Some(e);
        }
        mfn = pte_mfn(e);
    }
    None
}

/// Makes sure the L1 table covering `va` exists (allocating and linking L3/L2/L1 tables from
/// the frame pool as needed) and returns its machine frame.
pub fn ensure_l1(va: usize) -> Result<u64, MmError> {
    if !guest_may_map(va & !(PAGE_SIZE - 1)) {
        return Err(MmError::BadVa(va));
    }
    let _grow = GROW.lock();
    let mut table = l4_mfn();
    for level in (2..=4).rev() {
        let idx = table_index(va, level);
        let mut e = read_entry(table, idx);
        if !pte_present(e) {
            let new_mfn = new_table()?;
            let link = MmuUpdate {
                ptr: entry_ma(table, idx) | MMU_NORMAL_PT_UPDATE,
                val: make_pte(new_mfn, TABLE_PROT),
            };
            // SAFETY: links a zeroed, read-only table into an empty slot of our own tables.
            unsafe { mmu_update(&[link], DOMID_SELF) }
                .map_err(|e| MmError::Xen("mmu_update (link page table)", e))?;
            e = make_pte(new_mfn, TABLE_PROT);
        }
        table = pte_mfn(e);
    }
    Ok(table)
}

/// A zeroed frame from the pool, remapped read-only so Xen accepts it as a page table.
fn new_table() -> Result<u64, MmError> {
    let pfn = alloc_frame()?;
    let mfn = pfn_to_mfn(pfn);
    // SAFETY: the frame is fresh from the pool (nothing else refers to it); dropping write
    // access to its 1:1 page is what Xen requires of page-table pages.
    unsafe { update_va_mapping(pfn_to_va(pfn), make_pte(mfn, L1_PROT_RO), UVMF_INVLPG) }
        .map_err(|e| MmError::Xen("update_va_mapping (page table read-only)", e))?;
    Ok(mfn)
}

/// Maps machine frame `mfn` at page `va` (writable or read-only), creating the L1 if needed.
///
/// # Safety
/// Whatever `va` mapped before must no longer be used, and the frame must be one the caller
/// may access (Xen refuses frames of other domains).
pub unsafe fn map_frame(va: usize, mfn: u64, writable: bool) -> Result<(), MmError> {
    ensure_l1(va)?;
    let prot = if writable { L1_PROT } else { L1_PROT_RO };
    // SAFETY: forwarded caller contract; the L1 exists.
    unsafe { update_va_mapping(va, make_pte(mfn, prot), UVMF_INVLPG) }
        .map_err(|e| MmError::Xen("update_va_mapping (map)", e))
}

/// Removes the mapping of page `va`.
///
/// # Safety
/// Nothing may use `va` afterwards.
pub unsafe fn unmap_frame(va: usize) -> Result<(), MmError> {
    // SAFETY: forwarded caller contract.
    unsafe { update_va_mapping(va, 0, UVMF_INVLPG) }
        .map_err(|e| MmError::Xen("update_va_mapping (unmap)", e))
}

/// Maps every PFN `0..nr_pages` the builder left unmapped at its 1:1 VA (batched
/// `mmu_update`s, one L1 at a time). Returns how many pages were added.
pub(super) fn extend_direct_map(nr_pages: u64) -> Result<u64, MmError> {
    const BATCH: usize = 64;
    let mut added = 0;
    let mut pfn = 0;
    while pfn < nr_pages {
        let va = pfn_to_va(pfn);
        // The first PFN the next L1 table maps.
        let chunk_end = (pfn | (ENTRIES as u64 - 1)) + 1;
        let end = chunk_end.min(nr_pages);
        if (pfn..end).all(|p| lookup(pfn_to_va(p)).is_some()) {
            pfn = end;
            continue;
        }
        let l1 = ensure_l1(va)?;
        let mut batch = [MmuUpdate::default(); BATCH];
        let mut n = 0;
        for p in pfn..end {
            let pva = pfn_to_va(p);
            if pte_present(read_entry(l1, table_index(pva, 1))) {
                continue;
            }
            batch[n] = MmuUpdate {
                ptr: entry_ma(l1, table_index(pva, 1)) | MMU_NORMAL_PT_UPDATE,
                val: make_pte(pfn_to_mfn(p), L1_PROT),
            };
            n += 1;
            if n == BATCH {
                // SAFETY: maps the domain's own, so far unmapped, frames at their 1:1 VAs.
                unsafe { mmu_update(&batch[..n], DOMID_SELF) }
                    .map_err(|e| MmError::Xen("mmu_update (1:1 map)", e))?;
                added += n as u64;
                n = 0;
            }
        }
        if n > 0 {
            // SAFETY: as above.
            unsafe { mmu_update(&batch[..n], DOMID_SELF) }
                .map_err(|e| MmError::Xen("mmu_update (1:1 map)", e))?;
            added += n as u64;
        }
        pfn = end;
    }
    Ok(added)
}
