//! Loading the next kernel into frames of the running one and switching to it: stage the
//! image, the state stream, the permuted p2m list, start_info and new page tables in heap
//! frames, pin the new L4 ([`prepare`]); then, past the point of no return, rewrite the M2P
//! for the new pfns and let `xen_handover` (boot/head.S) load the tables and enter the next
//! kernel's `_start` ([`Prepared::commit`]).

use super::elf::{self, Kernel};
use super::layout::{assign, Layout, HANDOVER_VA, OPS_OFFSET};
use super::HandoverError;
use crate::hypercall::{
    mmu_update, mmuext, mmuext_op, update_va_mapping, MmuUpdate, MmuextOp, DOMID_SELF,
    MMU_MACHPHYS_UPDATE, UVMF_INVLPG,
};
use crate::mm::paging::{make_pte, L1_PROT, L1_PROT_RO, PAGE_SIZE};
use crate::mm::{self, pfn_to_mfn, pfn_to_va, va_to_pfn};
use crate::start_info::{self, Flags};
use alloc::alloc::{alloc_zeroed, dealloc};
use alloc::vec::Vec;
use core::alloc::Layout as AllocLayout;

/// M2P updates per `mmu_update` call.
const M2P_BATCH: usize = 128;

extern "C" {
    fn _start();
    fn xen_handover(ops: u64, count: u64, start_info: u64) -> !;
    static xen_handover_end: u8;
    static hypercall_page: [u8; PAGE_SIZE];
}

/// The running kernel's switch code (`xen_handover` .. `xen_handover_end`).
fn handover_code() -> &'static [u8] {
    let start = xen_handover as *const () as usize;
    let end = (&raw const xen_handover_end) as usize;
    // SAFETY: both symbols delimit the switch routine in this kernel's mapped .text.
    unsafe { core::slice::from_raw_parts(start as *const u8, end - start) }
}

/// Checks that `elf` can take over from this kernel in place: a loadable image whose entry is
/// our `_start` and whose switch routine is byte for byte ours (the switch goes on in it).
pub fn check(image: &[u8]) -> Result<Kernel, HandoverError> {
    let k = elf::parse(image).map_err(HandoverError::Image)?;
    let code = handover_code();
    let same = elf::bytes_at(
        image,
        &k,
        xen_handover as *const () as usize as u64,
        code.len(),
    ) == Some(code);
    if k.entry != _start as *const () as usize as u64 || !same {
        return Err(HandoverError::Entry);
    }
    Ok(k)
}

/// The next kernel, staged and its page tables pinned; nothing else has changed yet.
pub struct Prepared {
    layout: Layout,
    /// The old pfn whose frame each new pfn takes.
    new_to_old: Vec<u64>,
    /// The machine frame of each new pfn (the next kernel's p2m list).
    p2m: Vec<u64>,
    /// The M2P updates of the switch (made in `prepare`, where running out of memory can
    /// still be answered).
    m2p: Vec<MmuUpdate>,
    block: *mut u8,
    block_layout: AllocLayout,
    read_only: bool,
    aliased: bool,
    pinned: bool,
}

/// Stages `image` (checked by [`check`]) with `module` as its boot module and `cmd_line`.
pub fn prepare(image: &[u8], module: &[u8], cmd_line: &str) -> Result<Prepared, HandoverError> {
    let k = check(image)?;
    let si = start_info::get();
    let next_si = si.with_cmd_line(cmd_line).ok_or(HandoverError::CmdLine)?;
    let nr_pages = si.nr_pages;
    let mut kept = Vec::new();
    for mfn in [si.console_mfn, si.store_mfn] {
        let pfn = crate::arch::mfn_to_pfn(mfn);
        if mfn != 0 && pfn < nr_pages && pfn_to_mfn(pfn) == mfn {
            kept.push(pfn);
        }
    }
    let layout = Layout::new(k.end, module.len(), nr_pages, kept.len() as u64)
        .map_err(HandoverError::Layout)?;
    let staged_pages = (layout.mapped - kept.len() as u64) as usize;
    let block_layout = AllocLayout::from_size_align(staged_pages * PAGE_SIZE, PAGE_SIZE)
        .map_err(|_| HandoverError::NoMemory(staged_pages * PAGE_SIZE))?;
    // SAFETY: a non-zero size; the block is owned by `Prepared` until abandoned or switched.
    let block = unsafe { alloc_zeroed(block_layout) };
    if block.is_null() {
        return Err(HandoverError::NoMemory(staged_pages * PAGE_SIZE));
    }
    let first = va_to_pfn(block as usize);
    let mut fresh = first..first + staged_pages as u64;
    let staged: Vec<u64> = (0..layout.mapped)
        .map(|p| {
            let k = p.wrapping_sub(layout.kept);
            match kept.get(k as usize) {
                Some(&pfn) if p >= layout.kept => pfn,
                _ => fresh.next().unwrap_or(0),
            }
        })
        .collect();
    let mut prepared = Prepared {
        layout,
        new_to_old: Vec::new(),
        p2m: Vec::new(),
        m2p: Vec::new(),
        block,
        block_layout,
        read_only: false,
        aliased: false,
        pinned: false,
    };
    prepared.new_to_old = assign(nr_pages, &staged).ok_or(HandoverError::Layout(
        "the staged frames overlap the kept ones",
    ))?;
    prepared.p2m = prepared.new_to_old.iter().map(|&p| pfn_to_mfn(p)).collect();
    prepared.m2p = prepared.m2p_updates();
    prepared.fill(image, &k, module, next_si)?;
    prepared.pin()?;
    Ok(prepared)
}

