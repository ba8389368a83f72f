//! Grant tables (v1): `setup_table` and the mapping of the table's frames at
//! `layout::GNTTAB_BASE`, granting our own frames to other domains and revoking them. Refs
//! 0..8 are reserved (console, xenstore); refs are handed out lowest first from a bitmap.
//! Error and status naming is pure and host-tested; the rest runs on the kernel target.

use crate::hypercall::Errno;
use core::fmt;

/// A grant reference (index into the grant table).
pub type GrantRef = u32;

/// `GNTTAB_NR_RESERVED_ENTRIES`: refs below this are never handed out.
pub const NR_RESERVED_ENTRIES: u32 = 8;
/// v1 entries per 4 KiB table frame.
pub const ENTRIES_PER_FRAME: u32 = 512;
/// Table frames asked for (the xenstore stub domain is created with at most 4).
pub const WANTED_FRAMES: u32 = 4;

/// Why a grant operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantError {
    /// The `grant_table_op` hypercall itself failed.
    Xen(&'static str, Errno),
    /// Xen refused the operation with a `GNTST_*` status.
    Status(&'static str, i16),
    /// Every grant ref is in use.
    NoFreeRef,
    /// The ref is not one this kernel granted.
    NotGranted(GrantRef),
    /// The peer still has the page mapped or is copying it (`GTF_reading/writing`).
    StillInUse(GrantRef),
    /// The frame number does not fit a v1 entry (32 bits).
    FrameTooBig(u64),
    /// Every slot of the grant-map area is in use.
    NoMapSlot,
    /// Building the page tables for a mapping failed.
    Memory(crate::mm::MmError),
    /// `gnttab::init` has not run.
    NotInitialised,
}

/// The name of a `GNTST_*` status code.
pub fn status_name(status: i16) -> &'static str {
    match status {
        0 => "GNTST_okay",
        -1 => "GNTST_general_error",
        -2 => "GNTST_bad_domain",
        -3 => "GNTST_bad_gntref",
        -4 => "GNTST_bad_handle",
        -5 => "GNTST_bad_virt_addr",
        -6 => "GNTST_bad_dev_addr",
        -7 => "GNTST_no_device_space",
        -8 => "GNTST_permission_denied",
        -9 => "GNTST_bad_page",
        -10 => "GNTST_bad_copy_arg",
        -11 => "GNTST_address_too_big",
        -12 => "GNTST_eagain",
        -13 => "GNTST_no_space",
        _ => "GNTST_unknown",
    }
}

impl fmt::Display for GrantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GrantError::Xen(op, e) => write!(f, "{op} failed: {e}"),
            GrantError::Status(op, s) => write!(f, "{op} refused: {} ({s})", status_name(*s)),
            GrantError::NoFreeRef => write!(f, "no free grant reference"),
            GrantError::NotGranted(r) => write!(f, "grant ref {r} is not granted by us"),
            GrantError::StillInUse(r) => write!(f, "grant ref {r} is still mapped by its peer"),
            GrantError::FrameTooBig(m) => write!(f, "frame {m:#x} does not fit a v1 grant"),
            GrantError::NoMapSlot => write!(f, "grant-map area is full"),
            GrantError::Memory(e) => write!(f, "grant-map page tables: {e}"),
            GrantError::NotInitialised => write!(f, "grant table used before gnttab::init"),
        }
    }
}

/// Checks a grant op's `(hypercall result, status)` pair.
pub fn check(op: &'static str, ret: Result<(), Errno>, status: i16) -> Result<(), GrantError> {
    ret.map_err(|e| GrantError::Xen(op, e))?;
    if status != 0 {
        return Err(GrantError::Status(op, status));
    }
    Ok(())
}

#[cfg(target_os = "none")]
pub use target::*;

#[cfg(target_os = "none")]
mod target {
    use super::WANTED_FRAMES;
    use super::{check, GrantError, GrantRef, ENTRIES_PER_FRAME, NR_RESERVED_ENTRIES};
    use crate::hypercall::{
        gnttab_query_size, gnttab_setup_table, GrantEntryV1, GrantFlags, DOMID_SELF,
    };
    use crate::mm::bitmap::{words_for, Bitmap};
    use crate::mm::paging::layout;
    use crate::mm::{map_grant_table_frame, SharedPage};
    use crate::sync::IrqMutex;
    use alloc::vec;
    use alloc::vec::Vec;
    use core::mem::{offset_of, size_of};
    use core::sync::atomic::{fence, Ordering};

    struct Table {
        /// The table's frames, mapped for the kernel's whole life.
        frames: Vec<SharedPage>,
        refs: Bitmap<Vec<u64>>,
    }

    impl Table {
        /// The frame holding entry `gref` and the entry's offset in it.
        fn entry(&self, gref: GrantRef) -> Option<(SharedPage, usize)> {
            let per_frame = ENTRIES_PER_FRAME as usize;
            let frame = self.frames.get(gref as usize / per_frame)?;
            Some((
                *frame,
                gref as usize % per_frame * size_of::<GrantEntryV1>(),
            ))
        }
    }

    static TABLE: IrqMutex<Option<Table>> = IrqMutex::new(None);

