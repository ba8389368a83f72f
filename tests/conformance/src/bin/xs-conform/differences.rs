//! ferrostored's deliberate differences from C xenstored 4.17 (engine/DIFFERENCES.md), each
//! asserted exactly. Run against ferrostored only; the differential test skips or normalizes
//! these cases. Item numbers refer to engine/DIFFERENCES.md.

use crate::{expect_events, sync_events, Ctx};
use xs_conformance::harness::{eq, err, ok, reply, val, Runner};
use xs_conformance::wire::{self, MsgType};

const B: &str = "/conformance/diff";

fn p(name: &str) -> String {
    format!("{B}/{name}")
}

pub fn run(ctx: &Ctx, r: &mut Runner) {
    if let Ok(mut c) = ctx.conn() {
        let _ = c.rm(0, B);
    }
    r.run("item1-2-feature-and-quota-requests", || {
        let mut c = ctx.conn()?;
        let _ = c.call(MsgType::Release, 0, b"170\0");
        reply(
            "introduce",
            c.call(MsgType::Introduce, 0, b"170\x004096\x001\0"),
            ok(),
        )?;
        let q = |c: &mut xs_conformance::Client, parts: &[&str]| {
            c.call(MsgType::GetQuota, 0, &wire::strings(parts))
        };
        reply(
            "GET_QUOTA nodes",
            q(&mut c, &["170", "nodes"]),
            val(b"1000\0"),
        )?;
        reply(
            "SET_QUOTA nodes",
            c.call(MsgType::SetQuota, 0, &wire::strings(&["170", "nodes", "5"])),
            ok(),
        )?;
        reply(
            "GET_QUOTA after set",
            q(&mut c, &["170", "nodes"]),
            val(b"5\0"),
        )?;
        reply("unknown name", q(&mut c, &["170", "bogus"]), err("EINVAL"))?;
        reply("unknown domain", q(&mut c, &["77", "nodes"]), err("ENOENT"))?;
        reply(
            "GET_FEATURE",
            c.call(MsgType::GetFeature, 0, b"170\0"),
            val(b"7\0"),
        )?;
        reply(
            "GET_FEATURE of dom0's socket",
            c.call(MsgType::GetFeature, 0, b"0\0"),
            err("ENOENT"),
        )?;
        reply("release", c.call(MsgType::Release, 0, b"170\0"), ok())
    });
    r.run("item3-watch-depth", || {
        let mut c = ctx.fresh(&p("depth"))?;
        reply("write", c.write(0, &p("depth/a/b"), b"x"), ok())?;
        let w = |c: &mut xs_conformance::Client, tok: &str, depth: &str| {
            c.call(
                MsgType::Watch,
                0,
                &wire::strings(&[&p("depth"), tok, depth]),
            )
        };
        reply("depth 0", w(&mut c, "d0", "0"), ok())?;
        reply("depth 1", w(&mut c, "d1", "1"), ok())?;
        expect_events(
            &mut c,
            "initial",
            &[(&p("depth"), "d0"), (&p("depth"), "d1")],
        )?;
        reply("child", c.write(0, &p("depth/c"), b"y"), ok())?;
        expect_events(&mut c, "child: depth 1 only", &[(&p("depth/c"), "d1")])?;
        reply("grandchild", c.write(0, &p("depth/a/z"), b"y"), ok())?;
        expect_events(&mut c, "grandchild: none", &[])?;
        reply("node itself", c.write(0, &p("depth"), b"v"), ok())?;
        expect_events(
            &mut c,
            "node itself: both",
            &[(&p("depth"), "d0"), (&p("depth"), "d1")],
        )?;
        reply(
            "special depth 1",
            c.call(
                MsgType::Watch,
                0,
                &wire::strings(&["@introduceDomain", "i", "1"]),
            ),
            ok(),
        )?;
        reply(
            "special depth 2",
            c.call(
                MsgType::Watch,
                0,
                &wire::strings(&["@introduceDomain", "i2", "2"]),
            ),
            err("EINVAL"),
        )?;
        reply(
            "per-domain release watch",
            c.watch("@releaseDomain/171", "r"),
            ok(),
        )?;
        expect_events(
            &mut c,
            "initial special",
            &[("@introduceDomain", "i"), ("@releaseDomain/171", "r")],
        )?;
        let _ = c.call(MsgType::Release, 0, b"171\0");
        sync_events(&mut c)?;
        reply(
            "introduce",
            c.call(MsgType::Introduce, 0, b"171\x004096\x001\0"),
            ok(),
        )?;
        expect_events(
            &mut c,
            "introduce with domid",
            &[("@introduceDomain/171", "i")],
        )?;
        reply("release", c.call(MsgType::Release, 0, b"171\0"), ok())?;
        expect_events(&mut c, "release of 171", &[("@releaseDomain/171", "r")])
    });
    r.run("item8-control-help-and-memreport", || {
        let mut c = ctx.conn()?;
        reply(
            "help",
            c.control(&["help"]),
            val(b"check           \nlog             [on|off]\n\
                  live-update     [-c <cmdline>] [-F] [-t <timeout>] <file>\n    \
                  Default timeout is 60 seconds.\nmemreport       [<file>]\n\
                  print           <string>\nquota           [set <name> <val>|<domid>]\n\
                  quota-soft      [set <name> <val>]\nhelp            \n\0"),
        )?;
        let report = String::from_utf8_lossy(&c.control(&["memreport"])?).into_owned();
        let body = report
            .strip_suffix('\0')
            .ok_or("memreport reply not NUL-terminated")?;
        let lines: Vec<&str> = body.lines().collect();
        let (last, domains) = lines.split_last().ok_or("empty memreport")?;
        let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let conn_ok = last.strip_prefix("connections: ").is_some_and(number);
        eq("last line `connections: <n>`", conn_ok, true)?;
        eq(
            "first line is dom0",
            domains.first().is_some_and(|l| l.starts_with("domain 0: ")),
            true,
        )?;
        for l in domains {
            let shaped = l
                .strip_prefix("domain ")
                .and_then(|r| r.split_once(": "))
                .and_then(|(id, r)| Some((id, r.split_once(" nodes, ")?)))
                .and_then(|(id, (n, r))| Some((id, n, r.strip_suffix(" bytes")?)))
                .is_some_and(|(id, n, b)| number(id) && number(n) && number(b));
            eq(
                &format!("line {l:?} shaped `domain <id>: <n> nodes, <b> bytes`"),
                shaped,
                true,
            )?;
        }
        Ok(())
    });
    r.run("item9-quota-set-applies-to-later-domains", || {
        let mut c = ctx.conn()?;
        let _ = c.call(MsgType::Release, 0, b"172\0");
        reply("set", c.control(&["quota", "set", "nodes", "7"]), ok())?;
        reply(
            "introduce",
            c.call(MsgType::Introduce, 0, b"172\x004096\x001\0"),
            ok(),
        )?;
        reply(
            "restore",
            c.control(&["quota", "set", "nodes", "1000"]),
            ok(),
        )?;
        reply(
            "domain got 7",
            c.call(MsgType::GetQuota, 0, &wire::strings(&["172", "nodes"])),
            val(b"7\0"),
        )?;
        reply("release", c.call(MsgType::Release, 0, b"172\0"), ok())
    });
    r.run("item14-transactions", || {
        let mut c = ctx.fresh(&p("tx"))?;
        let mut o = ctx.conn()?;
        reply("init", c.write(0, &p("tx/v"), b"old"), ok())?;
        let t = c.tx_start()?;
        reply(
            "outside write before first access",
            o.write(0, &p("tx/v"), b"new"),
            ok(),
        )?;
        reply(
            "first access sees the store",
            c.read(t, &p("tx/v")),
            val(b"new"),
        )?;
        reply(
            "commit: unchanged since first access",
            c.tx_end(t, true),
            ok(),
        )?;
        let t = c.tx_start()?;
        reply("read", c.read(t, &p("tx/v")), val(b"new"))?;
        reply(
            "outside write after first access",
            o.write(0, &p("tx/v"), b"newer"),
            ok(),
        )?;
        reply(
            "commit: accessed node changed",
            c.tx_end(t, true),
            err("EAGAIN"),
        )?;
        reply("parent", c.mkdir(0, &p("tx/dir")), ok())?;
        let t = c.tx_start()?;
        reply("create in tx", c.write(t, &p("tx/dir/mine"), b"1"), ok())?;
        reply(
            "outside sibling",
            o.write(0, &p("tx/dir/theirs"), b"2"),
            ok(),
        )?;
        reply(
            "commit: sibling creation is no conflict (C: EAGAIN)",
            c.tx_end(t, true),
            ok(),
        )?;
        let mut names = c.directory(0, &p("tx/dir"))?;
        names.sort();
        eq(
            "both children",
            names,
            vec!["mine".to_string(), "theirs".to_string()],
        )
    });
    if let Ok(mut c) = ctx.conn() {
        let _ = c.rm(0, B);
    }
}
