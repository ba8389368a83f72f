//! The netfront device on the kernel target: ring and buffer pages from the frame pool,
//! granted to the backend (tx buffers read-only), an event channel, the handshake, and
//! smoltcp's `Device` over [`Queues`]. Closing revokes every grant; a page the backend still
//! maps is never reused.

use super::handshake::{self, state, Backend, Rings, Store};
use super::queues::{Buffer, Queues, Stats, FRAME_MAX};
use crate::events::{self, Port};
use crate::gnttab::{self, GrantRef};
use crate::mm::{self, SharedPage};
use crate::sched::{self, WaitQueue};
use crate::sync::IrqMutex;
use crate::time;
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use smoltcp::phy::{self, DeviceCapabilities, Medium};

/// How many buffer pages a device grants: tx buffers in flight at most, rx buffers kept
/// posted to the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferPages {
    pub tx: usize,
    pub rx: usize,
}

/// A guest's buffers (768 KiB).
pub const GUEST_BUFFERS: BufferPages = BufferPages { tx: 64, rx: 128 };

/// Decides whether a received frame reaches the stack (see [`Netfront::set_filter`]).
pub type Filter = Box<dyn Fn(&[u8]) -> bool>;
/// How long the backend may take to reach a state we wait for.
const STATE_WAIT_NS: u64 = 10_000_000_000;
/// Filtered-out frames [`Device::receive`](phy::Device::receive) drops before it returns
/// (the rest wait for the next poll).
const FILTER_BUDGET: usize = 32;
/// How long tx requests may stay unanswered before the backend is notified again.
const TX_KICK_NS: u64 = 500_000_000;
/// How often a state wait looks again.
const STATE_POLL_NS: u64 = 10_000_000;

/// [`Netfront::broken`] of a closed device.
pub const CLOSED: &str = "closed";

static EVENT: AtomicBool = AtomicBool::new(false);
static WAITERS: WaitQueue = WaitQueue::new();
/// Pages a backend kept mapped after close, with their grants: out of use until
/// [`release_kept`] can revoke them.
static KEPT: IrqMutex<Vec<(u64, GrantRef)>> = IrqMutex::new(Vec::new());

/// The event handler of a guest's devices: wakes [`wait`].
pub fn on_event(_port: Port) {
    EVENT.store(true, Ordering::Release);
    WAITERS.wake_all();
}

/// Waits until the device's event channel fires or system time reaches `deadline_ns`.
pub fn wait(deadline_ns: u64) {
    WAITERS.wait_until_or(deadline_ns, || EVENT.swap(false, Ordering::AcqRel));
}

/// Pages granted to the backend, released (revoked, then freed) together.
#[derive(Default)]
struct Granted(Vec<(u64, GrantRef)>);

impl Granted {
    /// A pool frame granted to `domid`.
    fn page(&mut self, domid: u16, readonly: bool) -> Result<(SharedPage, GrantRef), String> {
        let pfn = mm::alloc_frame().map_err(|e| format!("allocating a page: {e}"))?;
        let page = match SharedPage::pool_frame(pfn) {
            Ok(p) => p,
            Err(e) => {
                mm::free_frame(pfn);
                return Err(format!("mapping a page: {e}"));
            }
        };
        match gnttab::grant_access(domid, mm::pfn_to_mfn(pfn), readonly) {
            Ok(r) => {
                self.0.push((pfn, r));
                Ok((page, r))
            }
            Err(e) => {
                mm::free_frame(pfn);
                Err(format!("granting a page: {e}"))
            }
        }
    }

    /// Revokes every grant and frees the pages; those the backend still maps are kept out
    /// of use (see [`release_kept`]). Returns how many were kept.
    fn release(self) -> u64 {
        let mut kept = Vec::new();
        for (pfn, r) in self.0 {
            if gnttab::end_access(r).is_ok() {
                mm::free_frame(pfn);
            } else {
                kept.push((pfn, r));
            }
        }
        let n = kept.len() as u64;
        KEPT.lock().extend(kept);
        n
    }
}

/// Tries again to revoke the pages backends kept mapped after a close, freeing those let
/// go; returns how many are still kept.
pub fn release_kept() -> usize {
    let mut kept = KEPT.lock();
    kept.retain(|&(pfn, r)| {
        if gnttab::end_access(r).is_ok() {
            mm::free_frame(pfn);
            false
        } else {
            true
        }
    });
    kept.len()
}

/// A handshake under way, in steps that never block: a guest loops over them
/// ([`Netfront::connect`]); the stub takes one between two passes over its rings.
pub enum Handshake {
    /// Waiting for the backend's InitWait.
    Backend {
        front: String,
        backend: Backend,
        on_event: events::Handler,
        buffers: BufferPages,
        deadline: u64,
    },
    /// Our rings are published; waiting for the backend's Connected.
    Connected { dev: Box<Netfront>, deadline: u64 },
}

