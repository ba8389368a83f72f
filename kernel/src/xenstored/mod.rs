//! The xenstore stub-domain service (command line `--event N` from init-xenstore-domain):
//! the engine (`xenstore_engine`) serving dom0's ring and every introduced guest's ring.
//!
//! Start: bind VIRQ_DOM_EXC, introduce dom0 (grant ref 1 of dom0, port N; its indices are
//! kept because dom0 may already have written requests), then loop forever in one
//! dispatcher: event handlers only mark their port and wake it; each pass services every
//! ring with work once, with a request budget per ring ([`budget`]), so no ring starves
//! another; rings with budget-limited input go to the back of the queue. After servicing a
//! ring it fences and looks once more (a guest skips its notification while it sees us busy),
//! so a ring is only left idle when it has nothing to do. A timer tick runs `Engine::tick`
//! (watch-event expiry) and looks at every quiet ring for work no event announced (a lost
//! wake-up: counted, the first logged at info level, and it costs at most one tick); rings
//! held back by the outstanding-request quota or the write-rate limit are re-polled sooner.
//! A ring whose indices or header are bad gets the `error` field set and is ignored until
//! the guest asks to reconnect. VIRQ_DOM_EXC triggers a getdomaininfo scan, paced in steps
//! between ring services ([`domstate`]).
//! The stub's log goes to a file on its 9pfs device once the device connects (`logdev`).
//!
//! Live update (`docs/live-update.md`): once the engine holds an accepted `live-update -s`,
//! the dispatcher closes the log device, takes the engine's state stream and has
//! `handover` stage the new kernel; then it closes its VIRQs, unmaps every ring, closes
//! our end of every ring's event channel and switches. The next kernel, started with
//! `--live-update=<ns>`, restores the stream from its boot module instead of introducing
//! dom0, adopts the rings and services every one once.

pub mod budget;
pub mod domstate;
pub mod metrics;

#[cfg(target_os = "none")]
#[cfg_attr(not(feature = "net"), path = "endpoint_off.rs")]
mod endpoint;
#[cfg(target_os = "none")]
mod local;
#[cfg(target_os = "none")]
mod logdev;
#[cfg(target_os = "none")]
mod platform;
#[cfg(target_os = "none")]
pub use service::run;

#[cfg(target_os = "none")]
mod service {
    use super::budget::{Budgeted, PASS_BUDGET};
    use super::domstate::{classify, DomState, Scan};
    use super::endpoint::Endpoint;
    use super::logdev::LogDevice;
    use super::metrics::Host;
    use super::platform::{KernelPlatform, Rings};
    use crate::cmdline::{next_kernel, Options};
    use crate::events::{self, Port};
    use crate::hypercall::{self, virq, DomainInfoFlags};
    use crate::sched::WaitQueue;
    use crate::shared_info::NR_EVENT_CHANNELS;
    use crate::{mm, time};
    use alloc::collections::{BTreeSet, VecDeque};
    use alloc::vec::Vec;
    use core::sync::atomic::{AtomicU64, Ordering};
    use xenstore_engine::quota::NAMES as QUOTA_NAMES;
    use xenstore_engine::ring::{
        self, RingPage, CONNECTION, RECONNECT, REQ_CONS, REQ_PROD, RING_SIZE, RSP_CONS, RSP_PROD,
    };
    use xenstore_engine::{Config, ConnId, Engine};

    type Store = Engine<KernelPlatform>;

