//! The xenstore wire format: message types, the 16-byte header and payload helpers.

/// Largest payload either side may send (XENSTORE_PAYLOAD_MAX).
pub const PAYLOAD_MAX: usize = 4096;
/// Size of `struct xsd_sockmsg`.
pub const HEADER_LEN: usize = 16;

/// Message types of Xen 4.17 (`enum xsd_sockmsg_type`) plus the newer numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum MsgType {
    Control = 0,
    Directory = 1,
    Read = 2,
    GetPerms = 3,
    Watch = 4,
    Unwatch = 5,
    TransactionStart = 6,
    TransactionEnd = 7,
    Introduce = 8,
    Release = 9,
    GetDomainPath = 10,
    Write = 11,
    Mkdir = 12,
    Rm = 13,
    SetPerms = 14,
    WatchEvent = 15,
    Error = 16,
    IsDomainIntroduced = 17,
    Resume = 18,
    SetTarget = 19,
    Restrict = 20,
    ResetWatches = 21,
    DirectoryPart = 22,
    GetFeature = 23,
    SetFeature = 24,
    GetQuota = 25,
    SetQuota = 26,
}

impl MsgType {
    /// The wire number of this type.
    pub fn code(self) -> u32 {
        self as u32
    }
}

/// One message as it travels on the wire: header fields and the raw payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    pub ty: u32,
    pub req_id: u32,
    pub tx_id: u32,
    pub payload: Vec<u8>,
}

impl Msg {
    /// Serialises header and payload; the header's `len` is the payload length.
    pub fn encode(&self) -> Vec<u8> {
        encode(self.ty, self.req_id, self.tx_id, &self.payload)
    }

    /// True for a server-initiated watch event.
    pub fn is_event(&self) -> bool {
        self.ty == MsgType::WatchEvent.code()
    }

    /// A readable one-line rendering: type name and payload with NULs shown as `\0`.
    pub fn describe(&self) -> String {
        format!("{} {}", type_name(self.ty), show(&self.payload))
    }
}

/// Serialises a message with an explicit header.
pub fn encode(ty: u32, req_id: u32, tx_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = header(ty, req_id, tx_id, payload.len() as u32).to_vec();
    v.extend_from_slice(payload);
    v
}

/// A header whose `len` field may disagree with what follows (for malformed input).
pub fn header(ty: u32, req_id: u32, tx_id: u32, len: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&ty.to_le_bytes());
    h[4..8].copy_from_slice(&req_id.to_le_bytes());
    h[8..12].copy_from_slice(&tx_id.to_le_bytes());
    h[12..16].copy_from_slice(&len.to_le_bytes());
    h
}

/// Parses a header into (type, req_id, tx_id, len).
pub fn parse_header(h: &[u8; HEADER_LEN]) -> (u32, u32, u32, u32) {
    let word = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    (word(0), word(4), word(8), word(12))
}

/// Joins strings into a payload, each followed by NUL.
pub fn strings(parts: &[&str]) -> Vec<u8> {
    let mut v = Vec::new();
    for p in parts {
        v.extend_from_slice(p.as_bytes());
        v.push(0);
    }
    v
}

/// Splits a NUL-separated payload into its strings (a trailing NUL ends the last one).
pub fn split(payload: &[u8]) -> Vec<String> {
    let body = payload.strip_suffix(&[0]).unwrap_or(payload);
    if body.is_empty() {
        return Vec::new();
    }
    body.split(|b| *b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// Shows bytes as text with `\0` for NUL and `\xNN` for other non-printables; long payloads
/// are cut after 200 bytes.
pub fn show(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &b in bytes.iter().take(200) {
        match b {
            0 => s.push_str("\\0"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > 200 {
        s.push_str(&format!("...({} bytes)", bytes.len()));
    }
    s
}

/// The protocol name of a type number (the engine's table), `TYPE<n>` for an unknown one.
pub fn type_name(ty: u32) -> String {
    xenstore_engine::wire::type_name(ty).map_or_else(|| format!("TYPE{ty}"), String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let m = Msg {
            ty: 11,
            req_id: 7,
            tx_id: 3,
            payload: b"/a\0v".to_vec(),
        };
        let bytes = m.encode();
        assert_eq!(bytes.len(), 20);
        let mut h = [0u8; HEADER_LEN];
        h.copy_from_slice(&bytes[..16]);
        assert_eq!(parse_header(&h), (11, 7, 3, 4));
    }

    #[test]
    fn split_and_show() {
        assert_eq!(split(b"a\0bc\0"), vec!["a", "bc"]);
        assert_eq!(split(b"\0"), Vec::<String>::new());
        assert_eq!(split(b"x\0\0"), vec!["x", ""]);
        assert_eq!(show(b"OK\0\x01"), "OK\\0\\x01");
        assert_eq!(strings(&["a", "b"]), b"a\0b\0");
        assert_eq!(type_name(22), "DIRECTORY_PART");
        assert_eq!(type_name(99), "TYPE99");
    }
}
