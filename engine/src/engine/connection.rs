//! Connections: their queued output and what it is charged, back-pressure, and the
//! connection lifecycle (open, reset, close).

use super::*;

/// Replies with at most this many payload bytes are queued even beyond the memory quota (as
/// in C xenstored: an error reply must always be possible).
pub(super) const SMALL_REPLY: usize = 16;

/// Output bytes queued for a privileged connection before its input is paused.
pub(super) const PRIV_OUT_LIMIT: usize = 4 << 20;

/// A queued reply or watch event.
pub(super) struct OutMsg {
    pub(super) data: Rc<[u8]>,
    pub(super) at: u64,
    pub(super) event: bool,
}

/// One connection: a socket client or a domain's ring.
pub(super) struct Conn {
    pub(super) domid: u32,
    pub(super) privileged: bool,
    pub(super) inbuf: Vec<u8>,
    pub(super) out: VecDeque<OutMsg>,
    /// Bytes of the messages in `out` (charged to the domain's memory quota).
    pub(super) out_bytes: usize,
    /// Bytes held by the open transactions (sum of their `bytes`, charged likewise).
    pub(super) tx_bytes: usize,
    pub(super) out_off: usize,
    /// The watch events in `out` not yet started, by content: a duplicate is not queued
    /// again (found without scanning the queue).
    pub(super) queued_events: BTreeMap<Rc<[u8]>, u32>,
    /// Events were dropped since the queue last emptied (the warning is logged once).
    pub(super) dropping: bool,
    /// Sorted by `seq`.
    pub(super) watches: Vec<Watch>,
    pub(super) next_watch: u64,
    pub(super) txs: BTreeMap<u32, Tx>,
    pub(super) next_tx: u32,
    pub(super) ignored: bool,
    pub(super) in_ready: bool,
}

/// What a connection may still add before a memory bound refuses it (None: unbounded).
#[derive(Clone, Copy, Default)]
pub(super) struct Room {
    /// Before its domain's `memory` quota.
    pub(super) domain: Option<usize>,
    /// Before `Config::global_memory`.
    pub(super) global: Option<usize>,
}

/// Takes one queued event out of the duplicate index.
pub(super) fn unindex(index: &mut BTreeMap<Rc<[u8]>, u32>, data: &[u8]) {
    if let Some(n) = index.get_mut(data) {
        *n -= 1;
        if *n == 0 {
            index.remove(data);
        }
    }
}

/// Drops the queued watch events of a connection that `drop` picks, oldest first (never a
/// reply, nor the message being sent), out of the duplicate index too; returns how many
/// went and their bytes (already taken off `out_bytes`).
pub(super) fn drop_events(c: &mut Conn, mut drop: impl FnMut(&OutMsg) -> bool) -> (usize, usize) {
    let mut sending = c.out_off > 0;
    let (mut n, mut freed) = (0, 0);
    let index = &mut c.queued_events;
    c.out.retain(|m| {
        if mem::take(&mut sending) || !m.event || !drop(m) {
            return true;
        }
        freed += m.data.len();
        n += 1;
        unindex(index, &m.data);
        false
    });
    c.out_bytes -= freed;
    (n, freed)
}

impl Conn {
    pub(super) fn new(domid: u32, privileged: bool) -> Conn {
        Conn {
            domid,
            privileged,
            inbuf: Vec::new(),
            out: VecDeque::new(),
            out_bytes: 0,
            tx_bytes: 0,
            out_off: 0,
            queued_events: BTreeMap::new(),
            dropping: false,
            watches: Vec::new(),
            next_watch: 0,
            txs: BTreeMap::new(),
            next_tx: 1,
            ignored: false,
            in_ready: false,
        }
    }
}

impl Room {
    /// True if some bound applies.
    pub(super) fn bounded(self) -> bool {
        self.domain.is_some() || self.global.is_some()
    }

    /// True if `domain` more bytes charged to the connection's domain, `total` more over
    /// all domains, do not fit.
    pub(super) fn exceeded(self, domain: usize, total: usize) -> bool {
        self.domain.is_some_and(|r| domain > r) || self.global.is_some_and(|r| total > r)
    }
}

impl<P: Platform> Engine<P> {
    /// A new connection speaking for `domid` (unix-socket clients use 0). Domain ring
    /// connections are created by INTRODUCE instead.
    pub fn new_connection(&mut self, domid: u32) -> ConnId {
        let conn = Conn::new(domid, self.is_privileged(domid));
        match self.conns.iter().position(Option::is_none) {
            Some(i) => {
                self.conns[i] = Some(conn);
                i
            }
            None => {
                self.conns.push(Some(conn));
                self.conns.len() - 1
            }
        }
    }