    /// Engine tick (watch-event expiry).
    const TICK_NS: u64 = 1_000_000_000;
    /// How long a live update waits for the 9pfs and vif backends to let their devices go.
    const LOG_CLOSE_NS: u64 = 3_000_000_000;
    /// The metrics endpoint waits at least this long between steps when idle, and runs at
    /// least every ten of these under ring load.
    const METRICS_MIN_NS: u64 = 1_000_000;
    /// Domains asked about per dispatcher round while a VIRQ_DOM_EXC scan runs (a question
    /// costs about 0.1 ms under emulation: rings wait at most a few ms for a scan).
    const SCAN_STEP: usize = 32;
    /// Re-poll interval while a ring is held back by the write-rate limit.
    const THROTTLE_POLL_NS: u64 = 20_000_000;
    /// Default per-domain memory quota: at most this fraction of the heap.
    const MEMORY_QUOTA_HEAP_DIVISOR: usize = 4;
    /// Bytes charged to all domains together (dom0 included, though never refused): at most
    /// this fraction of the heap.
    const GLOBAL_MEMORY_HEAP_DIVISOR: usize = 2;
    /// Output queued for a privileged connection that does not read (dom0's ring): beyond
    /// this fraction of the heap its oldest watch events are dropped.
    const PRIV_QUEUE_HEAP_DIVISOR: usize = 8;
    /// A live update's image may take at most this fraction of the heap (it is staged in
    /// the heap once more, with the state stream, before the switch).
    const LIVE_UPDATE_HEAP_DIVISOR: usize = 4;
    /// Guests' growth is refused while less than this fraction of the heap is free (the
    /// charged bytes above leave out per-node bookkeeping; this bounds the real use).
    const RESERVE_HEAP_DIVISOR: usize = 8;

    const WORDS: usize = NR_EVENT_CHANNELS / 64;
    static PENDING: [AtomicU64; WORDS] = [const { AtomicU64::new(0) }; WORDS];
    static WAKE: WaitQueue = WaitQueue::new();

    /// Debug counters: dispatcher wake-ups, rings found with work that no event announced
    /// (lost wake-ups, see `poll_quiet_rings`), and the slowest single ring service.
    static WAKEUPS: AtomicU64 = AtomicU64::new(0);
    static UNANNOUNCED: AtomicU64 = AtomicU64::new(0);
    static SLOWEST_NS: AtomicU64 = AtomicU64::new(0);
    /// Where the dispatcher's time goes (system time, so it includes time Xen gave to other
    /// vCPUs meanwhile): awake between wake-ups and going idle, servicing rings, and
    /// scanning domains on VIRQ_DOM_EXC; with the counts of services, scans and domains
    /// asked about.
    static AWAKE_NS: AtomicU64 = AtomicU64::new(0);
    static SERVICE_NS: AtomicU64 = AtomicU64::new(0);
    static SERVICES: AtomicU64 = AtomicU64::new(0);
    static SCAN_NS: AtomicU64 = AtomicU64::new(0);
    static SCANS: AtomicU64 = AtomicU64::new(0);
    static SCANNED: AtomicU64 = AtomicU64::new(0);
    /// The engine's request and watch-event counts, as of the last pass.
    static REQUESTS: AtomicU64 = AtomicU64::new(0);
    static EVENTS: AtomicU64 = AtomicU64::new(0);

    /// The dispatcher's activity for `memreport`: `service: <wake-ups> wake-ups, awake <ms>
    /// ms; <n> requests in <n> ring services, <ms> ms; <n> watch events; <n> domain scans (<n>
    /// domains), <ms> ms; <n> lost wake-ups; slowest ring service <us> us`.
    pub(super) fn activity() -> alloc::string::String {
        let ms = |a: &AtomicU64| a.load(Ordering::Relaxed) / 1_000_000;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        alloc::format!(
            "service: {} wake-ups, awake {} ms; {} requests in {} ring services, {} ms; {} watch events; {} domain scans ({} domains), {} ms; {} lost wake-ups; slowest ring service {} us",
            n(&WAKEUPS),
            ms(&AWAKE_NS),
            n(&REQUESTS),
            n(&SERVICES),
            ms(&SERVICE_NS),
            n(&EVENTS),
            n(&SCANS),
            n(&SCANNED),
            ms(&SCAN_NS),
            n(&UNANNOUNCED),
            n(&SLOWEST_NS) / 1000
        )
    }

