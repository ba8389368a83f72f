//! `xs-null --socket PATH [--spin-us N]`: a server with xenstore framing that answers every
//! request `OK` (same type, req_id and tx_id) without looking at it. `scripts/bench-hosted`
//! runs the write+read workloads against it as the floor: what the kernel's unix-socket work
//! and wake-ups cost per request on this machine when the server itself does nothing.
//! One thread and one epoll set (mio, as ferrostored); with `--spin-us N` it polls without
//! sleeping for up to N µs before each sleep (ferrostored busy-polls for up to 1 ms).
#![forbid(unsafe_code)]

use mio::net::{UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Token};
use std::io::{ErrorKind, Read, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use xs_conformance::wire::{self, HEADER_LEN};

const LISTENER: Token = Token(usize::MAX);

struct Conn {
    stream: UnixStream,
    input: Vec<u8>,
}

/// Replies `OK` to every complete message at the front of `input` (consumed), into `out`.
fn answer(input: &mut Vec<u8>, out: &mut Vec<u8>) {
    let mut used = 0;
    while let Some(h) = input
        .get(used..used + HEADER_LEN)
        .and_then(|h| <&[u8; HEADER_LEN]>::try_from(h).ok())
    {
        let (ty, req_id, tx_id, len) = wire::parse_header(h);
        let end = used + HEADER_LEN + len as usize;
        if input.len() < end {
            break;
        }
        out.extend_from_slice(&wire::encode(ty, req_id, tx_id, b"OK\0"));
        used = end;
    }
    input.drain(..used);
}

fn serve(path: &str, spin: Duration) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    let mut listener = UnixListener::bind(path)?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut events = Events::with_capacity(256);
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::new();
    loop {
        let start = Instant::now();
        loop {
            poll.poll(&mut events, Some(Duration::ZERO))?;
            if !events.is_empty() || start.elapsed() >= spin {
                break;
            }
        }
        if events.is_empty() {
            poll.poll(&mut events, None)?;
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                while let Ok((mut stream, _)) = listener.accept() {
                    let t = Token(conns.len());
                    poll.registry()
                        .register(&mut stream, t, Interest::READABLE)?;
                    conns.push(Some(Conn {
                        stream,
                        input: Vec::new(),
                    }));
                }
                continue;
            }
            let Some(slot) = conns.get_mut(ev.token().0) else {
                continue;
            };
            let Some(c) = slot else {
                continue;
            };
            let mut closed = false;
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => {
                        c.input.extend_from_slice(&buf[..n]);
                        if n < buf.len() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
            out.clear();
            answer(&mut c.input, &mut out);
            if c.stream.write_all(&out).is_err() || closed {
                *slot = None;
            }
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut socket = None;
    let mut spin_us = Some(0);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match (a.as_str(), it.next()) {
            ("--socket", Some(p)) => socket = Some(p.clone()),
            ("--spin-us", Some(v)) => spin_us = v.parse::<u64>().ok(),
            _ => spin_us = None,
        }
    }
    let (Some(path), Some(spin_us)) = (socket, spin_us) else {
        eprintln!("usage: xs-null --socket PATH [--spin-us N]");
        return ExitCode::from(2);
    };
    match serve(&path, Duration::from_micros(spin_us)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xs-null: {path}: {e}");
            ExitCode::FAILURE
        }
    }
}
