//! Domains: the domain table, INTRODUCE, and what happens when a domain shuts down or goes.

use super::*;

impl<P: Platform> Engine<P> {
    pub(super) fn new_domain(&mut self, domid: u32) -> &mut Domain {
        let now = self.platform.now_ms();
        let quotas = self.cfg.quotas;
        // Strictly newer than every node written so far (domid-reuse checks).
        self.generation += 1;
        let gen = self.generation;
        self.domains
            .entry(domid)
            .or_insert_with(|| Domain::new(gen, quotas, now))
    }

    /// Makes sure a domain struct exists for `domid` if the platform says it exists.
    pub(super) fn ensure_domain(&mut self, domid: u32) -> bool {
        if self.domains.contains_key(&domid) {
            return true;
        }
        if domid >= DOMID_SELF || !self.platform.domain_exists(domid) {
            return false;
        }
        self.new_domain(domid);
        true
    }

    pub(super) fn is_privileged(&self, domid: u32) -> bool {
        domid == 0 || Some(domid) == self.cfg.priv_domid
    }

    /// The connection of an introduced domain.
    pub fn domain_connection(&self, domid: u32) -> Option<ConnId> {
        self.domains.get(&domid)?.conn
    }

    /// The `server_features` value for a domain's ring (SET_FEATURE may lower it).
    pub fn domain_features(&self, domid: u32) -> u32 {
        self.domains.get(&domid).map_or(FEATURES, |d| d.features)
    }

    /// INTRODUCE from the host (e.g. dom0's own ring at start): like the request, with
    /// `@introduceDomain` fired at once.
    pub fn introduce(&mut self, domid: u32, mfn: u64, port: u32) -> Result<(), Error> {
        let r = self.introduce_domain(domid, mfn, port);
        for (which, d) in mem::take(&mut self.pending_special) {
            self.fire_special(which, d);
        }
        r
    }

    pub(super) fn introduce_domain(
        &mut self,
        domid: u32,
        mfn: u64,
        port: u32,
    ) -> Result<(), Error> {
        if domid >= DOMID_SELF || port == 0 {
            return Err(Error::Inval);
        }
        if let Some(cid) = self.domains.get(&domid).and_then(|d| d.conn) {
            self.reset_connection(cid);
            self.platform.reintroduce(cid, domid, port)?;
            if let Some(d) = self.domains.get_mut(&domid) {
                d.port = port;
            }
            return Ok(());
        }
        let cid = self.new_connection(domid);
        if let Err(e) = self.platform.introduce(cid, domid, mfn, port) {
            self.conns[cid] = None;
            return Err(e);
        }
        let now = self.platform.now_ms();
        self.new_domain(domid);
        if let Some(d) = self.domains.get_mut(&domid) {
            d.conn = Some(cid);
            (d.mfn, d.port) = (mfn, port);
            d.shutdown_reported = false;
            self.wrl.domain_new(d, now);
        }
        if domid != 0 {
            self.pending_special.push((0, domid));
        }
        Ok(())
    }

    /// The platform saw domain `domid` shut down or crash (VIRQ_DOM_EXC scan):
    /// `@releaseDomain` fires once (until RESUME).
    pub fn domain_shutdown(&mut self, domid: u32) {
        let fire = match self.domains.get_mut(&domid) {
            Some(d) if d.conn.is_some() && !d.shutdown_reported => {
                d.shutdown_reported = true;
                true
            }
            _ => false,
        };
        if fire {
            self.fire_special(1, domid);
        }
    }

    /// Domain `domid` is dying or gone (or was RELEASEd): its connection is torn down, the
    /// nodes it owns are deleted (XSA-419), and `@releaseDomain` fires.
    pub fn domain_gone(&mut self, domid: u32) {
        if domid == 0 {
            return;
        }
        let known = self.domains.remove(&domid);
        let was_known = known.is_some();
        if let Some(mut d) = known {
            if d.conn.is_some() {
                self.wrl.domain_gone(&mut d);
            }
            if let Some(cid) = d.conn {
                self.platform.release(cid, domid);
                self.retire(cid);
                if let Some(slot) = self.conns.get_mut(cid) {
                    *slot = None;
                }
            }
        }
        for x in self.domains.values_mut() {
            if x.target == Some(domid) {
                x.target = None;
            }
        }
        for sp in self.special_perms.iter_mut() {
            let owner = sp.first().copied();
            sp.retain(|p| p.domid != domid);
            if sp.is_empty() || sp.first().copied() != owner {
                *sp = n0();
            }
        }
        // The subtrees it owns go (XSA-419); other nodes forget it (no later domain with
        // its domid inherits an entry). Done even if the domain was not in the table.
        let mut roots: Vec<String> = Vec::new();
        let mut naming: Vec<(String, Vec<Perm>)> = Vec::new();
        tree::walk(self.tree.root(), "/", |p, n| {
            // Pre-order: a root's subtree is walked right after it.
            if roots
                .last()
                .is_some_and(|r| r != "/" && path::is_child(p, r))
            {
                return;
            }
            if n.owner() == domid {
                roots.push(String::from(p));
            } else if n.perms.iter().skip(1).any(|e| e.domid == domid) {
                let mut kept = n.perms.to_vec();
                perms::purge(&mut kept, |e| e.domid == domid);
                naming.push((String::from(p), kept));
            }
        });
        let mut changes = Vec::new();
        let quotas = self.cfg.quotas;
        let caller = Caller {
            domid: 0,
            target: None,
            privileged: true,
        };
        let mut st = self.main_store(&quotas, true, &mut changes);
        for r in &roots {
            if r == "/" {
                // The root cannot go: it falls back to dom0.
                let mut perms = st.tree.root().perms.clone();
                if let Some(o) = perms.first_mut() {
                    o.domid = 0;
                }
                let _ = st.set_perms(&caller, r, perms);
            } else {
                let _ = st.rm(&caller, r);
            }
        }
        // Purging entries is no change a watcher asked about: no events.
        st.changes = None;
        for (p, perms) in naming {
            let _ = st.set_perms(&caller, &p, perms);
        }
        if self.usage.get(&domid).is_some_and(|u| u.nodes == 0) {
            self.usage.remove(&domid);
        }
        self.settle_views();
        for ch in &changes {
            self.fire(ch);
        }
        if was_known {
            self.fire_special(1, domid);
        }
    }
}
