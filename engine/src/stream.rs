//! The xenstore migration stream's framing (Xen's `docs/designs/xenstore-migration.md`):
//! the header, `type len body` records padded to 8 bytes, and bounds-checked field readers
//! whose errors name the record and offset. What the records hold is `engine::migrate`'s.

use alloc::vec::Vec;
use core::fmt;

/// The stream's first 8 bytes.
pub const IDENT: &[u8; 8] = b"xenstore";
/// The version written: 2 adds WATCH_DATA_EXTENDED and DOMAIN_DATA's features.
pub const VERSION: u32 = 2;
/// Header flag: the records are big-endian.
const FLAG_BIG_ENDIAN: u32 = 1;
/// Bytes of the header: ident, version, flags.
pub const HEADER: usize = 16;

/// Record types: Xen's (0..=8), then ferrostore's own in a range Xen does not use.
pub mod rec {
    /// The last record.
    pub const END: u32 = 0;
    /// Listening socket file descriptors.
    pub const GLOBAL_DATA: u32 = 1;
    /// One connection, with its pending input and output.
    pub const CONNECTION_DATA: u32 = 2;
    /// One watch (unlimited depth).
    pub const WATCH_DATA: u32 = 3;
    /// One open transaction.
    pub const TRANSACTION_DATA: u32 = 4;
    /// One node.
    pub const NODE_DATA: u32 = 5;
    /// The quotas new domains get, and the global-only ones.
    pub const GLOBAL_QUOTA_DATA: u32 = 6;
    /// One domain's quotas and ring features.
    pub const DOMAIN_DATA: u32 = 7;
    /// One watch with a depth (version 2).
    pub const WATCH_DATA_EXTENDED: u32 = 8;
    /// ferrostore: generation counter, write-rate reserve, `@` node permissions, logging.
    pub const FS_GLOBAL: u32 = 0x4653_0001;
    /// ferrostore: one domain's bookkeeping (follows its DOMAIN_DATA).
    pub const FS_DOMAIN: u32 = 0x4653_0002;
    /// ferrostore: one connection's queue and flags (follows its CONNECTION_DATA).
    pub const FS_CONNECTION: u32 = 0x4653_0003;
    /// ferrostore: one transaction's accesses and changes (follows its TRANSACTION_DATA).
    pub const FS_TRANSACTION: u32 = 0x4653_0004;
    /// ferrostore: the generations of the nodes (follows the last NODE_DATA).
    pub const FS_NODES: u32 = 0x4653_0005;

    /// A record type's name for messages.
    pub fn name(ty: u32) -> &'static str {
        match ty {
            END => "END",
            GLOBAL_DATA => "GLOBAL_DATA",
            CONNECTION_DATA => "CONNECTION_DATA",
            WATCH_DATA => "WATCH_DATA",
            TRANSACTION_DATA => "TRANSACTION_DATA",
            NODE_DATA => "NODE_DATA",
            GLOBAL_QUOTA_DATA => "GLOBAL_QUOTA_DATA",
            DOMAIN_DATA => "DOMAIN_DATA",
            WATCH_DATA_EXTENDED => "WATCH_DATA_EXTENDED",
            FS_GLOBAL => "FS_GLOBAL",
            FS_DOMAIN => "FS_DOMAIN",
            FS_CONNECTION => "FS_CONNECTION",
            FS_TRANSACTION => "FS_TRANSACTION",
            FS_NODES => "FS_NODES",
            _ => "unknown",
        }
    }
}

/// Why a stream was refused: what was wrong, in which record, at which byte offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestoreError {
    /// What was wrong.
    pub what: &'static str,
    /// The record's type (None: the header, or after the last record).
    pub record: Option<u32>,
    /// Offset in the stream of the offending field (or record).
    pub offset: usize,
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.record {
            Some(ty) => write!(
                f,
                "state stream: {} ({} record, offset {})",
                self.what,
                rec::name(ty),
                self.offset
            ),
            None => write!(f, "state stream: {} (offset {})", self.what, self.offset),
        }
    }
}

/// Builds a stream: the header, then records.
pub struct Writer {
    out: Vec<u8>,
    /// Where the open record's header is.
    start: usize,
}

impl Writer {
    /// A stream with its header (version 2, little-endian records).
    pub fn new() -> Writer {
        let mut out = Vec::with_capacity(4096);
        out.extend_from_slice(IDENT);
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        Writer { out, start: 0 }
    }

    /// Opens a record of type `ty` (closed by the next `record` or by `finish`).
    pub fn record(&mut self, ty: u32) {
        self.close();
        self.start = self.out.len();
        self.u32(ty);
        self.u32(0);
    }

    /// Fills in the open record's length and pads it to 8 bytes.
    fn close(&mut self) {
        if self.start == 0 {
            return;
        }
        let len = self.out.len() - self.start - 8;
        let len = u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes();
        if let Some(field) = self.out.get_mut(self.start + 4..self.start + 8) {
            field.copy_from_slice(&len);
        }
        while !self.out.len().is_multiple_of(8) {
            self.out.push(0);
        }
        self.start = 0;
    }

    /// Closes the stream with END.
    pub fn finish(mut self) -> Vec<u8> {
        self.record(rec::END);
        self.close();
        self.out
    }

