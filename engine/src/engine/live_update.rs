//! CONTROL `live-update`, as `xenstore-control live-update` speaks it to a stub domain: `-b
//! <size>` opens a session and reserves the image, `-d <len>` + bytes appends a chunk, `-c
//! <cmdline>` sets the new kernel's command line, `-s [-t <s>] [-F] [-v <version>]` checks the
//! image (a complete x86_64 ELF with Xen's notes) and asks the host to switch to it with the
//! engine's state stream, `-a` drops the session. Answers and error texts are C xenstored's
//! where it has them. Open transactions travel in the stream, so `-s` never waits for them
//! (no `BUSY`). Only privileged connections reach CONTROL. An `-s` the host accepts is
//! answered `OK` by the next server: the answer travels in the state stream.

use super::*;

/// A session: who opened it, the image so far and its announced size.
pub(crate) struct Session {
    conn: ConnId,
    image: Vec<u8>,
    size: usize,
    cmdline: Option<String>,
}

/// An accepted `live-update -s`: the image and command line the host switches to, and the
/// request to answer once the switch is made.
pub(crate) struct Switch {
    image: Vec<u8>,
    cmdline: Option<String>,
    conn: ConnId,
    req_id: u32,
    tx_id: u32,
}

impl Switch {
    /// The answer to the `-s` request: `text` and a NUL.
    fn answer(&self, text: &str) -> Vec<u8> {
        let mut payload = Vec::from(text.as_bytes());
        payload.push(0);
        let mut msg = Vec::new();
        wire::encode_msg(&mut msg, ty::CONTROL, self.req_id, self.tx_id, &payload);
        msg
    }
}

/// The highest migration-stream version written.
const STREAM_VERSION: u32 = 2;

impl<P: Platform> Engine<P> {
    /// CONTROL `live-update ...`; `payload` is the whole CONTROL payload (a `-d` chunk may
    /// hold NUL bytes, so it is not split).
    pub(super) fn live_update(
        &mut self,
        conn: ConnId,
        h: Header,
        payload: &[u8],
        reply: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let mut parts = payload.splitn(4, |&b| b == 0);
        let _command = parts.next();
        let opt = parts.next().ok_or(Error::Inval)?;
        let answer = match opt {
            b"-b" => {
                let size = parts.next().filter(|s| !s.is_empty()).ok_or(Error::Inval)?;
                if parts.next().is_some_and(|rest| !rest.is_empty()) {
                    return Err(Error::Inval);
                }
                self.lu_begin(conn, size)
            }
            b"-d" => {
                let len = parts.next().ok_or(Error::Inval)?;
                let data = parts.next().ok_or(Error::Inval)?;
                self.lu_data(conn, len, data)
            }
            _ => {
                let args: Vec<&[u8]> = wire::split_strings(payload).skip(1).collect();
                match args.as_slice() {
                    [b"-a"] => self.lu_abort(),
                    [b"-c", cmdline] => self.lu_cmdline(conn, cmdline),
                    [b"-s", rest @ ..] => self.lu_start(conn, h, rest)?,
                    _ => return Err(Error::Inval),
                }
            }
        };
        reply.extend_from_slice(answer.as_bytes());
        reply.push(0);
        Ok(())
    }

    fn lu_begin(&mut self, conn: ConnId, size: &[u8]) -> String {
        if self.lu.is_some() || self.lu_switch.is_some() {
            return "live-update session already active.".into();
        }
        let Some(size) = core::str::from_utf8(size)
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        else {
            return "Invalid kernel size.".into();
        };
        if size == 0 || size > self.cfg.live_update_max {
            return format!(
                "Kernel of {size} bytes refused: at most {} bytes.",
                self.cfg.live_update_max
            );
        }
        let mut image = Vec::new();
        if image.try_reserve_exact(size).is_err() {
            return "Allocation failure.".into();
        }
        self.lu = Some(Session {
            conn,
            image,
            size,
            cmdline: None,
        });
        "OK".into()
    }

