//! The boot path after `_start` (boot/head.S): `ferrostore_start` brings the kernel up in
//! order — start_info, console, shared_info, traps and callbacks, event channels, command
//! line, memory, time, grant tables, scheduler — then runs the mode the command line asks
//! for. Also the panic handler and the clean poweroff.

use crate::cmdline::Options;
#[cfg(feature = "demo")]
use crate::demo;
use crate::hypercall::{self, ShutdownReason};
use crate::{arch, console, events, gnttab, mm, println, sched, start_info, time, traps};
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

/// Kernel version shown in the banner (the live-update tests' second build says so).
pub const VERSION: &str = if cfg!(feature = "update-test") {
    concat!(env!("CARGO_PKG_VERSION"), "+update-test")
} else {
    env!("CARGO_PKG_VERSION")
};
/// How long poweroff/panic wait for xenconsoled to drain the console ring.
const CONSOLE_DRAIN_NS: u64 = 2_000_000_000;
/// Upper bound on the yields of that wait.
const CONSOLE_DRAIN_MAX_YIELDS: u32 = 1_000_000;

xen_pv::kernel_main!(start);

/// Rust entry, called by `_start` on the kernel's own stack with the start_info VA.
fn start(entry: arch::EntryStartInfo) -> ! {
    let si = match start_info::init(&entry) {
        Ok(si) => si,
        Err(_) => {
            // No console without start_info: try Xen's (works on debug hypervisors only).
            let _ = hypercall::console_io_write(b"ferrostore: invalid start_info, crashing\n");
            traps::crash();
        }
    };
    console::init(si);
    println!("ferrostore {VERSION}: PV kernel booted");
    if let Err(e) = arch::map_shared_info(si.shared_info_ma) {
        panic!(
            "mapping shared_info (MA {:#x}) failed: {e}",
            si.shared_info_ma
        );
    }
    traps::init();
    events::init();
    events::enable();
    let opts = Options::parse(si.cmd_line());
    console::set_level(opts.log_level);
    let layout = mm::init(si);
    if let Err(e) = arch::unmap_null_page() {
        crate::log_warn!("could not unmap page 0 (null guard): {e}");
    }
    time::init();
    // On Xen 4.19+ the stub gets a 9pfs device for its log file: from here on (the heap and
    // the clock are up) it keeps its log lines for it.
    if opts.event.is_some() && hypercall::xen_version() >= (4, 19) {
        crate::logsink::capture();
    }
    crate::log_info!("command line \"{}\"", si.cmd_line());
    crate::log_debug!(
        "start_info at {:#x}, shared_info mapped at {:#x}",
        entry.va(),
        arch::shared_info_va()
    );
    if opts.unknown > 0 {
        crate::log_warn!(
            "{} unrecognised command-line word(s) in \"{}\"",
            opts.unknown,
            si.cmd_line()
        );
    }
    let grants = match gnttab::init() {
        Ok(g) => g,
        Err(e) => panic!("grant table setup failed: {e}"),
    };
    crate::log_debug!(
        "memory: {} pages, heap {} pages, frame pool {} frames; grant table: {} of at most {} frames ({} entries)",
        layout.nr_pages,
        layout.heap_pages,
        layout.pool_frames,
        grants.frames,
        grants.max_frames,
        grants.entries
    );
    sched::init();
    #[cfg(feature = "demo")]
    run_demo_modes(&opts, si, &layout, &grants);
    if let Some(port) = opts.event {
        let state = match (opts.live_update, start_info::boot_module(si)) {
            (None, _) => None,
            (Some(_), Some(m)) => Some(m),
            (Some(_), None) => {
                panic!("--live-update without the previous kernel's state module")
            }
        };
        crate::xenstored::run(&opts, port, state);
    }
    if cfg!(feature = "demo") {
        println!("ferrostore: no mode on the command line (expected 'demo'); powering off");
    } else {
        println!(
            "ferrostore: this image is the xenstore stub (it needs --event N from init-xenstore-domain); the demo and test guests are ferrostore-demo.gz; powering off"
        );
    }
    poweroff();
}

/// The demo image's modes: the learning tour and the test guests; each powers off.
#[cfg(feature = "demo")]
fn run_demo_modes(
    opts: &Options,
    si: &start_info::StartInfo,
    layout: &mm::MemoryLayout,
    grants: &gnttab::GnttabInfo,
) {
    if opts.panic {
        panic!("deliberate panic requested by the 'panic' command-line option");
    }
    if opts.fault {
        println!("fault: reading unmapped page 0");
        let v = arch::read_null_page();
        panic!("reading page 0 did not fault (read {v:#x})");
    }
    if opts.demo {
        demo::run(si, layout, grants);
        poweroff();
    }
    if opts.xsclient {
        demo::xsclient::run(si);
        poweroff();
    }
    if opts.xsfill {
        demo::xsfill::run(si);
        poweroff();
    }
    if opts.lu_client {
        demo::lu_client::run(si);
        poweroff();
    }
    if let Some(mode) = opts.ring_abuse {
        demo::ring_abuse::run(si, mode);
        poweroff();
    }
    if opts.net {
        let addressing = match opts.ip {
            Some((addr, prefix)) => crate::net::stack::Addressing::Static {
                addr,
                prefix,
                gw: opts.gw,
            },
            None => crate::net::stack::Addressing::Dhcp,
        };
        demo::net::run(si, addressing);
        poweroff();
    }
}

/// Waits (bounded) until xenconsoled has read everything written to the console. The yield
/// count also bounds it, for a panic before shared_info (and so the clock) is mapped.
fn drain_console() {
    let deadline = time::now_ns() + CONSOLE_DRAIN_NS;
    for _ in 0..CONSOLE_DRAIN_MAX_YIELDS {
        if console::drained() || time::now_ns() >= deadline {
            break;
        }
        hypercall::sched_yield();
    }
}

/// Prints the final marker, lets the console drain and powers the domain off.
pub fn poweroff() -> ! {
    println!("ferrostore: poweroff");
    drain_console();
    loop {
        if let Err(e) = hypercall::sched_shutdown(ShutdownReason::Poweroff) {
            panic!("SCHEDOP_shutdown(poweroff) failed: {e}");
        }
    }
}

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    events::disable();
    if PANICKING.swap(true, Ordering::SeqCst) {
        console::emergency_fmt(format_args!("PANIC while panicking\n"));
        traps::crash();
    }
    match info.location() {
        Some(l) => console::emergency_fmt(format_args!(
            "PANIC: {} at {}:{}:{}\n",
            info.message(),
            l.file(),
            l.line(),
            l.column()
        )),
        None => console::emergency_fmt(format_args!("PANIC: {}\n", info.message())),
    }
    drain_console();
    traps::crash();
}
