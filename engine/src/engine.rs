//! The engine: connections, request parsing and dispatch, transactions, watches and the
//! domain registry. See the crate documentation for how a host drives it.

use crate::domain::{Domain, Platform, FEATURES};
use crate::path::{self, canonicalize};
use crate::perms::{self, Caller, Perm, IGNORE, READ};
use crate::quota::{over, Quotas};
use crate::store::{access, lookup, Change, Store, Usage};
use crate::transaction::{self, apply, path_charge, Tx, TxOp, View};
use crate::tree::{self, Node, Tree};
use crate::watches::WatchIndex;
use crate::wire::{self, one_arg, ty, Error, Header, DOMID_SELF, HEADER_LEN, PAYLOAD_MAX};
use crate::wrl::{Wrl, WRITE_COST};
use crate::ConnId;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::mem;

/// Engine settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Global quotas (each domain starts with these).
    pub quotas: Quotas,
    /// Soft memory quota per domain (CONTROL `quota-soft`): only reported.
    pub soft_memory: u32,
    /// An extra privileged domain (`--priv-domid`).
    pub priv_domid: Option<u32>,
    /// Watch events queued for an unprivileged domain are dropped after this long.
    pub watch_event_timeout_ms: u64,
    /// Bound on the bytes charged to all domains together (node records, queued output,
    /// open transaction data), for a server whose heap is smaller than the domains' memory
    /// quotas added up: unprivileged growth beyond it is refused (ENOMEM). 0 = unlimited.
    pub global_memory: u32,
    /// Bound on the bytes queued for a privileged connection that does not read: beyond
    /// it, its oldest watch events are dropped (logged once). 0 = unlimited.
    pub priv_queue_limit: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            quotas: Quotas::default(),
            soft_memory: 2048 * 1024,
            priv_domid: None,
            watch_event_timeout_ms: 20_000,
            global_memory: 0,
            priv_queue_limit: 16 << 20,
        }
    }
}

/// Why a connection cannot go on (the host closes it, or sets the ring's error field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnError {
    /// A header announced more than 4096 payload bytes (ring error PROTO).
    Proto,
    /// The connection id is unknown or was already shut.
    Closed,
}

/// Replies with at most this many payload bytes are queued even beyond the memory quota (as
/// in C xenstored: an error reply must always be possible).
const SMALL_REPLY: usize = 16;
/// Output bytes queued for a privileged connection before its input is paused.
const PRIV_OUT_LIMIT: usize = 4 << 20;

struct Watch {
    /// The watch's number on its connection (the order watches were set).
    seq: u64,
    path: String,
    token: Vec<u8>,
    /// Bytes to strip from event paths (relative watches).
    strip: usize,
    depth: Option<u32>,
}

struct OutMsg {
    data: Rc<[u8]>,
    at: u64,
    event: bool,
}

struct Conn {
    domid: u32,
    privileged: bool,
    inbuf: Vec<u8>,
    out: VecDeque<OutMsg>,
    /// Bytes of the messages in `out` (charged to the domain's memory quota).
    out_bytes: usize,
    /// Bytes held by the open transactions (sum of their `bytes`, charged likewise).
    tx_bytes: usize,
    out_off: usize,
    /// The watch events in `out` not yet started, by content: a duplicate is not queued
    /// again (found without scanning the queue).
    queued_events: BTreeMap<Rc<[u8]>, u32>,
    /// Events were dropped since the queue last emptied (the warning is logged once).
    dropping: bool,
    /// Sorted by `seq`.
    watches: Vec<Watch>,
    next_watch: u64,
    txs: BTreeMap<u32, Tx>,
    next_tx: u32,
    ignored: bool,
    in_ready: bool,
}

impl Conn {
    fn new(domid: u32, privileged: bool) -> Conn {
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

const INTRODUCE_DOMAIN: &str = "@introduceDomain";
const RELEASE_DOMAIN: &str = "@releaseDomain";

/// The xenstore engine.
pub struct Engine<P: Platform> {
    platform: P,
    cfg: Config,
    tree: Tree,
    generation: u64,
    usage: BTreeMap<u32, Usage>,
    conns: Vec<Option<Conn>>,
    domains: BTreeMap<u32, Domain>,
    special_perms: [Vec<Perm>; 2],
    ready: Vec<ConnId>,
    logging: bool,
    pending_special: Vec<(usize, u32)>,
    deferred_events: Vec<(ConnId, Vec<u8>)>,
    wrl: Wrl,
    /// Transactions holding a view of the main store: settled when the main store changes.
    viewed: Vec<(ConnId, u32)>,
    /// The main store changed since the views were last settled.
    main_changed: bool,
    watch_index: WatchIndex,
    /// Open transactions on all connections.
    open_txs: usize,
    /// Node record bytes of all owners together (the sum of `usage`).
    usage_total: i64,
    /// Output and transaction bytes of all connections together.
    conn_bytes: usize,
}

fn n0() -> Vec<Perm> {
    alloc::vec![Perm { domid: 0, bits: 0 }]
}

impl<P: Platform> Engine<P> {
    /// A fresh store (`/`, `/tool`, `/tool/xenstored`, perms `n0`) with dom0 known.
    pub fn new(platform: P, cfg: Config) -> Self {
        let mut tree = Tree::new(Node::new(Vec::new(), n0(), 0));
        tree.attach(
            "/",
            "tool",
            tree::chain(&["tool", "xenstored"], n0(), Vec::new(), 0),
            0,
        );
        let mut e = Engine {
            platform,
            cfg,
            tree,
            generation: 0,
            usage: BTreeMap::new(),
            conns: Vec::new(),
            domains: BTreeMap::new(),
            special_perms: [n0(), n0()],
            ready: Vec::new(),
            logging: false,
            pending_special: Vec::new(),
            deferred_events: Vec::new(),
            wrl: Wrl::default(),
            viewed: Vec::new(),
            main_changed: false,
            watch_index: WatchIndex::default(),
            open_txs: 0,
            usage_total: 0,
            conn_bytes: 0,
        };
        e.recount_usage();
        e.new_domain(0);
        e
    }

    /// The platform (e.g. to drain actions it recorded).
    pub fn platform(&mut self) -> &mut P {
        &mut self.platform
    }

    fn recount_usage(&mut self) {
        let mut u: BTreeMap<u32, Usage> = BTreeMap::new();
        tree::walk(self.tree.root(), "/", |_, n| {
            let e = u.entry(n.owner()).or_default();
            e.nodes += 1;
            e.bytes += n.record_size() as i64;
        });
        self.usage_total = u.values().map(|x| x.bytes).sum();
        self.usage = u;
    }

    fn new_domain(&mut self, domid: u32) -> &mut Domain {
        let now = self.platform.now_ms();
        let quotas = self.cfg.quotas;
        // Strictly newer than every node written so far (domid-reuse checks).
        self.generation += 1;
        let gen = self.generation;
        self.domains.entry(domid).or_insert(Domain {
            gen,
            conn: None,
            shutdown_reported: false,
            quotas,
            features: FEATURES,
            target: None,
            wrl_credit: 0,
            wrl_stamp: now,
        })
    }

    /// Makes sure a domain struct exists for `domid` if the platform says it exists.
    fn ensure_domain(&mut self, domid: u32) -> bool {
        if self.domains.contains_key(&domid) {
            return true;
        }
        if domid >= DOMID_SELF || !self.platform.domain_exists(domid) {
            return false;
        }
        self.new_domain(domid);
        true
    }

    fn is_privileged(&self, domid: u32) -> bool {
        domid == 0 || Some(domid) == self.cfg.priv_domid
    }

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
    fn retire(&mut self, conn: ConnId) {
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

    /// The connection of an introduced domain.
    pub fn domain_connection(&self, domid: u32) -> Option<ConnId> {
        self.domains.get(&domid)?.conn
    }

    /// The `server_features` value for a domain's ring (SET_FEATURE may lower it).
    pub fn domain_features(&self, domid: u32) -> u32 {
        self.domains.get(&domid).map_or(FEATURES, |d| d.features)
    }

    /// Connections that got output since the last call.
    pub fn take_ready(&mut self) -> Vec<ConnId> {
        let mut v = mem::take(&mut self.ready);
        v.sort_unstable();
        v.dedup();
        v.retain(|&c| matches!(self.conns.get(c), Some(Some(_))));
        for &c in &v {
            if let Some(Some(conn)) = self.conns.get_mut(c) {
                conn.in_ready = false;
            }
        }
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
        !over(queued + 1, d.quotas.outstanding) && d.wrl_credit >= 0
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
            let started = c.out_off > 0;
            let mut i = 0;
            let mut dropped = 0;
            let index = &mut c.queued_events;
            c.out.retain(|m| {
                let keep = (i == 0 && started) || !m.event || now.saturating_sub(m.at) < limit;
                i += 1;
                if !keep {
                    dropped += m.data.len();
                    unindex(index, &m.data);
                }
                keep
            });
            c.out_bytes -= dropped;
            self.conn_bytes -= dropped;
        }
    }

    /// Feeds bytes received on a connection; every complete request is processed and its
    /// reply (and any watch events) queued. Partial messages are kept for the next call.
    pub fn feed(&mut self, conn: ConnId, bytes: &[u8]) -> Result<(), ConnError> {
        let mut buf = match self.conns.get_mut(conn) {
            Some(Some(c)) if !c.ignored => mem::take(&mut c.inbuf),
            _ => return Err(ConnError::Closed),
        };
        buf.extend_from_slice(bytes);
        let mut pos = 0;
        let mut result = Ok(());
        while let Some(h) = buf.get(pos..).and_then(Header::parse) {
            if h.len as usize > PAYLOAD_MAX {
                result = Err(ConnError::Proto);
                break;
            }
            let end = pos + HEADER_LEN + h.len as usize;
            let Some(payload) = buf.get(pos + HEADER_LEN..end) else {
                break;
            };
            self.process(conn, h, payload);
            pos = end;
            if !matches!(self.conns.get(conn), Some(Some(_))) {
                return Ok(());
            }
        }
        buf.drain(..pos);
        if let Some(Some(c)) = self.conns.get_mut(conn) {
            if result.is_err() {
                c.ignored = true;
                buf.clear();
            }
            c.inbuf = buf;
        }
        result
    }

    /// A [`Store`] on the main tree, collecting the changes watches must see; `force` skips
    /// permission and quota checks (replaying a commit, removing a dead domain's nodes).
    fn main_store<'a>(
        &'a mut self,
        quotas: &'a Quotas,
        force: bool,
        changes: &'a mut Vec<Change>,
    ) -> Store<'a> {
        self.main_changed = true;
        Store {
            tree: &mut self.tree,
            generation: &mut self.generation,
            usage: &mut self.usage,
            total: Some(&mut self.usage_total),
            base_usage: None,
            domains: &self.domains,
            quotas,
            force,
            changes: Some(changes),
            written: 0,
        }
    }

