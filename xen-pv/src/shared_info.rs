//! Layout of Xen's `shared_info` page and `vcpu_info` (x86_64): the event-channel bitmaps,
//! per-vCPU upcall flags, CR2 and pvclock data, and the wall clock. Fields Xen writes
//! concurrently are atomics; the page itself is mapped by `arch::map_shared_info`.

use core::sync::atomic::{AtomicI8, AtomicU32, AtomicU64, AtomicU8};

/// `XEN_LEGACY_MAX_VCPUS`.
pub const MAX_VCPUS: usize = 32;
/// Ports of the 2-level event-channel ABI (64 words × 64 bits).
pub const NR_EVENT_CHANNELS: usize = 4096;
/// Words in each of the pending/mask bitmaps.
pub const EVTCHN_WORDS: usize = NR_EVENT_CHANNELS / 64;

/// `struct vcpu_time_info`: the pvclock of one vCPU.
#[repr(C)]
pub struct VcpuTimeInfo {
    /// Odd while Xen updates the record (seqlock).
    pub version: AtomicU32,
    pad0: u32,
    /// TSC at `system_time`.
    pub tsc_timestamp: AtomicU64,
    /// Nanoseconds since boot at `tsc_timestamp`.
    pub system_time: AtomicU64,
    /// TSC → ns multiplier (32.32 fixed point after the shift).
    pub tsc_to_system_mul: AtomicU32,
    /// Binary shift applied to the TSC delta first.
    pub tsc_shift: AtomicI8,
    /// `XEN_PVCLOCK_*` flags.
    pub flags: AtomicU8,
    pad1: [u8; 2],
}

/// `struct vcpu_info`.
#[repr(C)]
pub struct VcpuInfo {
    /// Set by Xen when an unmasked event became pending; cleared by the guest before a scan.
    pub evtchn_upcall_pending: AtomicU8,
    /// The guest's "interrupts disabled" flag (1 = no upcalls).
    pub evtchn_upcall_mask: AtomicU8,
    pad: [u8; 6],
    /// One bit per word of `evtchn_pending` that may have pending ports.
    pub evtchn_pending_sel: AtomicU64,
    /// Faulting address of the last page fault.
    pub cr2: AtomicU64,
    arch_pad: u64,
    /// pvclock.
    pub time: VcpuTimeInfo,
}

/// `struct shared_info`.
#[repr(C)]
pub struct SharedInfo {
    pub vcpu_info: [VcpuInfo; MAX_VCPUS],
    pub evtchn_pending: [AtomicU64; EVTCHN_WORDS],
    pub evtchn_mask: [AtomicU64; EVTCHN_WORDS],
    /// Odd while Xen updates the wall clock (seqlock).
    pub wc_version: AtomicU32,
    pub wc_sec: AtomicU32,
    pub wc_nsec: AtomicU32,
    pub wc_sec_hi: AtomicU32,
    pub max_pfn: AtomicU64,
    pub pfn_to_mfn_frame_list_list: AtomicU64,
    pub nmi_reason: AtomicU64,
    pub p2m_cr3: AtomicU64,
    pub p2m_vaddr: AtomicU64,
    pub p2m_generation: AtomicU64,
}

const _: () = assert!(core::mem::size_of::<VcpuTimeInfo>() == 32);
const _: () = assert!(core::mem::size_of::<VcpuInfo>() == 64);
const _: () = assert!(core::mem::size_of::<SharedInfo>() == 3136);

/// A zeroed shared_info for host tests of the logic that works on it (here and in the
/// kernel crate's event-channel tests).
#[cfg(not(target_os = "none"))]
pub fn zeroed() -> alloc::boxed::Box<SharedInfo> {
    alloc::boxed::Box::new(SharedInfo {
        vcpu_info: [const {
            VcpuInfo {
                evtchn_upcall_pending: AtomicU8::new(0),
                evtchn_upcall_mask: AtomicU8::new(0),
                pad: [0; 6],
                evtchn_pending_sel: AtomicU64::new(0),
                cr2: AtomicU64::new(0),
                arch_pad: 0,
                time: VcpuTimeInfo {
                    version: AtomicU32::new(0),
                    pad0: 0,
                    tsc_timestamp: AtomicU64::new(0),
                    system_time: AtomicU64::new(0),
                    tsc_to_system_mul: AtomicU32::new(0),
                    tsc_shift: AtomicI8::new(0),
                    flags: AtomicU8::new(0),
                    pad1: [0; 2],
                },
            }
        }; MAX_VCPUS],
        evtchn_pending: [const { AtomicU64::new(0) }; EVTCHN_WORDS],
        evtchn_mask: [const { AtomicU64::new(0) }; EVTCHN_WORDS],
        wc_version: AtomicU32::new(0),
        wc_sec: AtomicU32::new(0),
        wc_nsec: AtomicU32::new(0),
        wc_sec_hi: AtomicU32::new(0),
        max_pfn: AtomicU64::new(0),
        pfn_to_mfn_frame_list_list: AtomicU64::new(0),
        nmi_reason: AtomicU64::new(0),
        p2m_cr3: AtomicU64::new(0),
        p2m_vaddr: AtomicU64::new(0),
        p2m_generation: AtomicU64::new(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn offsets_match_xen_headers() {
        assert_eq!(offset_of!(VcpuInfo, evtchn_upcall_mask), 1);
        assert_eq!(offset_of!(VcpuInfo, evtchn_pending_sel), 8);
        assert_eq!(offset_of!(VcpuInfo, cr2), 16);
        assert_eq!(offset_of!(VcpuInfo, time), 32);
        assert_eq!(offset_of!(VcpuTimeInfo, system_time), 16);
        assert_eq!(offset_of!(VcpuTimeInfo, tsc_shift), 28);
        assert_eq!(offset_of!(SharedInfo, evtchn_pending), 2048);
        assert_eq!(offset_of!(SharedInfo, evtchn_mask), 2560);
        assert_eq!(offset_of!(SharedInfo, wc_version), 3072);
        assert_eq!(offset_of!(SharedInfo, wc_sec_hi), 3084);
        assert_eq!(offset_of!(SharedInfo, max_pfn), 3088);
        assert_eq!(offset_of!(SharedInfo, p2m_generation), 3128);
    }
}
