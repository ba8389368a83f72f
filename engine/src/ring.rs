//! The ring transport: `struct xenstore_domain_interface` (one 4 KiB page shared with a
//! guest) over the [`RingPage`] abstraction, so it is tested on the host with a byte array.
//!
//! Layout: `req[1024]`@0 (guest → us), `rsp[1024]`@1024 (us → guest), `req_cons`@2048,
//! `req_prod`@2052, `rsp_cons`@2056, `rsp_prod`@2060, `server_features`@2064,
//! `connection`@2068, `error`@2072. Indices are free-running u32; slot = index & 1023.

use crate::engine::{ConnError, Engine};
use crate::{ConnId, Platform};

/// Size of each ring.
pub const RING_SIZE: u32 = 1024;
/// Offset of the request ring.
pub const REQ: usize = 0;
/// Offset of the response ring.
pub const RSP: usize = 1024;
/// `req_cons` offset.
pub const REQ_CONS: usize = 2048;
/// `req_prod` offset.
pub const REQ_PROD: usize = 2052;
/// `rsp_cons` offset.
pub const RSP_CONS: usize = 2056;
/// `rsp_prod` offset.
pub const RSP_PROD: usize = 2060;
/// `server_features` offset.
pub const SERVER_FEATURES: usize = 2064;
/// `connection` offset.
pub const CONNECTION: usize = 2068;
/// `error` offset.
pub const ERROR: usize = 2072;
/// `connection`: connected.
pub const CONNECTED: u32 = 0;
/// `connection`: the guest asks for a reconnection.
pub const RECONNECT: u32 = 1;
/// `error`: bad ring indices.
pub const ERROR_RINGIDX: u32 = 2;
/// `error`: a message longer than 4096 bytes.
pub const ERROR_PROTO: u32 = 3;

/// Access to the shared page. The kernel implements it with volatile accesses; [`barrier`]
/// must order index accesses against data accesses. `[u8]` (at least 4096 bytes) implements
/// it for host tests; out-of-range accesses read 0 and write nothing.
///
/// [`barrier`]: RingPage::barrier
pub trait RingPage {
    /// Loads a little-endian u32 at `off`.
    fn load_u32(&self, off: usize) -> u32;
    /// Stores a little-endian u32 at `off`.
    fn store_u32(&mut self, off: usize, v: u32);
    /// Copies `buf.len()` bytes from `off`.
    fn read(&self, off: usize, buf: &mut [u8]);
    /// Copies `data` to `off`.
    fn write(&mut self, off: usize, data: &[u8]);
    /// Full memory barrier.
    fn barrier(&self);
}

