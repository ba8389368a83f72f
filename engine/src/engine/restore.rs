//! Rebuilding an engine from a migration stream: every record is validated as it is read
//! (a malformed stream is refused with a [`RestoreError`], never a panic), the result must
//! pass [`Engine::check`], and the rings are handed to [`Platform::adopt`]. Everything
//! allocated is bounded by the stream's length: counts are checked against the bytes left.

use super::dump::*;
use super::*;
use crate::stream::{rec, Body, Records, RestoreError};
use crate::wrl::CREDIT_MAX;
use alloc::collections::BTreeSet;
use perms::ALL;

/// Highest generation a stream may set: far from overflowing as it counts on.
const MAX_GENERATION: u64 = 1 << 62;

/// A write-rate credit, debt or reserve within the bounds the limiter keeps.
fn credit(b: &mut Body<'_>) -> Result<i64, RestoreError> {
    let v = b.u64()? as i64;
    match (-CREDIT_MAX..=CREDIT_MAX).contains(&v) {
        true => Ok(v),
        false => Err(b.err("write-rate credit out of range")),
    }
}

/// Highest connection index a stream may use (the connection table is a vector).
const MAX_CONN: usize = 1 << 16;

/// The first NUL-terminated string of `len` bytes (including the NUL) in a record.
fn cstr<'a>(b: &mut Body<'a>, len: u16, what: &'static str) -> Result<&'a [u8], RestoreError> {
    let s = b.take(usize::from(len))?;
    match s.split_last() {
        Some((0, s)) if !s.contains(&0) => Ok(s),
        _ => Err(b.err(what)),
    }
}

/// A canonical absolute node path.
fn node_path(b: &Body<'_>, raw: &[u8]) -> Result<String, RestoreError> {
    match path::canonicalize(raw, 0, usize::MAX) {
        Ok(p) if p.as_bytes() == raw => Ok(p),
        _ => Err(b.err("invalid node path")),
    }
}

/// A length-prefixed canonical path (ferrostore records).
fn fs_path(b: &mut Body<'_>) -> Result<String, RestoreError> {
    let raw = b.string()?;
    node_path(b, raw)
}

/// A ferrostore permission list: not empty, known bits, an owner that is not stale.
fn fs_perms(b: &mut Body<'_>) -> Result<Vec<Perm>, RestoreError> {
    let n = b.count(5)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let domid = b.u32()?;
        let bits = b.u8()?;
        if bits & !(ALL | IGNORE) != 0 {
            return Err(b.err("invalid permission bits"));
        }
        v.push(Perm { domid, bits });
    }
    valid_perms(b, v)
}

fn valid_perms(b: &Body<'_>, v: Vec<Perm>) -> Result<Vec<Perm>, RestoreError> {
    match v.first() {
        None => Err(b.err("empty permission list")),
        Some(o) if o.bits & IGNORE != 0 => Err(b.err("stale owner permission")),
        Some(_) => Ok(v),
    }
}

/// `n` quota values then their names; known names are set in `q`, others are ignored
/// (Xen: unknown quotas have no effect), global-only ones are returned.
fn quota_list(
    b: &mut Body<'_>,
    n: usize,
    q: &mut Quotas,
) -> Result<Vec<(Vec<u8>, u32)>, RestoreError> {
    if n.saturating_mul(5) > b.left() {
        return Err(b.err("count larger than the record"));
    }
    let mut values = Vec::new();
    for _ in 0..n {
        values.push(b.u32()?);
    }
    let mut other = Vec::new();
    for v in values {
        let mut name = Vec::new();
        loop {
            match b.u8()? {
                0 => break,
                c => name.push(c),
            }
        }
        let known = core::str::from_utf8(&name).is_ok_and(|s| q.set(s, v));
        if !known {
            other.push((name, v));
        }
    }
    b.end()?;
    Ok(other)
}

/// A connection being restored, with where its record was (for messages).
struct Pending {
    conn: Conn,
    offset: usize,
    /// FS_CONNECTION was read.
    detailed: bool,
    /// Transactions whose FS_TRANSACTION is still due.
    bare_txs: BTreeSet<u32>,
}

