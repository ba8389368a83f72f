//! `xs-diff --a SOCKET --b SOCKET [--name-a N] [--name-b N] [--seed N] [--sequences N]
//! [--first-sequence N] [--ops N] [--max-divergences N]`: differential test.
//!
//! Sends the same random request sequences (privileged socket clients, two connections per
//! server, transactions, watches) to two servers and compares every reply and every watch
//! event. Stops at the first divergence and prints the sequence that led to it (with the
//! options that replay it alone) and both replies; `--max-divergences N` reports up to N
//! diverging sequences, each ending its sequence, before giving up.
//!
//! Normalizations (each a documented freedom of the protocol or a deliberate difference in
//! engine/DIFFERENCES.md):
//! * TRANSACTION_START: the id's value is not compared (each side's own ids are tracked);
//! * DIRECTORY_PART: the generation count is not compared (item 7);
//! * DIRECTORY / DIRECTORY_PART: child names compared as sorted lists (order is unspecified);
//! * watch events: compared per connection as sorted sets after a sync round trip (identical
//!   pending events may be coalesced, events of other connections arrive asynchronously, and
//!   item 15 orders RM events differently);
//! * transaction isolation (item 14): both servers show a node as it is when the
//!   transaction first accesses it and fail the commit if an accessed node changed since, but
//!   C also conflicts on a parent whose child list changed, and once an accessed node has
//!   changed C still shows newer outside changes where ferrostored keeps its view. The two
//!   agree until a transaction uses a path whose parent, or nearest existing ancestor, is
//!   related to (equal to, above or below) a path changed by someone else after it started.
//!   From then on that transaction is "diverged": its replies are not compared and its
//!   commit is sent as an abort to both servers, so both stores stay identical.
//!   `xs-conform differences` asserts ferrostored's own transaction behaviour.
//!
//! Never generated: inputs that make C xenstored 4.17 abort (empty or unterminated
//! one-argument requests; `xs-conform badinput` covers them), CONTROL, INTRODUCE/RELEASE,
//! WATCH with a depth, GET/SET_FEATURE/QUOTA (`xs-conform guest` and `differences`).
#![forbid(unsafe_code)]

use std::process::ExitCode;
use xs_conformance::rng::Rng;
use xs_conformance::wire::{self, Msg, MsgType};
use xs_conformance::Client;

/// One generated step, independent of either server's transaction ids.
#[derive(Clone, Debug)]
enum Step {
    /// A request on connection `conn`, inside open transaction slot `tx` (None = no tx,
    /// Some(usize::MAX) = a bogus id).
    Req {
        conn: usize,
        tx: Option<usize>,
        ty: MsgType,
        payload: Vec<u8>,
    },
    TxStart {
        conn: usize,
    },
    TxEnd {
        conn: usize,
        slot: usize,
        commit: bool,
    },
}

impl Step {
    fn describe(&self) -> String {
        match self {
            Step::Req {
                conn,
                tx,
                ty,
                payload,
            } => {
                let t = match tx {
                    None => String::new(),
                    Some(usize::MAX) => " tx=bogus".into(),
                    Some(s) => format!(" tx=slot{s}"),
                };
                format!("c{conn}{t} {ty:?} {}", wire::show(payload))
            }
            Step::TxStart { conn } => format!("c{conn} TRANSACTION_START"),
            Step::TxEnd { conn, slot, commit } => {
                format!(
                    "c{conn} TRANSACTION_END slot{slot} {}",
                    if *commit { "T" } else { "F" }
                )
            }
        }
    }
}

const CONNS: usize = 2;
const BOGUS_TX: u32 = 0x7777;

struct Side {
    name: String,
    socket: String,
    conns: Vec<Client>,
    txs: Vec<Vec<u32>>,
}

