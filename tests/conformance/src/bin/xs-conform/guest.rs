//! Unprivileged-domain behaviour through ferrostored's simulated-guest sockets: after dom0's
//! INTRODUCE, a client on `<domain-dir>/<domid>` is that domain. Expected replies come from the
//! protocol documents (xen-pv-and-xenstore.md §6.3–6.8) and the XSA list; C xenstored cannot
//! introduce guests on a plain host, so these have no differential counterpart.

use crate::{expect_events, sync_events, Ctx};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use xs_conformance::harness::{eq, err, ok, reply, val, Runner};
use xs_conformance::wire::{self, MsgType};
use xs_conformance::Client;

const B: &str = "/conformance/guest";

fn p(name: &str) -> String {
    format!("{B}/{name}")
}

fn sock(ctx: &Ctx, domid: u32) -> PathBuf {
    ctx.domain_dir
        .clone()
        .unwrap_or_default()
        .join(domid.to_string())
}

/// Waits up to 2 s for the guest socket to (dis)appear.
fn wait_socket(ctx: &Ctx, domid: u32, present: bool) -> Result<(), String> {
    let t = Instant::now();
    while sock(ctx, domid).exists() != present {
        if t.elapsed() > Duration::from_secs(2) {
            return Err(format!(
                "socket {} {} after 2 s",
                sock(ctx, domid).display(),
                if present { "missing" } else { "still present" }
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

fn introduce(d0: &mut Client, domid: u32) -> Result<(), String> {
    let pl = wire::strings(&[&domid.to_string(), "4096", "1"]);
    reply(
        &format!("INTRODUCE {domid}"),
        d0.call(MsgType::Introduce, 0, &pl),
        ok(),
    )
}

fn release(d0: &mut Client, domid: u32) -> Result<(), String> {
    let pl = wire::strings(&[&domid.to_string()]);
    reply(
        &format!("RELEASE {domid}"),
        d0.call(MsgType::Release, 0, &pl),
        ok(),
    )
}

/// Connects as `domid`, retrying for up to 2 s until the connection answers
/// GET_DOMAIN_PATH (the `socket-lifecycle` test checks that no retry is needed).
fn guest(ctx: &Ctx, domid: u32) -> Result<Client, String> {
    let want = format!("/local/domain/{domid}\0").into_bytes();
    let t = Instant::now();
    loop {
        let last = match Client::connect(sock(ctx, domid)) {
            Ok(mut c) => match c.call(
                MsgType::GetDomainPath,
                0,
                &wire::strings(&[&domid.to_string()]),
            ) {
                Ok(v) if v == want => return Ok(c),
                other => format!("{other:?}"),
            },
            Err(e) => e.to_string(),
        };
        if t.elapsed() > Duration::from_secs(2) {
            return Err(format!(
                "guest socket of {domid} not usable after 2 s: {last}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Connects once, with no retry, and checks the connection is domain `domid`.
fn guest_now(ctx: &Ctx, domid: u32) -> Result<(), String> {
    let mut c = Client::connect(sock(ctx, domid))
        .map_err(|e| format!("connect to {}: {e}", sock(ctx, domid).display()))?;
    reply(
        "GET_DOMAIN_PATH on the new connection",
        c.call(
            MsgType::GetDomainPath,
            0,
            &wire::strings(&[&domid.to_string()]),
        ),
        Ok(format!("/local/domain/{domid}\0").into_bytes()),
    )
}

/// Introduces `domid` with a home directory it owns (as a toolstack does) and connects.
fn setup(ctx: &Ctx, d0: &mut Client, domid: u32) -> Result<Client, String> {
    let _ = d0.call(MsgType::Release, 0, &wire::strings(&[&domid.to_string()]));
    let home = format!("/local/domain/{domid}");
    let _ = d0.rm(0, &home);
    introduce(d0, domid)?;
    reply("mkdir home", d0.mkdir(0, &home), ok())?;
    reply(
        "chown home",
        d0.set_perms(0, &home, &[&format!("n{domid}")]),
        ok(),
    )?;
    guest(ctx, domid)
}

fn teardown(d0: &mut Client, domid: u32) -> Result<(), String> {
    release(d0, domid)?;
    let _ = d0.rm(0, &format!("/local/domain/{domid}"));
    Ok(())
}

/// Creates nodes `prefix/d<i/40>/n<i%40>` (40 per directory, so no child list outgrows the
/// node-size quota) until the first error; returns how many nodes the domain then owns under
/// `prefix` (leaves, directories and `prefix` itself) and the error.
fn fill(g: &mut Client, prefix: &str, limit: usize) -> (usize, String) {
    for i in 0..limit {
        if let Err(e) = g.write(0, &format!("{prefix}/d{}/n{}", i / 40, i % 40), b"") {
            return (i + i.div_ceil(40) + 1, e);
        }
    }
    (limit, "no error".into())
}

pub fn run(ctx: &Ctx, r: &mut Runner) {
    if let Ok(mut c) = ctx.conn() {
        let _ = c.rm(0, B);
    }
    r.run("introduce-and-release", || {
        let mut d0 = ctx.conn()?;
        let _ = d0.call(MsgType::Release, 0, b"101\0");
        reply("watch introduce", d0.watch("@introduceDomain", "i"), ok())?;
        reply("watch release", d0.watch("@releaseDomain", "r"), ok())?;
        sync_events(&mut d0)?;
        introduce(&mut d0, 101)?;
        expect_events(&mut d0, "introduce event", &[("@introduceDomain", "i")])?;
        reply(
            "IS_DOMAIN_INTRODUCED",
            d0.call(MsgType::IsDomainIntroduced, 0, b"101\0"),
            val(b"T\0"),
        )?;
        let mut g = guest(ctx, 101)?;
        reply(
            "guest GET_DOMAIN_PATH",
            g.call(MsgType::GetDomainPath, 0, b"101\0"),
            val(b"/local/domain/101\0"),
        )?;
        release(&mut d0, 101)?;
        expect_events(&mut d0, "release event", &[("@releaseDomain", "r")])?;
        wait_socket(ctx, 101, false)?;
        eq(
            "guest connection closed",
            g.is_closed(Duration::from_secs(2)),
            true,
        )?;
        reply(
            "IS_DOMAIN_INTRODUCED after",
            d0.call(MsgType::IsDomainIntroduced, 0, b"101\0"),
            val(b"F\0"),
        )?;
        reply(
            "RELEASE again",
            d0.call(MsgType::Release, 0, b"101\0"),
            err("ENOENT"),
        )
    });
    r.run("socket-lifecycle", || {
        // The guest socket is usable as soon as INTRODUCE has answered, and RELEASE followed by
        // INTRODUCE of the same domid gives a working socket at once, 20 times in a row.
        let mut d0 = ctx.conn()?;
        let _ = d0.call(MsgType::Release, 0, b"121\0");
        for round in 0..20 {
            introduce(&mut d0, 121)?;
            guest_now(ctx, 121).map_err(|e| format!("round {round}, after INTRODUCE: {e}"))?;
            release(&mut d0, 121)?;
            if sock(ctx, 121).exists() {
                return Err(format!(
                    "round {round}: socket still present after RELEASE answered"
                ));
            }
        }
        Ok(())
    });
    r.run("relative-paths", || {
        let mut d0 = ctx.conn()?;
        let mut g = setup(ctx, &mut d0, 102)?;
        reply("guest relative write", g.write(0, "data/x", b"v"), ok())?;
        reply(
            "dom0 sees it",
            d0.read(0, "/local/domain/102/data/x"),
            val(b"v"),
        )?;
        reply("guest relative read", g.read(0, "data/x"), val(b"v"))?;
        reply(
            "guest absolute read",
            g.read(0, "/local/domain/102/data/x"),
            val(b"v"),
        )?;
        eq(
            "guest directory",
            g.directory(0, "data"),
            Ok(vec!["x".into()]),
        )?;
        reply("relative watch", g.watch("data", "t"), ok())?;
        expect_events(&mut g, "initial", &[("data", "t")])?;
        reply(
            "dom0 writes",
            d0.write(0, "/local/domain/102/data/y", b"1"),
            ok(),
        )?;
        expect_events(&mut g, "relative epath", &[("data/y", "t")])?;
        reply(
            "absolute watch",
            g.watch("/local/domain/102/data/z", "a"),
            ok(),
        )?;
        expect_events(&mut g, "initial", &[("/local/domain/102/data/z", "a")])?;
        reply("guest writes z", g.write(0, "data/z", b""), ok())?;
        expect_events(
            &mut g,
            "each watch in its own form",
            &[("/local/domain/102/data/z", "a"), ("data/z", "t")],
        )?;
        let t = g.tx_start()?;
        reply("tx relative write", g.write(t, "data/t", b"in"), ok())?;
        reply("commit", g.tx_end(t, true), ok())?;
        reply(
            "committed",
            d0.read(0, "/local/domain/102/data/t"),
            val(b"in"),
        )?;
        // 204 levels of "abcdefghi/" plus "abcdefgh": 2048 bytes below the home directory
        // (short names, so no node exceeds the node-size quota).
        let long = format!("{}abcdefgh", "abcdefghi/".repeat(204));
        eq("length", long.len(), 2048)?;
        reply("relative path of 2048", g.write(0, &long, b""), ok())?;
        reply(
            "relative path of 2049",
            g.write(0, &format!("{long}x"), b""),
            err("EINVAL"),
        )?;
        reply(
            "absolute form",
            d0.read(0, &format!("/local/domain/102/{long}")),
            val(b""),
        )?;
        teardown(&mut d0, 102)
    });
    r.run("permissions", || {
        let mut d0 = ctx.conn()?;
        let mut g = setup(ctx, &mut d0, 103)?;
        let s = p("perm/secret");
        reply("dom0 write", d0.write(0, &s, b"s"), ok())?;
        reply("guest read n0", g.read(0, &s), err("EACCES"))?;
        reply("guest write n0", g.write(0, &s, b"x"), err("EACCES"))?;
        eq(
            "guest directory",
            g.directory(0, &p("perm")),
            Err("EACCES".into()),
        )?;
        eq("guest get_perms", g.get_perms(0, &s), Err("EACCES".into()))?;
        reply(
            "missing under unreadable",
            g.read(0, &p("perm/secret/none")),
            err("EACCES"),
        )?;
        reply("grant read", d0.set_perms(0, &s, &["n0", "r103"]), ok())?;
        reply("guest read r", g.read(0, &s), val(b"s"))?;
        reply("guest write r", g.write(0, &s, b"x"), err("EACCES"))?;
        eq(
            "guest get_perms r",
            g.get_perms(0, &s),
            Ok(vec!["n0".into(), "r103".into()]),
        )?;
        reply(
            "grant write only",
            d0.set_perms(0, &s, &["n0", "w103"]),
            ok(),
        )?;
        reply("guest read w", g.read(0, &s), err("EACCES"))?;
        reply("guest write w", g.write(0, &s, b"g"), ok())?;
        reply("dom0 sees guest write", d0.read(0, &s), val(b"g"))?;
        reply("everyone read", d0.set_perms(0, &s, &["r0"]), ok())?;
        reply("guest read via entry 0", g.read(0, &s), val(b"g"))?;
        reply(
            "guest write via entry 0",
            g.write(0, &s, b"x"),
            err("EACCES"),
        )?;
        reply("owner", d0.set_perms(0, &s, &["n103"]), ok())?;
        reply("owner writes", g.write(0, &s, b"o"), ok())?;
        reply("guest creates in home", g.write(0, "own", b""), ok())?;
        eq(
            "inherits home, owner guest",
            g.get_perms(0, "own"),
            Ok(vec!["n103".into()]),
        )?;
        let dir = p("perm/dir");
        reply("dom0 dir", d0.mkdir(0, &dir), ok())?;
        reply("dir perms", d0.set_perms(0, &dir, &["n0", "b103"]), ok())?;
        reply(
            "guest creates in dir",
            g.write(0, &format!("{dir}/kid"), b""),
            ok(),
        )?;
        eq(
            "creator becomes owner",
            d0.get_perms(0, &format!("{dir}/kid")),
            Ok(vec!["n103".into(), "b103".into()]),
        )?;
        teardown(&mut d0, 103)
    });
    r.run("set-perms-rules", || {
        let mut d0 = ctx.conn()?;
        let mut g = setup(ctx, &mut d0, 104)?;
        reply("own node", g.write(0, "n", b""), ok())?;
        reply(
            "give away (XSA-352)",
            g.set_perms(0, "n", &["n0"]),
            err("EPERM"),
        )?;
        reply("keep owner", g.set_perms(0, "n", &["n104", "r0"]), ok())?;
        eq(
            "changed",
            g.get_perms(0, "n"),
            Ok(vec!["n104".into(), "r0".into()]),
        )?;
        reply(
            "5 entries",
            g.set_perms(0, "n", &["n104", "r0", "w0", "b0", "n0"]),
            ok(),
        )?;
        reply(
            "6 entries (XSA-322)",
            g.set_perms(0, "n", &["n104", "r0", "w0", "b0", "n0", "r0"]),
            err("ENOSPC"),
        )?;
        let d = p("sp/dom0node");
        reply("dom0 node", d0.write(0, &d, b""), ok())?;
        reply(
            "writable by guest",
            d0.set_perms(0, &d, &["n0", "b104"]),
            ok(),
        )?;
        reply(
            "not owner",
            g.set_perms(0, &d, &["n0", "b104"]),
            err("EACCES"),
        )?;
        teardown(&mut d0, 104)
    });
    r.run("privileged-operations", || {
        let mut d0 = ctx.conn()?;
        let mut g = setup(ctx, &mut d0, 105)?;
        let cases: [(MsgType, &[u8]); 6] = [
            (MsgType::Control, b"check\0"),
            (MsgType::Introduce, b"106\x004096\x001\0"),
            (MsgType::Release, b"105\0"),
            (MsgType::IsDomainIntroduced, b"0\0"),
            (MsgType::Resume, b"105\0"),
            (MsgType::SetTarget, b"105\x000\0"),
        ];
        for (ty, pl) in cases {
            reply(&format!("{ty:?}"), g.call(ty, 0, pl), err("EACCES"))?;
        }
        reply("rm / (XSA-353)", g.rm(0, "/"), err("EACCES"))?;
        reply("set_perms /", g.set_perms(0, "/", &["n105"]), err("EACCES"))?;
        eq("directory /", g.directory(0, "/"), Err("EACCES".into()))?;
        reply(
            "still introduced",
            d0.call(MsgType::IsDomainIntroduced, 0, b"105\0"),
            val(b"T\0"),
        )?;
        teardown(&mut d0, 105)
    });
    r.run("special-watches", || {
        let mut d0 = ctx.conn()?;
        let mut g = setup(ctx, &mut d0, 107)?;
        reply(
            "guest watches @releaseDomain",
            g.watch("@releaseDomain", "r"),
            ok(),
        )?;
        reply(
            "guest watches @introduceDomain",
            g.watch("@introduceDomain", "i"),
            ok(),
        )?;
        // Like C xenstored 4.17, the initial event of a new watch is sent unconditionally.
        expect_events(
            &mut g,
            "initial events",
            &[("@introduceDomain", "i"), ("@releaseDomain", "r")],
        )?;
        setup(ctx, &mut d0, 108)?;
        release(&mut d0, 108)?;
        expect_events(
            &mut g,
            "no special events without permission (XSA-115)",
            &[],
        )?;
        reply(
            "grant @releaseDomain",
            d0.set_perms(0, "@releaseDomain", &["n0", "r107"]),
            ok(),
        )?;
        reply(
            "grant @introduceDomain",
            d0.set_perms(0, "@introduceDomain", &["n0", "r107"]),
            ok(),
        )?;
        setup(ctx, &mut d0, 108)?;
        expect_events(
            &mut g,
            "introduce with permission",
            &[("@introduceDomain", "i")],
        )?;
        release(&mut d0, 108)?;
        expect_events(
            &mut g,
            "release with permission",
            &[("@releaseDomain", "r")],
        )?;
        reply("restore", d0.set_perms(0, "@releaseDomain", &["n0"]), ok())?;
        reply(
            "restore",
            d0.set_perms(0, "@introduceDomain", &["n0"]),
            ok(),
        )?;
        let _ = d0.rm(0, "/local/domain/108");
        teardown(&mut d0, 107)
    });
    r.run("watch-permission-filter", || {
        let mut d0 = ctx.conn()?;
        let mut g = setup(ctx, &mut d0, 109)?;
        let dir = p("wf");
        reply("dir", d0.mkdir(0, &dir), ok())?;
        reply("readable", d0.set_perms(0, &dir, &["n0", "r109"]), ok())?;
        reply("hidden", d0.write(0, &format!("{dir}/hidden"), b""), ok())?;
        reply(
            "hide",
            d0.set_perms(0, &format!("{dir}/hidden"), &["n0"]),
            ok(),
        )?;
        reply("guest watch", g.watch(&dir, "w"), ok())?;
        reply("guest watch /", g.watch("/", "root"), ok())?;
        sync_events(&mut g)?;
        reply(
            "dom0 writes hidden",
            d0.write(0, &format!("{dir}/hidden"), b"x"),
            ok(),
        )?;
        expect_events(&mut g, "unreadable node: no event (XSA-115)", &[])?;
        reply(
            "dom0 writes visible",
            d0.write(0, &format!("{dir}/visible"), b"x"),
            ok(),
        )?;
        let v = format!("{dir}/visible");
        expect_events(&mut g, "readable node", &[(&v, "root"), (&v, "w")])?;
        teardown(&mut d0, 109)
    });
    r.run("quota-nodes", || {
        let mut d0 = ctx.conn()?;
        let mut g = setup(ctx, &mut d0, 110)?;
        let (k, e) = fill(&mut g, "q", 1100);
        eq("error at the limit", e.as_str(), "ENOSPC")?;
        // The home directory is the domain's too: 999 nodes fit under it (C: 1000 in total).
        eq("nodes owned at the limit", k, 999)?;
        reply("rm all", g.rm(0, "q"), ok())?;
        let (k2, e2) = fill(&mut g, "q", 1100);
        eq(
            "same count after RM (exact accounting)",
            (k2, e2.as_str()),
            (k, "ENOSPC"),
        )?;
        reply("rm all", g.rm(0, "q"), ok())?;
        let t = g.tx_start()?;
        let mut made = 0usize;
        for i in 0..1100 {
            match g.write(t, &format!("q/d{}/n{}", i / 40, i % 40), b"") {
                Ok(_) => made += 1,
                Err(e) => {
                    eq("quota inside transaction", e.as_str(), "ENOSPC")?;
                    break;
                }
            }
        }
        eq(
            "same count inside a transaction",
            made + made.div_ceil(40) + 1,
            k,
        )?;
        let _ = g.tx_end(t, false);
        reply("none leaked from aborted tx", g.read(0, "q"), err("ENOENT"))?;
        reply("CONTROL check", d0.control(&["check"]), ok())?;
        teardown(&mut d0, 110)
    });
    r.run("quota-watches", || {
        let mut d0 = ctx.conn()?;
        let mut g = setup(ctx, &mut d0, 111)?;
        let mut n = 0;
        let e = loop {
            match g.watch(&format!("w{n}"), "t") {
                Ok(_) => n += 1,
                Err(e) => break e,
            }
            if n > 300 {
                break "no error".into();
            }
        };
        // C xenstored checks `count > quota` before adding: 128 + 1 watches fit.
        eq("watches before E2BIG", (n, e.as_str()), (129, "E2BIG"))?;
        teardown(&mut d0, 111)
    });
    r.run("quota-transactions", || {
        let mut d0 = ctx.conn()?;
        let mut g = setup(ctx, &mut d0, 112)?;
        let mut n = 0;
        let e = loop {
            match g.tx_start() {
                Ok(_) => n += 1,
                Err(e) => break e,
            }
            if n > 50 {
                break "no error".into();
            }
        };
        // C xenstored checks `started > quota` before adding: 10 + 1 transactions fit.
        eq(
            "transactions before ENOSPC",
            (n, e.as_str()),
            (11, "ENOSPC"),
        )?;
        reply("end one", g.tx_end(1, false), ok())?;
        eq("one more fits", g.tx_start().map(|_| ()), Ok(()))?;
        teardown(&mut d0, 112)
    });
    r.run("quota-node-size", || {
        let mut d0 = ctx.conn()?;
        let mut g = setup(ctx, &mut d0, 113)?;
        // record = 24 + 8 * 1 permission + value must stay below 2048.
        reply(
            "2015-byte value",
            g.write(0, "big", &vec![b'v'; 2015]),
            ok(),
        )?;
        reply(
            "2016-byte value",
            g.write(0, "big", &vec![b'v'; 2016]),
            err("ENOSPC"),
        )?;
        eq("value kept", g.read(0, "big").map(|v| v.len()), Ok(2015))?;
        teardown(&mut d0, 113)
    });
    r.run("release-removes-owned-nodes", || {
        // XSA-419: nodes a domain created outside its home go away with it.
        let mut d0 = ctx.conn()?;
        let mut g = setup(ctx, &mut d0, 114)?;
        let shared = p("shared");
        reply("dir", d0.mkdir(0, &shared), ok())?;
        reply("writable", d0.set_perms(0, &shared, &["n0", "w114"]), ok())?;
        reply(
            "guest creates",
            g.write(0, &format!("{shared}/mine"), b"m"),
            ok(),
        )?;
        reply("guest creates home node", g.write(0, "data", b""), ok())?;
        reply(
            "dom0 node in home",
            d0.write(0, "/local/domain/114/dom0s", b""),
            ok(),
        )?;
        release(&mut d0, 114)?;
        reply(
            "guest node outside home gone",
            d0.read(0, &format!("{shared}/mine")),
            err("ENOENT"),
        )?;
        reply(
            "owned home gone",
            d0.read(0, "/local/domain/114"),
            err("ENOENT"),
        )?;
        reply("shared dir stays", d0.read(0, &shared), val(b""))?;
        reply("CONTROL check", d0.control(&["check"]), ok())
    });
    r.run("domid-reuse", || {
        // XSA-322/417: permissions granted to an earlier domain with the same id do not apply.
        let mut d0 = ctx.conn()?;
        setup(ctx, &mut d0, 115)?;
        let n = p("reuse");
        reply("node", d0.write(0, &n, b"x"), ok())?;
        reply("grant 115", d0.set_perms(0, &n, &["n0", "r115"]), ok())?;
        teardown(&mut d0, 115)?;
        eq(
            "the entry naming the gone domain is purged",
            d0.get_perms(0, &n),
            Ok(vec![String::from("n0")]),
        )?;
        let mut g = setup(ctx, &mut d0, 115)?;
        reply("new domain 115 cannot read", g.read(0, &n), err("EACCES"))?;
        reply(
            "grant to absent 116",
            d0.set_perms(0, &n, &["n0", "r116"]),
            ok(),
        )?;
        let mut g6 = setup(ctx, &mut d0, 116)?;
        reply(
            "domain 116 introduced later cannot read",
            g6.read(0, &n),
            err("EACCES"),
        )?;
        reply("grant again", d0.set_perms(0, &n, &["n0", "r116"]), ok())?;
        reply("now it can", g6.read(0, &n), val(b"x"))?;
        reply("guest still denied", g.read(0, &n), err("EACCES"))?;
        teardown(&mut d0, 116)?;
        teardown(&mut d0, 115)
    });
    r.run("dead-owner-from-a-transaction", || {
        // A dom0 transaction gives a node to a domain that is released before the commit:
        // the node passes to dom0 and the next domain with that id gets nothing.
        let mut d0 = ctx.conn()?;
        setup(ctx, &mut d0, 126)?;
        let n = p("vm126");
        let t = d0.tx_start()?;
        reply("write in tx", d0.write(t, &n, b"secret"), ok())?;
        reply("give to 126 in tx", d0.set_perms(t, &n, &["n126"]), ok())?;
        teardown(&mut d0, 126)?;
        reply("commit", d0.tx_end(t, true), ok())?;
        eq(
            "owner passed to dom0",
            d0.get_perms(0, &n),
            Ok(vec![String::from("n0")]),
        )?;
        reply(
            "no quota entry for the gone domain",
            d0.control(&["quota", "126"]),
            err("ENOENT"),
        )?;
        let mut g = setup(ctx, &mut d0, 126)?;
        reply("new 126 cannot read", g.read(0, &n), err("EACCES"))?;
        reply("new 126 cannot write", g.write(0, &n, b"x"), err("EACCES"))?;
        reply("CONTROL check", d0.control(&["check"]), ok())?;
        teardown(&mut d0, 126)
    });
    r.run("deep-transactional-write-over-quota", || {
        // A transactional write creating more nodes than transaction-nodes allows is refused
        // before anything is recorded: the whole quota is left for the transaction.
        let mut d0 = ctx.conn()?;
        let mut g = setup(ctx, &mut d0, 127)?;
        reply(
            "transaction-nodes 10",
            d0.call(
                MsgType::SetQuota,
                0,
                &wire::strings(&["127", "transaction-nodes", "10"]),
            ),
            ok(),
        )?;
        let t = g.tx_start()?;
        let deep = format!("{}leaf", "d/".repeat(600));
        reply("600 levels", g.write(t, &deep, b"v"), err("ENOSPC"))?;
        for i in 0..10 {
            reply(
                "quota still whole",
                g.write(t, &format!("n{i}"), b"v"),
                ok(),
            )?;
        }
        reply("11th node", g.write(t, "n10", b"v"), err("ENOSPC"))?;
        reply("commit", g.tx_end(t, true), ok())?;
        reply("committed", g.read(0, "n9"), val(b"v"))?;
        teardown(&mut d0, 127)
    });
    r.run("reconnect-replaces-connection", || {
        let mut d0 = ctx.conn()?;
        let mut a = setup(ctx, &mut d0, 117)?;
        reply("a works", a.write(0, "x", b"1"), ok())?;
        let mut b = guest(ctx, 117)?;
        reply("b works", b.read(0, "x"), val(b"1"))?;
        eq("a closed", a.is_closed(Duration::from_secs(2)), true)?;
        teardown(&mut d0, 117)
    });
    r.run("xsa414-415-quota-hit-midway", || {
        // A create that needs more nodes than the quota leaves none of them behind, outside
        // and inside a transaction; the transaction still commits its other work (item 14).
        let mut d0 = ctx.conn()?;
        let mut g = setup(ctx, &mut d0, 124)?;
        let (k, e) = fill(&mut g, "q", 1100);
        eq("filled", (k, e.as_str()), (999, "ENOSPC"))?;
        reply("free two nodes", g.rm(0, "q/d0/n0"), ok())?;
        reply("free", g.rm(0, "q/d0/n1"), ok())?;
        reply(
            "3 new nodes needed",
            g.write(0, "p/q/r", b""),
            err("ENOSPC"),
        )?;
        reply("no partial parent", g.read(0, "p"), err("ENOENT"))?;
        let t = g.tx_start()?;
        reply("in tx: one node", g.write(t, "q/d0/n0", b"t"), ok())?;
        reply(
            "in tx: 3 more needed",
            g.write(t, "p/q/r", b""),
            err("ENOSPC"),
        )?;
        reply("commit", g.tx_end(t, true), ok())?;
        reply("committed", g.read(0, "q/d0/n0"), val(b"t"))?;
        reply("no orphans", g.read(0, "p"), err("ENOENT"))?;
        reply("CONTROL check", d0.control(&["check"]), ok())?;
        teardown(&mut d0, 124)
    });
    r.run("xsa206-dom0-transactions-while-guest-writes", || {
        let mut d0 = ctx.conn()?;
        let mut g = setup(ctx, &mut d0, 125)?;
        let n = p("x206");
        reply("node", d0.write(0, &n, b"0"), ok())?;
        reply(
            "guest may write",
            d0.set_perms(0, &n, &["n0", "b125"]),
            ok(),
        )?;
        let gn = n.clone();
        let writer = std::thread::spawn(move || {
            let t = Instant::now();
            let mut i = 0u64;
            while t.elapsed() < Duration::from_secs(2) {
                if g.write(0, &gn, i.to_string().as_bytes()).is_err() {
                    break;
                }
                i += 1;
            }
            i
        });
        // Past the guest's initial write burst, its writes are rate-limited.
        std::thread::sleep(Duration::from_millis(300));
        let mut worst = (0, Duration::ZERO);
        for round in 0..50 {
            let t = Instant::now();
            let mut attempts = 0;
            loop {
                attempts += 1;
                let tx = d0.tx_start()?;
                let v = d0.read(tx, &n)?;
                reply("write", d0.write(tx, &n, &v), ok())?;
                match d0.tx_end(tx, true) {
                    Ok(_) => break,
                    Err(e) if e == "EAGAIN" && attempts < 10_000 => continue,
                    Err(e) => return Err(format!("round {round}: attempt {attempts}: {e}")),
                }
            }
            worst = worst.max((attempts, t.elapsed()));
        }
        let writes = writer
            .join()
            .map_err(|_| "writer thread panicked".to_string())?;
        if writes == 0 {
            return Err("the guest could not write at all".into());
        }
        if worst.1 > Duration::from_secs(1) {
            return Err(format!(
                "a dom0 transaction needed {} attempts and {:?}",
                worst.0, worst.1
            ));
        }
        teardown(&mut d0, 125)
    });
    r.run(
        "set-target-then-xsa233-release-guest-and-device-model-together",
        || {
            let mut d0 = ctx.conn()?;
            let _g = setup(ctx, &mut d0, 126)?;
            let mut dm = setup(ctx, &mut d0, 127)?;
            let n = p("target");
            reply("node for 126", d0.write(0, &n, b"t"), ok())?;
            reply(
                "readable by 126",
                d0.set_perms(0, &n, &["n0", "r126"]),
                ok(),
            )?;
            reply("127 before SET_TARGET", dm.read(0, &n), err("EACCES"))?;
            reply(
                "SET_TARGET",
                d0.call(MsgType::SetTarget, 0, b"127\x00126\0"),
                ok(),
            )?;
            reply("127 acts for 126", dm.read(0, &n), val(b"t"))?;
            reply(
                "127 writes 126's home",
                dm.write(0, "/local/domain/126/dm", b""),
                ok(),
            )?;
            reply("watch", d0.watch("@releaseDomain", "rel"), ok())?;
            sync_events(&mut d0)?;
            let mut both = wire::encode(MsgType::Release.code(), 901, 0, b"126\0");
            both.extend(wire::encode(MsgType::Release.code(), 902, 0, b"127\0"));
            d0.send_raw(&both).map_err(|e| e.to_string())?;
            for id in [901, 902] {
                let m = d0.recv_reply(id).map_err(|e| e.to_string())?;
                eq("RELEASE reply", m.describe(), "RELEASE OK\\0".to_string())?;
            }
            let ev = sync_events(&mut d0)?;
            if ev.is_empty()
                || ev
                    .iter()
                    .any(|e| e != &("@releaseDomain".to_string(), "rel".to_string()))
            {
                return Err(format!("release events {ev:?}"));
            }
            reply(
                "home 126 gone",
                d0.read(0, "/local/domain/126"),
                err("ENOENT"),
            )?;
            reply(
                "home 127 gone",
                d0.read(0, "/local/domain/127"),
                err("ENOENT"),
            )?;
            reply("CONTROL check", d0.control(&["check"]), ok())
        },
    );
    r.run("xsa325-garbage-then-release", || {
        let mut d0 = ctx.conn()?;
        let mut g = setup(ctx, &mut d0, 128)?;
        g.send_raw(&wire::header(MsgType::Write.code(), 1, 0, 5000))
            .map_err(|e| e.to_string())?;
        eq(
            "guest connection dropped",
            g.is_closed(Duration::from_secs(2)),
            true,
        )?;
        reply(
            "still introduced",
            d0.call(MsgType::IsDomainIntroduced, 0, b"128\0"),
            val(b"T\0"),
        )?;
        reply("watch", d0.watch("@releaseDomain", "rel"), ok())?;
        sync_events(&mut d0)?;
        release(&mut d0, 128)?;
        expect_events(
            &mut d0,
            "@releaseDomain on teardown",
            &[("@releaseDomain", "rel")],
        )
    });
    r.run("xsa330-reset-watches-frees-watch-quota", || {
        let mut d0 = ctx.conn()?;
        let mut g = setup(ctx, &mut d0, 129)?;
        for round in 0..20 {
            for i in 0..120 {
                reply(
                    &format!("round {round} watch {i}"),
                    g.watch(&format!("w{i}"), "t"),
                    ok(),
                )?;
            }
            reply(
                "RESET_WATCHES",
                g.call(MsgType::ResetWatches, 0, b"\0"),
                ok(),
            )?;
            sync_events(&mut g)?;
        }
        teardown(&mut d0, 129)
    });
    r.run("xsa326-128-watches-then-rm-of-1000-node-subtree", || {
        let mut d0 = ctx.conn()?;
        let mut g = setup(ctx, &mut d0, 130)?;
        let big = p("big");
        reply("dir", d0.mkdir(0, &big), ok())?;
        reply("readable", d0.set_perms(0, &big, &["n0", "r130"]), ok())?;
        for i in 0..1000 {
            reply(
                "write",
                d0.write(0, &format!("{big}/d{}/n{}", i / 40, i % 40), b""),
                ok(),
            )?;
        }
        let mut want = vec![(big.clone(), "root".to_string())];
        reply("watch root", g.watch(&big, "root"), ok())?;
        for i in 0..127 {
            let node = format!("{big}/d{}/n{}", i / 40, i % 40);
            reply("watch", g.watch(&node, "leaf"), ok())?;
            want.push((node, "leaf".to_string()));
        }
        sync_events(&mut g)?;
        let t = Instant::now();
        reply("rm subtree", d0.rm(0, &big), ok())?;
        let mut other = ctx.conn()?;
        reply("others served", other.read(0, "/tool"), val(b""))?;
        eq(
            "rm and next request under 1 s",
            t.elapsed() < Duration::from_secs(1),
            true,
        )?;
        want.sort();
        eq("one event per watch", sync_events(&mut g)?, want)?;
        teardown(&mut d0, 130)
    });
    r.run("write-rate-limit", || {
        // DIFFERENCES.md item 16, like C's WRL: guest writes are charged only while some
        // transaction is open, then limited to 200/s once the domain's burst (10) and what it
        // can borrow from the global reserve (at most 1000, plus 50 for a new domain) are
        // spent: 1300 writes need at least (1300 - 1060) / 200 s = 1.2 s.
        let mut d0 = ctx.conn()?;
        let mut g = setup(ctx, &mut d0, 131)?;
        let t = Instant::now();
        for i in 0..100 {
            reply("write", g.write(0, "r", i.to_string().as_bytes()), ok())?;
        }
        let took = t.elapsed();
        if took > Duration::from_millis(200) {
            return Err(format!("100 writes with no transaction open took {took:?}"));
        }
        let tx = d0.tx_start()?;
        let t = Instant::now();
        for i in 0..1300 {
            reply(
                "write",
                g.write(0, "r", (i % 100).to_string().as_bytes()),
                ok(),
            )?;
        }
        let took = t.elapsed();
        if took < Duration::from_millis(1000) {
            return Err(format!(
                "1300 guest writes while a transaction is open took {took:?}: not rate-limited"
            ));
        }
        let t = Instant::now();
        for _ in 0..100 {
            reply("read", g.read(0, "r"), val(b"99"))?;
        }
        let took = t.elapsed();
        if took > Duration::from_millis(200) {
            return Err(format!(
                "100 reads took {took:?}: reads must not be limited"
            ));
        }
        reply("end", d0.tx_end(tx, false), ok())?;
        teardown(&mut d0, 131)
    });
    r.run("xsa425-release-busy-connection", || {
        let mut d0 = ctx.conn()?;
        let mut g = setup(ctx, &mut d0, 118)?;
        let mut flood = Vec::new();
        for i in 0..200u32 {
            let mut pl = wire::strings(&[&format!("f{}", i % 10)]);
            pl.push(b'x');
            flood.extend(wire::encode(MsgType::Write.code(), i, 0, &pl));
        }
        g.send_raw(&flood).map_err(|e| e.to_string())?;
        release(&mut d0, 118)?;
        reply("home gone", d0.read(0, "/local/domain/118"), err("ENOENT"))?;
        reply("CONTROL check", d0.control(&["check"]), ok())
    });
    r.run("xsa440-guest-transactions-delete-same-nodes", || {
        let mut d0 = ctx.conn()?;
        let mut g = setup(ctx, &mut d0, 119)?;
        for i in 0..50 {
            reply("write", g.write(0, &format!("x/n{i}"), b""), ok())?;
        }
        let t1 = g.tx_start()?;
        let t2 = g.tx_start()?;
        reply("rm t1", g.rm(t1, "x"), ok())?;
        reply("rm t2", g.rm(t2, "x"), ok())?;
        reply("commit t1", g.tx_end(t1, true), ok())?;
        reply("commit t2", g.tx_end(t2, true), err("EAGAIN"))?;
        let (k, e) = fill(&mut g, "q", 1100);
        eq("error", e.as_str(), "ENOSPC")?;
        eq("accounting exact after two deleting transactions", k, 999)?;
        reply("CONTROL check", d0.control(&["check"]), ok())?;
        teardown(&mut d0, 119)
    });
    r.run("xsa483-quota-reset-on-domid-reuse", || {
        let mut d0 = ctx.conn()?;
        let mut g = setup(ctx, &mut d0, 120)?;
        let (k, e) = fill(&mut g, "q", 1100);
        eq("filled", e.as_str(), "ENOSPC")?;
        teardown(&mut d0, 120)?;
        let mut g = setup(ctx, &mut d0, 120)?;
        let (k2, e2) = fill(&mut g, "q", 1100);
        eq("full quota again", (k2, e2.as_str()), (k, "ENOSPC"))?;
        teardown(&mut d0, 120)
    });
    if let Some(pd) = ctx.priv_domid {
        r.run("priv-domid-is-privileged", || {
            let mut d0 = ctx.conn()?;
            let mut g = setup(ctx, &mut d0, pd)?;
            reply("CONTROL check", g.control(&["check"]), ok())?;
            reply("read n0 node", g.read(0, "/tool"), val(b""))?;
            eq(
                "directory /",
                g.directory(0, "/").map(|d| d.contains(&"tool".to_string())),
                Ok(true),
            )?;
            reply(
                "IS_DOMAIN_INTRODUCED",
                g.call(
                    MsgType::IsDomainIntroduced,
                    0,
                    &wire::strings(&[&pd.to_string()]),
                ),
                val(b"T\0"),
            )?;
            reply(
                "relative paths still under its home",
                g.write(0, "rel", b"x"),
                ok(),
            )?;
            reply(
                "home",
                d0.read(0, &format!("/local/domain/{pd}/rel")),
                val(b"x"),
            )?;
            teardown(&mut d0, pd)
        });
    }
    if let Ok(mut c) = ctx.conn() {
        let _ = c.rm(0, B);
    }
}
