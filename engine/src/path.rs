//! Node paths: validation, canonicalisation of relative paths under `/local/domain/<id>`,
//! and the length limits.

use crate::wire::Error;
use alloc::format;
use alloc::string::String;

fn valid_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'_' | b'@')
}

/// Length of a leading `/local/domain/<digits>` prefix followed by `/` (including that
/// slash), else 0. C xenstored applies the path quota to what follows it.
fn domain_prefix_len(p: &str) -> usize {
    const LD: &str = "/local/domain/";
    let Some(rest) = p.strip_prefix(LD) else {
        return 0;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 && rest.as_bytes().get(digits) == Some(&b'/') {
        LD.len() + digits + 1
    } else {
        0
    }
}

/// Turns a request path into a canonical absolute path. Relative paths are taken below
/// `/local/domain/<domid>`. `path_max` is the limit on the domain-relative part (the part
/// after `/local/domain/<id>/`, or the whole path elsewhere).
pub fn canonicalize(raw: &[u8], domid: u32, path_max: usize) -> Result<String, Error> {
    if raw.is_empty() || !raw.iter().all(|&b| valid_char(b)) {
        return Err(Error::Inval);
    }
    // Only valid characters: ASCII, so this cannot fail.
    let s = core::str::from_utf8(raw).map_err(|_| Error::Inval)?;
    let abs = if s.starts_with('/') {
        String::from(s)
    } else {
        format!("/local/domain/{domid}/{s}")
    };
    check_abs(&abs, path_max)?;
    Ok(abs)
}

/// Checks an absolute path: no `//`, no trailing `/` (except the root), within limits.
pub fn check_abs(abs: &str, path_max: usize) -> Result<(), Error> {
    if !abs.starts_with('/') || abs.contains("//") || (abs.len() > 1 && abs.ends_with('/')) {
        return Err(Error::Inval);
    }
    if abs.len() - domain_prefix_len(abs) > path_max {
        return Err(Error::Inval);
    }
    Ok(())
}

/// The components of an absolute canonical path ("/" has none).
pub fn components(abs: &str) -> impl Iterator<Item = &str> {
    abs.split('/').filter(|c| !c.is_empty())
}

/// The parent of a canonical absolute path ("/" is its own parent).
pub fn parent(abs: &str) -> &str {
    match abs.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &abs[..i],
    }
}

/// The path made of the first `depth` components of `abs` ("/" for 0).
pub fn prefix(abs: &str, depth: usize) -> String {
    let mut s = String::new();
    for c in components(abs).take(depth) {
        s.push('/');
        s.push_str(c);
    }
    if s.is_empty() {
        s.push('/');
    }
    s
}

/// The first `depth` components of `abs` as a slice of it ("/" for 0; all of `abs` if it
/// has fewer): linear in the path length, without allocating.
pub fn ancestor(abs: &str, depth: usize) -> &str {
    if depth == 0 {
        return "/";
    }
    let mut seen = 0;
    for (i, b) in abs.bytes().enumerate().skip(1) {
        if b == b'/' {
            seen += 1;
            if seen == depth {
                return abs.get(..i).unwrap_or(abs);
            }
        }
    }
    abs
}

/// "/" and every ancestor of `abs` below it, down to `abs` itself, as slices of it: linear
/// in the path length.
pub fn ancestors(abs: &str) -> impl Iterator<Item = &str> {
    let ends = abs
        .bytes()
        .enumerate()
        .skip(1)
        .filter(|&(_, b)| b == b'/')
        .map(|(i, _)| i)
        .chain((abs.len() > 1).then_some(abs.len()));
    core::iter::once("/").chain(ends.filter_map(move |i| abs.get(..i)))
}

/// True if `child` is `parent` or below it.
pub fn is_child(child: &str, parent: &str) -> bool {
    if parent == "/" {
        return true;
    }
    child.starts_with(parent)
        && (child.len() == parent.len() || child.as_bytes().get(parent.len()) == Some(&b'/'))
}

/// Number of levels `child` is below `parent` (requires `is_child`).
pub fn depth_below(child: &str, parent: &str) -> usize {
    let tail = if parent == "/" {
        child
    } else {
        child.get(parent.len()..).unwrap_or("")
    };
    components(tail).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn canonical_forms() {
        assert_eq!(canonicalize(b"/a/b", 0, 2048).unwrap(), "/a/b");
        assert_eq!(
            canonicalize(b"x/y", 3, 2048).unwrap(),
            "/local/domain/3/x/y"
        );
        assert_eq!(canonicalize(b"/", 0, 2048).unwrap(), "/");
        for bad in [
            &b""[..],
            b"/a/",
            b"//",
            b"/a//b",
            b"/a b",
            b"/a\xff",
            b"/local/domain/",
        ] {
            assert_eq!(canonicalize(bad, 0, 2048), Err(Error::Inval), "{bad:?}");
        }
    }

    #[test]
    fn ancestors_are_slices() {
        assert_eq!(ancestor("/a/bc/d", 0), "/");
        assert_eq!(ancestor("/a/bc/d", 1), "/a");
        assert_eq!(ancestor("/a/bc/d", 2), "/a/bc");
        assert_eq!(ancestor("/a/bc/d", 3), "/a/bc/d");
        assert_eq!(ancestor("/a/bc/d", 9), "/a/bc/d");
        assert_eq!(ancestor("/", 1), "/");
        for d in 0..4 {
            assert_eq!(ancestor("/a/bc/d", d), prefix("/a/bc/d", d));
        }
        let all: Vec<&str> = ancestors("/a/bc/d").collect();
        assert_eq!(all, ["/", "/a", "/a/bc", "/a/bc/d"]);
        assert_eq!(ancestors("/").collect::<Vec<_>>(), ["/"]);
    }

    #[test]
    fn limits() {
        let mut p = String::from("/");
        p.push_str(&"a".repeat(2047));
        assert!(canonicalize(p.as_bytes(), 0, 2048).is_ok());
        p.push('a');
        assert_eq!(canonicalize(p.as_bytes(), 0, 2048), Err(Error::Inval));
        let rel = "a".repeat(2048);
        let abs = canonicalize(rel.as_bytes(), 7, 2048).unwrap();
        assert_eq!(abs.len(), "/local/domain/7/".len() + 2048);
        let rel = "a".repeat(2049);
        assert_eq!(canonicalize(rel.as_bytes(), 7, 2048), Err(Error::Inval));
    }

    #[test]
    fn relations() {
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(parent("/a"), "/");
        assert!(is_child("/a/b", "/a"));
        assert!(!is_child("/ab", "/a"));
        assert!(is_child("/x", "/"));
        assert_eq!(depth_below("/a/b/c", "/a"), 2);
        assert_eq!(depth_below("/a", "/"), 1);
    }
}