/// What has been read so far.
struct Restorer {
    version: u32,
    cfg: Config,
    generation: Option<u64>,
    logging: bool,
    wrl: Option<Wrl>,
    special_perms: [Vec<Perm>; 2],
    usage_domids: Vec<u32>,
    domains: BTreeMap<u32, Domain>,
    described: BTreeSet<u32>,
    conns: BTreeMap<ConnId, Pending>,
    /// The nodes so far (generations 0 until FS_NODES).
    tree: Option<Tree>,
    nodes: usize,
    /// FS_NODES was read.
    generations: bool,
    seen: BTreeSet<u32>,
}

impl<P: Platform> Engine<P> {
    /// An engine with the state a stream from [`Engine::dump`] (or Xen's xenstored, version
    /// 1 or 2) describes. `cfg` gives what the stream does not carry (the quotas and memory
    /// bounds it carries replace cfg's). Ring connections keep their ids and are handed to
    /// [`Platform::adopt`]; socket connections keep their ids for the host to map.
    pub fn restore(platform: P, cfg: Config, stream: &[u8]) -> Result<Engine<P>, RestoreError> {
        let mut records = Records::new(stream)?;
        let mut r = Restorer {
            version: records.version,
            cfg,
            generation: None,
            logging: false,
            wrl: None,
            special_perms: [n0(), n0()],
            usage_domids: Vec::new(),
            domains: BTreeMap::new(),
            described: BTreeSet::new(),
            conns: BTreeMap::new(),
            tree: None,
            nodes: 0,
            generations: false,
            seen: BTreeSet::new(),
        };
        while let Some(mut b) = records.next_record()? {
            r.record(&mut b)?;
        }
        r.finish(platform, stream.len())
    }
}

impl Restorer {
    fn record(&mut self, b: &mut Body<'_>) -> Result<(), RestoreError> {
        let ty = b.ty();
        let once = [
            rec::GLOBAL_DATA,
            rec::GLOBAL_QUOTA_DATA,
            rec::FS_GLOBAL,
            rec::FS_NODES,
        ];
        if once.contains(&ty) && !self.seen.insert(ty) {
            return Err(b.err("record repeated"));
        }
        if ty == rec::NODE_DATA && self.generations {
            return Err(b.err("node after FS_NODES"));
        }
        match ty {
            rec::END => b.end(),
            rec::GLOBAL_DATA => {
                b.u32()?;
                b.u32()?;
                b.end()
            }
            rec::GLOBAL_QUOTA_DATA => self.global_quotas(b),
            rec::FS_GLOBAL => self.fs_global(b),
            rec::DOMAIN_DATA => self.domain(b),
            rec::FS_DOMAIN => self.fs_domain(b),
            rec::CONNECTION_DATA => self.connection(b),
            rec::FS_CONNECTION => self.fs_connection(b),
            rec::WATCH_DATA | rec::WATCH_DATA_EXTENDED => self.watch(b),
            rec::TRANSACTION_DATA => self.transaction(b),
            rec::FS_TRANSACTION => self.fs_transaction(b),
            rec::NODE_DATA => self.node(b),
            rec::FS_NODES => self.fs_nodes(b),
            _ => Err(b.err("unknown record type")),
        }
    }

    fn global_quotas(&mut self, b: &mut Body<'_>) -> Result<(), RestoreError> {
        let n = usize::from(b.u16()?) + usize::from(b.u16()?);
        let mut q = self.cfg.quotas;
        for (name, v) in quota_list(b, n, &mut q)? {
            match core::str::from_utf8(&name) {
                Ok(GLOBAL_MEMORY) => self.cfg.global_memory = v,
                Ok(SOFT_MEMORY) => self.cfg.soft_memory = v,
                _ => {}
            }
        }
        self.cfg.quotas = q;
        Ok(())
    }

    fn fs_global(&mut self, b: &mut Body<'_>) -> Result<(), RestoreError> {
        let generation = b.u64()?;
        if generation > MAX_GENERATION {
            return Err(b.err("generation out of range"));
        }
        self.generation = Some(generation);
        self.logging = flag(b)?;
        let reserve = credit(b)?;
        let ndomains = b.u64()? as i64;
        if !(0..=MAX_CONN as i64).contains(&ndomains) {
            return Err(b.err("domain count out of range"));
        }
        self.wrl = Some(Wrl { reserve, ndomains });
        for sp in self.special_perms.iter_mut() {
            *sp = fs_perms(b)?;
        }
        let n = b.count(4)?;
        for _ in 0..n {
            self.usage_domids.push(b.u32()?);
        }
        b.end()
    }

