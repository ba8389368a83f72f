//! The engine: its state and the request loop (bytes in, replies and events out). Each
//! concern has its module below: `connection` (output queues and what they are charged),
//! `dispatch` (the request types), `transactions`, `watch`, `domains` and `control`. See
//! the crate documentation for how a host drives it.

use crate::domain::{Domain, Platform, FEATURES};
use crate::path::{self, canonicalize};
use crate::perms::{self, Caller, Perm, Perms, IGNORE, READ};
use crate::quota::{over, Quotas};
use crate::store::{self, access, lookup, Change, Store, Usage};
use crate::transaction::{self, apply, path_charge, Tx, TxOp, View};
use crate::tree::{self, Node, Tree};
use crate::wire::{self, one_arg, ty, Error, Header, DOMID_SELF, HEADER_LEN, PAYLOAD_MAX};
use crate::wrl::{Wrl, WRITE_COST};
use crate::ConnId;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::mem;

mod connection;
mod control;
mod dispatch;
mod domains;
mod dump;
mod live_update;
mod metrics;
pub use metrics::{Counters, DomainFigures};

pub use live_update::check_image;
mod restore;
mod trace;
mod transactions;
mod watch;

use connection::*;
use dispatch::*;
use transactions::*;
use watch::*;

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
    /// The largest kernel image CONTROL `live-update -b` accepts.
    pub live_update_max: usize,
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
            live_update_max: 16 << 20,
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
    /// Requests processed since the engine started (or was restored).
    requests: u64,
    /// Watch events queued since the engine started (or was restored).
    events: u64,
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
    /// The open live-update session (CONTROL `live-update`), if any.
    lu: Option<live_update::Session>,
    /// The `live-update -s` request the host is switching for, answered by the next server.
    lu_switch: Option<live_update::Switch>,
    /// Set by a request whose reply comes later (`live-update -s` accepted by the host).
    reply_deferred: bool,
    /// Requests by type, errors by name, rings held back (the metrics endpoint's).
    counters: Counters,
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
            requests: 0,
            events: 0,
            pending_special: Vec::new(),
            deferred_events: Vec::new(),
            wrl: Wrl::default(),
            viewed: Vec::new(),
            main_changed: false,
            watch_index: WatchIndex::default(),
            open_txs: 0,
            usage_total: 0,
            conn_bytes: 0,
            lu: None,
            lu_switch: None,
            reply_deferred: false,
            counters: Counters::default(),
        };
        e.recount_usage();
        e.new_domain(0);
        e
    }

    /// The platform (e.g. to drain actions it recorded).
    pub fn platform(&mut self) -> &mut P {
        &mut self.platform
    }

    /// How many requests the engine has processed since it started or was restored.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// How many watch events the engine has queued since it started or was restored.
    pub fn events(&self) -> u64 {
        self.events
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
        self.requests += 1;
        if self.logging {
            if let Some(Some(c)) = self.conns.get(conn) {
                let line = trace::request("IN ", c.domid, h, payload);
                self.platform.log(&line);
            }
        }
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
        self.counters.request(h.ty, res);
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
        if mem::take(&mut self.reply_deferred) && res.is_ok() {
            msg.clear();
        } else if matches!(self.conns.get(conn), Some(Some(_))) {
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

impl<P: Platform> Engine<P> {}

impl<P: Platform> Engine<P> {
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
}
