//! The store: a persistent (copy-on-write) tree of reference-counted nodes.
//!
//! Cloning a [`Tree`] is O(1) (it shares every node); a mutation copies only the nodes on the
//! path to the change that are still shared (`Arc::make_mut`). Children keep their creation
//! order (as C xenstored lists them). All walks are iterative, including `Drop`, so a
//! guest-built 1000-level chain cannot exhaust the stack.
//!
//! Nodes are kept small, as a store holds many: short names and values are stored inline,
//! permission lists are shared with the parent they were inherited from, a node without
//! children pays one pointer for its (absent) child map, small directories keep their
//! children in a list in creation order (with a sorted index of 2 bytes per child beyond a
//! few) rather than a B-tree map, lists grow by an eighth, and nodes are counted with
//! `triomphe::Arc`, whose 8-byte header (no weak count) lets a node and its count fit a
//! 64-byte allocation.

use crate::path::components;
use crate::perms::Perms;
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::borrow::Borrow;
use core::cmp::Ordering;
use core::mem;
use core::ops::Deref;
use triomphe::Arc;

/// Longest byte string a [`Bytes`] keeps inline (it is then 24 bytes, like a `Vec`).
const INLINE: usize = 22;

/// A byte string, inline when short (most xenstore names and values), else on the heap.
#[derive(Clone)]
pub struct Bytes(Repr);

#[derive(Clone)]
enum Repr {
    Inline(u8, [u8; INLINE]),
    Heap(Box<[u8]>),
}

impl From<&[u8]> for Bytes {
    fn from(b: &[u8]) -> Bytes {
        let mut buf = [0; INLINE];
        match (buf.get_mut(..b.len()), u8::try_from(b.len())) {
            (Some(dst), Ok(len)) => {
                dst.copy_from_slice(b);
                Bytes(Repr::Inline(len, buf))
            }
            _ => Bytes(Repr::Heap(b.into())),
        }
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Bytes {
        if v.len() <= INLINE {
            Bytes::from(v.as_slice())
        } else {
            Bytes(Repr::Heap(v.into_boxed_slice()))
        }
    }
}

impl Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline(len, buf) => buf.get(..usize::from(*len)).unwrap_or_default(),
            Repr::Heap(b) => b,
        }
    }
}

impl Borrow<[u8]> for Bytes {
    fn borrow(&self) -> &[u8] {
        self
    }
}

impl PartialEq for Bytes {
    fn eq(&self, other: &Bytes) -> bool {
        **self == **other
    }
}

impl Eq for Bytes {}

impl PartialOrd for Bytes {
    fn partial_cmp(&self, other: &Bytes) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Bytes {
    fn cmp(&self, other: &Bytes) -> Ordering {
        (**self).cmp(&**other)
    }
}

/// A child name as text (names are made from `&str`, so they are always UTF-8).
fn text(name: &[u8]) -> &str {
    core::str::from_utf8(name).unwrap_or_default()
}

/// One node: value, permissions, generation (changes whenever the node or its child list
/// changes) and children.
pub struct Node {
    /// The value bytes.
    pub value: Bytes,
    /// The permission list (entry 0 = owner).
    pub perms: Perms,
    /// Generation stamp of the last change of this node.
    pub generation: u64,
    /// The children, absent while there are none.
    dir: Option<Box<Dir>>,
}

/// The children of a node, by name, with their creation-order bookkeeping.
#[derive(Clone)]
struct Dir {
    children: Children,
    child_bytes: usize,
}

/// Most children a list holds: beyond, a B-tree map keeps insertion and removal logarithmic.
const LIST_MAX: usize = 256;

/// Children a list searches one by one before it keeps a sorted index.
const LIST_SCAN: usize = 8;

/// A node's children by name, in creation order (as C xenstored lists them).
#[derive(Clone)]
enum Children {
    /// The common small directory: `entries` in creation order; once there are more than
    /// [`LIST_SCAN`], `by_name` holds their positions sorted by name.
    List {
        entries: Vec<(Bytes, Arc<Node>)>,
        by_name: Vec<u16>,
    },
    /// Once a directory has had more than [`LIST_MAX`] children: by name, each with its
    /// creation sequence number.
    Map {
        map: BTreeMap<Bytes, (u64, Arc<Node>)>,
        next_seq: u64,
    },
}

/// Makes room for one more element, growing by an eighth rather than doubling: a store
/// holds many small directories, and inserting into a sorted list is linear anyway.
fn grow<T>(v: &mut Vec<T>) {
    if v.len() == v.capacity() {
        v.reserve_exact((v.len() / 8).max(1));
    }
}

/// The name of the list entry an index position points at.
fn name_at<'a>(entries: &'a [(Bytes, Arc<Node>)], i: &u16) -> Option<&'a [u8]> {
    entries.get(usize::from(*i)).map(|e| &*e.0)
}