    /// The stub's own figures for the metrics endpoint.
    fn host(engine: &Store) -> Host {
        let heap = mm::heap_stats();
        Host {
            version: crate::boot::VERSION,
            uptime_ns: time::uptime_ns(),
            heap_used: heap.used as u64,
            heap_size: heap.size as u64,
            lost_wakeups: UNANNOUNCED.load(Ordering::Relaxed),
            connections: engine.connection_count() as u64,
            nodes: engine.node_count() as u64,
            ..Host::default()
        }
    }

    /// Event handler of every ring port and of VIRQ_DOM_EXC.
    fn on_event(port: Port) {
        if let Some(w) = PENDING.get(port as usize / 64) {
            w.fetch_or(1 << (port % 64), Ordering::SeqCst);
        }
        WAKE.wake_all();
    }

    fn any_pending() -> bool {
        PENDING.iter().any(|w| w.load(Ordering::SeqCst) != 0)
    }

    fn take_pending(out: &mut Vec<Port>) {
        for (i, w) in PENDING.iter().enumerate() {
            let mut bits = w.swap(0, Ordering::SeqCst);
            while bits != 0 {
                let b = bits.trailing_zeros();
                bits &= bits - 1;
                out.push((i * 64) as Port + b);
            }
        }
    }

    /// The engine's configuration for a stub whose heap is `heap` bytes.
    fn config(opts: &Options, heap: usize) -> Config {
        let mut cfg = Config::default();
        cfg.quotas.memory = cfg
            .quotas
            .memory
            .min((heap / MEMORY_QUOTA_HEAP_DIVISOR) as u32);
        cfg.soft_memory = cfg.soft_memory.min(cfg.quotas.memory / 5 * 4);
        cfg.global_memory = u32::try_from(heap / GLOBAL_MEMORY_HEAP_DIVISOR).unwrap_or(u32::MAX);
        cfg.priv_queue_limit = heap / PRIV_QUEUE_HEAP_DIVISOR;
        cfg.live_update_max = heap / LIVE_UPDATE_HEAP_DIVISOR;
        for (name, v) in QUOTA_NAMES.iter().zip(opts.quotas.iter()) {
            if let Some(v) = v {
                cfg.quotas.set(name, *v);
            }
        }
        cfg.priv_domid = opts.priv_domid;
        cfg
    }

    /// Runs the stub service with dom0's ring on event channel `dom0_port`, or, after a live
    /// update, with the store and rings of `state` (the previous kernel's stream); never
    /// returns.
    pub fn run(opts: &Options, dom0_port: u32, state: Option<&[u8]>) -> ! {
        let heap = mm::heap_stats().size;
        let cfg = config(opts, heap);
        crate::log_info!(
            "xenstored: quotas: memory {} B (all domains {} B), nodes {}, outstanding {}{}",
            cfg.quotas.memory,
            cfg.global_memory,
            cfg.quotas.nodes,
            cfg.quotas.outstanding,
            cfg.priv_domid
                .map_or(alloc::string::String::new(), |d| alloc::format!(
                    ", privileged dom{d}"
                ))
        );
        let reserve = heap / RESERVE_HEAP_DIVISOR;
        let platform = KernelPlatform::new(on_event, reserve);
        let mut engine = match state {
            Some(stream) => restore(platform, cfg, stream),
            None => Engine::new(platform, cfg),
        };
        let virq_port = match events::bind_virq(virq::DOM_EXC) {
            Ok(p) => {
                events::set_handler(p, on_event);
                events::unmask(p);
                Some(p)
            }
            Err(e) => {
                crate::log_warn!("xenstored: bind VIRQ_DOM_EXC failed ({e}): no death detection");
                None
            }
        };
        if state.is_none() {
            if let Err(e) = engine.introduce(0, 0, dom0_port) {
                panic!(
                    "xenstored: cannot serve dom0 on port {dom0_port}: {}",
                    e.name()
                );
            }
            crate::println!("xenstored: serving dom0 (event channel {dom0_port})");
        }
        let own = events::own_domid();
        let log = match own {
            Ok(domid) => Some(LogDevice::new(&mut engine, domid, on_event)),
            Err(e) => {
                crate::log_warn!("xenstored: own domain id unknown ({e}): no log file");
                None
            }
        };
        let metrics = match own {
            Ok(domid) => Endpoint::new(&mut engine, domid, opts, on_event),
            Err(_) => None,
        };
        let mut d = Dispatcher {
            engine,
            log,
            metrics,
            virq_port,
            scan: Scan::default(),
            active: VecDeque::new(),
            queued: BTreeSet::new(),
            throttled: BTreeSet::new(),
            lu_deadline: None,
            stopped_at: opts.live_update.filter(|&t| t > 0 && state.is_some()),
        };
        if state.is_some() {
            // Requests written during the switch, and deaths VIRQ_DOM_EXC told nobody about.
            let rings: Vec<ConnId> = d.rings().by_conn.keys().copied().collect();
            for c in rings {
                d.activate(c);
            }
            d.scan.event();
        }
        d.run()
    }

