//! Unit tests of the engine with exact replies: a harness that speaks the wire protocol.

mod domains;
mod live_update;
mod memory;
mod metrics;
mod migrate;
mod protocol;
mod random;
mod ring;
mod security;
mod transactions;
mod xsa;

use crate::wire::{ty, Header, HEADER_LEN};
use crate::{Config, ConnId, Engine, Error, Platform};
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};

/// A ring handed to `Platform::adopt`: connection, domid, mfn, port.
pub type Adopted = (ConnId, u32, u64, u32);

/// Test platform: a settable clock, recorded introduce/release calls.
#[derive(Clone, Default)]
pub struct TestPlatform {
    pub now: Rc<Cell<u64>>,
    pub introduced: Rc<RefCell<Vec<(ConnId, u32)>>>,
    pub released: Rc<RefCell<Vec<(ConnId, u32)>>>,
    /// Rings adopted after a restore.
    pub adopted: Rc<RefCell<Vec<Adopted>>>,
    pub log: Rc<RefCell<Vec<String>>>,
    /// Appended to CONTROL `memreport`.
    pub mem: Rc<RefCell<String>>,
    /// What `Platform::memory_low` answers.
    pub low: Rc<Cell<bool>>,
    /// Live updates asked for: the image and the command line.
    pub updates: Rc<RefCell<Vec<Update>>>,
}

/// A live update handed to the host: image, command line, state stream.
pub type Update = (Vec<u8>, Option<String>);

impl Platform for TestPlatform {
    fn introduce(&mut self, conn: ConnId, domid: u32, _mfn: u64, _port: u32) -> Result<(), Error> {
        self.introduced.borrow_mut().push((conn, domid));
        Ok(())
    }
    fn reintroduce(&mut self, _conn: ConnId, _domid: u32, _port: u32) -> Result<(), Error> {
        Ok(())
    }
    fn adopt(&mut self, conn: ConnId, domid: u32, mfn: u64, port: u32) -> Result<(), Error> {
        self.adopted.borrow_mut().push((conn, domid, mfn, port));
        Ok(())
    }
    fn release(&mut self, conn: ConnId, domid: u32) {
        self.released.borrow_mut().push((conn, domid));
    }
    fn domain_exists(&mut self, domid: u32) -> bool {
        domid < 1000
    }
    fn now_ms(&self) -> u64 {
        self.now.get()
    }
    fn log(&mut self, line: &str) {
        self.log.borrow_mut().push(String::from(line));
    }
    fn memreport(&mut self, report: &mut String) {
        report.push_str(&self.mem.borrow());
    }
    fn memory_low(&self) -> bool {
        self.low.get()
    }
    fn live_update(&mut self, image: &[u8], cmdline: Option<&str>) -> Result<(), String> {
        self.updates
            .borrow_mut()
            .push((image.to_vec(), cmdline.map(String::from)));
        Ok(())
    }
}

/// One message taken from a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    pub ty: u32,
    pub req_id: u32,
    pub tx_id: u32,
    pub payload: Vec<u8>,
}

pub struct H {
    pub e: Engine<TestPlatform>,
    pub p: TestPlatform,
    pub rid: u32,
    /// Events seen while taking replies, kept per connection until [`H::events`].
    stash: alloc::collections::BTreeMap<ConnId, Vec<String>>,
}

/// Builds a request message.
pub fn msg(t: u32, req_id: u32, tx_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    crate::wire::encode_msg(&mut m, t, req_id, tx_id, payload);
    m
}

/// `a\0b\0...` from parts.
pub fn z(parts: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    for p in parts {
        v.extend_from_slice(p);
        v.push(0);
    }
    v
}

impl H {
    pub fn new() -> H {
        Self::with(Config::default())
    }

    pub fn with(cfg: Config) -> H {
        let p = TestPlatform::default();
        H {
            e: Engine::new(p.clone(), cfg),
            p,
            rid: 100,
            stash: Default::default(),
        }
    }

    /// A second harness whose engine is restored from this one's dump (same clock, same
    /// request ids): what a live update leaves.
    pub fn updated(&mut self) -> H {
        let p = TestPlatform::default();
        p.now.set(self.p.now.get());
        let stream = self.e.dump();
        H {
            e: Engine::restore(p.clone(), Config::default(), &stream).expect("restore"),
            p,
            rid: self.rid,
            stash: Default::default(),
        }
    }

    pub fn dom0(&mut self) -> ConnId {
        self.e.new_connection(0)
    }

    /// Introduces `domid` (from a fresh dom0 connection) and returns its connection.
    pub fn guest(&mut self, domid: u32) -> ConnId {
        let d0 = self.dom0();
        let id = alloc::format!("{domid}");
        assert_eq!(
            self.call(d0, ty::INTRODUCE, 0, &z(&[id.as_bytes(), b"1234", b"7"])),
            Ok(b"OK\0".to_vec())
        );
        self.e.close_connection(d0);
        self.e.domain_connection(domid).unwrap()
    }