    /// Closes a socket connection: its watches and transactions go away. (A domain's
    /// connection stays until RELEASE or death; use [`Engine::reset_connection`].)
    pub fn close_connection(&mut self, conn: ConnId) {
        let domain = self
            .connection_domid(conn)
            .and_then(|d| self.domains.get(&d));
        if domain.is_some_and(|d| d.conn == Some(conn)) {
            self.reset_connection(conn);
        } else {
            self.retire(conn);
            if let Some(slot) = self.conns.get_mut(conn) {
                *slot = None;
            }
        }
    }

    /// Takes what a connection holds out of the engine-wide bookkeeping (its watches, open
    /// transactions and bytes), before it is dropped or replaced.
    pub(super) fn retire(&mut self, conn: ConnId) {
        let Some(Some(c)) = self.conns.get(conn) else {
            return;
        };
        for w in &c.watches {
            self.watch_index.remove(&w.path, conn, w.seq);
        }
        self.open_txs -= c.txs.len();
        self.conn_bytes -= c.out_bytes + c.tx_bytes;
    }

    /// Reconnection: drops the connection's partial input, queued output, watches and
    /// transactions, and clears its error state. Its nodes stay.
    pub fn reset_connection(&mut self, conn: ConnId) {
        self.retire(conn);
        if let Some(Some(c)) = self.conns.get_mut(conn) {
            let fresh = Conn::new(c.domid, c.privileged);
            *c = fresh;
        }
    }

    /// The domain a connection speaks for.
    pub fn connection_domid(&self, conn: ConnId) -> Option<u32> {
        self.conns.get(conn)?.as_ref().map(|c| c.domid)
    }

    /// Connections that got output since the last call and still have it queued (output a
    /// local caller already took with [`Engine::output_all`] does not make one ready).
    pub fn take_ready(&mut self) -> Vec<ConnId> {
        let mut v = mem::take(&mut self.ready);
        v.sort_unstable();
        v.dedup();
        v.retain(|&c| match self.conns.get_mut(c) {
            Some(Some(conn)) => {
                conn.in_ready = false;
                !conn.out.is_empty()
            }
            _ => false,
        });
        v
    }

    /// True if the connection has queued output.
    pub fn has_output(&self, conn: ConnId) -> bool {
        matches!(self.conns.get(conn), Some(Some(c)) if !c.out.is_empty())
    }

    /// Moves as many queued output bytes as fit into `dst`; returns how many.
    pub fn output_into(&mut self, conn: ConnId, dst: &mut [u8]) -> usize {
        let Some(Some(c)) = self.conns.get_mut(conn) else {
            return 0;
        };
        let mut n = 0;
        while n < dst.len() {
            let Some(front) = c.out.front() else { break };
            if c.out_off == 0 && front.event {
                unindex(&mut c.queued_events, &front.data);
            }
            let rest = front.data.get(c.out_off..).unwrap_or(&[]);
            let k = rest.len().min(dst.len() - n);
            dst[n..n + k].copy_from_slice(&rest[..k]);
            n += k;
            c.out_off += k;
            if c.out_off >= front.data.len() {
                c.out_bytes -= front.data.len();
                self.conn_bytes -= front.data.len();
                c.out.pop_front();
                c.out_off = 0;
            }
        }
        if c.out.is_empty() {
            c.dropping = false;
        }
        n
    }

    /// Appends all queued output to `dst`.
    pub fn output_all(&mut self, conn: ConnId, dst: &mut Vec<u8>) {
        let Some(Some(c)) = self.conns.get_mut(conn) else {
            return;
        };
        while let Some(front) = c.out.pop_front() {
            dst.extend_from_slice(front.data.get(c.out_off..).unwrap_or(&[]));
            c.out_off = 0;
        }
        self.conn_bytes -= c.out_bytes;
        c.out_bytes = 0;
        c.queued_events.clear();
        c.dropping = false;
    }

    /// Whether the host should read more input for this connection now: false while the
    /// client has too many unread replies (`outstanding` quota) or is over its write rate.
    pub fn wants_input(&mut self, conn: ConnId) -> bool {
        let Some(Some(c)) = self.conns.get(conn) else {
            return false;
        };
        if c.ignored {
            return false;
        }
        if c.privileged {
            return c.out_bytes < PRIV_OUT_LIMIT;
        }
        let domid = c.domid;
        let queued = c.out.len();
        let now = self.platform.now_ms();
        let Some(d) = self.domains.get_mut(&domid) else {
            return true;
        };
        self.wrl.update(d, now);
        if over(queued + 1, d.quotas.outstanding) {
            self.counters.held_outstanding += 1;
            return false;
        }
        if d.wrl_credit < 0 {
            self.counters.held_rate += 1;
            return false;
        }
        true
    }

