//! The kernel command line (`start_info.cmd_line`, from `cmdline =` in the xl config or
//! `--event N` from init-xenstore-domain), parsed into [`Options`]. Words are separated by
//! whitespace; options are `word`, `key=value` or `--key value`. Unknown words are counted
//! and otherwise ignored (init-xenstore-domain may pass options this kernel does not use).
//!
//! Xenstore stub options (C xenstored's names): `--event N`, `--priv-domid N`,
//! `-Q|--quota NAME=VALUE` (hard quota, names as CONTROL `quota`), `-V|--verbose` (debug
//! log level); `--live-update` (added by the kernel this one replaced: the boot module is its
//! state stream). Guest-test modes: `ring-abuse=index|header|flood`, `xsfill`, `lu-client`
//! (docs/stub-domain.md, docs/live-update.md).

use crate::console::Level;
use xenstore_engine::quota::NAMES as QUOTA_NAMES;

/// How the `ring-abuse` test guest misbehaves on its own xenstore ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingAbuse {
    /// Writes request indices more than a ring apart (ring error RINGIDX expected).
    Index,
    /// Sends a header announcing more than 4096 payload bytes (ring error PROTO expected).
    Header,
    /// Writes requests flat out and never reads a reply (back-pressure expected).
    Flood,
}

impl RingAbuse {
    fn parse(s: &str) -> Option<RingAbuse> {
        match s {
            "index" => Some(RingAbuse::Index),
            "header" => Some(RingAbuse::Header),
            "flood" => Some(RingAbuse::Flood),
            _ => None,
        }
    }
}

/// The word a replaced kernel adds to its successor's command line.
pub const LIVE_UPDATE_WORD: &str = "--live-update";

/// `cmdline` for the kernel that replaces this one: its words without any
/// [`LIVE_UPDATE_WORD`], then `--live-update=<stopped_ns>` (the Xen system time at which
/// this kernel stopped serving, for the next one to report the store's unavailability).
pub fn next_kernel(cmdline: &str, stopped_ns: u64) -> alloc::string::String {
    let mut out = alloc::string::String::new();
    for w in cmdline
        .split_ascii_whitespace()
        .filter(|&w| w.split('=').next() != Some(LIVE_UPDATE_WORD))
    {
        out.push_str(w);
        out.push(' ');
    }
    out.push_str(&alloc::format!("{LIVE_UPDATE_WORD}={stopped_ns}"));
    out
}

/// Parsed command-line options (parsed before the heap exists: nothing here allocates).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// `demo`: run the learning demo, then power off.
    pub demo: bool,
    /// `panic`: panic deliberately after boot (tests the panic path).
    pub panic: bool,
    /// `fault`: read the unmapped page 0 after boot (tests the fatal-trap report).
    pub fault: bool,
    /// `xsclient`: run the xenstore-client demo over the domain's own store ring.
    pub xsclient: bool,
    /// `xsfill`: try to make the xenstore server hold as much as possible (a test guest).
    pub xsfill: bool,
    /// `lu-client`: use the store while the stub is live-updated (a test guest).
    pub lu_client: bool,
    /// `loglevel=error|warn|info|debug`.
    pub log_level: Level,
    /// `--event N`: the event channel dom0's xenstore ring uses (xenstore stub mode).
    pub event: Option<u32>,
    /// `--priv-domid N`: a second privileged domain (xenstore stub mode).
    pub priv_domid: Option<u32>,
    /// `-Q|--quota NAME=VALUE`: quota overrides, indexed like the engine's quota `NAMES`.
    pub quotas: [Option<u32>; QUOTA_NAMES.len()],
    /// `ring-abuse=MODE`: run the misbehaving xenstore-client test.
    pub ring_abuse: Option<RingAbuse>,
    /// `--live-update[=NS]`: this kernel replaces a running stub; the boot module is its
    /// state, NS the system time at which the previous kernel stopped serving (0 unknown).
    pub live_update: Option<u64>,
    /// `net`: the learning demo on the network (ping, TCP echo, HTTP page) until shutdown.
    pub net: bool,
    /// `ip=A.B.C.D/PREFIX`: a static IPv4 address (without it: DHCP).
    pub ip: Option<([u8; 4], u8)>,
    /// `gw=A.B.C.D`: the default gateway with a static address.
    pub gw: Option<[u8; 4]>,
    /// `--metrics PORT`: the stub serves `GET /metrics` and `GET /status` on this TCP port
    /// of its vif (off without it).
    pub metrics: Option<u16>,
    /// `--metrics-allow CIDR[,CIDR...]`: the sources the metrics endpoint answers (at most
    /// [`MAX_ALLOW`]; none: nobody).
    pub metrics_allow: [Option<([u8; 4], u8)>; MAX_ALLOW],
    /// Words that were not understood (or had a bad value).
    pub unknown: usize,
}