/// Where a [`Handshake`] step left it.
pub enum Progress {
    Waiting(Handshake),
    Done(Box<Netfront>),
    /// Why it failed, with the device to close (in steps: [`Netfront::close_step`]) if
    /// the rings were already published.
    Failed(String, Option<Box<Netfront>>),
}

impl Handshake {
    /// Starts connecting the vif whose frontend directory is `front` (`device/vif/<n>`);
    /// `on_event` will handle its event channel; `buffers` pages are granted for packets.
    pub fn start(
        store: &mut dyn Store,
        front: &str,
        on_event: events::Handler,
        buffers: BufferPages,
    ) -> Result<Handshake, String> {
        Ok(Handshake::Backend {
            front: String::from(front),
            backend: handshake::find_backend(store, front)?,
            on_event,
            buffers,
            deadline: time::now_ns() + STATE_WAIT_NS,
        })
    }

    /// Looks at the backend once and moves on if it is ready: at InitWait, grants the rings
    /// and buffers and publishes them; at Connected, the device is done. Fails after 10 s
    /// in one state; it never blocks, not even to close (the caller closes the device it
    /// gets back).
    pub fn step(self, store: &mut dyn Store) -> Progress {
        match self {
            Handshake::Backend {
                front,
                backend,
                on_event,
                buffers,
                deadline,
            } => {
                // Only InitWait: a backend still Connected may be on a previous connection's
                // rings.
                let waiting = handshake::read_state(store, &backend.path).and_then(|s| {
                    if s == state::INIT_WAIT {
                        Ok(true)
                    } else {
                        timed_out(deadline, "InitWait", s).map(|()| false)
                    }
                });
                match waiting {
                    Err(e) => return Progress::Failed(e, None),
                    Ok(false) => {
                        return Progress::Waiting(Handshake::Backend {
                            front,
                            backend,
                            on_event,
                            buffers,
                            deadline,
                        })
                    }
                    Ok(true) => {}
                }
                let mut granted = Granted::default();
                let (queues, port) = match Netfront::set_up(
                    &mut granted,
                    store,
                    &front,
                    &backend,
                    on_event,
                    buffers,
                ) {
                    Ok(q) => q,
                    Err(e) => {
                        granted.release();
                        return Progress::Failed(e, None);
                    }
                };
                let dev = Netfront {
                    front,
                    backend,
                    queues,
                    port,
                    granted,
                    broken: None,
                    closing: None,
                    filter: None,
                    filtered: 0,
                    tx_dropped: 0,
                    tx_moved_ns: time::now_ns(),
                    tx_progress_ns: time::now_ns(),
                    tx_completed: 0,
                    kicks: 0,
                    kept: 0,
                    frame: Vec::with_capacity(FRAME_MAX),
                };
                Progress::Waiting(Handshake::Connected {
                    dev: Box::new(dev),
                    deadline: time::now_ns() + STATE_WAIT_NS,
                })
            }
            Handshake::Connected { dev, deadline } => {
                let s = handshake::read_state(store, &dev.backend.path);
                if s == Ok(state::CONNECTED) {
                    let _ = events::send(dev.port);
                    return Progress::Done(dev);
                }
                match s.and_then(|s| timed_out(deadline, "Connected", s)) {
                    Err(e) => Progress::Failed(e, Some(dev)),
                    Ok(()) => Progress::Waiting(Handshake::Connected { dev, deadline }),
                }
            }
        }
    }
}

/// An error once `deadline` passed with the backend still in state `s`.
fn timed_out(deadline: u64, what: &str, s: u32) -> Result<(), String> {
    if time::now_ns() >= deadline {
        return Err(format!(
            "the backend did not reach {what} in 10 s (state {s})"
        ));
    }
    Ok(())
}

/// Where an orderly close stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Close {
    /// We wrote Closing; waiting for the backend to follow (until the deadline).
    Closing(u64),
    /// We wrote Closed; waiting for the backend's Closed (until the deadline).
    Closed(u64),
    /// Event channel closed, grants revoked.
    Done,
}

/// One connected vif.
pub struct Netfront {
    front: String,
    backend: Backend,
    queues: Queues<SharedPage>,
    port: Port,
    granted: Granted,
    /// Why the rings were given up (the backend broke their indices).
    broken: Option<&'static str>,
    closing: Option<Close>,
    /// Frames that fail it are dropped before the stack sees them.
    filter: Option<Filter>,
    filtered: u64,
    /// Frames smoltcp built but no tx buffer was free for.
    tx_dropped: u64,
    /// When the tx queue last moved (or was empty), and how often the backend was
    /// notified again because it had not.
    tx_moved_ns: u64,
    /// When the tx queue last moved or was empty (kicks leave it alone).
    tx_progress_ns: u64,
    tx_completed: u64,
    kicks: u64,
    /// Pages the backend still mapped when this device closed.
    kept: u64,
    frame: Vec<u8>,
}