    /// Drops watch events that waited longer than the timeout for unprivileged clients.
    pub fn tick(&mut self) {
        let now = self.platform.now_ms();
        let priv_domid = self.cfg.priv_domid;
        for (&domid, d) in self.domains.iter_mut() {
            if d.conn.is_some() && domid != 0 && Some(domid) != priv_domid {
                self.wrl.update(d, now);
            }
        }
        let limit = self.cfg.watch_event_timeout_ms;
        for c in self.conns.iter_mut().flatten() {
            if c.privileged {
                continue;
            }
            let (_, freed) = drop_events(c, |m| now.saturating_sub(m.at) >= limit);
            self.conn_bytes -= freed;
        }
    }

    /// Bytes charged to a connection's domain: the node records it owns, the connection's
    /// queued output and its open transactions' data.
    pub(super) fn charged(&self, c: &Conn) -> usize {
        let nodes = self
            .usage
            .get(&c.domid)
            .map_or(0, |u| u.bytes.max(0) as usize);
        nodes + c.out_bytes + c.tx_bytes
    }

    /// Bytes charged to all domains together (what `global_memory` bounds): running totals.
    pub(super) fn charged_total(&self) -> usize {
        self.usage_total.max(0) as usize + self.conn_bytes
    }

    /// What an unprivileged connection may still add before a memory bound refuses it.
    pub(super) fn room(&self, c: &Conn) -> Room {
        if c.privileged {
            return Room::default();
        }
        let left = |limit: u32, used: usize| (limit as usize).saturating_sub(used);
        let memory = self.quotas_of(c.domid).memory;
        let global = self.cfg.global_memory;
        let global = if self.platform.memory_low() {
            Some(0)
        } else {
            (global != 0).then(|| left(global, self.charged_total()))
        };
        Room {
            domain: (memory != 0).then(|| left(memory, self.charged(c))),
            global,
        }
    }

    /// Whether `extra` more output bytes for a connection would exceed its domain's memory
    /// quota or the global bound.
    pub(super) fn over_memory(&self, c: &Conn, extra: usize) -> bool {
        self.room(c).exceeded(extra, extra)
    }

    /// Queues a message. A watch event already queued (not yet started) is not queued
    /// again; one that would exceed an unprivileged domain's memory quota is dropped (as in
    /// C xenstored); a privileged connection's queue is bounded by dropping its oldest
    /// events. Replies are always queued (see `process`).
    pub(super) fn push(&mut self, conn: ConnId, data: Vec<u8>, event: bool) {
        let now = if event { self.platform.now_ms() } else { 0 };
        let Some(Some(c)) = self.conns.get(conn) else {
            return;
        };
        if event {
            if c.queued_events.contains_key(data.as_slice()) {
                return;
            }
            if self.over_memory(c, data.len()) {
                return;
            }
        }
        let limit = self.cfg.priv_queue_limit;
        let Some(Some(c)) = self.conns.get_mut(conn) else {
            return;
        };
        if event && c.privileged && limit != 0 && c.out_bytes + data.len() > limit {
            // The oldest go, down to three quarters of the bound.
            let mut excess = c.out_bytes.saturating_sub(limit / 4 * 3);
            let (dropped, freed) = drop_events(c, |m| {
                let older = excess > 0;
                excess = excess.saturating_sub(m.data.len());
                older
            });
            self.conn_bytes -= freed;
            if !c.dropping {
                c.dropping = true;
                let domid = c.domid;
                self.platform.log(&format!(
                    "connection {conn} (dom{domid}) does not read its watch events: dropped the oldest {dropped}, more to follow until it reads"
                ));
            }
        }
        if self.logging {
            let domid = c.domid;
            let line = super::trace::line(if event { "EVT" } else { "OUT" }, domid, &data);
            self.platform.log(&line);
        }
        let Some(Some(c)) = self.conns.get_mut(conn) else {
            return;
        };
        let data: Rc<[u8]> = Rc::from(data);
        if event {
            *c.queued_events.entry(data.clone()).or_insert(0) += 1;
        }
        c.out_bytes += data.len();
        self.conn_bytes += data.len();
        c.out.push_back(OutMsg {
            data,
            at: now,
            event,
        });
        if !c.in_ready {
            c.in_ready = true;
            self.ready.push(conn);
        }
        if event {
            self.events += 1;
        }
    }
}
