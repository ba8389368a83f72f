//! Network demo (`cmdline = "net [ip=A.B.C.D/P [gw=A.B.C.D]]"`, xen-config/net-demo.cfg):
//! netfront and smoltcp in a guest. It answers ping, echoes TCP on port 7, discards what
//! comes on port 9 and serves its boot facts over HTTP on port 80 until `xl shutdown`; a vif detached and attached again is
//! closed and connected again. Markers:
//! `net: vif device/vif/<n> connected, mac <mac>, backend <path>` ·
//! `net: address <cidr>, gateway <gw>` ·
//! `net: serving ping, tcp echo on 7, discard on 9, http on 80` ·
//! `net: backend of device/vif/<n> went away; vif closed (rx <n>, tx <n> packets, <n> rejected,
//! <n> tx kicks)` ·
//! `net: device/vif/<n>: the backend completed no transmit in 3 s; vif closed (...),
//! connecting again` · `net: shutdown requested (<reason>); vif closed (...)` · `net: done` — or
//! `net: FAILED: <what>`.

use crate::net::http::{Exchange, Request, Response};
use crate::net::stack::{Addressing, Stack};
use crate::netfront::device::Netfront;
use crate::netfront::handshake::{self, state, Store};
use crate::netfront::queues::Stats;
use crate::start_info::StartInfo;
use crate::xenbus::{self, Cancel};
use crate::{hypercall, mm, println, sched, time};
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;

/// TCP echo port (RFC 862).
const ECHO_PORT: u16 = 7;
const HTTP_PORT: u16 = 80;
/// TCP discard port (RFC 863): what the throughput benchmark sends to.
const DISCARD_PORT: u16 = 9;
const ECHO_SOCKETS: usize = 2;
const DISCARD_SOCKETS: usize = 2;
const HTTP_SOCKETS: usize = 4;
/// A transmit side with no completion for this long is connected again.
const TX_STALL_NS: u64 = 3_000_000_000;
/// How long one HTTP connection may take, from its first byte to its close.
const HTTP_CONNECTION_NS: u64 = 10_000_000_000;
/// Each TCP socket's receive and send buffer.
const TCP_BUFFER: usize = 64 * 1024;
/// The longest the loop sleeps before looking at xenstore again (shutdown, backend state).
const CONTROL_NS: u64 = 100_000_000;
/// How often the loop looks for a vif to connect while it has none.
const SEARCH_NS: u64 = 200_000_000;
const SHUTDOWN_TOKEN: &str = "net-shutdown";
const BACKEND_TOKEN: &str = "net-backend";

static NEVER: Cancel = Cancel::new();

/// The guest's own xenstore, for the handshake.
struct Xenstore;

impl Store for Xenstore {
    fn read(&mut self, path: &str) -> Result<Vec<u8>, String> {
        xenbus::read(0, path).map_err(|e| format!("{e}"))
    }
    fn write(&mut self, path: &str, value: &str) -> Result<(), String> {
        xenbus::write(0, path, value.as_bytes()).map_err(|e| format!("{e}"))
    }
}

/// Runs the mode until shutdown; prints `done` or `FAILED`.
pub fn run(si: &StartInfo, addressing: Addressing) {
    match serve(si, addressing) {
        Ok(()) => println!("net: done"),
        Err(e) => println!("net: FAILED: {e}"),
    }
}

fn mac_text(m: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

fn counters(s: Stats) -> String {
    format!(
        "rx {}, tx {} packets, {} rejected",
        s.rx_packets, s.tx_packets, s.rejected
    )
}

/// The counters with the device's own, for the close markers.
fn closing_counters(dev: &Netfront) -> String {
    format!("{}, {} tx kicks", counters(dev.stats()), dev.kicks())
}

/// A vif whose backend waits for us (InitWait), connected; `None` if there is none yet. A
/// vif that fails to connect is reported and not tried again while it exists.
fn connect_any(failed: &mut Vec<String>) -> Result<Option<Netfront>, String> {
    let names = match xenbus::directory(0, "device/vif") {
        Ok(n) => n,
        Err(_) => return Ok(None),
    };
    for name in names {
        let front = format!("device/vif/{name}");
        let Ok(be) = handshake::find_backend(&mut Xenstore, &front) else {
            failed.retain(|f| *f != front);
            continue;
        };
        if failed.contains(&front) {
            continue;
        }
        if handshake::read_state(&mut Xenstore, &be.path) != Ok(state::INIT_WAIT) {
            continue;
        }
        let dev = match Netfront::connect(&mut Xenstore, &front) {
            Ok(d) => d,
            Err(e) => {
                println!("net: vif {front} did not connect: {e}");
                failed.push(front);
                continue;
            }
        };
        println!(
            "net: vif {front} connected, mac {}, backend {}",
            mac_text(dev.mac()),
            dev.backend_path()
        );
        xenbus::watch(&format!("{}/state", dev.backend_path()), BACKEND_TOKEN)
            .map_err(|e| format!("watching the backend's state: {e}"))?;
        return Ok(Some(dev));
    }
    Ok(None)
}

/// The first vif, waiting up to 10 s for the toolstack to add one.
fn first_device(failed: &mut Vec<String>) -> Result<Netfront, String> {
    let deadline = time::now_ns() + 10_000_000_000;
    loop {
        if let Some(dev) = connect_any(failed)? {
            return Ok(dev);
        }
        if time::now_ns() >= deadline {
            return Err(String::from(
                "no vif whose backend is ready (device/vif/*) in 10 s",
            ));
        }
        sched::sleep_until(time::now_ns() + SEARCH_NS);
    }
}

fn tcp_socket() -> tcp::Socket<'static> {
    tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
        tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
    )
}

