//! What a `XEN_DOMCTL_getdomaininfo` answer says about a domain the store knows: running,
//! shut down (or crashed), or gone (dying, destroyed). Xen answers a question about a missing
//! domain with the next existing one above it, or `ESRCH` when there is none, so the domid
//! in the answer must be compared with the one asked for.

use crate::hypercall::{DomainInfoFlags as Dominf, Errno};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypercall::DOMINF_SHUTDOWN_SHIFT;

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
