//! The xenstore client's protocol state, without any waiting: requests queued for the ring
//! with their ids, the bytes moved through the shared page ([`Client::pump`]), replies
//! reassembled from any number of partial reads and matched to their request by `req_id`,
//! watch events (which may arrive between, before or after replies) queued per token, and
//! ERROR replies turned into [`XsError`]s. Pure logic over [`RingPage`], host-tested against
//! scripted servers and against the real engine.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use xenstore_engine::ring::{
    RingPage, ERROR as RING_ERROR, REQ, REQ_CONS, REQ_PROD, RING_SIZE, RSP, RSP_CONS, RSP_PROD,
};
use xenstore_engine::wire::{self, ty, Header, HEADER_LEN, PAYLOAD_MAX};
use xenstore_engine::Error;

/// Watch events kept for tokens nobody is reading yet; beyond it the oldest is dropped.
pub const MAX_QUEUED_EVENTS: usize = 256;

/// Every error name a server may send, in `xsd_errors[]` order.
const ERRORS: [Error; 16] = [
    Error::Inval,
    Error::Acces,
    Error::Exist,
    Error::Isdir,
    Error::Noent,
    Error::Nomem,
    Error::Nospc,
    Error::Io,
    Error::Notempty,
    Error::Nosys,
    Error::Rofs,
    Error::Busy,
    Error::Again,
    Error::Isconn,
    Error::TooBig,
    Error::Perm,
];

/// Why a xenstore operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XsError {
    /// The server answered with this error.
    Server(Error),
    /// The server answered ERROR with a name this client does not know.
    UnknownError(String),
    /// The request's payload is over 4096 bytes: never sent.
    TooLong,
    /// The connection is unusable: the server broke the protocol or the ring indices.
    Broken(&'static str),
    /// A reply that makes no sense for the request (e.g. a transaction id that is no number).
    BadReply,
    /// A watch wait reached its deadline.
    TimedOut,
    /// A watch wait was cancelled by another thread.
    Cancelled,
}

impl fmt::Display for XsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XsError::Server(e) => f.write_str(e.name()),
            XsError::UnknownError(n) => write!(f, "unknown error name {n:?}"),
            XsError::TooLong => f.write_str("request payload over 4096 bytes"),
            XsError::Broken(why) => write!(f, "connection broken: {why}"),
            XsError::BadReply => f.write_str("malformed reply"),
            XsError::TimedOut => f.write_str("timed out"),
            XsError::Cancelled => f.write_str("cancelled"),
        }
    }
}

/// The error an ERROR reply's payload names (`ENAME\0`).
pub fn error_from_payload(payload: &[u8]) -> XsError {
    let name = payload.strip_suffix(&[0]).unwrap_or(payload);
    match ERRORS.iter().find(|e| e.name().as_bytes() == name) {
        Some(&e) => XsError::Server(e),
        None => XsError::UnknownError(String::from_utf8_lossy(name).into_owned()),
    }
}

/// A watch event: the path that changed and the token given at registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// The changed path (relative if the watch was registered relative).
    pub path: String,
    /// The watch's token.
    pub token: String,
}

/// Counters of what the ring traffic looked like.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests submitted.
    pub requests: u64,
    /// Watch events received.
    pub events: u64,
    /// Watch events dropped because more than [`MAX_QUEUED_EVENTS`] were waiting.
    pub events_dropped: u64,
    /// Pumps that left request bytes behind because the request ring was full.
    pub ring_full: u64,
    /// Messages that arrived over more than one pump (the rest came with later reads).
    pub split_messages: u64,
    /// Replies whose `req_id` matched no request (dropped).
    pub stray_replies: u64,
    /// Most requests in flight at once.
    pub max_in_flight: usize,
}

/// What a [`Client::pump`] did to the page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pumped {
    /// Indices moved: notify the server.
    pub notify: bool,
    /// New replies or events arrived: waiters should look.
    pub progress: bool,
}

