//! The typed hypercall layer: Xen's hypercall numbers (4.17 and later), the ABI structs they take (layouts
//! checked at compile time), and one safe-as-possible wrapper per hypercall the kernel and the
//! xenstore stub use. Calls go through the hypercall page Xen filled in (`boot/head.S`); every
//! argument register is treated as clobbered (debug Xen poisons them).

use core::fmt;
use core::mem::size_of;

/// Hypercall numbers (`__HYPERVISOR_*`).
pub mod nr {
    pub const SET_TRAP_TABLE: usize = 0;
    pub const MMU_UPDATE: usize = 1;
    pub const UPDATE_VA_MAPPING: usize = 14;
    pub const MMUEXT_OP: usize = 26;
    pub const SET_TIMER_OP: usize = 15;
    pub const XEN_VERSION: usize = 17;
    pub const CONSOLE_IO: usize = 18;
    pub const GRANT_TABLE_OP: usize = 20;
    pub const VCPU_OP: usize = 24;
    pub const SCHED_OP: usize = 29;
    pub const CALLBACK_OP: usize = 30;
    pub const EVENT_CHANNEL_OP: usize = 32;
    pub const DOMCTL: usize = 36;
}

/// `DOMID_SELF`.
pub const DOMID_SELF: u16 = 0x7ff0;
/// Flat kernel code selector for 64-bit PV guests.
pub const FLAT_KERNEL_CS: u16 = 0xe033;

/// A failed hypercall: the positive Xen errno.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    pub const EPERM: Errno = Errno(1);
    pub const ENOENT: Errno = Errno(2);
    pub const ESRCH: Errno = Errno(3);
    pub const EINTR: Errno = Errno(4);
    pub const EIO: Errno = Errno(5);
    pub const E2BIG: Errno = Errno(7);
    pub const EBADF: Errno = Errno(9);
    pub const EAGAIN: Errno = Errno(11);
    pub const ENOMEM: Errno = Errno(12);
    pub const EACCES: Errno = Errno(13);
    pub const EFAULT: Errno = Errno(14);
    pub const EBUSY: Errno = Errno(16);
    pub const EEXIST: Errno = Errno(17);
    pub const ENODEV: Errno = Errno(19);
    pub const EINVAL: Errno = Errno(22);
    pub const ENOSPC: Errno = Errno(28);
    pub const ENOSYS: Errno = Errno(38);
    pub const ETIME: Errno = Errno(62);

    /// The errno's symbolic name, or "E?" when unknown.
    pub fn name(self) -> &'static str {
        match self.0 {
            1 => "EPERM",
            2 => "ENOENT",
            3 => "ESRCH",
            4 => "EINTR",
            5 => "EIO",
            7 => "E2BIG",
            9 => "EBADF",
            11 => "EAGAIN",
            12 => "ENOMEM",
            13 => "EACCES",
            14 => "EFAULT",
            16 => "EBUSY",
            17 => "EEXIST",
            19 => "ENODEV",
            22 => "EINVAL",
            28 => "ENOSPC",
            38 => "ENOSYS",
            62 => "ETIME",
            _ => "E?",
        }
    }

    /// Converts a raw hypercall return value: negative is an error, the rest is returned.
    pub fn check(ret: isize) -> Result<usize, Errno> {
        if ret < 0 {
            Err(Errno(ret.unsigned_abs() as i32))
        } else {
            Ok(ret as usize)
        }
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Xen error -{} ({})", self.0, self.name())
    }
}

/// Checks a struct's size against the C ABI at compile time.
macro_rules! abi_size {
    ($t:ty, $n:expr) => {
        const _: () = assert!(size_of::<$t>() == $n);
    };
}

// ----- traps and callbacks ---------------------------------------------------------------------

/// `struct trap_info`: one trap-table entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TrapInfo {
    pub vector: u8,
    /// Bits 0-1: DPL for software `int n`; bit 2: mask events on entry.
    pub flags: u8,
    pub cs: u16,
    pub address: u64,
}
abi_size!(TrapInfo, 16);

