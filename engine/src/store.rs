//! Node operations on one tree (the main store or a transaction's copy): WRITE, MKDIR, RM
//! and SET_PERMS with their permission, quota and accounting rules, reporting the changes
//! that watches must see.

use crate::domain::Domain;
use crate::path::{self, components};
use crate::perms::{self, Caller, Perm, Perms, IGNORE, READ, WRITE};
use crate::quota::{over, Quotas};
use crate::tree::{self, Node, Tree};
use crate::wire::Error;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

/// Nodes and record bytes owned by a domain (signed: a transaction keeps deltas).
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Usage {
    /// Node count.
    pub nodes: i64,
    /// Sum of record sizes.
    pub bytes: i64,
}

/// A change that watches may see.
#[derive(Clone, Debug)]
pub struct Change {
    /// Absolute path of the changed node.
    pub path: String,
    /// Its permissions after the change (before, for a deletion).
    pub perms: Vec<Perm>,
    /// Its generation (for domid-reuse checks of the permissions).
    pub generation: u64,
    /// Permissions before a SET_PERMS, which also grant the event.
    pub old_perms: Option<Vec<Perm>>,
    /// Only watches on exactly this path fire (descendants of a removed node).
    pub exact: bool,
}

/// Whether a non-owner permission entry still refers to the domain it was written for.
pub fn entry_valid(domains: &BTreeMap<u32, Domain>, p: &Perm, node_gen: u64) -> bool {
    domains.get(&p.domid).is_some_and(|d| d.gen <= node_gen)
}

/// Whether an entry not yet marked IGNORE names a domain that is gone, or younger than
/// `gen` (the generation the entry was written at).
pub fn stale(domains: &BTreeMap<u32, Domain>, p: &Perm, gen: u64) -> bool {
    p.bits & IGNORE == 0 && !entry_valid(domains, p, gen)
}

/// The access `caller` has to `node`.
pub fn access(
    domains: &BTreeMap<u32, Domain>,
    caller: &Caller,
    perms: &[Perm],
    node_gen: u64,
) -> u8 {
    perms::access(caller, perms, |p| entry_valid(domains, p, node_gen))
}

/// Finds `path` requiring `need` access; a missing node is EACCES instead of ENOENT when
/// the caller cannot read the deepest existing ancestor.
pub fn lookup<'t>(
    tree: &'t Tree,
    domains: &BTreeMap<u32, Domain>,
    caller: &Caller,
    path: &str,
    need: u8,
) -> Result<&'t Node, Error> {
    let (node, found) = tree.deepest(path);
    let acc = access(domains, caller, &node.perms, node.generation);
    if !found {
        return Err(if acc & READ != 0 {
            Error::Noent
        } else {
            Error::Acces
        });
    }
    if acc & need != need {
        return Err(Error::Acces);
    }
    Ok(node)
}

/// A mutable view of one tree with its accounting.
pub struct Store<'a> {
    /// The tree.
    pub tree: &'a mut Tree,
    /// Global generation counter.
    pub generation: &'a mut u64,
    /// Usage per owner (absolute for the main tree, deltas for a transaction).
    pub usage: &'a mut BTreeMap<u32, Usage>,
    /// The main tree's record bytes of all owners together, kept in step with `usage`.
    pub total: Option<&'a mut i64>,
    /// Main-store usage when `usage` holds transaction deltas.
    pub base_usage: Option<&'a BTreeMap<u32, Usage>>,
    /// Domain table (permission entry validity).
    pub domains: &'a BTreeMap<u32, Domain>,
    /// Quotas of the caller.
    pub quotas: &'a Quotas,
    /// Skip permission and quota checks (replaying a committed transaction).
    pub force: bool,
    /// Collected changes, if watches are to fire.
    pub changes: Option<&'a mut Vec<Change>>,
    /// Node records written or deleted so far (C xenstored's write-rate cost).
    pub written: u32,
}

