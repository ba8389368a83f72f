//! What the stub's metrics endpoint reads: request and error counters kept as requests are
//! processed, rings held back, and per-domain figures against their quotas, computed when
//! asked. Counts only: no path or value of the store.

use super::Engine;
use crate::domain::Platform;
use crate::quota::Quotas;
use crate::wire::{self, Error};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// Request types counted one by one (0..TYPES); higher ones together.
pub const TYPES: usize = 32;

/// Counters since the engine started (or was restored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counters {
    /// Requests by wire type; index `TYPES` holds every type above.
    pub by_type: [u64; TYPES + 1],
    /// Error replies by name.
    pub errors: BTreeMap<&'static str, u64>,
    /// Times a ring's input was held back by its outstanding-reply quota.
    pub held_outstanding: u64,
    /// Times a ring's input was held back by the write-rate limit.
    pub held_rate: u64,
}

impl Default for Counters {
    fn default() -> Counters {
        Counters {
            by_type: [0; TYPES + 1],
            errors: BTreeMap::new(),
            held_outstanding: 0,
            held_rate: 0,
        }
    }
}

impl Counters {
    pub(super) fn request(&mut self, ty: u32, result: Result<(), Error>) {
        let i = (ty as usize).min(TYPES);
        if let Some(n) = self.by_type.get_mut(i) {
            *n += 1;
        }
        if let Err(e) = result {
            *self.errors.entry(e.name()).or_default() += 1;
        }
    }

    /// `(name, count)` of every type counted at least once (`OTHER` for the rest).
    pub fn requests(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.by_type
            .iter()
            .enumerate()
            .filter(|&(_, &n)| n > 0)
            .map(|(i, &n)| {
                (
                    wire::type_name(i as u32)
                        .filter(|_| i < TYPES)
                        .unwrap_or("OTHER"),
                    n,
                )
            })
    }
}

/// One domain's use of the store against its quotas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainFigures {
    /// The domain.
    pub domid: u32,
    /// Nodes it owns.
    pub nodes: u64,
    /// Watches its connections hold.
    pub watches: u64,
    /// Transactions its connections have open.
    pub transactions: u64,
    /// Bytes charged: node records, queued output, open transactions' data.
    pub memory: u64,
    /// Replies and events queued for the domain's connections.
    pub outstanding: u64,
    /// Its quotas (the global ones unless SET_QUOTA changed them).
    pub quotas: Quotas,
}

impl<P: Platform> Engine<P> {
    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Every known domain's figures, by domid.
    pub fn domain_figures(&self) -> Vec<DomainFigures> {
        let mut out: BTreeMap<u32, DomainFigures> = self
            .domains
            .iter()
            .map(|(&domid, d)| {
                let nodes = self.usage.get(&domid).map_or(0, |u| u.nodes.max(0) as u64);
                let bytes = self.usage.get(&domid).map_or(0, |u| u.bytes.max(0) as u64);
                let f = DomainFigures {
                    domid,
                    nodes,
                    watches: 0,
                    transactions: 0,
                    memory: bytes,
                    outstanding: 0,
                    quotas: d.quotas,
                };
                (domid, f)
            })
            .collect();
        for c in self.conns.iter().flatten() {
            if let Some(f) = out.get_mut(&c.domid) {
                f.watches += c.watches.len() as u64;
                f.transactions += c.txs.len() as u64;
                f.outstanding += c.out.len() as u64;
                f.memory += (c.out_bytes + c.tx_bytes) as u64;
            }
        }
        out.into_values().collect()
    }

    /// The number of connections (rings and local ones).
    pub fn connection_count(&self) -> usize {
        self.conns.iter().flatten().count()
    }
}
