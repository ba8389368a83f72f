//! Memory demo: heap statistics, 100,000 heap allocations and frees with the statistics back
//! to their baseline, the frame pool (with one frame mapped a second time at a VA of the
//! `map_frame` area), a grant self-map round trip (grant one of our own frames to ourselves,
//! map the grant in the grant-map area, write through one mapping and read through the other,
//! both ways, then unmap and revoke), and 1000 grant mappings held at once.
//!
//! Markers (one per line; `<n>`/`<x>` are numbers that vary, everything else is exact):
//! - `heap: baseline <HeapStats>`
//! - `heap: 100,000 heap alloc/free, stats back to baseline`
//! - `frames: frame <x> aliased at <x>, round trip ok, alias unmapped`
//! - `frames: 16 frames allocated and freed, pool back to <n>`
//! - `grant: own domid <n>`
//! - `grant: granted frame <x> as ref <n>, mapped at <x>`
//! - `grant: revoke while mapped refused (still in use)`
//! - `grant: self-map round trip ok`
//! - `grant: unmapped and revoked`
//! - `grant: 1000 grants of one frame mapped at once (last at <x>), all read it, all unmapped and revoked`
//! - `memory: demo ok`
//!
//! Failures print a line starting `memory: FAILED` and the demo stops there.

use crate::gnttab::{self, GrantError};
use crate::mm::paging::PAGE_SIZE;
use crate::mm::SharedPage;
use crate::{events, gntmap, mm, println};
use alloc::vec::Vec;

/// Allocations (each freed again) in the heap round.
pub const HEAP_ROUNDS: u64 = 100_000;
/// Blocks kept alive at once during the heap round (so frees interleave with allocations).
const LIVE_WINDOW: usize = 64;
/// Grants mapped at the same time in the scale check (two L1 tables of the grant-map area).
const MANY_MAPS: usize = 1000;
/// Frames taken from and returned to the pool (fits the pool of a 4 MiB domain).
const FRAME_ROUNDS: usize = 16;

/// Runs the demo; prints `memory: demo ok` on success.
pub fn run() {
    if heap_round().is_ok() && frame_round().is_ok() && grant_self_map().is_ok() {
        println!("memory: demo ok");
    }
}

/// A failed step; its `memory: FAILED: ...` line was printed already.
struct Failed;

fn fail(what: &str, detail: impl core::fmt::Display) -> Failed {
    println!("memory: FAILED: {what}: {detail}");
    Failed
}

fn heap_round() -> Result<(), Failed> {
    let base = mm::heap_stats();
    println!("heap: baseline {base}");
    let mut window: [Option<Vec<u8>>; LIVE_WINDOW] = [const { None }; LIVE_WINDOW];
    let mut seed: u32 = 0x2545_f491;
    for i in 0..HEAP_ROUNDS {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let size = 1 + (seed % 2048) as usize;
        let mut block = Vec::with_capacity(size);
        block.push(i as u8);
        window[i as usize % LIVE_WINDOW] = Some(block);
    }
    window.iter_mut().for_each(|b| *b = None);
    let after = mm::heap_stats();
    if after.used != base.used || after.live != base.live {
        return Err(fail("heap stats did not return to the baseline", after));
    }
    if after.allocs - base.allocs != HEAP_ROUNDS || after.frees - base.frees != HEAP_ROUNDS {
        return Err(fail(
            "heap counted a different number of allocations",
            after,
        ));
    }
    println!("heap: 100,000 heap alloc/free, stats back to baseline");
    Ok(())
}

fn frame_round() -> Result<(), Failed> {
    let pfn = mm::alloc_frame().map_err(|e| fail("alloc_frame", e))?;
    let aliased = alias_round(pfn);
    mm::free_frame(pfn);
    aliased?;
    // Counted after the alias round: its page tables stay (they serve every later alias).
    let before = mm::free_frames();
    let mut taken = [0u64; FRAME_ROUNDS];
    for slot in taken.iter_mut() {
        *slot = mm::alloc_frame().map_err(|e| fail("alloc_frame", e))?;
    }
    for &pfn in taken.iter() {
        mm::free_frame(pfn);
    }
    let after = mm::free_frames();
    if after != before {
        return Err(fail("frame pool did not return to its size", after));
    }
    println!("frames: {FRAME_ROUNDS} frames allocated and freed, pool back to {before}");
    Ok(())
}

/// Maps `pfn` a second time at the start of the `map_frame` area, checks both mappings see
/// the same memory, and unmaps the alias.
fn alias_round(pfn: u64) -> Result<(), Failed> {
    let mfn = mm::pfn_to_mfn(pfn);
    let frame = SharedPage::pool_frame(pfn).map_err(|e| fail("pool frame", e))?;
    let alias_page = mm::alias_pool_frame(pfn).map_err(|e| fail("map_frame", e))?;
    let alias = alias_page.va();
    let ok = round_trip(frame, alias_page);
    mm::unalias(alias_page).map_err(|e| fail("unmap_frame", e))?;
    if !ok {
        return Err(fail(
            "alias round trip",
            "data differs between the two mappings",
        ));
    }
    if mm::lookup(alias).is_some() {
        return Err(fail("unmap_frame", "the alias is still mapped"));
    }
    println!("frames: frame {mfn:#x} aliased at {alias:#x}, round trip ok, alias unmapped");
    Ok(())
}