    /// The store and rings the previous kernel handed over; its own log-device connection
    /// is dropped (this kernel opens its own).
    fn restore(platform: KernelPlatform, cfg: Config, stream: &[u8]) -> Store {
        let t0 = time::now_ns();
        let mut engine = match Engine::restore(platform, cfg, stream) {
            Ok(e) => e,
            Err(e) => panic!("xenstored: live update: the state stream is refused: {e}"),
        };
        for c in engine.ringless_connections() {
            engine.close_connection(c);
        }
        crate::println!(
            "xenstored: live update: restored {} nodes and {} rings from a {}-byte state stream in {} us",
            engine.node_count(),
            engine.platform().rings.by_conn.len(),
            stream.len(),
            time::now_ns().saturating_sub(t0) / 1000
        );
        engine
    }

    struct Dispatcher {
        engine: Store,
        /// The log file's device (the stub's own engine connection and 9pfs port).
        log: Option<LogDevice>,
        /// The metrics endpoint (`--metrics`), run after the rings.
        metrics: Option<Endpoint>,
        virq_port: Option<Port>,
        /// The VIRQ_DOM_EXC scan under way, in steps.
        scan: Scan,
        /// Rings to service, in turn order.
        active: VecDeque<ConnId>,
        /// The members of `active`.
        queued: BTreeSet<ConnId>,
        /// Rings with unread requests the engine does not accept yet (outstanding-request
        /// quota or write-rate limit), polled again after `THROTTLE_POLL_NS`.
        throttled: BTreeSet<ConnId>,
        /// A live update is under way: the log device has until then to close.
        lu_deadline: Option<u64>,
        /// After a live update: when the previous kernel stopped serving (system time).
        stopped_at: Option<u64>,
    }

    impl Dispatcher {
        /// The rings, which the engine's platform owns.
        fn rings(&mut self) -> &mut Rings {
            &mut self.engine.platform().rings
        }

        /// Queues `conn`'s ring for service; the log device's connection is served at once,
        /// the metrics endpoint's takes its replies itself.
        fn activate(&mut self, conn: ConnId) {
            if let Some(log) = self.log.as_mut().filter(|l| l.conn() == conn) {
                log.on_store(&mut self.engine);
                return;
            }
            if self.metrics.as_ref().is_some_and(|m| m.conn() == conn) {
                return;
            }
            if self.queued.insert(conn) {
                self.active.push_back(conn);
            }
        }