    /// What `init` set up.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct GnttabInfo {
        /// Table frames mapped.
        pub frames: u32,
        /// Xen's limit for this domain.
        pub max_frames: u32,
        /// Grant entries (`frames * 512`).
        pub entries: u32,
    }

    /// Sets up the grant table: `min(4, max)` frames from `setup_table`, mapped RW at
    /// `layout::GNTTAB_BASE`.
    pub fn init() -> Result<GnttabInfo, GrantError> {
        let (ret, q) = gnttab_query_size(DOMID_SELF);
        check("GNTTABOP_query_size", ret, q.status)?;
        let max_frames = q.max_nr_frames;
        let frames = WANTED_FRAMES
            .min(max_frames)
            .min(layout::GNTTAB_MAX_FRAMES as u32);
        let mut mfns = [0u64; layout::GNTTAB_MAX_FRAMES];
        let mfns = &mut mfns[..frames as usize];
        let (ret, status) = gnttab_setup_table(DOMID_SELF, mfns);
        check("GNTTABOP_setup_table", ret, status)?;
        let pages = mfns
            .iter()
            .enumerate()
            .map(|(i, &mfn)| map_grant_table_frame(i, mfn))
            .collect::<Result<Vec<_>, _>>()
            .map_err(GrantError::Memory)?;
        let entries = frames * ENTRIES_PER_FRAME;
        let refs = Bitmap::new(
            vec![0; words_for(entries as usize)],
            entries as usize,
            NR_RESERVED_ENTRIES as usize,
        );
        *TABLE.lock() = Some(Table {
            frames: pages,
            refs,
        });
        Ok(GnttabInfo {
            frames,
            max_frames,
            entries,
        })
    }

    /// Lets `domid` map (or copy) our machine frame `mfn`; returns the ref to tell it.
    pub fn grant_access(domid: u16, mfn: u64, readonly: bool) -> Result<GrantRef, GrantError> {
        let frame = u32::try_from(mfn).map_err(|_| GrantError::FrameTooBig(mfn))?;
        let mut guard = TABLE.lock();
        let t = guard.as_mut().ok_or(GrantError::NotInitialised)?;
        let gref = t.refs.alloc().ok_or(GrantError::NoFreeRef)? as GrantRef;
        let Some((page, e)) = t.entry(gref) else {
            return Err(GrantError::NoFreeRef);
        };
        // The entry is invalid (free ref), so Xen does not use it until flags are written last.
        page.write_u32(e + offset_of!(GrantEntryV1, frame), frame);
        page.write_u16(e + offset_of!(GrantEntryV1, domid), domid);
        fence(Ordering::Release);
        let flags = GrantFlags::PERMIT_ACCESS
            | if readonly {
                GrantFlags::READONLY
            } else {
                GrantFlags::empty()
            };
        page.write_u16(e + offset_of!(GrantEntryV1, flags), flags.bits());
        Ok(gref)
    }

    /// Revokes a grant: fails with `StillInUse` while the peer has it mapped (try again after
    /// it unmaps). On success the ref is free again.
    pub fn end_access(gref: GrantRef) -> Result<(), GrantError> {
        let mut guard = TABLE.lock();
        let t = guard.as_mut().ok_or(GrantError::NotInitialised)?;
        if gref < NR_RESERVED_ENTRIES
            || gref as usize >= t.refs.len()
            || t.refs.is_free(gref as usize)
        {
            return Err(GrantError::NotGranted(gref));
        }
        let Some((page, e)) = t.entry(gref) else {
            return Err(GrantError::NotGranted(gref));
        };
        // Xen updates `flags` atomically, so it is accessed atomically here too.
        let flags = e + offset_of!(GrantEntryV1, flags);
        let mut cur = page.atomic_load_u16(flags, Ordering::Acquire);
        loop {
            if GrantFlags::from_bits_retain(cur)
                .intersects(GrantFlags::READING | GrantFlags::WRITING)
            {
                return Err(GrantError::StillInUse(gref));
            }
            match page.atomic_compare_exchange_u16(
                flags,
                cur,
                0,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        t.refs
            .free(gref as usize)
            .map_err(|_| GrantError::NotGranted(gref))
    }

    /// Grant refs still free.
    pub fn free_refs() -> usize {
        TABLE.lock().as_ref().map_or(0, |t| t.refs.free_count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_have_their_xen_names() {
        assert_eq!(status_name(0), "GNTST_okay");
        assert_eq!(status_name(-3), "GNTST_bad_gntref");
        assert_eq!(status_name(-12), "GNTST_eagain");
        assert_eq!(status_name(-14), "GNTST_unknown");
    }

    #[test]
    fn check_reports_hypercall_then_status() {
        assert_eq!(check("op", Ok(()), 0), Ok(()));
        assert_eq!(
            check("op", Err(Errno::EINVAL), -1),
            Err(GrantError::Xen("op", Errno::EINVAL))
        );
        let e = check("GNTTABOP_map_grant_ref", Ok(()), -8).unwrap_err();
        assert_eq!(
            e.to_string(),
            "GNTTABOP_map_grant_ref refused: GNTST_permission_denied (-8)"
        );
    }

    #[test]
    fn messages_say_what_failed() {
        assert_eq!(
            GrantError::StillInUse(9).to_string(),
            "grant ref 9 is still mapped by its peer"
        );
        assert_eq!(
            GrantError::FrameTooBig(1 << 40).to_string(),
            "frame 0x10000000000 does not fit a v1 grant"
        );
    }
}