impl Side {
    fn reset(&mut self) -> Result<(), String> {
        self.conns.clear();
        self.txs = vec![Vec::new(); CONNS];
        for _ in 0..CONNS {
            let c = Client::connect(&self.socket)
                .map_err(|e| format!("{}: connect {}: {e}", self.name, self.socket))?;
            self.conns.push(c);
        }
        for path in ["/diff", "/local/domain/0/diffrel"] {
            self.conns[0]
                .rm(0, path)
                .or_else(|e| {
                    if e == "ENOENT" {
                        Ok(Vec::new())
                    } else {
                        Err(e)
                    }
                })
                .map_err(|e| format!("{}: cleanup RM {path}: {e}", self.name))?;
        }
        Ok(())
    }

    /// Executes a step; returns the normalized reply and the events seen on every connection.
    fn apply(&mut self, step: &Step) -> Result<(String, Vec<Vec<String>>), String> {
        let io = |e: std::io::Error| format!("I/O error: {e}");
        let rendered = match step {
            Step::Req {
                conn,
                tx,
                ty,
                payload,
            } => {
                let id = match tx {
                    None => 0,
                    Some(usize::MAX) => BOGUS_TX,
                    Some(s) => self.txs[*conn].get(*s).copied().unwrap_or(BOGUS_TX),
                };
                let m = self.conns[*conn]
                    .request_msg(ty.code(), id, payload)
                    .map_err(io)?;
                if *ty == MsgType::ResetWatches && m.ty == ty.code() {
                    self.txs[*conn].clear();
                }
                normalize(*ty, &m)
            }
            Step::TxStart { conn } => {
                let m = self.conns[*conn]
                    .request_msg(MsgType::TransactionStart.code(), 0, b"\0")
                    .map_err(io)?;
                if m.ty == MsgType::TransactionStart.code() {
                    let id = wire::split(&m.payload)
                        .first()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| format!("bad transaction id {}", m.describe()))?;
                    self.txs[*conn].push(id);
                    "TRANSACTION_START <id>".to_string()
                } else {
                    m.describe()
                }
            }
            Step::TxEnd { conn, slot, commit } => {
                let id = self.txs[*conn].get(*slot).copied().unwrap_or(BOGUS_TX);
                if *slot < self.txs[*conn].len() {
                    self.txs[*conn].remove(*slot);
                }
                let pl: &[u8] = if *commit { b"T\0" } else { b"F\0" };
                self.conns[*conn]
                    .request_msg(MsgType::TransactionEnd.code(), id, pl)
                    .map_err(io)?
                    .describe()
            }
        };
        let mut events = Vec::new();
        for c in &mut self.conns {
            c.request_msg(MsgType::GetDomainPath.code(), 0, b"0\0")
                .map_err(io)?;
            let mut ev: Vec<String> = c
                .take_queued_events()
                .into_iter()
                .map(|(p, t)| format!("{p} {t}"))
                .collect();
            ev.sort();
            ev.dedup();
            events.push(ev);
        }
        Ok((rendered, events))
    }
}

/// Renders a reply with the documented normalizations applied.
fn normalize(ty: MsgType, m: &Msg) -> String {
    if m.ty != ty.code() {
        return m.describe();
    }
    match ty {
        MsgType::Directory => {
            let mut names = wire::split(&m.payload);
            names.sort();
            format!("DIRECTORY {names:?}")
        }
        MsgType::DirectoryPart => {
            let s = wire::split(&m.payload);
            let mut names: Vec<String> = s.iter().skip(1).cloned().collect();
            let last_empty = names.last().is_some_and(|n| n.is_empty());
            names.sort();
            format!("DIRECTORY_PART <gen> {names:?} end={last_empty}")
        }
        _ => m.describe(),
    }
}

/// Bookkeeping of one open transaction for the isolation normalization.
#[derive(Default)]
struct TxState {
    /// Paths changed outside this transaction since it started.
    changed: Vec<String>,
    /// Paths this transaction changed (published to the others when it commits).
    own: Vec<String>,
    /// Parents of every path this transaction used: C xenstored also accesses the parent
    /// (its child list) when creating or deleting, so a change below it conflicts in C.
    touched: Vec<String>,
    diverged: bool,
}

/// Tracks open transactions by connection and slot, mirroring the generator's slots.
struct Tracker {
    open: Vec<Vec<TxState>>,
}

