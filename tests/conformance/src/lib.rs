//! Wire-level xenstore client used by the conformance, differential and benchmark tools.
//!
//! Everything here speaks the `xsd_sockmsg` protocol over a unix socket with no help from
//! libxenstore, so that malformed input can be sent byte for byte and every reply is seen
//! exactly as the server wrote it.
#![forbid(unsafe_code)]

pub mod client;
pub mod harness;
pub mod rng;
pub mod stats;
pub mod wire;

pub use client::{Client, XsResult};
pub use wire::{Msg, MsgType};
