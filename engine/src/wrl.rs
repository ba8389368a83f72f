//! Write-rate limiting with C xenstored 4.17's rules (`wrl_*` in xenstored_domain.c), in
//! thousandths of a write. Each introduced domain earns `RATE / ndomains` writes per second
//! up to a burst of `DBURST`; what it earns beyond that goes to a global reserve (up to
//! `GBURST`) from which domains in debt borrow. A new domain takes up to `DBURST` from the
//! reserve, which may go down to `-NEWDOMS * DBURST` for that. A write costs one write per
//! node it changes and a commit one write. C charges only while some transaction is open
//! (only then can writers starve each other, XSA-206). Deliberate difference: writes are
//! charged always, but only while a transaction is open can the credit go below zero; so a
//! domain writing flat out with no transaction open is not slowed down (as in C), yet it
//! cannot save credit for a burst of conflicting writes once one opens. A domain in debt is
//! not refused: its input is paused until its credit is back to zero. Privileged domains
//! are never limited.

use crate::domain::Domain;

const FACTOR: i64 = 1000;
const RATE: i64 = 200 * FACTOR;
const DBURST: i64 = 10 * FACTOR;
const GBURST: i64 = 1000 * FACTOR;
const NEWDOMS_DBURST: i64 = 5 * DBURST;
/// Bound on a domain's credit (and, restoring a stream, on its debt and the reserve).
pub(crate) const CREDIT_MAX: i64 = 1_000_000_000;
/// The cost of one node write.
pub const WRITE_COST: i64 = FACTOR;

/// The global part: the reserve and the number of domains sharing the rate.
#[derive(Default)]
pub struct Wrl {
    pub(crate) reserve: i64,
    pub(crate) ndomains: i64,
}

/// Moves as much as possible from `debit` to `credit` keeping `debit >= floor` and
/// `credit <= ceil`.
fn xfer(debit: &mut i64, floor: i64, credit: &mut i64, ceil: i64) {
    let n = (*debit - floor).min(ceil - *credit);
    if n > 0 {
        *debit -= n;
        *credit += n;
    }
}

impl Wrl {
    /// A domain was introduced: it starts with what it can take from the reserve.
    pub fn domain_new(&mut self, d: &mut Domain, now: u64) {
        self.ndomains += 1;
        d.wrl_credit = 0;
        d.wrl_stamp = now;
        xfer(
            &mut self.reserve,
            -NEWDOMS_DBURST,
            &mut d.wrl_credit,
            DBURST,
        );
    }

    /// An introduced domain is gone: its credit goes back to the reserve.
    pub fn domain_gone(&mut self, d: &mut Domain) {
        self.ndomains -= 1;
        xfer(&mut d.wrl_credit, 0, &mut self.reserve, DBURST);
    }

    /// Adds the credit earned since the last update; a debt is paid from the reserve and a
    /// surplus beyond the burst goes to it.
    pub fn update(&mut self, d: &mut Domain, now: u64) {
        let msec = now.saturating_sub(d.wrl_stamp).min(1_000_000_000) as i64;
        let earned = msec * RATE / (self.ndomains.max(1) * 1000);
        d.wrl_credit = (d.wrl_credit + earned).min(CREDIT_MAX);
        xfer(&mut self.reserve, 0, &mut d.wrl_credit, 0);
        let mut surplus = 0;
        xfer(&mut d.wrl_credit, DBURST, &mut surplus, CREDIT_MAX);
        xfer(&mut surplus, 0, &mut self.reserve, GBURST);
        d.wrl_stamp = now;
    }

    /// Charges `cost` to the domain (after updating its credit). Unless `held` (some
    /// transaction is open), the charge stops at zero: the write is not held back, but it
    /// uses up the credit the domain had saved.
    pub fn debit(&mut self, d: &mut Domain, now: u64, cost: i64, held: bool) {
        self.update(d, now);
        let after = d.wrl_credit - cost;
        d.wrl_credit = if held {
            after
        } else {
            after.max(d.wrl_credit.min(0))
        };
    }
}