        fn run(mut self) -> ! {
            let mut ports = Vec::new();
            let mut next_tick = time::now_ns() + TICK_NS;
            let mut poll_at: Option<u64> = None;
            let mut metrics_due = 0;
            loop {
                if poll_at.is_none() && !self.throttled.is_empty() {
                    poll_at = Some(time::now_ns() + THROTTLE_POLL_NS);
                }
                let mut deadline = poll_at.map_or(next_tick, |p| p.min(next_tick));
                if let Some(m) = self.metrics.as_mut() {
                    deadline = deadline.min(m.next_wake().max(time::now_ns() + METRICS_MIN_NS));
                }
                let idle = self.active.is_empty() && !self.scan.busy();
                if idle {
                    WAKE.wait_until_or(deadline, any_pending);
                    WAKEUPS.fetch_add(1, Ordering::Relaxed);
                }
                let woke = time::now_ns();
                ports.clear();
                take_pending(&mut ports);
                for &p in &ports {
                    if Some(p) == self.virq_port {
                        self.scan.event();
                    } else if let Some(&c) = self.rings().by_port.get(&p) {
                        if self.queued.insert(c) {
                            self.active.push_back(c);
                        }
                    }
                }
                if self.scan.busy() {
                    self.scan_step();
                }
                let now = time::now_ns();
                if now >= next_tick {
                    self.engine.tick();
                    next_tick = now + TICK_NS;
                    self.poll_quiet_rings();
                }
                if poll_at.is_some_and(|p| now >= p) {
                    poll_at = None;
                    for c in core::mem::take(&mut self.throttled) {
                        self.activate(c);
                    }
                }
                for c in self.engine.take_ready() {
                    self.activate(c);
                }
                self.pass();
                if let Some(t) = self.stopped_at.take() {
                    crate::println!(
                        "xenstored: live update: the store was unavailable for {} us (the previous kernel's last ring service to this one's first)",
                        time::now_ns().saturating_sub(t) / 1000
                    );
                }
                REQUESTS.store(self.engine.requests(), Ordering::Relaxed);
                EVENTS.store(self.engine.events(), Ordering::Relaxed);
                self.rings().retired.clear();
                if let Some(log) = self.log.as_mut() {
                    log.poll(&mut self.engine);
                }
                if let Some(m) = self.metrics.as_mut() {
                    let now = time::now_ns();
                    if self.active.is_empty() || now >= metrics_due {
                        metrics_due = now + METRICS_MIN_NS * 10;
                        m.step(&mut self.engine, &host);
                    }
                }
                // Watch events the log device's and the endpoint's own writes raised (for
                // their backends' connections) go out now, not at the next wake-up.
                for c in self.engine.take_ready() {
                    self.activate(c);
                }
                if self.engine.live_update_pending().is_some() {
                    self.live_update_step();
                }
                AWAKE_NS.fetch_add(time::now_ns().saturating_sub(woke), Ordering::Relaxed);
                if !self.active.is_empty() || self.scan.busy() {
                    crate::sched::yield_now();
                }
            }
        }

        /// An accepted live update: closes the log device (serving on meanwhile), then
        /// switches, or answers why it could not.
        fn live_update_step(&mut self) {
            let now = time::now_ns();
            let deadline = match self.lu_deadline {
                Some(d) => d,
                None => {
                    if let Some(log) = self.log.as_mut() {
                        log.begin_close(&mut self.engine);
                    }
                    if let Some(m) = self.metrics.as_mut() {
                        m.begin_close();
                    }
                    *self.lu_deadline.insert(now + LOG_CLOSE_NS)
                }
            };
            match self.metrics.as_ref().map_or(Some(true), |m| m.closed()) {
                None if now < deadline => return,
                None => {
                    return self.live_update_failed(
                        "Live update failed: the metrics vif's backend did not close it in time.",
                    )
                }
                Some(false) => {
                    return self.live_update_failed(
                        "Live update failed: a network backend keeps pages of the stub mapped.",
                    )
                }
                Some(true) => {}
            }
            match self.log.as_mut().map_or(Some(true), |l| l.closed()) {
                None if now < deadline => {}
                Some(true) => self.switch(),
                Some(false) => self.live_update_failed(
                    "Live update failed: the 9pfs backend keeps the log device's ring mapped.",
                ),
                None => self.live_update_failed(
                    "Live update failed: the 9pfs backend did not close the log device in time.",
                ),
            }
        }