impl Prepared {
    /// Writes `data` at the next kernel's VA `va` (through the frames' current 1:1 pages).
    fn write_at(&self, va: u64, data: &[u8]) {
        let mut done = 0;
        while done < data.len() {
            let at = va + done as u64;
            let pfn = at / PAGE_SIZE as u64;
            let off = (at % PAGE_SIZE as u64) as usize;
            let n = (PAGE_SIZE - off).min(data.len() - done);
            let Some(&old) = self.new_to_old.get(pfn as usize) else {
                return;
            };
            // Only pfns below `first_free` are written, all of them fresh heap frames of
            // `block`: mapped RW at their 1:1 VA and used by nothing else.
            assert!(pfn < self.layout.first_free && !self.is_kept(pfn));
            // SAFETY: see above; `off + n` stays within the page.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    data[done..].as_ptr(),
                    (pfn_to_va(old) + off) as *mut u8,
                    n,
                );
            }
            done += n;
        }
    }

    fn is_kept(&self, pfn: u64) -> bool {
        (self.layout.kept..self.layout.kept + self.layout.kept_pages).contains(&pfn)
    }

    fn fill(
        &self,
        image: &[u8],
        k: &Kernel,
        module: &[u8],
        mut si: start_info::StartInfo,
    ) -> Result<(), HandoverError> {
        let l = &self.layout;
        let page = PAGE_SIZE as u64;
        for s in &k.segments {
            let bytes = image
                .get(s.offset..s.offset + s.filesz)
                .ok_or(HandoverError::Image("a segment lies outside the file"))?;
            self.write_at(s.vaddr, bytes);
        }
        // SAFETY: Xen filled our hypercall page at boot; it is mapped read-only code.
        let stubs: &[u8] = unsafe { &hypercall_page };
        self.write_at(k.hypercall_page, stubs);
        self.write_at(l.module * page, module);
        let p2m: Vec<u8> = self.p2m.iter().flat_map(|m| m.to_le_bytes()).collect();
        self.write_at(l.p2m * page, &p2m);
        si.pt_base = l.pt * page;
        si.nr_pt_frames = l.pt_frames();
        si.mfn_list = l.p2m * page;
        si.mod_start = l.module * page;
        si.mod_len = module.len() as u64;
        si.flags &= !Flags::MOD_START_PFN.bits();
        self.write_at(l.start_info * page, &si.encode());
        let raw: Vec<u8> = self
            .switch_ops()
            .iter()
            .flat_map(|o| {
                let mut b = [0u8; 24];
                b[..4].copy_from_slice(&o.cmd.to_le_bytes());
                b[8..16].copy_from_slice(&o.arg1.to_le_bytes());
                b[16..].copy_from_slice(&o.arg2.to_le_bytes());
                b
            })
            .collect();
        self.write_at(l.start_info * page + OPS_OFFSET as u64, &raw);
        l.table_entries(&self.p2m, |table, idx, entry| {
            self.write_at(table * page + idx as u64 * 8, &entry.to_le_bytes());
        });
        Ok(())
    }

    /// The `mmuext_op`s of the switch, written to the handover page: no user page tables,
    /// then the new L4 loaded.
    fn switch_ops(&self) -> [MmuextOp; 2] {
        [
            MmuextOp {
                cmd: mmuext::NEW_USER_BASEPTR,
                arg1: 0,
                arg2: 0,
            },
            MmuextOp {
                cmd: mmuext::NEW_BASEPTR,
                arg1: self.p2m[self.layout.pt as usize],
                arg2: 0,
            },
        ]
    }

    /// The M2P entries the new pfns need: one per frame whose pfn changes.
    fn m2p_updates(&self) -> Vec<MmuUpdate> {
        self.p2m
            .iter()
            .enumerate()
            .filter(|&(pfn, _)| self.new_to_old[pfn] != pfn as u64)
            .map(|(pfn, &mfn)| MmuUpdate {
                ptr: (mfn << 12) | MMU_MACHPHYS_UPDATE,
                val: pfn as u64,
            })
            .collect()
    }

    /// Makes the new tables read-only in our map, maps the handover page, pins the new L4.
    fn pin(&mut self) -> Result<(), HandoverError> {
        let l = self.layout;
        self.read_only = true;
        for pfn in l.pt..l.first_free {
            self.remap(pfn, false)?;
        }
        let si_mfn = self.p2m[l.start_info as usize];
        // SAFETY: HANDOVER_VA is outside everything this kernel maps; the frame is ours.
        unsafe { mm::map_frame(HANDOVER_VA as usize, si_mfn, true) }
            .map_err(HandoverError::Memory)?;
        self.aliased = true;
        let pin = [MmuextOp {
            cmd: mmuext::PIN_L4_TABLE,
            arg1: self.p2m[l.pt as usize],
            arg2: 0,
        }];
        // SAFETY: the tables map only the domain's own frames, the tables read-only.
        unsafe { mmuext_op(&pin) }.map_err(|e| HandoverError::Xen("pinning the new L4", e))?;
        self.pinned = true;
        Ok(())
    }

    /// Maps the frame of new pfn `pfn` at its current 1:1 VA, writable or not.
    fn remap(&self, pfn: u64, writable: bool) -> Result<(), HandoverError> {
        let old = self.new_to_old[pfn as usize];
        let prot = if writable { L1_PROT } else { L1_PROT_RO };
        // SAFETY: the frame belongs to `block`; only its protection changes.
        unsafe { update_va_mapping(pfn_to_va(old), make_pte(pfn_to_mfn(old), prot), UVMF_INVLPG) }
            .map_err(|e| HandoverError::Xen("remapping a staged page table", e))
    }

    /// Gives the staged kernel up: unpins its tables and frees its frames.
    pub fn abandon(self) {
        let l = self.layout;
        if self.pinned {
            let unpin = [MmuextOp {
                cmd: mmuext::UNPIN_TABLE,
                arg1: self.p2m[l.pt as usize],
                arg2: 0,
            }];
            // SAFETY: unpinning tables that nothing uses.
            let _ = unsafe { mmuext_op(&unpin) };
        }
        if self.aliased {
            // SAFETY: only this module used the handover VA.
            let _ = unsafe { mm::unmap_frame(HANDOVER_VA as usize) };
        }
        if self.read_only {
            for pfn in l.pt..l.first_free {
                if self.remap(pfn, true).is_err() {
                    // A page we cannot write again must not go back to the heap.
                    return;
                }
            }
        }
        // SAFETY: `block` came from `alloc_zeroed` with this layout and is writable again.
        unsafe { dealloc(self.block, self.block_layout) };
    }

    /// Past the point of no return: events off, our old L4 unpinned, the M2P rewritten for
    /// the new pfns, then `xen_handover` loads the new tables and enters the next kernel.
    /// Whatever the caller shared with other domains (grant mappings) must be gone.
    pub fn commit(self) -> ! {
        crate::arch::upcall::disable();
        let l = self.layout;
        let old_l4 = [MmuextOp {
            cmd: mmuext::UNPIN_TABLE,
            arg1: mm::root_mfn(),
            arg2: 0,
        }];
        // SAFETY: the running L4 stays referenced by CR3 until the switch; unpinning only
        // lets Xen free the old tables once the switch drops that reference. A builder that
        // did not pin it (EINVAL) leaves nothing to do.
        let _ = unsafe { mmuext_op(&old_l4) };
        for batch in self.m2p.chunks(M2P_BATCH) {
            // SAFETY: renumbers our own frames; from here on nothing walks our old tables
            // through the M2P (only the switch below runs).
            if let Err(e) = unsafe { mmu_update(batch, DOMID_SELF) } {
                panic!("live update: rewriting the M2P failed: {e}");
            }
        }
        let ops = self.switch_ops().len() as u64;
        let page = PAGE_SIZE as u64;
        // SAFETY: the ops lie in the handover page, mapped at HANDOVER_VA in both address
        // spaces; the new tables are pinned and map the next kernel, whose switch routine and
        // `_start` are ours byte for byte (checked); events are masked.
        unsafe { xen_handover(HANDOVER_VA + OPS_OFFSET as u64, ops, l.start_info * page) }
    }
}