    /// The domain `domid`, made with the defaults a stream without ferrostore records gets.
    fn domain_mut(&mut self, domid: u32) -> &mut Domain {
        let quotas = self.cfg.quotas;
        self.domains
            .entry(domid)
            .or_insert_with(|| Domain::new(0, quotas, 0))
    }

    fn domain(&mut self, b: &mut Body<'_>) -> Result<(), RestoreError> {
        let domid = u32::from(b.u16()?);
        if domid >= DOMID_SELF || !self.described.insert(domid) {
            return Err(b.err("invalid or repeated domain id"));
        }
        let n = usize::from(b.u16()?);
        let features = b.u32()?;
        let version = self.version;
        let d = self.domain_mut(domid);
        if version >= 2 {
            if features & !FEATURES != 0 {
                return Err(b.err("unknown ring features"));
            }
            d.features = features;
        }
        let mut q = d.quotas;
        quota_list(b, n, &mut q)?;
        self.domain_mut(domid).quotas = q;
        Ok(())
    }

    fn fs_domain(&mut self, b: &mut Body<'_>) -> Result<(), RestoreError> {
        let domid = b.u32()?;
        if !self.described.contains(&domid) {
            return Err(b.err("FS_DOMAIN without its DOMAIN_DATA"));
        }
        let gen = b.u64()?;
        let shutdown_reported = flag(b)?;
        let wrl_credit = credit(b)?;
        let d = self.domain_mut(domid);
        (d.gen, d.shutdown_reported, d.wrl_credit) = (gen, shutdown_reported, wrl_credit);
        d.wrl_stamp = b.u64()?;
        d.mfn = b.u64()?;
        b.end()
    }

    /// A stream conn-id: an existing connection's index (`known`), or a new one's.
    fn conn_index(&self, b: &Body<'_>, id: u32, known: bool) -> Result<ConnId, RestoreError> {
        let cid = (id as usize).wrapping_sub(1);
        if cid >= MAX_CONN || self.conns.contains_key(&cid) != known {
            return Err(b.err(if known {
                "unknown connection"
            } else {
                "invalid or repeated conn-id"
            }));
        }
        Ok(cid)
    }

    fn connection(&mut self, b: &mut Body<'_>) -> Result<(), RestoreError> {
        let offset = b.offset();
        let id = b.u32()?;
        let cid = self.conn_index(b, id, false)?;
        let ring = match b.u16()? {
            0 => true,
            1 => false,
            _ => return Err(b.err("unknown connection type")),
        };
        if b.u16()? != 0 {
            return Err(b.err("unsupported connection flags"));
        }
        let mut conn = if ring {
            let domid = u32::from(b.u16()?);
            let target = b.u16()?;
            let port = b.u32()?;
            if domid >= DOMID_SELF || port == 0 {
                return Err(b.err("invalid ring domid or event channel"));
            }
            let target = match target {
                DOMID_INVALID => None,
                t if u32::from(t) < DOMID_SELF => Some(u32::from(t)),
                _ => return Err(b.err("invalid target domid")),
            };
            let d = self.domain_mut(domid);
            if d.conn.is_some() {
                return Err(b.err("second ring connection for a domain"));
            }
            (d.conn, d.port, d.target) = (Some(cid), port, target);
            Conn::new(domid, domid == 0 || Some(domid) == self.cfg.priv_domid)
        } else {
            b.u32()?;
            b.u32()?;
            Conn::new(0, true)
        };
        let in_len = usize::from(b.u16()?);
        let partial = usize::from(b.u16()?);
        let out_len = b.u32()? as usize;
        conn.inbuf = b.take(in_len)?.to_vec();
        if let Some(h) = Header::parse(&conn.inbuf) {
            if h.len as usize > PAYLOAD_MAX || HEADER_LEN + h.len as usize <= conn.inbuf.len() {
                return Err(b.err("pending input is not a partial request"));
            }
        }
        if partial > out_len {
            return Err(b.err("partial reply longer than the pending output"));
        }
        let tail = b.take(partial)?;
        if partial > 0 {
            conn.out.push_back(OutMsg {
                data: Rc::from(tail),
                at: 0,
                event: false,
            });
        }
        let mut rest = b.take(out_len - partial)?;
        while !rest.is_empty() {
            let h = Header::parse(rest).ok_or(b.err("pending output is not whole messages"))?;
            let end = HEADER_LEN + h.len as usize;
            let m = rest.get(..end).filter(|_| h.len as usize <= PAYLOAD_MAX);
            let m = m.ok_or(b.err("pending output is not whole messages"))?;
            conn.out.push_back(OutMsg {
                data: Rc::from(m),
                at: 0,
                event: h.ty == ty::WATCH_EVENT,
            });
            rest = rest.get(end..).unwrap_or_default();
        }
        b.end()?;
        self.conns.insert(
            cid,
            Pending {
                conn,
                offset,
                detailed: false,
                bare_txs: BTreeSet::new(),
            },
        );
        Ok(())
    }