fn grant_self_map() -> Result<(), Failed> {
    let domid = events::own_domid().map_err(|e| fail("own domid", e))?;
    println!("grant: own domid {domid}");
    let pfn = mm::alloc_frame().map_err(|e| fail("alloc_frame", e))?;
    let result = grant_round(domid, pfn).and_then(|()| many_maps(domid, pfn));
    mm::free_frame(pfn);
    result
}

/// Grants `pfn` read-only under [`MANY_MAPS`] refs and maps them all at once (as the stub maps
/// every guest's ring), checks each mapping reads the frame, then unmaps and revokes them all.
fn many_maps(domid: u16, pfn: u64) -> Result<(), Failed> {
    const STAMP: u64 = 0x0066_6572_726f_7374;
    let mfn = mm::pfn_to_mfn(pfn);
    let (maps_before, refs_before) = (gntmap::mapped_count(), gnttab::free_refs());
    SharedPage::pool_frame(pfn)
        .map_err(|e| fail("pool frame", e))?
        .write_u64(0, STAMP);
    let mut refs = Vec::with_capacity(MANY_MAPS);
    let mut maps = Vec::with_capacity(MANY_MAPS);
    let mapped = (0..MANY_MAPS).try_for_each(|_| {
        let gref = gnttab::grant_access(domid, mfn, true)?;
        refs.push(gref);
        maps.push(gntmap::map(domid, gref, false)?);
        Ok::<(), GrantError>(())
    });
    let all_read = maps.iter().all(|m| m.page().read_u64(0) == STAMP);
    let last_va = maps.last().map_or(0, |m| m.va());
    let unmapped = maps.drain(..).try_for_each(|m| m.unmap());
    let revoked = refs.drain(..).try_for_each(gnttab::end_access);
    mapped.map_err(|e| fail("mapping many grants", e))?;
    unmapped.map_err(|e| fail("GNTTABOP_unmap_grant_ref", e))?;
    revoked.map_err(|e| fail("end_access", e))?;
    if !all_read {
        return Err(fail(
            "many grant mappings",
            "a mapping did not show the frame",
        ));
    }
    if (gntmap::mapped_count(), gnttab::free_refs()) != (maps_before, refs_before) {
        return Err(fail(
            "grant accounting",
            "mappings or free refs did not return",
        ));
    }
    println!(
        "grant: {MANY_MAPS} grants of one frame mapped at once (last at {last_va:#x}), all read it, all unmapped and revoked"
    );
    Ok(())
}

fn grant_round(domid: u16, pfn: u64) -> Result<(), Failed> {
    let (maps_before, refs_before) = (gntmap::mapped_count(), gnttab::free_refs());
    let mfn = mm::pfn_to_mfn(pfn);
    let gref = gnttab::grant_access(domid, mfn, false).map_err(|e| fail("grant_access", e))?;
    let map = match gntmap::map(domid, gref, true) {
        Ok(m) => m,
        Err(e) => {
            let _ = gnttab::end_access(gref);
            return Err(fail("GNTTABOP_map_grant_ref", e));
        }
    };
    println!(
        "grant: granted frame {mfn:#x} as ref {gref}, mapped at {:#x}",
        map.va()
    );
    let round_trip_ok = match SharedPage::pool_frame(pfn) {
        Ok(frame) => round_trip(frame, map.page()),
        Err(e) => {
            fail("pool frame", e);
            false
        }
    };
    let early_revoke = gnttab::end_access(gref);
    let unmapped = map.unmap();
    let revoked = gnttab::end_access(gref);
    if early_revoke != Err(GrantError::StillInUse(gref)) {
        return Err(fail("revoking a mapped grant", "was not refused"));
    }
    println!("grant: revoke while mapped refused (still in use)");
    if !round_trip_ok {
        return Err(fail(
            "self-map round trip",
            "data differs between the two mappings",
        ));
    }
    println!("grant: self-map round trip ok");
    unmapped.map_err(|e| fail("GNTTABOP_unmap_grant_ref", e))?;
    revoked.map_err(|e| fail("end_access", e))?;
    if (gntmap::mapped_count(), gnttab::free_refs()) != (maps_before, refs_before) {
        return Err(fail(
            "grant accounting",
            "mappings or free refs did not return",
        ));
    }
    println!("grant: unmapped and revoked");
    Ok(())
}

/// Writes a pattern through `a` and checks it through `b`, then the other way round (two
/// views of one frame).
fn round_trip(a: SharedPage, b: SharedPage) -> bool {
    let words = PAGE_SIZE / 8;
    let pattern = |i: usize| 0x6772_616e_7400_0000 | i as u64;
    (0..words).for_each(|i| a.write_u64(i * 8, pattern(i)));
    let via_b = (0..words).all(|i| b.read_u64(i * 8) == pattern(i));
    (0..words).for_each(|i| b.write_u64(i * 8, !pattern(i)));
    let via_a = (0..words).all(|i| a.read_u64(i * 8) == !pattern(i));
    via_b && via_a
}
