//! The endpoint's answers and its frame filter.

use super::*;
use alloc::vec;
use alloc::vec::Vec;
use xenstore_engine::Quotas;

fn counters() -> Counters {
    let mut c = Counters::default();
    c.by_type[2] = 7; // READ
    c.by_type[11] = 3; // WRITE
    c.by_type[32] = 1; // beyond the named types
    c.errors.insert("ENOENT", 2);
    c.held_rate = 4;
    c
}

fn domains() -> Vec<DomainFigures> {
    vec![DomainFigures {
        domid: 3,
        nodes: 12,
        watches: 2,
        transactions: 1,
        memory: 900,
        outstanding: 0,
        quotas: Quotas::default(),
    }]
}

fn snapshot<'a>(c: &'a Counters, d: &'a [DomainFigures]) -> Snapshot<'a> {
    Snapshot {
        counters: c,
        domains: d,
        host: Host {
            version: "0.1.0",
            uptime_ns: 12_345_678_901,
            heap_used: 1000,
            heap_size: 5000,
            nodes: 40,
            connections: 3,
            scrapes: 9,
            ..Host::default()
        },
    }
}

fn get(path: &str) -> Request<'_> {
    Request {
        method: "GET",
        path,
    }
}

#[test]
fn metrics_has_every_family_with_help_and_type() {
    let (c, d) = (counters(), domains());
    let r = answer(get("/metrics"), &snapshot(&c, &d));
    assert_eq!(
        (r.status, r.content_type),
        (200, "text/plain; version=0.0.4; charset=utf-8")
    );
    let text = String::from_utf8(r.body).unwrap();
    for line in [
        "xenstore_requests_total{type=\"READ\"} 7",
        "xenstore_requests_total{type=\"WRITE\"} 3",
        "xenstore_requests_total{type=\"OTHER\"} 1",
        "xenstore_errors_total{error=\"ENOENT\"} 2",
        "xenstore_held_back_total{reason=\"write-rate\"} 4",
        "xenstore_domain_nodes{domid=\"3\"} 12",
        "xenstore_domain_nodes_quota{domid=\"3\"} 1000",
        "xenstore_domain_memory_bytes{domid=\"3\"} 900",
        "xenstore_domain_memory_quota_bytes{domid=\"3\"} 2621440",
        "xenstore_domain_watches_quota{domid=\"3\"} 128",
        "xenstore_uptime_seconds 12.345",
        "xenstore_metrics_scrapes_total 9",
        "xenstore_info{server=\"ferrostore\",version=\"0.1.0\"} 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    // Every sample's family is declared once, before it.
    let mut declared = Vec::new();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap();
            assert!(!declared.contains(&name.to_string()), "{name} twice");
            declared.push(name.to_string());
        } else if !l.starts_with('#') {
            let name = l.split(['{', ' ']).next().unwrap();
            assert!(declared.contains(&name.to_string()), "{name} undeclared");
        }
    }
}

#[test]
fn status_is_one_json_object_and_other_requests_are_refused() {
    let (c, d) = (counters(), domains());
    let s = snapshot(&c, &d);
    let r = answer(get("/status"), &s);
    assert_eq!(r.content_type, "application/json");
    assert_eq!(
        String::from_utf8(r.body).unwrap(),
        "{\"server\":\"ferrostore\",\"version\":\"0.1.0\",\"uptime_ms\":12345,\"requests\":11,\"errors\":2,\"domains\":1,\"nodes\":40,\"connections\":3,\"heap_used\":1000,\"heap_size\":5000,\"lost_wakeups\":0,\"scrapes\":9}\n"
    );
    assert_eq!(answer(get("/"), &s).status, 404);
    assert_eq!(answer(get("/metrics/x"), &s).status, 404);
    let post = Request {
        method: "POST",
        path: "/metrics",
    };
    assert_eq!(answer(post, &s).status, 405);
}

/// An Ethernet frame carrying an IPv4 packet from `src` with protocol `proto` and the
/// first four bytes of its payload `ports`.
fn ipv4(src: [u8; 4], proto: u8, ports: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0u8; 14];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let mut ip = vec![0x45, 0, 0, 24, 0, 0, 0, 0, 64, proto, 0, 0];
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&[10, 0, 0, 5]);
    ip.extend_from_slice(&ports);
    f.extend_from_slice(&ip);
    f
}

#[test]
fn only_allowed_sources_arp_and_dhcp_replies_pass() {
    let allow = [([10, 0, 0, 1], 32), ([192, 168, 0, 0], 16)];
    let tcp = [0x30, 0x39, 0x23, 0x8c];
    assert!(admit(&ipv4([10, 0, 0, 1], 6, tcp), &allow, false));
    assert!(admit(&ipv4([192, 168, 44, 7], 1, tcp), &allow, false));
    let outside = ipv4([10, 0, 0, 2], 6, tcp);
    assert!(!admit(&outside, &allow, true), "outside: nothing");
    assert!(!admit(&outside, &[], false), "empty list: nobody");
    let offer = ipv4([10, 0, 0, 9], 17, [0, 67, 0, 68]);
    assert!(admit(&offer, &allow, true), "a DHCP reply while asking");
    assert!(!admit(&offer, &allow, false), "not with a static address");
    assert!(!admit(
        &ipv4([10, 0, 0, 9], 17, [0, 68, 0, 67]),
        &allow,
        true
    ));
    let mut arp = vec![0u8; 42];
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert!(admit(&arp, &[], false));
    let mut v6 = vec![0u8; 60];
    v6[12..14].copy_from_slice(&[0x86, 0xdd]);
    assert!(!admit(&v6, &allow, true));
    assert!(!admit(&[], &allow, true));
    assert!(!admit(&[0u8; 13], &allow, true));
    assert!(
        !admit(&ipv4([10, 0, 0, 1], 6, tcp)[..20], &allow, true),
        "cut IPv4 header"
    );
    let mut odd_ihl = offer.clone();
    odd_ihl[14] = 0x4f;
    assert!(
        !admit(&odd_ihl, &allow, true),
        "header length past the frame"
    );
    assert!(in_net([1, 2, 3, 4], ([9, 9, 9, 9], 0)), "/0 is everyone");
}

#[test]
fn per_domain_series_stop_at_max_domains() {
    let c = counters();
    let d: Vec<DomainFigures> = (0..300)
        .map(|domid| DomainFigures {
            domid,
            ..domains()[0]
        })
        .collect();
    let text = prometheus(&snapshot(&c, &d));
    assert!(text.lines().any(|l| l == "xenstore_domains 300"));
    assert!(text.lines().any(|l| l == "xenstore_domains_omitted 44"));
    assert!(text.contains("xenstore_domain_nodes{domid=\"255\"}"));
    assert!(!text.contains("{domid=\"256\"}"));
}
