//! The ferrostore PV kernel.
#![cfg_attr(not(test), no_std)]
