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
use crate::time;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use smoltcp::phy::{self, DeviceCapabilities, Medium};

/// Tx buffers (pages) in flight at most.
pub const TX_BUFFERS: usize = 64;
/// Rx buffers kept posted to the backend.
pub const RX_BUFFERS: usize = 128;
/// How long the backend may take to reach a state we wait for.
const STATE_WAIT_NS: u64 = 10_000_000_000;
/// How often a state wait looks again.
const STATE_POLL_NS: u64 = 10_000_000;

/// [`Netfront::broken`] of a closed device.
pub const CLOSED: &str = "closed";

static EVENT: AtomicBool = AtomicBool::new(false);
static WAITERS: WaitQueue = WaitQueue::new();
/// Pages a backend kept mapped after close: never freed.
static LEAKED: AtomicU64 = AtomicU64::new(0);

fn on_event(_port: Port) {
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
    /// of use. Returns how many were kept.
    fn release(self) -> u64 {
        let mut kept = 0;
        for (pfn, r) in self.0 {
            if gnttab::end_access(r).is_ok() {
                mm::free_frame(pfn);
            } else {
                kept += 1;
            }
        }
        LEAKED.fetch_add(kept, Ordering::Relaxed);
        kept
    }
}

/// Pages a backend kept mapped after close, since boot.
pub fn leaked_pages() -> u64 {
    LEAKED.load(Ordering::Relaxed)
}

/// Polls `dir/state` until `done(state)` or the deadline.
fn wait_state(
    store: &mut dyn Store,
    dir: &str,
    done: impl Fn(u32) -> bool,
    what: &str,
) -> Result<u32, String> {
    let deadline = time::now_ns() + STATE_WAIT_NS;
    loop {
        let s = handshake::read_state(store, dir)?;
        if done(s) {
            return Ok(s);
        }
        if time::now_ns() >= deadline {
            return Err(format!(
                "the backend did not reach {what} in 10 s (state {s})"
            ));
        }
        sched::sleep_until(time::now_ns() + STATE_POLL_NS);
    }
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
    /// Frames smoltcp built but no tx buffer was free for.
    tx_dropped: u64,
    frame: Vec<u8>,
}

impl Netfront {
    /// Connects the vif whose frontend directory is `front` (`device/vif/<n>`): waits for
    /// the backend's InitWait, grants the rings and buffers, publishes them, waits for
    /// Connected.
    pub fn connect(store: &mut dyn Store, front: &str) -> Result<Netfront, String> {
        let backend = handshake::find_backend(store, front)?;
        wait_state(
            store,
            &backend.path,
            |s| s == state::INIT_WAIT || s == state::CONNECTED,
            "InitWait",
        )?;
        let mut granted = Granted::default();
        let set_up = Self::set_up(&mut granted, store, front, &backend);
        let (queues, port) = match set_up {
            Ok(q) => q,
            Err(e) => {
                granted.release();
                return Err(e);
            }
        };
        let dev = Netfront {
            front: String::from(front),
            backend,
            queues,
            port,
            granted,
            broken: None,
            tx_dropped: 0,
            frame: Vec::with_capacity(FRAME_MAX),
        };
        if let Err(e) = wait_state(
            store,
            &dev.backend.path,
            |s| s == state::CONNECTED,
            "Connected",
        ) {
            let mut dev = dev;
            dev.close(store);
            return Err(e);
        }
        let _ = events::send(dev.port);
        Ok(dev)
    }

    fn set_up(
        granted: &mut Granted,
        store: &mut dyn Store,
        front: &str,
        backend: &Backend,
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
        let tx = bufs(TX_BUFFERS, true)?;
        let rx = bufs(RX_BUFFERS, false)?;
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
        if rx || tx {
            let _ = events::send(self.port);
        }
    }

    /// Orderly close: Closing, then Closed once the backend follows (bounded), then the
    /// event channel closed and every grant revoked. The device carries no traffic after.
    pub fn close(&mut self, store: &mut dyn Store) {
        if self.broken == Some(CLOSED) {
            return;
        }
        self.broken = Some(CLOSED);
        let be = self.backend.path.clone();
        let closing = |s| s == state::CLOSING || s == state::CLOSED;
        let steps = handshake::set_state(store, &self.front, state::CLOSING)
            .and_then(|()| wait_state(store, &be, closing, "Closing"))
            .and_then(|_| handshake::set_state(store, &self.front, state::CLOSED))
            .and_then(|()| wait_state(store, &be, |s| s == state::CLOSED, "Closed"));
        if let Err(e) = steps {
            crate::log_warn!("netfront: {}: closing: {e}", self.front);
        }
        if let Err(e) = events::close(self.port) {
            crate::log_warn!("netfront: {}: closing the event channel: {e}", self.front);
        }
        let kept = core::mem::take(&mut self.granted).release();
        if kept > 0 {
            crate::log_warn!(
                "netfront: {}: the backend still maps {kept} page(s); they are kept out of use",
                self.front
            );
        }
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
        match self.queues.receive(&mut frame) {
            Ok(true) => Some((RxToken(frame), TxToken(self))),
            Ok(false) => None,
            Err(_) => {
                self.broken = Some("the backend's rx indices are out of range");
                None
            }
        }
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
