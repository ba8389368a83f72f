//! Mapping other domains' grants into the reserved grant-map area (`layout::GNTMAP_BASE`, one
//! page per slot, 32768 slots = the stub domain's maptrack limit). Slots come lowest first
//! from a bitmap, so the L1 tables (built on demand, one per 512 slots) stay few. A
//! [`GrantMap`] unmaps itself when dropped; [`GrantMap::unmap`] reports the result instead.

use crate::gnttab::{check, GrantError, GrantRef};
use crate::mm::bitmap::{words_for, Bitmap};
use crate::mm::paging::{gntmap_slot_va, layout};
use crate::mm::{map_grant, unmap_grant, SharedPage};
use crate::sync::IrqMutex;
use alloc::vec;
use alloc::vec::Vec;

static SLOTS: IrqMutex<Option<Bitmap<Vec<u64>>>> = IrqMutex::new(None);

fn alloc_slot() -> Result<usize, GrantError> {
    let mut guard = SLOTS.lock();
    let slots = guard.get_or_insert_with(|| {
        Bitmap::new(
            vec![0; words_for(layout::GNTMAP_SLOTS)],
            layout::GNTMAP_SLOTS,
            0,
        )
    });
    slots.alloc().ok_or(GrantError::NoMapSlot)
}

fn free_slot(slot: usize) {
    if let Some(slots) = SLOTS.lock().as_mut() {
        if let Err(e) = slots.free(slot) {
            panic!("gntmap: freeing slot {slot}: {e:?}");
        }
    }
}

/// Slots of the grant-map area in use.
pub fn mapped_count() -> usize {
    SLOTS
        .lock()
        .as_ref()
        .map_or(0, |s| s.len() - s.free_count())
}

/// A foreign grant mapped at a page of the grant-map area.
pub struct GrantMap {
    slot: usize,
    va: usize,
    handle: u32,
    domid: u16,
    gref: GrantRef,
    unmapped: bool,
}

/// Maps grant `gref` of domain `domid` (writable or read-only) at a free slot.
pub fn map(domid: u16, gref: GrantRef, writable: bool) -> Result<GrantMap, GrantError> {
    let slot = alloc_slot()?;
    let va = gntmap_slot_va(slot);
    if let Err(e) = crate::mm::ensure_l1(va) {
        free_slot(slot);
        return Err(GrantError::Memory(e));
    }
    let (ret, op) = map_grant(slot, domid, gref, writable);
    if let Err(e) = check("GNTTABOP_map_grant_ref", ret, op.status) {
        free_slot(slot);
        return Err(e);
    }
    Ok(GrantMap {
        slot,
        va,
        handle: op.handle,
        domid,
        gref,
        unmapped: false,
    })
}

impl GrantMap {
    /// VA of the mapped page.
    pub fn va(&self) -> usize {
        self.va
    }

    /// The mapped page (the peer may change it at any time). The view does not keep the
    /// grant mapped: it must not be used after the `GrantMap` is gone.
    pub fn page(&self) -> SharedPage {
        SharedPage::grant_slot(self.slot)
    }

    fn do_unmap(&mut self) -> Result<(), GrantError> {
        let (ret, status) = unmap_grant(self.slot, self.handle);
        check("GNTTABOP_unmap_grant_ref", ret, status)?;
        self.unmapped = true;
        free_slot(self.slot);
        Ok(())
    }

    /// Unmaps the grant and frees its slot. On failure the slot stays reserved (its VA may
    /// still map the peer's page) and the error says why.
    pub fn unmap(mut self) -> Result<(), GrantError> {
        let r = self.do_unmap();
        self.unmapped = true;
        r
    }
}

impl Drop for GrantMap {
    fn drop(&mut self) {
        if !self.unmapped {
            if let Err(e) = self.do_unmap() {
                crate::println!(
                    "gntmap: unmapping dom{} ref {} at {:#x}: {e}",
                    self.domid,
                    self.gref,
                    self.va
                );
            }
        }
    }
}