impl Netfront {
    /// Connects the vif whose frontend directory is `front` (`device/vif/<n>`), blocking
    /// this thread until the backend is Connected (or 10 s in one state).
    pub fn connect(store: &mut dyn Store, front: &str) -> Result<Netfront, String> {
        let mut h = Handshake::start(store, front, on_event, GUEST_BUFFERS)?;
        loop {
            match h.step(store) {
                Progress::Done(dev) => return Ok(*dev),
                Progress::Waiting(next) => h = next,
                Progress::Failed(e, dev) => {
                    if let Some(mut dev) = dev {
                        dev.close(store);
                    }
                    return Err(e);
                }
            }
            sched::sleep_until(time::now_ns() + STATE_POLL_NS);
        }
    }

    fn set_up(
        granted: &mut Granted,
        store: &mut dyn Store,
        front: &str,
        backend: &Backend,
        on_event: events::Handler,
        buffers: BufferPages,
    ) -> Result<(Queues<SharedPage>, Port), String> {
        let domid = backend.domid;
        let (tx_page, tx_ref) = granted.page(domid, false)?;
        let (rx_page, rx_ref) = granted.page(domid, false)?;
        let mut bufs = |n: usize, readonly: bool| -> Result<Vec<Buffer<SharedPage>>, String> {
            (0..n)
                .map(|_| {
                    granted
                        .page(domid, readonly)
                        .map(|(page, gref)| Buffer { page, gref })
                })
                .collect()
        };
        let tx = bufs(buffers.tx, true)?;
        let rx = bufs(buffers.rx, false)?;
        let queues = Queues::new(tx_page, rx_page, tx, rx);
        let port = events::alloc_unbound(domid)
            .map_err(|e| format!("allocating an event channel: {e}"))?;
        events::set_handler(port, on_event);
        events::unmask(port);
        let rings = Rings {
            tx_ref,
            rx_ref,
            port,
        };
        if let Err(e) = handshake::publish(store, front, rings) {
            let _ = events::close(port);
            return Err(e);
        }
        Ok((queues, port))
    }

    /// Drops received frames `filter` refuses (counted in [`Netfront::filtered`]).
    pub fn set_filter(&mut self, filter: Filter) {
        self.filter = Some(filter);
    }

    /// Frames the filter dropped.
    pub fn filtered(&self) -> u64 {
        self.filtered
    }

    /// The MAC address the backend gave us.
    pub fn mac(&self) -> [u8; 6] {
        self.backend.mac
    }

    /// The frontend directory (`device/vif/<n>`).
    pub fn front(&self) -> &str {
        &self.front
    }

    /// The backend's directory.
    pub fn backend_path(&self) -> &str {
        &self.backend.path
    }

    /// The counters, with the frames dropped for want of a tx buffer in `tx_errors`.
    pub fn stats(&self) -> Stats {
        let mut s = self.queues.stats();
        s.tx_errors += self.tx_dropped;
        s
    }

