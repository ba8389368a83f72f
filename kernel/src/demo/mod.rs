//! Demo mode (`cmdline = "demo"`, xen-config/hello.cfg): a guided tour that prints, one
//! greppable marker per line, what the boot path set up — start_info, Xen version, image and
//! memory layout, clock — then exercises it: a console burst larger than the ring, an `int3`
//! trapped and resumed, ten one-shot timer events, heap statistics, then the memory demo
//! (`memory.rs`: 100,000 heap alloc/free, grant self-map) and the thread demo (`threads.rs`:
//! event-channel ping-pong between two threads). The markers are listed in docs/boot-path.md
//! and asserted by tests/boot/platform-*.sh.

pub mod lu_client;
pub mod memory;
pub mod net;
pub mod ring_abuse;
pub mod threads;
pub mod xsclient;
pub mod xsfill;

use crate::gnttab::GnttabInfo;
use crate::hypercall;
use crate::mm::{self, MemoryLayout};
use crate::start_info::{StartInfo, MAGIC};
use crate::{arch, console, events, println, time, traps};
use core::fmt;

/// Lines of the console burst (about 4.5 KiB, more than twice the 2 KiB output ring).
pub const BURST_LINES: u32 = 48;
/// Timer events the demo waits for.
pub const TIMER_EVENTS: u64 = 10;
/// Interval between the demo's one-shot timers.
pub const TIMER_INTERVAL_NS: u64 = 10_000_000;

/// Runs the demo; returns when the caller should power off.
pub fn run(si: &StartInfo, layout: &MemoryLayout, grants: &GnttabInfo) {
    show_start_info(si);
    show_layout(layout, grants);
    show_time();
    console_burst();
    int3();
    timers();
    let (upcalls, unhandled) = events::stats();
    println!("events: {upcalls} upcalls, {unhandled} without handler");
    println!("heap: {}", mm::heap_stats());
    memory::run();
    threads::run();
    println!("demo: done");
}

fn show_start_info(si: &StartInfo) {
    println!(
        "start_info: magic {MAGIC}, memory {} MiB ({} pages), flags {:#x}, cmdline \"{}\"",
        si.memory_mib(),
        si.nr_pages,
        si.flags,
        si.cmd_line()
    );
    println!(
        "start_info: console mfn {:#x} port {}, store mfn {:#x} port {}, shared_info ma {:#x}",
        si.console_mfn, si.console_evtchn, si.store_mfn, si.store_evtchn, si.shared_info_ma
    );
    println!(
        "start_info: pt_base {:#x} ({} frames), mfn_list {:#x}, module {:#x}+{}",
        si.pt_base, si.nr_pt_frames, si.mfn_list, si.mod_start, si.mod_len
    );
    let (major, minor) = hypercall::xen_version();
    let extra = hypercall::xen_extraversion();
    let len = extra.iter().position(|&c| c == 0).unwrap_or(extra.len());
    println!(
        "xen: version {major}.{minor}{}",
        core::str::from_utf8(&extra[..len]).unwrap_or("")
    );
}

fn show_layout(layout: &MemoryLayout, grants: &GnttabInfo) {
    let img = arch::image_layout();
    println!(
        "layout: text {:#x}-{:#x} rodata {:#x}-{:#x} data {:#x}-{:#x} bss {:#x}-{:#x}",
        img.text.0,
        img.text.1,
        img.rodata.0,
        img.rodata.1,
        img.data.0,
        img.data.1,
        img.bss.0,
        img.bss.1
    );
    println!(
        "layout: boot stack {:#x}-{:#x}, shared_info at {:#x}",
        img.boot_stack.0, img.boot_stack.1, img.shared_info
    );
    crate::print!("{layout}");
    println!(
        "grant table: {} frames ({} entries), max {}",
        grants.frames, grants.entries, grants.max_frames
    );
}

fn show_time() {
    let (sec, nsec) = time::wallclock();
    println!(
        "time: system {} ns, wallclock {sec}.{nsec:09}",
        time::now_ns()
    );
}

/// The burst's lines, written by one `print!` so the backend hears of them only when the
/// ring is full or at the end.
struct Burst;

impl fmt::Display for Burst {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for i in 1..=BURST_LINES {
            writeln!(f, "console: burst line {i:02} of {BURST_LINES} {:.<72}", "")?;
        }
        Ok(())
    }
}

/// Writes more than the ring holds in one go: the driver must wait for ring space (it cannot
/// avoid it: nothing was published yet when the ring fills), losing nothing.
fn console_burst() {
    let waits = console::full_waits();
    let dropped = console::dropped_bytes();
    crate::print!("{Burst}");
    println!(
        "console: {BURST_LINES} lines in one write, waited for ring space {} times, {} bytes dropped",
        console::full_waits() - waits,
        console::dropped_bytes() - dropped
    );
}

/// One breakpoint: the handler must run once and return to the next instruction with the
/// event state unchanged (HYPERVISOR_iret path when events are enabled, iretq when masked).
fn int3_once(state: &str) {
    let before = traps::int3_count();
    let enabled = events::are_enabled();
    arch::breakpoint();
    if traps::int3_count() != before + 1 {
        panic!("int3 ({state}) did not reach the trap handler");
    }
    if events::are_enabled() != enabled {
        panic!("int3 ({state}) changed the event mask");
    }
    println!("int3: trapped and resumed, events still {state}");
}

fn int3() {
    int3_once("enabled");
    let were_enabled = events::disable();
    int3_once("masked");
    events::restore(were_enabled);
}

fn timers() {
    let start = time::now_ns();
    let base = time::timer_events();
    let were_enabled = events::disable();
    for i in 1..=TIMER_EVENTS {
        let deadline = start + i * TIMER_INTERVAL_NS;
        time::set_timer(deadline);
        while time::timer_events() < base + i {
            time::block_until(0);
        }
        let now = time::now_ns();
        println!("timer: event {i} at +{} us", (now - start) / 1000);
    }
    events::restore(were_enabled);
    println!(
        "timer: {TIMER_EVENTS} events in {} ms",
        (time::now_ns() - start) / 1_000_000
    );
}
