//! The engine's [`Platform`] in the stub: every introduced domain's ring is grant ref 1 of
//! that domain mapped writable (the INTRODUCE mfn is never used) plus an interdomain event
//! channel bound to the port it named. The platform owns them ([`Rings`]); the service loop
//! reaches them through the engine (`Engine::platform`), the one way to the rings. After a
//! live update the next kernel adopts the rings (`Platform::adopt`).

use crate::events::{self, Port};
use crate::gntmap::{self, GrantMap};
use crate::hypercall::{self, DomainInfoFlags, Errno};
use crate::mm::SharedPage;
use crate::time;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use xenstore_engine::ring::{self, RingPage, SERVER_FEATURES};
use xenstore_engine::{ConnId, Error, Platform, FEATURES};

/// `GNTTAB_RESERVED_XENSTORE`: the grant ref of every domain's store ring.
const STORE_GREF: u32 = 1;

/// One domain's ring.
pub struct Ring {
    /// The domain.
    pub domid: u32,
    /// Our end of its event channel.
    pub port: Port,
    map: GrantMap,
    /// The ring error we saw ([`ring::ERROR_RINGIDX`], [`ring::ERROR_PROTO`], or the value
    /// the guest wrote): the connection is closed until the guest asks to reconnect.
    pub failed: Option<u32>,
}

impl Ring {
    /// A view of the ring page; valid while this ring is in [`Rings`] or its retired list.
    pub fn page(&self) -> SharedPage {
        // `map` keeps the page mapped until the ring is dropped, which the service loop does
        // only between passes (`Rings::retired`), when no view is left.
        self.map.page()
    }
}

/// The rings of all introduced domains and the domains the store has asked about.
#[derive(Default)]
pub struct Rings {
    /// Rings by engine connection.
    pub by_conn: BTreeMap<ConnId, Ring>,
    /// Connection of each bound port.
    pub by_port: BTreeMap<Port, ConnId>,
    /// Released rings, unmapped between passes.
    pub retired: Vec<Ring>,
    /// Domains the VIRQ_DOM_EXC scan checks: introduced ones and those found to exist.
    pub known: BTreeSet<u32>,
    /// dom0's ring was adopted: its first introduction (at start) keeps the ring's indices
    /// (dom0 may already have written requests) and only advertises the features.
    dom0_adopted: bool,
}

impl Rings {
    /// Drives connection `conn` with `ring` from now on.
    fn keep(&mut self, conn: ConnId, ring: Ring) {
        self.by_port.insert(ring.port, conn);
        self.known.insert(ring.domid);
        self.by_conn.insert(conn, ring);
    }
}

/// The stub's platform.
pub struct KernelPlatform {
    /// The rings of the introduced domains.
    pub rings: Rings,
    handler: events::Handler,
    /// Free heap below which the host reports low memory (see `Platform::memory_low`).
    reserve: usize,
}

impl KernelPlatform {
    /// A platform that installs `handler` on every ring's port and reports low memory once
    /// less than `reserve` bytes of heap are free.
    pub fn new(handler: events::Handler, reserve: usize) -> KernelPlatform {
        KernelPlatform {
            rings: Rings::default(),
            handler,
            reserve,
        }
    }

    /// `domid`'s ring: grant ref 1 mapped writable and its event channel `port` bound.
    fn connect(&self, domid: u32, port: u32) -> Result<Ring, Error> {
        let Ok(dom) = u16::try_from(domid) else {
            return Err(Error::Inval);
        };
        let map = gntmap::map(dom, STORE_GREF, true).map_err(|e| {
            crate::log_warn!("xenstored: mapping grant ref 1 of dom{domid}: {e}");
            Error::Inval
        })?;
        Ok(Ring {
            domid,
            port: self.bind(domid, port)?,
            map,
            failed: None,
        })
    }

    fn bind(&self, domid: u32, remote_port: u32) -> Result<Port, Error> {
        let local = events::bind_interdomain(domid as u16, remote_port).map_err(|e| {
            crate::log_warn!("xenstored: binding dom{domid} port {remote_port}: {e}");
            errno_to_error(e)
        })?;
        events::set_handler(local, self.handler);
        events::unmask(local);
        Ok(local)
    }
}

impl KernelPlatform {
    /// Before the switch: unmaps every ring (Xen refuses to drop a grant mapping with the
    /// old page tables) and closes our end of its event channel, which leaves the guest's
    /// end waiting for the next kernel to bind it again (`Platform::adopt`).
    pub fn let_rings_go(&mut self) {
        self.rings.retired.clear();
        for (_, ring) in core::mem::take(&mut self.rings.by_conn) {
            unbind(ring.port, ring.domid);
        }
        self.rings.by_port.clear();
    }
}

