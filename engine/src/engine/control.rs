//! CONTROL commands (`xenstore-control`): check, log, print, memreport, quotas, help
//! (`live-update` is in `live_update`).

use super::*;

impl<P: Platform> Engine<P> {
    pub(super) fn control(&mut self, args: &[&[u8]], reply: &mut Vec<u8>) -> Result<(), Error> {
        let (cmd, rest) = args.split_first().ok_or(Error::Inval)?;
        let text = |reply: &mut Vec<u8>, s: &str| {
            reply.extend_from_slice(s.as_bytes());
            reply.push(0);
        };
        match (*cmd, rest) {
            (b"check", []) => {
                self.check().map_err(|_| Error::Io)?;
                text(reply, "OK");
            }
            (b"log", [b"on"]) => {
                self.logging = true;
                text(reply, "OK");
            }
            (b"log", [b"off"]) => {
                self.logging = false;
                text(reply, "OK");
            }
            (b"print", [s]) => {
                let line = String::from_utf8_lossy(s);
                self.platform.log(&line);
                text(reply, "OK");
            }
            (b"memreport", [] | [_]) => {
                let mut s = String::new();
                for (d, u) in &self.usage {
                    s.push_str(&format!("domain {d}: {} nodes, {} bytes\n", u.nodes, u.bytes));
                }
                let limit = self.cfg.global_memory;
                if limit != 0 {
                    let total = self.charged_total();
                    s.push_str(&format!("total: {total} bytes charged, limit {limit}\n"));
                }
                s.push_str(&format!("connections: {}\n", self.conns.iter().flatten().count()));
                self.platform.memreport(&mut s);
                text(reply, &s);
            }
            (b"quota", []) => {
                let q = self.cfg.quotas;
                let mut s = String::from("Quota settings:\n");
                // Current C xenstored's order, names and descriptions (4.20).
                for (name, v, what) in [
                    ("nodes", q.nodes, "Nodes per domain"),
                    ("watches", q.watches, "Watches per domain"),
                    ("outstanding", q.outstanding, "Outstanding requests per domain"),
                    ("memory", q.memory, "Total Xenstore memory per domain (error level)"),
                    ("transactions", q.transactions, "Active transactions per domain"),
                    ("transaction-nodes", q.transaction_nodes, "Max. number of accessed nodes per transaction"),
                    ("node-permissions", q.permissions, "Max. number of permissions per node"),
                    ("path-max", q.path_max, "Max. length of a node path"),
                    ("node-size", q.node_size, "Max. size of a node"),
                ] {
                    s.push_str(&format!("{name:<17}: {v:>8} {what}\n"));
                }
                text(reply, &s);
            }
            (b"quota", [b"set", b"global-memory", v]) => {
                self.cfg.global_memory = wire::parse_u32(v).ok_or(Error::Inval)?;
                text(reply, "OK");
            }
            (b"quota", [b"set", name, v]) => {
                let name = core::str::from_utf8(name).map_err(|_| Error::Inval)?;
                let v = wire::parse_u32(v).ok_or(Error::Inval)?;
                if !self.cfg.quotas.set(name, v) {
                    return Err(Error::Inval);
                }
                text(reply, "OK");
            }
            (b"quota", [d]) => {
                let d = wire::parse_u32(d).ok_or(Error::Inval)?;
                let dom = self.domains.get(&d).ok_or(Error::Noent)?;
                let u = self.usage.get(&d).copied().unwrap_or_default();
                let conn = dom.conn.and_then(|c| self.conns.get(c)?.as_ref());
                let (watches, txs, outstanding) =
                    conn.map_or((0, 0, 0), |c| (c.watches.len(), c.txs.len(), c.out.iter().filter(|m| !m.event).count()));
                let mut s = format!("Domain {d}:\n");
                for (name, v) in [
                    ("nodes", u.nodes),
                    ("watches", watches as i64),
                    ("transactions", txs as i64),
                    ("outstanding", outstanding as i64),
                    ("memory", u.bytes),
                ] {
                    s.push_str(&format!("{name:<16}: {v:>8}\n"));
                }
                text(reply, &s);
            }
            (b"quota-soft", []) => text(
                reply,
                &format!(
                    "Quota settings:\n{:<17}: {:>8} Total Xenstore memory per domain (warning level)\n",
                    "memory", self.cfg.soft_memory
                ),
            ),
            (b"quota-soft", [b"set", b"memory", v]) => {
                self.cfg.soft_memory = wire::parse_u32(v).ok_or(Error::Inval)?;
                text(reply, "OK");
            }
            // Current C xenstored's layout (4.20), listing the commands served here.
            (b"help", []) => text(
                reply,
                "check           \n\
                 log             [on|off]\n\
                 live-update     [-c <cmdline>] [-F] [-t <timeout>] <file>\n    \
                 Default timeout is 60 seconds.\n\
                 memreport       [<file>]\n\
                 print           <string>\n\
                 quota           [set <name> <val>|<domid>]\n\
                 quota-soft      [set <name> <val>]\n\
                 help            \n",
            ),
            _ => return Err(Error::Inval),
        }
        Ok(())
    }
}
