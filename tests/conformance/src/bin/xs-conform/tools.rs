//! Real clients against the server: Debian's `xenstore-*` commands, `xenstore-control`,
//! Xen's own `test-xenstore` (`-i 100` and a `-r 10` soak) and a pyxs smoke test run with
//! Debian's `/usr/bin/python3`. Outputs are compared exactly.

use crate::Ctx;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;
use xs_conformance::harness::{eq, Runner};

const XEN_BIN: &str = "/usr/lib/xen-4.17/bin";
const B: &str = "/conformance/cli";

/// Exit code, stdout and stderr of a command run with XENSTORED_PATH pointing at the server.
fn sh(ctx: &Ctx, prog: &str, args: &[&str]) -> Result<(i32, String, String), String> {
    let out = Command::new(prog)
        .args(args)
        .env("XENSTORED_PATH", &ctx.socket)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            format!("cannot run {prog}: {e} (is xenstore-utils/xen-utils-4.17 installed?)")
        })?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Runs a command that must succeed and returns its stdout.
fn ok_out(ctx: &Ctx, prog: &str, args: &[&str]) -> Result<String, String> {
    let (rc, out, errs) = sh(ctx, prog, args)?;
    if rc != 0 {
        return Err(format!("{prog} {args:?} exited {rc}: {out}{errs}"));
    }
    Ok(out)
}

fn p(name: &str) -> String {
    format!("{B}/{name}")
}

const PYXS_SMOKE: &str = r#"
import sys, pyxs
path = sys.argv[1]
with pyxs.Client(unix_socket_path=path) as c:
    c.write(b"/conformance/pyxs/a", b"1")
    c.mkdir(b"/conformance/pyxs/d")
    print(c.read(b"/conformance/pyxs/a"))
    print(sorted(c.list(b"/conformance/pyxs")))
    print(c.exists(b"/conformance/pyxs/zz"))
    c.set_perms(b"/conformance/pyxs/a", [b"b0", b"r0"])
    print(c.get_perms(b"/conformance/pyxs/a"))
    with pyxs.Client(unix_socket_path=path) as t:
        t.transaction()
        t.write(b"/conformance/pyxs/t", b"in-tx")
        print(t.commit())
    print(c.read(b"/conformance/pyxs/t"))
    print(c.get_domain_path(3))
    print(c.is_domain_introduced(0))
    m = c.monitor()
    m.watch(b"/conformance/pyxs/w", b"tok")
    print(next(m.wait()))
    c.write(b"/conformance/pyxs/w/x", b"")
    print(next(m.wait()))
    m.close()
    try:
        c.read(b"/conformance/pyxs/none")
    except pyxs.PyXSError as e:
        print("error", e.args[0] == 2)
    c.delete(b"/conformance/pyxs")
    print(c.exists(b"/conformance/pyxs"))
"#;

const PYXS_EXPECTED: &str = "b'1'
[b'a', b'd']
False
[b'b0', b'r0']
True
b'in-tx'
b'/local/domain/3'
True
Event(path=b'/conformance/pyxs/w', token=b'tok')
Event(path=b'/conformance/pyxs/w/x', token=b'tok')
error True
False
";

const TEST_XENSTORE_NAMES: [&str; 12] = [
    "read 1",
    "read 2000",
    "write 1",
    "write 2000",
    "dir",
    "rm node",
    "rm dir",
    "ta empty",
    "ta empty x",
    "ta rmw",
    "ta rmw x",
    "ta err",
];

