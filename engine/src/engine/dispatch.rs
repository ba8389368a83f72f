//! Request dispatch: each request type's arguments, checks and reply, reads and node
//! operations on the main store.

use super::*;

/// Which tree a request works on.
pub(super) enum Target {
    Main,
    Tx(u32),
}

pub(super) const PRIV_ONLY: [u32; 10] = [
    ty::CONTROL,
    ty::INTRODUCE,
    ty::RELEASE,
    ty::IS_DOMAIN_INTRODUCED,
    ty::RESUME,
    ty::SET_TARGET,
    ty::GET_FEATURE,
    ty::SET_FEATURE,
    ty::GET_QUOTA,
    ty::SET_QUOTA,
];

/// Charges `writes` node writes to an unprivileged caller's write-rate credit (it can go
/// into debt only while a transaction is open).
pub(super) fn wrl_debit<P: Platform>(e: &mut Engine<P>, caller: &Caller, writes: u32) {
    if caller.privileged || writes == 0 {
        return;
    }
    let held = e.any_transaction();
    let now = e.platform.now_ms();
    if let Some(d) = e.domains.get_mut(&caller.domid) {
        e.wrl.debit(d, now, WRITE_COST * i64::from(writes), held);
    }
}

/// Bytes a transaction holds for logging `op`, charged like C xenstored charges a
/// transaction's node records to its connection's domain: the record-size formula of the
/// quotas (header, 8 per permission, value, NUL-terminated child names) plus the path as
/// the key. WRITE/MKDIR: the node's new record, or the records of the missing nodes it
/// creates; SET_PERMS: the rewritten record; RM, or MKDIR of an existing node: a header.
/// In the main store, the most an operation can grow the records.
pub(super) fn record_cost(tree: &Tree, op: &TxOp) -> usize {
    let key = match op {
        TxOp::Write(p, _) | TxOp::Rm(p) | TxOp::SetPerms(p, _) => p.len(),
    };
    let header = tree::record_size(0, 0, 0);
    let record = match op {
        TxOp::Write(p, value) => {
            let (node, found) = tree.deepest(p);
            let value_len = value.as_ref().map_or(0, Vec::len);
            match (found, value) {
                (true, Some(_)) => node.record_size_as(node.perms.len(), value_len),
                (true, None) => header,
                (false, _) => {
                    path::components(p)
                        .skip(tree.existing_depth(p))
                        .map(|name| tree::record_size(node.perms.len(), 0, name.len() + 1))
                        .sum::<usize>()
                        + value_len
                }
            }
        }
        TxOp::Rm(_) => header,
        TxOp::SetPerms(p, new) => tree
            .get(p)
            .map_or(header, |n| n.record_size_as(new.len(), n.value.len())),
    };
    key + record
}

/// The first `N` NUL-terminated strings of a request's payload (EINVAL if it has fewer),
/// and whether more follow.
pub(super) fn leading_args<const N: usize>(payload: &[u8]) -> Result<([&[u8]; N], bool), Error> {
    let mut strings = wire::split_strings(payload);
    let mut out: [&[u8]; N] = [&[]; N];
    for slot in out.iter_mut() {
        *slot = strings.next().ok_or(Error::Inval)?;
    }
    Ok((out, strings.next().is_some()))
}

/// Exactly `N` NUL-terminated strings of a request's payload, else EINVAL.
pub(super) fn args<const N: usize>(payload: &[u8]) -> Result<[&[u8]; N], Error> {
    match leading_args(payload)? {
        (out, false) => Ok(out),
        (_, true) => Err(Error::Inval),
    }
}

/// The path of a one-argument path request. C xenstored answers ENOENT when the payload is
/// not exactly one NUL-terminated string.
pub(super) fn path_one_arg(payload: &[u8]) -> Result<&[u8], Error> {
    one_arg(payload).map_err(|_| Error::Inval)
}

pub(super) fn special_index(raw: &[u8]) -> Option<usize> {
    match raw {
        b"@introduceDomain" => Some(0),
        b"@releaseDomain" => Some(1),
        _ => None,
    }
}

