//! Writing the whole engine state as a migration stream (`docs/live-update.md`, "State
//! stream"): Xen's records where they have the fields, ferrostore's `FS_*` records for the
//! rest.

use super::*;
use crate::quota::NAMES;
use crate::stream::{len16, len32, rec, Writer};

/// Xen's "no target" domid in CONNECTION_DATA.
pub(super) const DOMID_INVALID: u16 = 0x7FF4;
/// Watch depth meaning "unlimited" in WATCH_DATA_EXTENDED; deeper limits are written as
/// one less (no path is that deep, so they match the same).
pub(super) const DEPTH_UNLIMITED: u16 = 0xFFFF;
/// NODE_DATA permission flag: the entry is stale (our IGNORE).
pub(super) const PERM_IGNORE: u8 = 1;
/// FS_CONNECTION flags.
pub(super) const CONN_PRIVILEGED: u8 = 1;
pub(super) const CONN_IGNORED: u8 = 2;
pub(super) const CONN_DROPPING: u8 = 4;
/// FS_TRANSACTION overlay entry flags.
pub(super) const ENTRY_NAMED: u8 = 1;
pub(super) const ENTRY_VALUE: u8 = 2;
pub(super) const ENTRY_PERMS: u8 = 4;
/// Global-only quota names in GLOBAL_QUOTA_DATA (ferrostore's CONTROL settings).
pub(super) const GLOBAL_MEMORY: &str = "global-memory";
pub(super) const SOFT_MEMORY: &str = "soft-memory";

/// A stream conn-id for a connection (Xen's are non-zero).
pub(super) fn conn_id(cid: ConnId) -> u32 {
    len32(cid + 1)
}

/// Quota values then their NUL-terminated names (GLOBAL_QUOTA_DATA, DOMAIN_DATA).
fn quota_list(w: &mut Writer, values: &[(&str, u32)]) {
    for (_, v) in values {
        w.u32(*v);
    }
    for (name, _) in values {
        w.bytes(name.as_bytes());
        w.u8(0);
    }
}

fn domain_quotas(q: &Quotas) -> Vec<(&'static str, u32)> {
    NAMES.iter().map(|&n| (n, q.get(n).unwrap_or(0))).collect()
}

/// A permission list in ferrostore records: count, then domid and bits per entry.
fn fs_perms(w: &mut Writer, perms: &[Perm]) {
    w.u32(len32(perms.len()));
    for p in perms {
        w.u32(p.domid);
        w.u8(p.bits);
    }
}

impl<P: Platform> Engine<P> {
    /// The whole state as a migration stream (version 2). Transaction views are settled
    /// first, as a change of the store would (they are caches rebuilt on demand), so this
    /// engine and one restored from the stream go on identically.
    pub fn dump(&mut self) -> Vec<u8> {
        self.settle_views();
        let mut w = Writer::new();
        w.record(rec::GLOBAL_DATA);
        w.u32(u32::MAX);
        w.u32(u32::MAX);
        self.dump_globals(&mut w);
        for (&domid, d) in &self.domains {
            w.record(rec::DOMAIN_DATA);
            w.u16(len16(domid as usize));
            w.u16(len16(NAMES.len()));
            w.u32(d.features);
            quota_list(&mut w, &domain_quotas(&d.quotas));
            w.record(rec::FS_DOMAIN);
            w.u32(domid);
            w.u64(d.gen);
            w.u8(u8::from(d.shutdown_reported));
            w.u64(d.wrl_credit as u64);
            w.u64(d.wrl_stamp);
            w.u64(d.mfn);
        }
        for (cid, c) in self.conns.iter().enumerate() {
            if let Some(c) = c {
                self.dump_connection(&mut w, cid, c);
            }
        }
        self.dump_nodes(&mut w);
        w.finish()
    }

    fn dump_globals(&self, w: &mut Writer) {
        let mut quotas = domain_quotas(&self.cfg.quotas);
        let n_dom = quotas.len();
        quotas.push((GLOBAL_MEMORY, self.cfg.global_memory));
        quotas.push((SOFT_MEMORY, self.cfg.soft_memory));
        w.record(rec::GLOBAL_QUOTA_DATA);
        w.u16(len16(n_dom));
        w.u16(len16(quotas.len() - n_dom));
        quota_list(w, &quotas);
        w.record(rec::FS_GLOBAL);
        w.u64(self.generation);
        w.u8(u8::from(self.logging));
        w.u64(self.wrl.reserve as u64);
        w.u64(self.wrl.ndomains as u64);
        for sp in &self.special_perms {
            fs_perms(w, sp);
        }
        w.u32(len32(self.usage.len()));
        for &d in self.usage.keys() {
            w.u32(d);
        }
    }