/// The client side of one xenstore connection.
#[derive(Debug, Default)]
pub struct Client {
    next_req_id: u32,
    /// Request bytes not yet in the request ring.
    out: VecDeque<u8>,
    /// Bytes of the response ring not yet forming a whole message.
    inbuf: Vec<u8>,
    /// Pumps that ended with the message in `inbuf` still incomplete.
    inbuf_reads: u32,
    /// Requests in flight, with their reply once it arrived: (type, payload).
    pending: BTreeMap<u32, Option<(u32, Vec<u8>)>>,
    events: VecDeque<WatchEvent>,
    broken: Option<&'static str>,
    stats: Stats,
}

impl Client {
    /// A client with nothing in flight.
    pub fn new() -> Client {
        Client::default()
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Why the connection is unusable, if it is.
    pub fn broken(&self) -> Option<&'static str> {
        self.broken
    }

    /// Queues a request of type `ty` in transaction `tx_id` whose payload is `parts`
    /// concatenated; returns its `req_id`. Call [`Client::pump`] to send it.
    pub fn submit(&mut self, ty: u32, tx_id: u32, parts: &[&[u8]]) -> Result<u32, XsError> {
        if let Some(why) = self.broken {
            return Err(XsError::Broken(why));
        }
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > PAYLOAD_MAX {
            return Err(XsError::TooLong);
        }
        let mut id = self.next_req_id;
        while self.pending.contains_key(&id) {
            id = id.wrapping_add(1);
        }
        self.next_req_id = id.wrapping_add(1);
        let mut msg = Vec::with_capacity(HEADER_LEN + len);
        Header {
            ty,
            req_id: id,
            tx_id,
            len: len as u32,
        }
        .encode(&mut msg);
        for p in parts {
            msg.extend_from_slice(p);
        }
        self.out.extend(msg);
        self.pending.insert(id, None);
        self.stats.requests += 1;
        self.stats.max_in_flight = self.stats.max_in_flight.max(self.pending.len());
        Ok(id)
    }

    /// The outcome of request `id` once its reply arrived (the request is then forgotten):
    /// the reply payload, or the error it carries. `None` while it is still in flight.
    pub fn take_reply(&mut self, id: u32) -> Option<Result<Vec<u8>, XsError>> {
        if let Some(why) = self.broken {
            self.pending.remove(&id);
            return Some(Err(XsError::Broken(why)));
        }
        match self.pending.get(&id) {
            Some(Some(_)) => {}
            Some(None) => return None,
            None => return Some(Err(XsError::BadReply)),
        }
        let (rty, payload) = self.pending.remove(&id).flatten()?;
        Some(if rty == ty::ERROR {
            Err(error_from_payload(&payload))
        } else {
            Ok(payload)
        })
    }

    /// Takes the oldest queued watch event whose token is `token`.
    pub fn take_event(&mut self, token: &str) -> Option<WatchEvent> {
        let i = self.events.iter().position(|e| e.token == token)?;
        self.events.remove(i)
    }

    /// Drops every queued event of `token` (after UNWATCH).
    pub fn forget_events(&mut self, token: &str) {
        self.events.retain(|e| e.token != token);
    }

    /// Moves bytes: queued request bytes into the request ring (as many as fit), everything
    /// the server produced out of the response ring, then dispatches each whole message.
    /// A non-zero `error` field (the server gave up on this ring) breaks the connection.
    pub fn pump<R: RingPage + ?Sized>(&mut self, page: &mut R) -> Pumped {
        let mut p = Pumped::default();
        if self.broken.is_some() {
            return p;
        }
        if page.load_u32(RING_ERROR) != 0 {
            self.fail("the server set the ring's error field", &mut p);
            return p;
        }
        self.write_requests(page, &mut p);
        self.read_responses(page, &mut p);
        p
    }

