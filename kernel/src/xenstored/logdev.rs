//! The stub's log on its 9pfs device (Xen 4.19+: init-xenstore-domain adds the device,
//! `xen-9pfsd` in dom0 serves dom0's `/var/lib/xen/xenstore` on it). The xenbus handshake is
//! spoken as the stub's own domain to its own engine (requests fed to its connection, replies
//! taken at once); the 9pfs
//! ring (three pool frames granted to the backend) and its event channel carry the
//! [`LogFile`] session that writes [`FILE_NAME`] there. Without the device (Xen 4.17) nothing
//! happens and the console keeps every line. Whatever the backend writes is checked; on any
//! fault the device is given up and the console takes the log again. Before a live update the
//! device is closed (the backend unmaps the ring, so its pages can be revoked); the next
//! kernel finds it Closed and connects again without waiting for InitWait (xen-9pfsd stays
//! Closed and connects on our Initialised).

use super::local::Local;
use crate::events::{self, Port};
use crate::gnttab::{self, GrantRef};
use crate::logsink;
use crate::mm::{self, SharedPage};
use crate::netfront::handshake::state;
use crate::ninep::channel::{Broken, Channel, RING_ORDER};
use crate::ninep::logfile::LogFile;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use xenstore_engine::wire::ty;
use xenstore_engine::{ConnId, Engine, Platform};

/// The log file's name in the share.
pub const FILE_NAME: &str = "ferrostore.log";
/// Bytes the log file may reach before it is copied to `ferrostore.log.1` and truncated.
pub const FILE_CAP: u64 = 1 << 20;

/// The frontend's device directory, relative to our domain's home.
const DEVICE: &str = "device/9pfs/0";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No device nodes yet (or never: Xen 4.17).
    WaitDevice,
    /// Our nodes are there; waiting for the backend to reach InitWait.
    WaitBackend,
    /// Our ring is published (Initialised); waiting for the backend to connect.
    WaitConnected,
    Connected,
    /// Closing for a live update: ending the 9P session (its fids clunked).
    Finishing,
    /// Closing for a live update: waiting for the backend to unmap the ring.
    Closing,
    /// Given up (backend closed or faulted): the console has the log.
    Closed,
}

/// The 9pfs ring: pages granted to the backend and the event channel.
struct Ring {
    pfns: [u64; 3],
    refs: [GrantRef; 3],
    port: Port,
    channel: Channel<SharedPage>,
}

impl Ring {
    fn new(backend: u16, on_event: events::Handler) -> Result<Ring, String> {
        let mut pfns = [0u64; 3];
        let mut refs: [GrantRef; 3] = [0; 3];
        let mut pages = Vec::new();
        for i in 0..3 {
            let granted = mm::alloc_frame()
                .map_err(|e| format!("allocating a ring page: {e}"))
                .and_then(|pfn| {
                    pfns[i] = pfn;
                    let page =
                        SharedPage::pool_frame(pfn).map_err(|e| format!("ring page: {e}"))?;
                    let r = gnttab::grant_access(backend, mm::pfn_to_mfn(pfn), false)
                        .map_err(|e| format!("granting a ring page: {e}"))?;
                    refs[i] = r;
                    pages.push(page);
                    Ok(())
                });
            if let Err(e) = granted {
                release(&pfns[..=i], &refs[..i]);
                return Err(e);
            }
        }
        let port = match events::alloc_unbound(backend) {
            Ok(p) => p,
            Err(e) => {
                release(&pfns, &refs);
                return Err(format!("allocating an event channel: {e}"));
            }
        };
        events::set_handler(port, on_event);
        events::unmask(port);
        let [intf, data_in, data_out] = pages.as_slice() else {
            release(&pfns, &refs);
            return Err(String::from("ring pages missing"));
        };
        let (intf, data_in, data_out) = (*intf, *data_in, *data_out);
        Ok(Ring {
            pfns,
            refs,
            port,
            channel: Channel::new(intf, data_in, data_out, [refs[1], refs[2]]),
        })
    }

    /// Closes the port and revokes the pages; what the backend still maps is returned.
    fn close(self) -> Option<Leak> {
        if let Err(e) = events::close(self.port) {
            crate::log_warn!("xenstored: log: closing the 9pfs event channel: {e}");
        }
        release(&self.pfns, &self.refs)
    }
}

