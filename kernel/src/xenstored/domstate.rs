//! The VIRQ_DOM_EXC scan: what a `XEN_DOMCTL_getdomaininfo` answer says about a domain the
//! store knows (running, shut down or crashed, gone), and [`Scan`], which paces the questions.
//! Xen answers a question about a missing domain with the next existing one above it (4.17),
//! or `ESRCH` (when there is none, and always from 4.18), so the domid in the answer must be
//! compared with the one asked for.

use crate::hypercall::{DomainInfoFlags as Dominf, Errno};
use alloc::vec::Vec;

/// A domain's state as the VIRQ_DOM_EXC scan sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomState {
    /// Exists and is not shut down.
    Running,
    /// All vCPUs stopped for shutdown or crash (`@releaseDomain` fires once).
    Shutdown,
    /// Dying or no longer there: its connection and nodes go away.
    Gone,
    /// The question failed (e.g. EPERM when not started by init-xenstore-domain).
    Unknown(Errno),
}

/// Classifies the answer (`Ok((returned domid, flags))`) to getdomaininfo(`asked`).
pub fn classify(asked: u16, answer: Result<(u16, Dominf), Errno>) -> DomState {
    match answer {
        Ok((domid, _)) if domid != asked => DomState::Gone,
        Ok((_, flags)) if flags.contains(Dominf::DYING) => DomState::Gone,
        Ok((_, flags)) if flags.contains(Dominf::SHUTDOWN) => DomState::Shutdown,
        Ok(_) => DomState::Running,
        Err(Errno::ESRCH) => DomState::Gone,
        Err(e) => DomState::Unknown(e),
    }
}

/// VIRQ_DOM_EXC says that some domain changed, not which: a scan asks Xen about every domain
/// the store knows (the stub may not use the batched `XEN_SYSCTL_getdomaininfolist`, and
/// Xen 4.17-4.20 have nothing else). `Scan` bounds what that costs: the questions go out at
/// most a step's worth at a time, between ring services, and however many events come while
/// a scan runs they are answered by one more scan after it, so a burst of N deaths among D
/// domains costs two scans (2·D questions), not N·D.
#[derive(Default)]
pub struct Scan {
    /// Domains still to ask about in the current scan (taken from the end).
    todo: Vec<u32>,
    /// An event came that the current scan (if any) may not see: scan (again) after it.
    wanted: bool,
}

impl Scan {
    /// A VIRQ_DOM_EXC arrived.
    pub fn event(&mut self) {
        self.wanted = true;
    }

    /// True while questions are due (the dispatcher must not sleep).
    pub fn busy(&self) -> bool {
        self.wanted || !self.todo.is_empty()
    }

    /// The next at most `max` domains to ask about; when no scan is under way and one is
    /// wanted, starts it over `known()` first (the bool says a scan started).
    pub fn step(&mut self, max: usize, known: impl FnOnce() -> Vec<u32>) -> (Vec<u32>, bool) {
        let started = self.todo.is_empty() && self.wanted;
        if started {
            self.wanted = false;
            self.todo = known();
            self.todo.reverse();
        }
        let keep = self.todo.len().saturating_sub(max);
        let batch = self.todo.drain(keep..).rev().collect();
        if self.todo.is_empty() {
            // A finished scan keeps no memory (the stub's heap after a release is compared
            // with the first one's: tests/boot/stub-churn.sh).
            self.todo = Vec::new();
        }
        (batch, started)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypercall::DOMINF_SHUTDOWN_SHIFT;
    use alloc::vec;

    #[test]
    fn a_scan_asks_about_every_known_domain_in_steps() {
        let mut s = Scan::default();
        assert!(!s.busy());
        assert_eq!(s.step(2, || vec![9]), (vec![], false), "no event, no scan");
        s.event();
        assert!(s.busy());
        assert_eq!(s.step(2, || vec![1, 2, 3, 4, 5]), (vec![1, 2], true));
        assert_eq!(s.step(2, || unreachable!()), (vec![3, 4], false));
        assert_eq!(s.step(2, || unreachable!()), (vec![5], false));
        assert!(!s.busy());
        assert_eq!(s.todo.capacity(), 0, "a finished scan keeps no memory");
    }

    #[test]
    fn events_during_a_scan_cost_one_more_scan() {
        let mut s = Scan::default();
        s.event();
        assert_eq!(s.step(2, || vec![1, 2, 3]), (vec![1, 2], true));
        for _ in 0..100 {
            s.event();
        }
        assert_eq!(s.step(2, || unreachable!()), (vec![3], false));
        assert!(s.busy(), "the events after the scan began want one more");
        assert_eq!(s.step(8, || vec![1, 3, 7]), (vec![1, 3, 7], true));
        assert!(!s.busy());
        assert_eq!(s.step(8, || vec![1]), (vec![], false));
    }

    #[test]
    fn answers_are_classified() {
        let running = Dominf::RUNNING | Dominf::BLOCKED;
        assert_eq!(classify(3, Ok((3, running))), DomState::Running);
        assert_eq!(classify(3, Ok((3, Dominf::SHUTDOWN))), DomState::Shutdown);
        let crashed = Dominf::SHUTDOWN | Dominf::from_bits_retain(3 << DOMINF_SHUTDOWN_SHIFT);
        assert_eq!(classify(3, Ok((3, crashed))), DomState::Shutdown);
        assert_eq!(
            classify(3, Ok((3, Dominf::DYING | Dominf::SHUTDOWN))),
            DomState::Gone
        );
        // A missing domain: Xen returned the next one up, or nothing at all.
        assert_eq!(classify(3, Ok((5, running))), DomState::Gone);
        assert_eq!(classify(3, Err(Errno::ESRCH)), DomState::Gone);
        assert_eq!(
            classify(3, Err(Errno::EPERM)),
            DomState::Unknown(Errno::EPERM)
        );
    }
}
