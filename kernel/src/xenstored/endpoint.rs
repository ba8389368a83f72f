//! The metrics endpoint on the kernel target (`--metrics PORT`): looks for a vif in the
//! stub's own `device/vif` (an administrator's `xl network-attach`), connects it through the
//! stub's own engine, and serves [`metrics::answer`] on PORT to the sources of
//! `--metrics-allow`. Everything is done in steps that never block, which the dispatcher
//! runs after its rings, each with a bounded budget: a few connections, each bounded in time
//! and size. A vif whose backend goes away is closed and the next one looked for.

use super::local::{EngineStore, Local};
use super::metrics::{self, Host, Snapshot};
use crate::cmdline::Options;
use crate::events;
use crate::net::http::Exchange;
use crate::net::stack::{Addressing, Stack};
use crate::netfront::device::{release_kept, BufferPages, Handshake, Netfront, Progress};
use crate::netfront::handshake::{self, state};
use crate::time;
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use xenstore_engine::{Engine, Platform};

/// The stub's buffers (96 KiB of its frame pool): scrapes are small.
const STUB_BUFFERS: BufferPages = BufferPages { tx: 8, rx: 16 };
/// Connections served at once.
const CONNECTIONS: usize = 4;
/// Each connection's receive buffer (a request head is at most 2 KiB) and send buffer.
const RX_BUFFER: usize = 4096;
const TX_BUFFER: usize = 16384;
/// How long one connection may take, from its first byte to its close.
const CONNECTION_NS: u64 = 5_000_000_000;
/// Received frames taken per step.
const PACKET_BUDGET: usize = 16;
/// How often a vif is looked for, a handshake moved on, a backend's state read.
const SEARCH_NS: u64 = 500_000_000;
const HANDSHAKE_NS: u64 = 20_000_000;
const BACKEND_CHECK_NS: u64 = 1_000_000_000;
/// A transmit side with no completion for this long is connected again.
const TX_STALL_NS: u64 = 3_000_000_000;
/// Pages backends may keep mapped after a close before no more vifs are connected.
const MAX_KEPT_PAGES: usize = 64;
/// Vif handles looked at (`device/vif/0` ..).
const MAX_VIFS: u32 = 8;

enum Phase {
    /// No vif yet (or the last one went away).
    Search,
    Connecting(Box<Handshake>),
    Up(Box<Stack>),
    Closing(Box<Netfront>),
}

/// A TCP connection slot: its socket, its exchange, when it opened (0: idle).
struct Slot {
    socket: SocketHandle,
    exchange: Exchange,
    opened_ns: u64,
}

/// The endpoint and its vif.
pub struct Endpoint {
    local: Local,
    port: u16,
    allow: Vec<([u8; 4], u8)>,
    addressing: Addressing,
    on_event: events::Handler,
    phase: Phase,
    slots: Vec<Slot>,
    /// Vifs that failed to connect: not tried again while they exist.
    failed: Vec<String>,
    next_ns: u64,
    backend_check_ns: u64,
    scrapes: u64,
    /// A live update is closing the vif: connect nothing until [`Endpoint::resume`].
    paused: bool,
    kept_warned: bool,
}

impl Endpoint {
    /// The endpoint `opts` asks for (`--metrics`), speaking as domain `domid` to `engine`;
    /// `on_event` will handle its vif's event channel.
    pub fn new<P: Platform>(
        engine: &mut Engine<P>,
        domid: u16,
        opts: &Options,
        on_event: events::Handler,
    ) -> Option<Endpoint> {
        let port = opts.metrics?;
        let allow: Vec<([u8; 4], u8)> = opts.metrics_allow.iter().flatten().copied().collect();
        let addressing = match opts.ip {
            Some((addr, prefix)) => Addressing::Static {
                addr,
                prefix,
                gw: opts.gw,
            },
            None => Addressing::Dhcp,
        };
        if allow.is_empty() {
            crate::log_warn!(
                "xenstored: metrics: --metrics {port} without --metrics-allow: nobody will get an answer"
            );
        }
        crate::log_info!(
            "xenstored: metrics: waiting for a vif (xl network-attach) to serve port {port}"
        );
        Some(Endpoint {
            local: Local::new(engine, domid),
            port,
            allow,
            addressing,
            on_event,
            phase: Phase::Search,
            slots: Vec::new(),
            failed: Vec::new(),
            next_ns: 0,
            backend_check_ns: 0,
            scrapes: 0,
            paused: false,
            kept_warned: false,
        })
    }

    /// Our engine connection (its output is for us, not for a ring).
    pub fn conn(&self) -> xenstore_engine::ConnId {
        self.local.conn()
    }