/// Ring pages the backend kept mapped when we closed: kept out of use, revoked later.
struct Leak {
    pfns: Vec<u64>,
    refs: Vec<GrantRef>,
}

/// Revokes `refs` and frees `pfns`; if the backend still maps some page, the pages are kept
/// (never reused) and returned with the refs not yet revoked.
fn release(pfns: &[u64], refs: &[GrantRef]) -> Option<Leak> {
    let kept: Vec<GrantRef> = refs
        .iter()
        .copied()
        .filter(|&r| gnttab::end_access(r).is_err())
        .collect();
    if kept.is_empty() {
        for &pfn in pfns.iter().filter(|&&p| p != 0) {
            mm::free_frame(pfn);
        }
        return None;
    }
    Some(Leak {
        pfns: pfns.to_vec(),
        refs: kept,
    })
}

/// The device and its log session.
pub struct LogDevice {
    /// Our connection to our own engine, speaking as our domain.
    local: Local,
    phase: Phase,
    backend: String,
    backend_id: u16,
    ring: Option<Ring>,
    session: LogFile,
    /// A request the `out` ring had no room for yet.
    outgoing: Vec<u8>,
    reply: Vec<u8>,
    on_event: events::Handler,
    /// The device was left Closed by the kernel this one replaced: the backend will not go
    /// through InitWait again, and shows Closing/Closed until it connects.
    reconnect: bool,
    /// Ring pages the backend kept mapped when we closed, revoked once it lets them go.
    leaked: Option<Leak>,
}

impl LogDevice {
    /// Starts watching for the device; `on_event` will be the 9pfs port's handler.
    pub fn new<P: Platform>(
        engine: &mut Engine<P>,
        domid: u16,
        on_event: events::Handler,
    ) -> LogDevice {
        let local = Local::new(engine, domid);
        let mut dev = LogDevice {
            local,
            phase: Phase::WaitDevice,
            backend: String::new(),
            backend_id: 0,
            ring: None,
            session: LogFile::new(FILE_NAME, FILE_CAP),
            outgoing: Vec::new(),
            reply: Vec::new(),
            on_event,
            reconnect: false,
            leaked: None,
        };
        let state = format!("{DEVICE}/state");
        if let Err(e) = dev.call(engine, ty::WATCH, &[state.as_bytes(), b"\0fe\0"]) {
            crate::log_warn!("xenstored: log: cannot watch {DEVICE}: {e}");
            dev.phase = Phase::Closed;
            return dev;
        }
        // The watch's first event went with the call's reply: look at the device now.
        dev.on_store(engine);
        dev
    }

    /// Our engine connection (its output is for us, not for a ring).
    pub fn conn(&self) -> ConnId {
        self.local.conn()
    }

    /// One request to the engine, answered at once: the reply's payload, or why it failed.
    /// Watch events queued before the reply are dropped: every event makes `advance` look
    /// at the device again anyway.
    fn call<P: Platform>(
        &mut self,
        engine: &mut Engine<P>,
        ty: u32,
        parts: &[&[u8]],
    ) -> Result<Vec<u8>, String> {
        self.local.call(engine, ty, parts)
    }

    fn read<P: Platform>(&mut self, engine: &mut Engine<P>, path: &str) -> Option<String> {
        let v = self
            .call(engine, ty::READ, &[path.as_bytes(), b"\0"])
            .ok()?;
        String::from_utf8(v).ok()
    }

    fn read_u32<P: Platform>(&mut self, engine: &mut Engine<P>, path: &str) -> Option<u32> {
        self.read(engine, path)?.trim().parse().ok()
    }

    fn write<P: Platform>(
        &mut self,
        engine: &mut Engine<P>,
        node: &str,
        value: &str,
    ) -> Result<(), String> {
        let path = format!("{DEVICE}/{node}");
        self.call(
            engine,
            ty::WRITE,
            &[path.as_bytes(), b"\0", value.as_bytes()],
        )
        .map(|_| ())
        .map_err(|e| format!("writing {path}: {e}"))
    }

    /// Our engine connection has output (watch events): look at the device again. Only
    /// then: our own calls' replies do not make the connection ready.
    pub fn on_store<P: Platform>(&mut self, engine: &mut Engine<P>) {
        let mut events = Vec::new();
        engine.output_all(self.local.conn(), &mut events);
        if let Err(e) = self.advance(engine) {
            crate::log_warn!("xenstored: log: 9pfs device: {e}; the log stays on the console");
            self.close(engine);
        }
    }