    fn fs_connection(&mut self, b: &mut Body<'_>) -> Result<(), RestoreError> {
        let id = b.u32()?;
        let cid = self.conn_index(b, id, true)?;
        let domid = b.u32()?;
        let flags = b.u8()?;
        let next_tx = b.u32()?;
        let out_off = b.u32()? as usize;
        let n = b.count(9)?;
        let Some(p) = self.conns.get_mut(&cid) else {
            return Err(b.err("unknown connection"));
        };
        let c = &mut p.conn;
        let ring = self
            .domains
            .get(&c.domid)
            .is_some_and(|d| d.conn == Some(cid));
        if p.detailed || (ring && c.domid != domid) || domid >= DOMID_SELF {
            return Err(b.err("FS_CONNECTION does not match its connection"));
        }
        if flags & !(CONN_PRIVILEGED | CONN_IGNORED | CONN_DROPPING) != 0 {
            return Err(b.err("unknown connection flags"));
        }
        p.detailed = true;
        c.domid = domid;
        c.privileged = flags & CONN_PRIVILEGED != 0;
        c.ignored = flags & CONN_IGNORED != 0;
        c.dropping = flags & CONN_DROPPING != 0;
        c.next_tx = next_tx;
        if c.ignored && !c.inbuf.is_empty() {
            return Err(b.err("pending input on a connection that ignores input"));
        }
        if n != c.out.len() {
            return Err(b.err("message count does not match the pending output"));
        }
        let partial = c.out.front().filter(|_| out_off > 0).map(|m| m.data.len());
        match partial {
            Some(tail) => {
                if out_off.saturating_add(tail) > HEADER_LEN + PAYLOAD_MAX {
                    return Err(b.err("partial reply longer than a message"));
                }
                // The bytes already sent are not in the stream: zeros stand for them.
                let mut full = alloc::vec![0u8; out_off];
                if let Some(m) = c.out.front_mut() {
                    full.extend_from_slice(&m.data);
                    m.data = Rc::from(full);
                }
                c.out_off = out_off;
            }
            None if out_off > 0 => return Err(b.err("sent bytes without a partial reply")),
            None => {}
        }
        for (i, m) in c.out.iter_mut().enumerate() {
            let event = flag(b)?;
            if (i > 0 || c.out_off == 0) && event != m.event {
                return Err(b.err("event flag does not match the message"));
            }
            m.event = event;
            m.at = b.u64()?;
        }
        b.end()
    }

    fn watch(&mut self, b: &mut Body<'_>) -> Result<(), RestoreError> {
        let extended = b.ty() == rec::WATCH_DATA_EXTENDED;
        if extended && self.version < 2 {
            return Err(b.err("WATCH_DATA_EXTENDED in a version 1 stream"));
        }
        let id = b.u32()?;
        let cid = self.conn_index(b, id, true)?;
        let path_len = b.u16()?;
        let token_len = b.u16()?;
        let depth = match extended {
            true => {
                let d = b.u16()?;
                b.u16()?;
                (d != DEPTH_UNLIMITED).then_some(u32::from(d))
            }
            false => None,
        };
        let raw = cstr(b, path_len, "invalid watch path")?;
        let token = cstr(b, token_len, "invalid watch token")?.to_vec();
        b.end()?;
        let Some(p) = self.conns.get_mut(&cid) else {
            return Err(b.err("unknown connection"));
        };
        let c = &mut p.conn;
        let (path, strip) = match raw.first() {
            Some(b'@') => match core::str::from_utf8(raw) {
                Ok(s) if depth.is_none_or(|d| d <= 1) => (String::from(s), 0),
                _ => return Err(b.err("invalid watch path")),
            },
            _ => match path::canonicalize(raw, c.domid, usize::MAX) {
                Ok(p) if raw.first() == Some(&b'/') && p.as_bytes() == raw => (p, 0),
                Ok(p) if raw.first() != Some(&b'/') => {
                    let strip = p.len() - raw.len();
                    (p, strip)
                }
                _ => return Err(b.err("invalid watch path")),
            },
        };
        if c.watches.iter().any(|w| w.path == path && w.token == token) {
            return Err(b.err("repeated watch"));
        }
        c.watches.push(Watch {
            seq: c.next_watch,
            path,
            token,
            strip,
            depth,
        });
        c.next_watch += 1;
        Ok(())
    }