bitflags::bitflags! {
    /// `TrapInfo::flags` above the gate's DPL (bits 0–1).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct TrapInfoFlags: u8 {
        /// Mask event delivery on entry (interrupt-gate semantics).
        const MASK_EVENTS = 1 << 2;
    }
}

/// `CALLBACKOP_register`.
pub const CALLBACKOP_REGISTER: u32 = 0;
/// Callback types.
pub const CALLBACKTYPE_EVENT: u16 = 0;
pub const CALLBACKTYPE_FAILSAFE: u16 = 1;

/// `struct callback_register`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CallbackRegister {
    pub kind: u16,
    pub flags: u16,
    pub address: u64,
}
abi_size!(CallbackRegister, 16);

// ----- MMU -------------------------------------------------------------------------------------

/// `struct mmu_update`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct MmuUpdate {
    /// Machine address of the PTE (low 2 bits: command).
    pub ptr: u64,
    pub val: u64,
}
abi_size!(MmuUpdate, 16);

/// `mmu_update` commands (low bits of `ptr`).
pub const MMU_NORMAL_PT_UPDATE: u64 = 0;
/// `ptr` = machine address of a frame, `val` = its new PFN in the M2P.
pub const MMU_MACHPHYS_UPDATE: u64 = 1;

/// `struct mmuext_op` (`arg1` an MFN here; `arg2` unused by the commands below).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct MmuextOp {
    pub cmd: u32,
    pub arg1: u64,
    pub arg2: u64,
}
abi_size!(MmuextOp, 24);

/// `mmuext_op` commands.
pub mod mmuext {
    pub const PIN_L4_TABLE: u32 = 3;
    pub const UNPIN_TABLE: u32 = 4;
    pub const NEW_BASEPTR: u32 = 5;
    pub const NEW_USER_BASEPTR: u32 = 15;
}

pub const UVMF_INVLPG: u64 = 2;

// ----- xen_version -----------------------------------------------------------------------------

/// `xen_version` commands.
pub mod xenver {
    pub const VERSION: u32 = 0;
    pub const EXTRAVERSION: u32 = 1;
}

// ----- console_io ------------------------------------------------------------------------------

/// `CONSOLEIO_write`.
pub const CONSOLEIO_WRITE: u32 = 0;

// ----- grant tables ----------------------------------------------------------------------------

/// A grant-table operation struct: knows its `GNTTABOP_*` command.
pub trait GnttabOp {
    const CMD: u32;
}

/// `struct gnttab_map_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabMapGrantRef {
    pub host_addr: u64,
    pub flags: u32,
    pub gref: u32,
    pub dom: u16,
    pub status: i16,
    pub handle: u32,
    pub dev_bus_addr: u64,
}
abi_size!(GnttabMapGrantRef, 32);
impl GnttabOp for GnttabMapGrantRef {
    const CMD: u32 = 0;
}

/// `struct gnttab_unmap_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabUnmapGrantRef {
    pub host_addr: u64,
    pub dev_bus_addr: u64,
    pub handle: u32,
    pub status: i16,
}
abi_size!(GnttabUnmapGrantRef, 24);
impl GnttabOp for GnttabUnmapGrantRef {
    const CMD: u32 = 1;
}

/// `struct gnttab_setup_table`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct GnttabSetupTable {
    pub dom: u16,
    pub nr_frames: u32,
    pub status: i16,
    /// Guest handle: array of `nr_frames` u64 MFNs (filled by Xen).
    pub frame_list: *mut u64,
}
abi_size!(GnttabSetupTable, 24);
impl GnttabOp for GnttabSetupTable {
    const CMD: u32 = 2;
}

/// One side of a `gnttab_copy`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabCopyPtr {
    /// Grant ref (with the matching flag) or GMFN.
    pub u: u64,
    pub domid: u16,
    pub offset: u16,
}
abi_size!(GnttabCopyPtr, 16);