    /// All messages queued for `c`.
    pub fn drain(&mut self, c: ConnId) -> Vec<Msg> {
        let mut raw = Vec::new();
        self.e.output_all(c, &mut raw);
        let mut out = Vec::new();
        let mut pos = 0;
        while let Some(h) = raw.get(pos..).and_then(Header::parse) {
            let end = pos + HEADER_LEN + h.len as usize;
            out.push(Msg {
                ty: h.ty,
                req_id: h.req_id,
                tx_id: h.tx_id,
                payload: raw[pos + HEADER_LEN..end].to_vec(),
            });
            pos = end;
        }
        assert_eq!(pos, raw.len(), "output ends on a message boundary");
        out
    }

    /// Sends one request; returns every message then queued for `c`.
    pub fn send(&mut self, c: ConnId, t: u32, tx: u32, payload: &[u8]) -> Vec<Msg> {
        self.rid += 1;
        self.e.feed(c, &msg(t, self.rid, tx, payload)).unwrap();
        self.drain(c)
    }

    /// Sends one request; returns its reply payload or error name. Watch events queued for
    /// `c` must be taken with [`H::events`] first or they fail the test.
    pub fn call(&mut self, c: ConnId, t: u32, tx: u32, payload: &[u8]) -> Result<Vec<u8>, String> {
        let rid = self.rid + 1;
        let msgs = self.send(c, t, tx, payload);
        let replies: Vec<&Msg> = msgs.iter().filter(|m| m.ty != ty::WATCH_EVENT).collect();
        assert_eq!(replies.len(), 1, "one reply expected: {msgs:?}");
        let r = replies[0];
        assert_eq!((r.req_id, r.tx_id), (rid, tx));
        self.stash(c, &msgs);
        if r.ty == ty::ERROR {
            let name = r.payload.strip_suffix(b"\0").expect("NUL-terminated error");
            return Err(String::from_utf8(name.to_vec()).unwrap());
        }
        assert_eq!(r.ty, t);
        Ok(r.payload.clone())
    }

    fn stash(&mut self, c: ConnId, msgs: &[Msg]) {
        for m in msgs.iter().filter(|m| m.ty == ty::WATCH_EVENT) {
            assert_eq!((m.req_id, m.tx_id), (0, 0));
            self.stash.entry(c).or_default().push(show(&m.payload));
        }
    }

    /// Watch events (as `path\0token\0` strings with `\0` shown as `|`) queued for `c`.
    pub fn events(&mut self, c: ConnId) -> Vec<String> {
        let mut v: Vec<String> = self.stash.remove(&c).unwrap_or_default();
        for m in self.drain(c) {
            assert_eq!(m.ty, ty::WATCH_EVENT, "only events expected: {m:?}");
            assert_eq!((m.req_id, m.tx_id), (0, 0));
            v.push(show(&m.payload));
        }
        v
    }

    pub fn read(&mut self, c: ConnId, p: &str) -> Result<Vec<u8>, String> {
        self.call(c, ty::READ, 0, &z(&[p.as_bytes()]))
    }

    pub fn write(&mut self, c: ConnId, p: &str, v: &[u8]) -> Result<Vec<u8>, String> {
        let mut pl = z(&[p.as_bytes()]);
        pl.extend_from_slice(v);
        self.call(c, ty::WRITE, 0, &pl)
    }

    /// Gives `domid` its home `/local/domain/<domid>`, owned by it (from dom0's `c`).
    pub fn home(&mut self, c: ConnId, domid: u32) {
        let p = alloc::format!("/local/domain/{domid}");
        assert_eq!(self.write(c, &p, b""), ok());
        let owner = alloc::format!("n{domid}");
        assert_eq!(self.args(c, ty::SET_PERMS, &[&p, &owner]), ok());
    }

    /// Starts a transaction on `c`; returns its id.
    pub fn tx_start(&mut self, c: ConnId) -> u32 {
        let r = self.call(c, ty::TRANSACTION_START, 0, b"\0").unwrap();
        let s = core::str::from_utf8(r.strip_suffix(b"\0").unwrap()).unwrap();
        s.parse().unwrap()
    }

    pub fn one(&mut self, c: ConnId, t: u32, arg: &str) -> Result<Vec<u8>, String> {
        self.call(c, t, 0, &z(&[arg.as_bytes()]))
    }

    pub fn args(&mut self, c: ConnId, t: u32, args: &[&str]) -> Result<Vec<u8>, String> {
        let parts: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        self.call(c, t, 0, &z(&parts))
    }
}

/// Shows a payload with NULs as `|`.
pub fn show(p: &[u8]) -> String {
    p.iter()
        .map(|&b| if b == 0 { '|' } else { char::from(b) })
        .collect()
}

pub fn ok() -> Result<Vec<u8>, String> {
    Ok(b"OK\0".to_vec())
}

pub fn err(name: &str) -> Result<Vec<u8>, String> {
    Err(String::from(name))
}