    /// Bytes charged to a connection's domain: the node records it owns, the connection's
    /// queued output and its open transactions' data.
    fn charged(&self, c: &Conn) -> usize {
        let nodes = self
            .usage
            .get(&c.domid)
            .map_or(0, |u| u.bytes.max(0) as usize);
        nodes + c.out_bytes + c.tx_bytes
    }

    /// Bytes charged to all domains together (what `global_memory` bounds): running totals.
    fn charged_total(&self) -> usize {
        self.usage_total.max(0) as usize + self.conn_bytes
    }

    /// What an unprivileged connection may still add before a memory bound refuses it.
    fn room(&self, c: &Conn) -> Room {
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
    fn over_memory(&self, c: &Conn, extra: usize) -> bool {
        self.room(c).exceeded(extra, extra)
    }

    /// Queues a message. A watch event already queued (not yet started) is not queued
    /// again; one that would exceed an unprivileged domain's memory quota is dropped (as in
    /// C xenstored); a privileged connection's queue is bounded by dropping its oldest
    /// events. Replies are always queued (see `process`).
    fn push(&mut self, conn: ConnId, data: Vec<u8>, event: bool) {
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
            let before = c.out_bytes;
            let dropped = drop_oldest_events(c, limit / 4 * 3);
            self.conn_bytes -= before - c.out_bytes;
            if !c.dropping {
                c.dropping = true;
                let domid = c.domid;
                self.platform.log(&format!(
                    "connection {conn} (dom{domid}) does not read its watch events: dropped the oldest {dropped}, more to follow until it reads"
                ));
            }
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
    }

    fn caller(&self, conn: &Conn) -> Caller {
        Caller {
            domid: conn.domid,
            target: self.domains.get(&conn.domid).and_then(|d| d.target),
            privileged: conn.privileged,
        }
    }

    fn quotas_of(&self, domid: u32) -> Quotas {
        self.domains
            .get(&domid)
            .map_or(self.cfg.quotas, |d| d.quotas)
    }

    fn process(&mut self, conn: ConnId, h: Header, payload: &[u8]) {
        let mut reply = Vec::new();
        let mut changes = Vec::new();
        let res = self.dispatch(conn, h, payload, &mut reply, &mut changes);
        if self.main_changed {
            self.settle_views();
        }
        let mut msg = Vec::with_capacity(HEADER_LEN + reply.len().max(8));
        let res = match res {
            Ok(()) if reply.len() > PAYLOAD_MAX => Err(Error::TooBig),
            r => r,
        };
        let too_big = res.is_ok()
            && reply.len() > SMALL_REPLY
            && matches!(self.conns.get(conn), Some(Some(c)) if self.over_memory(c, HEADER_LEN + reply.len()));
        let res = if too_big { Err(Error::Nomem) } else { res };
        match res {
            Ok(()) => wire::encode_msg(&mut msg, h.ty, h.req_id, h.tx_id, &reply),
            Err(e) => {
                let mut p = Vec::with_capacity(12);
                p.extend_from_slice(e.name().as_bytes());
                p.push(0);
                wire::encode_msg(&mut msg, ty::ERROR, h.req_id, h.tx_id, &p);
            }
        }
        // As C xenstored: events caused by a request precede its reply; the initial event
        // of a WATCH follows the reply.
        for ch in &changes {
            self.fire(ch);
        }
        if matches!(self.conns.get(conn), Some(Some(_))) {
            self.push(conn, msg, false);
        }
        for (c, ev) in mem::take(&mut self.deferred_events) {
            self.push(c, ev, true);
        }
        let pending = mem::take(&mut self.pending_special);
        for (which, domid) in pending {
            self.fire_special(which, domid);
        }
    }
}

/// What a connection may still add before a memory bound refuses it (None: unbounded).
#[derive(Clone, Copy, Default)]
struct Room {
    /// Before its domain's `memory` quota.
    domain: Option<usize>,
    /// Before `Config::global_memory`.
    global: Option<usize>,
}

impl Room {
    /// True if some bound applies.
    fn bounded(self) -> bool {
        self.domain.is_some() || self.global.is_some()
    }