    fn transaction(&mut self, b: &mut Body<'_>) -> Result<(), RestoreError> {
        let id = b.u32()?;
        let cid = self.conn_index(b, id, true)?;
        let txid = b.u32()?;
        b.end()?;
        let Some(p) = self.conns.get_mut(&cid) else {
            return Err(b.err("unknown connection"));
        };
        if txid == 0 || p.conn.txs.contains_key(&txid) {
            return Err(b.err("invalid or repeated transaction id"));
        }
        p.conn.txs.insert(txid, Tx::default());
        p.bare_txs.insert(txid);
        Ok(())
    }

    fn fs_transaction(&mut self, b: &mut Body<'_>) -> Result<(), RestoreError> {
        let id = b.u32()?;
        let cid = self.conn_index(b, id, true)?;
        let txid = b.u32()?;
        let Some(p) = self.conns.get_mut(&cid) else {
            return Err(b.err("unknown connection"));
        };
        if !p.bare_txs.remove(&txid) {
            return Err(b.err("FS_TRANSACTION without its TRANSACTION_DATA"));
        }
        let tx = read_transaction(b)?;
        p.conn.txs.insert(txid, tx);
        Ok(())
    }

    fn node(&mut self, b: &mut Body<'_>) -> Result<(), RestoreError> {
        let (conn, _tx) = (b.u32()?, b.u32()?);
        if conn != 0 {
            return Err(b.err("transaction nodes travel in FS_TRANSACTION"));
        }
        let path_len = b.u16()?;
        let value_len = usize::from(b.u16()?);
        b.u16()?;
        let n = usize::from(b.u16()?);
        let mut perms = Vec::with_capacity(n.min(b.left() / 4));
        for _ in 0..n {
            let bits = match b.u8()? {
                b'n' => 0,
                b'r' => READ,
                b'w' => perms::WRITE,
                b'b' => ALL,
                _ => return Err(b.err("invalid permission")),
            };
            let flags = b.u8()?;
            if flags & !PERM_IGNORE != 0 {
                return Err(b.err("unknown permission flags"));
            }
            let ignore = if flags != 0 { IGNORE } else { 0 };
            let domid = u32::from(b.u16()?);
            perms.push(Perm {
                domid,
                bits: bits | ignore,
            });
        }
        let perms = valid_perms(b, perms)?;
        let raw = cstr(b, path_len, "invalid node path")?;
        let path = node_path(b, raw)?;
        let value = b.take(value_len)?.to_vec();
        b.end()?;
        let Some(tree) = self.tree.as_mut() else {
            if path != "/" {
                return Err(b.err("the root must be the first node"));
            }
            self.tree = Some(Tree::new(Node::new(value, perms, 0)));
            self.nodes = 1;
            return Ok(());
        };
        let parent = path::parent(&path);
        let name = path.get(parent.len()..).unwrap_or_default();
        let name = name.trim_start_matches('/');
        let (perms, parent_gen) = match tree.get(parent) {
            Some(p) if p.child(name).is_none() && path != "/" => {
                let perms = match p.perms == perms {
                    true => p.perms.share(),
                    false => Perms::from(perms),
                };
                (perms, p.generation)
            }
            _ => return Err(b.err("node repeated or before its parent")),
        };
        tree.attach(parent, name, Node::new(value, perms, 0), parent_gen);
        self.nodes += 1;
        Ok(())
    }

