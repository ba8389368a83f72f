//! Live update's way into the next kernel: the running kernel loads a new ELF into its own
//! frames as Xen's domain builder would, hands it a boot module (the state stream) and a
//! start_info, and jumps to its `_start` without Xen building a domain (`docs/live-update.md`).

pub mod elf;
pub mod layout;
#[cfg(target_os = "none")]
mod switch;

#[cfg(target_os = "none")]
pub use switch::{check, prepare, Prepared};

use core::fmt;

/// Why the next kernel cannot be loaded; nothing has changed when this is returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandoverError {
    /// The image cannot be loaded.
    Image(&'static str),
    /// The image's entry or switch code is not this kernel's.
    Entry,
    /// The new command line does not fit start_info.
    CmdLine,
    /// The bootstrap region does not fit.
    Layout(&'static str),
    /// The heap has no block of this many bytes for the staged kernel.
    NoMemory(usize),
    /// Mapping the handover page failed.
    Memory(crate::mm::MmError),
    /// A hypercall failed.
    Xen(&'static str, crate::hypercall::Errno),
}

impl fmt::Display for HandoverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandoverError::Image(why) => write!(f, "the image cannot be loaded: {why}"),
            HandoverError::Entry => write!(
                f,
                "the image's entry code differs from this kernel's, so it cannot take over in place"
            ),
            HandoverError::CmdLine => write!(f, "the command line is too long"),
            HandoverError::Layout(why) => write!(f, "{why}"),
            HandoverError::NoMemory(n) => {
                write!(f, "no memory to stage the new kernel ({n} bytes)")
            }
            HandoverError::Memory(e) => write!(f, "mapping the handover page: {e}"),
            HandoverError::Xen(what, e) => write!(f, "{what} failed: {e}"),
        }
    }
}
