//! Transactions: what an open transaction accessed, and its own changes kept as an overlay of
//! final node states on the main store (never a log to replay), from which its view is
//! rebuilt when the main store has changed.
//!
//! A transaction holds no copy of the main store between requests: its view is dropped as
//! soon as the main store changes ([`crate::Engine`] lists the views it handed out), so an
//! idle transaction keeps alive only what it wrote and the paths it accessed, and both are
//! charged to its domain. The cost of a request is independent of how many operations the
//! transaction made: rewriting nodes only replaces their entries in the overlay, and a
//! rebuild applies at most one entry per node the transaction changed (the nodes it may
//! access are bounded by the `transaction-nodes` quota).

use crate::path;
use crate::perms::{self, Caller, Perm};
use crate::store::{Change, Store, Usage};
use crate::tree::{self, Node, Tree};
use crate::wire::Error;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;

/// A node operation, on the main store or in a transaction.
pub(crate) enum TxOp {
    /// WRITE (`Some` value) or MKDIR (`None`).
    Write(String, Option<Vec<u8>>),
    /// RM of a node and its subtree.
    Rm(String),
    /// SET_PERMS.
    SetPerms(String, Vec<Perm>),
}

impl TxOp {
    /// The node the operation names.
    pub(crate) fn path(&self) -> &str {
        match self {
            TxOp::Write(p, _) | TxOp::Rm(p) | TxOp::SetPerms(p, _) => p,
        }
    }
}

/// Applies one operation to a store.
pub(crate) fn apply(st: &mut Store<'_>, caller: &Caller, op: &TxOp) -> Result<(), Error> {
    match op {
        TxOp::Write(p, v) => st.write(caller, p, v.as_deref()),
        TxOp::Rm(p) => st.rm(caller, p),
        TxOp::SetPerms(p, perms) => st.set_perms(caller, p, perms.clone()),
    }
}

/// The transaction's own version of one node.
pub(crate) struct Entry {
    /// When the entry was made: a created node's parents come before it.
    pub(crate) seq: u64,
    /// The value the transaction wrote, or created the node with.
    pub(crate) value: Option<Vec<u8>>,
    /// The permissions the transaction gave the node, or created it with, and the generation
    /// then: the domains they name must be the same ones at commit.
    pub(crate) perms: Option<(Vec<Perm>, u64)>,
    /// False for a node only created on the way to a deeper one: it fires no watch at
    /// commit (no request named it).
    pub(crate) named: bool,
}

impl Entry {
    /// What the entry is charged: C's record size of the node, and its path as the key.
    fn bytes(&self, path: &str) -> usize {
        let perms = self.perms.as_ref().map_or(0, |p| p.0.len());
        let value = self.value.as_ref().map_or(0, Vec::len);
        path.len() + tree::record_size(perms, value, 0)
    }
}

/// A transaction's changes as final states: the subtrees it removed, then the nodes it wrote,
/// created or gave permissions, in creation order.
#[derive(Default)]
pub(crate) struct Overlay {
    pub(crate) removed: BTreeSet<String>,
    pub(crate) nodes: BTreeMap<String, Entry>,
    next_seq: u64,
    /// Bytes charged for the entries.
    bytes: usize,
}

/// The range of the paths strictly below `path` in a sorted map or set ('0' follows '/').
fn below(path: &str) -> core::ops::Range<String> {
    alloc::format!("{path}/")..alloc::format!("{path}0")
}

/// The keys of `map` that are `path` or below it.
fn subtree_keys<'a, V>(
    map: &'a BTreeMap<String, V>,
    path: &str,
) -> impl Iterator<Item = &'a String> {
    map.get_key_value(path)
        .map(|(k, _)| k)
        .into_iter()
        .chain(map.range(below(path)).map(|(k, _)| k))
}

/// What a removed subtree is charged: its path and a record header.
fn removed_bytes(path: &str) -> usize {
    path.len() + tree::record_size(0, 0, 0)
}

impl Overlay {
    /// An overlay of these removed subtrees and entries (numbered in the order given, their
    /// `seq` ignored), charged as if recorded one by one (a live update restoring one).
    pub(crate) fn from_parts(removed: BTreeSet<String>, entries: Vec<(String, Entry)>) -> Overlay {
        let mut o = Overlay {
            bytes: removed.iter().map(|p| removed_bytes(p)).sum(),
            removed,
            ..Overlay::default()
        };
        for (p, mut e) in entries {
            e.seq = o.next_seq;
            o.next_seq += 1;
            o.bytes += e.bytes(&p);
            o.nodes.insert(p, e);
        }
        o
    }