    /// True if `domain` more bytes charged to the connection's domain, `total` more over
    /// all domains, do not fit.
    fn exceeded(self, domain: usize, total: usize) -> bool {
        self.domain.is_some_and(|r| domain > r) || self.global.is_some_and(|r| total > r)
    }
}

/// Which tree a request works on.
enum Target {
    Main,
    Tx(u32),
}

const PRIV_ONLY: [u32; 10] = [
    ty::CONTROL,
    ty::INTRODUCE,
    ty::RELEASE,
    ty::IS_DOMAIN_INTRODUCED,
    ty::RESUME,
    ty::SET_TARGET,
    ty::GET_FEATURE,
    ty::SET_FEATURE,
    ty::GET_QUOTA,
    ty::SET_QUOTA,
];

/// Charges `writes` node writes to an unprivileged caller's write-rate credit (it can go
/// into debt only while a transaction is open).
fn wrl_debit<P: Platform>(e: &mut Engine<P>, caller: &Caller, writes: u32) {
    if caller.privileged || writes == 0 {
        return;
    }
    let held = e.any_transaction();
    let now = e.platform.now_ms();
    if let Some(d) = e.domains.get_mut(&caller.domid) {
        e.wrl.debit(d, now, WRITE_COST * i64::from(writes), held);
    }
}

impl<P: Platform> Engine<P> {
    fn dispatch(
        &mut self,
        cid: ConnId,
        h: Header,
        payload: &[u8],
        reply: &mut Vec<u8>,
        changes: &mut Vec<Change>,
    ) -> Result<(), Error> {
        let Some(Some(conn)) = self.conns.get(cid) else {
            return Err(Error::Io);
        };
        let caller = self.caller(conn);
        let known = matches!(
            h.ty,
            ty::CONTROL..=ty::SET_PERMS | ty::IS_DOMAIN_INTRODUCED..=ty::SET_TARGET | ty::RESET_WATCHES..=ty::SET_QUOTA
        );
        if !known {
            return Err(Error::Nosys);
        }
        if PRIV_ONLY.contains(&h.ty) && !caller.privileged {
            return Err(Error::Acces);
        }
        let target = if matches!(h.ty, ty::WATCH | ty::UNWATCH) || h.tx_id == 0 {
            Target::Main
        } else if conn.txs.contains_key(&h.tx_id) {
            Target::Tx(h.tx_id)
        } else {
            return Err(Error::Noent);
        };
        match h.ty {
            ty::READ => {
                let p = self.path_arg(&caller, path_one_arg(payload)?)?;
                self.with_read(cid, &target, &caller, &p, |n| {
                    reply.extend_from_slice(&n.value)
                })
            }
            ty::DIRECTORY => {
                let p = self.path_arg(&caller, path_one_arg(payload)?)?;
                self.with_read(cid, &target, &caller, &p, |n| {
                    for c in n.child_names() {
                        reply.extend_from_slice(c.as_bytes());
                        reply.push(0);
                    }
                })?;
                if reply.len() > PAYLOAD_MAX {
                    reply.clear();
                    return Err(Error::TooBig);
                }
                Ok(())
            }
            ty::DIRECTORY_PART => {
                let [p, off] = args(payload)?;
                let p = self.path_arg(&caller, p)?;
                let off = wire::atoi(off) as usize;
                self.with_read(cid, &target, &caller, &p, |n| directory_part(n, off, reply))
            }
            ty::GET_PERMS => {
                let p = self.path_arg(&caller, path_one_arg(payload)?)?;
                self.with_read(cid, &target, &caller, &p, |n| {
                    perms::encode(&n.perms, reply)
                })
            }
            ty::WRITE => {
                let nul = payload.iter().position(|&b| b == 0).ok_or(Error::Inval)?;
                let p = self.path_arg(&caller, &payload[..nul])?;
                let value = &payload[nul + 1..];
                self.modify(
                    cid,
                    &target,
                    &caller,
                    TxOp::Write(p, Some(value.to_vec())),
                    changes,
                )?;
                reply.extend_from_slice(b"OK\0");
                Ok(())
            }
            ty::MKDIR => {
                let p = self.path_arg(&caller, path_one_arg(payload)?)?;
                self.modify(cid, &target, &caller, TxOp::Write(p, None), changes)?;
                reply.extend_from_slice(b"OK\0");
                Ok(())
            }
            ty::RM => {
                let p = self.path_arg(&caller, path_one_arg(payload)?)?;
                self.modify(cid, &target, &caller, TxOp::Rm(p), changes)?;
                reply.extend_from_slice(b"OK\0");
                Ok(())
            }
            ty::SET_PERMS => {
                self.set_perms(cid, &target, &caller, payload, changes)?;
                reply.extend_from_slice(b"OK\0");
                Ok(())
            }
            ty::WATCH => self.watch(cid, &caller, payload, reply),
            ty::UNWATCH => self.unwatch(cid, &caller, payload, reply),
            ty::TRANSACTION_START => self.tx_start(cid, h, &caller, reply),
            ty::TRANSACTION_END => {
                let arg = one_arg(payload)?;
                let commit = match arg {
                    b"T" => true,
                    b"F" => false,
                    _ => return Err(Error::Inval),
                };
                self.tx_end(cid, h.tx_id, &caller, commit, changes)?;
                reply.extend_from_slice(b"OK\0");
                Ok(())
            }
            ty::RESET_WATCHES => {
                self.retire(cid);
                if let Some(Some(c)) = self.conns.get_mut(cid) {
                    self.conn_bytes += c.out_bytes;
                    c.watches.clear();
                    c.txs.clear();
                    c.tx_bytes = 0;
                }
                reply.extend_from_slice(b"OK\0");
                Ok(())
            }
            ty::GET_DOMAIN_PATH => {
                let d = wire::atoi(one_arg(payload)?);
                reply.extend_from_slice(format!("/local/domain/{d}\0").as_bytes());
                Ok(())
            }
            ty::IS_DOMAIN_INTRODUCED => {
                let d = wire::atoi(one_arg(payload)?);
                let yes = d == DOMID_SELF
                    || self
                        .domains
                        .get(&d)
                        .is_some_and(|x| x.conn.is_some() || d == 0);
                reply.extend_from_slice(if yes { b"T\0" } else { b"F\0" });
                Ok(())
            }
            ty::INTRODUCE => {
                let ([domid, mfn, port], _) = leading_args(payload)?;
                let domid = wire::atoi(domid);
                let mfn = mfn
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .fold(0u64, |a, &b| {
                        a.saturating_mul(10).saturating_add(u64::from(b - b'0'))
                    });
                let port = wire::atoi(port);
                self.introduce_domain(domid, mfn, port)?;
                reply.extend_from_slice(b"OK\0");
                Ok(())
            }
            ty::RELEASE => {
                let domid = wire::atoi(one_arg(payload)?);
                if domid == 0 {
                    return Err(Error::Inval);
                }
                if self.domains.get(&domid).and_then(|d| d.conn).is_none() {
                    return Err(Error::Noent);
                }
                self.domain_gone(domid);
                reply.extend_from_slice(b"OK\0");
                Ok(())
            }
            ty::RESUME => {
                let domid = wire::atoi(one_arg(payload)?);
                match self.domains.get_mut(&domid) {
                    Some(d) if d.conn.is_some() => d.shutdown_reported = false,
                    _ => return Err(Error::Noent),
                }
                reply.extend_from_slice(b"OK\0");
                Ok(())
            }
            ty::SET_TARGET => {
                let [d, t] = args(payload)?;
                let (d, t) = (wire::atoi(d), wire::atoi(t));
                if self.domains.get(&d).and_then(|x| x.conn).is_none() || !self.ensure_domain(t) {
                    return Err(Error::Noent);
                }
                if let Some(x) = self.domains.get_mut(&d) {
                    x.target = Some(t);
                }
                reply.extend_from_slice(b"OK\0");
                Ok(())
            }
            ty::GET_FEATURE => {
                let d = self.introduced_domid(one_arg(payload)?)?;
                reply.extend_from_slice(format!("{}\0", self.domain_features(d)).as_bytes());
                Ok(())
            }
            ty::SET_FEATURE => {
                let [d, v] = args(payload)?;
                let d = self.introduced_domid(d)?;
                let v = wire::parse_u32(v).ok_or(Error::Inval)?;
                if v & !FEATURES != 0 {
                    return Err(Error::Inval);
                }
                if let Some(x) = self.domains.get_mut(&d) {
                    x.features = v;
                }
                reply.extend_from_slice(b"OK\0");
                Ok(())
            }
            ty::GET_QUOTA => {
                let [d, name] = args(payload)?;
                let d = self.introduced_domid(d)?;
                let name = core::str::from_utf8(name).map_err(|_| Error::Inval)?;
                let v = self.quotas_of(d).get(name).ok_or(Error::Inval)?;
                reply.extend_from_slice(format!("{v}\0").as_bytes());
                Ok(())
            }
            ty::SET_QUOTA => {
                let [d, name, v] = args(payload)?;
                let d = self.introduced_domid(d)?;
                let name = core::str::from_utf8(name).map_err(|_| Error::Inval)?;
                let v = wire::parse_u32(v).ok_or(Error::Inval)?;
                let dom = self.domains.get_mut(&d).ok_or(Error::Noent)?;
                if !dom.quotas.set(name, v) {
                    return Err(Error::Inval);
                }
                reply.extend_from_slice(b"OK\0");
                Ok(())
            }
            ty::CONTROL => {
                let args: Vec<&[u8]> = wire::split_strings(payload).collect();
                self.control(&args, reply)
            }
            _ => Err(Error::Nosys),
        }
    }