    fn fs_nodes(&mut self, b: &mut Body<'_>) -> Result<(), RestoreError> {
        let n = b.count(8)?;
        let Some(tree) = self.tree.as_mut() else {
            return Err(b.err("FS_NODES before the nodes"));
        };
        if n != self.nodes {
            return Err(b.err("generation count does not match the nodes"));
        }
        let mut paths = Vec::with_capacity(n);
        tree::walk(tree.root(), "/", |p, _| paths.push(String::from(p)));
        for p in &paths {
            let g = b.u64()?;
            if g > MAX_GENERATION {
                return Err(b.err("generation out of range"));
            }
            if let Some(node) = tree.get_mut(p) {
                node.generation = g;
            }
        }
        for _ in 0..b.count(12)? {
            let (node, perm, domid) = (b.u32()? as usize, b.u32()? as usize, b.u32()?);
            let node = paths.get(node).and_then(|p| tree.get_mut(p));
            let mut list = node.as_ref().map(|n| n.perms.to_vec()).unwrap_or_default();
            let entry = list
                .get_mut(perm)
                .filter(|p| p.domid == domid & 0xFFFF && domid > 0xFFFF);
            entry.ok_or(b.err("invalid wide domid"))?.domid = domid;
            if let Some(n) = node {
                n.perms = Perms::from(list);
            }
        }
        self.generations = true;
        b.end()
    }

    /// The engine, once every record is in: built, checked, its rings adopted.
    fn finish<P: Platform>(mut self, platform: P, end: usize) -> Result<Engine<P>, RestoreError> {
        let at_end = |what| RestoreError {
            what,
            record: None,
            offset: end,
        };
        let tree = self.tree.take().ok_or(at_end("no nodes"))?;
        self.domain_mut(0);
        let generation = match self.generation {
            Some(g) => g,
            None => {
                let mut max = 0;
                tree::walk(tree.root(), "/", |_, n| max = max.max(n.generation));
                max
            }
        };
        for d in self.domains.values() {
            if d.gen > generation || d.target.is_some_and(|t| !self.domains.contains_key(&t)) {
                return Err(at_end("domain generation or target out of step"));
            }
        }
        let rings = self.domains.values().filter(|d| d.conn.is_some()).count() as i64;
        let now = platform.now_ms();
        let mut conns: Vec<Option<Conn>> = Vec::new();
        let mut offsets = BTreeMap::new();
        let mut watch_index = WatchIndex::default();
        let (mut open_txs, mut conn_bytes, mut ready) = (0, 0, Vec::new());
        for (cid, p) in self.conns {
            if !p.bare_txs.is_empty() {
                return Err(RestoreError {
                    what: "transaction without its FS_TRANSACTION",
                    record: Some(rec::CONNECTION_DATA),
                    offset: p.offset,
                });
            }
            offsets.insert(cid, p.offset);
            let mut c = p.conn;
            for (i, m) in c.out.iter_mut().enumerate() {
                if !p.detailed {
                    m.at = now;
                }
                if m.event && (i > 0 || c.out_off == 0) {
                    *c.queued_events.entry(m.data.clone()).or_insert(0) += 1;
                }
                c.out_bytes += m.data.len();
            }
            c.tx_bytes = c.txs.values().map(Tx::bytes).sum();
            for w in &c.watches {
                watch_index.add(&w.path, cid, w.seq);
            }
            open_txs += c.txs.len();
            conn_bytes += c.out_bytes + c.tx_bytes;
            if !c.out.is_empty() {
                c.in_ready = true;
                ready.push(cid);
            }
            conns.resize_with(cid + 1, || None);
            if let Some(slot) = conns.get_mut(cid) {
                *slot = Some(c);
            }
        }
        let mut e = Engine {
            platform,
            cfg: self.cfg,
            tree,
            generation,
            usage: BTreeMap::new(),
            conns,
            domains: self.domains,
            special_perms: self.special_perms,
            ready,
            logging: self.logging,
            requests: 0,
            events: 0,
            pending_special: Vec::new(),
            deferred_events: Vec::new(),
            wrl: self.wrl.unwrap_or(Wrl {
                reserve: 0,
                ndomains: rings,
            }),
            viewed: Vec::new(),
            main_changed: false,
            watch_index,
            open_txs,
            usage_total: 0,
            conn_bytes,
            lu: None,
            lu_switch: None,
            reply_deferred: false,
            counters: Counters::default(),
        };
        e.recount_usage();
        for d in self.usage_domids {
            e.usage.entry(d).or_default();
        }
        e.check().map_err(at_end)?;
        let rings: Vec<(u32, ConnId, u64, u32)> = e
            .domains
            .iter()
            .filter_map(|(&domid, d)| Some((domid, d.conn?, d.mfn, d.port)))
            .collect();
        for (domid, cid, mfn, port) in rings {
            if e.platform.adopt(cid, domid, mfn, port).is_err() {
                return Err(RestoreError {
                    what: "the platform could not adopt the ring",
                    record: Some(rec::CONNECTION_DATA),
                    offset: offsets.get(&cid).copied().unwrap_or(end),
                });
            }
        }
        Ok(e)
    }
}