struct Services {
    echo: Vec<SocketHandle>,
    discard: Vec<SocketHandle>,
    /// Each HTTP socket, its exchange, and when its connection opened (0: idle).
    http: Vec<(SocketHandle, Exchange, u64)>,
    scratch: Vec<u8>,
    echoed: u64,
    pages: u64,
}

fn serve(si: &StartInfo, addressing: Addressing) -> Result<(), String> {
    xenbus::init(si).map_err(|e| format!("xenbus::init: {e}"))?;
    xenbus::watch("control/shutdown", SHUTDOWN_TOKEN)
        .map_err(|e| format!("watching control/shutdown: {e}"))?;
    let mut failed = Vec::new();
    let dev = first_device(&mut failed)?;
    let mut stack = Stack::new(dev, addressing);
    let mut svc = Services {
        echo: (0..ECHO_SOCKETS)
            .map(|_| stack.sockets.add(tcp_socket()))
            .collect(),
        discard: (0..DISCARD_SOCKETS)
            .map(|_| stack.sockets.add(tcp_socket()))
            .collect(),
        http: (0..HTTP_SOCKETS)
            .map(|_| (stack.sockets.add(tcp_socket()), Exchange::default(), 0))
            .collect(),
        scratch: vec![0; TCP_BUFFER],
        echoed: 0,
        pages: 0,
    };
    println!(
        "net: serving ping, tcp echo on {ECHO_PORT}, discard on {DISCARD_PORT}, http on {HTTP_PORT}"
    );
    let mut connected = true;
    let mut next_search = 0;
    loop {
        if connected {
            stack.poll();
            svc.echo_step(&mut stack);
            svc.discard_step(&mut stack);
            svc.http_step(&mut stack, si);
            stack.poll();
            if let Some(why) = stack.dev.broken() {
                stack.dev.close(&mut Xenstore);
                return Err(format!("{}: {why}", stack.dev.front()));
            }
        } else if time::now_ns() >= next_search {
            if let Some(dev) = connect_any(&mut failed)? {
                stack.replace_device(dev);
                connected = true;
            }
            next_search = time::now_ns() + SEARCH_NS;
        }
        if let Some(reason) = shutdown_request() {
            if connected {
                stack.dev.close(&mut Xenstore);
            }
            println!(
                "net: shutdown requested ({reason}); vif closed ({}), {} bytes echoed, {} pages served",
                closing_counters(&stack.dev),
                svc.echoed,
                svc.pages
            );
            return Ok(());
        }
        if connected && stack.dev.tx_stalled_ns() >= TX_STALL_NS {
            // The backend takes our frames' requests but completes none, kicks or not: a
            // connection its transmit side never started serving. Connect again.
            let _ = xenbus::unwatch(
                &format!("{}/state", stack.dev.backend_path()),
                BACKEND_TOKEN,
            );
            let front = String::from(stack.dev.front());
            let backend = String::from(stack.dev.backend_path());
            let stats = closing_counters(&stack.dev);
            stack.dev.close(&mut Xenstore);
            println!("net: {front}: the backend completed no transmit in 3 s; vif closed ({stats}), connecting again");
            if let Err(e) = handshake::reconnect(&mut Xenstore, &front, &backend) {
                println!("net: {front}: asking the backend to reconnect: {e}");
            }
            connected = false;
        } else if connected && backend_gone(&stack) {
            let _ = xenbus::unwatch(
                &format!("{}/state", stack.dev.backend_path()),
                BACKEND_TOKEN,
            );
            let front = String::from(stack.dev.front());
            let stats = closing_counters(&stack.dev);
            stack.dev.close(&mut Xenstore);
            println!("net: backend of {front} went away; vif closed ({stats})");
            connected = false;
        }
        if connected {
            stack.wait(CONTROL_NS);
        } else {
            sched::sleep_until(time::now_ns() + SEARCH_NS);
        }
    }
}

/// `control/shutdown`'s request, if the toolstack made one.
fn shutdown_request() -> Option<String> {
    while xenbus::read_watch(SHUTDOWN_TOKEN, 0, &NEVER).is_ok() {}
    let v = xenbus::read(0, "control/shutdown").ok()?;
    let reason = String::from_utf8(v).ok()?;
    (!reason.is_empty()).then_some(reason)
}

