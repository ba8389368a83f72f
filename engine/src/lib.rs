//! The xenstore engine: the complete xenstored protocol as pure logic.
#![no_std]
#![forbid(unsafe_code)]
extern crate alloc;
