//! The PV console: a driver for the `xencons_interface` ring shared with xenconsoled (found via
//! `start_info.console`), `print!`/`println!` and levelled log macros on top of it. Output turns
//! `\n` into `\r\n`, notifies the backend over the console event channel, and sleeps on that
//! channel instead of dropping bytes when the 2 KiB ring is full — unless the backend
//! consumes nothing for [`STALL_NS`] (no xenconsoled yet), then bytes are dropped and counted
//! until it reads again, so the kernel never hangs on its console.

/// Log levels, most severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
}

impl Level {
    /// The tag printed in front of a log line.
    pub fn tag(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    }

    /// Parses `error`, `warn`, `info` or `debug`.
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "error" => Some(Level::Error),
            "warn" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" => Some(Level::Debug),
            _ => None,
        }
    }
}

/// Bytes of the guest→backend ring.
pub const OUT_RING_SIZE: u32 = 2048;

/// How many bytes fit in the output ring given its indices (free-running u32 counters).
pub fn out_space(cons: u32, prod: u32) -> u32 {
    OUT_RING_SIZE.saturating_sub(prod.wrapping_sub(cons))
}

/// Feeds `s` to `emit` with every `\n` turned into `\r\n` (what terminals on the console
/// backend expect).
pub fn crlf(s: &str, mut emit: impl FnMut(&[u8])) {
    for chunk in s.split_inclusive('\n') {
        match chunk.strip_suffix('\n') {
            Some(line) => {
                emit(line.as_bytes());
                emit(b"\r\n");
            }
            None => emit(chunk.as_bytes()),
        }
    }
}

/// How long a writer waits for a backend that consumes nothing before it drops output (for
/// example a xenstore stub domain whose xenconsoled cannot start until it serves xenstore).
pub const STALL_NS: u64 = 5_000_000_000;

/// The longest a writer sleeps on a full ring before it looks again.
pub const WAIT_POLL_NS: u64 = 10_000_000;

/// Decides, each time the output ring is found full, whether to keep waiting for the backend
/// or drop the byte: a writer waits as long as the backend makes progress, gives up after
/// [`STALL_NS`] without any, and then drops at once until the backend consumes again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StallDetector {
    /// `out_cons` when the backend was declared stalled.
    stalled_at: Option<u32>,
    /// The current wait: `out_cons` and the time it was first seen.
    wait: Option<(u32, u64)>,
}

impl StallDetector {
    /// A detector with no history.
    pub const fn new() -> StallDetector {
        StallDetector {
            stalled_at: None,
            wait: None,
        }
    }

    /// The ring is full and the backend has consumed up to `cons` at `now_ns`: true to keep
    /// waiting, false to drop the byte.
    pub fn ring_full(&mut self, cons: u32, now_ns: u64) -> bool {
        if let Some(c) = self.stalled_at {
            if c == cons {
                return false;
            }
            self.stalled_at = None;
        }
        match self.wait {
            Some((c, since)) if c == cons => {
                if now_ns.saturating_sub(since) < STALL_NS {
                    return true;
                }
                self.stalled_at = Some(cons);
                self.wait = None;
                false
            }
            _ => {
                self.wait = Some((cons, now_ns));
                true
            }
        }
    }

    /// A byte went into the ring: any wait is over.
    pub fn progressed(&mut self) {
        self.wait = None;
    }
}

#[cfg(target_os = "none")]
pub use kernel::*;

