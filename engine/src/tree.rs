//! The store: a persistent (copy-on-write) tree of reference-counted nodes.
//!
//! Cloning a [`Tree`] is O(1) (it shares every node); a mutation copies only the nodes on the
//! path to the change that are still shared (`Rc::make_mut`). Children keep their creation
//! order (as C xenstored lists them) through a per-parent sequence number. All walks are
//! iterative, including `Drop`, so a guest-built 1000-level chain cannot exhaust the stack.

use crate::path::components;
use crate::perms::Perm;
use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::mem;

/// One node: value, permissions, generation (changes whenever the node or its child list
/// changes) and children.
#[derive(Clone)]
pub struct Node {
    /// The value bytes.
    pub value: Vec<u8>,
    /// The permission list (entry 0 = owner).
    pub perms: Vec<Perm>,
    /// Generation stamp of the last change of this node.
    pub generation: u64,
    children: BTreeMap<String, Child>,
    next_seq: u64,
    child_bytes: usize,
}

#[derive(Clone)]
struct Child {
    seq: u64,
    node: Rc<Node>,
}

impl Node {
    /// A node without children.
    pub fn new(value: Vec<u8>, perms: Vec<Perm>, generation: u64) -> Node {
        Node {
            value,
            perms,
            generation,
            children: BTreeMap::new(),
            next_seq: 0,
            child_bytes: 0,
        }
    }

    /// The named child.
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.get(name).map(|c| &*c.node)
    }

    /// Child names in creation order.
    pub fn child_names(&self) -> Vec<&str> {
        let mut v: Vec<(u64, &str)> = self
            .children
            .iter()
            .map(|(k, c)| (c.seq, k.as_str()))
            .collect();
        v.sort_unstable_by_key(|e| e.0);
        v.into_iter().map(|e| e.1).collect()
    }

    /// Size of C xenstored's record for this node (header 24, 8 per permission, value,
    /// NUL-terminated child names); the `node-size` quota applies to it.
    pub fn record_size(&self) -> usize {
        24 + 8 * self.perms.len() + self.value.len() + self.child_bytes
    }

    /// The owner (entry 0).
    pub fn owner(&self) -> u32 {
        self.perms.first().map_or(0, |p| p.domid)
    }

    fn add_child(&mut self, name: &str, node: Rc<Node>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.child_bytes += name.len() + 1;
        self.children
            .insert(String::from(name), Child { seq, node });
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.children.is_empty() {
            return;
        }
        let mut stack: Vec<Rc<Node>> = mem::take(&mut self.children)
            .into_values()
            .map(|c| c.node)
            .collect();
        while let Some(rc) = stack.pop() {
            if let Ok(mut node) = Rc::try_unwrap(rc) {
                stack.extend(mem::take(&mut node.children).into_values().map(|c| c.node));
            }
        }
    }
}

/// A whole tree; cheap to clone (snapshot).
#[derive(Clone)]
pub struct Tree {
    root: Rc<Node>,
}

impl Tree {
    /// A tree with the given root node.
    pub fn new(root: Node) -> Tree {
        Tree {
            root: Rc::new(root),
        }
    }

