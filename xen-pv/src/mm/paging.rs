//! x86_64 4-level paging as a PV guest sees it: page-table entry bits and protections, the
//! per-level index of a virtual address, and the kernel's virtual-address layout. Pure logic,
//! host-tested; the mmu_update side lives in `mm::pagetable`.

use x86_64::structures::paging::{PhysFrame, Size4KiB};
use x86_64::PhysAddr;

/// Bytes per page.
pub const PAGE_SIZE: usize = 4096;
/// log2(PAGE_SIZE).
pub const PAGE_SHIFT: u32 = 12;
/// Entries per page-table page.
pub const ENTRIES: usize = 512;

/// Page-table entry flags (x86_64's; a PV guest's entries hold machine frames, and Xen forces
/// USER_ACCESSIBLE on 64-bit PV L1 entries).
pub use x86_64::structures::paging::PageTableFlags as Flags;

/// Leaf (L1) protection of a writable kernel page: PRESENT | WRITABLE | ACCESSED.
pub const L1_PROT: Flags = Flags::PRESENT.union(Flags::WRITABLE).union(Flags::ACCESSED);
/// Leaf protection of a read-only page (how page-table pages must be mapped).
pub const L1_PROT_RO: Flags = Flags::PRESENT.union(Flags::ACCESSED);
/// Protection of an L2/L3/L4 entry pointing at a lower table.
pub const TABLE_PROT: Flags = L1_PROT.union(Flags::DIRTY).union(Flags::USER_ACCESSIBLE);

/// The machine address of frame `mfn` (its low 52 bits, page aligned).
pub fn frame_address(mfn: u64) -> PhysAddr {
    PhysFrame::<Size4KiB>::containing_address(PhysAddr::new_truncate(mfn << PAGE_SHIFT))
        .start_address()
}

/// A PTE mapping machine frame `mfn` with `flags`.
pub fn make_pte(mfn: u64, flags: Flags) -> u64 {
    frame_address(mfn).as_u64() | flags.bits()
}

/// The machine frame a PTE points at.
pub fn pte_mfn(entry: u64) -> u64 {
    PhysFrame::<Size4KiB>::containing_address(PhysAddr::new_truncate(entry))
        .start_address()
        .as_u64()
        >> PAGE_SHIFT
}

/// True if the entry is present.
pub fn pte_present(entry: u64) -> bool {
    Flags::from_bits_retain(entry).contains(Flags::PRESENT)
}

/// Index of `va` in its table at `level` (1 = L1 ... 4 = L4).
pub const fn table_index(va: usize, level: u32) -> usize {
    (va >> (PAGE_SHIFT + 9 * (level - 1))) & (ENTRIES - 1)
}

/// True if `va` is canonical (bits 48..63 copy bit 47).
pub const fn is_canonical(va: usize) -> bool {
    let top = va >> 47;
    top == 0 || top == (1 << 17) - 1
}

/// Start of the hypervisor's reserved hole (L4 slots 256..271).
pub const XEN_HOLE_START: usize = 0xFFFF_8000_0000_0000;
/// End (exclusive) of the hypervisor's reserved hole.
pub const XEN_HOLE_END: usize = 0xFFFF_8800_0000_0000;

/// True if the guest may put its own mapping at page `va`.
pub const fn guest_may_map(va: usize) -> bool {
    is_canonical(va) && (va < XEN_HOLE_START || va >= XEN_HOLE_END) && va.is_multiple_of(PAGE_SIZE)
}

/// The kernel's virtual-address layout (all areas in the lower canonical half).
///
/// `0 .. nr_pages*4K` is the 1:1 map of pseudo-physical memory (VA = PFN * 4096, as the domain
/// builder laid it out); the areas below sit far above it, each in its own L4 slot.
pub mod layout {
    /// The shared grant table (its frames are Xen's, mapped here by `gnttab::init`).
    pub const GNTTAB_BASE: usize = 0x0000_1000_0000_0000;
    /// Maximum grant-table frames mapped at [`GNTTAB_BASE`].
    pub const GNTTAB_MAX_FRAMES: usize = 32;
    /// Reserved area where foreign grants are mapped, one page per slot (`gntmap`).
    pub const GNTMAP_BASE: usize = 0x0000_2000_0000_0000;
    /// Slots in the grant-map area: the stub domain's maptrack limit (128 frames × 256).
    pub const GNTMAP_SLOTS: usize = 32768;
    /// Area for `mm::map_frame` callers (aliases of own frames), right after the grant-map
    /// area so it shares its upper page tables.
    pub const MAP_BASE: usize = GNTMAP_BASE + GNTMAP_SLOTS * super::PAGE_SIZE;
    /// Pages in the `map_frame` area (one L1 table).
    pub const MAP_PAGES: usize = 512;
}

