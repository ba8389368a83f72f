//! The watch index: which connections watch which paths, so that a change finds its
//! watchers by looking up the changed path and its ancestors instead of scanning every
//! connection's watches (the cost of a write does not grow with the number of domains).

use crate::path;
use crate::ConnId;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

/// Every watch by path: (connection, the watch's number on that connection).
#[derive(Default)]
pub(crate) struct WatchIndex {
    by_path: BTreeMap<String, Vec<(ConnId, u64)>>,
}

impl WatchIndex {
    /// Adds watch `seq` of connection `cid` on `path`.
    pub(crate) fn add(&mut self, path: &str, cid: ConnId, seq: u64) {
        self.by_path
            .entry(String::from(path))
            .or_default()
            .push((cid, seq));
    }

    /// Removes watch `seq` of connection `cid` on `path`.
    pub(crate) fn remove(&mut self, path: &str, cid: ConnId, seq: u64) {
        if let Some(v) = self.by_path.get_mut(path) {
            v.retain(|&e| e != (cid, seq));
            if v.is_empty() {
                self.by_path.remove(path);
            }
        }
    }

    /// The watches on `changed` (only that path if `exact`, else it and every ancestor),
    /// in connection order and, per connection, in the order they were set.
    pub(crate) fn matches(&self, changed: &str, exact: bool) -> Vec<(ConnId, u64)> {
        let mut out: Vec<(ConnId, u64)> = Vec::new();
        let mut add = |p: &str| {
            if let Some(v) = self.by_path.get(p) {
                out.extend_from_slice(v);
            }
        };
        if exact || changed.starts_with('@') {
            add(changed);
        } else {
            path::ancestors(changed).for_each(&mut add);
        }
        out.sort_unstable();
        out
    }
}
