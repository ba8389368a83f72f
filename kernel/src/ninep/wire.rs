//! The 9P2000.u messages the log writer uses: requests encoded, replies decoded with every
//! count and length checked against the message (the backend is another domain).
//!
//! A message is `size[4] type[1] tag[2]` then its fields, little-endian; strings are
//! `len[2]` + bytes. Only the operations xen-9pfsd serves are here: version, attach, walk,
//! open, create, read, write, clunk and stat.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Bytes of the message header (`size`, `type`, `tag`).
pub const HEADER_LEN: usize = 7;
/// The tag of Tversion.
pub const NOTAG: u16 = 0xFFFF;
/// "No fid" (Tattach's `afid`: no authentication).
pub const NOFID: u32 = 0xFFFF_FFFF;
/// The protocol version asked for (the one xen-9pfsd speaks).
pub const VERSION: &str = "9P2000.u";
/// Bytes of a Twrite before its data, and of an Rread before its data.
pub const WRITE_OVERHEAD: usize = HEADER_LEN + 4 + 8 + 4;
/// Bytes of an Rread before its data.
pub const READ_OVERHEAD: usize = HEADER_LEN + 4;

/// Message types (a reply is its request's type + 1, or [`op::RERROR`]).
pub mod op {
    pub const TVERSION: u8 = 100;
    pub const TATTACH: u8 = 104;
    pub const RERROR: u8 = 107;
    pub const TWALK: u8 = 110;
    pub const TOPEN: u8 = 112;
    pub const TCREATE: u8 = 114;
    pub const TREAD: u8 = 116;
    pub const TWRITE: u8 = 118;
    pub const TCLUNK: u8 = 120;
    pub const TSTAT: u8 = 124;
}

/// Open modes (Topen, Tcreate).
pub mod mode {
    pub const READ: u8 = 0;
    pub const WRITE: u8 = 1;
    pub const TRUNC: u8 = 0x10;
}

/// A request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    Version {
        msize: u32,
    },
    Attach {
        fid: u32,
    },
    Walk {
        fid: u32,
        newfid: u32,
        names: &'a [&'a str],
    },
    Open {
        fid: u32,
        mode: u8,
    },
    Create {
        fid: u32,
        name: &'a str,
        perm: u32,
        mode: u8,
    },
    Read {
        fid: u32,
        offset: u64,
        count: u32,
    },
    Write {
        fid: u32,
        offset: u64,
        data: &'a [u8],
    },
    Clunk {
        fid: u32,
    },
    Stat {
        fid: u32,
    },
}

impl Request<'_> {
    /// The message type.
    pub fn op(&self) -> u8 {
        match self {
            Request::Version { .. } => op::TVERSION,
            Request::Attach { .. } => op::TATTACH,
            Request::Walk { .. } => op::TWALK,
            Request::Open { .. } => op::TOPEN,
            Request::Create { .. } => op::TCREATE,
            Request::Read { .. } => op::TREAD,
            Request::Write { .. } => op::TWRITE,
            Request::Clunk { .. } => op::TCLUNK,
            Request::Stat { .. } => op::TSTAT,
        }
    }

    /// Appends the whole message with `tag` to `out`.
    pub fn encode(&self, tag: u16, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        out.push(self.op());
        out.extend_from_slice(&tag.to_le_bytes());
        let u32le = |out: &mut Vec<u8>, v: u32| out.extend_from_slice(&v.to_le_bytes());
        match *self {
            Request::Version { msize } => {
                u32le(out, msize);
                string(out, VERSION);
            }
            Request::Attach { fid } => {
                u32le(out, fid);
                u32le(out, NOFID);
                string(out, "");
                string(out, "");
                u32le(out, NOFID);
            }
            Request::Walk { fid, newfid, names } => {
                u32le(out, fid);
                u32le(out, newfid);
                out.extend_from_slice(&(names.len() as u16).to_le_bytes());
                for n in names {
                    string(out, n);
                }
            }
            Request::Open { fid, mode } => {
                u32le(out, fid);
                out.push(mode);
            }
            Request::Create {
                fid,
                name,
                perm,
                mode,
            } => {
                u32le(out, fid);
                string(out, name);
                u32le(out, perm);
                out.push(mode);
                string(out, "");
            }
            Request::Read { fid, offset, count } => {
                u32le(out, fid);
                out.extend_from_slice(&offset.to_le_bytes());
                u32le(out, count);
            }
            Request::Write { fid, offset, data } => {
                u32le(out, fid);
                out.extend_from_slice(&offset.to_le_bytes());
                u32le(out, data.len() as u32);
                out.extend_from_slice(data);
            }
            Request::Clunk { fid } | Request::Stat { fid } => u32le(out, fid),
        }
        let size = (out.len() - start) as u32;
        if let Some(s) = out.get_mut(start..start + 4) {
            s.copy_from_slice(&size.to_le_bytes());
        }
    }
}