impl Store<'_> {
    fn bump(&mut self) -> u64 {
        *self.generation += 1;
        *self.generation
    }

    fn used(&self, domid: u32) -> Usage {
        let d = self.usage.get(&domid).copied().unwrap_or_default();
        let b = self
            .base_usage
            .and_then(|m| m.get(&domid))
            .copied()
            .unwrap_or_default();
        Usage {
            nodes: d.nodes + b.nodes,
            bytes: d.bytes + b.bytes,
        }
    }

    fn account(&mut self, owner: u32, nodes: i64, bytes: i64) {
        let u = self.usage.entry(owner).or_default();
        u.nodes += nodes;
        u.bytes += bytes;
        if let Some(t) = self.total.as_deref_mut() {
            *t += bytes;
        }
    }

    fn checks(&self, caller: &Caller) -> bool {
        !self.force && !caller.privileged
    }

    fn note(&mut self, change: Change) {
        if let Some(c) = self.changes.as_deref_mut() {
            c.push(change);
        }
    }

    fn deny(&self, caller: &Caller, node: &Node, need: u8) -> bool {
        !self.force && access(self.domains, caller, &node.perms, node.generation) & need != need
    }

    /// WRITE (`value` = Some) or MKDIR (`value` = None) at `path`, creating missing parents.
    pub fn write(
        &mut self,
        caller: &Caller,
        path: &str,
        value: Option<&[u8]>,
    ) -> Result<(), Error> {
        let (node, found) = self.tree.deepest(path);
        if found {
            if self.deny(caller, node, WRITE) {
                return Err(Error::Acces);
            }
            let Some(value) = value else { return Ok(()) };
            let new_size = node.record_size() - node.value.len() + value.len();
            if self.checks(caller)
                && self.quotas.node_size != 0
                && new_size >= self.quotas.node_size as usize
            {
                return Err(Error::Nospc);
            }
            let delta = value.len() as i64 - node.value.len() as i64;
            let owner = node.owner();
            if self.checks(caller)
                && over(
                    (self.used(owner).bytes + delta).max(0) as usize,
                    self.quotas.memory,
                )
            {
                return Err(Error::Nomem);
            }
            let g = self.bump();
            let domains = self.domains;
            let n = self.tree.get_mut(path).ok_or(Error::Noent)?;
            n.value = value.into();
            mark_stale(domains, &mut n.perms, n.generation);
            n.generation = g;
            let perms = n.perms.to_vec();
            self.written += 1;
            self.account(owner, 0, delta);
            self.note(Change {
                path: String::from(path),
                perms,
                generation: g,
                old_perms: None,
                exact: false,
            });
            return Ok(());
        }
        // Create the missing part below the deepest existing ancestor.
        if self.deny(caller, node, WRITE) {
            return Err(Error::Acces);
        }
        let comps: Vec<&str> = components(path).collect();
        let depth = self.tree.existing_depth(path);
        let missing = comps.get(depth..).unwrap_or(&[]);
        let anc_path = path::prefix(path, depth);
        // New nodes inherit the ancestor's list (shared), owned by an unprivileged creator.
        let perms = if caller.privileged || node.owner() == caller.domid {
            node.perms.share()
        } else {
            let mut v = node.perms.to_vec();
            if let Some(o) = v.first_mut() {
                o.domid = caller.domid;
            }
            Perms::from(v)
        };
        let owner = perms.first().map_or(0, |p| p.domid);
        let value = value.unwrap_or(&[]);
        let n_new = missing.len() as i64;
        let leaf_size = tree::record_size(perms.len(), value.len(), 0);
        // A created node above the leaf: no value, the next name as its only child.
        let dir_size = |m: &str| tree::record_size(perms.len(), 0, m.len() + 1);
        let new_bytes: i64 = missing
            .iter()
            .skip(1)
            .map(|m| dir_size(m) as i64)
            .sum::<i64>()
            + leaf_size as i64;
        let first = missing.first().copied().unwrap_or("");
        let anc_size = node.record_size() + first.len() + 1;
        if self.checks(caller) {
            let ns = self.quotas.node_size as usize;
            if ns != 0
                && (leaf_size >= ns || anc_size >= ns || missing.iter().any(|m| dir_size(m) >= ns))
            {
                return Err(Error::Nospc);
            }
            let used = self.used(owner);
            if over((used.nodes + n_new).max(0) as usize, self.quotas.nodes) {
                return Err(Error::Nospc);
            }
            if over((used.bytes + new_bytes).max(0) as usize, self.quotas.memory) {
                return Err(Error::Nomem);
            }
        }
        let anc_owner = node.owner();
        let g = self.bump();
        let top = tree::chain(missing, perms.share(), value.to_vec(), g);
        if !self.tree.attach(&anc_path, first, top, g) {
            return Err(Error::Noent);
        }
        self.account(owner, n_new, new_bytes);
        self.account(anc_owner, 0, first.len() as i64 + 1);
        self.written += missing.len() as u32 + 1;
        self.note(Change {
            path: String::from(path),
            perms: perms.to_vec(),
            generation: g,
            old_perms: None,
            exact: false,
        });
        Ok(())
    }

    /// RM: removes `path` and its subtree. Removing a missing node whose parent exists is OK.
    pub fn rm(&mut self, caller: &Caller, path: &str) -> Result<(), Error> {
        let (node, found) = self.tree.deepest(path);
        if !found {
            let readable = self.force
                || access(self.domains, caller, &node.perms, node.generation) & READ != 0;
            let parent_exists = self.tree.existing_depth(path) + 1 == components(path).count();
            return match (readable, parent_exists) {
                (false, _) => Err(Error::Acces),
                (true, true) => Ok(()),
                (true, false) => Err(Error::Noent),
            };
        }
        if self.deny(caller, node, WRITE) {
            return Err(Error::Acces);
        }
        // As C: the write permission is checked first (XSA-353: a guest gets EACCES).
        if path == "/" {
            return Err(Error::Inval);
        }
        let parent_owner = self.tree.get(path::parent(path)).map_or(0, Node::owner);
        let g = self.bump();
        let Some(sub) = self.tree.detach(path, g) else {
            return Err(Error::Noent);
        };
        let name_len = path.rsplit('/').next().map_or(0, str::len) as i64;
        self.account(parent_owner, 0, -(name_len + 1));
        let mut removed: Vec<(u32, i64)> = Vec::new();
        let mut changes: Vec<Change> = Vec::new();
        let collect = self.changes.is_some();
        tree::walk_post(&sub, path, |p, n| {
            removed.push((n.owner(), n.record_size() as i64));
            if collect {
                changes.push(Change {
                    path: String::from(p),
                    perms: n.perms.to_vec(),
                    generation: n.generation,
                    old_perms: None,
                    exact: p != path,
                });
            }
        });
        self.written += removed.len() as u32 + 1;
        for (owner, bytes) in removed {
            self.account(owner, -1, -bytes);
        }
        // As C xenstored: descendants in deletion (post-)order, the removed root last.
        for c in changes {
            self.note(c);
        }
        drop(sub);
        Ok(())
    }

    /// SET_PERMS on a node. Entries naming unknown domains must already carry IGNORE.
    pub fn set_perms(&mut self, caller: &Caller, path: &str, new: Vec<Perm>) -> Result<(), Error> {
        let node = if self.force {
            self.tree.get(path).ok_or(Error::Noent)?
        } else {
            lookup(self.tree, self.domains, caller, path, WRITE)?
        };
        let owner = node.owner();
        if !self.force
            && !caller.privileged
            && owner != caller.domid
            && Some(owner) != caller.target
        {
            return Err(Error::Acces);
        }
        let new_owner = new.first().map_or(0, |p| p.domid);
        if self.checks(caller) {
            if new_owner != owner {
                return Err(Error::Perm);
            }
            if over(new.len(), self.quotas.permissions) {
                return Err(Error::Nospc);
            }
            let size = node.record_size_as(new.len(), node.value.len());
            if self.quotas.node_size != 0 && size >= self.quotas.node_size as usize {
                return Err(Error::Nospc);
            }
        }
        if new.first().is_some_and(|p| p.bits & IGNORE != 0) {
            return Err(Error::Noent);
        }
        let old_size = node.record_size() as i64;
        let g = self.bump();
        let n = self.tree.get_mut(path).ok_or(Error::Noent)?;
        let old = core::mem::replace(&mut n.perms, Perms::from(new));
        n.generation = g;
        let new_size = n.record_size() as i64;
        let perms = n.perms.to_vec();
        self.account(owner, -1, -old_size);
        self.account(new_owner, 1, new_size);
        self.written += 1;
        self.note(Change {
            path: String::from(path),
            perms,
            generation: g,
            old_perms: Some(old.to_vec()),
            exact: false,
        });
        Ok(())
    }
}

/// Marks non-owner entries naming domains younger than the node (or gone) as IGNORE,
/// copying the (shared) list only if one needs it.
fn mark_stale(domains: &BTreeMap<u32, Domain>, perms: &mut Perms, node_gen: u64) {
    let stale = |p: &Perm| stale(domains, p, node_gen);
    if !perms.iter().skip(1).any(stale) {
        return;
    }
    let mut v = perms.to_vec();
    for p in v.iter_mut().skip(1) {
        if stale(p) {
            p.bits |= IGNORE;
        }
    }
    *perms = Perms::from(v);
}