    /// The session, if `conn` owns it.
    fn lu_session(&mut self, conn: ConnId) -> Option<&mut Session> {
        self.lu.as_mut().filter(|s| s.conn == conn)
    }

    fn lu_data(&mut self, conn: ConnId, len: &[u8], data: &[u8]) -> String {
        let Some(s) = self.lu_session(conn) else {
            return "Not in live-update session.".into();
        };
        // xenstore-control ends each chunk with a NUL it does not count.
        let len = wire::parse_u32(len).map(|l| l as usize);
        let data = match data.split_last() {
            Some((0, chunk)) if len == Some(chunk.len()) => chunk,
            _ => data,
        };
        if len != Some(data.len()) {
            return format!("Chunk length does not match its {} data bytes.", data.len());
        }
        if s.image.len() + data.len() > s.size {
            return "Too much kernel data.".into();
        }
        s.image.extend_from_slice(data);
        "OK".into()
    }

    fn lu_cmdline(&mut self, conn: ConnId, cmdline: &[u8]) -> String {
        let Some(s) = self.lu_session(conn) else {
            return "Not in live-update session.".into();
        };
        s.cmdline = Some(String::from_utf8_lossy(cmdline).into_owned());
        "OK".into()
    }

    fn lu_abort(&mut self) -> String {
        match self.lu.take() {
            Some(_) => "OK".into(),
            None => "No live-update session active.".into(),
        }
    }

    fn lu_start(&mut self, conn: ConnId, h: Header, opts: &[&[u8]]) -> Result<String, Error> {
        let mut version = STREAM_VERSION;
        let mut it = opts.iter();
        while let Some(o) = it.next() {
            match *o {
                b"-F" => {}
                b"-t" | b"-v" => {
                    let v = it
                        .next()
                        .and_then(|v| wire::parse_u32(v))
                        .ok_or(Error::Inval)?;
                    if *o == b"-v" {
                        version = v;
                    }
                }
                _ => return Err(Error::Inval),
            }
        }
        let Some(s) = self.lu_session(conn) else {
            return Ok("Not in live-update session.".into());
        };
        if version == 0 || version > STREAM_VERSION {
            return Ok("Migration stream version not supported.".into());
        }
        if s.image.len() != s.size {
            return Ok("Kernel not complete.".into());
        }
        if let Err(why) = check_image(&s.image) {
            return Ok(format!("Not a Xen PV x86_64 kernel: {why}."));
        }
        let Some(session) = self.lu.take() else {
            return Ok("Not in live-update session.".into());
        };
        match self
            .platform
            .live_update(&session.image, session.cmdline.as_deref())
        {
            Ok(()) => {
                self.lu_switch = Some(Switch {
                    image: session.image,
                    cmdline: session.cmdline,
                    conn,
                    req_id: h.req_id,
                    tx_id: h.tx_id,
                });
                self.reply_deferred = true;
                Ok(String::new())
            }
            Err(why) => Ok(why),
        }
    }

    /// While the host is switching for an accepted `live-update -s`: the image and the
    /// command line asked for.
    pub fn live_update_pending(&self) -> Option<(&[u8], Option<&str>)> {
        self.lu_switch
            .as_ref()
            .map(|s| (s.image.as_slice(), s.cmdline.as_deref()))
    }

    /// The state stream for the next server: this engine's, with the `OK` answer to the
    /// accepted `-s` request queued on its connection (for the next server to send). This
    /// engine does not change: if the switch then fails, [`Engine::live_update_fail`].
    pub fn live_update_state(&mut self) -> Vec<u8> {
        let conn = self.lu_switch.as_ref().map(|s| (s.conn, s.answer("OK")));
        let Some((conn, msg)) = conn else {
            return self.dump();
        };
        let n = msg.len();
        let Some(Some(c)) = self.conns.get_mut(conn) else {
            return self.dump();
        };
        c.out.push_back(connection::OutMsg {
            data: Rc::from(msg),
            at: 0,
            event: false,
        });
        c.out_bytes += n;
        self.conn_bytes += n;
        let state = self.dump();
        if let Some(Some(c)) = self.conns.get_mut(conn) {
            c.out.pop_back();
            c.out_bytes -= n;
        }
        self.conn_bytes -= n;
        state
    }