    fn introduced_domid(&self, arg: &[u8]) -> Result<u32, Error> {
        let d = wire::parse_u32(arg).ok_or(Error::Inval)?;
        match self.domains.get(&d) {
            Some(x) if x.conn.is_some() => Ok(d),
            _ => Err(Error::Noent),
        }
    }

    fn path_arg(&self, caller: &Caller, raw: &[u8]) -> Result<String, Error> {
        if raw.first() == Some(&b'@') {
            return Err(Error::Inval);
        }
        let q = self.quotas_of(caller.domid);
        let max = if caller.privileged || q.path_max == 0 {
            wire::REL_PATH_MAX
        } else {
            q.path_max as usize
        };
        canonicalize(raw, caller.domid, max)
    }

    /// The open transaction `txid` of connection `cid`.
    fn tx_mut(&mut self, cid: ConnId, txid: u32) -> Result<&mut Tx, Error> {
        match self.conns.get_mut(cid) {
            Some(Some(c)) => c.txs.get_mut(&txid).ok_or(Error::Noent),
            _ => Err(Error::Io),
        }
    }

    /// Records the first access to the nodes `path` and, if `created` is Some(depth), the
    /// nodes a write creates below its first `depth` components (they must not be created
    /// outside; only the topmost is kept, the others cannot exist without it), with their
    /// generations in the main store. All or nothing: over the `transaction-nodes` quota
    /// (each node counts) nothing is recorded (ENOSPC), before any other work.
    fn record(
        &mut self,
        cid: ConnId,
        txid: u32,
        caller: &Caller,
        path: &str,
        created: Option<usize>,
    ) -> Result<(), Error> {
        let limit = self.quotas_of(caller.domid).transaction_nodes;
        let room = match self.conns.get(cid) {
            Some(Some(c)) => self.room(c),
            _ => return Err(Error::Io),
        };
        let total = path::components(path).count();
        let top = created
            .filter(|&d| d + 1 < total)
            .map(|d| path::ancestor(path, d + 1));
        let main = &self.tree;
        let Some(Some(c)) = self.conns.get_mut(cid) else {
            return Err(Error::Io);
        };
        let tx = c.txs.get_mut(&txid).ok_or(Error::Noent)?;
        let new_target = !tx.accessed.contains_key(path);
        let new_top = top.filter(|t| !tx.accessed.contains_key(*t));
        // The nodes strictly between the topmost created node and the target.
        let between = match (created, new_top) {
            (Some(d), Some(_)) => total.saturating_sub(d + 2),
            _ => 0,
        };
        let count = usize::from(new_target) + usize::from(new_top.is_some()) + between;
        if count == 0 {
            return Ok(());
        }
        if !caller.privileged && over(tx.accessed_nodes + count, limit) {
            return Err(Error::Nospc);
        }
        let charge: usize = [new_target.then_some(path), new_top]
            .into_iter()
            .flatten()
            .map(path_charge)
            .sum();
        if room.exceeded(charge, charge) {
            return Err(Error::Nomem);
        }
        tx.accessed_nodes += count;
        for p in [new_target.then_some(path), new_top].into_iter().flatten() {
            let g = main.get(p).map(|n| n.generation);
            tx.path_bytes += path_charge(p);
            c.tx_bytes += path_charge(p);
            self.conn_bytes += path_charge(p);
            tx.accessed.insert(String::from(p), g);
        }
        Ok(())
    }

    /// Before a WRITE/MKDIR in a transaction creates nodes below the deepest existing
    /// ancestor in its view (`depth` components of `p`): that ancestor, if it exists in the
    /// main store, must keep its permissions (they decided the new nodes' permissions and
    /// the access check).
    fn record_parent(
        &mut self,
        cid: ConnId,
        txid: u32,
        p: &str,
        depth: usize,
    ) -> Result<(), Error> {
        let anc = path::ancestor(p, depth);
        let perms = self.tree.get(anc).map(|n| n.perms.to_vec());
        let Some(Some(c)) = self.conns.get_mut(cid) else {
            return Err(Error::Io);
        };
        let tx = c.txs.get_mut(&txid).ok_or(Error::Noent)?;
        if let Some(perms) = perms {
            if !tx.parents.contains_key(anc) {
                tx.path_bytes += path_charge(anc);
                c.tx_bytes += path_charge(anc);
                self.conn_bytes += path_charge(anc);
                tx.parents.insert(String::from(anc), perms);
            }
        }
        Ok(())
    }

    /// Makes sure a transaction has its view: built from the current main store with the
    /// transaction's overlay applied, and listed so that the next change of the main store
    /// drops it again.
    fn tx_view(&mut self, cid: ConnId, txid: u32, caller: &Caller) -> Result<(), Error> {
        let quotas = self.quotas_of(caller.domid);
        let Some(Some(c)) = self.conns.get_mut(cid) else {
            return Err(Error::Io);
        };
        let tx = c.txs.get_mut(&txid).ok_or(Error::Noent)?;
        if tx.view.is_none() {
            let mut tree = self.tree.clone();
            let mut usage = BTreeMap::new();
            let mut st = view_store(
                &mut tree,
                &mut usage,
                &mut self.generation,
                Some(&self.usage),
                &self.domains,
                &quotas,
                true,
            );
            tx.overlay.apply(&mut st, caller, |_, _| true);
            tx.view = Some(View { tree, usage });
        }
        if !tx.listed {
            tx.listed = true;
            self.viewed.push((cid, txid));
        }
        Ok(())
    }

    /// After a change of the main store: every transaction view built from it is settled
    /// ([`Tx::settle`]), so no transaction keeps an old version of the store alive.
    fn settle_views(&mut self) {
        self.main_changed = false;
        for (cid, txid) in mem::take(&mut self.viewed) {
            if let Some(Some(c)) = self.conns.get_mut(cid) {
                if let Some(tx) = c.txs.get_mut(&txid) {
                    let before = tx.bytes();
                    tx.settle(&self.tree);
                    c.tx_bytes = c.tx_bytes - before + tx.bytes();
                    self.conn_bytes = self.conn_bytes - before + tx.bytes();
                }
            }
        }
    }

    fn with_read<R>(
        &mut self,
        cid: ConnId,
        target: &Target,
        caller: &Caller,
        path: &str,
        f: impl FnOnce(&Node) -> R,
    ) -> Result<R, Error> {
        match *target {
            Target::Main => Ok(f(lookup(&self.tree, &self.domains, caller, path, READ)?)),
            Target::Tx(id) => {
                self.record(cid, id, caller, path, None)?;
                self.tx_view(cid, id, caller)?;
                let Some(Some(c)) = self.conns.get(cid) else {
                    return Err(Error::Io);
                };
                let tx = c.txs.get(&id).ok_or(Error::Noent)?;
                if let Some(n) = tx.frozen.get(path) {
                    if access(&self.domains, caller, &n.perms, n.generation) & READ == 0 {
                        return Err(Error::Acces);
                    }
                    return Ok(f(n));
                }
                let view = tx.view.as_ref().ok_or(Error::Io)?;
                Ok(f(lookup(&view.tree, &self.domains, caller, path, READ)?))
            }
        }
    }

    /// Applies a WRITE/MKDIR/RM/SET_PERMS to the main tree (collecting changes) or to a
    /// transaction's view (recording the result in its overlay).
    fn modify(
        &mut self,
        cid: ConnId,
        target: &Target,
        caller: &Caller,
        op: TxOp,
        changes: &mut Vec<Change>,
    ) -> Result<(), Error> {
        let quotas = self.quotas_of(caller.domid);
        let room = match self.conns.get(cid) {
            Some(Some(c)) => self.room(c),
            _ => return Err(Error::Io),
        };
        match *target {
            Target::Main => {
                if room.bounded() {
                    let cost = record_cost(&self.tree, &op);
                    if room.exceeded(cost, cost) {
                        self.check_growth(caller, &op, &quotas, room)?;
                    }
                }
                let mut st = self.main_store(&quotas, false, changes);
                let r = apply(&mut st, caller, &op);
                let written = st.written;
                wrl_debit(self, caller, written);
                r
            }
            Target::Tx(id) => self.modify_tx(cid, id, caller, op, &quotas, room),
        }
    }

