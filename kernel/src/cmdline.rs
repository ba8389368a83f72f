//! The kernel command line (`start_info.cmd_line`, from `cmdline =` in the xl config or
//! `--event N` from init-xenstore-domain), parsed into [`Options`]. Words are separated by
//! whitespace; options are `word`, `key=value` or `--key value`. Unknown words are counted
//! and otherwise ignored (init-xenstore-domain may pass options this kernel does not use).

use crate::console::Level;

/// Parsed command-line options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// `demo`: run the learning demo, then power off.
    pub demo: bool,
    /// `panic`: panic deliberately after boot (tests the panic path).
    pub panic: bool,
    /// `fault`: read the unmapped page 0 after boot (tests the fatal-trap report).
    pub fault: bool,
    /// `loglevel=error|warn|info|debug`.
    pub log_level: Level,
    /// `--event N`: the event channel dom0's xenstore ring uses (xenstore stub mode).
    pub event: Option<u32>,
    /// Words that were not understood (or had a bad value).
    pub unknown: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            demo: false,
            panic: false,
            fault: false,
            log_level: Level::Info,
            event: None,
            unknown: 0,
        }
    }
}

impl Options {
    /// Parses a command line; never fails (bad words are counted in `unknown`).
    pub fn parse(cmdline: &str) -> Options {
        let mut o = Options::default();
        let mut words = cmdline.split_ascii_whitespace();
        while let Some(w) = words.next() {
            let (key, inline) = match w.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (w, None),
            };
            match key {
                "demo" if inline.is_none() => o.demo = true,
                "panic" if inline.is_none() => o.panic = true,
                "fault" if inline.is_none() => o.fault = true,
                "loglevel" | "--loglevel" => {
                    let v = if key.starts_with("--") && inline.is_none() {
                        words.next()
                    } else {
                        inline
                    };
                    match v.and_then(Level::parse) {
                        Some(l) => o.log_level = l,
                        None => o.unknown += 1,
                    }
                }
                "--event" => {
                    let v = inline.or_else(|| words.next());
                    match v.and_then(|v| v.parse::<u32>().ok()) {
                        Some(p) => o.event = Some(p),
                        None => o.unknown += 1,
                    }
                }
                _ => o.unknown += 1,
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_line_gives_defaults() {
        assert_eq!(Options::parse(""), Options::default());
        assert_eq!(Options::parse("   "), Options::default());
    }

    #[test]
    fn demo_and_panic_flags() {
        let o = Options::parse("demo panic fault");
        assert!(o.demo && o.panic && o.fault);
        assert_eq!(o.unknown, 0);
    }

    #[test]
    fn stub_event_port_in_both_forms() {
        assert_eq!(Options::parse("--event 7").event, Some(7));
        assert_eq!(Options::parse("--event=12").event, Some(12));
        let o = Options::parse("--event 5 --internal-db");
        assert_eq!(o.event, Some(5));
        assert_eq!(o.unknown, 1);
    }

    #[test]
    fn bad_values_are_counted_not_fatal() {
        let o = Options::parse("--event x loglevel=loud demo=1");
        assert_eq!(o.event, None);
        assert_eq!(o.log_level, Level::Info);
        assert!(!o.demo);
        assert_eq!(o.unknown, 3);
        assert_eq!(Options::parse("--event").unknown, 1);
    }

    #[test]
    fn log_level() {
        assert_eq!(Options::parse("loglevel=debug").log_level, Level::Debug);
        assert_eq!(Options::parse("--loglevel warn").log_level, Level::Warn);
    }
}