    /// When the endpoint next has something to do without an event (system time).
    pub fn next_wake(&mut self) -> u64 {
        match &mut self.phase {
            Phase::Up(stack) => stack
                .next_timer_ns()
                .unwrap_or(u64::MAX)
                .min(self.backend_check_ns),
            _ => self.next_ns,
        }
    }

    /// One bounded step; `host` gives the stub's figures for an answer.
    pub fn step<P: Platform>(&mut self, engine: &mut Engine<P>, host: &dyn Fn(&Engine<P>) -> Host) {
        let now = time::now_ns();
        let phase = core::mem::replace(&mut self.phase, Phase::Search);
        self.phase = match phase {
            Phase::Search if now < self.next_ns || self.paused => Phase::Search,
            Phase::Search => {
                self.next_ns = now + SEARCH_NS;
                self.search(engine)
            }
            Phase::Connecting(h) if now < self.next_ns => Phase::Connecting(h),
            Phase::Connecting(h) => {
                self.next_ns = now + HANDSHAKE_NS;
                let mut store = EngineStore {
                    engine,
                    local: &mut self.local,
                };
                match h.step(&mut store) {
                    Progress::Waiting(h) => Phase::Connecting(Box::new(h)),
                    Progress::Done(dev) => self.up(*dev),
                    Progress::Failed(e, dev) => {
                        crate::log_warn!("xenstored: metrics: the vif did not connect: {e}");
                        self.next_ns = now + SEARCH_NS;
                        dev.map_or(Phase::Search, Phase::Closing)
                    }
                }
            }
            Phase::Up(mut stack) => {
                stack.poll_bounded(PACKET_BUDGET);
                self.serve(&mut stack, engine, host);
                stack.poll_bounded(0);
                if now >= self.backend_check_ns {
                    self.backend_check_ns = now + BACKEND_CHECK_NS;
                    let mut store = EngineStore {
                        engine,
                        local: &mut self.local,
                    };
                    let s = handshake::read_state(&mut store, stack.dev.backend_path());
                    if stack.dev.tx_stalled_ns() >= TX_STALL_NS {
                        crate::log_warn!(
                            "xenstored: metrics: {}: the backend completed no transmit in 3 s; connecting again",
                            stack.dev.front()
                        );
                        return self.close(Box::new(stack.into_device()), engine);
                    }
                    if s != Ok(state::CONNECTED) || stack.dev.broken().is_some() {
                        crate::log_info!(
                            "xenstored: metrics: the backend of {} went away; closing the vif",
                            stack.dev.front()
                        );
                        return self.close(Box::new(stack.into_device()), engine);
                    }
                }
                Phase::Up(stack)
            }
            Phase::Closing(dev) if now < self.next_ns => Phase::Closing(dev),
            Phase::Closing(dev) => return self.close(dev, engine),
        };
    }

    fn close<P: Platform>(&mut self, mut dev: Box<Netfront>, engine: &mut Engine<P>) {
        let mut store = EngineStore {
            engine,
            local: &mut self.local,
        };
        self.phase = if dev.close_step(&mut store) {
            if dev.kept_pages() > 0 {
                // Its backend holds our pages: never hand it fresh ones.
                self.failed.push(String::from(dev.front()));
            }
            self.slots.clear();
            self.next_ns = time::now_ns() + SEARCH_NS;
            Phase::Search
        } else {
            self.next_ns = time::now_ns() + HANDSHAKE_NS;
            Phase::Closing(dev)
        };
    }

    /// Before a live update: closes the vif in order (the backend must unmap our pages
    /// before they become the next kernel's memory) and connects nothing meanwhile.
    pub fn begin_close(&mut self) {
        self.paused = true;
        self.next_ns = 0;
        self.phase = match core::mem::replace(&mut self.phase, Phase::Search) {
            Phase::Up(stack) => Phase::Closing(Box::new(stack.into_device())),
            Phase::Connecting(h) => match *h {
                Handshake::Connected { dev, .. } => Phase::Closing(dev),
                Handshake::Backend { .. } => Phase::Search,
            },
            p => p,
        };
    }

    /// After [`Endpoint::begin_close`]: `None` while closing; then whether no page of ours
    /// is still mapped by a backend (ever: a leaked page must not become the next kernel's).
    pub fn closed(&self) -> Option<bool> {
        match self.phase {
            Phase::Closing(_) => None,
            _ => Some(release_kept() == 0),
        }
    }

    /// A live update failed: look for the vif again.
    pub fn resume(&mut self) {
        self.paused = false;
    }

