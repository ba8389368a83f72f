//! Test guest for the xenstore stub (`cmdline = "ring-abuse=MODE"`): misbehaves on its own
//! xenstore ring and reports on the console what the server did, one marker per line
//! (tests/boot/stub-ring-abuse.sh asserts them):
//! * `index`: request indices more than a ring apart → the server sets `error` = 2
//!   (RINGIDX) and answers nothing more, even to a valid request written afterwards; after
//!   the guest asks to reconnect (`connection` = 1) the ring is reset and served again.
//! * `header`: a header announcing 5000 payload bytes → `error` = 3 (PROTO), then the same.
//! * `flood`: first writes READ requests flat out while reading replies (for
//!   [`FLOOD_NS`]), then stops reading replies and keeps writing: the server must stop
//!   taking requests (outstanding-request quota and full response ring).

use crate::mm::SharedPage;
use crate::start_info::StartInfo;
use crate::{cmdline::RingAbuse, events, println, sched, time};
use xenstore_engine::ring::{
    RingPage, CONNECTED, CONNECTION, ERROR, ERROR_PROTO, ERROR_RINGIDX, RECONNECT, REQ, REQ_CONS,
    REQ_PROD, RING_SIZE, RSP_CONS, RSP_PROD,
};

/// How long the flood's reading phase lasts.
pub const FLOOD_NS: u64 = 5_000_000_000;
/// How long the server must take nothing before the flood counts it as stopped.
const STOPPED_NS: u64 = 1_000_000_000;
/// How long the ring must stay idle before the flood's second phase starts.
const QUIET_NS: u64 = 200_000_000;
/// How long to wait for the server's reaction.
const WAIT_NS: u64 = 5_000_000_000;
/// Polling interval.
const POLL_NS: u64 = 10_000_000;
/// XS_READ.
const XS_READ: u32 = 2;

struct Store {
    page: SharedPage,
    port: u32,
}

impl Store {
    fn notify(&self) {
        if let Err(e) = events::send(self.port) {
            println!("ring-abuse: notify failed: {e}");
        }
    }

    /// Appends `bytes` to the request ring if they fit; returns whether they did.
    fn put(&mut self, bytes: &[u8]) -> bool {
        let cons = self.page.load_u32(REQ_CONS);
        let prod = self.page.load_u32(REQ_PROD);
        if RING_SIZE - prod.wrapping_sub(cons) < bytes.len() as u32 {
            return false;
        }
        for (i, b) in bytes.iter().enumerate() {
            let slot = prod.wrapping_add(i as u32) & (RING_SIZE - 1);
            self.page
                .write(REQ + slot as usize, core::slice::from_ref(b));
        }
        self.page.barrier();
        self.page
            .store_u32(REQ_PROD, prod.wrapping_add(bytes.len() as u32));
        true
    }

    /// Drops every reply the server wrote; returns how many bytes.
    fn discard_replies(&mut self) -> u32 {
        let prod = self.page.load_u32(RSP_PROD);
        let cons = self.page.load_u32(RSP_CONS);
        self.page.barrier();
        self.page.store_u32(RSP_CONS, prod);
        prod.wrapping_sub(cons)
    }

    /// Waits until `cond` holds or `WAIT_NS` passes; returns whether it held.
    fn wait_for(&self, mut cond: impl FnMut(&SharedPage) -> bool) -> bool {
        let deadline = time::now_ns() + WAIT_NS;
        while time::now_ns() < deadline {
            if cond(&self.page) {
                return true;
            }
            sched::sleep_until(time::now_ns() + POLL_NS);
        }
        cond(&self.page)
    }
}