    /// True if both trees share their root: neither changed since one was cloned from the
    /// other.
    pub fn same_root(&self, other: &Tree) -> bool {
        Rc::ptr_eq(&self.root, &other.root)
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

    /// Mutable access to the node at `path`, copying shared nodes on the way.
    pub fn get_mut(&mut self, path: &str) -> Option<&mut Node> {
        self.get(path)?;
        let mut cur: &mut Node = Rc::make_mut(&mut self.root);
        for c in components(path) {
            cur = Rc::make_mut(&mut cur.children.get_mut(c)?.node);
        }
        Some(cur)
    }

    /// Attaches `node` as child `name` of the existing node `parent`, stamping the parent
    /// with `generation`. Returns false if the parent does not exist.
    pub fn attach(&mut self, parent: &str, name: &str, node: Node, generation: u64) -> bool {
        match self.get_mut(parent) {
            Some(p) => {
                p.add_child(name, Rc::new(node));
                p.generation = generation;
                true
            }
            None => false,
        }
    }

    /// Detaches the subtree at `path` (not the root), stamping its parent with `generation`.
    pub fn detach(&mut self, path: &str, generation: u64) -> Option<Rc<Node>> {
        let name = path.rsplit('/').next().filter(|n| !n.is_empty())?;
        let parent = crate::path::parent(path);
        let p = self.get_mut(parent)?;
        let child = p.children.remove(name)?;
        p.child_bytes -= name.len() + 1;
        p.generation = generation;
        Some(child.node)
    }
}

/// Builds a chain of new nodes for `names` (top first), each with `perms` and an empty value
/// except the last, which gets `value`. Iterative; returns the top node.
pub fn chain(names: &[&str], perms: &[Perm], value: Vec<u8>, generation: u64) -> Node {
    let mut node = Node::new(value, perms.to_vec(), generation);
    for name in names.iter().skip(1).rev() {
        let mut parent = Node::new(Vec::new(), perms.to_vec(), generation);
        parent.add_child(name, Rc::new(node));
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
        let mut kids: Vec<(u64, &str, &Node)> = n
            .children
            .iter()
            .map(|(k, c)| (c.seq, k.as_str(), &*c.node))
            .collect();
        kids.sort_unstable_by_key(|k| core::cmp::Reverse(k.0));
        for (_, name, c) in kids {
            let mut cp = String::with_capacity(p.len() + 1 + name.len());
            cp.push_str(&p);
            if p != "/" {
                cp.push('/');
            }
            cp.push_str(name);
            stack.push((cp, c));
        }
    }
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
        let mut kids: Vec<(u64, &str, &Node)> = n
            .children
            .iter()
            .map(|(k, c)| (c.seq, k.as_str(), &*c.node))
            .collect();
        kids.sort_unstable_by_key(|k| core::cmp::Reverse(k.0));
        let base = p.clone();
        stack.push((p, n, true));
        for (_, name, c) in kids {
            let mut cp = String::with_capacity(base.len() + 1 + name.len());
            cp.push_str(&base);
            if base != "/" {
                cp.push('/');
            }
            cp.push_str(name);
            stack.push((cp, c, false));
        }
    }
}

/// Checks the internal consistency of a tree (child byte counts, permission lists,
/// generations not beyond `max_gen`); returns the node count per owner.
pub fn check(tree: &Tree, max_gen: u64) -> Result<BTreeMap<u32, usize>, &'static str> {
    let mut owners: BTreeMap<u32, usize> = BTreeMap::new();
    let mut err = None;
    walk(tree.root(), "/", |_, n| {
        let bytes: usize = n.children.keys().map(|k| k.len() + 1).sum();
        if bytes != n.child_bytes {
            err = Some("child name bytes out of step");
        }
        if n.perms.is_empty() {
            err = Some("node without permissions");
        }
        if n.generation > max_gen {
            err = Some("generation from the future");
        }
        if n.children.keys().any(|k| k.is_empty() || k.contains('/')) {
            err = Some("bad child name");
        }
        if n.children.values().any(|c| c.seq >= n.next_seq) {
            err = Some("child sequence out of step");
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

    fn p0() -> Vec<Perm> {
        alloc::vec![Perm { domid: 0, bits: 0 }]
    }

    #[test]
    fn snapshot_is_isolated() {
        let mut t = Tree::new(Node::new(Vec::new(), p0(), 0));
        assert!(t.attach("/", "a", chain(&["a", "b"], &p0(), b"x".to_vec(), 1), 1));
        let snap = t.clone();
        t.get_mut("/a/b").unwrap().value = b"y".to_vec();
        assert_eq!(snap.get("/a/b").unwrap().value, b"x");
        assert_eq!(t.get("/a/b").unwrap().value, b"y");
        assert!(t.detach("/a", 2).is_some());
        assert!(t.get("/a").is_none());
        assert!(snap.get("/a/b").is_some());
        assert_eq!(t.root().generation, 2);
    }

    #[test]
    fn creation_order_and_deep_drop() {
        let mut t = Tree::new(Node::new(Vec::new(), p0(), 0));
        for n in ["z", "a", "m"] {
            t.attach("/", n, Node::new(Vec::new(), p0(), 1), 1);
        }
        assert_eq!(t.root().child_names(), ["z", "a", "m"]);
        let names: Vec<String> = (0..100_000).map(|i| alloc::format!("n{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        t.attach("/", "deep", chain(&refs, &p0(), Vec::new(), 2), 2);
        assert_eq!(check(&t, 2).unwrap()[&0], 4 + 100_000);
        drop(t);
    }
}