    fn advance<P: Platform>(&mut self, engine: &mut Engine<P>) -> Result<(), String> {
        if self.phase == Phase::WaitDevice {
            let Some(s) = self.read_u32(engine, &format!("{DEVICE}/state")) else {
                return Ok(());
            };
            self.reconnect = matches!(s, state::CLOSING | state::CLOSED);
            if s != state::INITIALISING && !self.reconnect {
                return Err(format!("the device is in state {s}, not Initialising"));
            }
            let backend = self
                .read(engine, &format!("{DEVICE}/backend"))
                .filter(|b| b.starts_with('/') && b.len() < 256)
                .ok_or("no usable backend path")?;
            let backend_id = self
                .read_u32(engine, &format!("{DEVICE}/backend-id"))
                .and_then(|d| u16::try_from(d).ok())
                .ok_or("no usable backend-id")?;
            let watch = format!("{backend}/state");
            self.call(engine, ty::WATCH, &[watch.as_bytes(), b"\0be\0"])
                .map_err(|e| format!("watching {watch}: {e}"))?;
            self.backend = backend;
            self.backend_id = backend_id;
            self.phase = Phase::WaitBackend;
        }
        let be_state = self.read_u32(engine, &format!("{}/state", self.backend));
        match (self.phase, be_state) {
            (Phase::WaitBackend, Some(state::INIT_WAIT)) => self.publish(engine),
            (Phase::WaitBackend, Some(_)) if self.reconnect => self.publish(engine),
            (Phase::Closing, None | Some(state::CLOSING..)) => {
                self.close(engine);
                Ok(())
            }
            (Phase::WaitConnected, Some(state::CONNECTED)) => {
                self.write(engine, "state", &format!("{}", state::CONNECTED))?;
                self.phase = Phase::Connected;
                self.reconnect = false;
                crate::log_info!(
                    "xenstored: log: 9pfs device connected (backend dom{})",
                    self.backend_id
                );
                Ok(())
            }
            (Phase::WaitConnected, Some(state::CLOSING..)) if self.reconnect => Ok(()),
            (Phase::WaitConnected | Phase::Connected, None | Some(state::CLOSING..)) => {
                Err(String::from("the backend closed the device"))
            }
            _ => Ok(()),
        }
    }

    /// The backend waits (InitWait): check what it offers, set up the ring and publish it.
    fn publish<P: Platform>(&mut self, engine: &mut Engine<P>) -> Result<(), String> {
        let be = self.backend.clone();
        let versions = self
            .read(engine, &format!("{be}/versions"))
            .unwrap_or_default();
        if !versions.split(',').any(|v| v.trim() == "1") {
            return Err(format!(
                "the backend offers transport versions {versions:?}, not 1"
            ));
        }
        if self
            .read_u32(engine, &format!("{be}/max-rings"))
            .unwrap_or(0)
            < 1
        {
            return Err(String::from("the backend offers no ring"));
        }
        let order = self
            .read_u32(engine, &format!("{be}/max-ring-page-order"))
            .unwrap_or(0);
        if order < RING_ORDER {
            return Err(format!("the backend's max-ring-page-order is {order}"));
        }
        let ring = Ring::new(self.backend_id, self.on_event)?;
        let (intf_ref, port) = (ring.refs[0], ring.port);
        self.ring = Some(ring);
        self.write(engine, "version", "1")?;
        self.write(engine, "num-rings", "1")?;
        self.write(engine, "ring-ref0", &format!("{intf_ref}"))?;
        self.write(engine, "event-channel-0", &format!("{port}"))?;
        self.write(engine, "state", &format!("{}", state::INITIALISED))?;
        self.phase = Phase::WaitConnected;
        Ok(())
    }

    /// Live update: ends the 9P session, then asks the backend to let the ring go (frontend
    /// Closing); see [`LogDevice::closed`].
    pub fn begin_close<P: Platform>(&mut self, engine: &mut Engine<P>) {
        match self.phase {
            Phase::Connected => {
                logsink::set_file_active(false);
                self.session.finish();
                self.phase = Phase::Finishing;
                self.poll(engine);
            }
            Phase::WaitConnected => self.detach(engine),
            _ => self.close(engine),
        }
    }