/// Whether the backend left Connected (a watch event came and its state says so).
fn backend_gone(stack: &Stack) -> bool {
    let mut fired = false;
    while xenbus::read_watch(BACKEND_TOKEN, 0, &NEVER).is_ok() {
        fired = true;
    }
    fired
        && !matches!(
            handshake::read_state(&mut Xenstore, stack.dev.backend_path()),
            Ok(state::CONNECTED)
        )
}

impl Services {
    /// Echoes what each echo socket received, as far as its send buffer has room; closes
    /// once the peer closed and everything went back; listens again when closed.
    fn echo_step(&mut self, stack: &mut Stack) {
        for &h in &self.echo {
            let s = stack.sockets.get_mut::<tcp::Socket>(h);
            if !s.is_open() {
                let _ = s.listen(ECHO_PORT);
                continue;
            }
            while s.can_recv() && s.can_send() {
                let room = (s.send_capacity() - s.send_queue()).min(self.scratch.len());
                let Some(buf) = self.scratch.get_mut(..room) else {
                    break;
                };
                let n = s.recv_slice(buf).unwrap_or(0);
                if n == 0 {
                    break;
                }
                let sent = buf.get(..n).map_or(0, |b| s.send_slice(b).unwrap_or(0));
                self.echoed += sent as u64;
            }
            if !s.may_recv() && s.may_send() && s.send_queue() == 0 {
                s.close();
            }
        }
    }

    /// Drops what each discard socket received; closes once the peer closed.
    fn discard_step(&mut self, stack: &mut Stack) {
        for &h in &self.discard {
            let s = stack.sockets.get_mut::<tcp::Socket>(h);
            if !s.is_open() {
                let _ = s.listen(DISCARD_PORT);
                continue;
            }
            while s.recv(|d| (d.len(), d.len())).unwrap_or(0) > 0 {}
            if !s.may_recv() && s.may_send() {
                s.close();
            }
        }
    }

    /// Feeds each HTTP socket's request to its exchange and sends the answer; closes when
    /// sent, listens again when closed.
    fn http_step(&mut self, stack: &mut Stack, si: &StartInfo) {
        let stats = stack.dev.stats();
        let addr = stack.address();
        let now = time::now_ns();
        for (h, x, opened) in self.http.iter_mut() {
            let s = stack.sockets.get_mut::<tcp::Socket>(*h);
            if !s.is_open() {
                *x = Exchange::default();
                *opened = 0;
                let _ = s.listen(HTTP_PORT);
                continue;
            }
            if *opened == 0 && s.is_active() {
                *opened = now;
            }
            if *opened != 0 && now.saturating_sub(*opened) > HTTP_CONNECTION_NS {
                s.abort();
                continue;
            }
            let mut served = false;
            while s.can_recv() {
                let taken = s.recv(|data| {
                    let n = x.feed(data, |req| {
                        served = true;
                        page(req, si, stats, addr.map(|a| format!("{a}")))
                    });
                    (n, n)
                });
                if taken.unwrap_or(0) == 0 {
                    break;
                }
            }
            if served {
                self.pages += 1;
            }
            if s.can_send() && !x.pending().is_empty() {
                let n = s.send_slice(x.pending()).unwrap_or(0);
                x.sent(n);
            }
            if x.done() && s.send_queue() == 0 {
                s.close();
            }
        }
    }
}

/// `GET /`: the boot tour's facts as a small HTML page.
fn page(req: Request<'_>, si: &StartInfo, stats: Stats, addr: Option<String>) -> Response {
    if req.method != "GET" {
        return Response::text(405, "only GET is served here\n");
    }
    if req.path != "/" {
        return Response::text(404, "not found: the page is at /\n");
    }
    let (major, minor) = hypercall::xen_version();
    let uptime_ms = time::uptime_ns() / 1_000_000;
    let body = format!(
        "<!doctype html>\n<html><head><title>ferrostore</title></head><body>\n\
         <h1>ferrostore: a Rust PV kernel on Xen</h1>\n<ul>\n\
         <li>Xen {major}.{minor}</li>\n\
         <li>start_info: {} MiB ({} pages), flags {:#x}, cmdline \"{}\"</li>\n\
         <li>heap: {}</li>\n\
         <li>uptime: {}.{:03} s</li>\n\
         <li>address: {}</li>\n\
         <li>packets: rx {} ({} bytes), tx {} ({} bytes), rx errors {}, tx errors {}, rejected {}</li>\n\
         </ul>\n</body></html>\n",
        si.memory_mib(),
        si.nr_pages,
        si.flags,
        html_escape(si.cmd_line()),
        mm::heap_stats(),
        uptime_ms / 1000,
        uptime_ms % 1000,
        addr.unwrap_or_else(|| String::from("none yet")),
        stats.rx_packets,
        stats.rx_bytes,
        stats.tx_packets,
        stats.tx_bytes,
        stats.rx_errors,
        stats.tx_errors,
        stats.rejected,
    );
    Response {
        status: 200,
        content_type: "text/html; charset=utf-8",
        body: body.into_bytes(),
    }
}

fn html_escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '<' => String::from("&lt;"),
            '>' => String::from("&gt;"),
            '&' => String::from("&amp;"),
            '"' => String::from("&quot;"),
            c => String::from(c),
        })
        .collect()
}
