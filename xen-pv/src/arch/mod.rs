//! x86_64 PV architecture glue: pulls in the boot assembly (`boot/head.S`, `boot/entry.S`),
//! maps `shared_info`, reads the M2P and the start_info page, wraps the few unprivileged CPU
//! instructions the kernel uses (rdtsc, pause, int3), reads raw stack words for fault
//! reports, and holds the context switch ([`switch`]) and the kernel's lock ([`sync`], which
//! masks event upcalls).

pub mod entry;
pub mod frame;
pub mod switch;
pub mod sync;
pub mod upcall;

use crate::hypercall::{
    self, CallbackRegister, Errno, CALLBACKTYPE_EVENT, CALLBACKTYPE_FAILSAFE, UVMF_INVLPG,
};
use crate::shared_info::{SharedInfo, VcpuInfo};
use core::arch::{asm, global_asm};

global_asm!(include_str!("../../../boot/head.S"));
global_asm!(include_str!("../../../boot/entry.S"));

use crate::mm::paging::{Flags, PAGE_SIZE};
/// VA of Xen's read-only machine-to-phys table (u64 per MFN).
pub const MACH2PHYS_VIRT_START: usize = 0xFFFF_8000_0000_0000;
/// PTE flags of the shared_info mapping.
const SHARED_INFO_PROT: Flags = Flags::PRESENT
    .union(Flags::WRITABLE)
    .union(Flags::USER_ACCESSIBLE);

extern "C" {
    static shared_info_page: [u8; PAGE_SIZE];
}

/// VA of the shared_info page (valid once [`map_shared_info`] ran).
pub fn shared_info_va() -> usize {
    (&raw const shared_info_page) as usize
}

/// Maps Xen's shared_info frame (machine address `ma`) over the reserved page.
pub fn map_shared_info(ma: u64) -> Result<(), Errno> {
    // SAFETY: `shared_info_page` is a page of the kernel's .bss reserved for this mapping;
    // no Rust object lives in it, only `shared_info()` references it afterwards.
    unsafe {
        hypercall::update_va_mapping(shared_info_va(), ma | SHARED_INFO_PROT.bits(), UVMF_INVLPG)
    }
}

/// The shared_info page.
pub fn shared_info() -> &'static SharedInfo {
    // SAFETY: the reserved page is always mapped (zeroed .bss before `map_shared_info`, Xen's
    // frame after); every field is an atomic, so concurrent writes by Xen are fine.
    unsafe { &*(shared_info_va() as *const SharedInfo) }
}

/// vcpu_info of the boot vCPU (the kernel runs on vCPU 0 only).
pub fn vcpu() -> &'static VcpuInfo {
    &shared_info().vcpu_info[0]
}

/// PFN of machine frame `mfn`, read from Xen's M2P table.
pub fn mfn_to_pfn(mfn: u64) -> u64 {
    let entry = (MACH2PHYS_VIRT_START + mfn as usize * 8) as *const u64;
    // SAFETY: Xen maps the M2P read-only in every PV guest; frames given to this domain have
    // valid entries.
    unsafe { entry.read_volatile() }
}

/// The start_info VA Xen passed in `rsi` at entry, as `_start` (boot/head.S) hands it to
/// `ferrostore_start`. Only that call makes one (the field is private).
#[repr(transparent)]
pub struct EntryStartInfo(usize);

impl EntryStartInfo {
    /// The VA of the start_info page.
    pub fn va(&self) -> usize {
        self.0
    }

    /// Copies the first `buf.len()` (at most 4096) bytes of the start_info page into `buf`.
    pub fn read(&self, buf: &mut [u8]) {
        for (i, b) in buf.iter_mut().take(PAGE_SIZE).enumerate() {
            // SAFETY: `self.0` is the VA of the mapped, page-aligned start_info page Xen passed
            // at entry (only `_start` makes this value) and `i` < 4096 stays inside it; the
            // volatile read copies the byte out without making a reference.
            *b = unsafe { ((self.0 + i) as *const u8).read_volatile() };
        }
    }
}

