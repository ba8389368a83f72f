//! Quotas and limits, with C xenstored's defaults and its current (4.20) CONTROL names. A value of 0
//! disables the check. Quotas apply to unprivileged domains only.

/// One set of quota values (global defaults, or one domain's after SET_QUOTA).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quotas {
    /// Nodes owned by a domain (ENOSPC).
    pub nodes: u32,
    /// Node record size: 24 + 8·permissions + value + child names (ENOSPC).
    pub node_size: u32,
    /// Watches per domain (E2BIG once more than this many exist).
    pub watches: u32,
    /// Open transactions per domain (ENOSPC once more than this many are open).
    pub transactions: u32,
    /// Permission entries per node (ENOSPC).
    pub permissions: u32,
    /// Length of the domain-relative part of a path (EINVAL).
    pub path_max: u32,
    /// Replies and events queued but not yet taken by the client before the engine stops
    /// accepting input from it (back-pressure).
    pub outstanding: u32,
    /// Distinct nodes accessed by one transaction (ENOSPC).
    pub transaction_nodes: u32,
    /// Approximate bytes of node records owned by a domain (ENOMEM).
    pub memory: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            nodes: 1000,
            node_size: 2048,
            watches: 128,
            transactions: 10,
            permissions: 5,
            path_max: 2048,
            outstanding: 20,
            transaction_nodes: 1024,
            memory: 2560 * 1024,
        }
    }
}

/// The quota names in current C xenstored's order, as used by CONTROL `quota`,
/// GET/SET_QUOTA, `ferrostored --quota` and the stub's `-Q`. 4.17's `permissions` is also
/// accepted for `node-permissions`.
pub const NAMES: [&str; 9] = [
    "nodes",
    "watches",
    "outstanding",
    "memory",
    "transactions",
    "transaction-nodes",
    "node-permissions",
    "path-max",
    "node-size",
];

/// The position of a quota name (or of 4.17's alias) in [`NAMES`].
pub fn index(name: &str) -> Option<usize> {
    let name = if name == "permissions" {
        "node-permissions"
    } else {
        name
    };
    NAMES.iter().position(|n| *n == name)
}

impl Quotas {
    fn slot(&mut self, name: &str) -> Option<&mut u32> {
        Some(match name {
            "nodes" => &mut self.nodes,
            "node-size" => &mut self.node_size,
            "watches" => &mut self.watches,
            "transactions" => &mut self.transactions,
            "node-permissions" | "permissions" => &mut self.permissions,
            "path-max" => &mut self.path_max,
            "outstanding" => &mut self.outstanding,
            "transaction-nodes" => &mut self.transaction_nodes,
            "memory" => &mut self.memory,
            _ => return None,
        })
    }

    /// The value of the named quota.
    pub fn get(&self, name: &str) -> Option<u32> {
        let mut copy = *self;
        copy.slot(name).map(|v| *v)
    }

    /// Sets the named quota; false if the name is unknown. `path-max` is capped at 2048.
    pub fn set(&mut self, name: &str, value: u32) -> bool {
        let value = if name == "path-max" {
            value.min(crate::wire::REL_PATH_MAX as u32)
        } else {
            value
        };
        match self.slot(name) {
            Some(v) => {
                *v = value;
                true
            }
            None => false,
        }
    }
}

/// True if `used` exceeds `limit` (0 = unlimited).
pub fn over(used: usize, limit: u32) -> bool {
    limit != 0 && used > limit as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let mut q = Quotas::default();
        for (i, n) in NAMES.iter().enumerate() {
            assert!(q.set(n, 100 + i as u32));
            assert_eq!(q.get(n), Some(100 + i as u32));
        }
        assert!(!q.set("bogus", 1));
        assert!(q.set("permissions", 7));
        assert_eq!(q.get("node-permissions"), Some(7));
        assert_eq!(index("permissions"), index("node-permissions"));
        assert!(q.set("path-max", 5000));
        assert_eq!(q.path_max, 2048);
        assert!(!over(5, 0));
        assert!(over(6, 5));
        assert!(!over(5, 5));
    }
}
