//! Runs the ferrostored binary and talks to it over its sockets.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    dir: PathBuf,
}

impl Server {
    fn start(name: &str, extra: &[&str]) -> Server {
        let dir =
            std::env::temp_dir().join(format!("ferrostored-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ferrostored"))
            .arg("--socket")
            .arg(dir.join("sock"))
            .arg("--domain-socket-dir")
            .arg(dir.join("doms"))
            .arg("--pid-file")
            .arg(dir.join("pid"))
            .args(extra)
            .spawn()
            .unwrap();
        let s = Server { child, dir };
        wait_for(&s.dir.join("sock"));
        s
    }

    /// Like [`Server::start`], under `ulimit -n LIMIT`.
    fn start_limited(name: &str, limit: u32) -> Server {
        let dir =
            std::env::temp_dir().join(format!("ferrostored-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_ferrostored"))
            .arg("--socket")
            .arg(dir.join("sock"))
            .arg("--pid-file")
            .arg(dir.join("pid"))
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let s = Server { child, dir };
        wait_for(&s.dir.join("sock"));
        s
    }

    fn connect(&self) -> Client {
        Client::new(&self.dir.join("sock"))
    }

    fn guest(&self, domid: u32) -> Client {
        let p = self.dir.join("doms").join(domid.to_string());
        wait_for(&p);
        Client::new(&p)
    }

