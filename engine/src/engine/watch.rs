//! Watches: WATCH/UNWATCH, the watch index (which connections watch which paths, so that a
//! change finds its watchers by looking up its path and ancestors instead of scanning every
//! connection), and firing events for node changes and `@introduceDomain`/`@releaseDomain`.

use super::*;

/// Every watch by path: (connection, the watch's number on that connection).
#[derive(Default)]
pub(super) struct WatchIndex {
    by_path: BTreeMap<String, Vec<(ConnId, u64)>>,
}

impl WatchIndex {
    /// Adds watch `seq` of connection `cid` on `path`.
    pub(super) fn add(&mut self, path: &str, cid: ConnId, seq: u64) {
        self.by_path
            .entry(String::from(path))
            .or_default()
            .push((cid, seq));
    }

    /// Removes watch `seq` of connection `cid` on `path`.
    pub(super) fn remove(&mut self, path: &str, cid: ConnId, seq: u64) {
        if let Some(v) = self.by_path.get_mut(path) {
            v.retain(|&e| e != (cid, seq));
            if v.is_empty() {
                self.by_path.remove(path);
            }
        }
    }

    /// The watches on `changed` (only that path if `exact`, else it and every ancestor),
    /// in connection order and, per connection, in the order they were set.
    pub(super) fn matches(&self, changed: &str, exact: bool) -> Vec<(ConnId, u64)> {
        let mut out: Vec<(ConnId, u64)> = Vec::new();
        let mut add = |p: &str| {
            if let Some(v) = self.by_path.get(p) {
                out.extend_from_slice(v);
            }
        };
        if exact || changed.starts_with('@') {
            add(changed);
        } else {
            path::ancestors(changed).for_each(&mut add);
        }
        out.sort_unstable();
        out
    }
}

/// One watch of a connection.
pub(super) struct Watch {
    /// The watch's number on its connection (the order watches were set).
    pub(super) seq: u64,
    pub(super) path: String,
    pub(super) token: Vec<u8>,
    /// Bytes to strip from event paths (relative watches).
    pub(super) strip: usize,
    pub(super) depth: Option<u32>,
}

pub(super) const INTRODUCE_DOMAIN: &str = "@introduceDomain";

pub(super) const RELEASE_DOMAIN: &str = "@releaseDomain";

/// A WATCH_EVENT message, or None if its payload would exceed 4096 bytes (XSA-324).
pub(super) fn event_msg(epath: &[u8], token: &[u8]) -> Option<Vec<u8>> {
    let len = epath.len() + token.len() + 2;
    if len > PAYLOAD_MAX {
        return None;
    }
    let mut m = Vec::with_capacity(HEADER_LEN + len);
    Header {
        ty: ty::WATCH_EVENT,
        req_id: 0,
        tx_id: 0,
        len: len as u32,
    }
    .encode(&mut m);
    m.extend_from_slice(epath);
    m.push(0);
    m.extend_from_slice(token);
    m.push(0);
    Some(m)
}

impl<P: Platform> Engine<P> {
    pub(super) fn watch(
        &mut self,
        cid: ConnId,
        caller: &Caller,
        payload: &[u8],
        reply: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let (raw, token, depth) = match leading_args(payload)? {
            ([p, t], false) => (p, t, None),
            _ => {
                let [p, t, d] = args(payload)?;
                (p, t, Some(wire::parse_u32(d).ok_or(Error::Inval)?))
            }
        };
        let (path, strip) = self.watch_path(caller, raw)?;
        if path.starts_with('@') && depth.is_some_and(|d| d > 1) {
            return Err(Error::Inval);
        }
        let limit = self.quotas_of(caller.domid).watches;
        let Some(Some(c)) = self.conns.get_mut(cid) else {
            return Err(Error::Io);
        };
        if c.watches.iter().any(|w| w.path == path && w.token == token) {
            return Err(Error::Exist);
        }
        if !caller.privileged && over(c.watches.len(), limit) {
            return Err(Error::TooBig);
        }
        let initial = event_msg(path.as_bytes().get(strip..).unwrap_or(&[]), token);
        let seq = c.next_watch;
        c.next_watch += 1;
        self.watch_index.add(&path, cid, seq);
        c.watches.push(Watch {
            seq,
            path,
            token: token.to_vec(),
            strip,
            depth,
        });
        reply.extend_from_slice(b"OK\0");
        if let Some(ev) = initial {
            self.deferred_events.push((cid, ev));
        }
        Ok(())
    }

