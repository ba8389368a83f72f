//! Transaction requests: starting and ending, recording accesses, and the views of the
//! main store that transactions see (built from their overlays, settled on every change).

use super::*;

/// A [`Store`] on a transaction's tree (or a scratch copy) whose `usage` holds deltas over
/// `base_usage` (None: `usage` is absolute); no changes are collected.
pub(super) fn view_store<'a>(
    tree: &'a mut Tree,
    usage: &'a mut BTreeMap<u32, Usage>,
    generation: &'a mut u64,
    base_usage: Option<&'a BTreeMap<u32, Usage>>,
    domains: &'a BTreeMap<u32, Domain>,
    quotas: &'a Quotas,
    force: bool,
) -> Store<'a> {
    Store {
        tree,
        generation,
        usage,
        total: None,
        base_usage,
        domains,
        quotas,
        force,
        changes: None,
        written: 0,
    }
}

/// A transaction's charge went from `old` to `new` bytes: its connection's total
/// (`tx_bytes`) and all connections' total (`conn_bytes`) follow.
fn recharge(conn_bytes: &mut usize, tx_bytes: &mut usize, old: usize, new: usize) {
    *tx_bytes = *tx_bytes - old + new;
    *conn_bytes = *conn_bytes - old + new;
}

impl<P: Platform> Engine<P> {
    /// The open transaction `txid` of connection `cid`.
    pub(super) fn tx_mut(&mut self, cid: ConnId, txid: u32) -> Result<&mut Tx, Error> {
        match self.conns.get_mut(cid) {
            Some(Some(c)) => c.txs.get_mut(&txid).ok_or(Error::Noent),
            _ => Err(Error::Io),
        }
    }

    /// Records the first access to the nodes `path` and, if `created` is Some(depth), the
    /// nodes a write creates below its first `depth` components (they must not be created
    /// outside; only the topmost is kept, the others cannot exist without it), with their
    /// generations in the main store. All or nothing: over the `transaction-nodes` quota
    /// (each node counts) nothing is recorded (ENOSPC), before any other work.
    pub(super) fn record(
        &mut self,
        cid: ConnId,
        txid: u32,
        caller: &Caller,
        path: &str,
        created: Option<usize>,
    ) -> Result<(), Error> {
        let limit = self.quotas_of(caller.domid).transaction_nodes;
        let room = match self.conns.get(cid) {
            Some(Some(c)) => self.room(c),
            _ => return Err(Error::Io),
        };
        let total = path::components(path).count();
        let top = created
            .filter(|&d| d + 1 < total)
            .map(|d| path::ancestor(path, d + 1));
        let main = &self.tree;
        let Some(Some(c)) = self.conns.get_mut(cid) else {
            return Err(Error::Io);
        };
        let tx = c.txs.get_mut(&txid).ok_or(Error::Noent)?;
        let new_target = !tx.accessed.contains_key(path);
        let new_top = top.filter(|t| !tx.accessed.contains_key(*t));
        // The nodes strictly between the topmost created node and the target.
        let between = match (created, new_top) {
            (Some(d), Some(_)) => total.saturating_sub(d + 2),
            _ => 0,
        };
        let count = usize::from(new_target) + usize::from(new_top.is_some()) + between;
        if count == 0 {
            return Ok(());
        }
        if !caller.privileged && over(tx.accessed_nodes + count, limit) {
            return Err(Error::Nospc);
        }
        let charge: usize = [new_target.then_some(path), new_top]
            .into_iter()
            .flatten()
            .map(path_charge)
            .sum();
        if room.exceeded(charge, charge) {
            return Err(Error::Nomem);
        }
        tx.accessed_nodes += count;
        for p in [new_target.then_some(path), new_top].into_iter().flatten() {
            let g = main.get(p).map(|n| n.generation);
            tx.path_bytes += path_charge(p);
            recharge(&mut self.conn_bytes, &mut c.tx_bytes, 0, path_charge(p));
            tx.accessed.insert(String::from(p), g);
        }
        Ok(())
    }