impl Children {
    fn new() -> Children {
        Children::List {
            entries: Vec::new(),
            by_name: Vec::new(),
        }
    }

    /// Where `name` is in a list: `Ok(position in entries)`, or `Err(where its index entry
    /// goes)` if absent.
    fn find(entries: &[(Bytes, Arc<Node>)], by_name: &[u16], name: &[u8]) -> Result<usize, usize> {
        if by_name.is_empty() {
            return entries
                .iter()
                .position(|e| *e.0 == *name)
                .ok_or(entries.len());
        }
        match by_name.binary_search_by(|i| name_at(entries, i).cmp(&Some(name))) {
            Ok(p) => by_name.get(p).map(|i| usize::from(*i)).ok_or(0),
            Err(p) => Err(p),
        }
    }

    fn get(&self, name: &[u8]) -> Option<&Arc<Node>> {
        match self {
            Children::List { entries, by_name } => {
                let i = Self::find(entries, by_name, name).ok()?;
                entries.get(i).map(|e| &e.1)
            }
            Children::Map { map, .. } => map.get(name).map(|e| &e.1),
        }
    }

    fn get_mut(&mut self, name: &[u8]) -> Option<&mut Arc<Node>> {
        match self {
            Children::List { entries, by_name } => {
                let i = Self::find(entries, by_name, name).ok()?;
                entries.get_mut(i).map(|e| &mut e.1)
            }
            Children::Map { map, .. } => map.get_mut(name).map(|e| &mut e.1),
        }
    }

    /// Adds a child as the newest; one of the same name is replaced, and returned.
    fn insert(&mut self, name: Bytes, node: Arc<Node>) -> Option<Arc<Node>> {
        let replaced = self.remove(&name);
        match self {
            Children::List { entries, by_name } if entries.len() < LIST_MAX => {
                if entries.len() == LIST_SCAN && by_name.is_empty() {
                    let mut idx: Vec<u16> = (0..LIST_SCAN as u16).collect();
                    idx.sort_unstable_by(|a, b| name_at(entries, a).cmp(&name_at(entries, b)));
                    *by_name = idx;
                }
                if !by_name.is_empty() {
                    if let (Err(p), Ok(i)) = (
                        Self::find(entries, by_name, &name),
                        u16::try_from(entries.len()),
                    ) {
                        grow(by_name);
                        by_name.insert(p, i);
                    }
                }
                grow(entries);
                entries.push((name, node));
            }
            Children::List { entries, .. } => {
                let mut map: BTreeMap<Bytes, (u64, Arc<Node>)> = BTreeMap::new();
                let mut next_seq = 0;
                for (k, c) in mem::take(entries) {
                    map.insert(k, (next_seq, c));
                    next_seq += 1;
                }
                map.insert(name, (next_seq, node));
                *self = Children::Map {
                    map,
                    next_seq: next_seq + 1,
                };
            }
            Children::Map { map, next_seq } => {
                map.insert(name, (*next_seq, node));
                *next_seq += 1;
            }
        }
        replaced
    }