    fn stop(mut self) -> i32 {
        let pid = std::fs::read_to_string(self.dir.join("pid")).unwrap();
        assert_eq!(pid.trim(), self.child.id().to_string());
        let st = Command::new("kill")
            .arg("-TERM")
            .arg(pid.trim())
            .status()
            .unwrap();
        assert!(st.success());
        let code = self.child.wait().unwrap().code().unwrap();
        assert!(!self.dir.join("sock").exists(), "socket removed on exit");
        code
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wait_for(p: &Path) {
    let start = Instant::now();
    while !p.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{} never appeared",
            p.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

struct Client {
    s: UnixStream,
}

impl Client {
    fn new(p: &Path) -> Client {
        let s = UnixStream::connect(p).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Client { s }
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).unwrap();
    }

    fn send(&mut self, ty: u32, tx: u32, payload: &[u8]) {
        let mut m = Vec::new();
        for v in [ty, 42, tx, payload.len() as u32] {
            m.extend_from_slice(&v.to_le_bytes());
        }
        m.extend_from_slice(payload);
        self.send_raw(&m);
    }

    /// Reads one message: (type, payload).
    fn recv(&mut self) -> Option<(u32, Vec<u8>)> {
        let mut h = [0u8; 16];
        self.s.read_exact(&mut h).ok()?;
        let ty = u32::from_le_bytes(h[0..4].try_into().unwrap());
        let len = u32::from_le_bytes(h[12..16].try_into().unwrap());
        let mut p = vec![0u8; len as usize];
        self.s.read_exact(&mut p).ok()?;
        Some((ty, p))
    }

    fn call(&mut self, ty: u32, payload: &[u8]) -> (u32, Vec<u8>) {
        self.send(ty, 0, payload);
        self.recv().unwrap()
    }
}

const READ: u32 = 2;
const WATCH: u32 = 4;
const INTRODUCE: u32 = 8;
const RELEASE: u32 = 9;
const WRITE: u32 = 11;
const SET_PERMS: u32 = 14;
const WATCH_EVENT: u32 = 15;
const ERROR: u32 = 16;

#[test]
fn serves_dom0_and_exits_cleanly_on_sigterm() {
    let srv = Server::start("basic", &[]);
    let mut c = srv.connect();
    assert_eq!(c.call(WRITE, b"/a\0hello"), (WRITE, b"OK\0".to_vec()));
    assert_eq!(c.call(READ, b"/a\0"), (READ, b"hello".to_vec()));
    // A header announcing more than 4096 bytes closes that connection only.
    let mut bad = srv.connect();
    let mut m = Vec::new();
    for v in [READ, 1, 0, 5000] {
        m.extend_from_slice(&v.to_le_bytes());
    }
    bad.send_raw(&m);
    assert_eq!(bad.recv(), None);
    assert_eq!(c.call(READ, b"/a\0"), (READ, b"hello".to_vec()));
    drop(c);
    assert_eq!(srv.stop(), 0);
}

#[test]
fn simulated_guests() {
    let srv = Server::start("guests", &["--quota", "nodes=3"]);
    let mut d0 = srv.connect();
    assert_eq!(
        d0.call(WATCH, b"@releaseDomain\0r\0"),
        (WATCH, b"OK\0".to_vec())
    );
    assert_eq!(
        d0.recv(),
        Some((WATCH_EVENT, b"@releaseDomain\0r\0".to_vec()))
    );
    assert_eq!(
        d0.call(WRITE, b"/local/domain/5\0"),
        (WRITE, b"OK\0".to_vec())
    );
    // Before INTRODUCE, domain 5 does not exist: it cannot own a node.
    assert_eq!(
        d0.call(SET_PERMS, b"/local/domain/5\0n5\0"),
        (ERROR, b"ENOENT\0".to_vec())
    );
    assert_eq!(
        d0.call(INTRODUCE, b"5\x00123\x009\0"),
        (INTRODUCE, b"OK\0".to_vec())
    );
    assert_eq!(
        d0.call(SET_PERMS, b"/local/domain/5\0n5\0"),
        (SET_PERMS, b"OK\0".to_vec())
    );
    let mut g = srv.guest(5);
    assert_eq!(g.call(WRITE, b"x\0gx"), (WRITE, b"OK\0".to_vec()));
    assert_eq!(g.call(READ, b"/local/domain/5/x\0"), (READ, b"gx".to_vec()));
    assert_eq!(g.call(READ, b"/tool\0"), (ERROR, b"EACCES\0".to_vec()));
    assert_eq!(g.call(WRITE, b"y\0"), (WRITE, b"OK\0".to_vec()));
    assert_eq!(g.call(WRITE, b"z\0"), (ERROR, b"ENOSPC\0".to_vec()));
    assert_eq!(g.call(WATCH, b"x\0t\0"), (WATCH, b"OK\0".to_vec()));
    assert_eq!(g.recv(), Some((WATCH_EVENT, b"x\0t\0".to_vec())));
    // A new connection replaces the old one: watches dropped, nodes kept.
    let mut g2 = srv.guest(5);
    assert_eq!(g2.call(READ, b"x\0"), (READ, b"gx".to_vec()));
    assert_eq!(g.recv(), None);
    assert_eq!(
        d0.call(WRITE, b"/local/domain/5/x\0new"),
        (WRITE, b"OK\0".to_vec())
    );
    assert_eq!(g2.call(READ, b"x\0"), (READ, b"new".to_vec()));
    // RELEASE: socket gone, client closed, owned nodes removed, @releaseDomain fired.
    d0.send(RELEASE, 0, b"5\0");
    assert_eq!(
        d0.recv(),
        Some((WATCH_EVENT, b"@releaseDomain\0r\0".to_vec()))
    );
    assert_eq!(d0.recv(), Some((RELEASE, b"OK\0".to_vec())));
    assert_eq!(g2.recv(), None);
    assert!(!srv.dir.join("doms/5").exists());
    assert_eq!(
        d0.call(READ, b"/local/domain/5\0"),
        (ERROR, b"ENOENT\0".to_vec())
    );
    assert_eq!(srv.stop(), 0);
}

#[test]
fn help_and_bad_options() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrostored"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("usage: ferrostored [--socket PATH]"));
    assert!(text.contains("--domain-socket-dir DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_ferrostored"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "ferrostored: unknown option --bogus (see ferrostored --help)\n"
    );
}

#[test]
fn keeps_accepting_after_running_out_of_descriptors() {
    let srv = Server::start_limited("emfile", 32);
    // Far more clients than descriptors: the ones beyond the limit wait in the backlog.
    let mut clients: Vec<UnixStream> = (0..60)
        .map(|_| UnixStream::connect(srv.dir.join("sock")).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // Once descriptors are free again, every waiting client and a new one are served.
    let waiting = clients.split_off(40);
    drop(clients);
    for s in waiting {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut c = Client { s };
        assert_eq!(c.call(10, b"3\0"), (10, b"/local/domain/3\0".to_vec()));
    }
    let mut late = srv.connect();
    assert_eq!(late.call(10, b"3\0"), (10, b"/local/domain/3\0".to_vec()));
    let mut srv = srv;
    let _ = srv.child.kill();
    let mut err = String::new();
    srv.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    // Each stall is logged once, and so is its end.
    let stalls = err.matches("cannot accept connections").count();
    assert!(stalls >= 1, "{err}");
    assert_eq!(
        err.matches("accepting connections again").count(),
        stalls,
        "{err}"
    );
    assert_eq!(err.lines().count(), 2 * stalls, "{err}");
}