    pub(super) fn watch_path(&self, caller: &Caller, raw: &[u8]) -> Result<(String, usize), Error> {
        if raw.first() == Some(&b'@') {
            if raw.len() > self.path_max(caller) {
                return Err(Error::Inval);
            }
            let s = core::str::from_utf8(raw).map_err(|_| Error::Inval)?;
            return Ok((String::from(s), 0));
        }
        let p = self.path_arg(caller, raw)?;
        let strip = if raw.first() == Some(&b'/') {
            0
        } else {
            p.len() - raw.len()
        };
        Ok((p, strip))
    }

    pub(super) fn unwatch(
        &mut self,
        cid: ConnId,
        caller: &Caller,
        payload: &[u8],
        reply: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let [raw, token] = args(payload)?;
        // As current C: an invalid path is EINVAL, no such watch ENOENT.
        let (path, _) = self.watch_path(caller, raw)?;
        let Some(Some(c)) = self.conns.get_mut(cid) else {
            return Err(Error::Io);
        };
        let i = c
            .watches
            .iter()
            .position(|w| w.path == path && w.token == token)
            .ok_or(Error::Noent)?;
        let w = c.watches.remove(i);
        self.watch_index.remove(&w.path, cid, w.seq);
        reply.extend_from_slice(b"OK\0");
        Ok(())
    }

    /// Queues watch events for a node change on every connection whose watches match and
    /// who may read the node (XSA-115). The watches come from the index: the cost does not
    /// grow with the number of connections or watches elsewhere.
    pub(super) fn fire(&mut self, ch: &Change) {
        let mut out: Vec<(ConnId, Vec<u8>)> = Vec::new();
        let mut readable: Option<(ConnId, bool)> = None;
        for (cid, seq) in self.watch_index.matches(&ch.path, ch.exact) {
            let Some(w) = self.watch_of(cid, seq) else {
                continue;
            };
            if !ch.exact
                && w.depth
                    .is_some_and(|d| path::depth_below(&ch.path, &w.path) > d as usize)
            {
                continue;
            }
            let ok = match readable {
                Some((rc, ok)) if rc == cid => ok,
                _ => {
                    let ok = self.may_see(cid, ch);
                    readable = Some((cid, ok));
                    ok
                }
            };
            if !ok {
                continue;
            }
            let epath = if ch.exact { &w.path } else { &ch.path };
            if let Some(ev) = event_msg(epath.as_bytes().get(w.strip..).unwrap_or(&[]), &w.token) {
                out.push((cid, ev));
            }
        }
        for (cid, ev) in out {
            self.push(cid, ev, true);
        }
    }

    /// Watch `seq` of connection `cid`.
    pub(super) fn watch_of(&self, cid: ConnId, seq: u64) -> Option<&Watch> {
        let Some(Some(c)) = self.conns.get(cid) else {
            return None;
        };
        let i = c.watches.binary_search_by_key(&seq, |w| w.seq).ok()?;
        c.watches.get(i)
    }

    /// Whether connection `cid` may read the changed node (before or after the change).
    pub(super) fn may_see(&self, cid: ConnId, ch: &Change) -> bool {
        let Some(Some(c)) = self.conns.get(cid) else {
            return false;
        };
        let caller = self.caller(c);
        access(&self.domains, &caller, &ch.perms, ch.generation) & READ != 0
            || ch
                .old_perms
                .as_ref()
                .is_some_and(|o| access(&self.domains, &caller, o, ch.generation) & READ != 0)
    }

    /// Fires `@introduceDomain` (which = 0) or `@releaseDomain` (1) for `domid`.
    pub(super) fn fire_special(&mut self, which: usize, domid: u32) {
        let name = if which == 0 {
            INTRODUCE_DOMAIN
        } else {
            RELEASE_DOMAIN
        };
        let with_id = format!("{name}/{domid}");
        let mut watchers = self.watch_index.matches(name, true);
        if which == 1 {
            watchers.extend(self.watch_index.matches(&with_id, true));
            watchers.sort_unstable();
        }
        let mut out: Vec<(ConnId, Vec<u8>)> = Vec::new();
        for (cid, seq) in watchers {
            let (Some(w), Some(Some(c))) = (self.watch_of(cid, seq), self.conns.get(cid)) else {
                continue;
            };
            let caller = self.caller(c);
            let allowed = caller.privileged
                || access(&self.domains, &caller, &self.special_perms[which], u64::MAX) & READ != 0;
            if !allowed {
                continue;
            }
            let epath = if w.path == name && w.depth != Some(1) {
                name
            } else {
                with_id.as_str()
            };
            if let Some(ev) = event_msg(epath.as_bytes(), &w.token) {
                out.push((cid, ev));
            }
        }
        for (cid, ev) in out {
            self.push(cid, ev, true);
        }
    }
}