/// Strings we send are ours and short; a longer one is cut at the 16-bit length.
fn string(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let b = b.get(..usize::from(u16::MAX)).unwrap_or(b);
    out.extend_from_slice(&(b.len() as u16).to_le_bytes());
    out.extend_from_slice(b);
}

/// A decoded reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Version {
        msize: u32,
        version: String,
    },
    Attach,
    /// How many of the names were walked.
    Walk {
        walked: u16,
    },
    /// Ropen and Rcreate: the server's preferred I/O size (0: none).
    Opened {
        iounit: u32,
    },
    Read {
        data: Vec<u8>,
    },
    Write {
        count: u32,
    },
    Clunk,
    /// Rstat: the file's length.
    Stat {
        length: u64,
    },
    Error {
        ename: String,
        errno: u32,
    },
}

/// Why a reply was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// The header's size disagrees with the message.
    Size,
    /// The reply's type does not answer the request.
    Type(u8),
    /// The reply's tag is not the request's.
    Tag(u16),
    /// A field runs past the end of the message, or bytes are left over.
    Fields,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Size => f.write_str("size field disagrees with the message"),
            WireError::Type(t) => write!(f, "unexpected reply type {t}"),
            WireError::Tag(t) => write!(f, "unexpected tag {t}"),
            WireError::Fields => f.write_str("malformed fields"),
        }
    }
}

/// Reads fields off a message, failing on any overrun.
struct Fields<'a> {
    b: &'a [u8],
}

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.b.len() {
            return Err(WireError::Fields);
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from(self.u32()?) | u64::from(self.u32()?) << 32)
    }
    fn string(&mut self) -> Result<String, WireError> {
        let n = self.u16()?;
        Ok(String::from_utf8_lossy(self.take(usize::from(n))?).into_owned())
    }
    fn end(&self) -> Result<(), WireError> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err(WireError::Fields)
        }
    }
}

