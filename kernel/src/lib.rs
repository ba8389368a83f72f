//! The ferrostore PV kernel: a Mini-OS-style no_std unikernel for Xen x86_64 PV guests.
//!
//! Modules follow the boot path (see docs/boot-path.md): `arch` (boot assembly, shared_info,
//! the context switch, the `IrqMutex` of `sync`), `start_info`, `hypercall`, `console`, `traps`,
//! `events`, `cmdline`, `mm` (also shared pages and thread stacks), `time`, `gnttab`,
//! `gntmap`, `sched`, then `boot` (the ordered bring-up), `demo`, `xenbus` (the kernel's own
//! xenstore client) and `xenstored` (the stub-domain service). Pure logic is compiled and
//! unit-tested on the host; everything touching Xen is `#[cfg(target_os = "none")]`. Unsafe
//! code lives only in `arch`, `hypercall` and `mm`; pages shared with Xen or other domains are
//! reached through `mm::SharedPage`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod cmdline;
pub mod console;
pub mod events;
pub mod gnttab;
pub mod logsink;
pub mod ninep;
pub mod sched;
pub mod time;
pub mod traps;
pub mod xenbus;
pub mod xenstored;

#[cfg(test)]
mod test_host;

#[cfg(target_os = "none")]
pub mod boot;
#[cfg(all(target_os = "none", feature = "demo"))]
pub mod demo;
#[cfg(target_os = "none")]
pub mod gntmap;
#[cfg(target_os = "none")]
pub use xen_pv::{arch, sync};
pub use xen_pv::{hypercall, mm, shared_info, start_info};