#[cfg(target_os = "none")]
mod kernel {
    use super::{crlf, out_space, Level, StallDetector, OUT_RING_SIZE, WAIT_POLL_NS};
    use crate::events::{self, Port};
    use crate::hypercall;
    use crate::mm::SharedPage;
    use crate::start_info::StartInfo;
    use crate::sync::IrqMutex;
    use crate::time;
    use core::fmt::{self, Write};
    use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};

    use xen_pv::io::{CONS_OUT as OUT, CONS_OUT_CONS as OUT_CONS, CONS_OUT_PROD as OUT_PROD};

    struct Ring {
        page: SharedPage,
        port: Port,
        stall: StallDetector,
    }

    impl Ring {
        fn notify(&self) {
            // Nothing useful can be done if the notification fails; the bytes stay in the ring.
            let _ = events::send(self.port);
        }

        fn put(&mut self, bytes: &[u8]) {
            let page = self.page;
            let mut prod = page.atomic_load_u32(OUT_PROD, Ordering::Relaxed);
            'bytes: for &b in bytes {
                loop {
                    let cons = page.atomic_load_u32(OUT_CONS, Ordering::Acquire);
                    if out_space(cons, prod) > 0 {
                        break;
                    }
                    if !self.stall.ring_full(cons, time::now_ns()) {
                        DROPPED.fetch_add(1, Ordering::Relaxed);
                        continue 'bytes;
                    }
                    // Ring full: publish, kick the backend and sleep until it signals that it
                    // consumed (xenconsoled notifies after reading) or a poll interval passes.
                    // Sleeping, not yielding: a writer spinning on yield takes the CPU from
                    // the very backend it waits for when many domains share few CPUs.
                    FULL_WAITS.fetch_add(1, Ordering::Relaxed);
                    SharedPage::fence();
                    page.atomic_store_u32(OUT_PROD, prod, Ordering::Release);
                    events::clear_pending(self.port);
                    self.notify();
                    let cons_now = page.atomic_load_u32(OUT_CONS, Ordering::Acquire);
                    if out_space(cons_now, prod) == 0 {
                        let deadline = time::now_ns().saturating_add(WAIT_POLL_NS);
                        if hypercall::sched_poll(self.port, deadline).is_err() {
                            hypercall::sched_yield();
                        }
                    }
                }
                let slot = (prod & (OUT_RING_SIZE - 1)) as usize;
                page.write_u8(OUT + slot, b);
                prod = prod.wrapping_add(1);
                self.stall.progressed();
            }
            SharedPage::fence();
            page.atomic_store_u32(OUT_PROD, prod, Ordering::Release);
        }
    }

    struct Writer<'a>(&'a mut Ring);

    impl Write for Writer<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            crlf(s, |bytes| self.0.put(bytes));
            Ok(())
        }
    }

    static CONSOLE: IrqMutex<Option<Ring>> = IrqMutex::new(None);
    static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
    static FULL_WAITS: AtomicU32 = AtomicU32::new(0);
    static DROPPED: AtomicU32 = AtomicU32::new(0);

    /// Bytes dropped because the backend consumed nothing for [`super::STALL_NS`].
    pub fn dropped_bytes() -> u32 {
        DROPPED.load(Ordering::Relaxed)
    }

    /// How many times a writer found the output ring full and waited for the backend.
    pub fn full_waits() -> u32 {
        FULL_WAITS.load(Ordering::Relaxed)
    }

    /// Finds the console ring of `si` and starts using it.
    pub fn init(si: &StartInfo) {
        *CONSOLE.lock() = Some(Ring {
            page: SharedPage::console(si),
            port: si.console_evtchn,
            stall: StallDetector::new(),
        });
    }

    /// Sets the most verbose level that is printed.
    pub fn set_level(level: Level) {
        LEVEL.store(level as u8, Ordering::Relaxed);
    }

    /// True when messages of `level` are printed.
    pub fn enabled(level: Level) -> bool {
        level as u8 <= LEVEL.load(Ordering::Relaxed)
    }

    /// Formats `args` onto the console and notifies the backend.
    pub fn print_fmt(args: fmt::Arguments<'_>) {
        let mut guard = CONSOLE.lock();
        if let Some(ring) = guard.as_mut() {
            // Writer never fails.
            let _ = Writer(ring).write_fmt(args);
            ring.notify();
        }
    }

    /// One log line: kept for the log file, and printed unless the file takes it alone.
    pub fn log_fmt(level: Level, args: fmt::Arguments<'_>) {
        crate::logsink::push(level, args);
        if crate::logsink::to_console(level) {
            print_fmt(format_args!("[{}] {}\n", level.tag(), args));
        }
    }

    /// True when the backend has consumed every byte written (or there is no console).
    pub fn drained() -> bool {
        match CONSOLE.try_lock() {
            Some(guard) => guard.as_ref().is_none_or(|ring| {
                ring.page.atomic_load_u32(OUT_CONS, Ordering::Acquire)
                    == ring.page.atomic_load_u32(OUT_PROD, Ordering::Acquire)
            }),
            None => false,
        }
    }

    /// Output for the panic and fault paths: like [`print_fmt`], but prints nothing instead of
    /// re-entering the lock when the fault hit while it was held.
    pub fn emergency_fmt(args: fmt::Arguments<'_>) {
        if let Some(mut guard) = CONSOLE.try_lock() {
            if let Some(ring) = guard.as_mut() {
                let _ = Writer(ring).write_fmt(args);
                ring.notify();
            }
        }
    }
}