/// The `size` field of a message header (the caller checks it against what it can hold).
pub fn size_of(header: &[u8]) -> Option<u32> {
    let b = header.get(..4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Decodes `msg`, a whole message, as the reply to a request of type `sent` with `tag`.
pub fn decode(msg: &[u8], sent: u8, tag: u16) -> Result<Reply, WireError> {
    if size_of(msg).and_then(|s| usize::try_from(s).ok()) != Some(msg.len())
        || msg.len() < HEADER_LEN
    {
        return Err(WireError::Size);
    }
    let mut f = Fields { b: msg };
    f.take(4)?;
    let ty = f.take(1)?.first().copied().unwrap_or(0);
    let got_tag = f.u16()?;
    if got_tag != tag {
        return Err(WireError::Tag(got_tag));
    }
    let reply = if ty == op::RERROR {
        let ename = f.string()?;
        let errno = f.u32()?;
        Reply::Error { ename, errno }
    } else if ty != sent.wrapping_add(1) {
        return Err(WireError::Type(ty));
    } else {
        match sent {
            op::TVERSION => {
                let msize = f.u32()?;
                Reply::Version {
                    msize,
                    version: f.string()?,
                }
            }
            op::TATTACH => {
                f.take(13)?;
                Reply::Attach
            }
            op::TWALK => {
                let walked = f.u16()?;
                f.take(usize::from(walked) * 13)?;
                Reply::Walk { walked }
            }
            op::TOPEN | op::TCREATE => {
                f.take(13)?;
                Reply::Opened { iounit: f.u32()? }
            }
            op::TREAD => {
                let n = f.u32()?;
                let n = usize::try_from(n).map_err(|_| WireError::Fields)?;
                Reply::Read {
                    data: f.take(n)?.to_vec(),
                }
            }
            op::TWRITE => Reply::Write { count: f.u32()? },
            op::TCLUNK => Reply::Clunk,
            op::TSTAT => {
                // n[2] then the stat. xen-9pfsd (4.19, 4.20) claims 10 bytes more in n and in
                // the stat's size than it sends, so the stat is read from what is there (only
                // the fixed fields up to `length` are used).
                f.u16()?;
                let rest = f.b.len();
                let mut st = Fields { b: f.take(rest)? };
                // size[2] type[2] dev[4] qid[13] mode[4] atime[4] mtime[4] length[8] ...
                st.take(2 + 2 + 4 + 13 + 4 + 4 + 4)?;
                Reply::Stat { length: st.u64()? }
            }
            other => return Err(WireError::Type(other)),
        }
    };
    f.end()?;
    Ok(reply)
}

/// A whole message of type `ty` with `tag` and `body` (host tests play the server with it).
#[cfg(test)]
pub(crate) fn reply(ty: u8, tag: u16, body: &[u8]) -> Vec<u8> {
    let mut m = ((HEADER_LEN + body.len()) as u32).to_le_bytes().to_vec();
    m.push(ty);
    m.extend_from_slice(&tag.to_le_bytes());
    m.extend_from_slice(body);
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn requests_encode_as_9p2000u() {
        let mut m = Vec::new();
        Request::Version { msize: 4096 }.encode(NOTAG, &mut m);
        assert_eq!(
            m,
            [
                &[21, 0, 0, 0, 100, 0xff, 0xff, 0, 16, 0, 0, 8, 0][..],
                b"9P2000.u"
            ]
            .concat()
        );
        m.clear();
        Request::Walk {
            fid: 0,
            newfid: 1,
            names: &["a.log"],
        }
        .encode(3, &mut m);
        assert_eq!(
            m,
            [
                &[24, 0, 0, 0, 110, 3, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 5, 0][..],
                b"a.log"
            ]
            .concat()
        );
        m.clear();
        Request::Write {
            fid: 1,
            offset: 0x1_0000_0002,
            data: b"hi",
        }
        .encode(4, &mut m);
        assert_eq!(m.len(), WRITE_OVERHEAD + 2);
        assert_eq!(&m[..7], &[25, 0, 0, 0, 118, 4, 0]);
        assert_eq!(&m[11..19], &[2, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(&m[19..], &[2, 0, 0, 0, b'h', b'i']);
        m.clear();
        Request::Attach { fid: 0 }.encode(1, &mut m);
        assert_eq!(m.len(), HEADER_LEN + 4 + 4 + 2 + 2 + 4);
    }

    #[test]
    fn replies_decode() {
        let mut body = 8192u32.to_le_bytes().to_vec();
        body.extend_from_slice(&[8, 0]);
        body.extend_from_slice(b"9P2000.u");
        assert_eq!(
            decode(&reply(101, NOTAG, &body), op::TVERSION, NOTAG),
            Ok(Reply::Version {
                msize: 8192,
                version: VERSION.into()
            })
        );
        let mut walk = vec![1, 0];
        walk.extend_from_slice(&[0; 13]);
        assert_eq!(
            decode(&reply(111, 2, &walk), op::TWALK, 2),
            Ok(Reply::Walk { walked: 1 })
        );
        let mut err = vec![6, 0];
        err.extend_from_slice(b"No ent");
        err.extend_from_slice(&2u32.to_le_bytes());
        assert_eq!(
            decode(&reply(107, 2, &err), op::TWALK, 2),
            Ok(Reply::Error {
                ename: "No ent".into(),
                errno: 2
            })
        );
        let mut read = 3u32.to_le_bytes().to_vec();
        read.extend_from_slice(b"abc");
        assert_eq!(
            decode(&reply(117, 5, &read), op::TREAD, 5),
            Ok(Reply::Read {
                data: b"abc".to_vec()
            })
        );
        let mut stat = Vec::new();
        let mut st = vec![0u8; 2 + 2 + 4 + 13 + 4 + 4 + 4];
        st.extend_from_slice(&1234u64.to_le_bytes());
        st.extend_from_slice(&[0; 5 * 2 + 12]);
        stat.extend_from_slice(&(st.len() as u16).to_le_bytes());
        stat.extend_from_slice(&st);
        assert_eq!(
            decode(&reply(125, 6, &stat), op::TSTAT, 6),
            Ok(Reply::Stat { length: 1234 })
        );
        // xen-9pfsd's counts are 10 bytes too high.
        stat[..2].copy_from_slice(&((st.len() + 10) as u16).to_le_bytes());
        stat[2..4].copy_from_slice(&((st.len() + 8) as u16).to_le_bytes());
        assert_eq!(
            decode(&reply(125, 6, &stat), op::TSTAT, 6),
            Ok(Reply::Stat { length: 1234 })
        );
    }

    #[test]
    fn hostile_replies_are_refused() {
        let ok = reply(119, 1, &5u32.to_le_bytes());
        assert_eq!(decode(&ok, op::TWRITE, 1), Ok(Reply::Write { count: 5 }));
        assert_eq!(decode(&ok, op::TWRITE, 2), Err(WireError::Tag(1)));
        assert_eq!(decode(&ok, op::TREAD, 1), Err(WireError::Type(119)));
        assert_eq!(decode(&ok[..10], op::TWRITE, 1), Err(WireError::Size));
        let mut long = ok.clone();
        long.push(0);
        assert_eq!(decode(&long, op::TWRITE, 1), Err(WireError::Size));
        long[0] += 1;
        assert_eq!(decode(&long, op::TWRITE, 1), Err(WireError::Fields));
        // A read count past the message, a walk count past the qids, a stat too short.
        let over = reply(117, 1, &u32::MAX.to_le_bytes());
        assert_eq!(decode(&over, op::TREAD, 1), Err(WireError::Fields));
        let walk = reply(111, 1, &[9, 0, 1, 2]);
        assert_eq!(decode(&walk, op::TWALK, 1), Err(WireError::Fields));
        let stat = reply(125, 1, &[4, 0, 1, 2, 3, 4]);
        assert_eq!(decode(&stat, op::TSTAT, 1), Err(WireError::Fields));
        assert_eq!(decode(&[], op::TSTAT, 1), Err(WireError::Size));
    }
}
