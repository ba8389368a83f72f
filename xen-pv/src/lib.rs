//! The privileged layer of the ferrostore PV kernel, and the only crate of the project with
//! `unsafe` code (each block with its `// SAFETY:` line): the boot assembly and the
//! architecture glue (`arch`: shared_info, the M2P, the trap frame, the context switch, the
//! event-upcall mask and the `IrqMutex` of `sync`), the Xen PV ABI and its hypercalls
//! (`hypercall`, `shared_info`, `start_info`, the console ring's layout in `io`), and memory (`mm`: the p2m, frames, page tables
//! through `mmu_update`, the heap, pages shared with Xen or other domains, grant mapping,
//! guarded thread stacks). The kernel crate builds on it with `#![forbid(unsafe_code)]`.
//! Pure parts are compiled and unit-tested on the host; everything touching Xen is
//! `#[cfg(target_os = "none")]`.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod context;
pub mod handover;
pub mod hypercall;
pub mod io;
pub mod mm;
pub mod shared_info;
pub mod start_info;

#[cfg(target_os = "none")]
pub mod arch;
#[cfg(target_os = "none")]
pub use arch::sync;
