//! Malformed and hostile input at the wire level (issue 3 §4) and the privileged-client cases
//! of the XSA table (anchors-and-xsa-tests.md §3). Every test ends by checking that the server
//! still answers a fresh connection and that `CONTROL check` reports OK.

use crate::{expect_events, sync_events, Ctx};
use std::time::{Duration, Instant};
use xs_conformance::harness::{eq, err, ok, reply, val, Runner};
use xs_conformance::wire::{self, MsgType};
use xs_conformance::Client;

const B: &str = "/conformance/bad";

fn p(name: &str) -> String {
    format!("{B}/{name}")
}

/// The server still serves a new connection and its store is consistent.
pub fn alive(ctx: &Ctx) -> Result<(), String> {
    let mut c = ctx.conn()?;
    reply("liveness write", c.write(0, &p("alive"), b"yes"), ok())?;
    reply("liveness read", c.read(0, &p("alive")), val(b"yes"))?;
    reply("CONTROL check", c.control(&["check"]), ok())
}

/// Sends raw bytes on a new connection and returns the first reply.
fn raw_one(
    ctx: &Ctx,
    ty: u32,
    tx: u32,
    payload: &[u8],
) -> Result<xs_conformance::XsResult, String> {
    let mut c = ctx.conn()?;
    let m = c.request_msg(ty, tx, payload).map_err(|e| e.to_string())?;
    Ok(xs_conformance::client::reduce(&m, ty))
}

fn closed(c: &mut Client) -> Result<(), String> {
    if c.is_closed(Duration::from_secs(3)) {
        Ok(())
    } else {
        Err("server kept the connection open".into())
    }
}

