//! Where live update puts the next kernel in the domain's pseudo-physical memory, as Xen's
//! domain builder lays out a PV guest (VA = PFN × 4096): pfn 0 unused, the image from pfn 1,
//! the boot module (the state stream), the p2m list, start_info, the pages kept in place
//! (console and store rings), the page tables, then free frames, the first
//! [`SLACK_PAGES`] of them mapped too. Also which frame each new pfn gets (the p2m is
//! permuted, nothing is copied twice) and the page tables' entries. Pure, host-tested.

use crate::mm::paging::{make_pte, Flags, ENTRIES, L1_PROT, L1_PROT_RO, PAGE_SIZE, TABLE_PROT};
use alloc::vec;
use alloc::vec::Vec;

/// Free pages mapped after the page tables (Xen maps at least 512 KiB more): the next
/// kernel's frame bitmap and the tables that extend its 1:1 map come from them.
pub const SLACK_PAGES: u64 = 128;
/// A page mapped in both address spaces at the switch: the next kernel's start_info page,
/// whose upper half holds the `mmuext_op`s of the switch (Xen may read them again after
/// loading the new tables, when it resumes a preempted switch). L4 0, L3 511, L2 511, L1 511.
pub const HANDOVER_VA: u64 = 0x0000_007F_FFFF_F000;
/// Offset of the switch's `mmuext_op`s in that page (start_info takes 1168 bytes).
pub const OPS_OFFSET: usize = 2048;
/// Page tables before the L1s that map the bootstrap region: L4, L3, L2 of the region and
/// the L2 and L1 of [`HANDOVER_VA`].
const FIXED_TABLES: u64 = 5;
/// Pages left for the next kernel's heap at least (twice the state stream if more).
const MIN_HEAP_PAGES: u64 = 256;

const PAGE: u64 = PAGE_SIZE as u64;

/// The next kernel's bootstrap region, in pfns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub nr_pages: u64,
    /// First pfn after the image (which starts at pfn 1).
    pub image_end: u64,
    pub module: u64,
    pub module_pages: u64,
    pub p2m: u64,
    pub p2m_pages: u64,
    pub start_info: u64,
    /// Pages kept in place (their frames keep their contents: console, store ring).
    pub kept: u64,
    pub kept_pages: u64,
    /// The L4; then L3, L2, the handover L2 and L1, then `l1_tables` L1s.
    pub pt: u64,
    pub l1_tables: u64,
    /// `pt + pt_frames()`: where the next kernel's free frames start.
    pub first_free: u64,
    /// Pfns `0..mapped` are mapped by the new tables.
    pub mapped: u64,
}

impl Layout {
    /// The region for an image ending at VA `image_end`, a module of `module_len` bytes and
    /// `kept_pages` pages kept in place, in a domain of `nr_pages` pages.
    pub fn new(
        image_end: u64,
        module_len: usize,
        nr_pages: u64,
        kept_pages: u64,
    ) -> Result<Layout, &'static str> {
        let pages = |bytes: u64| bytes.div_ceil(PAGE);
        let image_end = pages(image_end).max(1);
        let module_pages = pages(module_len as u64);
        let module = image_end;
        let p2m = module + module_pages;
        let p2m_pages = pages(nr_pages * 8);
        let start_info = p2m + p2m_pages;
        let kept = start_info + 1;
        let pt = kept + kept_pages;
        let mut l1_tables = 1;
        let (first_free, mapped) = loop {
            let first_free = pt + FIXED_TABLES + l1_tables;
            let mapped = (first_free + SLACK_PAGES).min(nr_pages);
            let need = mapped.div_ceil(ENTRIES as u64);
            if need <= l1_tables {
                break (first_free, mapped);
            }
            l1_tables = need;
        };
        if mapped > (ENTRIES * ENTRIES) as u64 {
            return Err("the bootstrap region would exceed 1 GiB");
        }
        // The next kernel restores the stream into its heap: leave it room for that.
        let heap = (module_pages * 2).max(MIN_HEAP_PAGES);
        if first_free + SLACK_PAGES + heap > nr_pages {
            return Err("the domain's memory cannot hold the next kernel and its state");
        }
        Ok(Layout {
            nr_pages,
            image_end,
            module,
            module_pages,
            p2m,
            p2m_pages,
            start_info,
            kept,
            kept_pages,
            pt,
            l1_tables,
            first_free,
            mapped,
        })
    }

    /// Page-table frames (`start_info.nr_pt_frames`).
    pub fn pt_frames(&self) -> u64 {
        FIXED_TABLES + self.l1_tables
    }

    /// True for a pfn holding one of the new page tables (mapped read-only).
    pub fn is_table(&self, pfn: u64) -> bool {
        (self.pt..self.first_free).contains(&pfn)
    }

    /// Every entry of the new page tables, as `(table pfn, index, entry)`; `p2m` gives each
    /// pfn's machine frame. Xen's own L4 slots stay empty (it fills them when pinning).
    pub fn table_entries(&self, p2m: &[u64], mut put: impl FnMut(u64, usize, u64)) {
        let mfn = |pfn: u64| p2m.get(pfn as usize).copied().unwrap_or(0);
        let (l4, l3, l2, ho_l2, ho_l1) =
            (self.pt, self.pt + 1, self.pt + 2, self.pt + 3, self.pt + 4);
        let last = ENTRIES - 1;
        put(l4, 0, make_pte(mfn(l3), TABLE_PROT));
        put(l3, 0, make_pte(mfn(l2), TABLE_PROT));
        put(l3, last, make_pte(mfn(ho_l2), TABLE_PROT));
        put(ho_l2, last, make_pte(mfn(ho_l1), TABLE_PROT));
        put(ho_l1, last, make_pte(mfn(self.start_info), L1_PROT));
        for t in 0..self.l1_tables {
            let l1 = self.pt + FIXED_TABLES + t;
            put(l2, t as usize, make_pte(mfn(l1), TABLE_PROT));
            let first = t * ENTRIES as u64;
            for pfn in first..(first + ENTRIES as u64).min(self.mapped) {
                let prot: Flags = if self.is_table(pfn) {
                    L1_PROT_RO
                } else {
                    L1_PROT
                };
                put(l1, (pfn - first) as usize, make_pte(mfn(pfn), prot));
            }
        }
    }
}