    /// Frontend Closing: the backend unmaps the ring and answers Closing.
    fn detach<P: Platform>(&mut self, engine: &mut Engine<P>) {
        logsink::set_file_active(false);
        match self.write(engine, "state", &format!("{}", state::CLOSING)) {
            Ok(()) => self.phase = Phase::Closing,
            Err(e) => {
                crate::log_warn!("xenstored: log: {e}");
                self.close(engine);
            }
        }
    }

    /// `Some(true)` once nothing of ours is granted to the backend any more, `Some(false)`
    /// if the backend keeps pages mapped, `None` while closing.
    pub fn closed(&mut self) -> Option<bool> {
        if let Some(leak) = self.leaked.take() {
            self.leaked = release(&leak.pfns, &leak.refs);
        }
        match self.phase {
            Phase::WaitConnected | Phase::Finishing | Phase::Closing => None,
            _ => Some(self.ring.is_none() && self.leaked.is_none()),
        }
    }

    fn keep(&mut self, leak: Leak) {
        self.leaked = Some(match self.leaked.take() {
            Some(mut old) => {
                old.pfns.extend(leak.pfns);
                old.refs.extend(leak.refs);
                old
            }
            None => leak,
        });
    }

    /// A fresh device session in place of this one (after a live update that did not
    /// happen): this one's engine connection is closed, pages the backend still maps stay
    /// tracked.
    pub fn restart<P: Platform>(
        mut self,
        engine: &mut Engine<P>,
        domid: u16,
        on_event: events::Handler,
    ) -> LogDevice {
        engine.close_connection(self.local.conn());
        let mut next = LogDevice::new(engine, domid, on_event);
        if let Some(leak) = self.leaked.take() {
            next.keep(leak);
        }
        next
    }

    /// Gives the device up: the console takes the log again.
    fn close<P: Platform>(&mut self, engine: &mut Engine<P>) {
        logsink::set_file_active(false);
        if let Some(r) = self.ring.take() {
            if let Some(leak) = r.close() {
                for r in &leak.refs {
                    crate::log_warn!(
                        "xenstored: log: 9pfs ring page (grant ref {r}) still mapped by dom0: kept until it lets go"
                    );
                }
                self.keep(leak);
            }
        }
        if self.phase != Phase::WaitDevice {
            let _ = self.write(engine, "state", &format!("{}", state::CLOSED));
        }
        self.phase = Phase::Closed;
    }

    /// Moves the log session on: takes replies, sends the next request. Cheap when there is
    /// nothing to do; call it on the port's events and after every dispatcher pass.
    pub fn poll<P: Platform>(&mut self, engine: &mut Engine<P>) {
        if !matches!(self.phase, Phase::Connected | Phase::Finishing) {
            return;
        }
        if let Err(e) = self.exchange() {
            crate::log_warn!("xenstored: log: {FILE_NAME}: {e}; the log stays on the console");
            self.close(engine);
            return;
        }
        if self.phase == Phase::Finishing {
            if self.session.finished() {
                self.detach(engine);
            }
            return;
        }
        let open = self.session.is_open();
        if open && !logsink::file_active() {
            crate::println!(
                "xenstored: log: writing {FILE_NAME} on the 9pfs device (dom0's /var/lib/xen/xenstore); the console keeps warnings and errors"
            );
        }
        logsink::set_file_active(open);
    }

    fn exchange(&mut self) -> Result<(), String> {
        let Some(ring) = self.ring.as_mut() else {
            return Ok(());
        };
        let msize = self.session.msize();
        let mut notify = false;
        while ring
            .channel
            .receive(msize, &mut self.reply)
            .map_err(|e: Broken| format!("{e}"))?
        {
            notify = true;
            self.session.reply(&self.reply)?;
        }
        if self.outgoing.is_empty() {
            self.session.request(logsink::take, &mut self.outgoing);
        }
        if !self.outgoing.is_empty()
            && ring
                .channel
                .send(&self.outgoing)
                .map_err(|e| format!("{e}"))?
        {
            self.outgoing.clear();
            notify = true;
        }
        if notify {
            let _ = events::send(ring.port);
        }
        Ok(())
    }
}