    /// The entries in the order they were made.
    pub(crate) fn in_order(&self) -> Vec<(&String, &Entry)> {
        let mut order: Vec<(&String, &Entry)> = self.nodes.iter().collect();
        order.sort_unstable_by_key(|(_, e)| e.seq);
        order
    }

    /// Bytes charged for what the overlay holds.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Changes the entry of `path` (made if missing), keeping the charge in step.
    fn update(&mut self, path: &str, f: impl FnOnce(&mut Entry)) {
        let seq = self.next_seq;
        let e = self.nodes.entry(String::from(path)).or_insert(Entry {
            seq,
            value: None,
            perms: None,
            named: false,
        });
        let before = if e.seq == seq {
            self.next_seq += 1;
            0
        } else {
            e.bytes(path)
        };
        f(e);
        self.bytes = self.bytes - before + e.bytes(path);
    }

    /// The transaction created `path` with `value` and `perms` (at generation `gen`),
    /// `named` by the request or on the way to a deeper node.
    fn created(&mut self, path: &str, value: &[u8], perms: &[Perm], gen: u64, named: bool) {
        self.update(path, |e| {
            e.value = Some(value.to_vec());
            e.perms = Some((perms.to_vec(), gen));
            e.named = named;
        });
    }

    /// The transaction wrote `value` to the existing node `path`.
    fn wrote(&mut self, path: &str, value: &[u8]) {
        self.update(path, |e| {
            e.value = Some(value.to_vec());
            e.named = true;
        });
    }

    /// The transaction set the permissions of `path` (at generation `gen`).
    fn set_perms(&mut self, path: &str, perms: &[Perm], gen: u64) {
        self.update(path, |e| {
            e.perms = Some((perms.to_vec(), gen));
            e.named = true;
        });
    }

    /// True if `path` was only created on the way to a deeper node (its commit change
    /// fires no watch).
    pub(crate) fn unnamed(&self, path: &str) -> bool {
        self.nodes.get(path).is_some_and(|e| !e.named)
    }

    /// The transaction removed `path` and its subtree.
    fn removed(&mut self, path: &str) {
        let gone: Vec<String> = subtree_keys(&self.nodes, path).cloned().collect();
        for p in gone {
            if let Some(e) = self.nodes.remove(&p) {
                self.bytes -= e.bytes(&p);
            }
        }
        let inner: Vec<String> = self.removed.range(below(path)).cloned().collect();
        for p in inner {
            self.removed.remove(&p);
            self.bytes -= removed_bytes(&p);
        }
        if self.removed.insert(String::from(path)) {
            self.bytes += removed_bytes(path);
        }
    }

    /// Applies the overlay to a store (the main store at commit, a copy of it for a view).
    /// `stale(entry, generation)` says whether a permission entry set at `generation` no
    /// longer names the same domain; such entries are purged ([`perms::purge`]).
    /// Operations that no longer apply are skipped.
    pub(crate) fn apply(
        &self,
        st: &mut Store<'_>,
        caller: &Caller,
        stale: impl Fn(&Perm, u64) -> bool,
    ) {
        for r in &self.removed {
            let _ = st.rm(caller, r);
        }
        for (p, e) in self.in_order() {
            if let Some(v) = &e.value {
                let _ = st.write(caller, p, Some(v));
            }
            let Some((perms, gen)) = &e.perms else {
                continue;
            };
            let mut perms = perms.clone();
            perms::purge(&mut perms, |p| stale(p, *gen));
            if st.tree.get(p).is_some_and(|n| n.perms != perms) {
                let _ = st.set_perms(caller, p, perms);
            }
        }
    }
}

