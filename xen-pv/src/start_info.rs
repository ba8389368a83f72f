//! `start_info`: the page Xen's domain builder hands the kernel in `rsi` at entry. This module
//! parses and validates it (pure, host-tested) and, on the kernel target, keeps the parsed copy
//! for the rest of the boot (`start_info::get()`).

use core::fmt;
use core::mem::{offset_of, size_of};

/// Size of `struct start_info` on x86_64 (Xen 4.17).
pub const START_INFO_SIZE: usize = 1168;
/// The only magic this kernel accepts: a 64-bit PV guest.
pub const MAGIC: &str = "xen-3.0-x86_64";
/// MAX_GUEST_CMDLINE.
pub const CMDLINE_SIZE: usize = 1024;
/// Bytes per page, as the u64 start_info's fields are.
const PAGE_SIZE: u64 = crate::mm::paging::PAGE_SIZE as u64;

bitflags::bitflags! {
    /// `SIF_*` flags of `start_info.flags`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Flags: u32 {
        /// The domain is privileged (dom0-like).
        const PRIVILEGED = 1 << 0;
        /// The domain is the initial domain.
        const INITDOMAIN = 1 << 1;
        /// The module is a multiboot module.
        const MULTIBOOT_MOD = 1 << 2;
        /// `mod_start` is a PFN, not a VA.
        const MOD_START_PFN = 1 << 3;
        /// The p2m list is virtually mapped for the tools.
        const VIRT_P2M_4TOOLS = 1 << 4;
    }
}

/// `struct start_info` (x86_64, a PV domU's `console.domU` arm of the console union). It is
/// never read through this type: the page is parsed from bytes at these fields' offsets.
#[repr(C)]
struct RawStartInfo {
    magic: [u8; 32],
    nr_pages: u64,
    shared_info: u64,
    flags: u32,
    store_mfn: u64,
    store_evtchn: u32,
    console_mfn: u64,
    console_evtchn: u32,
    pt_base: u64,
    nr_pt_frames: u64,
    mfn_list: u64,
    mod_start: u64,
    mod_len: u64,
    cmd_line: [u8; CMDLINE_SIZE],
    first_p2m_pfn: u64,
    nr_p2m_frames: u64,
}
const _: () = assert!(size_of::<RawStartInfo>() == START_INFO_SIZE);

const OFF_NR_PAGES: usize = offset_of!(RawStartInfo, nr_pages);
const OFF_SHARED_INFO: usize = offset_of!(RawStartInfo, shared_info);
const OFF_FLAGS: usize = offset_of!(RawStartInfo, flags);
const OFF_STORE_MFN: usize = offset_of!(RawStartInfo, store_mfn);
const OFF_STORE_EVTCHN: usize = offset_of!(RawStartInfo, store_evtchn);
const OFF_CONSOLE_MFN: usize = offset_of!(RawStartInfo, console_mfn);
const OFF_CONSOLE_EVTCHN: usize = offset_of!(RawStartInfo, console_evtchn);
const OFF_PT_BASE: usize = offset_of!(RawStartInfo, pt_base);
const OFF_NR_PT_FRAMES: usize = offset_of!(RawStartInfo, nr_pt_frames);
const OFF_MFN_LIST: usize = offset_of!(RawStartInfo, mfn_list);
const OFF_MOD_START: usize = offset_of!(RawStartInfo, mod_start);
const OFF_MOD_LEN: usize = offset_of!(RawStartInfo, mod_len);
const OFF_CMD_LINE: usize = offset_of!(RawStartInfo, cmd_line);

/// Why a start_info page was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartInfoError {
    /// Fewer than [`START_INFO_SIZE`] bytes were given.
    TooShort(usize),
    /// The magic is not exactly `xen-3.0-x86_64` (NUL padded).
    BadMagic,
    /// `nr_pages` is zero.
    NoPages,
    /// The command line has no NUL terminator within 1024 bytes.
    CmdlineUnterminated,
}