/// The frame of every new pfn, as the old pfn whose frame it takes: `staged` for pfns
/// `0..staged.len()`, then every other old pfn in order. `None` if `staged` repeats a pfn or
/// names one outside the domain.
pub fn assign(nr_pages: u64, staged: &[u64]) -> Option<Vec<u64>> {
    let n = usize::try_from(nr_pages).ok()?;
    let mut used = vec![false; n];
    for &p in staged {
        let slot = used.get_mut(usize::try_from(p).ok()?)?;
        if *slot {
            return None;
        }
        *slot = true;
    }
    let mut out = Vec::with_capacity(n);
    out.extend_from_slice(staged);
    out.extend((0..nr_pages).filter(|&p| !used.get(p as usize).copied().unwrap_or(true)));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::paging::{pte_mfn, table_index};

    #[test]
    fn an_8_mib_stub_fits_with_room() {
        // A 500 KiB image, a 100 KiB state stream, 2048 pages, the console kept.
        let l = Layout::new(0x7d000, 100 * 1024, 2048, 1).unwrap();
        assert_eq!(l.image_end, 0x7d);
        assert_eq!((l.module, l.module_pages), (0x7d, 25));
        assert_eq!((l.p2m, l.p2m_pages), (0x96, 4));
        assert_eq!(l.start_info, 0x9a);
        assert_eq!((l.kept, l.kept_pages), (0x9b, 1));
        assert_eq!(l.pt, 0x9c);
        assert_eq!(l.l1_tables, 1);
        assert_eq!(l.pt_frames(), 6);
        assert_eq!(l.first_free, 0xa2);
        assert_eq!(l.mapped, 0xa2 + SLACK_PAGES);
        assert!(l.is_table(0x9c) && l.is_table(0xa1) && !l.is_table(0xa2));
    }

    #[test]
    fn more_l1_tables_when_the_region_passes_2_mib() {
        let l = Layout::new(0x1f0000, 0, 8192, 1).unwrap();
        assert_eq!(l.l1_tables, 2);
        assert_eq!(l.mapped, l.first_free + SLACK_PAGES);
        assert!(l.mapped > 512 && l.mapped <= 1024);
    }

    #[test]
    fn refuses_a_domain_too_small() {
        assert_eq!(
            Layout::new(0x7d000, 6 << 20, 2048, 1),
            Err("the domain's memory cannot hold the next kernel and its state")
        );
    }

    #[test]
    fn tables_map_the_region_with_tables_read_only_and_the_handover_page() {
        let l = Layout::new(0x5000, 10, 1024, 1).unwrap();
        let p2m: Vec<u64> = (0..1024).map(|p| 0x10_0000 + p).collect();
        let mut entries = Vec::new();
        l.table_entries(&p2m, |t, i, e| entries.push((t, i, e)));
        let find = |t: u64, i: usize| entries.iter().find(|e| e.0 == t && e.1 == i).map(|e| e.2);
        let l1 = l.pt + FIXED_TABLES;
        assert_eq!(
            find(l.pt, 0),
            Some(make_pte(p2m[l.pt as usize + 1], TABLE_PROT))
        );
        assert_eq!(find(l1, 1), Some(make_pte(0x10_0001, L1_PROT)));
        assert_eq!(
            find(l1, l.pt as usize),
            Some(make_pte(p2m[l.pt as usize], L1_PROT_RO))
        );
        assert_eq!(find(l1, l.mapped as usize), None, "past the mapped region");
        // The handover VA resolves to the start_info frame.
        let ho = HANDOVER_VA as usize;
        assert_eq!((table_index(ho, 4), table_index(ho, 3)), (0, 511));
        let ho_l2 = pte_mfn(find(l.pt + 1, 511).unwrap());
        assert_eq!(ho_l2, p2m[l.pt as usize + 3]);
        assert_eq!(
            find(l.pt + 4, table_index(ho, 1)),
            Some(make_pte(p2m[l.start_info as usize], L1_PROT))
        );
        // One entry per mapped pfn, 4 links, the handover page and an L2 link per L1.
        assert_eq!(entries.len() as u64, l.mapped + 5 + l.l1_tables);
    }

    #[test]
    fn assignment_is_a_permutation_led_by_the_staged_pfns() {
        assert_eq!(assign(6, &[4, 5, 0]), Some(vec![4, 5, 0, 1, 2, 3]));
        assert_eq!(assign(4, &[1, 1]), None, "a pfn twice");
        assert_eq!(assign(4, &[4]), None, "outside the domain");
        assert_eq!(assign(3, &[]), Some(vec![0, 1, 2]));
    }
}