/// What recording `op`, just applied to the transaction's `view` where `depth` components
/// of its path existed before, adds to the overlay's charge (computed before recording it,
/// so that growth beyond the memory quota is refused without doing that work).
pub(crate) fn growth(o: &Overlay, view: &Tree, op: &TxOp, depth: usize) -> usize {
    let old = |p: &str| o.nodes.get(p).map_or(0, |e| e.bytes(p));
    match op {
        TxOp::Write(p, value) => {
            let total = path::components(p).count();
            let value = value.as_ref().map_or(0, Vec::len);
            if depth < total {
                let perms = view.get(p).map_or(0, |n| n.perms.len());
                let header = tree::record_size(perms, 0, 0);
                path::ancestors(p)
                    .skip(depth + 1)
                    .map(|a| a.len() + header)
                    .sum::<usize>()
                    + value
            } else if let Some(e) = o.nodes.get(p.as_str()) {
                let now = e.value.as_ref().map_or(0, Vec::len);
                value.saturating_sub(now)
            } else {
                p.len() + tree::record_size(0, value, 0)
            }
        }
        TxOp::Rm(p) => p.len() + tree::record_size(0, 0, 0),
        TxOp::SetPerms(p, perms) => {
            let value = o
                .nodes
                .get(p.as_str())
                .and_then(|e| e.value.as_ref())
                .map_or(0, Vec::len);
            (p.len() + tree::record_size(perms.len(), value, 0)).saturating_sub(old(p))
        }
    }
}

/// Records in the overlay the result of `op`, just applied to the transaction's `view`
/// where `depth` components of its path existed before.
pub(crate) fn record_op(o: &mut Overlay, view: &Tree, op: &TxOp, depth: usize) {
    match op {
        TxOp::Write(p, value) => {
            let total = path::components(p).count();
            if depth < total {
                let Some(leaf) = view.get(p) else { return };
                let (perms, gen) = (leaf.perms.to_vec(), leaf.generation);
                for a in path::ancestors(p).skip(depth + 1) {
                    let leaf = a.len() == p.len();
                    let v = if leaf {
                        value.as_deref().unwrap_or(&[])
                    } else {
                        &[]
                    };
                    o.created(a, v, &perms, gen, leaf);
                }
            } else if let Some(v) = value {
                o.wrote(p, v);
            }
        }
        TxOp::Rm(p) => {
            if depth == path::components(p).count() {
                o.removed(p);
            }
        }
        TxOp::SetPerms(p, _) => {
            if let Some(n) = view.get(p) {
                o.set_perms(p, &n.perms, n.generation);
            }
        }
    }
}

/// A transaction's view: the main store with its overlay applied, and the usage deltas.
pub(crate) struct View {
    pub(crate) tree: Tree,
    pub(crate) usage: BTreeMap<u32, Usage>,
}

/// An open transaction, with C xenstored 4.17's conflict rule: a node is seen as it is in
/// the main store when the transaction first accesses it, and the commit fails (EAGAIN)
/// only if a node the transaction accessed has changed since that first access.
#[derive(Default)]
pub(crate) struct Tx {
    /// The view, while the main store has not changed since it was built.
    pub(crate) view: Option<View>,
    /// Whether the engine has the view in its list of views to drop on a change.
    pub(crate) listed: bool,
    /// First access of each node: its generation in the main store then (None = absent).
    /// All must be unchanged at commit. Of the nodes a write creates only the topmost is
    /// kept: the others cannot be created outside without it.
    pub(crate) accessed: BTreeMap<String, Option<u64>>,
    /// Nodes accessed, for the `transaction-nodes` quota (each node a write creates counts).
    pub(crate) accessed_nodes: usize,
    /// Bytes charged for `accessed`, `parents` and `touched`.
    pub(crate) path_bytes: usize,
    /// Existing nodes that got a new child in the transaction, with their permissions then:
    /// they must still exist with those permissions at commit (their generation may change:
    /// concurrent siblings do not conflict).
    pub(crate) parents: BTreeMap<String, Vec<Perm>>,
    /// The transaction's changes.
    pub(crate) overlay: Overlay,
    /// Once a node it accessed changed outside (its commit will fail), the accessed nodes
    /// as the transaction saw them (as C, it keeps seeing them so), without their subtrees;
    /// a node the transaction changes again leaves this set.
    pub(crate) frozen: BTreeMap<String, Node>,
    /// Bytes charged for `frozen`.
    pub(crate) frozen_bytes: usize,
    /// Nodes in the order C xenstored first touches them (a written node before the parent
    /// whose child list grows; a removed node's parent before it): the order of the watch
    /// events at commit.
    pub(crate) touched: BTreeMap<String, usize>,
}

/// Bytes charged for one path kept in a transaction's bookkeeping.
pub(crate) fn path_charge(path: &str) -> usize {
    path.len() + 8
}

impl Tx {
    /// Bytes charged to the connection's domain for what the transaction holds.
    pub(crate) fn bytes(&self) -> usize {
        self.overlay.bytes() + self.path_bytes + self.frozen_bytes
    }