    fn fail(&mut self, why: &'static str, p: &mut Pumped) {
        self.broken = Some(why);
        self.out.clear();
        p.progress = true;
    }

    fn write_requests<R: RingPage + ?Sized>(&mut self, page: &mut R, p: &mut Pumped) {
        while !self.out.is_empty() {
            let cons = page.load_u32(REQ_CONS);
            let prod = page.load_u32(REQ_PROD);
            page.barrier();
            let used = prod.wrapping_sub(cons);
            if used > RING_SIZE {
                return self.fail("request ring indices corrupt", p);
            }
            let start = prod & (RING_SIZE - 1);
            let n = (RING_SIZE - used)
                .min(RING_SIZE - start)
                .min(self.out.len() as u32);
            if n == 0 {
                self.stats.ring_full += 1;
                return;
            }
            let chunk: Vec<u8> = self.out.drain(..n as usize).collect();
            page.write(REQ + start as usize, &chunk);
            page.barrier();
            page.store_u32(REQ_PROD, prod.wrapping_add(n));
            p.notify = true;
        }
    }

    fn read_responses<R: RingPage + ?Sized>(&mut self, page: &mut R, p: &mut Pumped) {
        let mut read_any = false;
        loop {
            let cons = page.load_u32(RSP_CONS);
            let prod = page.load_u32(RSP_PROD);
            page.barrier();
            let avail = prod.wrapping_sub(cons);
            if avail > RING_SIZE {
                return self.fail("response ring indices corrupt", p);
            }
            if avail == 0 {
                break;
            }
            let start = cons & (RING_SIZE - 1);
            let n = avail.min(RING_SIZE - start) as usize;
            let mut buf = [0u8; RING_SIZE as usize];
            let chunk = &mut buf[..n];
            page.read(RSP + start as usize, chunk);
            page.barrier();
            page.store_u32(RSP_CONS, cons.wrapping_add(n as u32));
            p.notify = true;
            self.inbuf.extend_from_slice(chunk);
            read_any = true;
            self.dispatch(p);
            if self.broken.is_some() {
                return;
            }
        }
        if read_any && !self.inbuf.is_empty() {
            // A message is still incomplete: the rest comes with later reads.
            self.inbuf_reads += 1;
        }
    }

    /// Takes every whole message off the front of `inbuf`.
    fn dispatch(&mut self, p: &mut Pumped) {
        loop {
            let Some(h) = Header::parse(&self.inbuf) else {
                return;
            };
            if h.len as usize > PAYLOAD_MAX {
                return self.fail("server sent a message over 4096 bytes", p);
            }
            let total = HEADER_LEN + h.len as usize;
            if self.inbuf.len() < total {
                return;
            }
            let payload = self.inbuf[HEADER_LEN..total].to_vec();
            self.inbuf.drain(..total);
            if self.inbuf_reads > 0 {
                self.stats.split_messages += 1;
            }
            self.inbuf_reads = 0;
            p.progress = true;
            if h.ty == ty::WATCH_EVENT {
                self.queue_event(&payload);
            } else {
                match self.pending.get_mut(&h.req_id) {
                    Some(slot @ None) => *slot = Some((h.ty, payload)),
                    _ => self.stats.stray_replies += 1,
                }
            }
        }
    }

    fn queue_event(&mut self, payload: &[u8]) {
        let mut parts = wire::split_strings(payload);
        let (Some(path), Some(token)) = (parts.next(), parts.next()) else {
            self.stats.stray_replies += 1;
            return;
        };
        if self.events.len() >= MAX_QUEUED_EVENTS {
            self.events.pop_front();
            self.stats.events_dropped += 1;
        }
        self.events.push_back(WatchEvent {
            path: String::from_utf8_lossy(path).into_owned(),
            token: String::from_utf8_lossy(token).into_owned(),
        });
        self.stats.events += 1;
    }
}

#[cfg(test)]
mod tests;