/// `struct gnttab_copy`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabCopy {
    pub source: GnttabCopyPtr,
    pub dest: GnttabCopyPtr,
    pub len: u16,
    pub flags: u16,
    pub status: i16,
}
abi_size!(GnttabCopy, 40);
impl GnttabOp for GnttabCopy {
    const CMD: u32 = 5;
}

/// `struct gnttab_query_size`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabQuerySize {
    pub dom: u16,
    pub nr_frames: u32,
    pub max_nr_frames: u32,
    pub status: i16,
}
abi_size!(GnttabQuerySize, 16);
impl GnttabOp for GnttabQuerySize {
    const CMD: u32 = 6;
}

/// `struct gnttab_set_version`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabSetVersion {
    pub version: u32,
}
abi_size!(GnttabSetVersion, 4);
impl GnttabOp for GnttabSetVersion {
    const CMD: u32 = 8;
}

bitflags::bitflags! {
    /// Grant map flags (`GNTMAP_*`) of [`GnttabMapGrantRef::flags`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct GntmapFlags: u32 {
        /// Map for the host (a PTE), not for a device.
        const HOST_MAP = 1 << 1;
        /// Map read-only.
        const READONLY = 1 << 2;
    }

    /// Grant entry flags (`GTF_*`) of a shared grant-table entry.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct GrantFlags: u16 {
        /// The entry grants access to a frame.
        const PERMIT_ACCESS = 1;
        /// Read-only access.
        const READONLY = 1 << 2;
        /// Set by Xen while the grantee maps the frame for reading.
        const READING = 1 << 3;
        /// Set by Xen while the grantee maps the frame for writing.
        const WRITING = 1 << 4;
    }
}

/// `struct grant_entry_v1` (the shared grant table entries).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GrantEntryV1 {
    pub flags: u16,
    pub domid: u16,
    pub frame: u32,
}
abi_size!(GrantEntryV1, 8);

// ----- vcpu_op ---------------------------------------------------------------------------------

/// `vcpu_op` commands.
pub mod vcpuop {
    pub const STOP_PERIODIC_TIMER: u32 = 7;
}

// ----- sched_op --------------------------------------------------------------------------------

/// `sched_op` commands.
pub mod schedop {
    pub const YIELD: u32 = 0;
    pub const BLOCK: u32 = 1;
    pub const SHUTDOWN: u32 = 2;
    pub const POLL: u32 = 3;
}

/// `SHUTDOWN_*` reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ShutdownReason {
    Poweroff = 0,
    Reboot = 1,
    Suspend = 2,
    Crash = 3,
}

/// `struct sched_shutdown`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SchedShutdown {
    pub reason: u32,
}

/// `struct sched_poll`: the ports to wait on and the system time to give up at (0: never).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SchedPoll {
    pub ports: u64,
    pub nr_ports: u32,
    pub pad: u32,
    pub timeout: u64,
}

// ----- event channels --------------------------------------------------------------------------

/// An event-channel operation struct: knows its `EVTCHNOP_*` command.
pub trait EvtchnOp {
    const CMD: u32;
}

/// `struct evtchn_bind_interdomain`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnBindInterdomain {
    pub remote_dom: u16,
    pub remote_port: u32,
    pub local_port: u32,
}
abi_size!(EvtchnBindInterdomain, 12);
impl EvtchnOp for EvtchnBindInterdomain {
    const CMD: u32 = 0;
}

/// `struct evtchn_bind_virq`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnBindVirq {
    pub virq: u32,
    pub vcpu: u32,
    pub port: u32,
}
abi_size!(EvtchnBindVirq, 12);
impl EvtchnOp for EvtchnBindVirq {
    const CMD: u32 = 1;
}

/// `struct evtchn_close`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnClose {
    pub port: u32,
}
impl EvtchnOp for EvtchnClose {
    const CMD: u32 = 3;
}