/// Networks `--metrics-allow` may name.
pub const MAX_ALLOW: usize = 8;

/// Parses `A.B.C.D`.
pub fn parse_ipv4(s: &str) -> Option<[u8; 4]> {
    let mut a = [0u8; 4];
    let mut parts = s.split('.');
    for b in a.iter_mut() {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        *b = p.parse().ok()?;
    }
    parts.next().is_none().then_some(a)
}

/// Parses `A.B.C.D/PREFIX` (prefix 0..=32).
pub fn parse_cidr(s: &str) -> Option<([u8; 4], u8)> {
    let (addr, prefix) = s.split_once('/')?;
    let prefix = prefix.parse::<u8>().ok().filter(|&p| p <= 32)?;
    Some((parse_ipv4(addr)?, prefix))
}

impl Default for Options {
    fn default() -> Options {
        Options {
            demo: false,
            panic: false,
            fault: false,
            xsclient: false,
            xsfill: false,
            lu_client: false,
            log_level: Level::Info,
            event: None,
            priv_domid: None,
            quotas: [None; QUOTA_NAMES.len()],
            ring_abuse: None,
            live_update: None,
            net: false,
            ip: None,
            gw: None,
            metrics: None,
            metrics_allow: [None; MAX_ALLOW],
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
                "xsclient" if inline.is_none() => o.xsclient = true,
                "xsfill" if inline.is_none() => o.xsfill = true,
                "lu-client" if inline.is_none() => o.lu_client = true,
                "net" if inline.is_none() => o.net = true,
                "ip" => match inline.and_then(parse_cidr) {
                    Some(c) => o.ip = Some(c),
                    None => o.unknown += 1,
                },
                "gw" => match inline.and_then(parse_ipv4) {
                    Some(a) => o.gw = Some(a),
                    None => o.unknown += 1,
                },
                LIVE_UPDATE_WORD => match inline.map_or(Some(0), |v| v.parse().ok()) {
                    Some(ns) => o.live_update = Some(ns),
                    None => o.unknown += 1,
                },
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
                "--priv-domid" => {
                    let v = inline.or_else(|| words.next());
                    match v.and_then(|v| v.parse::<u32>().ok()) {
                        Some(d) => o.priv_domid = Some(d),
                        None => o.unknown += 1,
                    }
                }
                "-Q" | "--quota" if inline.is_none() => {
                    if !o.set_quota(words.next()) {
                        o.unknown += 1;
                    }
                }
                "-V" | "--verbose" if inline.is_none() => o.log_level = Level::Debug,
                "--metrics" => {
                    let v = inline.or_else(|| words.next());
                    match v.and_then(|v| v.parse::<u16>().ok()).filter(|&p| p != 0) {
                        Some(p) => o.metrics = Some(p),
                        None => o.unknown += 1,
                    }
                }
                "--metrics-allow" => {
                    // No allocation: the command line is parsed before the heap exists.
                    let v = inline.or_else(|| words.next()).unwrap_or_default();
                    let mut nets = [None; MAX_ALLOW];
                    let mut ok = true;
                    for (i, part) in v.split(',').enumerate() {
                        match (nets.get_mut(i), parse_cidr(part)) {
                            (Some(slot), Some(net)) => *slot = Some(net),
                            _ => ok = false,
                        }
                    }
                    if ok {
                        o.metrics_allow = nets;
                    } else {
                        o.unknown += 1;
                    }
                }
                "ring-abuse" => match inline.and_then(RingAbuse::parse) {
                    Some(m) => o.ring_abuse = Some(m),
                    None => o.unknown += 1,
                },
                _ => o.unknown += 1,
            }
        }
        o
    }

    /// Records `NAME=VALUE` of a quota option; false if malformed or unknown.
    fn set_quota(&mut self, arg: Option<&str>) -> bool {
        let Some((name, value)) = arg.and_then(|a| a.split_once('=')) else {
            return false;
        };
        let (Some(i), Ok(v)) = (xenstore_engine::quota::index(name), value.parse::<u32>()) else {
            return false;
        };
        match self.quotas.get_mut(i) {
            Some(slot) => {
                *slot = Some(v);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_words() {
        let o = Options::parse("net ip=10.0.0.2/24 gw=10.0.0.1");
        assert!(o.net);
        assert_eq!(o.ip, Some(([10, 0, 0, 2], 24)));
        assert_eq!(o.gw, Some([10, 0, 0, 1]));
        assert_eq!(o.unknown, 0);
        for bad in [
            "ip=10.0.0.2",
            "ip=10.0.0.2/33",
            "ip=10.0.0/24",
            "ip=10.0.0.256/24",
            "ip=10.0.0.2.1/8",
            "ip=+1.0.0.2/8",
            "gw=1.2.3",
            "gw",
        ] {
            let o = Options::parse(bad);
            assert_eq!((o.unknown, o.ip, o.gw), (1, None, None), "{bad}");
        }
    }

    #[test]
    fn metrics_words() {
        let o = Options::parse(
            "--event 3 --metrics 9100 --metrics-allow 10.0.0.1/32,192.168.0.0/16 ip=10.0.0.5/24",
        );
        assert_eq!(o.metrics, Some(9100));
        assert_eq!(o.metrics_allow[0], Some(([10, 0, 0, 1], 32)));
        assert_eq!(o.metrics_allow[1], Some(([192, 168, 0, 0], 16)));
        assert_eq!(o.metrics_allow[2], None);
        assert_eq!(o.unknown, 0);
        assert_eq!(Options::parse("--metrics=80").metrics, Some(80));
        for bad in [
            "--metrics 0",
            "--metrics 70000",
            "--metrics",
            "--metrics-allow 10.0.0.1",
            "--metrics-allow 1.1.1.1/32,,2.2.2.2/32",
            "--metrics-allow 1.0.0.0/8,2.0.0.0/8,3.0.0.0/8,4.0.0.0/8,5.0.0.0/8,6.0.0.0/8,7.0.0.0/8,8.0.0.0/8,9.0.0.0/8",
        ] {
            let o = Options::parse(bad);
            assert_eq!((o.unknown, o.metrics, o.metrics_allow[0]), (1, None, None), "{bad}");
        }
    }

    #[test]
    fn the_next_kernel_gets_the_live_update_word_once() {
        assert_eq!(
            next_kernel("--event 3 -V", 42),
            "--event 3 -V --live-update=42"
        );
        assert_eq!(
            next_kernel("--event 3 --live-update=7  -V", 9),
            "--event 3 -V --live-update=9"
        );
        assert_eq!(
            Options::parse(&next_kernel("--event 3", 5)).live_update,
            Some(5)
        );
        assert_eq!(Options::parse("--live-update").live_update, Some(0));
        assert_eq!(Options::parse("--event 3").live_update, None);
        assert_eq!(Options::parse("--live-update=x").unknown, 1);
    }

    #[test]
    fn empty_line_gives_defaults() {
        assert_eq!(Options::parse(""), Options::default());
        assert_eq!(Options::parse("   "), Options::default());
    }

    #[test]
    fn demo_and_panic_flags() {
        let o = Options::parse("demo panic fault xsclient xsfill lu-client");
        assert!(o.demo && o.panic && o.fault && o.xsclient && o.xsfill && o.lu_client);
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
    fn stub_options() {
        let o = Options::parse("--event 3 --priv-domid 7 -Q memory=4096 --quota outstanding=5 -V");
        assert_eq!(o.event, Some(3));
        assert_eq!(o.priv_domid, Some(7));
        assert_eq!(o.log_level, Level::Debug);
        assert_eq!(o.unknown, 0);
        let at = |n: &str| QUOTA_NAMES.iter().position(|x| *x == n).unwrap();
        assert_eq!(o.quotas[at("memory")], Some(4096));
        assert_eq!(o.quotas[at("outstanding")], Some(5));
        assert_eq!(o.quotas.iter().flatten().count(), 2);
        let bad = Options::parse("-Q bogus=1 --quota nodes=x -Q --priv-domid z");
        assert_eq!(bad.quotas, [None; QUOTA_NAMES.len()]);
        assert_eq!(bad.priv_domid, None);
        assert_eq!(bad.unknown, 4);
    }

    #[test]
    fn ring_abuse_modes() {
        assert_eq!(
            Options::parse("ring-abuse=index").ring_abuse,
            Some(RingAbuse::Index)
        );
        assert_eq!(
            Options::parse("ring-abuse=header").ring_abuse,
            Some(RingAbuse::Header)
        );
        assert_eq!(
            Options::parse("ring-abuse=flood").ring_abuse,
            Some(RingAbuse::Flood)
        );
        let o = Options::parse("ring-abuse=other ring-abuse");
        assert_eq!(o.ring_abuse, None);
        assert_eq!(o.unknown, 2);
    }

    #[test]
    fn log_level() {
        assert_eq!(Options::parse("loglevel=debug").log_level, Level::Debug);
        assert_eq!(Options::parse("--loglevel warn").log_level, Level::Warn);
    }
}