    pub fn u8(&mut self, v: u8) {
        self.out.push(v);
    }

    pub fn u16(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    pub fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    pub fn bytes(&mut self, b: &[u8]) {
        self.out.extend_from_slice(b);
    }

    /// A length-prefixed byte string (ferrostore records).
    pub fn string(&mut self, b: &[u8]) {
        self.u32(len32(b.len()));
        self.bytes(b);
    }
}

/// A length that fits a u32 field (every length the engine holds does).
pub fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A length that fits a u16 field (paths, values and pending input are bounded by the
/// 4096-byte payload limit).
pub fn len16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

/// The header's version, and the records after it, one by one.
pub struct Records<'a> {
    stream: &'a [u8],
    pos: usize,
    big_endian: bool,
    /// The stream's version (1 or 2).
    pub version: u32,
    ended: bool,
}

impl<'a> Records<'a> {
    /// Checks the header.
    pub fn new(stream: &'a [u8]) -> Result<Records<'a>, RestoreError> {
        let err = |what, offset| RestoreError {
            what,
            record: None,
            offset,
        };
        let word = |at: usize| {
            let b = stream.get(at..at + 4).ok_or(err("truncated header", at))?;
            let mut w = [0; 4];
            w.copy_from_slice(b);
            Ok(u32::from_be_bytes(w))
        };
        if stream.get(..8).is_none_or(|i| i != IDENT) {
            return Err(err("not a xenstore state stream", 0));
        }
        let version = word(8)?;
        if !(1..=VERSION).contains(&version) {
            return Err(err("unsupported version", 8));
        }
        let flags = word(12)?;
        if flags & !FLAG_BIG_ENDIAN != 0 {
            return Err(err("reserved header flags set", 12));
        }
        Ok(Records {
            stream,
            pos: HEADER,
            big_endian: flags & FLAG_BIG_ENDIAN != 0,
            version,
            ended: false,
        })
    }

    /// The next record, or None after END (anything after END is refused).
    pub fn next_record(&mut self) -> Result<Option<Body<'a>>, RestoreError> {
        if self.ended {
            return match self.pos < self.stream.len() {
                true => Err(RestoreError {
                    what: "data after END",
                    record: None,
                    offset: self.pos,
                }),
                false => Ok(None),
            };
        }
        let mut head = Body {
            data: self.stream.get(self.pos..).unwrap_or_default(),
            base: self.pos,
            pos: 0,
            ty: None,
            big_endian: self.big_endian,
        };
        let (ty, len) = match (head.u32(), head.u32()) {
            (Ok(t), Ok(l)) => (t, l as usize),
            _ => {
                return Err(RestoreError {
                    what: "truncated record header (no END)",
                    record: None,
                    offset: self.pos,
                })
            }
        };
        let start = self.pos + 8;
        let padded = len.checked_add(7).map(|l| l & !7);
        let data = padded
            .and_then(|p| start.checked_add(p))
            .and_then(|end| self.stream.get(start..end))
            .ok_or(RestoreError {
                what: "record longer than the stream",
                record: Some(ty),
                offset: self.pos,
            })?;
        self.pos = start + data.len();
        self.ended = ty == rec::END;
        Ok(Some(Body {
            data: data.get(..len).unwrap_or_default(),
            base: start,
            pos: 0,
            ty: Some(ty),
            big_endian: self.big_endian,
        }))
    }
}

/// One record's body, read field by field; every read is bounds-checked.
pub struct Body<'a> {
    data: &'a [u8],
    base: usize,
    pos: usize,
    ty: Option<u32>,
    big_endian: bool,
}

impl<'a> Body<'a> {
    /// The record's type.
    pub fn ty(&self) -> u32 {
        self.ty.unwrap_or(rec::END)
    }

    /// The stream offset of the current position.
    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// An error about the field at the current position.
    pub fn err(&self, what: &'static str) -> RestoreError {
        RestoreError {
            what,
            record: self.ty,
            offset: self.offset(),
        }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], RestoreError> {
        let b = self
            .pos
            .checked_add(n)
            .and_then(|end| self.data.get(self.pos..end))
            .ok_or(self.err("record too short"))?;
        self.pos += n;
        Ok(b)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RestoreError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        if !self.big_endian {
            a.reverse();
        }
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8, RestoreError> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u16(&mut self) -> Result<u16, RestoreError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, RestoreError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, RestoreError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Bytes left in the record.
    pub fn left(&self) -> usize {
        self.data.len() - self.pos
    }

    /// A count of items that each take at least `min` more bytes of the record: bounded by
    /// what is left, so that nothing is allocated for items the record cannot hold.
    pub fn count(&mut self, min: usize) -> Result<usize, RestoreError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min.max(1)) > self.left() {
            return Err(self.err("count larger than the record"));
        }
        Ok(n)
    }

    /// A length-prefixed byte string (ferrostore records).
    pub fn string(&mut self) -> Result<&'a [u8], RestoreError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    /// The rest must be padding: fewer than 8 bytes (a writer that counts its padding in
    /// the length, as C xenstored does, leaves them here).
    pub fn end(&self) -> Result<(), RestoreError> {
        match self.left() {
            0..=7 => Ok(()),
            _ => Err(self.err("record longer than its fields")),
        }
    }
}
