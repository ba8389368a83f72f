//! The stub's metrics endpoint (`--metrics PORT --metrics-allow CIDR,...`; off without
//! them): what `GET /metrics` (Prometheus text format) and `GET /status` (JSON) answer, and
//! the frame filter that gives a source outside the allow-list nothing, not even a TCP
//! reset. Counts only: no path or value of the store leaves the domain. Pure, host-tested;
//! `endpoint` serves it.

use crate::net::http::{Request, Response};
use crate::netfront::queues::Stats as NetStats;
use alloc::format;
use alloc::string::String;
use core::fmt::Write;
use xenstore_engine::{Counters, DomainFigures};

/// Domains (the lowest ids) given per-domain series: an answer stays under about 200 KiB.
pub const MAX_DOMAINS: usize = 256;

/// The stub's own figures beside the engine's.
#[derive(Clone, Copy, Debug, Default)]
pub struct Host {
    pub version: &'static str,
    pub uptime_ns: u64,
    pub heap_used: u64,
    pub heap_size: u64,
    pub lost_wakeups: u64,
    pub connections: u64,
    pub nodes: u64,
    pub scrapes: u64,
    /// Frames dropped by [`admit`].
    pub filtered: u64,
    pub net: NetStats,
}

/// Everything one answer reports.
pub struct Snapshot<'a> {
    pub counters: &'a Counters,
    pub domains: &'a [DomainFigures],
    pub host: Host,
}

/// The answer to one request: `/metrics` and `/status` to GET, 404 and 405 otherwise.
pub fn answer(req: Request<'_>, snap: &Snapshot<'_>) -> Response {
    match (req.method, req.path) {
        ("GET", "/metrics") => Response {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: prometheus(snap).into_bytes(),
        },
        ("GET", "/status") => Response {
            status: 200,
            content_type: "application/json",
            body: status(snap).into_bytes(),
        },
        ("GET", _) => Response::text(404, "not found: /metrics or /status\n"),
        _ => Response::text(405, "read-only: GET only\n"),
    }
}

/// A per-domain figure and its quota.
type Figure = fn(&DomainFigures) -> (u64, u64);

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The Prometheus text exposition of `s`.
pub fn prometheus(s: &Snapshot<'_>) -> String {
    let mut o = String::new();
    let c = s.counters;
    let h = &s.host;
    family(
        &mut o,
        "xenstore_requests_total",
        "counter",
        "Requests processed, by type.",
    );
    for (ty, n) in c.requests() {
        let _ = writeln!(o, "xenstore_requests_total{{type=\"{ty}\"}} {n}");
    }
    family(
        &mut o,
        "xenstore_errors_total",
        "counter",
        "Requests answered with an error, by name.",
    );
    for (e, n) in &c.errors {
        let _ = writeln!(o, "xenstore_errors_total{{error=\"{e}\"}} {n}");
    }
    family(
        &mut o,
        "xenstore_held_back_total",
        "counter",
        "Times a ring's input was held back, by reason.",
    );
    let _ = writeln!(
        o,
        "xenstore_held_back_total{{reason=\"outstanding\"}} {}",
        c.held_outstanding
    );
    let _ = writeln!(
        o,
        "xenstore_held_back_total{{reason=\"write-rate\"}} {}",
        c.held_rate
    );
    family(
        &mut o,
        "xenstore_lost_wakeups_total",
        "counter",
        "Rings found with work that no event announced.",
    );
    let _ = writeln!(o, "xenstore_lost_wakeups_total {}", h.lost_wakeups);
    let per_domain: [(&str, &str, Figure); 5] = [
        ("nodes", "Nodes a domain owns, and its quota.", |d| {
            (d.nodes, u64::from(d.quotas.nodes))
        }),
        ("watches", "Watches a domain holds, and its quota.", |d| {
            (d.watches, u64::from(d.quotas.watches))
        }),
        (
            "transactions",
            "Transactions a domain has open, and its quota.",
            |d| (d.transactions, u64::from(d.quotas.transactions)),
        ),
        (
            "memory_bytes",
            "Bytes charged to a domain, and its quota.",
            |d| (d.memory, u64::from(d.quotas.memory)),
        ),
        (
            "outstanding",
            "Replies and events queued for a domain, and its quota.",
            |d| (d.outstanding, u64::from(d.quotas.outstanding)),
        ),
    ];
    let shown = s.domains.get(..MAX_DOMAINS).unwrap_or(s.domains);
    for (what, help, get) in per_domain {
        let name = format!("xenstore_domain_{what}");
        family(&mut o, &name, "gauge", help);
        for d in shown {
            let _ = writeln!(o, "{name}{{domid=\"{}\"}} {}", d.domid, get(d).0);
        }
        let quota = match what.strip_suffix("_bytes") {
            Some(stem) => format!("xenstore_domain_{stem}_quota_bytes"),
            None => format!("{name}_quota"),
        };
        family(&mut o, &quota, "gauge", help);
        for d in shown {
            let _ = writeln!(o, "{quota}{{domid=\"{}\"}} {}", d.domid, get(d).1);
        }
    }
    for (name, kind, help, v) in [
        (
            "xenstore_domains",
            "gauge",
            "Domains the store knows.",
            s.domains.len() as u64,
        ),
        (
            "xenstore_domains_omitted",
            "gauge",
            "Domains beyond the first 256 (by id), left out of the per-domain series.",
            (s.domains.len() - shown.len()) as u64,
        ),
        ("xenstore_nodes", "gauge", "Nodes in the store.", h.nodes),
        (
            "xenstore_connections",
            "gauge",
            "Connections (rings and the stub's own).",
            h.connections,
        ),
        (
            "xenstore_heap_used_bytes",
            "gauge",
            "The stub's live heap.",
            h.heap_used,
        ),
        (
            "xenstore_heap_size_bytes",
            "gauge",
            "The stub's heap.",
            h.heap_size,
        ),
        (
            "xenstore_metrics_scrapes_total",
            "counter",
            "Requests this endpoint answered.",
            h.scrapes,
        ),
        (
            "xenstore_metrics_filtered_frames_total",
            "counter",
            "Frames dropped: from outside the allow-list.",
            h.filtered,
        ),
        (
            "xenstore_net_rx_packets_total",
            "counter",
            "Packets received on the vif.",
            h.net.rx_packets,
        ),
        (
            "xenstore_net_tx_packets_total",
            "counter",
            "Packets sent on the vif.",
            h.net.tx_packets,
        ),
        (
            "xenstore_net_rejected_total",
            "counter",
            "Backend responses refused as out of range.",
            h.net.rejected,
        ),
    ] {
        family(&mut o, name, kind, help);
        let _ = writeln!(o, "{name} {v}");
    }
    family(
        &mut o,
        "xenstore_uptime_seconds",
        "gauge",
        "Time since this kernel started.",
    );
    let _ = writeln!(
        o,
        "xenstore_uptime_seconds {}.{:03}",
        h.uptime_ns / 1_000_000_000,
        h.uptime_ns / 1_000_000 % 1000
    );
    family(&mut o, "xenstore_info", "gauge", "The server, as a label.");
    let _ = writeln!(
        o,
        "xenstore_info{{server=\"ferrostore\",version=\"{}\"}} 1",
        h.version
    );
    o
}

