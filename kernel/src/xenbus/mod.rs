//! The kernel's xenstore client over its own store ring (`start_info.store_mfn` and
//! `store_evtchn`): [`client`] holds the protocol state (pure, host-tested; the stub's log
//! device uses it too); the kernel part, in the demo image's guests only,
//! maps the ring, lets any waiting thread pump it, and offers read, write, mkdir, rm,
//! directory, transactions (with EAGAIN retry) and watches.
//!
//! Waiting never holds a lock: a thread that needs a reply or a watch event waits on one
//! [`WaitQueue`](crate::sched::WaitQueue) whose condition pumps the ring under a short-lived
//! lock and checks for its result. The store port's event handler only wakes the queue. A
//! watch wait ([`read_watch`]) takes a deadline and a [`Cancel`] that another thread may fire
//! at any time: it sets a flag and wakes the queue, so the waiter returns `Cancelled` and
//! nothing stays locked (libxenstore's `xs_read_watch` cancellation deadlock cannot happen).

pub mod client;

#[cfg(all(target_os = "none", feature = "demo"))]
mod kernel;

#[cfg(all(target_os = "none", feature = "demo"))]
pub use kernel::*;