    /// A vif of ours whose backend waits for us (InitWait), its handshake started. The
    /// handles are tried in turn rather than listed: the toolstack leaves the stub's
    /// `device/vif` directory readable by dom0 only (init-xenstore-domain made its home,
    /// not libxl), while each device's own directory is ours.
    fn search<P: Platform>(&mut self, engine: &mut Engine<P>) -> Phase {
        let kept = release_kept();
        if kept > MAX_KEPT_PAGES {
            if !self.kept_warned {
                self.kept_warned = true;
                crate::log_warn!("xenstored: metrics: backends keep {kept} pages of the stub mapped; connecting no more vifs");
            }
            return Phase::Search;
        }
        let mut store = EngineStore {
            engine,
            local: &mut self.local,
        };
        for handle in 0..MAX_VIFS {
            let front = format!("device/vif/{handle}");
            let Ok(h) = Handshake::start(&mut store, &front, self.on_event, STUB_BUFFERS) else {
                // Gone (or never there): a vif attached later under this name is new.
                self.failed.retain(|f| *f != front);
                continue;
            };
            if self.failed.contains(&front) {
                continue;
            }
            let Handshake::Backend { backend, .. } = &h else {
                continue;
            };
            match handshake::read_state(&mut store, &backend.path) {
                Ok(state::INIT_WAIT) => {
                    self.failed.push(front);
                    return Phase::Connecting(Box::new(h));
                }
                Ok(state::CLOSED) => {
                    match handshake::reconnect(&mut store, &front, &backend.path) {
                        Ok(true) => crate::log_info!(
                        "xenstored: metrics: {front} was closed; asked its backend to reconnect"
                    ),
                        Ok(false) => {}
                        Err(e) => crate::log_warn!("xenstored: metrics: {front}: {e}"),
                    }
                }
                _ => {}
            }
        }
        Phase::Search
    }

    fn up(&mut self, mut dev: Netfront) -> Phase {
        let allow = self.allow.clone();
        let dhcp = self.addressing == Addressing::Dhcp;
        dev.set_filter(Box::new(move |f| metrics::admit(f, &allow, dhcp)));
        self.failed.retain(|f| f != dev.front());
        let front = String::from(dev.front());
        let mut stack = Box::new(Stack::new(dev, self.addressing));
        self.slots = (0..CONNECTIONS)
            .map(|_| Slot {
                socket: stack.sockets.add(tcp::Socket::new(
                    tcp::SocketBuffer::new(vec![0; RX_BUFFER]),
                    tcp::SocketBuffer::new(vec![0; TX_BUFFER]),
                )),
                exchange: Exchange::default(),
                opened_ns: 0,
            })
            .collect();
        self.backend_check_ns = time::now_ns() + BACKEND_CHECK_NS;
        crate::log_info!(
            "xenstored: metrics: serving GET /metrics and /status on port {} of {front} ({} allowed network(s))",
            self.port,
            self.allow.len()
        );
        Phase::Up(stack)
    }

    /// Moves every connection on: reads its request, answers, closes; aborts one that took
    /// longer than [`CONNECTION_NS`].
    fn serve<P: Platform>(
        &mut self,
        stack: &mut Stack,
        engine: &Engine<P>,
        host: &dyn Fn(&Engine<P>) -> Host,
    ) {
        let now = time::now_ns();
        let net = stack.dev.stats();
        let filtered = stack.dev.filtered();
        for slot in self.slots.iter_mut() {
            let s = stack.sockets.get_mut::<tcp::Socket>(slot.socket);
            if !s.is_open() {
                slot.exchange = Exchange::default();
                slot.opened_ns = 0;
                let _ = s.listen(self.port);
                continue;
            }
            if slot.opened_ns == 0 && s.is_active() {
                slot.opened_ns = now;
            }
            if slot.opened_ns != 0 && now.saturating_sub(slot.opened_ns) > CONNECTION_NS {
                s.abort();
                continue;
            }
            let scrapes = &mut self.scrapes;
            while s.can_recv() {
                let taken = s.recv(|data| {
                    let n = slot.exchange.feed(data, |req| {
                        *scrapes += 1;
                        let counters = engine.counters();
                        let domains = engine.domain_figures();
                        let snap = Snapshot {
                            counters,
                            domains: &domains,
                            host: Host {
                                scrapes: *scrapes,
                                filtered,
                                net,
                                ..host(engine)
                            },
                        };
                        metrics::answer(req, &snap)
                    });
                    (n, n)
                });
                if taken.unwrap_or(0) == 0 {
                    break;
                }
            }
            if s.can_send() && !slot.exchange.pending().is_empty() {
                let n = s.send_slice(slot.exchange.pending()).unwrap_or(0);
                slot.exchange.sent(n);
            }
            if slot.exchange.done() && s.send_queue() == 0 {
                s.close();
            }
        }
    }
}