    /// Before a WRITE/MKDIR in a transaction creates nodes below the deepest existing
    /// ancestor in its view (`depth` components of `p`): that ancestor, if it exists in the
    /// main store, must keep its permissions (they decided the new nodes' permissions and
    /// the access check).
    pub(super) fn record_parent(
        &mut self,
        cid: ConnId,
        txid: u32,
        p: &str,
        depth: usize,
    ) -> Result<(), Error> {
        let anc = path::ancestor(p, depth);
        let perms = self.tree.get(anc).map(|n| n.perms.to_vec());
        let Some(Some(c)) = self.conns.get_mut(cid) else {
            return Err(Error::Io);
        };
        let tx = c.txs.get_mut(&txid).ok_or(Error::Noent)?;
        if let Some(perms) = perms {
            if !tx.parents.contains_key(anc) {
                tx.path_bytes += path_charge(anc);
                recharge(&mut self.conn_bytes, &mut c.tx_bytes, 0, path_charge(anc));
                tx.parents.insert(String::from(anc), perms);
            }
        }
        Ok(())
    }

    /// Makes sure a transaction has its view: built from the current main store with the
    /// transaction's overlay applied, and listed so that the next change of the main store
    /// drops it again.
    pub(super) fn tx_view(&mut self, cid: ConnId, txid: u32, caller: &Caller) -> Result<(), Error> {
        let quotas = self.quotas_of(caller.domid);
        let Some(Some(c)) = self.conns.get_mut(cid) else {
            return Err(Error::Io);
        };
        let tx = c.txs.get_mut(&txid).ok_or(Error::Noent)?;
        if tx.view.is_none() {
            let mut tree = self.tree.clone();
            let mut usage = BTreeMap::new();
            let mut st = view_store(
                &mut tree,
                &mut usage,
                &mut self.generation,
                Some(&self.usage),
                &self.domains,
                &quotas,
                true,
            );
            tx.overlay.apply(&mut st, caller, |_, _| false);
            tx.view = Some(View { tree, usage });
        }
        if !tx.listed {
            tx.listed = true;
            self.viewed.push((cid, txid));
        }
        Ok(())
    }

    /// After a change of the main store: every transaction view built from it is settled
    /// ([`Tx::settle`]), so no transaction keeps an old version of the store alive.
    pub(super) fn settle_views(&mut self) {
        self.main_changed = false;
        for (cid, txid) in mem::take(&mut self.viewed) {
            if let Some(Some(c)) = self.conns.get_mut(cid) {
                if let Some(tx) = c.txs.get_mut(&txid) {
                    let before = tx.bytes();
                    tx.settle(&self.tree);
                    recharge(&mut self.conn_bytes, &mut c.tx_bytes, before, tx.bytes());
                }
            }
        }
    }

    /// [`Engine::modify`] in transaction `id`: the operation runs on the view (with every
    /// permission and quota check), then its result goes into the overlay. Growth beyond
    /// the memory bounds is refused (ENOMEM) after the operation's own errors, as in C, and
    /// before anything is recorded.
    pub(super) fn modify_tx(
        &mut self,
        cid: ConnId,
        id: u32,
        caller: &Caller,
        op: TxOp,
        quotas: &Quotas,
        room: Room,
    ) -> Result<(), Error> {
        let path = String::from(op.path());
        self.tx_view(cid, id, caller)?;
        let before = self.tx_mut(cid, id)?.bytes();
        let depth = match &self.tx_mut(cid, id)?.view {
            Some(view) => view.tree.existing_depth(&path),
            None => return Err(Error::Io),
        };
        let creates = matches!(op, TxOp::Write(..)) && depth < path::components(&path).count();
        self.record(cid, id, caller, &path, creates.then_some(depth))?;
        if creates {
            self.record_parent(cid, id, &path, depth)?;
        }
        let Some(Some(c)) = self.conns.get_mut(cid) else {
            return Err(Error::Io);
        };
        let tx = c.txs.get_mut(&id).ok_or(Error::Noent)?;
        // What `c.tx_bytes` already counts of this transaction.
        let counted = tx.bytes();
        let mark = tx.touched.len();
        tx.touch_op(&op, depth);
        // What recording the accesses and touches of this request added.
        let recorded = tx.bytes().saturating_sub(before);
        let Some(view) = tx.view.as_mut() else {
            return Err(Error::Io);
        };
        let backup = View {
            tree: view.tree.clone(),
            usage: view.usage.clone(),
        };
        let mut st = view_store(
            &mut view.tree,
            &mut view.usage,
            &mut self.generation,
            Some(&self.usage),
            &self.domains,
            quotas,
            false,
        );
        let result = apply(&mut st, caller, &op);
        let written = st.written;
        let result = result.and_then(|()| {
            let grow = recorded + transaction::growth(&tx.overlay, &view.tree, &op, depth);
            if room.exceeded(grow, grow) {
                Err(Error::Nomem)
            } else {
                Ok(())
            }
        });
        if let Err(e) = result {
            tx.untouch_from(mark);
            tx.view = Some(backup);
            recharge(&mut self.conn_bytes, &mut c.tx_bytes, counted, tx.bytes());
            return Err(e);
        }
        transaction::record_op(&mut tx.overlay, &view.tree, &op, depth);
        tx.thaw(&path, matches!(op, TxOp::Rm(_)));
        recharge(&mut self.conn_bytes, &mut c.tx_bytes, counted, tx.bytes());
        wrl_debit(self, caller, written);
        Ok(())
    }