    /// [`Engine::modify`] in transaction `id`: the operation runs on the view (with every
    /// permission and quota check), then its result goes into the overlay. Growth beyond
    /// the memory bounds is refused (ENOMEM) after the operation's own errors, as in C, and
    /// before anything is recorded.
    fn modify_tx(
        &mut self,
        cid: ConnId,
        id: u32,
        caller: &Caller,
        op: TxOp,
        quotas: &Quotas,
        room: Room,
    ) -> Result<(), Error> {
        let path = String::from(op.path());
        self.tx_view(cid, id, caller)?;
        let before = self.tx_mut(cid, id)?.bytes();
        let depth = match &self.tx_mut(cid, id)?.view {
            Some(view) => view.tree.existing_depth(&path),
            None => return Err(Error::Io),
        };
        let creates = matches!(op, TxOp::Write(..)) && depth < path::components(&path).count();
        self.record(cid, id, caller, &path, creates.then_some(depth))?;
        if creates {
            self.record_parent(cid, id, &path, depth)?;
        }
        let Some(Some(c)) = self.conns.get_mut(cid) else {
            return Err(Error::Io);
        };
        let tx = c.txs.get_mut(&id).ok_or(Error::Noent)?;
        // What `c.tx_bytes` already counts of this transaction.
        let counted = tx.bytes();
        let mark = tx.touched.len();
        tx.touch_op(&op, depth);
        let Some(view) = tx.view.as_mut() else {
            return Err(Error::Io);
        };
        let backup = View {
            tree: view.tree.clone(),
            usage: view.usage.clone(),
        };
        let mut st = view_store(
            &mut view.tree,
            &mut view.usage,
            &mut self.generation,
            Some(&self.usage),
            &self.domains,
            quotas,
            false,
        );
        let result = apply(&mut st, caller, &op);
        let written = st.written;
        let result = result.and_then(|()| {
            let recorded = (tx.overlay.bytes() + tx.path_bytes).saturating_sub(before);
            let grow = recorded + transaction::growth(&tx.overlay, &view.tree, &op, depth);
            if room.exceeded(grow, grow) {
                Err(Error::Nomem)
            } else {
                Ok(())
            }
        });
        if let Err(e) = result {
            tx.untouch_from(mark);
            tx.view = Some(backup);
            c.tx_bytes = c.tx_bytes - counted + tx.bytes();
            self.conn_bytes = self.conn_bytes - counted + tx.bytes();
            return Err(e);
        }
        transaction::record_op(&mut tx.overlay, &view.tree, &op, depth);
        tx.thaw(&path, matches!(op, TxOp::Rm(_)));
        c.tx_bytes = c.tx_bytes - counted + tx.bytes();
        self.conn_bytes = self.conn_bytes - counted + tx.bytes();
        wrl_debit(self, caller, written);
        Ok(())
    }

    /// Checks a main-store operation of an unprivileged caller whose [`record_cost`] does
    /// not fit its `room`: the exact growth comes from a dry run, which also gives the
    /// operation's own errors first (as C checks permissions and sizes before memory).
    fn check_growth(
        &self,
        caller: &Caller,
        op: &TxOp,
        quotas: &Quotas,
        room: Room,
    ) -> Result<(), Error> {
        let after = self.dry_run(quotas, caller, op)?;
        let bytes = |m: &BTreeMap<u32, Usage>, owner: Option<u32>| -> i64 {
            match owner {
                Some(d) => m.get(&d).map_or(0, |u| u.bytes),
                None => m.values().map(|u| u.bytes).sum(),
            }
        };
        let grow = |owner| usize::try_from(bytes(&after, owner) - bytes(&self.usage, owner));
        let (domain, total) = (grow(Some(caller.domid)), grow(None));
        if room.exceeded(domain.unwrap_or(0), total.unwrap_or(0)) {
            return Err(Error::Nomem);
        }
        Ok(())
    }

    /// Runs `op` on a copy of the main store, changing nothing (the copy is O(1): nodes
    /// stay shared until changed). Returns the usage after it, or the operation's error.
    fn dry_run(
        &self,
        quotas: &Quotas,
        caller: &Caller,
        op: &TxOp,
    ) -> Result<BTreeMap<u32, Usage>, Error> {
        let mut tree = self.tree.clone();
        let mut usage = self.usage.clone();
        let mut generation = self.generation;
        let mut st = view_store(
            &mut tree,
            &mut usage,
            &mut generation,
            None,
            &self.domains,
            quotas,
            false,
        );
        apply(&mut st, caller, op)?;
        Ok(usage)
    }

    fn set_perms(
        &mut self,
        cid: ConnId,
        target: &Target,
        caller: &Caller,
        payload: &[u8],
        changes: &mut Vec<Change>,
    ) -> Result<(), Error> {
        let args: Vec<&[u8]> = wire::split_strings(payload).collect();
        let (raw, list) = args.split_first().ok_or(Error::Inval)?;
        if list.is_empty() {
            return Err(Error::Inval);
        }
        let mut new = list
            .iter()
            .map(|s| perms::parse_one(s))
            .collect::<Result<Vec<Perm>, Error>>()?;
        for p in new.iter_mut() {
            if !self.ensure_domain(p.domid) {
                p.bits |= IGNORE;
            }
        }
        // As C: an owner that does not exist is ENOENT before the path is looked at.
        if new.first().is_some_and(|p| p.bits & IGNORE != 0) {
            return Err(Error::Noent);
        }
        if raw.first() == Some(&b'@') {
            let i = special_index(raw).ok_or(Error::Inval)?;
            let cur = &self.special_perms[i];
            let acc = access(&self.domains, caller, cur, u64::MAX);
            let owner = cur.first().map_or(0, |p| p.domid);
            if !caller.privileged
                && (acc & perms::WRITE == 0
                    || (owner != caller.domid && Some(owner) != caller.target))
            {
                return Err(Error::Acces);
            }
            if new.first().is_some_and(|p| p.bits & IGNORE != 0) {
                return Err(Error::Noent);
            }
            self.special_perms[i] = new;
            return Ok(());
        }
        let p = self.path_arg(caller, raw)?;
        self.modify(cid, target, caller, TxOp::SetPerms(p, new), changes)
    }

    fn watch(
        &mut self,
        cid: ConnId,
        caller: &Caller,
        payload: &[u8],
        reply: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let (raw, token, depth) = match leading_args(payload)? {
            ([p, t], false) => (p, t, None),
            _ => {
                let [p, t, d] = args(payload)?;
                (p, t, Some(wire::parse_u32(d).ok_or(Error::Inval)?))
            }
        };
        let (path, strip) = self.watch_path(caller, raw)?;
        if path.starts_with('@') && depth.is_some_and(|d| d > 1) {
            return Err(Error::Inval);
        }
        let limit = self.quotas_of(caller.domid).watches;
        let Some(Some(c)) = self.conns.get_mut(cid) else {
            return Err(Error::Io);
        };
        if c.watches.iter().any(|w| w.path == path && w.token == token) {
            return Err(Error::Exist);
        }
        if !caller.privileged && over(c.watches.len(), limit) {
            return Err(Error::TooBig);
        }
        let mut ev = Vec::with_capacity(HEADER_LEN + raw.len() + token.len() + 2);
        let mut body = Vec::with_capacity(raw.len() + token.len() + 2);
        body.extend_from_slice(&path.as_bytes()[strip..]);
        body.push(0);
        body.extend_from_slice(token);
        body.push(0);
        let seq = c.next_watch;
        c.next_watch += 1;
        self.watch_index.add(&path, cid, seq);
        c.watches.push(Watch {
            seq,
            path,
            token: token.to_vec(),
            strip,
            depth,
        });
        reply.extend_from_slice(b"OK\0");
        if body.len() <= PAYLOAD_MAX {
            wire::encode_msg(&mut ev, ty::WATCH_EVENT, 0, 0, &body);
            self.deferred_events.push((cid, ev));
        }
        Ok(())
    }

    fn watch_path(&self, caller: &Caller, raw: &[u8]) -> Result<(String, usize), Error> {
        if raw.first() == Some(&b'@') {
            if raw.len() > wire::REL_PATH_MAX {
                return Err(Error::Inval);
            }
            let s = core::str::from_utf8(raw).map_err(|_| Error::Inval)?;
            return Ok((String::from(s), 0));
        }
        let p = self.path_arg(caller, raw)?;
        let strip = if raw.first() == Some(&b'/') {
            0
        } else {
            p.len() - raw.len()
        };
        Ok((p, strip))
    }

