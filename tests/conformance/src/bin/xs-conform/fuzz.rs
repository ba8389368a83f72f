//! Random input: raw byte streams, then well-framed messages with random types, ids and
//! payloads built from path fragments, NULs and random bytes. Every framed message must get
//! exactly one reply (an error is fine); afterwards the server must still answer and
//! `xenstore-control check` must print OK. Seeded (`--seed`), `--iterations` connections.

use crate::badinput::alive;
use crate::Ctx;
use std::process::Command;
use xs_conformance::harness::{eq, ok, reply, Runner};
use xs_conformance::rng::Rng;
use xs_conformance::wire::{self, MsgType};
use xs_conformance::Client;

/// Message types fuzzed: everything except CONTROL, INTRODUCE and RELEASE, whose side effects
/// (server settings, simulated guests) are covered by their own suites.
const TYPES: [u32; 27] = [
    1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27,
    99, 0xFFFF,
];

const FRAGMENTS: [&[u8]; 16] = [
    b"/fuzz",
    b"/fuzz/a",
    b"/fuzz/b/c",
    b"a",
    b"/",
    b"//",
    b"@releaseDomain",
    b"@introduceDomain",
    b"T",
    b"F",
    b"0",
    b"1",
    b"4294967295",
    b"n0",
    b"b0",
    b"/local/domain/0",
];

fn payload(rng: &mut Rng) -> Vec<u8> {
    let mut p = Vec::new();
    for _ in 0..rng.below(5) {
        match rng.below(4) {
            0 => {
                let n = rng.below(40);
                p.extend(rng.bytes(n));
            }
            1 => p.push(0),
            _ => {
                let f: &&[u8] = rng.pick(&FRAGMENTS);
                p.extend_from_slice(f);
                if rng.chance(3, 4) {
                    p.push(0);
                }
            }
        }
    }
    if rng.chance(1, 20) {
        let n = rng.below(wire::PAYLOAD_MAX + 1 - p.len().min(wire::PAYLOAD_MAX));
        p.extend(rng.bytes(n));
    }
    p.truncate(wire::PAYLOAD_MAX);
    p
}

/// Sends 50 random framed messages on each of `conns` connections made by `connect`; each
/// must be answered by a reply of its type or an ERROR. Checks liveness every 20 connections.
fn framed(
    ctx: &Ctx,
    conns: usize,
    seed: u64,
    types: &[u32],
    connect: &mut dyn FnMut() -> Result<Client, String>,
) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    let mut sent = 0;
    for i in 0..conns {
        let mut c = connect()?;
        for _ in 0..50 {
            let ty = *rng.pick(types);
            let tx = if rng.chance(1, 4) {
                rng.below(4) as u32
            } else {
                0
            };
            let pl = payload(&mut rng);
            let m = c.request_msg(ty, tx, &pl).map_err(|e| {
                format!(
                    "connection {i}: no reply to {} tx={tx} {}: {e}",
                    wire::type_name(ty),
                    wire::show(&pl)
                )
            })?;
            if m.ty != ty && m.ty != MsgType::Error.code() {
                return Err(format!(
                    "reply of type {} to {}",
                    wire::type_name(m.ty),
                    wire::type_name(ty)
                ));
            }
            sent += 1;
        }
        if i % 20 == 0 {
            alive(ctx).map_err(|e| format!("after connection {i}: {e}"))?;
        }
    }
    eq("messages answered", sent, conns * 50)
}

pub fn run(ctx: &Ctx, r: &mut Runner) {
    let conns = if ctx.iterations == 0 {
        200
    } else {
        ctx.iterations
    };
    r.run("random-byte-streams", || {
        let mut rng = Rng::new(ctx.seed);
        for i in 0..conns / 4 {
            let mut c = ctx.conn()?;
            let n = 16 + rng.below(65536);
            let _ = c.send_raw(&rng.bytes(n));
            drop(c);
            if i % 10 == 0 {
                alive(ctx).map_err(|e| format!("after stream {i}: {e}"))?;
            }
        }
        alive(ctx)
    });
    r.run("random-framed-messages", || {
        framed(ctx, conns, ctx.seed ^ 0x5eed, &TYPES, &mut || ctx.conn())?;
        if let Ok(mut c) = ctx.conn() {
            let _ = c.rm(0, "/fuzz");
        }
        alive(ctx)
    });
    if let Some(dir) = &ctx.domain_dir {
        r.run("random-framed-messages-as-guest", || {
            // Every type, privileged ones included (EACCES); writes are rate-limited for a
            // guest, so fewer connections.
            let mut d0 = ctx.conn()?;
            let _ = d0.call(MsgType::Release, 0, b"190\0");
            reply(
                "introduce",
                d0.call(MsgType::Introduce, 0, b"190\x004096\x001\0"),
                ok(),
            )?;
            let path = dir.join("190");
            let mut all: Vec<u32> = (0..=27).collect();
            all.push(0xFFFF);
            framed(ctx, conns / 10, ctx.seed ^ 0x6e57, &all, &mut || {
                Client::connect(&path).map_err(|e| format!("connect {}: {e}", path.display()))
            })?;
            reply("release", d0.call(MsgType::Release, 0, b"190\0"), ok())?;
            alive(ctx)
        });
    }
    r.run("xenstore-control-check-after-fuzz", || {
        let out = Command::new("/usr/lib/xen-4.17/bin/xenstore-control")
            .arg("check")
            .env("XENSTORED_PATH", &ctx.socket)
            .output()
            .map_err(|e| format!("cannot run xenstore-control: {e}"))?;
        eq(
            "xenstore-control check",
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            ),
            (Some(0), "OK\n".to_string()),
        )
    });
}
