//! Event channels (2-level ABI): all ports masked at boot, the upcall dispatcher that the
//! `hypervisor_callback` entry calls, a port → handler table, the EVTCHNOP wrappers
//! (alloc_unbound, bind_interdomain, bind_virq, send, close, unmask, and `own_domid` from
//! EVTCHNOP_status) and the event-delivery
//! switch (`disable`/`restore`/`enable`, the PV "cli/sti" on vcpu_info.evtchn_upcall_mask).

pub mod bitmap;

pub use bitmap::Port;

#[cfg(target_os = "none")]
pub use kernel::*;

#[cfg(target_os = "none")]
mod kernel {
    use super::bitmap::{self, Port};
    use crate::arch;
    use crate::arch::frame::TrapFrame;
    use crate::hypercall::{
        self, Errno, EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindVirq, EvtchnClose,
        EvtchnSend, EvtchnStatus, DOMID_SELF,
    };
    use crate::shared_info::NR_EVENT_CHANNELS;
    use crate::sync::IrqMutex;
    use core::sync::atomic::{AtomicU64, Ordering};

    /// An event handler, called from the upcall with events disabled; it gets its port.
    pub type Handler = fn(Port);

    static HANDLERS: IrqMutex<[Option<Handler>; NR_EVENT_CHANNELS]> =
        IrqMutex::new([None; NR_EVENT_CHANNELS]);
    static UPCALLS: AtomicU64 = AtomicU64::new(0);
    static UNHANDLED: AtomicU64 = AtomicU64::new(0);

    pub use crate::arch::upcall::{are_enabled, disable, enable, restore, without};

    /// Boot: mask every port and forget any handler. Events stay disabled (as at entry).
    pub fn init() {
        let si = arch::shared_info();
        bitmap::mask_all(si);
        HANDLERS.lock().fill(None);
    }

    /// The event upcall (`hypervisor_callback` in boot/entry.S, through `arch::entry`), with
    /// events masked by Xen.
    pub fn upcall(_frame: &mut TrapFrame) {
        UPCALLS.fetch_add(1, Ordering::Relaxed);
        let si = arch::shared_info();
        loop {
            bitmap::scan(si, 0, dispatch);
            if arch::vcpu().evtchn_upcall_pending.load(Ordering::Relaxed) == 0 {
                break;
            }
        }
    }

    fn dispatch(port: Port) {
        let handler = HANDLERS.lock().get(port as usize).copied().flatten();
        match handler {
            Some(h) => h(port),
            None => {
                UNHANDLED.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Upcalls taken and events that had no handler, since boot.
    pub fn stats() -> (u64, u64) {
        (
            UPCALLS.load(Ordering::Relaxed),
            UNHANDLED.load(Ordering::Relaxed),
        )
    }

    /// Installs `handler` for `port` (replacing any). The port stays masked until [`unmask`].
    pub fn set_handler(port: Port, handler: Handler) {
        if let Some(slot) = HANDLERS.lock().get_mut(port as usize) {
            *slot = Some(handler);
        }
    }

    /// Removes `port`'s handler.
    pub fn clear_handler(port: Port) {
        if let Some(slot) = HANDLERS.lock().get_mut(port as usize) {
            *slot = None;
        }
    }

    /// Masks `port`.
    pub fn mask(port: Port) {
        bitmap::mask(arch::shared_info(), port);
    }

    /// Unmasks `port`; if it is pending, its handler runs now (or when events are enabled).
    pub fn unmask(port: Port) {
        if bitmap::unmask(arch::shared_info(), 0, port) && are_enabled() {
            hypercall::force_event_delivery();
        }
    }

    /// True when `port` is pending.
    pub fn is_pending(port: Port) -> bool {
        bitmap::is_pending(arch::shared_info(), port)
    }

    /// Clears `port`'s pending bit; returns whether it was set.
    pub fn clear_pending(port: Port) -> bool {
        bitmap::clear_pending(arch::shared_info(), port)
    }

    /// Allocates a port in this domain that `remote_dom` may bind to.
    pub fn alloc_unbound(remote_dom: u16) -> Result<Port, Errno> {
        let mut op = EvtchnAllocUnbound {
            dom: DOMID_SELF,
            remote_dom,
            port: 0,
        };
        hypercall::event_channel_op(&mut op)?;
        Ok(op.port)
    }

    /// Connects a new local port to `remote_port` of `remote_dom`. Xen marks the new port
    /// pending at once, so its handler runs as soon as it is unmasked.
    pub fn bind_interdomain(remote_dom: u16, remote_port: Port) -> Result<Port, Errno> {
        let mut op = EvtchnBindInterdomain {
            remote_dom,
            remote_port,
            local_port: 0,
        };
        hypercall::event_channel_op(&mut op)?;
        Ok(op.local_port)
    }

    /// Binds virtual IRQ `virq` on vCPU 0 to a new port.
    pub fn bind_virq(virq: u32) -> Result<Port, Errno> {
        let mut op = EvtchnBindVirq {
            virq,
            vcpu: 0,
            port: 0,
        };
        hypercall::event_channel_op(&mut op)?;
        Ok(op.port)
    }

    /// Notifies the other end of `port`.
    pub fn send(port: Port) -> Result<(), Errno> {
        hypercall::event_channel_op(&mut EvtchnSend { port })
    }

    /// Our own domain id: the remote end Xen records for an unbound port allocated with
    /// `remote_dom = DOMID_SELF` (Xen substitutes the caller's id; `EVTCHNOP_status` reports
    /// it). The port is closed again.
    pub fn own_domid() -> Result<u16, &'static str> {
        let port = alloc_unbound(DOMID_SELF).map_err(|_| "EVTCHNOP_alloc_unbound failed")?;
        let mut st = EvtchnStatus {
            dom: DOMID_SELF,
            port,
            ..Default::default()
        };
        let status = hypercall::event_channel_op(&mut st);
        let closed = close(port);
        status.map_err(|_| "EVTCHNOP_status failed")?;
        closed.map_err(|_| "EVTCHNOP_close failed")?;
        if st.status != EVTCHNSTAT_UNBOUND {
            return Err("EVTCHNOP_status: the new port is not unbound");
        }
        u16::try_from(st.u[0]).map_err(|_| "EVTCHNOP_status: no domain id")
    }

    /// `EVTCHNSTAT_unbound`.
    const EVTCHNSTAT_UNBOUND: u32 = 1;

    /// Closes `port`: masks it, drops its handler and pending state, and tells Xen.
    pub fn close(port: Port) -> Result<(), Errno> {
        mask(port);
        clear_handler(port);
        clear_pending(port);
        hypercall::event_channel_op(&mut EvtchnClose { port })
    }
}