    fn remove(&mut self, name: &[u8]) -> Option<Arc<Node>> {
        match self {
            Children::List { entries, by_name } => {
                let i = Self::find(entries, by_name, name).ok()?;
                by_name.retain_mut(|j| {
                    let at = usize::from(*j);
                    if at > i {
                        *j -= 1;
                    }
                    at != i
                });
                (i < entries.len()).then(|| entries.remove(i).1)
            }
            Children::Map { map, .. } => map.remove(name).map(|e| e.1),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Children::List { entries, .. } => entries.is_empty(),
            Children::Map { map, .. } => map.is_empty(),
        }
    }

    /// Name and node of each child, in creation order (a map is sorted by sequence first).
    fn in_order(&self) -> impl Iterator<Item = (&Bytes, &Arc<Node>)> {
        let (list, by_seq) = match self {
            Children::List { entries, .. } => (entries.as_slice(), Vec::new()),
            Children::Map { map, .. } => {
                let mut v: Vec<(u64, &Bytes, &Arc<Node>)> =
                    map.iter().map(|(k, (seq, c))| (*seq, k, c)).collect();
                v.sort_unstable_by_key(|e| e.0);
                (&[][..], v)
            }
        };
        list.iter()
            .map(|(k, c)| (k, c))
            .chain(by_seq.into_iter().map(|(_, k, c)| (k, c)))
    }

    /// Checks the bookkeeping: names unique, the index a sorted permutation of the list,
    /// sequence numbers unique and below the next.
    fn consistent(&self) -> bool {
        match self {
            Children::List { entries, by_name } => {
                let mut seen = alloc::vec![false; entries.len()];
                let index_ok = by_name.is_empty() && entries.len() <= LIST_SCAN
                    || by_name.len() == entries.len()
                        && by_name.iter().all(|i| {
                            seen.get_mut(usize::from(*i))
                                .is_some_and(|s| !mem::replace(s, true))
                        })
                        && by_name.windows(2).all(|w| match w {
                            [a, b] => name_at(entries, a) < name_at(entries, b),
                            _ => true,
                        });
                let mut names: Vec<&[u8]> = entries.iter().map(|e| &*e.0).collect();
                names.sort_unstable();
                index_ok && names.windows(2).all(|w| w.first() != w.get(1))
            }
            Children::Map { map, next_seq } => {
                let mut seqs: Vec<u64> = map.values().map(|e| e.0).collect();
                seqs.sort_unstable();
                seqs.windows(2).all(|w| w.first() != w.get(1))
                    && seqs.last().is_none_or(|s| s < next_seq)
            }
        }
    }

    fn into_nodes(self) -> impl Iterator<Item = Arc<Node>> {
        let (list, map) = match self {
            Children::List { entries, .. } => (entries, BTreeMap::new()),
            Children::Map { map, .. } => (Vec::new(), map),
        };
        list.into_iter()
            .map(|e| e.1)
            .chain(map.into_values().map(|e| e.1))
    }
}

impl Clone for Node {
    fn clone(&self) -> Node {
        Node {
            value: self.value.clone(),
            perms: self.perms.share(),
            generation: self.generation,
            dir: self.dir.clone(),
        }
    }
}

/// Size of C xenstored's record for a node with `perms` permission entries, a value of
/// `value` bytes and `child_bytes` of NUL-terminated child names: header 24, 8 per
/// permission, value, child names. The `node-size` and `memory` quotas count it.
pub fn record_size(perms: usize, value: usize, child_bytes: usize) -> usize {
    24 + 8 * perms + value + child_bytes
}

impl Node {
    /// A node without children.
    pub fn new(value: Vec<u8>, perms: impl Into<Perms>, generation: u64) -> Node {
        Node {
            value: Bytes::from(value),
            perms: perms.into(),
            generation,
            dir: None,
        }
    }