    /// Why the rings were given up ([`CLOSED`] after [`Netfront::close`]), if they were.
    pub fn broken(&self) -> Option<&'static str> {
        self.broken
    }

    /// Takes tx completions, publishes new tx requests and rx buffers, and notifies the
    /// backend if it asked.
    pub fn service(&mut self) {
        if self.broken.is_some() {
            return;
        }
        loop {
            match self.queues.reap_tx() {
                Ok(true) => continue,
                Ok(false) => break,
                Err(_) => {
                    self.broken = Some("the backend's tx indices are out of range");
                    return;
                }
            }
        }
        let rx = self.queues.push_rx();
        let tx = self.queues.push_tx();
        let now = time::now_ns();
        let in_flight = self.queues.tx_in_flight();
        let completed = self.queues.stats().tx_completed;
        if in_flight == 0 || completed != self.tx_completed {
            self.tx_moved_ns = now;
            self.tx_progress_ns = now;
        }
        self.tx_completed = completed;
        // A notification the backend missed would leave our requests there for good: after
        // TX_KICK_NS without a completion, tell it again (an extra event costs nothing).
        let kick = in_flight > 0 && now.saturating_sub(self.tx_moved_ns) >= TX_KICK_NS;
        if kick {
            self.kicks += 1;
            self.tx_moved_ns = now;
            crate::log_debug!(
                "netfront: {}: tx requests unanswered for 500 ms, notified the backend again",
                self.front
            );
        }
        if rx || tx || kick {
            let _ = events::send(self.port);
        }
    }

    /// How long tx requests have waited without a single completion (0: none waiting).
    /// Seconds of it, kicks notwithstanding, mean the backend is not serving this
    /// connection's transmit side: close and connect again.
    pub fn tx_stalled_ns(&self) -> u64 {
        if self.queues.tx_in_flight() == 0 {
            return 0;
        }
        time::now_ns().saturating_sub(self.tx_progress_ns)
    }

    /// Pages the backend still mapped when the device closed (kept out of use, see
    /// [`release_kept`]).
    pub fn kept_pages(&self) -> u64 {
        self.kept
    }

    /// Whether a frame could be sent now (a tx buffer is free).
    pub fn can_send(&self) -> bool {
        self.broken.is_none() && self.queues.can_send()
    }

    /// Times the backend was notified again for unanswered tx requests.
    pub fn kicks(&self) -> u64 {
        self.kicks
    }

    /// Orderly close, blocking this thread: [`Netfront::close_step`] until done.
    pub fn close(&mut self, store: &mut dyn Store) {
        while !self.close_step(store) {
            sched::sleep_until(time::now_ns() + STATE_POLL_NS);
        }
    }

    /// One step of an orderly close, never blocking: Closing, then Closed once the backend
    /// follows, then (once it is Closed too) the event channel closed and every grant
    /// revoked; each wait is bounded by 10 s. The device carries no traffic from the first
    /// step. True when done.
    pub fn close_step(&mut self, store: &mut dyn Store) -> bool {
        let now = time::now_ns();
        let backend = handshake::read_state(store, &self.backend.path);
        let next = match self.closing {
            None => {
                self.broken = Some(CLOSED);
                self.set_state(store, state::CLOSING);
                Close::Closing(now + STATE_WAIT_NS)
            }
            Some(Close::Closing(deadline)) => match backend {
                Ok(state::CLOSING | state::CLOSED) => {
                    self.set_state(store, state::CLOSED);
                    Close::Closed(now + STATE_WAIT_NS)
                }
                _ if now >= deadline => {
                    self.warn_close("Closing", &backend);
                    self.set_state(store, state::CLOSED);
                    Close::Closed(now + STATE_WAIT_NS)
                }
                _ => Close::Closing(deadline),
            },
            Some(Close::Closed(deadline)) => match backend {
                Ok(state::CLOSED) => self.release(),
                _ if now >= deadline => {
                    self.warn_close("Closed", &backend);
                    self.release()
                }
                _ => Close::Closed(deadline),
            },
            Some(Close::Done) => Close::Done,
        };
        self.closing = Some(next);
        next == Close::Done
    }

    fn set_state(&self, store: &mut dyn Store, s: u32) {
        if let Err(e) = handshake::set_state(store, &self.front, s) {
            crate::log_warn!("netfront: {}: closing: {e}", self.front);
        }
    }

    fn warn_close(&self, what: &str, backend: &Result<u32, String>) {
        match backend {
            Ok(s) => crate::log_warn!(
                "netfront: {}: closing: the backend did not reach {what} in 10 s (state {s})",
                self.front
            ),
            Err(e) => crate::log_warn!("netfront: {}: closing: {e}", self.front),
        }
    }

    fn release(&mut self) -> Close {
        if let Err(e) = events::close(self.port) {
            crate::log_warn!("netfront: {}: closing the event channel: {e}", self.front);
        }
        let kept = core::mem::take(&mut self.granted).release();
        self.kept = kept;
        if kept > 0 {
            crate::log_warn!(
                "netfront: {}: the backend still maps {kept} page(s); they are kept out of use",
                self.front
            );
        }
        Close::Done
    }
}

/// A received frame.
pub struct RxToken(Vec<u8>);

impl phy::RxToken for RxToken {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(&self.0)
    }
}

/// Room for one frame to send.
pub struct TxToken<'a>(&'a mut Netfront);

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let dev = self.0;
        let mut frame = core::mem::take(&mut dev.frame);
        frame.clear();
        frame.resize(len, 0);
        let r = f(&mut frame);
        if !dev.queues.send(&frame) {
            dev.tx_dropped += 1;
        }
        dev.frame = frame;
        r
    }
}

impl phy::Device for Netfront {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn receive(
        &mut self,
        _now: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        if self.broken.is_some() {
            return None;
        }
        let mut frame = Vec::new();
        for _ in 0..FILTER_BUDGET {
            match self.queues.receive(&mut frame) {
                Ok(true) if self.filter.as_ref().is_some_and(|f| !f(&frame)) => {
                    self.filtered += 1;
                }
                Ok(true) => return Some((RxToken(frame), TxToken(self))),
                Ok(false) => return None,
                Err(_) => {
                    self.broken = Some("the backend's rx indices are out of range");
                    return None;
                }
            }
        }
        None
    }

    fn transmit(&mut self, _now: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        (self.broken.is_none() && self.queues.can_send()).then_some(TxToken(self))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = FRAME_MAX;
        caps
    }
}