fn flag(b: &mut Body<'_>) -> Result<bool, RestoreError> {
    match b.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(b.err("invalid flag")),
    }
}

/// A node name (a path component).
fn node_name(b: &mut Body<'_>) -> Result<String, RestoreError> {
    let raw = b.string()?;
    let abs: Vec<u8> = [&b"/"[..], raw].concat();
    match node_path(b, &abs) {
        Ok(p) if !raw.is_empty() && !raw.contains(&b'/') => Ok(String::from(&p[1..])),
        _ => Err(b.err("invalid node name")),
    }
}

/// FS_TRANSACTION's fields after the ids (see `dump_transaction`).
fn read_transaction(b: &mut Body<'_>) -> Result<Tx, RestoreError> {
    let repeated = |b: &Body<'_>| b.err("repeated path");
    let mut tx = Tx {
        accessed_nodes: b.u32()? as usize,
        ..Tx::default()
    };
    for _ in 0..b.count(13)? {
        let p = fs_path(b)?;
        let present = flag(b)?;
        let g = b.u64()?;
        if tx.accessed.insert(p, present.then_some(g)).is_some() {
            return Err(repeated(b));
        }
    }
    if tx.accessed_nodes < tx.accessed.len() {
        return Err(b.err("fewer accessed nodes than accessed paths"));
    }
    for _ in 0..b.count(9)? {
        let p = fs_path(b)?;
        let perms = fs_perms(b)?;
        if tx.parents.insert(p, perms).is_some() {
            return Err(repeated(b));
        }
    }
    let mut removed = BTreeSet::new();
    for _ in 0..b.count(4)? {
        if !removed.insert(fs_path(b)?) {
            return Err(repeated(b));
        }
    }
    let mut entries = Vec::new();
    let mut seen = BTreeSet::new();
    for _ in 0..b.count(5)? {
        let p = fs_path(b)?;
        let flags = b.u8()?;
        if flags & !(ENTRY_NAMED | ENTRY_VALUE | ENTRY_PERMS) != 0 {
            return Err(b.err("unknown entry flags"));
        }
        let value = match flags & ENTRY_VALUE {
            0 => None,
            _ => Some(b.string()?.to_vec()),
        };
        let perms = match flags & ENTRY_PERMS {
            0 => None,
            _ => Some((fs_perms(b)?, b.u64()?)),
        };
        if !seen.insert(p.clone()) {
            return Err(repeated(b));
        }
        let named = flags & ENTRY_NAMED != 0;
        let e = transaction::Entry {
            seq: 0,
            value,
            perms,
            named,
        };
        entries.push((p, e));
    }
    tx.overlay = transaction::Overlay::from_parts(removed, entries);
    for _ in 0..b.count(21)? {
        let p = fs_path(b)?;
        let value = b.string()?.to_vec();
        let perms = fs_perms(b)?;
        let g = b.u64()?;
        let mut names = Vec::new();
        for _ in 0..b.count(4)? {
            let name = node_name(b)?;
            if names.contains(&name) {
                return Err(b.err("repeated child name"));
            }
            names.push(name);
        }
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let node = Node::with_child_names(value, Perms::from(perms), g, &names);
        if tx.frozen.insert(p, node).is_some() {
            return Err(repeated(b));
        }
    }
    for i in 0..b.count(4)? {
        if tx.touched.insert(fs_path(b)?, i).is_some() {
            return Err(repeated(b));
        }
    }
    b.end()?;
    tx.recount();
    Ok(tx)
}