impl RingPage for [u8] {
    fn load_u32(&self, off: usize) -> u32 {
        self.get(off..off + 4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn store_u32(&mut self, off: usize, v: u32) {
        if let Some(b) = self.get_mut(off..off + 4) {
            b.copy_from_slice(&v.to_le_bytes());
        }
    }
    fn read(&self, off: usize, buf: &mut [u8]) {
        if let Some(s) = self.get(off..off + buf.len()) {
            buf.copy_from_slice(s);
        }
    }
    fn write(&mut self, off: usize, data: &[u8]) {
        if let Some(d) = self.get_mut(off..off + data.len()) {
            d.copy_from_slice(data);
        }
    }
    fn barrier(&self) {}
}

/// What [`service`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Indices or state changed: send an event-channel notification to the guest.
    pub notify: bool,
    /// The connection is in error (value written to the `error` field); it stays silent
    /// until the guest reconnects.
    pub error: Option<u32>,
}

/// Prepares the page at INTRODUCE: indices to 0, no error, `connection` = CONNECTED and
/// `server_features` = `features`. Notify the guest afterwards.
pub fn reset<R: RingPage + ?Sized>(page: &mut R, features: u32) {
    for off in [REQ_CONS, REQ_PROD, RSP_CONS, RSP_PROD, ERROR] {
        page.store_u32(off, 0);
    }
    page.store_u32(SERVER_FEATURES, features);
    page.barrier();
    page.store_u32(CONNECTION, CONNECTED);
}

fn indices_sane(prod: u32, cons: u32) -> bool {
    prod.wrapping_sub(cons) <= RING_SIZE
}

/// Moves what it can between the page and connection `conn` of `engine`: a reconnection
/// request is honoured first; then queued output goes into the response ring (as much as
/// fits) and requests are read while the engine accepts input. Call it on every event from
/// the guest and whenever the engine reports output for `conn`.
pub fn service<P: Platform, R: RingPage + ?Sized>(
    engine: &mut Engine<P>,
    conn: ConnId,
    page: &mut R,
) -> Outcome {
    let mut out = Outcome {
        notify: false,
        error: None,
    };
    if page.load_u32(CONNECTION) == RECONNECT {
        engine.reset_connection(conn);
        let features = engine
            .connection_domid(conn)
            .map_or(crate::FEATURES, |d| engine.domain_features(d));
        reset(page, features);
        out.notify = true;
        return out;
    }
    let err = page.load_u32(ERROR);
    if err != 0 {
        out.error = Some(err);
        return out;
    }
    loop {
        let wrote = write_out(engine, conn, page, &mut out);
        if out.error.is_some() {
            return out;
        }
        let read = read_in(engine, conn, page, &mut out);
        if out.error.is_some() || (!wrote && !read) {
            return out;
        }
    }
}

fn fail<R: RingPage + ?Sized>(page: &mut R, out: &mut Outcome, code: u32) {
    page.store_u32(ERROR, code);
    out.error = Some(code);
    out.notify = true;
}

/// Loads one direction's (prod, cons) pair, then a barrier; indices more than a ring apart
/// fail the ring with RINGIDX and give `None`.
fn indices<R: RingPage + ?Sized>(
    page: &mut R,
    prod_off: usize,
    cons_off: usize,
    out: &mut Outcome,
) -> Option<(u32, u32)> {
    let cons = page.load_u32(cons_off);
    let prod = page.load_u32(prod_off);
    page.barrier();
    if indices_sane(prod, cons) {
        Some((prod, cons))
    } else {
        fail(page, out, ERROR_RINGIDX);
        None
    }
}

fn write_out<P: Platform, R: RingPage + ?Sized>(
    engine: &mut Engine<P>,
    conn: ConnId,
    page: &mut R,
    out: &mut Outcome,
) -> bool {
    let mut any = false;
    while engine.has_output(conn) {
        let Some((prod, cons)) = indices(page, RSP_PROD, RSP_CONS, out) else {
            return any;
        };
        let free = RING_SIZE - prod.wrapping_sub(cons);
        let start = prod & (RING_SIZE - 1);
        let contiguous = free.min(RING_SIZE - start) as usize;
        if contiguous == 0 {
            break;
        }
        let mut buf = [0u8; RING_SIZE as usize];
        let n = engine.output_into(conn, &mut buf[..contiguous]);
        if n == 0 {
            break;
        }
        page.write(RSP + start as usize, &buf[..n]);
        page.barrier();
        page.store_u32(RSP_PROD, prod.wrapping_add(n as u32));
        out.notify = true;
        any = true;
    }
    any
}

fn read_in<P: Platform, R: RingPage + ?Sized>(
    engine: &mut Engine<P>,
    conn: ConnId,
    page: &mut R,
    out: &mut Outcome,
) -> bool {
    let mut any = false;
    while engine.wants_input(conn) {
        let Some((prod, cons)) = indices(page, REQ_PROD, REQ_CONS, out) else {
            return any;
        };
        let avail = prod.wrapping_sub(cons);
        if avail == 0 {
            break;
        }
        let start = cons & (RING_SIZE - 1);
        let n = avail.min(RING_SIZE - start) as usize;
        let mut buf = [0u8; RING_SIZE as usize];
        page.read(REQ + start as usize, &mut buf[..n]);
        page.barrier();
        page.store_u32(REQ_CONS, cons.wrapping_add(n as u32));
        out.notify = true;
        any = true;
        if let Err(e) = engine.feed(conn, &buf[..n]) {
            if e == ConnError::Proto {
                fail(page, out, ERROR_PROTO);
            }
            return any;
        }
    }
    any
}