impl fmt::Display for StartInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartInfoError::TooShort(n) => {
                write!(f, "start_info is {n} bytes, expected {START_INFO_SIZE}")
            }
            StartInfoError::BadMagic => write!(f, "start_info magic is not \"{MAGIC}\""),
            StartInfoError::NoPages => write!(f, "start_info.nr_pages is 0"),
            StartInfoError::CmdlineUnterminated => {
                write!(f, "start_info.cmd_line is not NUL-terminated")
            }
        }
    }
}

/// The validated contents of `start_info`.
#[derive(Clone, PartialEq, Eq)]
pub struct StartInfo {
    /// Pages allocated to the domain (pseudo-physical 0..nr_pages are populated).
    pub nr_pages: u64,
    /// Machine address of the shared_info page.
    pub shared_info_ma: u64,
    /// `SIF_*` flags.
    pub flags: u32,
    /// MFN of the xenstore ring page.
    pub store_mfn: u64,
    /// Local event-channel port of the xenstore ring (0 for a xenstore stub domain).
    pub store_evtchn: u32,
    /// MFN of the PV console ring page.
    pub console_mfn: u64,
    /// Local event-channel port of the console.
    pub console_evtchn: u32,
    /// VA of the bootstrap L4 page table.
    pub pt_base: u64,
    /// Number of bootstrap page-table frames.
    pub nr_pt_frames: u64,
    /// VA of the p2m list (one u64 MFN per PFN).
    pub mfn_list: u64,
    /// VA (or PFN with `MOD_START_PFN`) of the boot module.
    pub mod_start: u64,
    /// Length of the boot module in bytes.
    pub mod_len: u64,
    cmd_line: [u8; CMDLINE_SIZE],
    cmd_line_len: usize,
}

fn read_u64(b: &[u8], off: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(v)
}

fn read_u32(b: &[u8], off: usize) -> u32 {
    let mut v = [0u8; 4];
    v.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(v)
}

impl StartInfo {
    /// Parses and validates the raw bytes of a start_info page.
    pub fn parse(bytes: &[u8]) -> Result<StartInfo, StartInfoError> {
        if bytes.len() < START_INFO_SIZE {
            return Err(StartInfoError::TooShort(bytes.len()));
        }
        let magic = &bytes[..32];
        let m = MAGIC.as_bytes();
        if &magic[..m.len()] != m || magic[m.len()..].iter().any(|&c| c != 0) {
            return Err(StartInfoError::BadMagic);
        }
        let nr_pages = read_u64(bytes, OFF_NR_PAGES);
        if nr_pages == 0 {
            return Err(StartInfoError::NoPages);
        }
        let raw_cmd = &bytes[OFF_CMD_LINE..OFF_CMD_LINE + CMDLINE_SIZE];
        let cmd_line_len = raw_cmd
            .iter()
            .position(|&c| c == 0)
            .ok_or(StartInfoError::CmdlineUnterminated)?;
        let mut cmd_line = [0u8; CMDLINE_SIZE];
        cmd_line.copy_from_slice(raw_cmd);
        Ok(StartInfo {
            nr_pages,
            shared_info_ma: read_u64(bytes, OFF_SHARED_INFO),
            flags: read_u32(bytes, OFF_FLAGS),
            store_mfn: read_u64(bytes, OFF_STORE_MFN),
            store_evtchn: read_u32(bytes, OFF_STORE_EVTCHN),
            console_mfn: read_u64(bytes, OFF_CONSOLE_MFN),
            console_evtchn: read_u32(bytes, OFF_CONSOLE_EVTCHN),
            pt_base: read_u64(bytes, OFF_PT_BASE),
            nr_pt_frames: read_u64(bytes, OFF_NR_PT_FRAMES),
            mfn_list: read_u64(bytes, OFF_MFN_LIST),
            mod_start: read_u64(bytes, OFF_MOD_START),
            mod_len: read_u64(bytes, OFF_MOD_LEN),
            cmd_line,
            cmd_line_len,
        })
    }