/// DIRECTORY_PART reply: `gencnt\0` then the child list from byte `off` of the full
/// NUL-separated list, as many whole entries as fit, and an extra `\0` after the last.
pub(super) fn directory_part(n: &Node, off: usize, reply: &mut Vec<u8>) {
    let mut all = Vec::new();
    for c in n.child_names() {
        all.extend_from_slice(c.as_bytes());
        all.push(0);
    }
    perms::push_decimal(reply, n.generation);
    reply.push(0);
    if off >= all.len() {
        reply.push(0);
        return;
    }
    let max = PAYLOAD_MAX - reply.len() - 1;
    let rest = &all[off..];
    let mut len = 0;
    while len < rest.len() {
        let i = rest[len..]
            .iter()
            .position(|&b| b == 0)
            .map_or(rest.len() - len, |p| p + 1);
        if len + i > max {
            break;
        }
        len += i;
    }
    reply.extend_from_slice(&rest[..len]);
    if len == rest.len() {
        reply.push(0);
    }
}

impl<P: Platform> Engine<P> {
    pub(super) fn dispatch(
        &mut self,
        cid: ConnId,
        h: Header,
        payload: &[u8],
        reply: &mut Vec<u8>,
        changes: &mut Vec<Change>,
    ) -> Result<(), Error> {
        let Some(Some(conn)) = self.conns.get(cid) else {
            return Err(Error::Io);
        };
        let caller = self.caller(conn);
        let known = matches!(
            h.ty,
            ty::CONTROL..=ty::SET_PERMS | ty::IS_DOMAIN_INTRODUCED..=ty::SET_TARGET | ty::RESET_WATCHES..=ty::SET_QUOTA
        );
        if !known {
            return Err(Error::Nosys);
        }
        if PRIV_ONLY.contains(&h.ty) && !caller.privileged {
            return Err(Error::Acces);
        }
        let target = if matches!(h.ty, ty::WATCH | ty::UNWATCH) || h.tx_id == 0 {
            Target::Main
        } else if conn.txs.contains_key(&h.tx_id) {
            Target::Tx(h.tx_id)
        } else {
            return Err(Error::Noent);
        };
        match h.ty {
            ty::READ => {
                let p = self.path_arg(&caller, path_one_arg(payload)?)?;
                self.with_read(cid, &target, &caller, &p, |n| {
                    reply.extend_from_slice(&n.value)
                })
            }
            ty::DIRECTORY => {
                let p = self.path_arg(&caller, path_one_arg(payload)?)?;
                self.with_read(cid, &target, &caller, &p, |n| {
                    for c in n.child_names() {
                        reply.extend_from_slice(c.as_bytes());
                        reply.push(0);
                    }
                })?;
                if reply.len() > PAYLOAD_MAX {
                    reply.clear();
                    return Err(Error::TooBig);
                }
                Ok(())
            }
            ty::DIRECTORY_PART => {
                let [p, off] = args(payload)?;
                let p = self.path_arg(&caller, p)?;
                let off = wire::atoi(off) as usize;
                self.with_read(cid, &target, &caller, &p, |n| directory_part(n, off, reply))
            }
            ty::GET_PERMS => {
                let raw = path_one_arg(payload)?;
                if raw.first() == Some(&b'@') {
                    let sp = special_index(raw)
                        .and_then(|i| self.special_perms.get(i))
                        .ok_or(Error::Noent)?;
                    if access(&self.domains, &caller, sp, u64::MAX) & READ == 0 {
                        return Err(Error::Acces);
                    }
                    perms::encode(sp, reply);
                    return Ok(());
                }
                let p = self.path_arg(&caller, raw)?;
                self.with_read(cid, &target, &caller, &p, |n| {
                    perms::encode(&n.perms, reply)
                })
            }
            ty::WRITE => {
                let nul = payload.iter().position(|&b| b == 0).ok_or(Error::Inval)?;
                let p = self.path_arg(&caller, &payload[..nul])?;
                let value = &payload[nul + 1..];
                self.modify(
                    cid,
                    &target,
                    &caller,
                    TxOp::Write(p, Some(value.to_vec())),
                    changes,
                )?;
                reply.extend_from_slice(b"OK\0");
                Ok(())
            }
            ty::MKDIR => {
                let p = self.path_arg(&caller, path_one_arg(payload)?)?;
                self.modify(cid, &target, &caller, TxOp::Write(p, None), changes)?;
                reply.extend_from_slice(b"OK\0");
                Ok(())
            }
            ty::RM => {
                let p = self.path_arg(&caller, path_one_arg(payload)?)?;
                self.modify(cid, &target, &caller, TxOp::Rm(p), changes)?;
                reply.extend_from_slice(b"OK\0");
                Ok(())
            }
            ty::SET_PERMS => {
                self.set_perms(cid, &target, &caller, payload, changes)?;
                reply.extend_from_slice(b"OK\0");
                Ok(())
            }
            ty::WATCH => self.watch(cid, &caller, payload, reply),
            ty::UNWATCH => self.unwatch(cid, &caller, payload, reply),
            ty::TRANSACTION_START => self.tx_start(cid, h, &caller, reply),
            ty::TRANSACTION_END => {
                let arg = one_arg(payload)?;
                let commit = match arg {
                    b"T" => true,
                    b"F" => false,
                    _ => return Err(Error::Inval),
                };
                self.tx_end(cid, h.tx_id, &caller, commit, changes)?;
                reply.extend_from_slice(b"OK\0");
                Ok(())
            }
            ty::RESET_WATCHES => {
                self.retire(cid);
                if let Some(Some(c)) = self.conns.get_mut(cid) {
                    self.conn_bytes += c.out_bytes;
                    c.watches.clear();
                    c.txs.clear();
                    c.tx_bytes = 0;
                }
                reply.extend_from_slice(b"OK\0");
                Ok(())
            }
            ty::GET_DOMAIN_PATH => {
                let d = wire::atoi(one_arg(payload)?);
                reply.extend_from_slice(format!("/local/domain/{d}\0").as_bytes());
                Ok(())
            }
            ty::IS_DOMAIN_INTRODUCED => {
                let d = wire::atoi(one_arg(payload)?);
                let yes = d == DOMID_SELF
                    || self
                        .domains
                        .get(&d)
                        .is_some_and(|x| x.conn.is_some() || d == 0);
                reply.extend_from_slice(if yes { b"T\0" } else { b"F\0" });
                Ok(())
            }
            ty::INTRODUCE => {
                let ([domid, mfn, port], _) = leading_args(payload)?;
                let domid = wire::atoi(domid);
                let mfn = mfn
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .fold(0u64, |a, &b| {
                        a.saturating_mul(10).saturating_add(u64::from(b - b'0'))
                    });
                let port = wire::atoi(port);
                self.introduce_domain(domid, mfn, port)?;
                reply.extend_from_slice(b"OK\0");
                Ok(())
            }
            ty::RELEASE => {
                let domid = wire::atoi(one_arg(payload)?);
                if domid == 0 {
                    return Err(Error::Inval);
                }
                if self.domains.get(&domid).and_then(|d| d.conn).is_none() {
                    return Err(Error::Noent);
                }
                self.domain_gone(domid);
                reply.extend_from_slice(b"OK\0");
                Ok(())
            }
            ty::RESUME => {
                let domid = wire::atoi(one_arg(payload)?);
                match self.domains.get_mut(&domid) {
                    Some(d) if d.conn.is_some() => d.shutdown_reported = false,
                    _ => return Err(Error::Noent),
                }
                reply.extend_from_slice(b"OK\0");
                Ok(())
            }
            ty::SET_TARGET => {
                let [d, t] = args(payload)?;
                let (d, t) = (wire::atoi(d), wire::atoi(t));
                if self.domains.get(&d).and_then(|x| x.conn).is_none() || !self.ensure_domain(t) {
                    return Err(Error::Noent);
                }
                if let Some(x) = self.domains.get_mut(&d) {
                    x.target = Some(t);
                }
                reply.extend_from_slice(b"OK\0");
                Ok(())
            }
            ty::GET_FEATURE => {
                let d = self.introduced_domid(one_arg(payload)?)?;
                reply.extend_from_slice(format!("{}\0", self.domain_features(d)).as_bytes());
                Ok(())
            }
            ty::SET_FEATURE => {
                let [d, v] = args(payload)?;
                let d = self.introduced_domid(d)?;
                let v = wire::parse_u32(v).ok_or(Error::Inval)?;
                if v & !FEATURES != 0 {
                    return Err(Error::Inval);
                }
                if let Some(x) = self.domains.get_mut(&d) {
                    x.features = v;
                }
                reply.extend_from_slice(b"OK\0");
                Ok(())
            }
            ty::GET_QUOTA => {
                let [d, name] = args(payload)?;
                let d = self.introduced_domid(d)?;
                let name = core::str::from_utf8(name).map_err(|_| Error::Inval)?;
                let v = self.quotas_of(d).get(name).ok_or(Error::Inval)?;
                reply.extend_from_slice(format!("{v}\0").as_bytes());
                Ok(())
            }
            ty::SET_QUOTA => {
                let [d, name, v] = args(payload)?;
                let d = self.introduced_domid(d)?;
                let name = core::str::from_utf8(name).map_err(|_| Error::Inval)?;
                let v = wire::parse_u32(v).ok_or(Error::Inval)?;
                let dom = self.domains.get_mut(&d).ok_or(Error::Noent)?;
                if !dom.quotas.set(name, v) {
                    return Err(Error::Inval);
                }
                reply.extend_from_slice(b"OK\0");
                Ok(())
            }
            ty::CONTROL => {
                if wire::split_strings(payload).next() == Some(b"live-update") {
                    return self.live_update(cid, h, payload, reply);
                }
                let args: Vec<&[u8]> = wire::split_strings(payload).collect();
                self.control(&args, reply)
            }
            _ => Err(Error::Nosys),
        }
    }

