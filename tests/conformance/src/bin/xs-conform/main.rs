//! `xs-conform SUITE --socket PATH [...]`: conformance suites run against a live xenstore
//! server. Suites: `proto` (protocol replies), `badinput` (malformed input and the XSA list),
//! `guest` (unprivileged domains through simulated-guest sockets), `fuzz` (random byte
//! streams), `tools` (Debian's xenstore-* commands, xenstore-control and pyxs),
//! `differences` (ferrostored's deliberate differences from C xenstored 4.17).
//!
//! Prints one line per test and `<suite>: N passed, M failed`; exits 1 on any failure.
#![forbid(unsafe_code)]

mod badinput;
mod differences;
mod fuzz;
mod guest;
mod proto;
mod tools;

use std::path::PathBuf;
use std::process::ExitCode;
use xs_conformance::harness::Runner;
use xs_conformance::{wire, Client};

/// What every suite needs: where the server is and how to reach simulated guests.
pub struct Ctx {
    pub socket: PathBuf,
    pub domain_dir: Option<PathBuf>,
    pub seed: u64,
    pub iterations: usize,
    /// The server's `--priv-domid`, if it was started with one.
    pub priv_domid: Option<u32>,
}

impl Ctx {
    /// A new privileged connection.
    pub fn conn(&self) -> Result<Client, String> {
        Client::connect(&self.socket)
            .map_err(|e| format!("cannot connect to {}: {e}", self.socket.display()))
    }

    /// A fresh privileged connection with `base` removed, so a test starts from nothing.
    pub fn fresh(&self, base: &str) -> Result<Client, String> {
        let mut c = self.conn()?;
        match c.rm(0, base) {
            Ok(_) => Ok(c),
            Err(e) if e == "ENOENT" => Ok(c),
            Err(e) => Err(format!("cleanup RM {base}: {e}")),
        }
    }
}

/// Sends a cheap request and returns every watch event that arrived before its reply: the
/// events caused by everything this connection (or, earlier, anybody) did before.
pub fn sync_events(c: &mut Client) -> Result<Vec<(String, String)>, String> {
    c.call(wire::MsgType::GetDomainPath, 0, b"0\0")
        .map_err(|e| format!("sync request failed: {e}"))?;
    let mut ev = c.take_queued_events();
    ev.sort();
    Ok(ev)
}

/// Checks that exactly `want` (in any order) arrived before a sync round trip.
pub fn expect_events(c: &mut Client, what: &str, want: &[(&str, &str)]) -> Result<(), String> {
    let got = sync_events(c)?;
    let mut want: Vec<(String, String)> = want
        .iter()
        .map(|(p, t)| ((*p).to_string(), (*t).to_string()))
        .collect();
    want.sort();
    xs_conformance::harness::eq(what, got, want)
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: xs-conform proto|badinput|guest|fuzz|tools|differences --socket PATH \
         [--domain-dir DIR] [--priv-domid N] [--filter SUBSTR] [--seed N] [--iterations N] [--skip T1,T2] [--quiet]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(suite) = args.first().cloned() else {
        return usage();
    };
    let mut socket = std::env::var_os("XENSTORED_PATH").map(PathBuf::from);
    let mut domain_dir = None;
    let mut filter = None;
    let mut seed = 1;
    let mut iterations = 0;
    let mut quiet = false;
    let mut skip = Vec::new();
    let mut priv_domid = None;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned();
        match a.as_str() {
            "--socket" => socket = value().map(PathBuf::from),
            "--domain-dir" => domain_dir = value().map(PathBuf::from),
            "--filter" => filter = value(),
            "--seed" => seed = value().and_then(|v| v.parse().ok()).unwrap_or(1),
            "--iterations" => iterations = value().and_then(|v| v.parse().ok()).unwrap_or(0),
            "--quiet" => quiet = true,
            "--priv-domid" => priv_domid = value().and_then(|v| v.parse().ok()),
            "--skip" => {
                skip = value()
                    .map(|v| v.split(',').map(str::to_string).collect())
                    .unwrap_or_default()
            }
            _ => return usage(),
        }
    }
    let Some(socket) = socket else {
        eprintln!("xs-conform: no server socket: pass --socket PATH or set XENSTORED_PATH");
        return ExitCode::from(2);
    };
    let ctx = Ctx {
        socket,
        domain_dir,
        seed,
        iterations,
        priv_domid,
    };
    let mut r = Runner::new(&suite, filter, quiet);
    r.skip(&skip);
    match suite.as_str() {
        "proto" => proto::run(&ctx, &mut r),
        "badinput" => badinput::run(&ctx, &mut r),
        "guest" => {
            if ctx.domain_dir.is_none() {
                eprintln!("xs-conform guest: needs --domain-dir (ferrostored --domain-socket-dir)");
                return ExitCode::from(2);
            }
            guest::run(&ctx, &mut r)
        }
        "fuzz" => fuzz::run(&ctx, &mut r),
        "differences" => differences::run(&ctx, &mut r),
        "tools" => tools::run(&ctx, &mut r),
        _ => return usage(),
    }
    if r.finish() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