    /// The command line up to its NUL; bytes that are not valid UTF-8 end it early.
    pub fn cmd_line(&self) -> &str {
        let raw = &self.cmd_line[..self.cmd_line_len];
        match core::str::from_utf8(raw) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&raw[..e.valid_up_to()]).unwrap_or(""),
        }
    }

    /// Memory given to the domain, in whole MiB (`memory =` of the xl config).
    pub fn memory_mib(&self) -> u64 {
        self.nr_pages * PAGE_SIZE / (1024 * 1024)
    }

    /// True for a privileged domain.
    pub fn is_privileged(&self) -> bool {
        Flags::from_bits_retain(self.flags).contains(Flags::PRIVILEGED)
    }

    /// Replaces the command line; `None` if it does not fit (1023 bytes, no NUL).
    pub fn with_cmd_line(&self, cmd_line: &str) -> Option<StartInfo> {
        let b = cmd_line.as_bytes();
        if b.len() >= CMDLINE_SIZE || b.contains(&0) {
            return None;
        }
        let mut si = self.clone();
        si.cmd_line = [0; CMDLINE_SIZE];
        si.cmd_line[..b.len()].copy_from_slice(b);
        si.cmd_line_len = b.len();
        Some(si)
    }

    /// The raw page bytes of this start_info (what [`StartInfo::parse`] reads), as a domain
    /// builder writes them; live update hands the next kernel one.
    pub fn encode(&self) -> [u8; START_INFO_SIZE] {
        let mut b = [0u8; START_INFO_SIZE];
        b[..MAGIC.len()].copy_from_slice(MAGIC.as_bytes());
        let mut put = |off: usize, v: &[u8]| b[off..off + v.len()].copy_from_slice(v);
        put(OFF_NR_PAGES, &self.nr_pages.to_le_bytes());
        put(OFF_SHARED_INFO, &self.shared_info_ma.to_le_bytes());
        put(OFF_FLAGS, &self.flags.to_le_bytes());
        put(OFF_STORE_MFN, &self.store_mfn.to_le_bytes());
        put(OFF_STORE_EVTCHN, &self.store_evtchn.to_le_bytes());
        put(OFF_CONSOLE_MFN, &self.console_mfn.to_le_bytes());
        put(OFF_CONSOLE_EVTCHN, &self.console_evtchn.to_le_bytes());
        put(OFF_PT_BASE, &self.pt_base.to_le_bytes());
        put(OFF_NR_PT_FRAMES, &self.nr_pt_frames.to_le_bytes());
        put(OFF_MFN_LIST, &self.mfn_list.to_le_bytes());
        put(OFF_MOD_START, &self.mod_start.to_le_bytes());
        put(OFF_MOD_LEN, &self.mod_len.to_le_bytes());
        put(OFF_CMD_LINE, &self.cmd_line[..self.cmd_line_len]);
        b
    }

    /// Pseudo-physical frame number of a VA inside the start-of-day region (linked at VA 0).
    pub fn pfn_of_va(va: u64) -> u64 {
        va / PAGE_SIZE
    }

    /// First PFN after the bootstrap page tables: the builder's boot stack page. Everything at
    /// and after `first_free_pfn()` is free for the kernel (this kernel leaves the boot stack at
    /// `_start`, so its page is free too).
    pub fn first_free_pfn(&self) -> u64 {
        Self::pfn_of_va(self.pt_base) + self.nr_pt_frames
    }
}

impl fmt::Debug for StartInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartInfo")
            .field("nr_pages", &self.nr_pages)
            .field("shared_info_ma", &self.shared_info_ma)
            .field("flags", &self.flags)
            .field("store_mfn", &self.store_mfn)
            .field("store_evtchn", &self.store_evtchn)
            .field("console_mfn", &self.console_mfn)
            .field("console_evtchn", &self.console_evtchn)
            .field("pt_base", &self.pt_base)
            .field("nr_pt_frames", &self.nr_pt_frames)
            .field("mfn_list", &self.mfn_list)
            .field("mod_start", &self.mod_start)
            .field("mod_len", &self.mod_len)
            .field("cmd_line", &self.cmd_line())
            .finish()
    }
}

