//! The ferrostore PV kernel: a Mini-OS-style no_std unikernel for Xen x86_64 PV guests, built
//! on the privileged crate `xen-pv` without a line of `unsafe`.
//!
//! Modules follow the boot path (see docs/boot-path.md): from `xen-pv`, re-exported here,
//! `arch` (boot assembly, shared_info, entry points, the context switch, the `IrqMutex` of
//! `sync`), `start_info`, `hypercall` and `mm` (also shared pages and thread stacks); then
//! `console`, `traps`, `events`, `cmdline`, `time`, `gnttab`, `gntmap`, `sched`, `boot` (the
//! ordered bring-up), `logsink` and `ninep` (the stub's log file), `xenstored` (the
//! stub-domain service), and in the demo image `demo` and `xenbus` (the kernel's own xenstore
//! client). Pure logic is compiled and unit-tested on the host; everything touching Xen is
//! `#[cfg(target_os = "none")]`. Pages shared with Xen or other domains are reached through
//! `mm::SharedPage`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod cmdline;
pub mod console;
pub mod events;
pub mod gnttab;
pub mod logsink;
pub mod net;
pub mod netfront;
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
pub use xen_pv::{handover, hypercall, mm, shared_info, start_info};