    fn unwatch(
        &mut self,
        cid: ConnId,
        caller: &Caller,
        payload: &[u8],
        reply: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let [raw, token] = args(payload)?;
        // As C: the path is only prefixed, not validated; no such watch is ENOENT.
        let raw = core::str::from_utf8(raw).map_err(|_| Error::Noent)?;
        let path = if raw.starts_with('/') || raw.starts_with('@') {
            String::from(raw)
        } else {
            format!("/local/domain/{}/{raw}", caller.domid)
        };
        let Some(Some(c)) = self.conns.get_mut(cid) else {
            return Err(Error::Io);
        };
        let i = c
            .watches
            .iter()
            .position(|w| w.path == path && w.token == token)
            .ok_or(Error::Noent)?;
        let w = c.watches.remove(i);
        self.watch_index.remove(&w.path, cid, w.seq);
        reply.extend_from_slice(b"OK\0");
        Ok(())
    }

    fn tx_start(
        &mut self,
        cid: ConnId,
        h: Header,
        caller: &Caller,
        reply: &mut Vec<u8>,
    ) -> Result<(), Error> {
        if h.tx_id != 0 {
            return Err(Error::Busy);
        }
        let limit = self.quotas_of(caller.domid).transactions;
        let Some(Some(c)) = self.conns.get_mut(cid) else {
            return Err(Error::Io);
        };
        if !caller.privileged && over(c.txs.len(), limit) {
            return Err(Error::Nospc);
        }
        let mut id = c.next_tx;
        while id == 0 || c.txs.contains_key(&id) {
            id = id.wrapping_add(1);
        }
        c.next_tx = id.wrapping_add(1);
        c.txs.insert(id, Tx::default());
        self.open_txs += 1;
        perms::push_decimal(reply, u64::from(id));
        reply.push(0);
        Ok(())
    }

    /// TRANSACTION_END: a commit applies the overlay to the main store if nothing the
    /// transaction accessed changed (else EAGAIN). Permission entries naming a domain that
    /// is gone, or was replaced by a new one with the same domid, since the transaction set
    /// them are purged (an owner gives way to dom0): no later domain inherits them.
    fn tx_end(
        &mut self,
        cid: ConnId,
        id: u32,
        caller: &Caller,
        commit: bool,
        changes: &mut Vec<Change>,
    ) -> Result<(), Error> {
        let Some(Some(c)) = self.conns.get_mut(cid) else {
            return Err(Error::Io);
        };
        let tx = c.txs.remove(&id).ok_or(Error::Noent)?;
        self.open_txs -= 1;
        c.tx_bytes -= tx.bytes();
        self.conn_bytes -= tx.bytes();
        if !commit {
            return Ok(());
        }
        if !tx.still_valid(&self.tree) {
            return Err(Error::Again);
        }
        self.main_changed = true;
        let quotas = self.quotas_of(caller.domid);
        let domains = &self.domains;
        let keep = |p: &Perm, gen: u64| {
            p.bits & IGNORE != 0 || domains.get(&p.domid).is_some_and(|d| d.gen <= gen)
        };
        let mut replayed = Vec::new();
        let mut st = Store {
            tree: &mut self.tree,
            generation: &mut self.generation,
            usage: &mut self.usage,
            total: Some(&mut self.usage_total),
            base_usage: None,
            domains,
            quotas: &quotas,
            force: true,
            changes: Some(&mut replayed),
            written: 0,
        };
        tx.overlay.apply(&mut st, caller, keep);
        replayed.retain(|ch| !tx.overlay.unnamed(&ch.path));
        tx.order_changes(&mut replayed);
        changes.extend(replayed);
        wrl_debit(self, caller, 1);
        Ok(())
    }

    /// Whether any connection has a transaction open (write-rate debt is possible only then).
    fn any_transaction(&self) -> bool {
        self.open_txs > 0
    }

    /// INTRODUCE from the host (e.g. dom0's own ring at start): like the request, with
    /// `@introduceDomain` fired at once.
    pub fn introduce(&mut self, domid: u32, mfn: u64, port: u32) -> Result<(), Error> {
        let r = self.introduce_domain(domid, mfn, port);
        for (which, d) in mem::take(&mut self.pending_special) {
            self.fire_special(which, d);
        }
        r
    }

    fn introduce_domain(&mut self, domid: u32, mfn: u64, port: u32) -> Result<(), Error> {
        if domid >= DOMID_SELF || port == 0 {
            return Err(Error::Inval);
        }
        if let Some(cid) = self.domains.get(&domid).and_then(|d| d.conn) {
            self.reset_connection(cid);
            return self.platform.reintroduce(cid, domid, port);
        }
        let cid = self.new_connection(domid);
        if let Err(e) = self.platform.introduce(cid, domid, mfn, port) {
            self.conns[cid] = None;
            return Err(e);
        }
        let now = self.platform.now_ms();
        self.new_domain(domid);
        if let Some(d) = self.domains.get_mut(&domid) {
            d.conn = Some(cid);
            d.shutdown_reported = false;
            self.wrl.domain_new(d, now);
        }
        if domid != 0 {
            self.pending_special.push((0, domid));
        }
        Ok(())
    }

    /// The platform saw domain `domid` shut down or crash (VIRQ_DOM_EXC scan):
    /// `@releaseDomain` fires once (until RESUME).
    pub fn domain_shutdown(&mut self, domid: u32) {
        let fire = match self.domains.get_mut(&domid) {
            Some(d) if d.conn.is_some() && !d.shutdown_reported => {
                d.shutdown_reported = true;
                true
            }
            _ => false,
        };
        if fire {
            self.fire_special(1, domid);
        }
    }

    /// Domain `domid` is dying or gone (or was RELEASEd): its connection is torn down, the
    /// nodes it owns are deleted (XSA-419), and `@releaseDomain` fires.
    pub fn domain_gone(&mut self, domid: u32) {
        if domid == 0 {
            return;
        }
        let known = self.domains.remove(&domid);
        let was_known = known.is_some();
        if let Some(mut d) = known {
            if d.conn.is_some() {
                self.wrl.domain_gone(&mut d);
            }
            if let Some(cid) = d.conn {
                self.platform.release(cid, domid);
                self.retire(cid);
                if let Some(slot) = self.conns.get_mut(cid) {
                    *slot = None;
                }
            }
        }
        for x in self.domains.values_mut() {
            if x.target == Some(domid) {
                x.target = None;
            }
        }
        for sp in self.special_perms.iter_mut() {
            let owner = sp.first().copied();
            sp.retain(|p| p.domid != domid);
            if sp.is_empty() || sp.first().copied() != owner {
                *sp = n0();
            }
        }
        // The subtrees it owns go (XSA-419); other nodes forget it (no later domain with
        // its domid inherits an entry). Done even if the domain was not in the table.
        let mut roots: Vec<String> = Vec::new();
        let mut naming: Vec<(String, Vec<Perm>)> = Vec::new();
        tree::walk(self.tree.root(), "/", |p, n| {
            // Pre-order: a root's subtree is walked right after it.
            if roots
                .last()
                .is_some_and(|r| r != "/" && path::is_child(p, r))
            {
                return;
            }
            if n.owner() == domid {
                roots.push(String::from(p));
            } else if n.perms.iter().skip(1).any(|e| e.domid == domid) {
                let kept = n
                    .perms
                    .iter()
                    .enumerate()
                    .filter(|(i, e)| *i == 0 || e.domid != domid);
                naming.push((String::from(p), kept.map(|(_, e)| *e).collect()));
            }
        });
        let mut changes = Vec::new();
        let quotas = self.cfg.quotas;
        let caller = Caller {
            domid: 0,
            target: None,
            privileged: true,
        };
        let mut st = self.main_store(&quotas, true, &mut changes);
        for r in &roots {
            if r == "/" {
                // The root cannot go: it falls back to dom0.
                let mut perms = st.tree.root().perms.clone();
                if let Some(o) = perms.first_mut() {
                    o.domid = 0;
                }
                let _ = st.set_perms(&caller, r, perms);
            } else {
                let _ = st.rm(&caller, r);
            }
        }
        // Purging entries is no change a watcher asked about: no events.
        st.changes = None;
        for (p, perms) in naming {
            let _ = st.set_perms(&caller, &p, perms);
        }
        if self.usage.get(&domid).is_some_and(|u| u.nodes == 0) {
            self.usage.remove(&domid);
        }
        self.settle_views();
        for ch in &changes {
            self.fire(ch);
        }
        if was_known {
            self.fire_special(1, domid);
        }
    }
}

/// Bytes a transaction holds for logging `op`, charged like C xenstored charges a
/// transaction's node records to its connection's domain: the record-size formula of the
/// quotas (header, 8 per permission, value, NUL-terminated child names) plus the path as
/// the key. WRITE/MKDIR: the node's new record, or the records of the missing nodes it
/// creates; SET_PERMS: the rewritten record; RM, or MKDIR of an existing node: a header.
/// In the main store, the most an operation can grow the records.
fn record_cost(tree: &Tree, op: &TxOp) -> usize {
    let key = match op {
        TxOp::Write(p, _) | TxOp::Rm(p) | TxOp::SetPerms(p, _) => p.len(),
    };
    let header = tree::record_size(0, 0, 0);
    let record = match op {
        TxOp::Write(p, value) => {
            let (node, found) = tree.deepest(p);
            let value_len = value.as_ref().map_or(0, Vec::len);
            match (found, value) {
                (true, Some(_)) => node.record_size_as(node.perms.len(), value_len),
                (true, None) => header,
                (false, _) => {
                    path::components(p)
                        .skip(tree.existing_depth(p))
                        .map(|name| tree::record_size(node.perms.len(), 0, name.len() + 1))
                        .sum::<usize>()
                        + value_len
                }
            }
        }
        TxOp::Rm(_) => header,
        TxOp::SetPerms(p, new) => tree
            .get(p)
            .map_or(header, |n| n.record_size_as(new.len(), n.value.len())),
    };
    key + record
}

/// A [`Store`] on a transaction's tree (or a scratch copy) whose `usage` holds deltas over
/// `base_usage` (None: `usage` is absolute); no changes are collected.
fn view_store<'a>(
    tree: &'a mut Tree,
    usage: &'a mut BTreeMap<u32, Usage>,
    generation: &'a mut u64,
    base_usage: Option<&'a BTreeMap<u32, Usage>>,
    domains: &'a BTreeMap<u32, Domain>,
    quotas: &'a Quotas,
    force: bool,
) -> Store<'a> {
    Store {
        tree,
        generation,
        usage,
        total: None,
        base_usage,
        domains,
        quotas,
        force,
        changes: None,
        written: 0,
    }
}

