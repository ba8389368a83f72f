//! The connection to this domain's own xenstore ring (kernel target): the page, the event
//! port, one [`Client`] behind an `IrqMutex`, and the blocking operations.

use super::client::{Client, Stats, WatchEvent, XsError};
use crate::events::{self, Port};
use crate::mm::SharedPage;
use crate::sched::WaitQueue;
use crate::start_info::StartInfo;
use crate::sync::IrqMutex;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use xenstore_engine::wire::ty;
use xenstore_engine::Error;

struct Conn {
    client: Client,
    page: SharedPage,
}

static CONN: IrqMutex<Option<Conn>> = IrqMutex::new(None);
static PORT: AtomicU32 = AtomicU32::new(0);
/// Every thread waiting for a reply or a watch event waits here.
static WAITERS: WaitQueue = WaitQueue::new();

/// Why [`init`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitError {
    /// start_info has no store page (a domain created without xenstore).
    NoStore,
    /// [`init`] ran before.
    AlreadyConnected,
}

impl core::fmt::Display for InitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            InitError::NoStore => "start_info has no xenstore ring (store_mfn 0)",
            InitError::AlreadyConnected => "xenbus::init called twice",
        })
    }
}

fn on_store_event(_port: Port) {
    WAITERS.wake_all();
}

/// Connects to the store ring of `si` and starts listening on its event channel.
pub fn init(si: &StartInfo) -> Result<(), InitError> {
    let page = SharedPage::store(si).ok_or(InitError::NoStore)?;
    let mut g = CONN.lock();
    if g.is_some() {
        return Err(InitError::AlreadyConnected);
    }
    *g = Some(Conn {
        client: Client::new(),
        page,
    });
    drop(g);
    PORT.store(si.store_evtchn, Ordering::Relaxed);
    events::set_handler(si.store_evtchn, on_store_event);
    events::unmask(si.store_evtchn);
    Ok(())
}

/// Moves ring bytes, runs `f` on the connection, and moves ring bytes again (to send what `f`
/// queued); notifies the server if indices moved and wakes the other waiters if replies or
/// events arrived. The lock is held only for this non-blocking work.
fn with_conn<R>(f: impl FnOnce(&mut Client) -> R) -> Result<R, XsError> {
    let (r, notify, progress) = {
        let mut g = CONN.lock();
        let Some(c) = g.as_mut() else {
            return Err(XsError::Broken("xenbus not initialised"));
        };
        let before = c.client.pump(&mut c.page);
        let r = f(&mut c.client);
        let after = c.client.pump(&mut c.page);
        (
            r,
            before.notify || after.notify,
            before.progress || after.progress,
        )
    };
    if notify {
        // A failed notification only delays the server until its next event.
        let _ = events::send(PORT.load(Ordering::Relaxed));
    }
    if progress {
        WAITERS.wake_all();
    }
    Ok(r)
}

/// Sends one request and waits for its reply (no deadline: the server always answers).
pub fn request(ty: u32, tx: u32, parts: &[&[u8]]) -> Result<Vec<u8>, XsError> {
    let id = with_conn(|c| c.submit(ty, tx, parts))??;
    let mut reply = None;
    WAITERS.wait_until(|| {
        reply = with_conn(|c| c.take_reply(id)).unwrap_or_else(|e| Some(Err(e)));
        reply.is_some()
    });
    reply.unwrap_or(Err(XsError::BadReply))
}

/// A transaction id (0: none).
pub type Tx = u32;

/// READ: the value of `path`.
pub fn read(tx: Tx, path: &str) -> Result<Vec<u8>, XsError> {
    request(ty::READ, tx, &[path.as_bytes(), b"\0"])
}

/// WRITE `value` to `path`.
pub fn write(tx: Tx, path: &str, value: &[u8]) -> Result<(), XsError> {
    request(ty::WRITE, tx, &[path.as_bytes(), b"\0", value]).map(drop)
}

/// MKDIR `path`.
pub fn mkdir(tx: Tx, path: &str) -> Result<(), XsError> {
    request(ty::MKDIR, tx, &[path.as_bytes(), b"\0"]).map(drop)
}

/// RM `path` (and its subtree).
pub fn rm(tx: Tx, path: &str) -> Result<(), XsError> {
    request(ty::RM, tx, &[path.as_bytes(), b"\0"]).map(drop)
}