fn canonical(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/local/domain/0/{path}")
    }
}

/// True when a change at `a` can affect what a request on `b` sees (or vice versa).
fn related(a: &str, b: &str) -> bool {
    a == b
        || a == "/"
        || b == "/"
        || a.strip_prefix(b).is_some_and(|r| r.starts_with('/'))
        || b.strip_prefix(a).is_some_and(|r| r.starts_with('/'))
}

/// The parent of a canonical path ("/" for top-level nodes and for "/").
fn parent(path: &str) -> String {
    match path.rsplit_once('/') {
        Some(("", _)) | None => "/".to_string(),
        Some((p, _)) => p.to_string(),
    }
}

/// The nearest strict ancestor of `path` that exists in side A's store (outside transactions).
fn existing_ancestor(side: &mut Side, path: &str) -> String {
    let mut q = parent(path);
    while q != "/" {
        match side.conns[0].read(0, &q) {
            Err(e) if e == "ENOENT" => q = parent(&q),
            _ => break,
        }
    }
    q
}

fn first_path(payload: &[u8]) -> String {
    canonical(&wire::split(payload).into_iter().next().unwrap_or_default())
}

/// Requests that change the store when they succeed.
fn modifies(ty: MsgType) -> bool {
    matches!(
        ty,
        MsgType::Write | MsgType::Mkdir | MsgType::Rm | MsgType::SetPerms
    )
}

impl Tracker {
    /// Called before a step is sent: marks transactions diverged, turns commits of diverged
    /// transactions into aborts, and says whether the step's replies are compared. `anchor` is,
    /// for a request inside a transaction, the nearest existing ancestor of its path: C
    /// xenstored accesses the ancestors of a missing node (permission lookup) and changes the
    /// child list of the nearest existing one when creating.
    fn prepare(&mut self, step: &mut Step, anchor: Option<String>) -> bool {
        match step {
            Step::Req {
                conn,
                tx: Some(slot),
                payload,
                ..
            } => match self.open[*conn].get_mut(*slot) {
                Some(st) => {
                    let parent = parent(&first_path(payload));
                    if st.changed.iter().any(|c| related(c, &parent)) {
                        st.diverged = true;
                    }
                    st.touched.push(parent);
                    st.touched.extend(anchor);
                    !st.diverged
                }
                None => true,
            },
            Step::TxEnd { conn, slot, commit } => {
                let conflicted = |st: &TxState| {
                    st.diverged
                        || st
                            .touched
                            .iter()
                            .any(|t| st.changed.iter().any(|c| related(c, t)))
                };
                if self.open[*conn].get(*slot).is_some_and(conflicted) {
                    *commit = false;
                }
                true
            }
            _ => true,
        }
    }

    /// Called after both servers answered; `ok` is whether the reply was not an error.
    fn record(&mut self, step: &Step, ok: bool) {
        match step {
            Step::Req {
                conn,
                tx,
                ty,
                payload,
            } => {
                if *ty == MsgType::ResetWatches && ok {
                    self.open[*conn].clear();
                } else if modifies(*ty) && ok {
                    let path = first_path(payload);
                    match tx {
                        Some(slot) => {
                            if let Some(st) = self.open[*conn].get_mut(*slot) {
                                st.own.push(path);
                            }
                        }
                        None => self.publish(&[path]),
                    }
                }
            }
            Step::TxStart { conn } => {
                if ok {
                    self.open[*conn].push(TxState::default());
                }
            }
            Step::TxEnd { conn, slot, commit } => {
                if *slot < self.open[*conn].len() {
                    let st = self.open[*conn].remove(*slot);
                    if *commit && ok {
                        self.publish(&st.own);
                    }
                }
            }
        }
    }

    fn publish(&mut self, paths: &[String]) {
        for st in self.open.iter_mut().flatten() {
            st.changed.extend_from_slice(paths);
        }
    }
}

struct Gen {
    rng: Rng,
    open: Vec<usize>,
}