/// The first `N` NUL-terminated strings of a request's payload (EINVAL if it has fewer),
/// and whether more follow.
fn leading_args<const N: usize>(payload: &[u8]) -> Result<([&[u8]; N], bool), Error> {
    let mut strings = wire::split_strings(payload);
    let mut out: [&[u8]; N] = [&[]; N];
    for slot in out.iter_mut() {
        *slot = strings.next().ok_or(Error::Inval)?;
    }
    Ok((out, strings.next().is_some()))
}

/// Exactly `N` NUL-terminated strings of a request's payload, else EINVAL.
fn args<const N: usize>(payload: &[u8]) -> Result<[&[u8]; N], Error> {
    match leading_args(payload)? {
        (out, false) => Ok(out),
        (_, true) => Err(Error::Inval),
    }
}

/// The path of a one-argument path request. C xenstored answers ENOENT when the payload is
/// not exactly one NUL-terminated string.
fn path_one_arg(payload: &[u8]) -> Result<&[u8], Error> {
    one_arg(payload).map_err(|_| Error::Noent)
}

fn special_index(raw: &[u8]) -> Option<usize> {
    match raw {
        b"@introduceDomain" => Some(0),
        b"@releaseDomain" => Some(1),
        _ => None,
    }
}

/// DIRECTORY_PART reply: `gencnt\0` then the child list from byte `off` of the full
/// NUL-separated list, as many whole entries as fit, and an extra `\0` after the last.
fn directory_part(n: &Node, off: usize, reply: &mut Vec<u8>) {
    let mut all = Vec::new();
    for c in n.child_names() {
        all.extend_from_slice(c.as_bytes());
        all.push(0);
    }
    perms::push_decimal(reply, n.generation);
    reply.push(0);
    if off >= all.len() {
        reply.push(0);
        return;
    }
    let max = PAYLOAD_MAX - reply.len() - 1;
    let rest = &all[off..];
    let mut len = 0;
    while len < rest.len() {
        let i = rest[len..]
            .iter()
            .position(|&b| b == 0)
            .map_or(rest.len() - len, |p| p + 1);
        if len + i > max {
            break;
        }
        len += i;
    }
    reply.extend_from_slice(&rest[..len]);
    if len == rest.len() {
        reply.push(0);
    }
}

impl<P: Platform> Engine<P> {
    /// Queues watch events for a node change on every connection whose watches match and
    /// who may read the node (XSA-115). The watches come from the index: the cost does not
    /// grow with the number of connections or watches elsewhere.
    fn fire(&mut self, ch: &Change) {
        let mut out: Vec<(ConnId, Vec<u8>)> = Vec::new();
        let mut readable: Option<(ConnId, bool)> = None;
        for (cid, seq) in self.watch_index.matches(&ch.path, ch.exact) {
            let Some(w) = self.watch_of(cid, seq) else {
                continue;
            };
            if !ch.exact
                && w.depth
                    .is_some_and(|d| path::depth_below(&ch.path, &w.path) > d as usize)
            {
                continue;
            }
            let ok = match readable {
                Some((rc, ok)) if rc == cid => ok,
                _ => {
                    let ok = self.may_see(cid, ch);
                    readable = Some((cid, ok));
                    ok
                }
            };
            if !ok {
                continue;
            }
            let epath = if ch.exact { &w.path } else { &ch.path };
            if let Some(ev) = event_msg(epath.as_bytes().get(w.strip..).unwrap_or(&[]), &w.token) {
                out.push((cid, ev));
            }
        }
        for (cid, ev) in out {
            self.push(cid, ev, true);
        }
    }

    /// Watch `seq` of connection `cid`.
    fn watch_of(&self, cid: ConnId, seq: u64) -> Option<&Watch> {
        let Some(Some(c)) = self.conns.get(cid) else {
            return None;
        };
        let i = c.watches.binary_search_by_key(&seq, |w| w.seq).ok()?;
        c.watches.get(i)
    }

    /// Whether connection `cid` may read the changed node (before or after the change).
    fn may_see(&self, cid: ConnId, ch: &Change) -> bool {
        let Some(Some(c)) = self.conns.get(cid) else {
            return false;
        };
        let caller = self.caller(c);
        access(&self.domains, &caller, &ch.perms, ch.generation) & READ != 0
            || ch
                .old_perms
                .as_ref()
                .is_some_and(|o| access(&self.domains, &caller, o, ch.generation) & READ != 0)
    }

    /// Fires `@introduceDomain` (which = 0) or `@releaseDomain` (1) for `domid`.
    fn fire_special(&mut self, which: usize, domid: u32) {
        let name = if which == 0 {
            INTRODUCE_DOMAIN
        } else {
            RELEASE_DOMAIN
        };
        let with_id = format!("{name}/{domid}");
        let mut watchers = self.watch_index.matches(name, true);
        if which == 1 {
            watchers.extend(self.watch_index.matches(&with_id, true));
            watchers.sort_unstable();
        }
        let mut out: Vec<(ConnId, Vec<u8>)> = Vec::new();
        for (cid, seq) in watchers {
            let (Some(w), Some(Some(c))) = (self.watch_of(cid, seq), self.conns.get(cid)) else {
                continue;
            };
            let caller = self.caller(c);
            let allowed = caller.privileged
                || access(&self.domains, &caller, &self.special_perms[which], u64::MAX) & READ != 0;
            if !allowed {
                continue;
            }
            let epath = if w.path == name && w.depth != Some(1) {
                name
            } else {
                with_id.as_str()
            };
            if let Some(ev) = event_msg(epath.as_bytes(), &w.token) {
                out.push((cid, ev));
            }
        }
        for (cid, ev) in out {
            self.push(cid, ev, true);
        }
    }

