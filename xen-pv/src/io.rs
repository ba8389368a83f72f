//! Shared-ring layouts of Xen's PV I/O interfaces that the kernel drives itself (xen.git
//! `public/io/`): the console's `xencons_interface`. Pages are reached through `SharedPage`
//! at these fields' offsets, never through the types.

use core::mem::{offset_of, size_of};

/// `struct xencons_interface`: the guest→backend ring `out`, the backend→guest ring `in`, and
/// their free-running indices.
#[repr(C)]
pub struct XenconsInterface {
    pub input: [u8; 1024],
    pub output: [u8; 2048],
    pub in_cons: u32,
    pub in_prod: u32,
    pub out_cons: u32,
    pub out_prod: u32,
}
const _: () = assert!(size_of::<XenconsInterface>() == 3088);

/// Offset of the console's output ring.
pub const CONS_OUT: usize = offset_of!(XenconsInterface, output);
/// Offset of the console's output consumer index (the backend's).
pub const CONS_OUT_CONS: usize = offset_of!(XenconsInterface, out_cons);
/// Offset of the console's output producer index (ours).
pub const CONS_OUT_PROD: usize = offset_of!(XenconsInterface, out_prod);