    pub(super) fn introduced_domid(&self, arg: &[u8]) -> Result<u32, Error> {
        let d = wire::parse_u32(arg).ok_or(Error::Inval)?;
        match self.domains.get(&d) {
            Some(x) if x.conn.is_some() => Ok(d),
            _ => Err(Error::Noent),
        }
    }

    pub(super) fn path_arg(&self, caller: &Caller, raw: &[u8]) -> Result<String, Error> {
        if raw.first() == Some(&b'@') {
            return Err(Error::Inval);
        }
        canonicalize(raw, caller.domid, self.path_max(caller))
    }

    /// The longest path (below `/local/domain/<id>/` for a path there) a caller may name:
    /// unlimited for a privileged one (as current C xenstored), else its `path-max` quota.
    pub(super) fn path_max(&self, caller: &Caller) -> usize {
        let q = self.quotas_of(caller.domid);
        if caller.privileged {
            usize::MAX
        } else if q.path_max == 0 {
            wire::REL_PATH_MAX
        } else {
            q.path_max as usize
        }
    }

    pub(super) fn with_read<R>(
        &mut self,
        cid: ConnId,
        target: &Target,
        caller: &Caller,
        path: &str,
        f: impl FnOnce(&Node) -> R,
    ) -> Result<R, Error> {
        match *target {
            Target::Main => Ok(f(lookup(&self.tree, &self.domains, caller, path, READ)?)),
            Target::Tx(id) => {
                self.record(cid, id, caller, path, None)?;
                self.tx_view(cid, id, caller)?;
                let Some(Some(c)) = self.conns.get(cid) else {
                    return Err(Error::Io);
                };
                let tx = c.txs.get(&id).ok_or(Error::Noent)?;
                if let Some(n) = tx.frozen.get(path) {
                    if access(&self.domains, caller, &n.perms, n.generation) & READ == 0 {
                        return Err(Error::Acces);
                    }
                    return Ok(f(n));
                }
                let view = tx.view.as_ref().ok_or(Error::Io)?;
                Ok(f(lookup(&view.tree, &self.domains, caller, path, READ)?))
            }
        }
    }