impl Gen {
    fn path(&mut self) -> String {
        let r = self.rng.below(100);
        if r < 4 {
            return self
                .rng
                .pick(&[
                    "/diff//a",
                    "/diff/a/",
                    "/diff/a b",
                    "//",
                    "/diff/\u{e9}",
                    "diffrel/",
                ])
                .to_string();
        }
        let depth = 1 + self.rng.below(3);
        let mut p = if r < 15 {
            "diffrel".to_string()
        } else if r < 20 {
            "/local/domain/0/diffrel".to_string()
        } else {
            "/diff".to_string()
        };
        for _ in 0..depth {
            p.push('/');
            let name: &&str = self.rng.pick(&["a", "b", "c"]);
            p.push_str(name);
        }
        p
    }

    fn value(&mut self) -> Vec<u8> {
        match self.rng.below(5) {
            0 => Vec::new(),
            1 => b"x".to_vec(),
            2 => b"value".to_vec(),
            3 => {
                let n = 1 + self.rng.below(8);
                self.rng.bytes(n)
            }
            _ => vec![b'v'; self.rng.below(300)],
        }
    }

    fn perms(&mut self) -> Vec<String> {
        let n = self.rng.below(4);
        let mut v: Vec<String> = (0..n)
            .map(|_| {
                let c = self.rng.pick(&['n', 'r', 'w', 'b']);
                format!("{c}0")
            })
            .collect();
        if self.rng.chance(1, 10) {
            v.push(self.rng.pick(&["q0", "r", "w5", "rx"]).to_string());
        }
        v
    }