#[cfg(target_os = "none")]
mod global {
    use super::{StartInfo, StartInfoError, START_INFO_SIZE};
    use crate::arch::EntryStartInfo;
    use spin::Once;

    /// The parsed copy, set once by `init`.
    static SLOT: Once<StartInfo> = Once::new();

    /// Parses the start_info page Xen passed at entry and keeps the copy.
    pub fn init(entry: &EntryStartInfo) -> Result<&'static StartInfo, StartInfoError> {
        let mut bytes = [0u8; START_INFO_SIZE];
        entry.read(&mut bytes);
        let si = StartInfo::parse(&bytes)?;
        assert!(!SLOT.is_completed(), "start_info::init called twice");
        Ok(SLOT.call_once(|| si))
    }

    /// The boot module (its bytes at VA `mod_start`), if there is one between the image and
    /// the end of the bootstrap region: the kernel never hands those pages out, so they stay as the builder (or the
    /// kernel this one replaced) left them.
    pub fn boot_module(si: &StartInfo) -> Option<&'static [u8]> {
        let page = super::PAGE_SIZE;
        let end = si.mod_start.checked_add(si.mod_len)?;
        let pfn_mode =
            super::Flags::from_bits_retain(si.flags).contains(super::Flags::MOD_START_PFN);
        let image_end = crate::arch::image_layout().bss.1 as u64;
        if si.mod_len == 0
            || pfn_mode
            || si.mod_start < image_end
            || end > si.first_free_pfn() * page
        {
            return None;
        }
        // SAFETY: the range lies in the bootstrap region (checked above), mapped for the
        // kernel's life and never written after boot.
        Some(unsafe {
            core::slice::from_raw_parts(si.mod_start as usize as *const u8, si.mod_len as usize)
        })
    }

    /// The parsed start_info; panics if called before `init`.
    pub fn get() -> &'static StartInfo {
        match SLOT.get() {
            Some(si) => si,
            None => panic!("start_info used before init"),
        }
    }
}