    /// Applies a WRITE/MKDIR/RM/SET_PERMS to the main tree (collecting changes) or to a
    /// transaction's view (recording the result in its overlay).
    pub(super) fn modify(
        &mut self,
        cid: ConnId,
        target: &Target,
        caller: &Caller,
        op: TxOp,
        changes: &mut Vec<Change>,
    ) -> Result<(), Error> {
        let quotas = self.quotas_of(caller.domid);
        let room = match self.conns.get(cid) {
            Some(Some(c)) => self.room(c),
            _ => return Err(Error::Io),
        };
        match *target {
            Target::Main => {
                if room.bounded() {
                    let cost = record_cost(&self.tree, &op);
                    if room.exceeded(cost, cost) {
                        self.check_growth(caller, &op, &quotas, room)?;
                    }
                }
                let mut st = self.main_store(&quotas, false, changes);
                let r = apply(&mut st, caller, &op);
                let written = st.written;
                wrl_debit(self, caller, written);
                r
            }
            Target::Tx(id) => self.modify_tx(cid, id, caller, op, &quotas, room),
        }
    }

    /// Checks a main-store operation of an unprivileged caller whose [`record_cost`] does
    /// not fit its `room`: the exact growth comes from a dry run, which also gives the
    /// operation's own errors first (as C checks permissions and sizes before memory).
    pub(super) fn check_growth(
        &self,
        caller: &Caller,
        op: &TxOp,
        quotas: &Quotas,
        room: Room,
    ) -> Result<(), Error> {
        let after = self.dry_run(quotas, caller, op)?;
        let bytes = |m: &BTreeMap<u32, Usage>, owner: Option<u32>| -> i64 {
            match owner {
                Some(d) => m.get(&d).map_or(0, |u| u.bytes),
                None => m.values().map(|u| u.bytes).sum(),
            }
        };
        let grow = |owner| usize::try_from(bytes(&after, owner) - bytes(&self.usage, owner));
        let (domain, total) = (grow(Some(caller.domid)), grow(None));
        if room.exceeded(domain.unwrap_or(0), total.unwrap_or(0)) {
            return Err(Error::Nomem);
        }
        Ok(())
    }