    fn step(&mut self, conn: usize) -> Step {
        let r = self.rng.below(100);
        if r < 6 {
            self.open[conn] += 1;
            return Step::TxStart { conn };
        }
        if r < 11 && self.open[conn] > 0 {
            let slot = self.rng.below(self.open[conn]);
            self.open[conn] -= 1;
            return Step::TxEnd {
                conn,
                slot,
                commit: self.rng.chance(3, 4),
            };
        }
        let tx = if self.open[conn] > 0 && self.rng.chance(1, 2) {
            Some(self.rng.below(self.open[conn]))
        } else if self.rng.chance(1, 50) {
            Some(usize::MAX)
        } else {
            None
        };
        let path = self.path();
        let (ty, payload) = match self.rng.below(100) {
            0..=24 => {
                let mut p = wire::strings(&[&path]);
                p.extend(self.value());
                (MsgType::Write, p)
            }
            25..=44 => (MsgType::Read, wire::strings(&[&path])),
            45..=51 => (MsgType::Mkdir, wire::strings(&[&path])),
            52..=61 => (MsgType::Rm, wire::strings(&[&path])),
            62..=69 => (MsgType::Directory, wire::strings(&[&path])),
            70..=73 => (MsgType::GetPerms, wire::strings(&[&path])),
            74..=78 => {
                let perms = self.perms();
                let mut parts = vec![path.as_str()];
                parts.extend(perms.iter().map(String::as_str));
                (MsgType::SetPerms, wire::strings(&parts))
            }
            79..=85 => {
                let tok = self.rng.pick(&["t1", "t2"]).to_string();
                (MsgType::Watch, wire::strings(&[&path, &tok]))
            }
            86..=88 => {
                let tok = self.rng.pick(&["t1", "t2"]).to_string();
                (MsgType::Unwatch, wire::strings(&[&path, &tok]))
            }
            89..=92 => {
                let off = self.rng.pick(&["0", "2", "4", "100"]).to_string();
                (MsgType::DirectoryPart, wire::strings(&[&path, &off]))
            }
            93..=94 => {
                let d = self.rng.pick(&["0", "1", "7", "32752"]).to_string();
                (MsgType::GetDomainPath, wire::strings(&[&d]))
            }
            95..=96 => {
                let d = self.rng.pick(&["0", "3"]).to_string();
                (MsgType::IsDomainIntroduced, wire::strings(&[&d]))
            }
            _ => {
                self.open[conn] = 0;
                (MsgType::ResetWatches, b"\0".to_vec())
            }
        };
        let tx = match ty {
            MsgType::ResetWatches | MsgType::Watch | MsgType::Unwatch => None,
            _ => tx,
        };
        Step::Req {
            conn,
            tx,
            ty,
            payload,
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let num = |k: &str, d: u64| get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
    let (Some(a), Some(b)) = (get("--a"), get("--b")) else {
        eprintln!(
            "usage: xs-diff --a SOCKET --b SOCKET [--name-a N] [--name-b N] [--seed N] \
             [--sequences N] [--first-sequence N] [--ops N] [--max-divergences N]"
        );
        return ExitCode::from(2);
    };
    let seed = num("--seed", 1);
    let sequences = num("--sequences", 2000);
    let ops = num("--ops", 40) as usize;
    let mut sides = [
        Side {
            name: get("--name-a").unwrap_or_else(|| "A".into()),
            socket: a,
            conns: Vec::new(),
            txs: Vec::new(),
        },
        Side {
            name: get("--name-b").unwrap_or_else(|| "B".into()),
            socket: b,
            conns: Vec::new(),
            txs: Vec::new(),
        },
    ];
    let mut requests = 0u64;
    let mut compared = 0u64;
    let mut divergences = 0u64;
    let max_divergences = num("--max-divergences", 1);
    let first = num("--first-sequence", 0);
    for seq in first..first + sequences {
        let mut g = Gen {
            rng: Rng::new(seed.wrapping_mul(1_000_003).wrapping_add(seq)),
            open: vec![0; CONNS],
        };
        for s in &mut sides {
            if let Err(e) = s.reset() {
                eprintln!("xs-diff: {e}");
                return ExitCode::FAILURE;
            }
        }
        let mut history = Vec::new();
        let mut tracker = Tracker {
            open: (0..CONNS).map(|_| Vec::new()).collect(),
        };
        for _ in 0..ops {
            let conn = g.rng.below(CONNS);
            let mut step = g.step(conn);
            let anchor = match &step {
                Step::Req {
                    tx: Some(_),
                    payload,
                    ..
                } => Some(existing_ancestor(&mut sides[0], &first_path(payload))),
                _ => None,
            };
            let compare = tracker.prepare(&mut step, anchor);
            let ra = sides[0].apply(&step);
            let rb = sides[1].apply(&step);
            requests += 1;
            history.push(if compare {
                step.describe()
            } else {
                format!(
                    "{} (diverged transaction: reply not compared)",
                    step.describe()
                )
            });
            let same = match (&ra, &rb) {
                (Ok((a, ea)), Ok((b, eb))) => (!compare || a == b) && ea == eb,
                _ => false,
            };
            if !same {
                divergences += 1;
                println!(
                    "xs-diff: DIVERGENCE at seed {seed} sequence {seq} step {}",
                    history.len()
                );
                if divergences == 1 {
                    println!(
                        "  sequence so far (reproduce with --seed {seed} --first-sequence {seq} \
                         --sequences 1):"
                    );
                    for h in &history {
                        println!("    {h}");
                    }
                } else if let Some(h) = history.last() {
                    println!("    {h}");
                }
                for (s, r) in sides.iter().zip([ra, rb]) {
                    match r {
                        Ok((reply, ev)) => println!("  {:>12}: {reply}  events {ev:?}", s.name),
                        Err(e) => println!("  {:>12}: {e}", s.name),
                    }
                }
                if divergences >= max_divergences {
                    println!("xs-diff: FAILED after {requests} requests");
                    return ExitCode::FAILURE;
                }
                break;
            }
            if compare {
                compared += 1;
            }
            let ok = ra.as_ref().is_ok_and(|(r, _)| !r.starts_with("ERROR"));
            tracker.record(&step, ok);
        }
    }
    if divergences > 0 {
        println!("xs-diff: FAILED: {divergences} diverging sequences in {requests} requests");
        return ExitCode::FAILURE;
    }
    println!(
        "xs-diff: {sequences} sequences, {requests} requests ({compared} replies compared), \
         replies and events identical ({} vs {})",
        sides[0].name, sides[1].name
    );
    ExitCode::SUCCESS
}