/// One word of a stack being dumped by the fatal-trap report. A bad address faults, which the
/// report's nested-fault guard turns into a crash; nothing is written.
pub fn read_stack_word(addr: u64) -> u64 {
    // SAFETY: a read of any address the kernel can reach: either it is mapped (the word is
    // copied out, no reference is made) or it faults into the crash path.
    unsafe { (addr as *const u64).read_volatile() }
}

/// Kernel VA of machine frame `mfn` (the start-of-day region maps pfn N at N * 4096).
pub fn mfn_to_virt(mfn: u64) -> usize {
    mfn_to_pfn(mfn) as usize * PAGE_SIZE
}

/// An entry stub of boot/entry.S (a trap gate or a callback; Xen jumps there, Rust never
/// calls it).
pub type EntryPoint = unsafe extern "C" fn();

extern "C" {
    fn hypervisor_callback();
    fn failsafe_callback();
}

/// Registers the event-upcall and failsafe entry points of boot/entry.S with Xen; on failure
/// returns the callback type and Xen's error.
pub fn register_callbacks() -> Result<(), (u16, Errno)> {
    let entries: [(u16, EntryPoint); 2] = [
        (CALLBACKTYPE_EVENT, hypervisor_callback),
        (CALLBACKTYPE_FAILSAFE, failsafe_callback),
    ];
    for (kind, entry) in entries {
        let cb = CallbackRegister {
            kind,
            flags: 0,
            address: entry as usize as u64,
        };
        // SAFETY: both entry points follow Xen's callback frame layout (boot/entry.S).
        unsafe { hypercall::callback_register(&cb) }.map_err(|e| (kind, e))?;
    }
    Ok(())
}

/// Unmaps VA page 0 so null-pointer accesses fault (the image starts at 0x1000).
pub fn unmap_null_page() -> Result<(), Errno> {
    // SAFETY: nothing is linked at VA 0..0x1000 and pfn 0 is never handed out.
    unsafe { hypercall::update_va_mapping(0, 0, UVMF_INVLPG) }
}

/// Time-stamp counter.
pub fn rdtsc() -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: rdtsc is unprivileged unless CR4.TSD, which Xen leaves clear for PV guests.
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Spin-loop hint.
pub fn pause() {
    core::hint::spin_loop();
}

/// Reads VA 0, which [`unmap_null_page`] unmapped: a deliberate page fault (the `fault`
/// command-line option uses it to exercise the fatal-trap report).
pub fn read_null_page() -> u64 {
    let v: u64;
    // SAFETY: VA 0 is unmapped, so this load faults and the trap handler crashes the domain;
    // no memory is ever read or written.
    unsafe { asm!("mov {}, qword ptr [0]", out(reg) v, options(nostack, readonly)) };
    v
}

/// Executes a breakpoint instruction (trapped by vector 3, which returns).
pub fn breakpoint() {
    // SAFETY: the trap table routes #BP to a handler that logs and resumes after it.
    unsafe { asm!("int3") };
}

extern "C" {
    static _text: u8;
    static _etext: u8;
    static _rodata: u8;
    static _erodata: u8;
    static _data: u8;
    static _edata: u8;
    static _bss: u8;
    static _end: u8;
    static boot_stack_bottom: u8;
    static boot_stack_top: u8;
}

/// Section boundaries of the loaded image (from linker.ld and boot/head.S).
#[derive(Clone, Copy, Debug)]
pub struct ImageLayout {
    pub text: (usize, usize),
    pub rodata: (usize, usize),
    pub data: (usize, usize),
    pub bss: (usize, usize),
    pub boot_stack: (usize, usize),
    pub shared_info: usize,
}

/// Where the linker put the kernel's sections.
pub fn image_layout() -> ImageLayout {
    ImageLayout {
        text: (&raw const _text as usize, &raw const _etext as usize),
        rodata: (&raw const _rodata as usize, &raw const _erodata as usize),
        data: (&raw const _data as usize, &raw const _edata as usize),
        bss: (&raw const _bss as usize, &raw const _end as usize),
        boot_stack: (
            &raw const boot_stack_bottom as usize,
            &raw const boot_stack_top as usize,
        ),
        shared_info: shared_info_va(),
    }
}