    /// Runs `op` on a copy of the main store, changing nothing (the copy is O(1): nodes
    /// stay shared until changed). Returns the usage after it, or the operation's error.
    pub(super) fn dry_run(
        &self,
        quotas: &Quotas,
        caller: &Caller,
        op: &TxOp,
    ) -> Result<BTreeMap<u32, Usage>, Error> {
        let mut tree = self.tree.clone();
        let mut usage = self.usage.clone();
        let mut generation = self.generation;
        let mut st = view_store(
            &mut tree,
            &mut usage,
            &mut generation,
            None,
            &self.domains,
            quotas,
            false,
        );
        apply(&mut st, caller, op)?;
        Ok(usage)
    }

    pub(super) fn set_perms(
        &mut self,
        cid: ConnId,
        target: &Target,
        caller: &Caller,
        payload: &[u8],
        changes: &mut Vec<Change>,
    ) -> Result<(), Error> {
        let args: Vec<&[u8]> = wire::split_strings(payload).collect();
        let (raw, list) = args.split_first().ok_or(Error::Inval)?;
        if list.is_empty() {
            return Err(Error::Inval);
        }
        let mut new = list
            .iter()
            .map(|s| perms::parse_one(s))
            .collect::<Result<Vec<Perm>, Error>>()?;
        for p in new.iter_mut() {
            if !self.ensure_domain(p.domid) {
                p.bits |= IGNORE;
            }
        }
        // As C: an owner that does not exist is ENOENT before the path is looked at.
        if new.first().is_some_and(|p| p.bits & IGNORE != 0) {
            return Err(Error::Noent);
        }
        if raw.first() == Some(&b'@') {
            let i = special_index(raw).ok_or(Error::Noent)?;
            let cur = &self.special_perms[i];
            let acc = access(&self.domains, caller, cur, u64::MAX);
            let owner = cur.first().map_or(0, |p| p.domid);
            if !caller.privileged
                && (acc & perms::WRITE == 0
                    || (owner != caller.domid && Some(owner) != caller.target))
            {
                return Err(Error::Acces);
            }
            if new.first().is_some_and(|p| p.bits & IGNORE != 0) {
                return Err(Error::Noent);
            }
            self.special_perms[i] = new;
            return Ok(());
        }
        let p = self.path_arg(caller, raw)?;
        self.modify(cid, target, caller, TxOp::SetPerms(p, new), changes)
    }
}
