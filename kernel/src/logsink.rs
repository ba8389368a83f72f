//! Log lines kept for the stub's log file: every log line, stamped with UTC time, goes into a
//! bounded queue of whole lines (the oldest are dropped and counted when the file falls
//! behind) that `xenstored::logdev` drains into the file. While the file is being written,
//! the console gets only warnings and errors; before that (and on Xen before 4.19, which gives
//! the stub no 9pfs device, where no line is kept) it gets every line, as always.

use alloc::collections::VecDeque;
use alloc::format;
use alloc::vec::Vec;
use core::fmt::Write;

/// Bytes of log lines held for the file.
pub const QUEUE_BYTES: usize = 64 * 1024;

/// A bounded queue of whole lines.
pub struct LineQueue {
    buf: VecDeque<u8>,
    cap: usize,
    dropped: u64,
}

impl LineQueue {
    /// An empty queue holding at most `cap` bytes, allocated at once (so the heap does not
    /// move as it fills).
    pub fn new(cap: usize) -> LineQueue {
        LineQueue {
            buf: VecDeque::with_capacity(cap),
            cap,
            dropped: 0,
        }
    }

    /// Adds `line` (which ends with `\n`; one over the cap is cut), dropping the oldest lines
    /// to make room.
    pub fn push_line(&mut self, line: &[u8]) {
        let line = line.get(..self.cap).unwrap_or(line);
        while self.buf.len() + line.len() > self.cap && !self.buf.is_empty() {
            let end = self
                .buf
                .iter()
                .position(|&b| b == b'\n')
                .map_or(self.buf.len(), |i| i + 1);
            self.buf.drain(..end);
            self.dropped += 1;
        }
        self.buf.extend(line);
    }

    /// Whole lines from the front, at most `max` bytes (the first line alone if it is
    /// longer), preceded by a note of how many lines were dropped since the last take.
    pub fn take(&mut self, max: usize) -> Vec<u8> {
        let mut out = Vec::new();
        if self.dropped > 0 {
            let _ = writeln!(
                Bytes(&mut out),
                "[WARN] log: {} line(s) dropped: the log file fell behind",
                self.dropped
            );
            self.dropped = 0;
        }
        let room = max.saturating_sub(out.len());
        let mut end = 0;
        for (i, &b) in self.buf.iter().enumerate().take(room) {
            if b == b'\n' {
                end = i + 1;
            }
        }
        if end == 0 && out.is_empty() {
            end = self.buf.len().min(max);
        }
        out.extend(self.buf.drain(..end));
        out
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty() && self.dropped == 0
    }
}

/// `fmt::Write` into a byte vector.
struct Bytes<'a>(&'a mut Vec<u8>);

impl Write for Bytes<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// `secs` since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC), with `nsec` as milliseconds.
pub fn utc_stamp(secs: u64, nsec: u32) -> alloc::string::String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        nsec / 1_000_000
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(target_os = "none")]
pub use kernel::*;

#[cfg(target_os = "none")]
mod kernel {
    use super::{utc_stamp, LineQueue, QUEUE_BYTES};
    use crate::console::Level;
    use crate::sync::IrqMutex;
    use crate::time;
    use alloc::vec::Vec;
    use core::fmt;
    use core::sync::atomic::{AtomicBool, Ordering};

    static QUEUE: IrqMutex<Option<LineQueue>> = IrqMutex::new(None);
    static FILE_ACTIVE: AtomicBool = AtomicBool::new(false);

    /// Starts keeping log lines for a log file (the stub on Xen 4.19+, from boot on).
    pub fn capture() {
        *QUEUE.lock() = Some(LineQueue::new(QUEUE_BYTES));
    }

    /// Says whether a log file is being written: while it is, the console gets only warnings
    /// and errors.
    pub fn set_file_active(active: bool) {
        FILE_ACTIVE.store(active, Ordering::Relaxed);
    }

    /// True while a log file is being written.
    pub fn file_active() -> bool {
        FILE_ACTIVE.load(Ordering::Relaxed)
    }

    /// True when a line of `level` also goes to the console.
    pub fn to_console(level: Level) -> bool {
        level <= Level::Warn || !FILE_ACTIVE.load(Ordering::Relaxed)
    }

    /// Keeps one log line for the file, if lines are being kept.
    pub fn push(level: Level, args: fmt::Arguments<'_>) {
        if QUEUE.lock().is_none() {
            return;
        }
        let (secs, nsec) = time::wallclock();
        let line = alloc::format!("{} [{}] {}\n", utc_stamp(secs, nsec), level.tag(), args);
        if let Some(q) = QUEUE.lock().as_mut() {
            q.push_line(line.as_bytes());
        }
    }

    /// Whole queued lines, at most `max` bytes.
    pub fn take(max: usize) -> Vec<u8> {
        QUEUE.lock().as_mut().map_or_else(Vec::new, |q| q.take(max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_lines_are_taken_and_the_oldest_dropped() {
        let mut q = LineQueue::new(20);
        q.push_line(b"aaaa\n");
        q.push_line(b"bbbbbb\n");
        assert_eq!(q.take(9), b"aaaa\n");
        assert_eq!(q.take(100), b"bbbbbb\n");
        assert!(q.is_empty());
        q.push_line(b"0123456789\n");
        q.push_line(b"abcdefghij\n");
        assert_eq!(
            q.take(200),
            b"[WARN] log: 1 line(s) dropped: the log file fell behind\nabcdefghij\n"
        );
        // A line longer than `max` is taken in pieces; one longer than the queue is cut.
        q.push_line(b"0123456789\n");
        assert_eq!(q.take(4), b"0123");
        assert_eq!(q.take(100), b"456789\n");
        q.push_line(&[b'x'; 50]);
        assert_eq!(q.take(100).len(), 20);
    }

    #[test]
    fn utc_stamps() {
        assert_eq!(utc_stamp(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            utc_stamp(951_782_400, 5_000_000),
            "2000-02-29T00:00:00.005Z"
        );
        assert_eq!(
            utc_stamp(1_796_529_599, 999_999_999),
            "2026-12-06T03:59:59.999Z"
        );
    }
}