        /// Stages the new kernel (the image the engine keeps) with the engine's state and
        /// switches to it; returns only if staging failed (answered, and the stub serves on).
        fn switch(&mut self) {
            let stopped = time::now_ns();
            let state = self.engine.live_update_state();
            let Some((image, cmdline)) = self.engine.live_update_pending() else {
                return;
            };
            let cmdline = next_kernel(
                cmdline.unwrap_or(crate::start_info::get().cmd_line()),
                stopped,
            );
            let image_len = image.len();
            match crate::handover::prepare(image, &state, &cmdline) {
                Err(e) => self.live_update_failed(&alloc::format!("Live update failed: {e}.")),
                Ok(next) => {
                    crate::println!(
                        "xenstored: live update: switching to the new kernel ({image_len} B image, {} B state, command line \"{cmdline}\")",
                        state.len()
                    );
                    if let Some(p) = self.virq_port {
                        let _ = events::close(p);
                    }
                    let _ = events::close(time::timer_port());
                    self.engine.platform().let_rings_go();
                    next.commit()
                }
            }
        }

        /// Answers the `-s` request with `why`; a closed log device connects again.
        fn live_update_failed(&mut self, why: &str) {
            crate::log_warn!("xenstored: {why}");
            self.engine.live_update_fail(why);
            self.lu_deadline = None;
            if let Some(m) = self.metrics.as_mut() {
                m.resume();
            }
            if let (Some(old), Ok(domid)) = (self.log.take(), events::own_domid()) {
                self.log = Some(old.restart(&mut self.engine, domid, on_event));
            }
        }

        /// Services every queued ring once, in turn, with one budget each.
        fn pass(&mut self) {
            let turn: Vec<ConnId> = self.active.drain(..).collect();
            self.queued.clear();
            for c in turn {
                let t0 = time::now_ns();
                let after = self.service(c);
                let dt = time::now_ns().saturating_sub(t0);
                SERVICES.fetch_add(1, Ordering::Relaxed);
                SERVICE_NS.fetch_add(dt, Ordering::Relaxed);
                if dt > SLOWEST_NS.fetch_max(dt, Ordering::Relaxed) {
                    crate::log_debug!(
                        "xenstored: conn {c}: slowest ring service so far: {} us",
                        dt / 1000
                    );
                }
                match after {
                    After::Idle => {}
                    After::More => self.activate(c),
                    After::Throttled => {
                        self.throttled.insert(c);
                    }
                }
                // Replies and events for other rings are picked up at once.
                for r in self.engine.take_ready() {
                    self.activate(r);
                }
            }
        }

        fn service(&mut self, conn: ConnId) -> After {
            let (mut page, port, domid, failed) = match self.rings().by_conn.get(&conn) {
                Some(r) => (r.page(), r.port, r.domid, r.failed),
                None => return After::Idle,
            };
            if failed.is_some() && page.load_u32(CONNECTION) != RECONNECT {
                return After::Idle;
            }
            let out = {
                let mut b = Budgeted::new(&mut page, PASS_BUDGET);
                ring::service(&mut self.engine, conn, &mut b)
            };
            if out.notify {
                let _ = events::send(port);
            }
            let Some(r) = self.rings().by_conn.get_mut(&conn) else {
                return After::Idle;
            };
            if r.failed != out.error {
                if let Some(e) = out.error {
                    crate::log_warn!(
                        "xenstored: dom{domid}: ring error {e} ({}), connection closed",
                        error_name(e)
                    );
                }
                r.failed = out.error;
            }
            if out.error.is_some() {
                return After::Idle;
            }
            // One more look, after a full fence: the guest may have produced requests or
            // consumed replies after ring::service last looked and skipped its notification
            // because it saw us still busy (Linux notifies only when it finds `req_cons` at
            // its old `req_prod`, or finds the response ring full). Without this look such a
            // ring would wait for an event that never comes.
            if self.has_work(conn) {
                return After::More;
            }
            if page.load_u32(REQ_PROD) != page.load_u32(REQ_CONS) {
                // Held back by the outstanding-request quota (the guest's next read of a
                // reply notifies us) or by the write-rate limit (the next poll).
                After::Throttled
            } else {
                After::Idle
            }
        }