fn errno_to_error(e: Errno) -> Error {
    match e {
        Errno::ENOMEM => Error::Nomem,
        Errno::EPERM => Error::Perm,
        Errno::ESRCH | Errno::ENOENT => Error::Noent,
        _ => Error::Inval,
    }
}

fn unbind(port: Port, domid: u32) {
    if let Err(e) = events::close(port) {
        crate::log_warn!("xenstored: closing port {port} of dom{domid}: {e}");
    }
}

impl Platform for KernelPlatform {
    fn introduce(&mut self, conn: ConnId, domid: u32, _mfn: u64, port: u32) -> Result<(), Error> {
        let ring = self.connect(domid, port)?;
        let local = ring.port;
        let mut page = ring.page();
        if domid == 0 && !self.rings.dom0_adopted {
            self.rings.dom0_adopted = true;
            page.store_u32(SERVER_FEATURES, FEATURES);
        } else {
            ring::reset(&mut page, FEATURES);
        }
        self.rings.keep(conn, ring);
        let _ = events::send(local);
        crate::log_info!("xenstored: dom{domid} introduced (port {port} -> local {local})");
        Ok(())
    }

    /// After a live update: the ring is grant ref 1 of `domid` again and `port` the guest's
    /// end of its event channel, unbound since the previous kernel closed ours; the ring's
    /// indices and contents are the guest's and stay as they are.
    fn adopt(&mut self, conn: ConnId, domid: u32, _mfn: u64, port: u32) -> Result<(), Error> {
        let ring = self.connect(domid, port)?;
        if domid == 0 {
            self.rings.dom0_adopted = true;
        }
        self.rings.keep(conn, ring);
        Ok(())
    }

    /// Checks that the image can take over in place; the service loop makes the switch
    /// (with the image the engine keeps).
    fn live_update(&mut self, image: &[u8], _cmdline: Option<&str>) -> Result<(), String> {
        crate::handover::check(image)
            .map(drop)
            .map_err(|e| format!("Live update failed: {e}."))
    }

    fn reintroduce(&mut self, conn: ConnId, domid: u32, port: u32) -> Result<(), Error> {
        let old = self.rings.by_conn.get(&conn).map(|r| r.port);
        if let Some(p) = old {
            self.rings.by_port.remove(&p);
            unbind(p, domid);
        }
        let local = self.bind(domid, port)?;
        let rings = &mut self.rings;
        let Some(ring) = rings.by_conn.get_mut(&conn) else {
            unbind(local, domid);
            return Err(Error::Inval);
        };
        ring.port = local;
        ring.failed = None;
        ring::reset(&mut ring.page(), FEATURES);
        rings.by_port.insert(local, conn);
        let _ = events::send(local);
        Ok(())
    }

    fn release(&mut self, conn: ConnId, domid: u32) {
        let rings = &mut self.rings;
        rings.known.remove(&domid);
        if let Some(ring) = rings.by_conn.remove(&conn) {
            rings.by_port.remove(&ring.port);
            unbind(ring.port, domid);
            rings.retired.push(ring);
        }
        let heap = crate::mm::heap_stats();
        crate::log_info!(
            "xenstored: dom{domid} released (heap: {} B in {} blocks)",
            heap.used,
            heap.live
        );
    }

    fn domain_exists(&mut self, domid: u32) -> bool {
        let Ok(dom) = u16::try_from(domid) else {
            return false;
        };
        let exists = match hypercall::getdomaininfo(dom) {
            Ok(i) => {
                i.domain == dom
                    && !DomainInfoFlags::from_bits_retain(i.flags).contains(DomainInfoFlags::DYING)
            }
            Err(Errno::ESRCH) => false,
            // Not allowed to ask (a stub not made by init-xenstore-domain): assume it does.
            Err(_) => true,
        };
        if exists {
            self.rings.known.insert(domid);
        }
        exists
    }

    fn now_ms(&self) -> u64 {
        time::now_ns() / 1_000_000
    }

    fn log(&mut self, line: &str) {
        crate::log_info!("xenstored: {line}");
    }

    /// The heap is nearly full: guests' growth is refused (ENOMEM) so that a panic on a
    /// failed allocation cannot take the store down; dom0 is still served.
    fn memory_low(&self) -> bool {
        crate::mm::heap_stats().free < self.reserve
    }

    /// The stub's heap: `heap: <used> B used, <free> B free of <size> B, peak <peak> B,
    /// <live> blocks`, and the dispatcher's activity (`service: ...`).
    fn memreport(&mut self, report: &mut String) {
        let h = crate::mm::heap_stats();
        let _ = writeln!(
            report,
            "heap: {} B used, {} B free of {} B, peak {} B, {} blocks",
            h.used, h.free, h.size, h.peak_used, h.live
        );
        let _ = writeln!(report, "{}", super::service::activity());
    }
}