#[cfg(target_os = "none")]
pub use global::{boot_module, get, init};

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> Vec<u8> {
        let mut b = vec![0u8; 4096];
        b[..MAGIC.len()].copy_from_slice(MAGIC.as_bytes());
        b[OFF_NR_PAGES..OFF_NR_PAGES + 8].copy_from_slice(&8192u64.to_le_bytes());
        b[OFF_SHARED_INFO..OFF_SHARED_INFO + 8].copy_from_slice(&0x1234_5000u64.to_le_bytes());
        b[OFF_FLAGS..OFF_FLAGS + 4].copy_from_slice(&3u32.to_le_bytes());
        b[OFF_STORE_MFN..OFF_STORE_MFN + 8].copy_from_slice(&0xabcdeu64.to_le_bytes());
        b[OFF_STORE_EVTCHN..OFF_STORE_EVTCHN + 4].copy_from_slice(&1u32.to_le_bytes());
        b[OFF_CONSOLE_MFN..OFF_CONSOLE_MFN + 8].copy_from_slice(&0xabcdfu64.to_le_bytes());
        b[OFF_CONSOLE_EVTCHN..OFF_CONSOLE_EVTCHN + 4].copy_from_slice(&2u32.to_le_bytes());
        b[OFF_PT_BASE..OFF_PT_BASE + 8].copy_from_slice(&0x2d000u64.to_le_bytes());
        b[OFF_NR_PT_FRAMES..OFF_NR_PT_FRAMES + 8].copy_from_slice(&5u64.to_le_bytes());
        b[OFF_MFN_LIST..OFF_MFN_LIST + 8].copy_from_slice(&0x16000u64.to_le_bytes());
        b[OFF_MOD_START..OFF_MOD_START + 8].copy_from_slice(&0x30000u64.to_le_bytes());
        b[OFF_MOD_LEN..OFF_MOD_LEN + 8].copy_from_slice(&77u64.to_le_bytes());
        let cmd = b"demo panic";
        b[OFF_CMD_LINE..OFF_CMD_LINE + cmd.len()].copy_from_slice(cmd);
        b
    }

    #[test]
    fn parses_every_field() {
        let si = StartInfo::parse(&page()).unwrap();
        assert_eq!(si.nr_pages, 8192);
        assert_eq!(si.memory_mib(), 32);
        assert_eq!(si.shared_info_ma, 0x1234_5000);
        assert_eq!(si.flags, 3);
        assert!(si.is_privileged());
        assert_eq!(si.store_mfn, 0xabcde);
        assert_eq!(si.store_evtchn, 1);
        assert_eq!(si.console_mfn, 0xabcdf);
        assert_eq!(si.console_evtchn, 2);
        assert_eq!(si.pt_base, 0x2d000);
        assert_eq!(si.nr_pt_frames, 5);
        assert_eq!(si.first_free_pfn(), 0x2d + 5);
        assert_eq!(si.mfn_list, 0x16000);
        assert_eq!(si.mod_start, 0x30000);
        assert_eq!(si.mod_len, 77);
        assert_eq!(si.cmd_line(), "demo panic");
    }

    #[test]
    fn encodes_what_it_parses() {
        let si = StartInfo::parse(&page()).unwrap();
        assert_eq!(StartInfo::parse(&si.encode()).unwrap(), si);
        assert_eq!(&si.encode()[..], &page()[..START_INFO_SIZE]);
        let next = si.with_cmd_line("--event 3 --live-update").unwrap();
        assert_eq!(
            StartInfo::parse(&next.encode()).unwrap().cmd_line(),
            "--event 3 --live-update"
        );
        assert!(si.with_cmd_line(&"x".repeat(CMDLINE_SIZE)).is_none());
        assert!(si.with_cmd_line("a\0b").is_none());
    }

    #[test]
    fn rejects_short_input() {
        assert_eq!(
            StartInfo::parse(&page()[..1167]),
            Err(StartInfoError::TooShort(1167))
        );
    }

    #[test]
    fn rejects_other_magic() {
        let mut b = page();
        b[..16].copy_from_slice(b"xen-3.0-x86_32p\0");
        assert_eq!(StartInfo::parse(&b), Err(StartInfoError::BadMagic));
        let mut b = page();
        b[MAGIC.len()] = b'!';
        assert_eq!(StartInfo::parse(&b), Err(StartInfoError::BadMagic));
    }

    #[test]
    fn rejects_zero_pages() {
        let mut b = page();
        b[OFF_NR_PAGES..OFF_NR_PAGES + 8].copy_from_slice(&0u64.to_le_bytes());
        assert_eq!(StartInfo::parse(&b), Err(StartInfoError::NoPages));
    }

    #[test]
    fn rejects_unterminated_cmdline() {
        let mut b = page();
        b[OFF_CMD_LINE..OFF_CMD_LINE + CMDLINE_SIZE].fill(b'x');
        assert_eq!(
            StartInfo::parse(&b),
            Err(StartInfoError::CmdlineUnterminated)
        );
    }

    #[test]
    fn cmdline_stops_at_invalid_utf8() {
        let mut b = page();
        b[OFF_CMD_LINE + 4] = 0xff;
        assert_eq!(StartInfo::parse(&b).unwrap().cmd_line(), "demo");
    }

    #[test]
    fn error_messages_name_the_problem() {
        assert_eq!(
            StartInfoError::BadMagic.to_string(),
            "start_info magic is not \"xen-3.0-x86_64\""
        );
    }
}