        /// Tick: looks at every ring that is not queued and services those with work that no
        /// event announced (a lost wake-up then costs at most one tick); counts them, logs the
        /// first at info level (tests/boot/stub-latency.sh looks for it) and all at debug.
        fn poll_quiet_rings(&mut self) {
            let queued = &self.queued;
            let quiet: Vec<ConnId> = self
                .engine
                .platform()
                .rings
                .by_conn
                .keys()
                .copied()
                .filter(|c| !queued.contains(c))
                .collect();
            for c in quiet {
                if self.has_work(c) {
                    let domid = self.rings().by_conn.get(&c).map_or(0, |r| r.domid);
                    let n = UNANNOUNCED.fetch_add(1, Ordering::Relaxed) + 1;
                    let wakeups = WAKEUPS.load(Ordering::Relaxed);
                    if n == 1 {
                        crate::log_info!(
                            "xenstored: dom{domid}: ring had work that no event announced (lost wake-up; more at debug level)"
                        );
                    }
                    crate::log_debug!(
                        "xenstored: dom{domid}: lost wake-up {n} (after {wakeups} wake-ups)"
                    );
                    self.activate(c);
                }
            }
        }

        /// True when `conn`'s ring has unread requests the engine would take, queued output
        /// and room in the response ring, or (closed ring) a reconnection request. Fences
        /// first, so that our own index stores are visible before the guest's are read.
        fn has_work(&mut self, conn: ConnId) -> bool {
            let (page, failed) = match self.rings().by_conn.get(&conn) {
                Some(r) => (r.page(), r.failed),
                None => return false,
            };
            page.barrier();
            if failed.is_some() {
                return page.load_u32(CONNECTION) == RECONNECT;
            }
            let unread = page.load_u32(REQ_PROD) != page.load_u32(REQ_CONS);
            let used = page
                .load_u32(RSP_PROD)
                .wrapping_sub(page.load_u32(RSP_CONS));
            (unread && self.engine.wants_input(conn))
                || (self.engine.has_output(conn) && used < RING_SIZE)
        }

        /// VIRQ_DOM_EXC: asks Xen about the next `SCAN_STEP` domains of the scan under way
        /// (see [`Scan`]); a domain gone from the store meanwhile is skipped.
        fn scan_step(&mut self) {
            let t0 = time::now_ns();
            let known = &self.engine.platform().rings.known;
            let (batch, started) = self
                .scan
                .step(SCAN_STEP, || known.iter().copied().collect());
            if started {
                SCANS.fetch_add(1, Ordering::Relaxed);
            }
            for domid in batch {
                let Ok(d) = u16::try_from(domid) else {
                    continue;
                };
                if d == 0 || !self.rings().known.contains(&domid) {
                    continue;
                }
                SCANNED.fetch_add(1, Ordering::Relaxed);
                let answer = hypercall::getdomaininfo(d)
                    .map(|i| (i.domain, DomainInfoFlags::from_bits_retain(i.flags)));
                match classify(d, answer) {
                    DomState::Running => {}
                    DomState::Shutdown => self.engine.domain_shutdown(domid),
                    DomState::Gone => {
                        crate::log_info!("xenstored: dom{domid} is gone");
                        self.rings().known.remove(&domid);
                        self.engine.domain_gone(domid);
                    }
                    DomState::Unknown(e) => {
                        crate::log_warn!("xenstored: getdomaininfo(dom{domid}) failed: {e}");
                    }
                }
            }
            SCAN_NS.fetch_add(time::now_ns().saturating_sub(t0), Ordering::Relaxed);
        }
    }

    enum After {
        Idle,
        More,
        Throttled,
    }

    fn error_name(e: u32) -> &'static str {
        match e {
            ring::ERROR_RINGIDX => "bad ring indices",
            ring::ERROR_PROTO => "message too long",
            _ => "set by the guest",
        }
    }
}