    /// Recomputes the charges of `accessed`, `parents`, `touched` and `frozen` (a live
    /// update restoring the transaction).
    pub(crate) fn recount(&mut self) {
        let paths = self.accessed.keys().chain(self.parents.keys());
        self.path_bytes = paths
            .chain(self.touched.keys())
            .map(|p| path_charge(p))
            .sum();
        self.frozen_bytes = self
            .frozen
            .iter()
            .map(|(p, n)| path_charge(p) + n.record_size())
            .sum();
    }

    /// The main store changed after the view was built: a transaction that is still valid
    /// drops its view (the next request rebuilds it from the overlay); one whose commit will
    /// fail keeps the accessed nodes as it saw them, and nothing else.
    pub(crate) fn settle(&mut self, main: &Tree) {
        self.listed = false;
        let Some(view) = self.view.take() else {
            return;
        };
        if self.still_valid(main) {
            return;
        }
        for p in self.accessed.keys() {
            if self.frozen.contains_key(p) {
                continue;
            }
            if let Some(n) = view.tree.get(p) {
                let copy = n.shallow();
                self.frozen_bytes += path_charge(p) + copy.record_size();
                self.frozen.insert(p.clone(), copy);
            }
        }
    }

    /// The transaction changed the node `path` (and the child list of its parent, and with
    /// `subtree` everything below it): those leave the frozen set.
    pub(crate) fn thaw(&mut self, path: &str, subtree: bool) {
        if self.frozen.is_empty() {
            return;
        }
        let mut gone: Vec<String> = [path, path::parent(path)]
            .iter()
            .filter(|p| self.frozen.contains_key(**p))
            .map(|p| String::from(*p))
            .collect();
        if subtree {
            gone.extend(subtree_keys(&self.frozen, path).cloned());
        }
        for p in gone {
            if let Some(n) = self.frozen.remove(&p) {
                self.frozen_bytes -= path_charge(&p) + n.record_size();
            }
        }
    }

    /// True while every node the transaction accessed is unchanged in `main` (else the
    /// commit fails with EAGAIN).
    pub(crate) fn still_valid(&self, main: &Tree) -> bool {
        self.accessed
            .iter()
            .all(|(p, g)| main.get(p).map(|n| n.generation) == *g)
            && self
                .parents
                .iter()
                .all(|(p, perms)| main.get(p).is_some_and(|n| n.perms == *perms))
    }

    pub(crate) fn touch(&mut self, path: &str) {
        if !self.touched.contains_key(path) {
            let n = self.touched.len();
            self.path_bytes += path_charge(path);
            self.touched.insert(String::from(path), n);
        }
    }

    /// Records the nodes `op` touches, before it is applied to the view: a write touches its
    /// node, the topmost node it creates and the existing parent of that one (`depth`
    /// components of the path exist in the view).
    pub(crate) fn touch_op(&mut self, op: &TxOp, depth: usize) {
        match op {
            TxOp::Write(p, _) => {
                let total = path::components(p).count();
                self.touch(p);
                if depth < total {
                    self.touch(path::ancestor(p, depth + 1));
                    self.touch(path::ancestor(p, depth));
                }
            }
            TxOp::Rm(p) => {
                self.touch(path::parent(p));
                self.touch(p);
            }
            TxOp::SetPerms(p, _) => self.touch(p),
        }
    }

    /// Forgets the touches made from index `mark` on (the request failed).
    pub(crate) fn untouch_from(&mut self, mark: usize) {
        let mut freed = 0;
        self.touched.retain(|p, i| {
            let keep = *i < mark;
            if !keep {
                freed += path_charge(p);
            }
            keep
        });
        self.path_bytes -= freed;
    }

    /// Sorts commit changes into touch order (descendants of a removed node follow it) and
    /// drops repeated changes of one node.
    pub(crate) fn order_changes(&self, changes: &mut Vec<Change>) {
        let key = |p: &str| {
            let mut cur = p;
            loop {
                if let Some(&i) = self.touched.get(cur) {
                    return (i, cur.len() != p.len());
                }
                if cur == "/" {
                    return (usize::MAX, true);
                }
                cur = path::parent(cur);
            }
        };
        changes.sort_by_key(|c| key(&c.path));
        let mut seen: BTreeSet<(String, bool)> = BTreeSet::new();
        changes.retain(|c| seen.insert((c.path.clone(), c.exact)));
    }
}
