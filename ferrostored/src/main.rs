//! ferrostored: the xenstore engine served on a unix socket.
//!
//! Every client of the main socket is dom0 (privileged). With `--domain-socket-dir DIR`,
//! simulated guests are available: when dom0 sends INTRODUCE `<domid> <mfn> <port>` (port >
//! 0) the socket `DIR/<domid>` appears, and a client connected to it *is* domain `<domid>`'s
//! ring connection (unprivileged, relative paths under `/local/domain/<domid>`, quotas apply).
//! One client per domain: a new connection replaces the old one, dropping the domain's
//! watches and transactions but keeping its nodes (like the ring reconnection protocol).
//! RELEASE `<domid>` removes the socket, closes the client, removes the nodes the domain owns
//! and fires `@releaseDomain`. A domain exists (may own nodes or be named in permissions)
//! from INTRODUCE to RELEASE; dom0 always, as C xenstored sees a host without guests.
#![forbid(unsafe_code)]

mod args;
mod server;

use std::process::ExitCode;

fn main() -> ExitCode {
    let opts = match args::parse(std::env::args().skip(1)) {
        Ok(args::Parsed::Run(o)) => o,
        Ok(args::Parsed::Help) => {
            print!("{}", args::HELP);
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("ferrostored: {msg} (see ferrostored --help)");
            return ExitCode::from(2);
        }
    };
    match server::run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("ferrostored: {msg}");
            ExitCode::FAILURE
        }
    }
}