pub fn run(ctx: &Ctx, r: &mut Runner) {
    r.run("xenstore-cli-round-trip", || {
        let _ = sh(ctx, "xenstore-rm", &[B]);
        eq(
            "write",
            ok_out(ctx, "xenstore-write", &[&p("a"), "1", &p("b"), "two words"])?,
            String::new(),
        )?;
        eq(
            "read",
            ok_out(ctx, "xenstore-read", &[&p("a"), &p("b")])?,
            "1\ntwo words\n".into(),
        )?;
        eq("exists", sh(ctx, "xenstore-exists", &[&p("a")])?.0, 0)?;
        eq(
            "exists missing",
            sh(ctx, "xenstore-exists", &[&p("zz")])?.0,
            1,
        )?;
        let mut list: Vec<String> = ok_out(ctx, "xenstore-list", &[B])?
            .lines()
            .map(str::to_string)
            .collect();
        list.sort();
        eq("list", list, vec!["a".to_string(), "b".to_string()])?;
        let mut ls: Vec<String> = ok_out(ctx, "xenstore-ls", &[B])?
            .lines()
            .map(str::to_string)
            .collect();
        ls.sort();
        eq(
            "ls",
            ls,
            vec!["a = \"1\"".to_string(), "b = \"two words\"".to_string()],
        )?;
        eq(
            "chmod",
            ok_out(ctx, "xenstore-chmod", &[&p("a"), "b0", "r0"])?,
            String::new(),
        )?;
        let lsp = ok_out(ctx, "xenstore-ls", &["-p", B])?;
        let a = lsp
            .lines()
            .find(|l| l.starts_with("a = \"1\""))
            .unwrap_or_default();
        eq("ls -p shows perms", a.ends_with("(b0,r0)"), true)?;
        eq("rm", ok_out(ctx, "xenstore-rm", &[&p("a")])?, String::new())?;
        let (rc, _, errs) = sh(ctx, "xenstore-read", &[&p("a")])?;
        eq(
            "read removed",
            (rc, errs),
            (1, format!("xenstore-read: couldn't read path {}\n", p("a"))),
        )?;
        eq("rm tree", ok_out(ctx, "xenstore-rm", &[B])?, String::new())?;
        eq("exists tree", sh(ctx, "xenstore-exists", &[B])?.0, 1)
    });
    r.run("xenstore-watch", || {
        let w = p("w");
        ok_out(ctx, "xenstore-write", &[&w, ""])?;
        let mut child = Command::new("xenstore-watch")
            .args(["-n", "2", &w])
            .env("XENSTORED_PATH", &ctx.socket)
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run xenstore-watch: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line.unwrap_or_default()).is_err() {
                    break;
                }
            }
        });
        let next = || rx.recv_timeout(Duration::from_secs(10));
        let first = next();
        // The initial event shows the watch is registered; now cause the second one.
        let second = match first {
            Ok(_) => ok_out(ctx, "xenstore-write", &[&format!("{w}/x"), "1"]).map(|_| next()),
            Err(_) => Ok(first.clone()),
        };
        let _ = child.kill();
        let _ = child.wait();
        eq(
            "events",
            (first, second?),
            (Ok(w.clone()), Ok(format!("{w}/x"))),
        )?;
        ok_out(ctx, "xenstore-rm", &[B]).map(|_| ())
    });
    r.run("xenstore-control", || {
        let ctl = format!("{XEN_BIN}/xenstore-control");
        eq("check", ok_out(ctx, &ctl, &["check"])?, "OK\n".into())?;
        eq(
            "print",
            ok_out(ctx, &ctl, &["print", "conformance"])?,
            "OK\n".into(),
        )?;
        eq("unknown command", sh(ctx, &ctl, &["no-such-command"])?.0, 3)
    });
    r.run("pyxs-smoke", || {
        let sock = ctx.socket.to_string_lossy().into_owned();
        let out = ok_out(ctx, "/usr/bin/python3", &["-c", PYXS_SMOKE, &sock])?;
        eq("pyxs output", out, PYXS_EXPECTED.to_string())
    });
    r.run("test-xenstore-i100", || {
        let out = ok_out(ctx, &format!("{XEN_BIN}/test-xenstore"), &["-i", "100"])?;
        let names: Vec<String> = out
            .lines()
            .map(|l| l.split(':').next().unwrap_or_default().trim().to_string())
            .collect();
        eq(
            "all 12 tests report timings",
            names,
            TEST_XENSTORE_NAMES.map(String::from).to_vec(),
        )?;
        eq("no failures", out.contains("failed"), false)
    });
    r.run("test-xenstore-r10-soak", || {
        let (rc, out, errs) = sh(ctx, &format!("{XEN_BIN}/test-xenstore"), &["-r", "10"])?;
        eq(
            "exit code and output",
            (rc, out, errs),
            (0, String::new(), String::new()),
        )
    });
}
