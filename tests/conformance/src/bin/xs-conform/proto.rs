//! Protocol conformance for a privileged (dom0) socket client: the exact reply of every
//! request type, written from xen-pv-and-xenstore.md §6 and C xenstored 4.17's observed replies.

use crate::{expect_events, sync_events, Ctx};
use xs_conformance::harness::{eq, err, ok, reply, val, Runner};
use xs_conformance::wire::{self, MsgType};

const B: &str = "/conformance/proto";

fn p(name: &str) -> String {
    format!("{B}/{name}")
}

pub fn run(ctx: &Ctx, r: &mut Runner) {
    r.run("write-read", || {
        let mut c = ctx.fresh(&p("wr"))?;
        reply("write", c.write(0, &p("wr/a"), b"hello"), ok())?;
        reply("read", c.read(0, &p("wr/a")), val(b"hello"))?;
        reply("overwrite", c.write(0, &p("wr/a"), b""), ok())?;
        reply("read empty value", c.read(0, &p("wr/a")), val(b""))?;
        reply("binary value", c.write(0, &p("wr/b"), b"a\0b\xff"), ok())?;
        reply("read binary", c.read(0, &p("wr/b")), val(b"a\0b\xff"))?;
        let big = vec![b'x'; 4096 - p("wr/big").len() - 1];
        reply(
            "4096-byte payload write",
            c.write(0, &p("wr/big"), &big),
            ok(),
        )?;
        reply("read it back", c.read(0, &p("wr/big")), Ok(big))
    });
    r.run("read-missing", || {
        let mut c = ctx.fresh(&p("rm"))?;
        reply("missing", c.read(0, &p("rm/x")), err("ENOENT"))?;
        reply("under missing", c.read(0, &p("rm/x/y")), err("ENOENT"))
    });
    r.run("write-creates-parents", || {
        let mut c = ctx.fresh(&p("wp"))?;
        reply("write", c.write(0, &p("wp/a/b/c"), b"v"), ok())?;
        reply("parent a", c.read(0, &p("wp/a")), val(b""))?;
        reply("parent b", c.read(0, &p("wp/a/b")), val(b""))?;
        eq(
            "dir a",
            c.directory(0, &p("wp/a")),
            Ok(vec!["b".to_string()]),
        )
    });
    r.run("mkdir", || {
        let mut c = ctx.fresh(&p("mk"))?;
        reply("new", c.mkdir(0, &p("mk/d")), ok())?;
        reply("value", c.read(0, &p("mk/d")), val(b""))?;
        reply("write", c.write(0, &p("mk/v"), b"1"), ok())?;
        reply("existing", c.mkdir(0, &p("mk/v")), ok())?;
        reply("value kept", c.read(0, &p("mk/v")), val(b"1"))?;
        reply("deep", c.mkdir(0, &p("mk/x/y/z")), ok())?;
        reply("deep parent", c.read(0, &p("mk/x/y")), val(b""))
    });
    r.run("directory", || {
        let mut c = ctx.fresh(&p("dir"))?;
        for k in ["one", "two", "three"] {
            reply(
                "write",
                c.write(0, &format!("{}/{k}", p("dir")), b"v"),
                ok(),
            )?;
        }
        reply("write nested", c.write(0, &p("dir/two/sub"), b""), ok())?;
        let mut names = c.directory(0, &p("dir"))?;
        names.sort();
        eq(
            "children",
            names,
            vec!["one".into(), "three".into(), "two".into()],
        )?;
        reply(
            "leaf has no children",
            c.call(MsgType::Directory, 0, &wire::strings(&[&p("dir/one")])),
            val(b""),
        )?;
        eq(
            "missing",
            c.directory(0, &p("dir/none")),
            Err("ENOENT".into()),
        )
    });
    r.run("directory-part", || {
        let mut c = ctx.fresh(&p("dp"))?;
        for k in ["aa", "bb", "cc"] {
            reply("write", c.write(0, &format!("{}/{k}", p("dp")), b""), ok())?;
        }
        let part = |c: &mut xs_conformance::Client, off: &str| {
            c.call(MsgType::DirectoryPart, 0, &wire::strings(&[&p("dp"), off]))
        };
        let full = part(&mut c, "0")?;
        let s = wire::split(&full);
        // gencnt, three names, then the empty name that ends the final chunk.
        eq("string count", s.len(), 5)?;
        let gen = s[0].clone();
        if gen.is_empty() || !gen.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("generation count {gen:?} is not decimal"));
        }
        eq("final empty name", s[4].as_str(), "")?;
        let mut names = s[1..4].to_vec();
        names.sort();
        eq("names", names, vec!["aa".into(), "bb".into(), "cc".into()])?;
        let rest = wire::strings(&[&gen, &s[2], &s[3], ""]);
        reply("offset 3 skips the first name", part(&mut c, "3"), Ok(rest))?;
        reply(
            "offset at end",
            part(&mut c, "9"),
            Ok(wire::strings(&[&gen, ""])),
        )?;
        reply(
            "unchanged generation",
            part(&mut c, "9"),
            Ok(wire::strings(&[&gen, ""])),
        )?;
        reply("add child", c.write(0, &p("dp/dd"), b""), ok())?;
        let again = wire::split(&part(&mut c, "0")?);
        if again.first() == Some(&gen) {
            return Err(format!("generation {gen} unchanged after adding a child"));
        }
        eq("names after add", again.len(), 6)?;
        reply(
            "missing node",
            c.call(
                MsgType::DirectoryPart,
                0,
                &wire::strings(&[&p("none"), "0"]),
            ),
            err("ENOENT"),
        )
    });
    r.run("rm", || {
        let mut c = ctx.fresh(&p("rmt"))?;
        reply("write", c.write(0, &p("rmt/a/b/c"), b"v"), ok())?;
        reply("rm subtree", c.rm(0, &p("rmt/a")), ok())?;
        reply("gone", c.read(0, &p("rmt/a/b/c")), err("ENOENT"))?;
        reply("gone root", c.read(0, &p("rmt/a")), err("ENOENT"))?;
        eq("parent empty", c.directory(0, &p("rmt")), Ok(vec![]))?;
        reply("missing leaf, parent exists", c.rm(0, &p("rmt/a")), ok())?;
        reply("missing parent", c.rm(0, &p("rmt/a/b")), err("ENOENT"))?;
        reply("rm /", c.rm(0, "/"), err("EINVAL"))?;
        reply("tree intact", c.read(0, &p("rmt")), val(b""))
    });
    r.run("permissions", || {
        let mut c = ctx.fresh(&p("perm"))?;
        reply("write", c.write(0, &p("perm/a"), b"v"), ok())?;
        eq(
            "default",
            c.get_perms(0, &p("perm/a")),
            Ok(vec!["n0".into()]),
        )?;
        reply("set", c.set_perms(0, &p("perm/a"), &["b0", "r0"]), ok())?;
        eq(
            "get",
            c.get_perms(0, &p("perm/a")),
            Ok(vec!["b0".into(), "r0".into()]),
        )?;
        reply("child", c.write(0, &p("perm/a/kid"), b""), ok())?;
        eq(
            "inherited",
            c.get_perms(0, &p("perm/a/kid")),
            Ok(vec!["b0".into(), "r0".into()]),
        )?;
        reply(
            "owner not a domain",
            c.set_perms(0, &p("perm/a"), &["w5"]),
            err("ENOENT"),
        )?;
        reply("write b", c.write(0, &p("perm/b"), b""), ok())?;
        reply(
            "entry for absent domain",
            c.set_perms(0, &p("perm/b"), &["n0", "r5"]),
            ok(),
        )?;
        eq(
            "kept and listed",
            c.get_perms(0, &p("perm/b")),
            Ok(vec!["n0".into(), "r5".into()]),
        )?;
        reply(
            "bad letter",
            c.set_perms(0, &p("perm/a"), &["x0"]),
            err("EINVAL"),
        )?;
        reply(
            "no entries",
            c.set_perms(0, &p("perm/a"), &[]),
            err("EINVAL"),
        )?;
        reply(
            "missing node",
            c.set_perms(0, &p("perm/zz"), &["n0"]),
            err("ENOENT"),
        )?;
        eq(
            "get missing",
            c.get_perms(0, &p("perm/zz")),
            Err("ENOENT".into()),
        )?;
        eq(
            "get special",
            c.get_perms(0, "@introduceDomain"),
            Ok(vec![String::from("n0")]),
        )?;
        eq(
            "get unknown special",
            c.get_perms(0, "@nonsense"),
            Err("ENOENT".into()),
        )?;
        eq(
            "unchanged",
            c.get_perms(0, &p("perm/a")),
            Ok(vec!["b0".into(), "r0".into()]),
        )
    });
    r.run("watch-basic", || {
        let mut c = ctx.fresh(&p("w"))?;
        reply("mkdir", c.mkdir(0, &p("w")), ok())?;
        reply("watch", c.watch(&p("w"), "tok"), ok())?;
        expect_events(&mut c, "initial event", &[(&p("w"), "tok")])?;
        reply("duplicate", c.watch(&p("w"), "tok"), err("EEXIST"))?;
        reply("same path, other token", c.watch(&p("w"), "tok2"), ok())?;
        expect_events(&mut c, "second initial event", &[(&p("w"), "tok2")])?;
        reply("write child", c.write(0, &p("w/c"), b"1"), ok())?;
        expect_events(
            &mut c,
            "child write",
            &[(&p("w/c"), "tok"), (&p("w/c"), "tok2")],
        )?;
        reply("write elsewhere", c.write(0, &p("wx"), b"1"), ok())?;
        expect_events(&mut c, "sibling prefix write", &[])?;
        reply("read", c.read(0, &p("w/c")), val(b"1"))?;
        expect_events(&mut c, "reads fire nothing", &[])?;
        reply("perms", c.set_perms(0, &p("w/c"), &["n0", "r0"]), ok())?;
        expect_events(
            &mut c,
            "set_perms",
            &[(&p("w/c"), "tok"), (&p("w/c"), "tok2")],
        )?;
        reply("unwatch", c.unwatch(&p("w"), "tok"), ok())?;
        reply("unwatch again", c.unwatch(&p("w"), "tok"), err("ENOENT"))?;
        reply("unwatch tok2", c.unwatch(&p("w"), "tok2"), ok())?;
        reply("write after unwatch", c.write(0, &p("w/c"), b"2"), ok())?;
        expect_events(&mut c, "no events", &[])?;
        c.rm(0, &p("wx")).map(|_| ())
    });
    r.run("watch-other-connection", || {
        let mut w = ctx.fresh(&p("wo"))?;
        let mut c = ctx.conn()?;
        reply("watch missing node", w.watch(&p("wo/n"), "t"), ok())?;
        expect_events(&mut w, "initial", &[(&p("wo/n"), "t")])?;
        reply("mkdir", c.mkdir(0, &p("wo/n/deep")), ok())?;
        expect_events(&mut w, "creation", &[(&p("wo/n/deep"), "t")])?;
        reply("rm", c.rm(0, &p("wo/n")), ok())?;
        expect_events(
            &mut w,
            "removal fires once at the root",
            &[(&p("wo/n"), "t")],
        )
    });
    r.run("watch-rm-subtree", || {
        let mut c = ctx.fresh(&p("wr2"))?;
        reply("write", c.write(0, &p("wr2/a/b"), b"x"), ok())?;
        reply("write", c.write(0, &p("wr2/c"), b"y"), ok())?;
        reply("watch root", c.watch(&p("wr2"), "t"), ok())?;
        reply("watch leaf", c.watch(&p("wr2/a/b"), "t2"), ok())?;
        reply("watch sibling", c.watch(&p("wr2/c"), "t3"), ok())?;
        sync_events(&mut c)?;
        reply("rm a", c.rm(0, &p("wr2/a")), ok())?;
        expect_events(&mut c, "rm a", &[(&p("wr2/a"), "t"), (&p("wr2/a/b"), "t2")])
    });
    r.run("watch-relative", || {
        let mut c = ctx.fresh("/local/domain/0/conformance-rel")?;
        reply("watch", c.watch("conformance-rel", "r"), ok())?;
        expect_events(&mut c, "initial", &[("conformance-rel", "r")])?;
        reply(
            "abs write",
            c.write(0, "/local/domain/0/conformance-rel/x", b"v"),
            ok(),
        )?;
        expect_events(&mut c, "relative epath", &[("conformance-rel/x", "r")])?;
        reply("relative read", c.read(0, "conformance-rel/x"), val(b"v"))?;
        reply("cleanup", c.rm(0, "conformance-rel"), ok())?;
        expect_events(&mut c, "rm", &[("conformance-rel", "r")])
    });
    r.run("watch-special", || {
        let mut c = ctx.conn()?;
        reply("introduce", c.watch("@introduceDomain", "i"), ok())?;
        reply("release", c.watch("@releaseDomain", "r"), ok())?;
        expect_events(
            &mut c,
            "initial",
            &[("@introduceDomain", "i"), ("@releaseDomain", "r")],
        )?;
        reply(
            "tx id ignored on WATCH",
            {
                let m = c
                    .request_msg(MsgType::Watch.code(), 77, &wire::strings(&[&p("wtx"), "x"]))
                    .map_err(|e| e.to_string())?;
                xs_conformance::client::reduce(&m, MsgType::Watch.code())
            },
            ok(),
        )
    });
    r.run("transaction-isolation", || {
        let mut c = ctx.fresh(&p("tx"))?;
        let mut o = ctx.conn()?;
        let t = c.tx_start()?;
        eq("first id on a connection", t, 1)?;
        eq("second id", c.tx_start()?, 2)?;
        reply("write in tx", c.write(t, &p("tx/a"), b"in"), ok())?;
        reply("invisible outside", o.read(0, &p("tx/a")), err("ENOENT"))?;
        reply("visible inside", c.read(t, &p("tx/a")), val(b"in"))?;
        reply("commit", c.tx_end(t, true), ok())?;
        reply("visible after", o.read(0, &p("tx/a")), val(b"in"))?;
        reply("end again", c.tx_end(t, true), err("ENOENT"))?;
        reply("abort tx 2", c.tx_end(2, false), ok())
    });
    r.run("transaction-conflict", || {
        let mut c = ctx.fresh(&p("tc"))?;
        let mut o = ctx.conn()?;
        reply("init", c.write(0, &p("tc/v"), b"0"), ok())?;
        let t = c.tx_start()?;
        reply("read in tx", c.read(t, &p("tc/v")), val(b"0"))?;
        reply("write in tx", c.write(t, &p("tc/v"), b"1"), ok())?;
        reply("outside write", o.write(0, &p("tc/v"), b"2"), ok())?;
        reply("commit", c.tx_end(t, true), err("EAGAIN"))?;
        reply("outside value kept", c.read(0, &p("tc/v")), val(b"2"))?;
        let t = c.tx_start()?;
        reply("read in tx", c.read(t, &p("tc/v")), val(b"2"))?;
        reply("write in tx", c.write(t, &p("tc/v"), b"3"), ok())?;
        reply("commit unconflicted", c.tx_end(t, true), ok())?;
        reply("value", c.read(0, &p("tc/v")), val(b"3"))
    });
    r.run("transaction-abort-and-errors", || {
        let mut c = ctx.fresh(&p("ta"))?;
        let t = c.tx_start()?;
        reply("write", c.write(t, &p("ta/x"), b"1"), ok())?;
        reply("abort", c.tx_end(t, false), ok())?;
        reply("not written", c.read(0, &p("ta/x")), err("ENOENT"))?;
        reply("unknown tx read", c.read(999, &p("ta")), err("ENOENT"))?;
        reply("unknown tx end", c.tx_end(999, true), err("ENOENT"))?;
        let t = c.tx_start()?;
        reply(
            "nested start",
            c.call(MsgType::TransactionStart, t, b"\0"),
            err("EBUSY"),
        )?;
        reply("abort", c.tx_end(t, false), ok())
    });
    r.run("transaction-watch-on-commit", || {
        let mut c = ctx.fresh(&p("tw"))?;
        let mut w = ctx.conn()?;
        reply("mkdir", c.mkdir(0, &p("tw")), ok())?;
        reply("watch", w.watch(&p("tw"), "t"), ok())?;
        sync_events(&mut w)?;
        let t = c.tx_start()?;
        reply("write in tx", c.write(t, &p("tw/a"), b"1"), ok())?;
        expect_events(&mut w, "nothing before commit", &[])?;
        reply("commit", c.tx_end(t, true), ok())?;
        expect_events(&mut w, "event at commit", &[(&p("tw/a"), "t")])?;
        let t = c.tx_start()?;
        reply("write in tx", c.write(t, &p("tw/b"), b"1"), ok())?;
        reply("abort", c.tx_end(t, false), ok())?;
        expect_events(&mut w, "nothing on abort", &[])
    });
    r.run("domain-queries", || {
        let mut c = ctx.conn()?;
        reply(
            "GET_DOMAIN_PATH",
            c.call(MsgType::GetDomainPath, 0, b"5\0"),
            val(b"/local/domain/5\0"),
        )?;
        reply(
            "IS_DOMAIN_INTRODUCED 0",
            c.call(MsgType::IsDomainIntroduced, 0, b"0\0"),
            val(b"T\0"),
        )?;
        reply(
            "IS_DOMAIN_INTRODUCED 77",
            c.call(MsgType::IsDomainIntroduced, 0, b"77\0"),
            val(b"F\0"),
        )?;
        reply(
            "RELEASE 0",
            c.call(MsgType::Release, 0, b"0\0"),
            err("EINVAL"),
        )?;
        reply(
            "RELEASE unknown",
            c.call(MsgType::Release, 0, b"77\0"),
            err("ENOENT"),
        )?;
        reply(
            "RESUME unknown",
            c.call(MsgType::Resume, 0, b"77\0"),
            err("ENOENT"),
        )?;
        reply(
            "INTRODUCE port 0",
            c.call(MsgType::Introduce, 0, &wire::strings(&["77", "1", "0"])),
            err("EINVAL"),
        )
    });
    r.run("unknown-types", || {
        let mut c = ctx.conn()?;
        for ty in [20u32, 99, 0xFFFF] {
            let m = c.request_msg(ty, 0, b"\0").map_err(|e| e.to_string())?;
            eq("type", m.ty, MsgType::Error.code())?;
            eq("payload", wire::show(&m.payload), "ENOSYS\\0".to_string())?;
        }
        Ok(())
    });
    r.run("control", || {
        let mut c = ctx.conn()?;
        reply("check", c.control(&["check"]), ok())?;
        reply("print", c.control(&["print", "conformance"]), ok())?;
        reply("unknown", c.control(&["no-such-command"]), err("EINVAL"))?;
        reply("empty", c.call(MsgType::Control, 0, b"\0"), err("EINVAL"))
    });
    r.run("reset-watches", || {
        let mut c = ctx.fresh(&p("rw"))?;
        reply("watch", c.watch(&p("rw"), "t"), ok())?;
        sync_events(&mut c)?;
        let t = c.tx_start()?;
        reply("reset", c.call(MsgType::ResetWatches, 0, b"\0"), ok())?;
        reply("write", c.write(0, &p("rw/x"), b""), ok())?;
        expect_events(&mut c, "no events after reset", &[])?;
        reply("transaction dropped", c.tx_end(t, true), err("ENOENT"))?;
        reply("watch again", c.watch(&p("rw"), "t"), ok())?;
        expect_events(&mut c, "initial", &[(&p("rw"), "t")])
    });
    r.run("header-echo", || {
        let mut c = ctx.conn()?;
        c.send_raw(&wire::encode(MsgType::Read.code(), 0xdead_beef, 0, b"/\0"))
            .map_err(|e| e.to_string())?;
        let m = c.recv_msg().map_err(|e| e.to_string())?;
        eq(
            "reply header",
            (m.ty, m.req_id, m.tx_id),
            (2, 0xdead_beef, 0),
        )?;
        c.send_raw(&wire::encode(MsgType::Read.code(), 5, 4242, b"/\0"))
            .map_err(|e| e.to_string())?;
        let m = c.recv_msg().map_err(|e| e.to_string())?;
        eq("error echoes ids", (m.ty, m.req_id, m.tx_id), (16, 5, 4242))?;
        eq(
            "error payload",
            wire::show(&m.payload),
            "ENOENT\\0".to_string(),
        )
    });
    r.run("pipelined-requests", || {
        let mut c = ctx.fresh(&p("pipe"))?;
        let mut bytes = Vec::new();
        for i in 0..64u32 {
            let path = format!("{}/k{i}", p("pipe"));
            let mut pl = wire::strings(&[&path]);
            pl.extend_from_slice(i.to_string().as_bytes());
            bytes.extend(wire::encode(MsgType::Write.code(), 1000 + i, 0, &pl));
        }
        c.send_raw(&bytes).map_err(|e| e.to_string())?;
        for i in 0..64u32 {
            let m = c.recv_msg().map_err(|e| e.to_string())?;
            eq(
                "in order",
                (m.ty, m.req_id, m.payload),
                (11, 1000 + i, b"OK\0".to_vec()),
            )?;
        }
        reply("last", c.read(0, &p("pipe/k63")), val(b"63"))
    });
    if let Ok(mut c) = ctx.conn() {
        let _ = c.rm(0, B);
    }
}