    pub(super) fn tx_start(
        &mut self,
        cid: ConnId,
        h: Header,
        caller: &Caller,
        reply: &mut Vec<u8>,
    ) -> Result<(), Error> {
        if h.tx_id != 0 {
            return Err(Error::Busy);
        }
        let limit = self.quotas_of(caller.domid).transactions;
        let Some(Some(c)) = self.conns.get_mut(cid) else {
            return Err(Error::Io);
        };
        if !caller.privileged && over(c.txs.len(), limit) {
            return Err(Error::Nospc);
        }
        let mut id = c.next_tx;
        while id == 0 || c.txs.contains_key(&id) {
            id = id.wrapping_add(1);
        }
        c.next_tx = id.wrapping_add(1);
        c.txs.insert(id, Tx::default());
        self.open_txs += 1;
        perms::push_decimal(reply, u64::from(id));
        reply.push(0);
        Ok(())
    }

    /// TRANSACTION_END: a commit applies the overlay to the main store if nothing the
    /// transaction accessed changed (else EAGAIN). Permission entries naming a domain that
    /// is gone, or was replaced by a new one with the same domid, since the transaction set
    /// them are purged (an owner gives way to dom0): no later domain inherits them.
    pub(super) fn tx_end(
        &mut self,
        cid: ConnId,
        id: u32,
        caller: &Caller,
        commit: bool,
        changes: &mut Vec<Change>,
    ) -> Result<(), Error> {
        let Some(Some(c)) = self.conns.get_mut(cid) else {
            return Err(Error::Io);
        };
        let tx = c.txs.remove(&id).ok_or(Error::Noent)?;
        self.open_txs -= 1;
        recharge(&mut self.conn_bytes, &mut c.tx_bytes, tx.bytes(), 0);
        if !commit {
            return Ok(());
        }
        if !tx.still_valid(&self.tree) {
            return Err(Error::Again);
        }
        self.main_changed = true;
        let quotas = self.quotas_of(caller.domid);
        let domains = &self.domains;
        let mut replayed = Vec::new();
        let mut st = Store {
            tree: &mut self.tree,
            generation: &mut self.generation,
            usage: &mut self.usage,
            total: Some(&mut self.usage_total),
            base_usage: None,
            domains,
            quotas: &quotas,
            force: true,
            changes: Some(&mut replayed),
            written: 0,
        };
        tx.overlay
            .apply(&mut st, caller, |p, gen| store::stale(domains, p, gen));
        replayed.retain(|ch| !tx.overlay.unnamed(&ch.path));
        tx.order_changes(&mut replayed);
        changes.extend(replayed);
        wrl_debit(self, caller, 1);
        Ok(())
    }

    /// Whether any connection has a transaction open (write-rate debt is possible only then).
    pub(super) fn any_transaction(&self) -> bool {
        self.open_txs > 0
    }
}
