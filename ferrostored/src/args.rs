//! Command-line options.

use std::path::PathBuf;
use xenstore_engine::{quota, Config};

/// `ferrostored --help`.
pub const HELP: &str = "\
usage: ferrostored [--socket PATH] [--pid-file FILE] [--domain-socket-dir DIR]
                   [--quota NAME=N]... [--global-memory BYTES] [--priv-domid N]

Serves the xenstore protocol on a unix socket, in the foreground. Ready once the socket
exists; SIGTERM/SIGINT exit 0 and remove the socket.

  --socket PATH            socket path (default: $XENSTORED_PATH, else
                           /var/run/xenstored/socket). Its clients are dom0.
  --pid-file FILE          write the process id to FILE
  --domain-socket-dir DIR  simulated guests: INTRODUCE <domid> <mfn> <port> (port > 0)
                           creates the socket DIR/<domid>; its client IS domain <domid>'s
                           ring connection (unprivileged, relative paths under
                           /local/domain/<domid>, quotas apply). One client per domain: a
                           new connection replaces the old one (watches and transactions
                           dropped, nodes kept). RELEASE <domid> removes the socket, closes
                           the client, removes the domain's nodes, fires @releaseDomain.
                           A domain exists (may be named in permissions) from INTRODUCE
                           to RELEASE; dom0 always.
  --quota NAME=N           set a global quota; NAME is one of nodes, node-size, watches,
                           transactions, permissions, path-max, outstanding,
                           transaction-nodes, memory (0 = unlimited)
  --global-memory BYTES    refuse growth from unprivileged domains (ENOMEM) once all
                           domains together are charged this many bytes (node records,
                           queued output, open transactions; default 0 = unlimited)
  --priv-domid N           treat domain N as privileged too
  -h, --help               this text
";

/// Parsed options.
pub struct Options {
    pub socket: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub domain_dir: Option<PathBuf>,
    pub config: Config,
}

pub enum Parsed {
    Run(Options),
    Help,
}

pub fn parse(mut it: impl Iterator<Item = String>) -> Result<Parsed, String> {
    let mut o = Options {
        socket: std::env::var_os("XENSTORED_PATH")
            .map_or_else(|| PathBuf::from("/var/run/xenstored/socket"), PathBuf::from),
        pid_file: None,
        domain_dir: None,
        config: Config::default(),
    };
    while let Some(a) = it.next() {
        let mut val = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--socket" => o.socket = PathBuf::from(val("--socket")?),
            "--pid-file" => o.pid_file = Some(PathBuf::from(val("--pid-file")?)),
            "--domain-socket-dir" => {
                o.domain_dir = Some(PathBuf::from(val("--domain-socket-dir")?))
            }
            "--priv-domid" => {
                let v = val("--priv-domid")?;
                o.config.priv_domid = Some(v.parse().map_err(|_| format!("bad --priv-domid {v}"))?);
            }
            "--global-memory" => {
                let v = val("--global-memory")?;
                o.config.global_memory =
                    v.parse().map_err(|_| format!("bad --global-memory {v}"))?;
            }
            "--quota" => {
                let v = val("--quota")?;
                let (name, n) = v
                    .split_once('=')
                    .ok_or_else(|| format!("--quota wants NAME=N, got {v}"))?;
                let n: u32 = n.parse().map_err(|_| format!("bad quota value in {v}"))?;
                if !o.config.quotas.set(name, n) {
                    return Err(format!(
                        "unknown quota {name}; known: {}",
                        quota::NAMES.join(", ")
                    ));
                }
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(Parsed::Run(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(v: &[&str]) -> Result<Parsed, String> {
        parse(v.iter().map(|s| s.to_string()))
    }

    #[test]
    fn options() {
        let Ok(Parsed::Run(o)) = run(&[
            "--socket",
            "/tmp/x",
            "--quota",
            "nodes=7",
            "--priv-domid",
            "3",
            "--global-memory",
            "4194304",
        ]) else {
            panic!("parse failed")
        };
        assert_eq!(o.socket, PathBuf::from("/tmp/x"));
        assert_eq!(o.config.quotas.nodes, 7);
        assert_eq!(o.config.priv_domid, Some(3));
        assert_eq!(o.config.global_memory, 4 << 20);
        assert_eq!(
            run(&["--global-memory", "4M"]).err().unwrap(),
            "bad --global-memory 4M"
        );
        assert_eq!(run(&["--quota", "bogus=1"]).err().unwrap(), "unknown quota bogus; known: nodes, watches, outstanding, memory, transactions, transaction-nodes, node-permissions, path-max, node-size");
        assert_eq!(run(&["--frob"]).err().unwrap(), "unknown option --frob");
        assert!(matches!(run(&["--help"]), Ok(Parsed::Help)));
    }
}