fn header(ty: u32, req_id: u32, len: u32) -> [u8; 16] {
    let mut h = [0u8; 16];
    for (i, v) in [ty, req_id, 0, len].iter().enumerate() {
        h[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
    }
    h
}

/// Bytes of one flood request.
const REQUEST_LEN: u32 = 22;

/// READ of the guest-relative path "domid".
fn read_request(req_id: u32) -> [u8; REQUEST_LEN as usize] {
    let mut m = [0u8; REQUEST_LEN as usize];
    m[..16].copy_from_slice(&header(XS_READ, req_id, 6));
    m[16..].copy_from_slice(b"domid\0");
    m
}

/// Runs the mode; returns when the caller should power off.
pub fn run(si: &StartInfo, mode: RingAbuse) {
    let Some(page) = SharedPage::store(si) else {
        println!("ring-abuse: FAILED: no xenstore ring (store_mfn 0)");
        return;
    };
    let mut s = Store {
        page,
        port: si.store_evtchn,
    };
    println!("ring-abuse: mode {mode:?}, store port {}", s.port);
    match mode {
        RingAbuse::Index => {
            let cons = s.page.load_u32(REQ_CONS);
            s.page
                .store_u32(REQ_PROD, cons.wrapping_add(RING_SIZE + 100));
            s.notify();
            expect_error(&mut s, ERROR_RINGIDX);
        }
        RingAbuse::Header => {
            s.put(&header(XS_READ, 1, 5000));
            s.notify();
            expect_error(&mut s, ERROR_PROTO);
        }
        RingAbuse::Flood => flood(&mut s),
    }
    println!("ring-abuse: done");
}

fn expect_error(s: &mut Store, code: u32) {
    if s.wait_for(|p| p.load_u32(ERROR) == code) {
        println!("ring-abuse: server set error {code}");
    } else {
        println!(
            "ring-abuse: FAILED: error field is {}, expected {code}",
            s.page.load_u32(ERROR)
        );
        return;
    }
    // A valid request on a closed connection gets no answer.
    let cons = s.page.load_u32(REQ_CONS);
    s.page.store_u32(REQ_PROD, cons);
    let rsp = s.page.load_u32(RSP_PROD);
    s.put(&read_request(2));
    s.notify();
    if s.wait_for(|p| p.load_u32(RSP_PROD) != rsp) {
        println!("ring-abuse: FAILED: the server answered after the error");
        return;
    }
    println!("ring-abuse: no answer after the error");
    // The reconnection protocol: the server empties the ring, clears the error, sets
    // `connection` back to CONNECTED, and serves again.
    s.page.store_u32(CONNECTION, RECONNECT);
    s.notify();
    if !s.wait_for(|p| p.load_u32(CONNECTION) == CONNECTED) {
        println!("ring-abuse: FAILED: no reconnection");
        return;
    }
    let fresh = [REQ_CONS, REQ_PROD, RSP_CONS, RSP_PROD, ERROR]
        .iter()
        .all(|&off| s.page.load_u32(off) == 0);
    println!("ring-abuse: reconnected, ring reset: {fresh}");
    s.put(&read_request(3));
    s.notify();
    if s.wait_for(|p| p.load_u32(RSP_PROD) != 0) {
        println!("ring-abuse: answered after reconnecting");
    } else {
        println!("ring-abuse: FAILED: no answer after reconnecting");
    }
}

fn flood(s: &mut Store) {
    let start = time::now_ns();
    let mut sent = 0u32;
    let mut replies = 0u64;
    while time::now_ns() - start < FLOOD_NS {
        replies += u64::from(s.discard_replies());
        if s.put(&read_request(sent)) {
            sent = sent.wrapping_add(1);
        } else {
            s.notify();
            sched::yield_now();
        }
        s.notify();
    }
    println!("ring-abuse: flood: {sent} requests, {replies} reply bytes in 5 s");
    // Let the server answer everything sent so far, so no reply is left unread.
    let deadline = time::now_ns() + WAIT_NS;
    let mut quiet_since = time::now_ns();
    while time::now_ns() < deadline && time::now_ns() - quiet_since < QUIET_NS {
        let pending = s.page.load_u32(REQ_PROD) != s.page.load_u32(REQ_CONS);
        if s.discard_replies() > 0 {
            // Like any client: tell the server there is room for replies it holds back.
            s.notify();
            quiet_since = time::now_ns();
        } else if pending {
            quiet_since = time::now_ns();
        }
        sched::sleep_until(time::now_ns() + POLL_NS);
    }
    // Stop reading replies; keep writing until the server takes nothing for STOPPED_NS.
    let mut last_cons = s.page.load_u32(REQ_CONS);
    let mut last_change = time::now_ns();
    let first_cons = last_cons;
    let limit = time::now_ns() + 4 * WAIT_NS;
    while time::now_ns() < limit {
        if s.put(&read_request(sent)) {
            sent = sent.wrapping_add(1);
            s.notify();
        }
        let cons = s.page.load_u32(REQ_CONS);
        if cons != last_cons {
            last_cons = cons;
            last_change = time::now_ns();
        } else if time::now_ns() - last_change >= STOPPED_NS {
            let taken = cons.wrapping_sub(first_cons) / REQUEST_LEN;
            println!("ring-abuse: back-pressure: the server stopped after {taken} unread replies");
            return;
        }
        sched::sleep_until(time::now_ns() + POLL_NS);
    }
    println!("ring-abuse: FAILED: the server kept taking requests whose replies are unread");
}
