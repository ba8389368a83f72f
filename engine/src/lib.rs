//! The xenstore engine: the complete xenstored protocol as pure logic (`no_std + alloc`, no
//! unsafe, no I/O). Requests go in as bytes per connection; replies and watch events come out
//! as bytes per connection.
//!
//! # Driving it
//! * [`Engine::new`]`(platform, config)` builds the initial tree (`/`, `/tool`,
//!   `/tool/xenstored`, perms `n0`). The host implements [`Platform`]: ring mapping and event
//!   channel binding on INTRODUCE/RELEASE, domain existence, a millisecond clock, a log.
//! * Connections are [`ConnId`]s. A unix-socket host calls [`Engine::new_connection`]`(0)` per
//!   client (dom0, privileged). Domain ring connections are created by INTRODUCE (from dom0's
//!   request, or by the host calling [`Engine::introduce`], e.g. for dom0's own ring at start):
//!   the engine allocates the id and hands it to [`Platform::introduce`].
//! * Input: [`Engine::feed`]`(conn, bytes)` processes every complete request (partial ones are
//!   kept). `Err(ConnError::Proto)` means the header announced more than 4096 bytes: close the
//!   socket, or set the ring's error field; the connection ignores further input until
//!   [`Engine::reset_connection`]. Only feed while [`Engine::wants_input`] is true
//!   (outstanding-request quota and write-rate limit give back-pressure).
//! * Output: [`Engine::take_ready`] lists connections with new output;
//!   [`Engine::output_into`] copies as much as fits into a buffer (ring free space), or
//!   [`Engine::output_all`] takes everything (sockets).
//! * Domains: [`Engine::domain_shutdown`] (shut down or crashed: `@releaseDomain` once) and
//!   [`Engine::domain_gone`] (dying/destroyed: connection torn down, owned nodes removed) are
//!   what the kernel's VIRQ_DOM_EXC scan calls. [`Engine::tick`] expires old watch events.
//! * Rings: at INTRODUCE the host calls [`ring::reset`]`(page, engine.domain_features(domid))`
//!   and notifies; then [`ring::service`]`(engine, conn, page)` on every event from the guest
//!   and whenever `take_ready` lists the connection; notify the guest if it says so.
//! * [`Engine::check`] verifies the store (CONTROL `check` uses it).
//! * Live update: [`Engine::dump`] writes the whole state as Xen's xenstore migration
//!   stream; [`Engine::restore`] rebuilds an engine from one (refusing a malformed stream
//!   with a [`RestoreError`]) and hands each ring to [`Platform::adopt`]
//!   (`docs/live-update.md`).
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
extern crate alloc;

mod domain;
mod engine;
pub mod path;
pub mod perms;
pub mod quota;
/// The ring transport (`xenstore_domain_interface`).
pub mod ring;
mod store;
mod stream;
mod transaction;
pub mod tree;
pub mod wire;
mod wrl;

pub use domain::{Platform, FEATURES, FEATURE_ERROR, FEATURE_RECONNECTION, FEATURE_WATCHDEPTH};
pub use engine::{check_image, Config, ConnError, Counters, DomainFigures, Engine};
pub use quota::Quotas;
pub use stream::RestoreError;
pub use wire::Error;

/// Identifies one connection of the engine.
pub type ConnId = usize;

#[cfg(test)]
mod tests;
