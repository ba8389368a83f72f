//! The `ferrostore` kernel binary. On the kernel target the library supplies everything
//! (`_start` in boot/head.S, `boot::ferrostore_start`, the panic handler); on the host this is
//! only a pointer to the real build.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
use ferrostore_kernel as _;

#[cfg(not(target_os = "none"))]
fn main() {
    println!(
        "ferrostore-kernel is a Xen PV kernel: build it with scripts/build (target/xen/ferrostore)"
    );
}