    fn dump_connection(&self, w: &mut Writer, cid: ConnId, c: &Conn) {
        let id = conn_id(cid);
        let ring = self.domains.get(&c.domid).filter(|d| d.conn == Some(cid));
        w.record(rec::CONNECTION_DATA);
        w.u32(id);
        w.u16(u16::from(ring.is_none()));
        w.u16(0);
        match ring {
            Some(d) => {
                w.u16(len16(c.domid as usize));
                w.u16(d.target.map_or(DOMID_INVALID, |t| len16(t as usize)));
                w.u32(d.port);
            }
            None => {
                w.u32(u32::MAX);
                w.u32(0);
            }
        }
        let partial = match c.out.front() {
            Some(m) if c.out_off > 0 => m.data.len() - c.out_off,
            _ => 0,
        };
        let out_len: usize = c.out.iter().map(|m| m.data.len()).sum::<usize>() - c.out_off;
        w.u16(len16(c.inbuf.len()));
        w.u16(len16(partial));
        w.u32(len32(out_len));
        w.bytes(&c.inbuf);
        for (i, m) in c.out.iter().enumerate() {
            let skip = if i == 0 { c.out_off } else { 0 };
            w.bytes(m.data.get(skip..).unwrap_or_default());
        }
        w.record(rec::FS_CONNECTION);
        w.u32(id);
        w.u32(c.domid);
        let flags = [
            (c.privileged, CONN_PRIVILEGED),
            (c.ignored, CONN_IGNORED),
            (c.dropping, CONN_DROPPING),
        ];
        w.u8(flags.iter().filter(|f| f.0).map(|f| f.1).sum());
        w.u32(c.next_tx);
        w.u32(len32(c.out_off));
        w.u32(len32(c.out.len()));
        for m in &c.out {
            w.u8(u8::from(m.event));
            w.u64(m.at);
        }
        for wa in &c.watches {
            let path = wa.path.as_bytes().get(wa.strip..).unwrap_or_default();
            match wa.depth {
                Some(d) => {
                    w.record(rec::WATCH_DATA_EXTENDED);
                    w.u32(id);
                    w.u16(len16(path.len() + 1));
                    w.u16(len16(wa.token.len() + 1));
                    w.u16(len16(d as usize).min(DEPTH_UNLIMITED - 1));
                    w.u16(0);
                }
                None => {
                    w.record(rec::WATCH_DATA);
                    w.u32(id);
                    w.u16(len16(path.len() + 1));
                    w.u16(len16(wa.token.len() + 1));
                }
            }
            w.bytes(path);
            w.u8(0);
            w.bytes(&wa.token);
            w.u8(0);
        }
        for (&txid, tx) in &c.txs {
            w.record(rec::TRANSACTION_DATA);
            w.u32(id);
            w.u32(txid);
            dump_transaction(w, id, txid, tx);
        }
    }

    /// Every node, parents first and children in creation order (the order restoring
    /// recreates them in), then their generations.
    fn dump_nodes(&self, w: &mut Writer) {
        let mut generations = Vec::new();
        let mut wide = Vec::new();
        tree::walk(self.tree.root(), "/", |path, n| {
            w.record(rec::NODE_DATA);
            w.u32(0);
            w.u32(0);
            w.u16(len16(path.len() + 1));
            w.u16(len16(n.value.len()));
            w.u16(0);
            w.u16(len16(n.perms.len()));
            for (i, p) in n.perms.iter().enumerate() {
                w.u8(match p.bits & perms::ALL {
                    0 => b'n',
                    READ => b'r',
                    perms::WRITE => b'w',
                    _ => b'b',
                });
                w.u8(if p.bits & IGNORE != 0 { PERM_IGNORE } else { 0 });
                w.u16(p.domid as u16);
                if p.domid > u32::from(u16::MAX) {
                    wide.push((generations.len(), i, p.domid));
                }
            }
            w.bytes(path.as_bytes());
            w.u8(0);
            w.bytes(&n.value);
            generations.push(n.generation);
        });
        w.record(rec::FS_NODES);
        w.u32(len32(generations.len()));
        for g in generations {
            w.u64(g);
        }
        w.u32(len32(wide.len()));
        for (node, perm, domid) in wide {
            w.u32(len32(node));
            w.u32(len32(perm));
            w.u32(domid);
        }
    }
}

/// FS_TRANSACTION: what a transaction accessed (with the generations then), the existing
/// parents it created children under, its overlay, its frozen nodes and its touch order.
fn dump_transaction(w: &mut Writer, id: u32, txid: u32, tx: &Tx) {
    w.record(rec::FS_TRANSACTION);
    w.u32(id);
    w.u32(txid);
    w.u32(len32(tx.accessed_nodes));
    w.u32(len32(tx.accessed.len()));
    for (p, g) in &tx.accessed {
        w.string(p.as_bytes());
        w.u8(u8::from(g.is_some()));
        w.u64(g.unwrap_or(0));
    }
    w.u32(len32(tx.parents.len()));
    for (p, perms) in &tx.parents {
        w.string(p.as_bytes());
        fs_perms(w, perms);
    }
    w.u32(len32(tx.overlay.removed.len()));
    for p in &tx.overlay.removed {
        w.string(p.as_bytes());
    }
    let entries = tx.overlay.in_order();
    w.u32(len32(entries.len()));
    for (p, e) in entries {
        w.string(p.as_bytes());
        let flags = [
            (e.named, ENTRY_NAMED),
            (e.value.is_some(), ENTRY_VALUE),
            (e.perms.is_some(), ENTRY_PERMS),
        ];
        w.u8(flags.iter().filter(|f| f.0).map(|f| f.1).sum());
        if let Some(v) = &e.value {
            w.string(v);
        }
        if let Some((perms, gen)) = &e.perms {
            fs_perms(w, perms);
            w.u64(*gen);
        }
    }
    w.u32(len32(tx.frozen.len()));
    for (p, n) in &tx.frozen {
        w.string(p.as_bytes());
        w.string(&n.value);
        fs_perms(w, &n.perms);
        w.u64(n.generation);
        let names = n.child_names();
        w.u32(len32(names.len()));
        for name in names {
            w.string(name.as_bytes());
        }
    }
    let mut touched: Vec<(&String, &usize)> = tx.touched.iter().collect();
    touched.sort_unstable_by_key(|t| *t.1);
    w.u32(len32(touched.len()));
    for (p, _) in touched {
        w.string(p.as_bytes());
    }
}