/// Prints to the PV console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::print_fmt(format_args!($($arg)*)) };
}

/// Prints a line to the PV console.
#[macro_export]
macro_rules! println {
    () => { $crate::console::print_fmt(format_args!("\n")) };
    ($($arg:tt)*) => {
        $crate::console::print_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Logs a line at `level` (`[LEVEL] message`) if that level is enabled: to the console, and
/// to the stub's log file once it has one (see [`logsink`](crate::logsink)).
#[macro_export]
macro_rules! log {
    ($level:expr, $($arg:tt)*) => {
        if $crate::console::enabled($level) {
            $crate::console::log_fmt($level, format_args!($($arg)*))
        }
    };
}

/// Logs at error level.
#[macro_export]
macro_rules! log_error { ($($arg:tt)*) => { $crate::log!($crate::console::Level::Error, $($arg)*) }; }
/// Logs at warning level.
#[macro_export]
macro_rules! log_warn { ($($arg:tt)*) => { $crate::log!($crate::console::Level::Warn, $($arg)*) }; }
/// Logs at info level.
#[macro_export]
macro_rules! log_info { ($($arg:tt)*) => { $crate::log!($crate::console::Level::Info, $($arg)*) }; }
/// Logs at debug level.
#[macro_export]
macro_rules! log_debug { ($($arg:tt)*) => { $crate::log!($crate::console::Level::Debug, $($arg)*) }; }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_space_follows_free_running_indices() {
        assert_eq!(out_space(0, 0), 2048);
        assert_eq!(out_space(10, 2058), 0);
        assert_eq!(out_space(u32::MAX - 5, 10), 2048 - 16);
    }

    #[test]
    fn waits_as_long_as_the_backend_progresses() {
        let mut d = StallDetector::new();
        assert!(d.ring_full(0, 1));
        assert!(d.ring_full(0, STALL_NS));
        // Progress restarts the clock, however long the whole wait has been.
        assert!(d.ring_full(100, 3 * STALL_NS));
        assert!(d.ring_full(100, 4 * STALL_NS - 1));
    }

    #[test]
    fn drops_after_a_stall_until_the_backend_consumes_again() {
        let mut d = StallDetector::new();
        assert!(d.ring_full(7, 1_000));
        assert!(!d.ring_full(7, 1_000 + STALL_NS));
        // Stalled: no more waiting while nothing is consumed, even in a new wait.
        d.progressed();
        assert!(!d.ring_full(7, 2_000 + STALL_NS));
        // The backend came back: wait again, with a fresh stall clock.
        assert!(d.ring_full(8, 3 * STALL_NS));
        assert!(d.ring_full(8, 4 * STALL_NS - 1));
        assert!(!d.ring_full(8, 4 * STALL_NS));
    }

    #[test]
    fn each_wait_starts_its_own_clock() {
        let mut d = StallDetector::new();
        assert!(d.ring_full(5, 0));
        d.progressed();
        // Same cons much later, but a new wait: not a stall yet.
        assert!(d.ring_full(5, 10 * STALL_NS));
        assert!(!d.ring_full(5, 11 * STALL_NS));
    }

    #[test]
    fn newlines_become_crlf() {
        let mut out = Vec::new();
        crlf("a\nbc\n\nd", |b| out.extend_from_slice(b));
        assert_eq!(out, b"a\r\nbc\r\n\r\nd");
        out.clear();
        crlf("", |b| out.extend_from_slice(b));
        assert!(out.is_empty());
    }

    #[test]
    fn levels_parse_and_order() {
        assert_eq!(Level::parse("debug"), Some(Level::Debug));
        assert_eq!(Level::parse("loud"), None);
        assert!(Level::Error < Level::Info);
        assert_eq!(Level::Warn.tag(), "WARN");
    }
}