/// DIRECTORY: the children's names of `path`.
pub fn directory(tx: Tx, path: &str) -> Result<Vec<String>, XsError> {
    let r = request(ty::DIRECTORY, tx, &[path.as_bytes(), b"\0"])?;
    Ok(xenstore_engine::wire::split_strings(&r)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect())
}

/// TRANSACTION_START: a new transaction id.
pub fn transaction_start() -> Result<Tx, XsError> {
    let r = request(ty::TRANSACTION_START, 0, &[b"\0"])?;
    let digits = r.strip_suffix(&[0]).unwrap_or(&r);
    xenstore_engine::wire::parse_u32(digits)
        .filter(|&id| id != 0)
        .ok_or(XsError::BadReply)
}

/// TRANSACTION_END: commit (`true`) or abort. A commit may fail with EAGAIN.
pub fn transaction_end(tx: Tx, commit: bool) -> Result<(), XsError> {
    let arg: &[u8] = if commit { b"T\0" } else { b"F\0" };
    request(ty::TRANSACTION_END, tx, &[arg]).map(drop)
}

/// Runs `body` in a transaction and commits it, starting over (at most `attempts` times)
/// when the commit or the body fails with EAGAIN. `body` gets the transaction id and the
/// attempt number (1-based). Returns its result and the attempt that committed.
pub fn transaction<T>(
    attempts: u32,
    mut body: impl FnMut(Tx, u32) -> Result<T, XsError>,
) -> Result<(T, u32), XsError> {
    let again = XsError::Server(Error::Again);
    for attempt in 1..=attempts {
        let tx = transaction_start()?;
        match body(tx, attempt) {
            Ok(v) => match transaction_end(tx, true) {
                Ok(()) => return Ok((v, attempt)),
                Err(e) if e == again => continue,
                Err(e) => return Err(e),
            },
            Err(e) => {
                // The body's error is what matters; the abort cannot fail with anything else.
                let _ = transaction_end(tx, false);
                if e != again {
                    return Err(e);
                }
            }
        }
    }
    Err(again)
}

/// WATCH `path` with `token` (the server fires one event at once).
pub fn watch(path: &str, token: &str) -> Result<(), XsError> {
    request(
        ty::WATCH,
        0,
        &[path.as_bytes(), b"\0", token.as_bytes(), b"\0"],
    )
    .map(drop)
}

/// UNWATCH `path`/`token` and drop its queued events.
pub fn unwatch(path: &str, token: &str) -> Result<(), XsError> {
    request(
        ty::UNWATCH,
        0,
        &[path.as_bytes(), b"\0", token.as_bytes(), b"\0"],
    )?;
    with_conn(|c| c.forget_events(token))
}

/// Lets another thread end a [`read_watch`] early. Reusable after [`Cancel::reset`].
pub struct Cancel(AtomicBool);

impl Default for Cancel {
    fn default() -> Self {
        Self::new()
    }
}

impl Cancel {
    /// Not cancelled (usable in a `static`).
    pub const fn new() -> Cancel {
        Cancel(AtomicBool::new(false))
    }

    /// Makes every [`read_watch`] using this token return `Cancelled` now. Takes no lock.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
        WAITERS.wake_all();
    }

    /// True once [`Cancel::cancel`] ran (until [`Cancel::reset`]).
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// Arms the token again.
    pub fn reset(&self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Waits for the next event of the watch registered with `token`, until system time
/// `deadline_ns` (`TimedOut`) or until `cancel` fires (`Cancelled`). No lock is held while
/// waiting.
pub fn read_watch(token: &str, deadline_ns: u64, cancel: &Cancel) -> Result<WatchEvent, XsError> {
    let mut got = None;
    let met = WAITERS.wait_until_or(deadline_ns, || {
        if cancel.is_cancelled() {
            return true;
        }
        got = match with_conn(|c| c.take_event(token).ok_or(c.broken())) {
            Ok(Ok(ev)) => Some(Ok(ev)),
            Ok(Err(Some(why))) | Err(XsError::Broken(why)) => Some(Err(XsError::Broken(why))),
            Ok(Err(None)) | Err(_) => None,
        };
        got.is_some()
    });
    match got {
        Some(r) => r,
        None if met => Err(XsError::Cancelled),
        None => Err(XsError::TimedOut),
    }
}

/// The client's counters.
pub fn stats() -> Stats {
    with_conn(|c| c.stats()).unwrap_or_default()
}