pub fn run(ctx: &Ctx, r: &mut Runner) {
    if let Ok(mut c) = ctx.conn() {
        let _ = c.rm(0, B);
    }
    r.run("header-len-over-4096", || {
        let mut other = ctx.conn()?;
        let mut c = ctx.conn()?;
        c.send_raw(&wire::header(MsgType::Write.code(), 1, 0, 4097))
            .map_err(|e| e.to_string())?;
        let _ = c.send_raw(&vec![b'a'; 4097]);
        closed(&mut c)?;
        reply("other connection", other.read(0, "/"), val(b""))?;
        alive(ctx)
    });
    r.run("header-len-1GiB", || {
        let mut c = ctx.conn()?;
        c.send_raw(&wire::header(MsgType::Read.code(), 1, 0, 0x4000_0000))
            .map_err(|e| e.to_string())?;
        closed(&mut c)?;
        let mut c = ctx.conn()?;
        c.send_raw(&wire::header(MsgType::Read.code(), 1, 0, u32::MAX))
            .map_err(|e| e.to_string())?;
        closed(&mut c)?;
        alive(ctx)
    });
    r.run("truncated-header", || {
        let mut c = ctx.conn()?;
        c.send_raw(&wire::header(MsgType::Read.code(), 1, 0, 2)[..7])
            .map_err(|e| e.to_string())?;
        let mut other = ctx.conn()?;
        reply("others served meanwhile", other.read(0, "/"), val(b""))?;
        c.shutdown_write().map_err(|e| e.to_string())?;
        drop(c);
        alive(ctx)
    });
    r.run("truncated-payload", || {
        let mut c = ctx.conn()?;
        let mut m = wire::header(MsgType::Write.code(), 1, 0, 100).to_vec();
        m.extend_from_slice(b"/conformance/bad/t\0ab");
        c.send_raw(&m).map_err(|e| e.to_string())?;
        let mut other = ctx.conn()?;
        reply("others served meanwhile", other.read(0, "/"), val(b""))?;
        drop(c);
        reply(
            "partial write not applied",
            other.read(0, &p("t")),
            err("ENOENT"),
        )?;
        alive(ctx)
    });
    // A one-argument path request (READ, DIRECTORY, GET_PERMS, MKDIR, RM) whose payload is
    // not exactly one NUL-terminated string is answered EINVAL, as current C xenstored (4.17:
    // ENOENT, and ENOMEM for MKDIR and RM); so are other malformed requests.
    r.run("zero-length-payload", || {
        use MsgType::*;
        let cases = [
            (Directory, "EINVAL"),
            (Read, "EINVAL"),
            (GetPerms, "EINVAL"),
            (Mkdir, "EINVAL"),
            (Rm, "EINVAL"),
            (Watch, "EINVAL"),
            (Unwatch, "EINVAL"),
            (TransactionEnd, "EINVAL"),
            (Introduce, "EINVAL"),
            (Release, "EINVAL"),
            (GetDomainPath, "EINVAL"),
            (Write, "EINVAL"),
            (SetPerms, "EINVAL"),
            (IsDomainIntroduced, "EINVAL"),
            (Resume, "EINVAL"),
            (SetTarget, "EINVAL"),
            (DirectoryPart, "EINVAL"),
            (Control, "EINVAL"),
        ];
        for (ty, want) in cases {
            reply(
                &format!("{ty:?} with no payload"),
                raw_one(ctx, ty.code(), 0, b"")?,
                err(want),
            )?;
        }
        reply(
            "RESET_WATCHES",
            raw_one(ctx, ResetWatches.code(), 0, b"")?,
            ok(),
        )?;
        alive(ctx)
    });
    r.run("unterminated-strings", || {
        use MsgType::*;
        let cases: [(MsgType, &[u8], &str); 11] = [
            (Read, b"/conformance", "EINVAL"),
            (Directory, b"/", "EINVAL"),
            (Rm, b"/conformance/bad/x", "EINVAL"),
            (Watch, b"/x\0tok", "EINVAL"),
            (Unwatch, b"/x\0tok", "EINVAL"),
            (SetPerms, b"/\0n0", "EINVAL"),
            (DirectoryPart, b"/\x000", "EINVAL"),
            (GetDomainPath, b"5", "EINVAL"),
            (IsDomainIntroduced, b"0", "EINVAL"),
            (TransactionEnd, b"T", "EINVAL"),
            (Control, b"check", "EINVAL"),
        ];
        for (ty, pl, want) in cases {
            reply(
                &format!("{ty:?} {}", wire::show(pl)),
                raw_one(ctx, ty.code(), 0, pl)?,
                err(want),
            )?;
        }
        alive(ctx)
    });
    r.run("watch-then-bad-one-arg-request", || {
        // C xenstored 4.17 aborts on this sequence (fixed in 4.18): it must be an error reply.
        let mut c = ctx.conn()?;
        reply("watch", c.watch(&p("w"), "t"), ok())?;
        reply(
            "empty payload",
            c.call(MsgType::Read, 0, b""),
            err("EINVAL"),
        )?;
        reply(
            "unterminated",
            c.call(MsgType::Read, 0, b"/x"),
            err("EINVAL"),
        )?;
        reply(
            "empty directory",
            c.call(MsgType::Directory, 0, b""),
            err("EINVAL"),
        )?;
        reply(
            "empty path string",
            c.call(MsgType::Read, 0, b"\0"),
            err("EINVAL"),
        )?;
        reply("still served", c.read(0, "/"), val(b""))?;
        alive(ctx)
    });
    r.run("empty-path", || {
        let mut c = ctx.conn()?;
        for ty in [
            MsgType::Read,
            MsgType::Write,
            MsgType::Mkdir,
            MsgType::Rm,
            MsgType::Directory,
            MsgType::GetPerms,
        ] {
            reply(&format!("{ty:?} \"\""), c.call(ty, 0, b"\0"), err("EINVAL"))?;
        }
        reply("WATCH \"\"", c.watch("", "t"), err("EINVAL"))?;
        alive(ctx)
    });
    r.run("bad-path-syntax", || {
        let mut c = ctx.conn()?;
        for path in [
            "//a",
            "/conformance//bad",
            "/conformance/",
            "/a b",
            "/a*",
            "/a\x01",
            "/\u{e4}",
            "/a\\b",
            "/a.b",
            "/a:b",
        ] {
            reply(
                &format!("WRITE {path:?}"),
                c.write(0, path, b"v"),
                err("EINVAL"),
            )?;
            reply(&format!("READ {path:?}"), c.read(0, path), err("EINVAL"))?;
        }
        reply("WATCH //", c.watch("//", "t"), err("EINVAL"))?;
        reply("WATCH trailing /", c.watch("/x/", "t"), err("EINVAL"))?;
        reply(
            "allowed characters",
            c.write(0, &p("a-b_c@d9Z"), b"v"),
            ok(),
        )?;
        reply("read back", c.read(0, &p("a-b_c@d9Z")), val(b"v"))?;
        alive(ctx)
    });
    // dom0 has no path limit but the payload's in current C xenstored (4.17: 2048 bytes, or
    // 2048 below /local/domain/<id>/); a guest's `path-max` quota is in the guest suite.
    r.run("long-privileged-paths", || {
        let mut c = ctx.conn()?;
        let long = |len: usize| format!("/{}", "a".repeat(len - 1));
        for len in [2048, 2049, 3073, 4000] {
            reply(
                &format!("absolute {len}"),
                c.write(0, &long(len), b"v"),
                ok(),
            )?;
            reply(&format!("read {len}"), c.read(0, &long(len)), val(b"v"))?;
            reply("cleanup", c.rm(0, &long(len)), ok())?;
        }
        let dom = |len: usize| format!("/local/domain/7/{}", "b".repeat(len));
        reply("domain-relative 2049", c.write(0, &dom(2049), b"v"), ok())?;
        reply("cleanup", c.rm(0, "/local/domain/7"), ok())?;
        alive(ctx)
    });
    r.run("unknown-type", || {
        for ty in [20u32, 27, 99, 0xFFFF, 0x8000_0000] {
            reply(
                &format!("type {ty}"),
                raw_one(ctx, ty, 0, b"/\0")?,
                err("ENOSYS"),
            )?;
        }
        alive(ctx)
    });
    r.run("watch-4000-byte-token", || {
        let mut c = ctx.fresh(&p("tok"))?;
        reply("mkdir", c.mkdir(0, &p("tok")), ok())?;
        let token = "T".repeat(4000);
        reply("watch", c.watch(&p("tok"), &token), ok())?;
        expect_events(&mut c, "initial event fits", &[(&p("tok"), &token)])?;
        // This event would be 4000 + 110 bytes: it cannot be sent and must be dropped.
        let child = format!("{}/{}", p("tok"), "c".repeat(90));
        reply("write", c.write(0, &child, b""), ok())?;
        expect_events(&mut c, "over-long event dropped", &[])?;
        reply("small child", c.write(0, &p("tok/s"), b""), ok())?;
        expect_events(&mut c, "fitting event delivered", &[(&p("tok/s"), &token)])?;
        reply("connection usable", c.read(0, &p("tok/s")), val(b""))?;
        alive(ctx)
    });
    r.run("directory-e2big-and-part", || {
        let mut c = ctx.fresh(&p("big"))?;
        let mut want = Vec::new();
        for i in 0..100 {
            let name = format!("{i:03}{}", "n".repeat(57));
            reply(
                "write",
                c.write(0, &format!("{}/{name}", p("big")), b""),
                ok(),
            )?;
            want.push(name);
        }
        eq("DIRECTORY", c.directory(0, &p("big")), Err("E2BIG".into()))?;
        let mut got = Vec::new();
        let mut offset = 0usize;
        let mut gen = None;
        for _ in 0..10 {
            let pl = c.call(
                MsgType::DirectoryPart,
                0,
                &wire::strings(&[&p("big"), &offset.to_string()]),
            )?;
            if pl.len() > wire::PAYLOAD_MAX {
                return Err("DIRECTORY_PART reply over 4096 bytes".into());
            }
            let s = wire::split(&pl);
            let (g, names) = s.split_first().ok_or("empty DIRECTORY_PART reply")?;
            if gen.get_or_insert_with(|| g.clone()) != g {
                return Err("generation changed between chunks".into());
            }
            let done = names.last().is_some_and(|n| n.is_empty());
            for n in names.iter().filter(|n| !n.is_empty()) {
                offset += n.len() + 1;
                got.push(n.clone());
            }
            if done {
                break;
            }
        }
        got.sort();
        eq("all children through DIRECTORY_PART", got, want)?;
        alive(ctx)
    });
    r.run("rm-root", || {
        let mut c = ctx.conn()?;
        reply("RM /", c.rm(0, "/"), err("EINVAL"))?;
        reply("tool survives", c.read(0, "/tool"), val(b""))?;
        alive(ctx)
    });
    r.run("deep-tree-1000-levels", || {
        // XSA-418: a tree as deep as path-max allows, then RM of its root.
        let mut c = ctx.fresh(&p("deep"))?;
        let mut path = p("deep");
        for _ in 0..1000 {
            path.push_str("/a");
        }
        reply("write deepest", c.write(0, &path, b"bottom"), ok())?;
        reply("read deepest", c.read(0, &path), val(b"bottom"))?;
        reply("watch deepest", c.watch(&path, "d"), ok())?;
        sync_events(&mut c)?;
        reply("CONTROL check", c.control(&["check"]), ok())?;
        reply("rm root", c.rm(0, &p("deep")), ok())?;
        expect_events(&mut c, "deepest watch fires", &[(&path, "d")])?;
        reply("gone", c.read(0, &path), err("ENOENT"))?;
        alive(ctx)
    });
    r.run("xsa421-create-delete-in-transaction", || {
        let mut c = ctx.fresh(&p("x421"))?;
        let t = c.tx_start()?;
        reply("mkdir a/b", c.mkdir(t, &p("x421/a/b")), ok())?;
        reply("rm a", c.rm(t, &p("x421/a")), ok())?;
        reply("commit", c.tx_end(t, true), ok())?;
        reply("a absent", c.read(0, &p("x421/a")), err("ENOENT"))?;
        alive(ctx)
    });
    r.run("xsa440-two-transactions-delete-same-nodes", || {
        let mut c = ctx.fresh(&p("x440"))?;
        for i in 0..50 {
            reply(
                "write",
                c.write(0, &format!("{}/n{i}", p("x440")), b""),
                ok(),
            )?;
        }
        let t1 = c.tx_start()?;
        let t2 = c.tx_start()?;
        reply("rm in t1", c.rm(t1, &p("x440")), ok())?;
        reply("rm in t2", c.rm(t2, &p("x440")), ok())?;
        reply("commit t1", c.tx_end(t1, true), ok())?;
        reply("commit t2", c.tx_end(t2, true), err("EAGAIN"))?;
        reply("gone", c.read(0, &p("x440")), err("ENOENT"))?;
        alive(ctx)
    });
    r.run("xsa481-local-domain-paths", || {
        let mut c = ctx.conn()?;
        reply("trailing slash", c.read(0, "/local/domain/"), err("EINVAL"))?;
        reply("non-numeric", c.read(0, "/local/domain/x"), err("ENOENT"))?;
        reply(
            "huge domid",
            c.read(0, "/local/domain/99999999999"),
            err("ENOENT"),
        )?;
        alive(ctx)
    });
    r.run("xsa484-reset-watches-in-transaction", || {
        let mut c = ctx.conn()?;
        let t = c.tx_start()?;
        reply(
            "RESET_WATCHES with tx",
            c.call(MsgType::ResetWatches, t, b"\0"),
            ok(),
        )?;
        reply("transaction gone", c.tx_end(t, true), err("ENOENT"))?;
        reply(
            "RESET_WATCHES with unknown tx",
            c.call(MsgType::ResetWatches, 4242, b"\0"),
            err("ENOENT"),
        )?;
        alive(ctx)
    });
    r.run("xsa416-replies-never-read", || {
        let mut c = ctx.fresh(&p("unread"))?;
        for i in 0..60 {
            let name = format!("{}/{i:02}{}", p("unread"), "x".repeat(60));
            reply("write", c.write(0, &name, b""), ok())?;
        }
        let req = wire::encode(
            MsgType::Directory.code(),
            1,
            0,
            &wire::strings(&[&p("unread")]),
        );
        let mut flood = Vec::new();
        for _ in 0..2000 {
            flood.extend_from_slice(&req);
        }
        let mut f = ctx.conn()?;
        f.send_raw(&flood).map_err(|e| e.to_string())?;
        let t = Instant::now();
        alive(ctx)?;
        drop(f);
        eq(
            "others answered within 2 s",
            t.elapsed() < Duration::from_secs(2),
            true,
        )?;
        alive(ctx)
    });
    r.run("xsa326-event-flood-never-read", || {
        let mut w = ctx.fresh(&p("flood"))?;
        reply("watch", w.watch(&p("flood"), "f"), ok())?;
        let mut c = ctx.conn()?;
        let t = Instant::now();
        for i in 0..3000 {
            reply(
                "write",
                c.write(0, &format!("{}/{}", p("flood"), i % 50), b"x"),
                ok(),
            )?;
        }
        eq(
            "writer not blocked (3000 writes < 10 s)",
            t.elapsed() < Duration::from_secs(10),
            true,
        )?;
        drop(w);
        alive(ctx)
    });
    if let Ok(mut c) = ctx.conn() {
        let _ = c.rm(0, B);
    }
}
