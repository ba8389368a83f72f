//! What the engine needs from its host ([`Platform`]) and what it keeps per domain.

use crate::quota::Quotas;
use crate::wire::Error;
use crate::ConnId;
use alloc::string::String;

/// Ring feature bit: reconnection protocol.
pub const FEATURE_RECONNECTION: u32 = 1;
/// Ring feature bit: connection error indicator.
pub const FEATURE_ERROR: u32 = 2;
/// Ring feature bit: WATCH takes a depth argument; `@releaseDomain/<domid>`.
pub const FEATURE_WATCHDEPTH: u32 = 4;
/// Every feature this engine implements (advertised in `server_features`).
pub const FEATURES: u32 = FEATURE_RECONNECTION | FEATURE_ERROR | FEATURE_WATCHDEPTH;

/// The host side of domain management. The kernel implements it with grant mapping and
/// event channels; `ferrostored` with unix sockets.
pub trait Platform {
    /// A new domain is introduced (INTRODUCE): map its ring page (`mfn`, or grant ref 1),
    /// bind `port`, and from now on drive connection `conn` with that ring. Returning an
    /// error fails the INTRODUCE with it and the connection is discarded.
    fn introduce(&mut self, conn: ConnId, domid: u32, mfn: u64, port: u32) -> Result<(), Error>;
    /// INTRODUCE of a domain that is already introduced (e.g. after resume): rebind `port`
    /// for the existing connection `conn`. The engine has already reset the connection.
    fn reintroduce(&mut self, conn: ConnId, domid: u32, port: u32) -> Result<(), Error>;
    /// The domain's connection is gone (RELEASE or death): unbind and unmap.
    fn release(&mut self, conn: ConnId, domid: u32);
    /// After a live update ([`crate::Engine::restore`]): drive connection `conn` with the
    /// ring the previous instance was serving for `domid` (page `mfn`, or grant ref 1, and
    /// event channel `port`), without resetting it. An error fails the restore. Default:
    /// ENOSYS (a host that cannot adopt rings cannot restore them).
    fn adopt(&mut self, conn: ConnId, domid: u32, mfn: u64, port: u32) -> Result<(), Error> {
        let _ = (conn, domid, mfn, port);
        Err(Error::Nosys)
    }
    /// CONTROL `live-update -s`: get ready to replace this server by the checked kernel
    /// `image` (started with `cmdline`, or the current one). `Ok`: the host will switch; the
    /// engine keeps the image ([`crate::Engine::live_update_pending`]) and the request stays
    /// unanswered while it serves on, until the host switches with
    /// [`crate::Engine::live_update_state`] (the next server answers `OK`) or gives up with
    /// [`crate::Engine::live_update_fail`]. An `Err` text is the answer at once and
    /// nothing changes. Default: not available.
    fn live_update(&mut self, image: &[u8], cmdline: Option<&str>) -> Result<(), String> {
        let _ = (image, cmdline);
        Err(String::from("Live update is not available on this host."))
    }
    /// Whether a domain with this id exists now (permission entries naming a domain that
    /// does not exist are ignored).
    fn domain_exists(&mut self, domid: u32) -> bool;
    /// Monotonic time in milliseconds (write-rate limiting, watch-event timeout).
    fn now_ms(&self) -> u64;
    /// A line for the log (CONTROL `print`, `log on` tracing). May be ignored.
    fn log(&mut self, line: &str);
    /// CONTROL `memreport`: appends the host's own memory figures (e.g. the stub's heap, the
    /// process's RSS) to `report`, as whole lines ending in `\n`. Default: nothing.
    fn memreport(&mut self, report: &mut String) {
        let _ = report;
    }
    /// Whether the host itself is short of memory (e.g. the stub's heap is nearly full):
    /// while it is, unprivileged requests that would grow the store or queue more output
    /// are refused as over the global bound (ENOMEM). Default: never.
    fn memory_low(&self) -> bool {
        false
    }
}

/// Per-domain state.
#[derive(Clone, Debug)]
pub(crate) struct Domain {
    /// Store generation when this domain struct was created; permission entries naming the
    /// domain in nodes older than this are stale (domid reuse).
    pub gen: u64,
    /// The ring connection, if introduced.
    pub conn: Option<ConnId>,
    /// The ring's identity as INTRODUCE gave it: the page's mfn and the event channel port
    /// (0 while not introduced); a live update hands them to [`Platform::adopt`].
    pub mfn: u64,
    /// See `mfn`.
    pub port: u32,
    /// `@releaseDomain` already fired for its shutdown (cleared by RESUME).
    pub shutdown_reported: bool,
    /// Per-domain quotas (SET_QUOTA); start as the global ones.
    pub quotas: Quotas,
    /// The ring's `server_features` (SET_FEATURE).
    pub features: u32,
    /// SET_TARGET: this domain acts for the target.
    pub target: Option<u32>,
    /// Write-rate credit in thousandths of a write (see `wrl`).
    pub wrl_credit: i64,
    /// When the credit was last updated (ms).
    pub wrl_stamp: u64,
}

impl Domain {
    /// A domain not introduced yet, created at generation `gen` with `quotas`, its write
    /// credit stamped `wrl_stamp`.
    pub fn new(gen: u64, quotas: Quotas, wrl_stamp: u64) -> Domain {
        Domain {
            gen,
            conn: None,
            mfn: 0,
            port: 0,
            shutdown_reported: false,
            quotas,
            features: FEATURES,
            target: None,
            wrl_credit: 0,
            wrl_stamp,
        }
    }
}
