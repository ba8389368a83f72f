//! The xenstore wire format: the 16-byte message header, message type numbers, size limits
//! and the error names sent in ERROR replies.

use alloc::vec::Vec;

/// Size of `struct xsd_sockmsg`.
pub const HEADER_LEN: usize = 16;
/// XENSTORE_PAYLOAD_MAX: largest payload in either direction.
pub const PAYLOAD_MAX: usize = 4096;
/// XENSTORE_REL_PATH_MAX.
pub const REL_PATH_MAX: usize = 2048;
/// DOMID_SELF: IS_DOMAIN_INTRODUCED answers T for it.
pub const DOMID_SELF: u32 = 0x7FF0;

/// Message type numbers (`enum xsd_sockmsg_type`).
#[allow(missing_docs)]
pub mod ty {
    pub const CONTROL: u32 = 0;
    pub const DIRECTORY: u32 = 1;
    pub const READ: u32 = 2;
    pub const GET_PERMS: u32 = 3;
    pub const WATCH: u32 = 4;
    pub const UNWATCH: u32 = 5;
    pub const TRANSACTION_START: u32 = 6;
    pub const TRANSACTION_END: u32 = 7;
    pub const INTRODUCE: u32 = 8;
    pub const RELEASE: u32 = 9;
    pub const GET_DOMAIN_PATH: u32 = 10;
    pub const WRITE: u32 = 11;
    pub const MKDIR: u32 = 12;
    pub const RM: u32 = 13;
    pub const SET_PERMS: u32 = 14;
    pub const WATCH_EVENT: u32 = 15;
    pub const ERROR: u32 = 16;
    pub const IS_DOMAIN_INTRODUCED: u32 = 17;
    pub const RESUME: u32 = 18;
    pub const SET_TARGET: u32 = 19;
    pub const RESET_WATCHES: u32 = 21;
    pub const DIRECTORY_PART: u32 = 22;
    pub const GET_FEATURE: u32 = 23;
    pub const SET_FEATURE: u32 = 24;
    pub const GET_QUOTA: u32 = 25;
    pub const SET_QUOTA: u32 = 26;
}

/// The name of message type `t` (`"WRITE"`), as xenstore's headers spell it.
pub fn type_name(t: u32) -> Option<&'static str> {
    const NAMES: [&str; 27] = [
        "CONTROL",
        "DIRECTORY",
        "READ",
        "GET_PERMS",
        "WATCH",
        "UNWATCH",
        "TRANSACTION_START",
        "TRANSACTION_END",
        "INTRODUCE",
        "RELEASE",
        "GET_DOMAIN_PATH",
        "WRITE",
        "MKDIR",
        "RM",
        "SET_PERMS",
        "WATCH_EVENT",
        "ERROR",
        "IS_DOMAIN_INTRODUCED",
        "RESUME",
        "SET_TARGET",
        "RESTRICT",
        "RESET_WATCHES",
        "DIRECTORY_PART",
        "GET_FEATURE",
        "SET_FEATURE",
        "GET_QUOTA",
        "SET_QUOTA",
    ];
    NAMES.get(usize::try_from(t).ok()?).copied()
}

/// A message header. All fields are little-endian u32 on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Message type (see [`ty`]).
    pub ty: u32,
    /// Request id, echoed in the reply.
    pub req_id: u32,
    /// Transaction id (0 = none), echoed in the reply.
    pub tx_id: u32,
    /// Payload length.
    pub len: u32,
}

impl Header {
    /// Decodes the first 16 bytes of `b`; `None` if `b` is shorter.
    pub fn parse(b: &[u8]) -> Option<Header> {
        let f = |i: usize| -> Option<u32> {
            let s = b.get(i..i + 4)?;
            Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        };
        Some(Header {
            ty: f(0)?,
            req_id: f(4)?,
            tx_id: f(8)?,
            len: f(12)?,
        })
    }

    /// Appends the 16 encoded bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ty.to_le_bytes());
        out.extend_from_slice(&self.req_id.to_le_bytes());
        out.extend_from_slice(&self.tx_id.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
    }
}

/// Appends a whole message (header + payload) to `out`.
pub fn encode_msg(out: &mut Vec<u8>, ty: u32, req_id: u32, tx_id: u32, payload: &[u8]) {
    Header {
        ty,
        req_id,
        tx_id,
        len: payload.len() as u32,
    }
    .encode(out);
    out.extend_from_slice(payload);
}

/// The errors a request can fail with; sent as their names in an ERROR reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// EINVAL
    Inval,
    /// EACCES
    Acces,
    /// EEXIST
    Exist,
    /// EISDIR
    Isdir,
    /// ENOENT
    Noent,
    /// ENOMEM
    Nomem,
    /// ENOSPC
    Nospc,
    /// EIO
    Io,
    /// ENOTEMPTY
    Notempty,
    /// ENOSYS
    Nosys,
    /// EROFS
    Rofs,
    /// EBUSY
    Busy,
    /// EAGAIN
    Again,
    /// EISCONN
    Isconn,
    /// E2BIG
    TooBig,
    /// EPERM
    Perm,
}

impl Error {
    /// The name sent on the wire (without the terminating NUL).
    pub fn name(self) -> &'static str {
        match self {
            Error::Inval => "EINVAL",
            Error::Acces => "EACCES",
            Error::Exist => "EEXIST",
            Error::Isdir => "EISDIR",
            Error::Noent => "ENOENT",
            Error::Nomem => "ENOMEM",
            Error::Nospc => "ENOSPC",
            Error::Io => "EIO",
            Error::Notempty => "ENOTEMPTY",
            Error::Nosys => "ENOSYS",
            Error::Rofs => "EROFS",
            Error::Busy => "EBUSY",
            Error::Again => "EAGAIN",
            Error::Isconn => "EISCONN",
            Error::TooBig => "E2BIG",
            Error::Perm => "EPERM",
        }
    }
}

/// Splits a payload into its NUL-terminated strings. Bytes after the last NUL are ignored,
/// as C xenstored does.
pub fn split_strings(payload: &[u8]) -> impl Iterator<Item = &[u8]> {
    let end = payload.iter().rposition(|&b| b == 0).map_or(0, |p| p + 1);
    let body = payload.get(..end).unwrap_or(&[]);
    body.split(|&b| b == 0)
        .take(body.iter().filter(|&&b| b == 0).count())
}

/// The single argument of a one-argument request: the payload must be exactly one
/// NUL-terminated string.
pub fn one_arg(payload: &[u8]) -> Result<&[u8], Error> {
    match payload.split_last() {
        Some((0, s)) if !s.contains(&0) => Ok(s),
        _ => Err(Error::Inval),
    }
}

/// C `atoi`-like domid parsing (leading decimal digits, else 0), used where C xenstored
/// uses atoi. Values beyond u32 saturate.
pub fn atoi(s: &[u8]) -> u32 {
    let mut v: u32 = 0;
    for &b in s.iter().take_while(|b| b.is_ascii_digit()) {
        v = v.saturating_mul(10).saturating_add(u32::from(b - b'0'));
    }
    v
}

/// Strict unsigned decimal parse.
pub fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 10 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = s.iter().fold(0u64, |a, &b| a * 10 + u64::from(b - b'0'));
    u32::try_from(v).ok()
}
