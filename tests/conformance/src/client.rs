//! A small synchronous xenstore client over a unix socket.
//!
//! Requests are numbered by the client; replies are matched by `req_id`, and watch events that
//! arrive in between are queued for [`Client::next_event`]. Raw mode ([`Client::send_raw`])
//! writes arbitrary bytes for malformed-input tests.

use crate::wire::{self, Msg, MsgType, HEADER_LEN};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// A reply reduced to what callers compare: the payload, or the error name of an ERROR reply.
pub type XsResult = Result<Vec<u8>, String>;

/// A connection to a xenstore server.
pub struct Client {
    stream: UnixStream,
    next_req: u32,
    events: VecDeque<Msg>,
}

impl Client {
    /// Connects to the server socket; reads time out after 5 s so a silent server fails a
    /// test instead of hanging it.
    pub fn connect(path: impl AsRef<Path>) -> io::Result<Client> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        Ok(Client {
            stream,
            next_req: 1,
            events: VecDeque::new(),
        })
    }

    /// Writes bytes exactly as given.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends one request and returns the req_id used.
    pub fn send(&mut self, ty: u32, tx_id: u32, payload: &[u8]) -> io::Result<u32> {
        let req_id = self.next_req;
        self.next_req = self.next_req.wrapping_add(1);
        self.send_raw(&wire::encode(ty, req_id, tx_id, payload))?;
        Ok(req_id)
    }

    /// Reads the next message of any kind from the socket.
    pub fn recv_msg(&mut self) -> io::Result<Msg> {
        let mut h = [0u8; HEADER_LEN];
        self.stream.read_exact(&mut h)?;
        let (ty, req_id, tx_id, len) = wire::parse_header(&h);
        if len as usize > wire::PAYLOAD_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("server sent a {len}-byte payload (limit 4096)"),
            ));
        }
        let mut payload = vec![0u8; len as usize];
        self.stream.read_exact(&mut payload)?;
        Ok(Msg {
            ty,
            req_id,
            tx_id,
            payload,
        })
    }

    /// Reads until the reply to `req_id` arrives, queueing watch events met on the way.
    pub fn recv_reply(&mut self, req_id: u32) -> io::Result<Msg> {
        loop {
            let m = self.recv_msg()?;
            if m.is_event() {
                self.events.push_back(m);
            } else if m.req_id == req_id {
                return Ok(m);
            } else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "reply for req_id {} while waiting for {req_id}: {}",
                        m.req_id,
                        m.describe()
                    ),
                ));
            }
        }
    }

    /// Sends a request and waits for its reply message.
    pub fn request_msg(&mut self, ty: u32, tx_id: u32, payload: &[u8]) -> io::Result<Msg> {
        let id = self.send(ty, tx_id, payload)?;
        self.recv_reply(id)
    }

    /// Sends a request and reduces the reply to [`XsResult`]; I/O failures become `Err("IO:…")`.
    pub fn call(&mut self, ty: MsgType, tx_id: u32, payload: &[u8]) -> XsResult {
        match self.request_msg(ty.code(), tx_id, payload) {
            Ok(m) => reduce(&m, ty.code()),
            Err(e) => Err(format!("IO: {e}")),
        }
    }

    /// The next watch event (queued or from the socket); `None` on timeout or error.
    pub fn next_event(&mut self) -> Option<(String, String)> {
        if let Some(m) = self.events.pop_front() {
            return Some(event_parts(&m));
        }
        loop {
            match self.recv_msg() {
                Ok(m) if m.is_event() => return Some(event_parts(&m)),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    /// Watch events already received and queued (does not read the socket).
    pub fn take_queued_events(&mut self) -> Vec<(String, String)> {
        self.events.drain(..).map(|m| event_parts(&m)).collect()
    }

    /// True when the server has closed the connection (EOF within the timeout).
    pub fn is_closed(&mut self, wait: Duration) -> bool {
        let _ = self.stream.set_read_timeout(Some(wait));
        let mut b = [0u8; 1];
        let closed = match self.stream.read(&mut b) {
            Ok(n) => n == 0,
            Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
        };
        let _ = self.stream.set_read_timeout(Some(Duration::from_secs(5)));
        closed
    }

    /// Shuts the write side (the server sees EOF).
    pub fn shutdown_write(&self) -> io::Result<()> {
        self.stream.shutdown(std::net::Shutdown::Write)
    }

    // Convenience wrappers, one per common request.

    pub fn read(&mut self, tx: u32, path: &str) -> XsResult {
        self.call(MsgType::Read, tx, &wire::strings(&[path]))
    }

    pub fn write(&mut self, tx: u32, path: &str, value: &[u8]) -> XsResult {
        let mut p = wire::strings(&[path]);
        p.extend_from_slice(value);
        self.call(MsgType::Write, tx, &p)
    }

    pub fn mkdir(&mut self, tx: u32, path: &str) -> XsResult {
        self.call(MsgType::Mkdir, tx, &wire::strings(&[path]))
    }

    pub fn rm(&mut self, tx: u32, path: &str) -> XsResult {
        self.call(MsgType::Rm, tx, &wire::strings(&[path]))
    }

    pub fn directory(&mut self, tx: u32, path: &str) -> Result<Vec<String>, String> {
        self.call(MsgType::Directory, tx, &wire::strings(&[path]))
            .map(|p| wire::split(&p))
    }

    pub fn get_perms(&mut self, tx: u32, path: &str) -> Result<Vec<String>, String> {
        self.call(MsgType::GetPerms, tx, &wire::strings(&[path]))
            .map(|p| wire::split(&p))
    }

    pub fn set_perms(&mut self, tx: u32, path: &str, perms: &[&str]) -> XsResult {
        let mut parts = vec![path];
        parts.extend_from_slice(perms);
        self.call(MsgType::SetPerms, tx, &wire::strings(&parts))
    }

    pub fn watch(&mut self, path: &str, token: &str) -> XsResult {
        self.call(MsgType::Watch, 0, &wire::strings(&[path, token]))
    }

    pub fn unwatch(&mut self, path: &str, token: &str) -> XsResult {
        self.call(MsgType::Unwatch, 0, &wire::strings(&[path, token]))
    }

    /// Starts a transaction and returns its id.
    pub fn tx_start(&mut self) -> Result<u32, String> {
        let p = self.call(MsgType::TransactionStart, 0, b"\0")?;
        let s = wire::split(&p);
        s.first()
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| format!("bad transaction id reply {}", wire::show(&p)))
    }

    pub fn tx_end(&mut self, tx: u32, commit: bool) -> XsResult {
        self.call(
            MsgType::TransactionEnd,
            tx,
            if commit { b"T\0" } else { b"F\0" },
        )
    }

    pub fn control(&mut self, args: &[&str]) -> XsResult {
        self.call(MsgType::Control, 0, &wire::strings(args))
    }
}

/// Reduces a reply to payload or error name, checking it answers a request of type `ty`.
pub fn reduce(m: &Msg, ty: u32) -> XsResult {
    if m.ty == MsgType::Error.code() {
        Err(wire::split(&m.payload)
            .into_iter()
            .next()
            .unwrap_or_default())
    } else if m.ty != ty {
        Err(format!(
            "reply type {} for a {} request",
            wire::type_name(m.ty),
            wire::type_name(ty)
        ))
    } else {
        Ok(m.payload.clone())
    }
}

fn event_parts(m: &Msg) -> (String, String) {
    let mut s = wire::split(&m.payload).into_iter();
    (s.next().unwrap_or_default(), s.next().unwrap_or_default())
}