    /// A copy of this node whose children are empty placeholders: its value, permissions,
    /// generation and child list (names and order), without keeping the subtrees alive.
    pub fn shallow(&self) -> Node {
        let dir = self.dir.as_ref().map(|d| {
            let mut children = Children::new();
            for (name, c) in d.children.in_order() {
                let leaf = Node::new(Vec::new(), c.perms.share(), c.generation);
                children.insert(name.clone(), Arc::new(leaf));
            }
            Box::new(Dir {
                children,
                child_bytes: d.child_bytes,
            })
        });
        Node {
            value: self.value.clone(),
            perms: self.perms.share(),
            generation: self.generation,
            dir,
        }
    }

    /// A node as [`Node::shallow`] copies one: `names` are its children in creation order,
    /// as placeholders without value or children of their own.
    pub fn with_child_names(value: Vec<u8>, perms: Perms, generation: u64, names: &[&str]) -> Node {
        let mut node = Node::new(value, perms.share(), generation);
        for name in names {
            node.add_child(name, Node::new(Vec::new(), perms.share(), generation));
        }
        node
    }

    /// The named child.
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.dir
            .as_ref()?
            .children
            .get(name.as_bytes())
            .map(|c| &**c)
    }

    /// Child names in creation order.
    pub fn child_names(&self) -> Vec<&str> {
        self.children_in_order()
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    }

    /// The children in creation order: name and node.
    fn children_in_order(&self) -> Vec<(&str, &Node)> {
        self.dir.as_ref().map_or_else(Vec::new, |d| {
            d.children
                .in_order()
                .map(|(k, c)| (text(k), &**c))
                .collect()
        })
    }

    /// Size of C xenstored's record for this node ([`record_size`]); the `node-size` quota
    /// applies to it.
    pub fn record_size(&self) -> usize {
        self.record_size_as(self.perms.len(), self.value.len())
    }

    /// The record size this node would have with `perms` permission entries and a value
    /// of `value` bytes (its children unchanged).
    pub fn record_size_as(&self, perms: usize, value: usize) -> usize {
        record_size(perms, value, self.dir.as_ref().map_or(0, |d| d.child_bytes))
    }

    /// The owner (entry 0).
    pub fn owner(&self) -> u32 {
        self.perms.first().map_or(0, |p| p.domid)
    }

    fn add_child(&mut self, name: &str, node: Node) {
        let dir = self.dir.get_or_insert_with(|| {
            Box::new(Dir {
                children: Children::new(),
                child_bytes: 0,
            })
        });
        if dir
            .children
            .insert(Bytes::from(name.as_bytes()), Arc::new(node))
            .is_none()
        {
            dir.child_bytes += name.len() + 1;
        }
    }

    fn remove_child(&mut self, name: &str) -> Option<Arc<Node>> {
        let dir = self.dir.as_mut()?;
        let child = dir.children.remove(name.as_bytes())?;
        dir.child_bytes -= name.len() + 1;
        if dir.children.is_empty() {
            self.dir = None;
        }
        Some(child)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let Some(dir) = self.dir.take() else { return };
        let mut stack: Vec<Arc<Node>> = dir.children.into_nodes().collect();
        while let Some(rc) = stack.pop() {
            if let Ok(mut node) = Arc::try_unwrap(rc) {
                if let Some(d) = node.dir.take() {
                    stack.extend(d.children.into_nodes());
                }
            }
        }
    }
}

/// A whole tree; cheap to clone (snapshot).
#[derive(Clone)]
pub struct Tree {
    root: Arc<Node>,
}

impl Tree {
    /// A tree with the given root node.
    pub fn new(root: Node) -> Tree {
        Tree {
            root: Arc::new(root),
        }
    }

    /// True if both trees share their root: neither changed since one was cloned from the
    /// other.
    pub fn same_root(&self, other: &Tree) -> bool {
        Arc::ptr_eq(&self.root, &other.root)
    }

    /// The root node.
    pub fn root(&self) -> &Node {
        &self.root
    }

