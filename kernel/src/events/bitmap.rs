//! The 2-level event-channel bitmaps in shared_info, with Xen's atomic rules: pending/mask/
//! selector bits are only changed with atomic RMW operations (Xen sets them concurrently from
//! other CPUs); a port's pending bit is cleared *before* its handler runs. Pure logic over a
//! `SharedInfo`, tested on the host.

use crate::shared_info::{SharedInfo, EVTCHN_WORDS, NR_EVENT_CHANNELS};
use core::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, SeqCst};

/// An event-channel port.
pub type Port = u32;

fn split(port: Port) -> Option<(usize, u64)> {
    let p = port as usize;
    (p < NR_EVENT_CHANNELS).then(|| (p / 64, 1u64 << (p % 64)))
}

/// Masks every port (shared_info starts with all ports unmasked).
pub fn mask_all(si: &SharedInfo) {
    for w in &si.evtchn_mask {
        w.store(u64::MAX, SeqCst);
    }
}

/// Sets the mask bit of `port` (out-of-range ports are ignored).
pub fn mask(si: &SharedInfo, port: Port) {
    if let Some((w, bit)) = split(port) {
        si.evtchn_mask[w].fetch_or(bit, SeqCst);
    }
}

/// Clears the mask bit of `port`. Returns true when the port was pending and this unmask made
/// an upcall due (selector bit newly set, `evtchn_upcall_pending` set): the caller must then
/// get the upcall delivered if events are enabled.
pub fn unmask(si: &SharedInfo, vcpu: usize, port: Port) -> bool {
    let Some((w, bit)) = split(port) else {
        return false;
    };
    si.evtchn_mask[w].fetch_and(!bit, SeqCst);
    if si.evtchn_pending[w].load(SeqCst) & bit == 0 {
        return false;
    }
    let v = &si.vcpu_info[vcpu];
    let sel = 1u64 << w;
    if v.evtchn_pending_sel.fetch_or(sel, SeqCst) & sel != 0 {
        return false;
    }
    v.evtchn_upcall_pending.store(1, SeqCst);
    true
}

/// True when `port`'s pending bit is set.
pub fn is_pending(si: &SharedInfo, port: Port) -> bool {
    split(port).is_some_and(|(w, bit)| si.evtchn_pending[w].load(Acquire) & bit != 0)
}

/// True when `port`'s mask bit is set.
pub fn is_masked(si: &SharedInfo, port: Port) -> bool {
    split(port).is_some_and(|(w, bit)| si.evtchn_mask[w].load(Acquire) & bit != 0)
}

/// Atomically clears `port`'s pending bit; returns whether it was set.
pub fn clear_pending(si: &SharedInfo, port: Port) -> bool {
    split(port).is_some_and(|(w, bit)| si.evtchn_pending[w].fetch_and(!bit, AcqRel) & bit != 0)
}

/// One upcall scan for `vcpu`: clears `evtchn_upcall_pending`, takes the selector with an
/// atomic exchange, and for every selected word handles each pending, unmasked port (lowest
/// first, its pending bit atomically cleared before `handle` runs) until the word has none
/// left. Each round works on a snapshot of the word, so a port that re-fires cannot starve
/// the others. Returns how many ports were handled.
pub fn scan(si: &SharedInfo, vcpu: usize, mut handle: impl FnMut(Port)) -> usize {
    let v = &si.vcpu_info[vcpu];
    v.evtchn_upcall_pending.store(0, Relaxed);
    let mut sel = v.evtchn_pending_sel.swap(0, AcqRel);
    let mut handled = 0;
    while sel != 0 {
        let w = sel.trailing_zeros() as usize;
        sel &= sel - 1;
        if w >= EVTCHN_WORDS {
            continue;
        }
        loop {
            let mut active = si.evtchn_pending[w].load(Acquire) & !si.evtchn_mask[w].load(Acquire);
            if active == 0 {
                break;
            }
            while active != 0 {
                let b = active.trailing_zeros();
                active &= active - 1;
                let port = (w * 64) as Port + b;
                if clear_pending(si, port) {
                    handle(port);
                    handled += 1;
                }
            }
        }
    }
    handled
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared_info::zeroed;

    fn raise(si: &SharedInfo, port: Port) {
        let (w, bit) = split(port).unwrap();
        si.evtchn_pending[w].fetch_or(bit, SeqCst);
        si.vcpu_info[0].evtchn_pending_sel.fetch_or(1 << w, SeqCst);
        si.vcpu_info[0].evtchn_upcall_pending.store(1, SeqCst);
    }

    #[test]
    fn scan_handles_pending_unmasked_ports_in_order() {
        let si = zeroed();
        for p in [130, 3, 64, 4095] {
            raise(&si, p);
        }
        let mut seen = Vec::new();
        assert_eq!(scan(&si, 0, |p| seen.push(p)), 4);
        assert_eq!(seen, vec![3, 64, 130, 4095]);
        assert_eq!(si.vcpu_info[0].evtchn_upcall_pending.load(SeqCst), 0);
        assert_eq!(si.vcpu_info[0].evtchn_pending_sel.load(SeqCst), 0);
        assert!(!is_pending(&si, 130));
    }

    #[test]
    fn masked_ports_stay_pending_until_unmasked() {
        let si = zeroed();
        mask_all(&si);
        raise(&si, 7);
        let mut seen = Vec::new();
        assert_eq!(scan(&si, 0, |p| seen.push(p)), 0);
        assert!(is_pending(&si, 7));
        // The selector was consumed by the scan, so unmasking must re-arm it.
        assert!(unmask(&si, 0, 7));
        assert_eq!(si.vcpu_info[0].evtchn_upcall_pending.load(SeqCst), 1);
        assert_eq!(si.vcpu_info[0].evtchn_pending_sel.load(SeqCst), 1);
        assert_eq!(scan(&si, 0, |p| seen.push(p)), 1);
        assert_eq!(seen, vec![7]);
    }

    #[test]
    fn unmask_without_pending_needs_no_upcall() {
        let si = zeroed();
        mask_all(&si);
        assert!(!unmask(&si, 0, 9));
        assert!(!is_masked(&si, 9));
        assert!(is_masked(&si, 10));
        mask(&si, 9);
        assert!(is_masked(&si, 9));
    }

    #[test]
    fn pending_bit_is_clear_while_handler_runs() {
        let si = zeroed();
        raise(&si, 65);
        let mut was_pending = true;
        scan(&si, 0, |p| was_pending = is_pending(&si, p));
        assert!(!was_pending);
    }

    #[test]
    fn refiring_port_is_rescanned_without_starving_others() {
        let si = zeroed();
        raise(&si, 1);
        raise(&si, 2);
        let mut seen = Vec::new();
        let mut refire = 2;
        scan(&si, 0, |p| {
            seen.push(p);
            if p == 1 && refire > 0 {
                refire -= 1;
                raise(&si, 1);
            }
        });
        assert_eq!(seen, vec![1, 2, 1, 1]);
    }

    #[test]
    fn out_of_range_ports_are_ignored() {
        let si = zeroed();
        mask(&si, 4096);
        assert!(!unmask(&si, 0, 5000));
        assert!(!is_pending(&si, 4096));
        assert!(!clear_pending(&si, u32::MAX));
    }
}