/// `struct evtchn_send`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnSend {
    pub port: u32,
}
impl EvtchnOp for EvtchnSend {
    const CMD: u32 = 4;
}

/// `struct evtchn_status`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnStatus {
    pub dom: u16,
    pub port: u32,
    pub status: u32,
    pub vcpu: u32,
    /// unbound.dom / interdomain.dom (u16) at +0, interdomain.port at +4, or virq/pirq.
    pub u: [u32; 2],
}
abi_size!(EvtchnStatus, 24);
impl EvtchnOp for EvtchnStatus {
    const CMD: u32 = 5;
}

/// `struct evtchn_alloc_unbound`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnAllocUnbound {
    pub dom: u16,
    pub remote_dom: u16,
    pub port: u32,
}
abi_size!(EvtchnAllocUnbound, 8);
impl EvtchnOp for EvtchnAllocUnbound {
    const CMD: u32 = 6;
}

/// `struct evtchn_bind_ipi`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnBindIpi {
    pub vcpu: u32,
    pub port: u32,
}
abi_size!(EvtchnBindIpi, 8);
impl EvtchnOp for EvtchnBindIpi {
    const CMD: u32 = 7;
}

/// `VIRQ_*` numbers.
pub mod virq {
    pub const TIMER: u32 = 0;
    pub const DEBUG: u32 = 1;
    pub const CONSOLE: u32 = 2;
    pub const DOM_EXC: u32 = 3;
}

// ----- domctl ----------------------------------------------------------------------------------

/// `XEN_DOMCTL_INTERFACE_VERSION` of Xen `major.minor`: Xen refuses a domctl whose version
/// differs from its own with `EACCES`. 4.17: 0x15; 4.18: 0x16 (getdomaininfo no longer
/// answers with the next domain); 4.19-4.21: 0x17; 4.22: 0x18. Older versions get 4.17's,
/// newer ones 4.22's (the newest known).
pub fn domctl_interface_version(major: u32, minor: u32) -> u32 {
    match (major, minor) {
        (0..=3, _) | (4, 0..=17) => 0x15,
        (4, 18) => 0x16,
        (4, 19..=21) => 0x17,
        _ => 0x18,
    }
}
/// `XEN_DOMCTL_getdomaininfo`.
pub const DOMCTL_GETDOMAININFO: u32 = 5;

/// `struct xen_domctl_getdomaininfo`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct DomctlGetDomainInfo {
    pub domain: u16,
    pub pad1: u16,
    pub flags: u32,
    pub tot_pages: u64,
    pub max_pages: u64,
    pub outstanding_pages: u64,
    pub shr_pages: u64,
    pub paged_pages: u64,
    pub shared_info_frame: u64,
    pub cpu_time: u64,
    pub nr_online_vcpus: u32,
    pub max_vcpu_id: u32,
    pub ssidref: u32,
    pub handle: [u8; 16],
    pub cpupool: u32,
    pub gpaddr_bits: u8,
    pub pad2: [u8; 7],
    pub emulation_flags: u32,
    pub misc_flags: u32,
}
abi_size!(DomctlGetDomainInfo, 112);

bitflags::bitflags! {
    /// `XEN_DOMINF_*` flags of [`DomctlGetDomainInfo::flags`] (the shutdown code sits at
    /// [`DOMINF_SHUTDOWN_SHIFT`]).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct DomainInfoFlags: u32 {
        /// The domain is being destroyed.
        const DYING = 1 << 0;
        /// The domain has shut down (the code says why).
        const SHUTDOWN = 1 << 2;
        /// The domain is blocked.
        const BLOCKED = 1 << 4;
        /// The domain is running.
        const RUNNING = 1 << 5;
    }
}

/// Where `XEN_DOMINF_*`'s shutdown code starts.
pub const DOMINF_SHUTDOWN_SHIFT: u32 = 16;