    /// The node at a canonical absolute path.
    pub fn get(&self, path: &str) -> Option<&Node> {
        let mut cur: &Node = &self.root;
        for c in components(path) {
            cur = cur.child(c)?;
        }
        Some(cur)
    }

    /// The deepest existing node on the way to `path` and whether it is `path` itself.
    pub fn deepest(&self, path: &str) -> (&Node, bool) {
        let mut cur: &Node = &self.root;
        for c in components(path) {
            match cur.child(c) {
                Some(n) => cur = n,
                None => return (cur, false),
            }
        }
        (cur, true)
    }

    /// How many leading components of `path` exist.
    pub fn existing_depth(&self, path: &str) -> usize {
        let mut cur: &Node = &self.root;
        let mut d = 0;
        for c in components(path) {
            match cur.child(c) {
                Some(n) => cur = n,
                None => break,
            }
            d += 1;
        }
        d
    }

    /// Mutable access to the node at `path`, copying shared nodes on the way (one walk:
    /// callers know the node exists; for a missing one, the nodes before it are still
    /// unshared, which changes nothing they hold).
    pub fn get_mut(&mut self, path: &str) -> Option<&mut Node> {
        let mut cur: &mut Node = Arc::make_mut(&mut self.root);
        for c in components(path) {
            cur = Arc::make_mut(cur.dir.as_mut()?.children.get_mut(c.as_bytes())?);
        }
        Some(cur)
    }

    /// Attaches `node` as child `name` of the existing node `parent`, stamping the parent
    /// with `generation`. Returns false if the parent does not exist.
    pub fn attach(&mut self, parent: &str, name: &str, node: Node, generation: u64) -> bool {
        match self.get_mut(parent) {
            Some(p) => {
                p.add_child(name, node);
                p.generation = generation;
                true
            }
            None => false,
        }
    }

    /// Detaches the subtree at `path` (not the root), stamping its parent with `generation`.
    pub fn detach(&mut self, path: &str, generation: u64) -> Option<Arc<Node>> {
        let name = path.rsplit('/').next().filter(|n| !n.is_empty())?;
        let parent = crate::path::parent(path);
        let p = self.get_mut(parent)?;
        let child = p.remove_child(name)?;
        p.generation = generation;
        Some(child)
    }
}

/// Builds a chain of new nodes for `names` (top first), each with `perms` and an empty value
/// except the last, which gets `value`. Iterative; returns the top node.
pub fn chain(names: &[&str], perms: impl Into<Perms>, value: Vec<u8>, generation: u64) -> Node {
    let perms = perms.into();
    let mut node = Node::new(value, perms.share(), generation);
    for name in names.iter().skip(1).rev() {
        let mut parent = Node::new(Vec::new(), perms.share(), generation);
        parent.add_child(name, node);
        node = parent;
    }
    node
}

/// Calls `f(path, node)` for `node` (at `path`) and every descendant: depth first, parents
/// before children, children in creation order. Iterative.
pub fn walk(node: &Node, path: &str, mut f: impl FnMut(&str, &Node)) {
    let mut stack: Vec<(String, &Node)> = alloc::vec![(String::from(path), node)];
    while let Some((p, n)) = stack.pop() {
        f(&p, n);
        stack.extend(stacked_children(&p, n));
    }
}

