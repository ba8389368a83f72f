//! CONTROL `log on` tracing: one log line per request, reply and watch event, as C
//! xenstored's trace file has, so a slow or failing toolstack step can be followed in time.

use crate::wire::{self, Header, HEADER_LEN};
use alloc::format;
use alloc::string::String;

/// Payload bytes a trace line shows; longer payloads end in `...`.
pub const SHOWN: usize = 120;

/// `"<dir> dom<domid> <TYPE> id <req> tx <tx> (<payload>)"` for the message `msg` (header and
/// payload), its NULs shown as spaces and other unprintable bytes as `.`.
pub fn line(dir: &str, domid: u32, msg: &[u8]) -> String {
    let Some(h) = Header::parse(msg) else {
        return format!("{dir} dom{domid} (short message of {} bytes)", msg.len());
    };
    let payload = msg.get(HEADER_LEN..).unwrap_or(&[]);
    request(dir, domid, h, payload)
}

/// The trace line of a message given as header and payload.
pub fn request(dir: &str, domid: u32, h: Header, payload: &[u8]) -> String {
    let mut s = match wire::type_name(h.ty) {
        Some(name) => format!("{dir} dom{domid} {name}"),
        None => format!("{dir} dom{domid} type {}", h.ty),
    };
    s.push_str(&format!(" id {} tx {} (", h.req_id, h.tx_id));
    for &b in payload.iter().take(SHOWN) {
        s.push(match b {
            0 => ' ',
            0x20..=0x7e => char::from(b),
            _ => '.',
        });
    }
    if payload.len() > SHOWN {
        s.push_str("...");
    }
    s.push(')');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{encode_msg, ty};
    use alloc::vec::Vec;

    #[test]
    fn a_request_shows_type_ids_and_payload() {
        let h = Header {
            ty: ty::WRITE,
            req_id: 7,
            tx_id: 3,
            len: 0,
        };
        assert_eq!(
            request("IN ", 5, h, b"/local/domain/5/x\0v\x01"),
            "IN  dom5 WRITE id 7 tx 3 (/local/domain/5/x v.)"
        );
    }

    #[test]
    fn a_long_payload_is_cut_and_an_unknown_type_numbered() {
        let mut msg = Vec::new();
        encode_msg(&mut msg, 99, 1, 0, &[b'a'; 200]);
        let l = line("OUT", 0, &msg);
        assert!(l.starts_with("OUT dom0 type 99 id 1 tx 0 (aaaa"), "{l}");
        assert!(l.ends_with("a...)"), "{l}");
        assert_eq!(l.matches('a').count(), SHOWN);
    }

    #[test]
    fn a_short_message_is_named_not_parsed() {
        assert_eq!(
            line("OUT", 2, &[1, 2]),
            "OUT dom2 (short message of 2 bytes)"
        );
    }
}
