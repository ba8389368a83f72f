//! The stub's own requests to its own engine, spoken as its own domain on a connection
//! with no ring: each request is fed to the engine and its reply taken at once (watch
//! events queued on the connection meanwhile are dropped: a caller that watches reads its
//! events before it calls). Used by the log device's and the metrics vif's handshakes.

#[cfg(feature = "net")]
use crate::netfront::handshake::Store;
use alloc::string::String;
use alloc::vec::Vec;
use xenstore_engine::wire::{self, ty, Header, HEADER_LEN};
use xenstore_engine::{ConnId, Engine, Platform};

/// One local connection.
pub struct Local {
    conn: ConnId,
    req_id: u32,
}

impl Local {
    /// A new connection to `engine` as domain `domid`.
    pub fn new<P: Platform>(engine: &mut Engine<P>, domid: u16) -> Local {
        Local {
            conn: engine.new_connection(u32::from(domid)),
            req_id: 0,
        }
    }

    /// The engine's id of the connection.
    pub fn conn(&self) -> ConnId {
        self.conn
    }

    /// Sends one request; its reply's payload, or the error name it got.
    pub fn call<P: Platform>(
        &mut self,
        engine: &mut Engine<P>,
        ty: u32,
        parts: &[&[u8]],
    ) -> Result<Vec<u8>, String> {
        self.req_id = self.req_id.wrapping_add(1);
        let mut msg = Vec::new();
        wire::encode_msg(&mut msg, ty, self.req_id, 0, &parts.concat());
        engine
            .feed(self.conn, &msg)
            .map_err(|_| String::from("the engine refused the request"))?;
        let mut out = Vec::new();
        engine.output_all(self.conn, &mut out);
        let mut rest = out.as_slice();
        while let Some(h) = Header::parse(rest) {
            let end = HEADER_LEN + h.len as usize;
            let payload = rest.get(HEADER_LEN..end).unwrap_or_default();
            if h.ty != ty::WATCH_EVENT && h.req_id == self.req_id {
                return if h.ty == ty::ERROR {
                    Err(
                        String::from_utf8_lossy(payload.strip_suffix(b"\0").unwrap_or(payload))
                            .into_owned(),
                    )
                } else {
                    Ok(payload.to_vec())
                };
            }
            rest = rest.get(end..).unwrap_or_default();
        }
        Err(String::from("no reply from the engine"))
    }
}

/// A [`Store`] over a local connection, for a frontend's handshake.
#[cfg(feature = "net")]
pub struct EngineStore<'a, P: Platform> {
    pub engine: &'a mut Engine<P>,
    pub local: &'a mut Local,
}

#[cfg(feature = "net")]
impl<P: Platform> Store for EngineStore<'_, P> {
    fn read(&mut self, path: &str) -> Result<Vec<u8>, String> {
        self.local
            .call(self.engine, ty::READ, &[path.as_bytes(), b"\0"])
    }
    fn write(&mut self, path: &str, value: &str) -> Result<(), String> {
        self.local
            .call(
                self.engine,
                ty::WRITE,
                &[path.as_bytes(), b"\0", value.as_bytes()],
            )
            .map(drop)
    }
}