/// The children of `n` (at `path`) with their paths, latest created first: pushed on a
/// stack in this order, they are popped in creation order.
fn stacked_children<'a, 'p>(
    path: &'p str,
    n: &'a Node,
) -> impl Iterator<Item = (String, &'a Node)> + 'p
where
    'a: 'p,
{
    n.children_in_order()
        .into_iter()
        .rev()
        .map(move |(name, c)| {
            let mut cp = String::with_capacity(path.len() + 1 + name.len());
            cp.push_str(path);
            if path != "/" {
                cp.push('/');
            }
            cp.push_str(name);
            (cp, c)
        })
}

/// Calls `f(path, node)` for every descendant of `node` (at `path`) and then `node`
/// itself: depth first, children in creation order, each child's subtree before the child
/// (post-order, the order C xenstored deletes in). Iterative.
pub fn walk_post(node: &Node, path: &str, mut f: impl FnMut(&str, &Node)) {
    let mut stack: Vec<(String, &Node, bool)> = alloc::vec![(String::from(path), node, false)];
    while let Some((p, n, expanded)) = stack.pop() {
        if expanded {
            f(&p, n);
            continue;
        }
        let kids: Vec<(String, &Node)> = stacked_children(&p, n).collect();
        stack.push((p, n, true));
        stack.extend(kids.into_iter().map(|(cp, c)| (cp, c, false)));
    }
}

/// Checks the internal consistency of a tree (child names, their order and byte counts,
/// permission lists, generations not beyond `max_gen`); returns the node count per owner.
pub fn check(tree: &Tree, max_gen: u64) -> Result<BTreeMap<u32, usize>, &'static str> {
    let mut owners: BTreeMap<u32, usize> = BTreeMap::new();
    let mut err = None;
    walk(tree.root(), "/", |_, n| {
        let children = n.children_in_order();
        let bytes: usize = children.iter().map(|(k, _)| k.len() + 1).sum();
        if bytes != n.dir.as_ref().map_or(0, |d| d.child_bytes) {
            err = Some("child name bytes out of step");
        }
        if n.perms.is_empty() {
            err = Some("node without permissions");
        }
        if n.generation > max_gen {
            err = Some("generation from the future");
        }
        if n.dir.as_ref().is_some_and(|d| d.children.is_empty()) {
            err = Some("empty child list kept");
        }
        if children
            .iter()
            .any(|(k, _)| k.is_empty() || k.contains('/'))
        {
            err = Some("bad child name");
        }
        if n.dir.as_ref().is_some_and(|d| !d.children.consistent()) {
            err = Some("child index out of step");
        }
        *owners.entry(n.owner()).or_insert(0) += 1;
    });
    match err {
        Some(e) => Err(e),
        None => Ok(owners),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perms::Perm;

    fn p0() -> Vec<Perm> {
        alloc::vec![Perm { domid: 0, bits: 0 }]
    }

    #[test]
    fn snapshot_is_isolated() {
        let mut t = Tree::new(Node::new(Vec::new(), p0(), 0));
        assert!(t.attach("/", "a", chain(&["a", "b"], p0(), b"x".to_vec(), 1), 1));
        let snap = t.clone();
        t.get_mut("/a/b").unwrap().value = Bytes::from(&b"y"[..]);
        assert_eq!(&*snap.get("/a/b").unwrap().value, b"x");
        assert_eq!(&*t.get("/a/b").unwrap().value, b"y");
        assert!(t.detach("/a", 2).is_some());
        assert!(t.get("/a").is_none());
        assert!(snap.get("/a/b").is_some());
        assert_eq!(t.root().generation, 2);
        assert!(t.detach("/tool", 3).is_none());
        assert_eq!(check(&t, 2), Ok(BTreeMap::from([(0, 1)])));
    }

    #[test]
    fn large_directory_becomes_a_map() {
        let mut t = Tree::new(Node::new(Vec::new(), p0(), 0));
        let names: Vec<String> = (0..LIST_MAX + 10)
            .rev()
            .map(|i| alloc::format!("c{i}"))
            .collect();
        for n in &names {
            assert!(t.attach("/", n, Node::new(n.as_bytes().to_vec(), p0(), 1), 1));
        }
        let children = |t: &Tree| t.root().dir.as_ref().map(|d| d.children.clone());
        assert!(matches!(children(&t), Some(Children::Map { .. })));
        assert_eq!(t.root().child_names(), names);
        let snap = t.clone();
        for n in &names {
            let path = alloc::format!("/{n}");
            assert_eq!(&*t.get(&path).unwrap().value, n.as_bytes());
            t.get_mut(&path).unwrap().value = Bytes::from(&b"new"[..]);
            assert_eq!(&*snap.get(&path).unwrap().value, n.as_bytes());
        }
        assert_eq!(check(&t, 1).unwrap()[&0], 1 + names.len());
        for n in &names {
            assert!(t.detach(&alloc::format!("/{n}"), 2).is_some());
        }
        assert!(children(&t).is_none());
        assert_eq!(snap.root().child_names().len(), names.len());
    }

    #[test]
    fn a_node_and_its_count_fit_64_bytes() {
        assert!(mem::size_of::<Node>() + 8 <= 56);
    }

    #[test]
    fn children_keep_creation_order_and_find_by_name_across_every_form() {
        let mut t = Tree::new(Node::new(Vec::new(), p0(), 0));
        let mut model: Vec<String> = Vec::new();
        let mut x: u32 = 12345;
        for step in 0..6000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let pool = if step < 3000 { 40 } else { 400 };
            let name = alloc::format!("c{}", x % pool);
            let path = alloc::format!("/{name}");
            if x.is_multiple_of(3) {
                assert_eq!(t.detach(&path, 1).is_some(), model.contains(&name));
                model.retain(|n| *n != name);
            } else if !model.contains(&name) {
                assert!(t.attach("/", &name, Node::new(name.as_bytes().to_vec(), p0(), 1), 1));
                model.push(name);
            }
            assert_eq!(t.root().child_names(), model, "step {step}");
            for n in &model {
                assert_eq!(
                    &*t.get(&alloc::format!("/{n}")).unwrap().value,
                    n.as_bytes()
                );
            }
            assert!(t.get("/c-absent").is_none());
            assert_eq!(
                check(&t, 1).map(|o| o[&0]),
                Ok(1 + model.len()),
                "step {step}"
            );
        }
        let dir = t.root().dir.as_ref().map(|d| &d.children);
        assert!(matches!(dir, Some(Children::Map { .. })));
    }

    #[test]
    fn bytes_inline_and_heap() {
        let long: Vec<u8> = (0..=INLINE as u8).collect();
        for v in [&b""[..], b"a", &long[..INLINE], &long] {
            assert_eq!(&*Bytes::from(v), v);
            assert_eq!(&*Bytes::from(v.to_vec()), v);
        }
        assert!(matches!(Bytes::from(&long[..INLINE]).0, Repr::Inline(..)));
        assert!(matches!(Bytes::from(long.clone()).0, Repr::Heap(_)));
        assert!(Bytes::from(&long[..]) > Bytes::from(&long[..INLINE]));
        assert!(Bytes::from(&b"b"[..]) > Bytes::from(long));
    }

    #[test]
    fn chain_shares_permissions() {
        let top = chain(&["a", "b", "c"], p0(), b"v".to_vec(), 1);
        let b = top.child("b").unwrap();
        assert_eq!(b.perms, p0());
        assert!(core::ptr::eq(&**top.perms, &**b.child("c").unwrap().perms));
        assert_eq!(top.record_size(), 24 + 8 + 2);
        assert_eq!(b.child("c").unwrap().record_size(), 24 + 8 + 1);
    }

    #[test]
    fn creation_order_and_deep_drop() {
        let mut t = Tree::new(Node::new(Vec::new(), p0(), 0));
        for n in ["z", "a", "m"] {
            t.attach("/", n, Node::new(Vec::new(), p0(), 1), 1);
        }
        assert_eq!(t.root().child_names(), ["z", "a", "m"]);
        assert!(t.detach("/a", 1).is_some());
        t.attach("/", "a", Node::new(Vec::new(), p0(), 1), 1);
        assert_eq!(t.root().child_names(), ["z", "m", "a"]);
        let names: Vec<String> = (0..100_000).map(|i| alloc::format!("n{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        t.attach("/", "deep", chain(&refs, p0(), Vec::new(), 2), 2);
        assert_eq!(check(&t, 2).unwrap()[&0], 4 + 100_000);
        drop(t);
    }
}
