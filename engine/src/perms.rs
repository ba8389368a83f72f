//! Permission lists: parsing and printing the `n|r|w|b<domid>` strings, and the access rule.

use crate::wire::Error;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::ops::Deref;

/// Read access.
pub const READ: u8 = 1;
/// Write access.
pub const WRITE: u8 = 2;
/// Both.
pub const ALL: u8 = READ | WRITE;
/// Internal: entry names a domain that does not exist (or a younger domain with a reused
/// domid); it is skipped when evaluating and printing (XSA-322/417).
pub const IGNORE: u8 = 16;

/// One entry of a permission list. Entry 0 names the owner and the default access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perm {
    /// Domain the entry applies to.
    pub domid: u32,
    /// READ/WRITE/IGNORE bits.
    pub bits: u8,
}

/// A node's permission list, shared by the nodes that inherit it: a node created below
/// another refers to its parent's list instead of holding a copy. It reads as a `Vec<Perm>`
/// (so `clone()` copies the entries out); [`Perms::share`] adds a reference.
#[derive(Debug)]
pub struct Perms(Rc<Vec<Perm>>);

impl Perms {
    /// Another reference to the same list.
    pub fn share(&self) -> Perms {
        Perms(Rc::clone(&self.0))
    }
}

impl Deref for Perms {
    type Target = Vec<Perm>;

    fn deref(&self) -> &Vec<Perm> {
        &self.0
    }
}

impl From<Vec<Perm>> for Perms {
    fn from(v: Vec<Perm>) -> Perms {
        Perms(Rc::new(v))
    }
}

impl PartialEq<Vec<Perm>> for Perms {
    fn eq(&self, other: &Vec<Perm>) -> bool {
        *self.0 == *other
    }
}

/// C `strtol(s, &end, 0)` requiring the whole string to be consumed.
fn parse_id(s: &[u8]) -> Option<u32> {
    let (digits, radix) = if let Some(h) = s.strip_prefix(b"0x").or_else(|| s.strip_prefix(b"0X")) {
        (h, 16)
    } else if s.len() > 1 && s[0] == b'0' {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &b in digits {
        let d = char::from(b).to_digit(radix)?;
        v = v * u64::from(radix) + u64::from(d);
        if v > u64::from(u32::MAX) {
            return None;
        }
    }
    u32::try_from(v).ok()
}

/// Parses one permission string.
pub fn parse_one(s: &[u8]) -> Result<Perm, Error> {
    let (&c, rest) = s.split_first().ok_or(Error::Inval)?;
    let bits = match c {
        b'n' => 0,
        b'r' => READ,
        b'w' => WRITE,
        b'b' => ALL,
        _ => return Err(Error::Inval),
    };
    let domid = parse_id(rest).ok_or(Error::Inval)?;
    Ok(Perm { domid, bits })
}

/// Takes out of a permission list the entries `stale` names: a non-owner entry goes, a stale
/// owner gives way to dom0.
pub fn purge(perms: &mut Vec<Perm>, stale: impl Fn(&Perm) -> bool) {
    if let Some(owner) = perms.first_mut() {
        if stale(owner) {
            owner.domid = 0;
        }
    }
    let mut owner = true;
    perms.retain(|p| core::mem::take(&mut owner) || !stale(p));
}

/// Appends the wire form of a permission list (`<c><domid>\0` per entry; ignored entries
/// are listed too, as C xenstored does).
pub fn encode(perms: &[Perm], out: &mut Vec<u8>) {
    for p in perms {
        out.push(match p.bits & ALL {
            0 => b'n',
            READ => b'r',
            WRITE => b'w',
            _ => b'b',
        });
        push_decimal(out, u64::from(p.domid));
        out.push(0);
    }
}

/// Appends `v` in decimal.
pub fn push_decimal(out: &mut Vec<u8>, v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Who is asking: the caller's domain, its SET_TARGET target and whether it is privileged.
#[derive(Clone, Copy, Debug)]
pub struct Caller {
    /// The caller's domid.
    pub domid: u32,
    /// Domain this caller acts for (SET_TARGET), if any.
    pub target: Option<u32>,
    /// dom0 or `--priv-domid`: full access everywhere, no quotas.
    pub privileged: bool,
}

/// The access `caller` has to a node with permission list `perms`. `valid(entry)` says
/// whether a non-owner entry still names the domain it was written for (domid reuse,
/// XSA-322); entries with [`IGNORE`] never count.
pub fn access(caller: &Caller, perms: &[Perm], valid: impl Fn(&Perm) -> bool) -> u8 {
    if caller.privileged {
        return ALL;
    }
    let Some(owner) = perms.first() else { return 0 };
    let me = |d: u32| d == caller.domid || Some(d) == caller.target;
    if owner.bits & IGNORE == 0 && me(owner.domid) {
        return ALL;
    }
    let usable = |p: &&Perm| p.bits & IGNORE == 0 && valid(p);
    if let Some(p) = perms
        .iter()
        .skip(1)
        .filter(usable)
        .find(|p| p.domid == caller.domid)
    {
        return p.bits & ALL;
    }
    if let Some(p) = perms.iter().skip(1).filter(usable).find(|p| me(p.domid)) {
        return p.bits & ALL;
    }
    owner.bits & ALL
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        assert_eq!(
            parse_one(b"r5"),
            Ok(Perm {
                domid: 5,
                bits: READ
            })
        );
        assert_eq!(
            parse_one(b"b0x10"),
            Ok(Perm {
                domid: 16,
                bits: ALL
            })
        );
        assert_eq!(parse_one(b"n010"), Ok(Perm { domid: 8, bits: 0 }));
        assert_eq!(parse_one(b"x1"), Err(Error::Inval));
        assert_eq!(parse_one(b"r"), Err(Error::Inval));
        assert_eq!(parse_one(b"r1a"), Err(Error::Inval));
        let mut out = Vec::new();
        encode(
            &[
                Perm { domid: 0, bits: 0 },
                Perm {
                    domid: 3,
                    bits: WRITE,
                },
                Perm {
                    domid: 4,
                    bits: READ | IGNORE,
                },
            ],
            &mut out,
        );
        assert_eq!(out, b"n0\0w3\0r4\0");
    }

    #[test]
    fn access_rules() {
        let perms = [
            Perm {
                domid: 1,
                bits: READ,
            },
            Perm {
                domid: 2,
                bits: WRITE,
            },
        ];
        let c = |domid, target| Caller {
            domid,
            target,
            privileged: false,
        };
        let ok = |_: &Perm| true;
        assert_eq!(access(&c(1, None), &perms, ok), ALL);
        assert_eq!(access(&c(2, None), &perms, ok), WRITE);
        assert_eq!(access(&c(2, None), &perms, |p: &Perm| p.domid != 2), READ);
        assert_eq!(access(&c(3, None), &perms, ok), READ);
        assert_eq!(access(&c(3, Some(1)), &perms, ok), ALL);
        assert_eq!(access(&c(3, Some(2)), &perms, ok), WRITE);
        assert_eq!(
            access(
                &Caller {
                    domid: 9,
                    target: None,
                    privileged: true
                },
                &perms,
                ok
            ),
            ALL
        );
    }
}
