//! Mappings in the two reserved grant areas (no Rust object ever lives there): this domain's
//! grant-table frames at `layout::GNTTAB_BASE`, and other domains' grants at the slots of
//! `layout::GNTMAP_BASE` (slot bookkeeping is `gntmap`'s).

use super::paging::{gntmap_slot_va, layout};
use super::{map_frame, MmError, SharedPage};
use crate::hypercall::{
    grant_table_op, Errno, GntmapFlags, GnttabMapGrantRef, GnttabUnmapGrantRef,
};

/// Maps frame `i` of this domain's grant table (machine frame `mfn`, from
/// `GNTTABOP_setup_table`) at its page of the grant-table area.
pub fn map_grant_table_frame(i: usize, mfn: u64) -> Result<SharedPage, MmError> {
    if i >= layout::GNTTAB_MAX_FRAMES {
        return Err(MmError::BadVa(
            layout::GNTTAB_BASE + i * super::paging::PAGE_SIZE,
        ));
    }
    let page = SharedPage::grant_table_frame(i);
    // SAFETY: the grant-table area holds no Rust object (only `SharedPage` views point into
    // it), and Xen refuses a frame this domain may not map.
    unsafe { map_frame(page.va(), mfn, true) }?;
    Ok(page)
}

/// `GNTTABOP_map_grant_ref` of grant `gref` of `domid` (writable or read-only) at grant-map
/// slot `slot`, whose L1 table must exist (`ensure_l1`). Returns the hypercall's result and
/// the op (status, handle). Panics on a slot outside the area (slots are the kernel's own).
pub fn map_grant(
    slot: usize,
    domid: u16,
    gref: u32,
    writable: bool,
) -> (Result<(), Errno>, GnttabMapGrantRef) {
    assert!(
        slot < layout::GNTMAP_SLOTS,
        "grant-map slot {slot} out of range"
    );
    let mut op = [GnttabMapGrantRef {
        host_addr: gntmap_slot_va(slot) as u64,
        flags: (GntmapFlags::HOST_MAP
            | if writable {
                GntmapFlags::empty()
            } else {
                GntmapFlags::READONLY
            })
        .bits(),
        gref,
        dom: domid,
        ..Default::default()
    }];
    // SAFETY: the host address is a slot of the reserved grant-map area, where no Rust object
    // lives (only `SharedPage` views point there); without its L1 table Xen fails the op.
    let ret = unsafe { grant_table_op(&mut op) };
    (ret, op[0])
}

/// `GNTTABOP_unmap_grant_ref` of the grant mapped at slot `slot` with `handle`. Returns the
/// hypercall's result and the status.
pub fn unmap_grant(slot: usize, handle: u32) -> (Result<(), Errno>, i16) {
    assert!(
        slot < layout::GNTMAP_SLOTS,
        "grant-map slot {slot} out of range"
    );
    let mut op = [GnttabUnmapGrantRef {
        host_addr: gntmap_slot_va(slot) as u64,
        handle,
        ..Default::default()
    }];
    // SAFETY: unmaps a slot of the reserved grant-map area, where no Rust object lives; a
    // `SharedPage` view used afterwards faults.
    let ret = unsafe { grant_table_op(&mut op) };
    (ret, op[0].status)
}