/// The `/status` JSON object of `s`.
pub fn status(s: &Snapshot<'_>) -> String {
    let h = &s.host;
    let requests: u64 = s.counters.requests().map(|(_, n)| n).sum();
    let errors: u64 = s.counters.errors.values().sum();
    format!(
        "{{\"server\":\"ferrostore\",\"version\":\"{}\",\"uptime_ms\":{},\"requests\":{requests},\"errors\":{errors},\"domains\":{},\"nodes\":{},\"connections\":{},\"heap_used\":{},\"heap_size\":{},\"lost_wakeups\":{},\"scrapes\":{}}}\n",
        h.version,
        h.uptime_ns / 1_000_000,
        s.domains.len(),
        h.nodes,
        h.connections,
        h.heap_used,
        h.heap_size,
        h.lost_wakeups,
        h.scrapes
    )
}

/// Whether `ip` is in `net`/`prefix`.
fn in_net(ip: [u8; 4], (net, prefix): ([u8; 4], u8)) -> bool {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0);
    u32::from_be_bytes(ip) & mask == u32::from_be_bytes(net) & mask
}

/// Whether the stub's stack may see `frame`: ARP, IPv4 from an allowed source, and DHCP
/// replies when `dhcp` (the address comes from DHCP); nothing else (no IPv6, no answer of
/// any kind to other sources).
pub fn admit(frame: &[u8], allow: &[([u8; 4], u8)], dhcp: bool) -> bool {
    let (Some(ethertype), Some(ip)) = (frame.get(12..14), frame.get(14..)) else {
        return false;
    };
    match ethertype {
        [0x08, 0x06] => true,
        [0x08, 0x00] => {
            let (Some(&ver_ihl), Some(&proto), Some(src)) = (ip.first(), ip.get(9), ip.get(12..16))
            else {
                return false;
            };
            let src = [src[0], src[1], src[2], src[3]];
            if allow.iter().any(|&n| in_net(src, n)) {
                return true;
            }
            let ihl = usize::from(ver_ihl & 0x0f) * 4;
            let ports = ip.get(ihl..ihl + 4);
            dhcp && proto == 17 && ports == Some(&[0, 67, 0, 68])
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