    /// The host could not switch: `why` answers the `-s` request and this engine goes on.
    pub fn live_update_fail(&mut self, why: &str) {
        if let Some(s) = self.lu_switch.take() {
            self.push(s.conn, s.answer(why), false);
        }
    }

    /// Connections without a domain ring (a host's own clients of a previous instance, which
    /// a restored server may close).
    pub fn ringless_connections(&self) -> Vec<ConnId> {
        self.conns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let c = c.as_ref()?;
                let ring = self
                    .domains
                    .get(&c.domid)
                    .is_some_and(|d| d.conn == Some(i));
                (!ring).then_some(i)
            })
            .collect()
    }
}

/// Checks that `image` is a 64-bit little-endian x86_64 executable ELF with at least one
/// note named "Xen" in a PT_NOTE segment (what Xen's PV domain builder looks for). Every
/// offset is checked against the image.
pub fn check_image(image: &[u8]) -> Result<(), &'static str> {
    let u16_at = |o: usize| -> Option<u16> {
        let b = image.get(o..o.checked_add(2)?)?;
        Some(u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |o: usize| -> Option<u32> {
        let b = image.get(o..o.checked_add(4)?)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| -> Option<usize> {
        let b = image.get(o..o.checked_add(8)?)?;
        let v = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        usize::try_from(v).ok()
    };
    if image.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err("no ELF header");
    }
    if image.get(4..6) != Some([2u8, 1].as_slice()) {
        return Err("not a 64-bit little-endian ELF");
    }
    if u16_at(16) != Some(2) {
        return Err("not an executable");
    }
    if u16_at(18) != Some(62) {
        return Err("not an x86_64 image");
    }
    let phoff = u64_at(32).ok_or("truncated ELF header")?;
    let phentsize = usize::from(u16_at(54).ok_or("truncated ELF header")?);
    let phnum = usize::from(u16_at(56).ok_or("truncated ELF header")?);
    if phentsize < 56 {
        return Err("bad program header size");
    }
    for i in 0..phnum {
        let ph = phentsize
            .checked_mul(i)
            .and_then(|o| o.checked_add(phoff))
            .ok_or("program headers out of range")?;
        if u32_at(ph).ok_or("program headers out of range")? != 4 {
            continue;
        }
        let off = u64_at(ph + 8).ok_or("program headers out of range")?;
        let size = u64_at(ph + 32).ok_or("program headers out of range")?;
        let notes = off
            .checked_add(size)
            .and_then(|end| image.get(off..end))
            .ok_or("a note segment is out of range")?;
        if has_xen_note(notes) {
            return Ok(());
        }
    }
    Err("no Xen ELF note")
}

/// True if the note area holds a note named "Xen".
fn has_xen_note(mut notes: &[u8]) -> bool {
    let pad = |n: usize| n.div_ceil(4) * 4;
    while notes.len() >= 12 {
        let w = |o: usize| {
            notes
                .get(o..o + 4)
                .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        };
        let (namesz, descsz) = (w(0), w(4));
        if namesz == 4 && notes.get(12..16) == Some(b"Xen\0".as_slice()) {
            return true;
        }
        let Some(next) = pad(namesz)
            .checked_add(pad(descsz))
            .and_then(|n| n.checked_add(12))
        else {
            return false;
        };
        match notes.get(next..) {
            Some(rest) => notes = rest,
            None => return false,
        }
    }
    false
}