/// VA of a slot in the grant-map area.
pub const fn gntmap_slot_va(slot: usize) -> usize {
    layout::GNTMAP_BASE + slot * PAGE_SIZE
}

/// Slot of a VA in the grant-map area, if it is one.
pub const fn gntmap_va_slot(va: usize) -> Option<usize> {
    if va < layout::GNTMAP_BASE || !va.is_multiple_of(PAGE_SIZE) {
        return None;
    }
    let slot = (va - layout::GNTMAP_BASE) / PAGE_SIZE;
    if slot < layout::GNTMAP_SLOTS {
        Some(slot)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pte_round_trips_mfn_and_flags() {
        let e = make_pte(0x1_2345, L1_PROT);
        assert_eq!(e, 0x1234_5023);
        assert_eq!(pte_mfn(e), 0x1_2345);
        assert!(pte_present(e));
        assert!(!pte_present(make_pte(7, Flags::WRITABLE)));
        assert_eq!(make_pte(0x12, TABLE_PROT), 0x12067);
        assert_eq!(L1_PROT_RO.bits(), 0x21);
        // NX (bit 63) and software bits are not part of the frame number.
        assert_eq!(pte_mfn(0x8000_0000_0abc_d067), 0xabcd);
    }

    #[test]
    fn indices_of_known_addresses() {
        let va = 0x0000_2000_0040_3000;
        assert_eq!(table_index(va, 4), 64);
        assert_eq!(table_index(va, 3), 0);
        assert_eq!(table_index(va, 2), 2);
        assert_eq!(table_index(va, 1), 3);
        let top = 0xFFFF_FFFF_FFFF_F000;
        for level in 1..=4 {
            assert_eq!(table_index(top, level), 511);
        }
        assert_eq!(table_index(0x1000, 1), 1);
        assert_eq!(table_index(0x20_0000, 2), 1);
        assert_eq!(table_index(0x4000_0000, 3), 1);
        assert_eq!(table_index(0x80_0000_0000, 4), 1);
    }

    #[test]
    fn xen_hole_and_non_canonical_are_refused() {
        assert!(guest_may_map(0x1000));
        assert!(guest_may_map(layout::GNTMAP_BASE));
        assert!(!guest_may_map(0x1001));
        assert!(!guest_may_map(XEN_HOLE_START));
        assert!(!guest_may_map(XEN_HOLE_END - PAGE_SIZE));
        assert!(guest_may_map(XEN_HOLE_END));
        assert!(!guest_may_map(0x0000_8000_0000_0000));
        assert!(is_canonical(0x0000_7FFF_FFFF_F000));
    }

    #[test]
    fn reserved_areas_do_not_overlap() {
        let gnttab_end = layout::GNTTAB_BASE + layout::GNTTAB_MAX_FRAMES * PAGE_SIZE;
        assert!(gnttab_end <= layout::GNTMAP_BASE);
        assert_ne!(
            table_index(layout::GNTTAB_BASE, 4),
            0,
            "not in the 1:1 map's slot"
        );
        assert_ne!(
            table_index(layout::GNTTAB_BASE, 4),
            table_index(layout::GNTMAP_BASE, 4)
        );
        let map_end = layout::MAP_BASE + layout::MAP_PAGES * PAGE_SIZE;
        assert_eq!(layout::MAP_BASE, gntmap_slot_va(layout::GNTMAP_SLOTS));
        assert_eq!(
            table_index(layout::MAP_BASE, 3),
            table_index(layout::GNTMAP_BASE, 3)
        );
        assert_eq!(
            table_index(map_end - PAGE_SIZE, 2),
            table_index(layout::MAP_BASE, 2)
        );
        let last = gntmap_slot_va(layout::GNTMAP_SLOTS - 1);
        assert!(guest_may_map(last));
        assert_eq!(
            table_index(last, 4),
            table_index(layout::GNTMAP_BASE, 4),
            "one L4 slot holds the whole grant-map area"
        );
    }

    #[test]
    fn gntmap_slots_round_trip() {
        assert_eq!(gntmap_slot_va(0), layout::GNTMAP_BASE);
        assert_eq!(gntmap_slot_va(3), layout::GNTMAP_BASE + 3 * 4096);
        assert_eq!(gntmap_va_slot(gntmap_slot_va(3)), Some(3));
        assert_eq!(gntmap_va_slot(gntmap_slot_va(3) + 8), None);
        assert_eq!(gntmap_va_slot(layout::GNTMAP_BASE - 4096), None);
        assert_eq!(gntmap_va_slot(gntmap_slot_va(layout::GNTMAP_SLOTS)), None);
    }
}