/// `struct xen_domctl` (the union is 128 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Domctl {
    pub cmd: u32,
    pub interface_version: u32,
    pub domain: u16,
    pub pad: [u16; 3],
    pub u: DomctlUnion,
}
abi_size!(Domctl, 144);

/// The payload union of `struct xen_domctl`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union DomctlUnion {
    pub getdomaininfo: DomctlGetDomainInfo,
    pub pad: [u64; 16],
}

#[cfg(target_os = "none")]
pub use calls::*;

/// The hypercall wrappers themselves (kernel target only).
#[cfg(target_os = "none")]
mod calls {
    use super::*;
    use core::arch::asm;
    use core::sync::atomic::{AtomicU32, Ordering};

    extern "C" {
        /// The hypercall page (`boot/head.S`), filled in by Xen at domain build.
        static hypercall_page: [u8; 4096];
    }

    fn entry(nr: usize) -> usize {
        (&raw const hypercall_page) as usize + nr * 32
    }

    /// Raw 5-argument hypercall.
    ///
    /// # Safety
    /// The arguments must be valid for hypercall `nr` (pointers to live, correctly laid-out
    /// memory the call may read or write).
    pub unsafe fn hypercall5(nr: usize, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> isize {
        let ret: isize;
        // SAFETY: calls the Xen-provided stub; all argument registers plus rcx/r11 are
        // declared clobbered, memory is clobbered (no `nomem`), the stub keeps the stack.
        unsafe {
            asm!(
                "call rax",
                inlateout("rax") entry(nr) => ret,
                inlateout("rdi") a1 => _,
                inlateout("rsi") a2 => _,
                inlateout("rdx") a3 => _,
                inlateout("r10") a4 => _,
                inlateout("r8") a5 => _,
                lateout("rcx") _,
                lateout("r11") _,
            );
        }
        ret
    }

    unsafe fn hc(nr: usize, a1: u64, a2: u64, a3: u64, a4: u64) -> Result<usize, Errno> {
        // SAFETY: forwarded caller contract.
        Errno::check(unsafe { hypercall5(nr, a1, a2, a3, a4, 0) })
    }

    fn ptr<T>(p: *const T) -> u64 {
        p as u64
    }

    /// `set_trap_table`: `table` must end with an entry whose address is 0.
    pub fn set_trap_table(table: &[TrapInfo]) -> Result<(), Errno> {
        assert!(
            table.last().is_some_and(|t| t.address == 0),
            "trap table not terminated"
        );
        // SAFETY: Xen reads the terminated array.
        unsafe { hc(nr::SET_TRAP_TABLE, ptr(table.as_ptr()), 0, 0, 0) }.map(drop)
    }

    /// `mmu_update`: returns how many updates were done.
    ///
    /// # Safety
    /// The updates change page tables / the M2P: the caller guarantees the new mappings keep
    /// the kernel's memory safety (no aliasing of live Rust objects, page tables stay RO).
    pub unsafe fn mmu_update(reqs: &[MmuUpdate], foreigndom: u16) -> Result<u32, Errno> {
        let mut done = 0u32;
        // SAFETY: forwarded caller contract; arrays are valid for the call.
        unsafe {
            hc(
                nr::MMU_UPDATE,
                ptr(reqs.as_ptr()),
                reqs.len() as u64,
                ptr(&raw mut done),
                u64::from(foreigndom),
            )
        }?;
        Ok(done)
    }

    /// `mmuext_op` on our own domain.
    ///
    /// # Safety
    /// Pinning, unpinning and switching page tables: the caller guarantees the tables stay
    /// valid for the kernel's memory safety (a switch must land in code mapped identically).
    pub unsafe fn mmuext_op(ops: &[MmuextOp]) -> Result<(), Errno> {
        // SAFETY: forwarded caller contract; the array is valid for the call.
        unsafe {
            hc(
                nr::MMUEXT_OP,
                ptr(ops.as_ptr()),
                ops.len() as u64,
                0,
                u64::from(DOMID_SELF),
            )
        }
        .map(drop)
    }

    /// `update_va_mapping(va, pte, flags)`.
    ///
    /// # Safety
    /// The new mapping of `va` must not break memory the kernel still uses through `va`.
    pub unsafe fn update_va_mapping(va: usize, pte: u64, flags: u64) -> Result<(), Errno> {
        // SAFETY: forwarded caller contract.
        unsafe { hc(nr::UPDATE_VA_MAPPING, va as u64, pte, flags, 0) }.map(drop)
    }

    /// `callback_op(CALLBACKOP_register, cb)`.
    ///
    /// # Safety
    /// As for [`set_callbacks`].
    pub unsafe fn callback_register(cb: &CallbackRegister) -> Result<(), Errno> {
        // SAFETY: forwarded caller contract.
        unsafe { hc(nr::CALLBACK_OP, CALLBACKOP_REGISTER.into(), ptr(cb), 0, 0) }.map(drop)
    }

    /// `set_timer_op(deadline)`: one VIRQ_TIMER at absolute system time `deadline_ns`
    /// (0 cancels).
    pub fn set_timer_op(deadline_ns: u64) -> Result<(), Errno> {
        // SAFETY: no memory argument.
        unsafe { hc(nr::SET_TIMER_OP, deadline_ns, 0, 0, 0) }.map(drop)
    }

    /// `xen_version(XENVER_version)`: (major, minor).
    pub fn xen_version() -> (u32, u32) {
        // SAFETY: XENVER_version takes no argument and cannot fail.
        let v = unsafe { hypercall5(nr::XEN_VERSION, xenver::VERSION.into(), 0, 0, 0, 0) };
        ((v as u32) >> 16, (v as u32) & 0xffff)
    }

    /// `xen_version(XENVER_extraversion)`: e.g. ".7".
    pub fn xen_extraversion() -> [u8; 16] {
        let mut buf = [0u8; 16];
        // SAFETY: Xen writes at most 16 bytes into `buf`.
        let ret = unsafe {
            hypercall5(
                nr::XEN_VERSION,
                xenver::EXTRAVERSION.into(),
                ptr(buf.as_mut_ptr()),
                0,
                0,
                0,
            )
        };
        if ret < 0 {
            buf = [0; 16];
        }
        buf
    }

    /// A no-op hypercall: on return Xen delivers any pending, unmasked event upcall.
    pub fn force_event_delivery() {
        // SAFETY: XENVER_version has no memory argument.
        unsafe { hypercall5(nr::XEN_VERSION, xenver::VERSION.into(), 0, 0, 0, 0) };
    }

    /// `console_io(CONSOLEIO_write)`: Xen's own console (EPERM for domUs on release Xen).
    pub fn console_io_write(bytes: &[u8]) -> Result<(), Errno> {
        // SAFETY: Xen reads `bytes`.
        unsafe {
            hc(
                nr::CONSOLE_IO,
                CONSOLEIO_WRITE.into(),
                bytes.len() as u64,
                ptr(bytes.as_ptr()),
                0,
            )
        }
        .map(drop)
    }

    /// `GNTTABOP_query_size` for `dom`: the call's own result and the filled struct.
    pub fn gnttab_query_size(dom: u16) -> (Result<(), Errno>, GnttabQuerySize) {
        let mut q = [GnttabQuerySize {
            dom,
            ..Default::default()
        }];
        // SAFETY: query_size only writes the struct, which is valid for the call.
        let ret = unsafe { grant_table_op(&mut q) };
        (ret, q[0])
    }

    /// `GNTTABOP_setup_table` for `dom` with `mfns.len()` frames: Xen fills `mfns` with the
    /// table's machine frames. Returns the call's own result and the op's status.
    pub fn gnttab_setup_table(dom: u16, mfns: &mut [u64]) -> (Result<(), Errno>, i16) {
        let mut setup = [GnttabSetupTable {
            dom,
            nr_frames: mfns.len() as u32,
            status: 0,
            frame_list: mfns.as_mut_ptr(),
        }];
        // SAFETY: Xen writes at most `nr_frames` = `mfns.len()` MFNs into `mfns`, which is
        // borrowed mutably for the call; setup_table does not change the address space.
        let ret = unsafe { grant_table_op(&mut setup) };
        (ret, setup[0].status)
    }

    /// `grant_table_op(T::CMD, ops)`: the call's own result; each op also carries a status.
    ///
    /// # Safety
    /// Mapping/unmapping/setup change the address space: the host addresses must be reserved
    /// VAs with an L1 table that no Rust object lives in.
    pub unsafe fn grant_table_op<T: GnttabOp>(ops: &mut [T]) -> Result<(), Errno> {
        // SAFETY: forwarded caller contract; the array is valid for Xen to read and write.
        unsafe {
            hc(
                nr::GRANT_TABLE_OP,
                T::CMD.into(),
                ptr(ops.as_mut_ptr()),
                ops.len() as u64,
                0,
            )
        }
        .map(drop)
    }

    /// `vcpu_op(cmd, vcpu, arg)`.
    ///
    /// # Safety
    /// `arg` must point to the struct `cmd` expects (or be null where allowed).
    pub unsafe fn vcpu_op<T>(cmd: u32, vcpu: u32, arg: *mut T) -> Result<usize, Errno> {
        // SAFETY: forwarded caller contract.
        unsafe { hc(nr::VCPU_OP, cmd.into(), vcpu.into(), ptr(arg), 0) }
    }

    /// Stops the default 10 ms periodic VIRQ_TIMER of `vcpu`.
    pub fn vcpu_stop_periodic_timer(vcpu: u32) -> Result<(), Errno> {
        // SAFETY: STOP_PERIODIC_TIMER takes no argument.
        unsafe { vcpu_op::<u8>(vcpuop::STOP_PERIODIC_TIMER, vcpu, core::ptr::null_mut()) }.map(drop)
    }

    /// `sched_op(SCHEDOP_yield)`.
    pub fn sched_yield() {
        // SAFETY: no memory argument; yield cannot fail.
        unsafe { hypercall5(nr::SCHED_OP, schedop::YIELD.into(), 0, 0, 0, 0) };
    }

    /// `sched_op(SCHEDOP_block)`: clears the upcall mask, blocks until an event is pending,
    /// returns with events **enabled** (any pending upcall has been delivered by then).
    pub fn sched_block() {
        // SAFETY: no memory argument.
        unsafe { hypercall5(nr::SCHED_OP, schedop::BLOCK.into(), 0, 0, 0, 0) };
    }

    /// `sched_op(SCHEDOP_poll)`: blocks until `port` is pending or system time reaches
    /// `deadline_ns`, whether or not events are masked (the upcall mask is left as it is).
    pub fn sched_poll(port: u32, deadline_ns: u64) -> Result<(), Errno> {
        let ports = [port];
        let arg = SchedPoll {
            ports: ports.as_ptr() as u64,
            nr_ports: 1,
            pad: 0,
            timeout: deadline_ns,
        };
        // SAFETY: Xen reads the struct and the one port it points to, both live for the call.
        unsafe { hc(nr::SCHED_OP, schedop::POLL.into(), ptr(&arg), 0, 0) }.map(drop)
    }

    /// `sched_op(SCHEDOP_shutdown, reason)`: does not return for poweroff/crash.
    pub fn sched_shutdown(reason: ShutdownReason) -> Result<(), Errno> {
        let arg = SchedShutdown {
            reason: reason as u32,
        };
        // SAFETY: Xen reads the 4-byte struct.
        unsafe { hc(nr::SCHED_OP, schedop::SHUTDOWN.into(), ptr(&arg), 0, 0) }.map(drop)
    }

    /// `event_channel_op(T::CMD, op)`.
    pub fn event_channel_op<T: EvtchnOp>(op: &mut T) -> Result<(), Errno> {
        // SAFETY: `T` is one of the EVTCHNOP structs, valid for Xen to read and write.
        unsafe { hc(nr::EVENT_CHANNEL_OP, T::CMD.into(), ptr(op), 0, 0) }.map(drop)
    }

    /// `domctl(op)`; sets `interface_version` to the running Xen's (asked once).
    pub fn domctl(op: &mut Domctl) -> Result<(), Errno> {
        static VERSION: AtomicU32 = AtomicU32::new(0);
        let mut version = VERSION.load(Ordering::Relaxed);
        if version == 0 {
            let (major, minor) = xen_version();
            version = domctl_interface_version(major, minor);
            VERSION.store(version, Ordering::Relaxed);
        }
        op.interface_version = version;
        // SAFETY: Xen reads and writes the 144-byte struct.
        unsafe { hc(nr::DOMCTL, ptr(op), 0, 0, 0) }.map(drop)
    }

    /// `XEN_DOMCTL_getdomaininfo(domid)`: the info of `domid` or of the next existing domain
    /// above it (compare `.domain`).
    pub fn getdomaininfo(domid: u16) -> Result<DomctlGetDomainInfo, Errno> {
        let mut op = Domctl {
            cmd: DOMCTL_GETDOMAININFO,
            interface_version: 0,
            domain: domid,
            pad: [0; 3],
            u: DomctlUnion { pad: [0; 16] },
        };
        domctl(&mut op)?;
        // SAFETY: getdomaininfo filled this union member.
        Ok(unsafe { op.u.getdomaininfo })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn abi_offsets_match_xen_headers() {
        assert_eq!(offset_of!(GnttabMapGrantRef, status), 18);
        assert_eq!(offset_of!(GnttabMapGrantRef, handle), 20);
        assert_eq!(offset_of!(GnttabUnmapGrantRef, status), 20);
        assert_eq!(offset_of!(GnttabSetupTable, frame_list), 16);
        assert_eq!(offset_of!(GnttabCopy, len), 32);
        assert_eq!(offset_of!(GnttabCopy, status), 36);
        assert_eq!(offset_of!(EvtchnBindInterdomain, local_port), 8);
        assert_eq!(offset_of!(EvtchnAllocUnbound, port), 4);
        assert_eq!(offset_of!(Domctl, u), 16);
        assert_eq!(offset_of!(DomctlGetDomainInfo, nr_online_vcpus), 64);
        assert_eq!(offset_of!(DomctlGetDomainInfo, handle), 76);
        assert_eq!(offset_of!(DomctlGetDomainInfo, cpupool), 92);
        assert_eq!(offset_of!(DomctlGetDomainInfo, emulation_flags), 104);
        assert_eq!(offset_of!(TrapInfo, address), 8);
    }

    #[test]
    fn domctl_interface_version_follows_the_xen_version() {
        assert_eq!(domctl_interface_version(4, 16), 0x15);
        assert_eq!(domctl_interface_version(4, 17), 0x15);
        assert_eq!(domctl_interface_version(4, 18), 0x16);
        assert_eq!(domctl_interface_version(4, 19), 0x17);
        assert_eq!(domctl_interface_version(4, 20), 0x17);
        assert_eq!(domctl_interface_version(4, 21), 0x17);
        assert_eq!(domctl_interface_version(4, 22), 0x18);
        assert_eq!(domctl_interface_version(5, 0), 0x18);
    }

    #[test]
    fn errno_check_splits_errors_from_results() {
        assert_eq!(Errno::check(-22), Err(Errno::EINVAL));
        assert_eq!(Errno::check(5), Ok(5));
        assert_eq!(Errno::EPERM.to_string(), "Xen error -1 (EPERM)");
        assert_eq!(format!("{:?}", Errno(99)), "E?(99)");
    }
}