    /// Checks the store: tree invariants and that the per-owner and per-connection
    /// accounting matches.
    pub fn check(&self) -> Result<(), &'static str> {
        for c in self.conns.iter().flatten() {
            if c.tx_bytes != c.txs.values().map(Tx::bytes).sum::<usize>() {
                return Err("transaction accounting out of step");
            }
        }
        let conns = || self.conns.iter().flatten();
        if self.conn_bytes != conns().map(|c| c.out_bytes + c.tx_bytes).sum::<usize>()
            || self.open_txs != conns().map(|c| c.txs.len()).sum::<usize>()
            || self.usage_total != self.usage.values().map(|u| u.bytes).sum::<i64>()
        {
            return Err("running totals out of step");
        }
        let owners = tree::check(&self.tree, self.generation)?;
        if owners.keys().any(|d| !self.domains.contains_key(d)) {
            return Err("node owned by a domain that is gone");
        }
        for (d, u) in &self.usage {
            if u.nodes != owners.get(d).copied().unwrap_or(0) as i64 {
                return Err("node accounting out of step");
            }
        }
        for (d, n) in &owners {
            if self.usage.get(d).map_or(0, |u| u.nodes) != *n as i64 {
                return Err("node accounting out of step");
            }
        }
        Ok(())
    }

    /// Open transactions holding a view of the main store, and those holding frozen copies
    /// of the nodes they accessed.
    #[cfg(test)]
    pub(crate) fn views_held(&self) -> (usize, usize) {
        let txs = || self.conns.iter().flatten().flat_map(|c| c.txs.values());
        (
            txs().filter(|t| t.view.is_some()).count(),
            txs().filter(|t| !t.frozen.is_empty()).count(),
        )
    }

    /// Nodes currently owned by `domid`.
    pub fn nodes_owned(&self, domid: u32) -> usize {
        self.usage
            .get(&domid)
            .map_or(0, |u| u.nodes.max(0) as usize)
    }

    /// Total number of nodes in the store.
    pub fn node_count(&self) -> usize {
        self.usage.values().map(|u| u.nodes.max(0) as usize).sum()
    }

    fn control(&mut self, args: &[&[u8]], reply: &mut Vec<u8>) -> Result<(), Error> {
        let (cmd, rest) = args.split_first().ok_or(Error::Inval)?;
        let text = |reply: &mut Vec<u8>, s: &str| {
            reply.extend_from_slice(s.as_bytes());
            reply.push(0);
        };
        match (*cmd, rest) {
            (b"check", []) => {
                self.check().map_err(|_| Error::Io)?;
                text(reply, "OK");
            }
            (b"log", [b"on"]) => {
                self.logging = true;
                text(reply, "OK");
            }
            (b"log", [b"off"]) => {
                self.logging = false;
                text(reply, "OK");
            }
            (b"print", [s]) => {
                let line = String::from_utf8_lossy(s);
                self.platform.log(&line);
                text(reply, "OK");
            }
            (b"memreport", [] | [_]) => {
                let mut s = String::new();
                for (d, u) in &self.usage {
                    s.push_str(&format!("domain {d}: {} nodes, {} bytes\n", u.nodes, u.bytes));
                }
                let limit = self.cfg.global_memory;
                if limit != 0 {
                    let total = self.charged_total();
                    s.push_str(&format!("total: {total} bytes charged, limit {limit}\n"));
                }
                s.push_str(&format!("connections: {}\n", self.conns.iter().flatten().count()));
                self.platform.memreport(&mut s);
                text(reply, &s);
            }
            (b"quota", []) => {
                let q = self.cfg.quotas;
                let mut s = String::from("Quota settings:\n");
                for (name, v, what) in [
                    ("nodes", q.nodes, "Nodes per domain"),
                    ("watches", q.watches, "Watches per domain"),
                    ("transactions", q.transactions, "Transactions per domain"),
                    ("outstanding", q.outstanding, "Outstanding requests per domain"),
                    ("transaction-nodes", q.transaction_nodes, "Max. number of accessed nodes per transaction"),
                    ("memory", q.memory, "Total Xenstore memory per domain (error level)"),
                    ("node-size", q.node_size, "Max. size of a node"),
                    ("path-max", q.path_max, "Max. length of a node path"),
                    ("permissions", q.permissions, "Max. number of permissions per node"),
                ] {
                    s.push_str(&format!("{name:<17}: {v:>8} {what}\n"));
                }
                text(reply, &s);
            }
            (b"quota", [b"set", b"global-memory", v]) => {
                self.cfg.global_memory = wire::parse_u32(v).ok_or(Error::Inval)?;
                text(reply, "OK");
            }
            (b"quota", [b"set", name, v]) => {
                let name = core::str::from_utf8(name).map_err(|_| Error::Inval)?;
                let v = wire::parse_u32(v).ok_or(Error::Inval)?;
                if !self.cfg.quotas.set(name, v) {
                    return Err(Error::Inval);
                }
                text(reply, "OK");
            }
            (b"quota", [d]) => {
                let d = wire::parse_u32(d).ok_or(Error::Inval)?;
                let dom = self.domains.get(&d).ok_or(Error::Noent)?;
                let u = self.usage.get(&d).copied().unwrap_or_default();
                let conn = dom.conn.and_then(|c| self.conns.get(c)?.as_ref());
                let (watches, txs, outstanding) =
                    conn.map_or((0, 0, 0), |c| (c.watches.len(), c.txs.len(), c.out.iter().filter(|m| !m.event).count()));
                let mut s = format!("Domain {d}:\n");
                for (name, v) in [
                    ("nodes", u.nodes),
                    ("watches", watches as i64),
                    ("transactions", txs as i64),
                    ("outstanding", outstanding as i64),
                    ("memory", u.bytes),
                ] {
                    s.push_str(&format!("{name:<16}: {v:>8}\n"));
                }
                text(reply, &s);
            }
            (b"quota-soft", []) => text(
                reply,
                &format!(
                    "Quota settings:\n{:<17}: {:>8} Total Xenstore memory per domain (warning level)\n",
                    "memory", self.cfg.soft_memory
                ),
            ),
            (b"quota-soft", [b"set", b"memory", v]) => {
                self.cfg.soft_memory = wire::parse_u32(v).ok_or(Error::Inval)?;
                text(reply, "OK");
            }
            (b"help", []) => text(
                reply,
                "check\t\nlog\ton|off\nmemreport\t[<file>]\nprint\t<string>\n\
                 quota\t[set <name> <val>|<domid>]\nquota-soft\t[set <name> <val>]\nhelp\t\n",
            ),
            _ => return Err(Error::Inval),
        }
        Ok(())
    }
}

/// Takes one queued event out of the duplicate index.
fn unindex(index: &mut BTreeMap<Rc<[u8]>, u32>, data: &[u8]) {
    if let Some(n) = index.get_mut(data) {
        *n -= 1;
        if *n == 0 {
            index.remove(data);
        }
    }
}

/// Drops a connection's oldest queued watch events (never a reply, nor the message being
/// sent) until at most `target` bytes are queued; returns how many went.
fn drop_oldest_events(c: &mut Conn, target: usize) -> usize {
    let started = c.out_off > 0;
    let mut excess = c.out_bytes.saturating_sub(target);
    let (mut i, mut n) = (0, 0);
    let index = &mut c.queued_events;
    let mut freed = 0;
    c.out.retain(|m| {
        let first = i == 0;
        i += 1;
        if excess == 0 || !m.event || (first && started) {
            return true;
        }
        excess = excess.saturating_sub(m.data.len());
        freed += m.data.len();
        n += 1;
        unindex(index, &m.data);
        false
    });
    c.out_bytes -= freed;
    n
}

/// A WATCH_EVENT message, or None if its payload would exceed 4096 bytes (XSA-324).
fn event_msg(epath: &[u8], token: &[u8]) -> Option<Vec<u8>> {
    let len = epath.len() + token.len() + 2;
    if len > PAYLOAD_MAX {
        return None;
    }
    let mut m = Vec::with_capacity(HEADER_LEN + len);
    Header {
        ty: ty::WATCH_EVENT,
        req_id: 0,
        tx_id: 0,
        len: len as u32,
    }
    .encode(&mut m);
    m.extend_from_slice(epath);
    m.push(0);
    m.extend_from_slice(token);
    m.push(0);
    Some(m)
}
