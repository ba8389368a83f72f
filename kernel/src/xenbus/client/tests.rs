use super::*;
use alloc::vec;
use xenstore_engine::wire::encode_msg;

/// A scripted server's half of the page.
struct Server {
    page: Vec<u8>,
}

impl Server {
    fn new() -> Server {
        Server {
            page: vec![0; 4096],
        }
    }

    /// Starts every index at `at` (to exercise wrap-around).
    fn at(at: u32) -> Server {
        let mut s = Server::new();
        for off in [REQ_CONS, REQ_PROD, RSP_CONS, RSP_PROD] {
            s.page.store_u32(off, at);
        }
        s
    }

    /// Consumes every request byte in the ring.
    fn take(&mut self) -> Vec<u8> {
        let cons = self.page.load_u32(REQ_CONS);
        let prod = self.page.load_u32(REQ_PROD);
        let out: Vec<u8> = (0..prod.wrapping_sub(cons))
            .map(|i| self.page[REQ + (cons.wrapping_add(i) & (RING_SIZE - 1)) as usize])
            .collect();
        self.page.store_u32(REQ_CONS, prod);
        out
    }

    /// Puts as much of `bytes` as fits into the response ring; returns how much.
    fn put(&mut self, bytes: &[u8]) -> usize {
        let cons = self.page.load_u32(RSP_CONS);
        let prod = self.page.load_u32(RSP_PROD);
        let n = (RING_SIZE - prod.wrapping_sub(cons)).min(bytes.len() as u32);
        for (i, &b) in bytes[..n as usize].iter().enumerate() {
            self.page[RSP + (prod.wrapping_add(i as u32) & (RING_SIZE - 1)) as usize] = b;
        }
        self.page.store_u32(RSP_PROD, prod.wrapping_add(n));
        n as usize
    }
}

fn msg(ty: u32, req_id: u32, tx_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    encode_msg(&mut m, ty, req_id, tx_id, payload);
    m
}

#[test]
fn request_is_framed_and_reply_matched() {
    let mut s = Server::new();
    let mut c = Client::new();
    let id = c.submit(ty::READ, 0, &[b"name", b"\0"]).unwrap();
    assert_eq!(c.take_reply(id), None, "nothing arrived yet");
    let p = c.pump(&mut s.page[..]);
    assert!(p.notify && !p.progress);
    assert_eq!(s.take(), msg(ty::READ, id, 0, b"name\0"));
    s.put(&msg(ty::READ, id, 0, b"guest"));
    let p = c.pump(&mut s.page[..]);
    assert!(p.notify && p.progress);
    assert_eq!(c.take_reply(id), Some(Ok(b"guest".to_vec())));
    assert_eq!(c.take_reply(id), Some(Err(XsError::BadReply)), "forgotten");
}

#[test]
fn replies_out_of_order_go_to_their_request() {
    let mut s = Server::new();
    let mut c = Client::new();
    let a = c.submit(ty::READ, 0, &[b"a\0"]).unwrap();
    let b = c.submit(ty::READ, 0, &[b"b\0"]).unwrap();
    assert_ne!(a, b);
    c.pump(&mut s.page[..]);
    s.take();
    let mut both = msg(ty::READ, b, 0, b"B");
    both.extend(msg(ty::READ, a, 0, b"A"));
    s.put(&both);
    c.pump(&mut s.page[..]);
    assert_eq!(c.take_reply(a), Some(Ok(b"A".to_vec())));
    assert_eq!(c.take_reply(b), Some(Ok(b"B".to_vec())));
}

#[test]
fn watch_events_between_and_inside_replies_are_queued_by_token() {
    let mut s = Server::new();
    let mut c = Client::new();
    let id = c.submit(ty::WRITE, 0, &[b"data/x\0", b"1"]).unwrap();
    c.pump(&mut s.page[..]);
    s.take();
    let mut bytes = msg(ty::WATCH_EVENT, 0, 0, b"data/x\0tok\0");
    bytes.extend(msg(ty::WRITE, id, 0, b"OK\0"));
    bytes.extend(msg(ty::WATCH_EVENT, 0, 0, b"data/y\0other\0"));
    bytes.extend(msg(ty::WATCH_EVENT, 0, 0, b"data/x/z\0tok\0"));
    // Delivered a few bytes at a time: the reply is split inside events' neighbourhood.
    for piece in bytes.chunks(7) {
        assert_eq!(s.put(piece), piece.len());
        c.pump(&mut s.page[..]);
    }
    assert_eq!(c.take_reply(id), Some(Ok(b"OK\0".to_vec())));
    let ev = |p: &str, t: &str| WatchEvent {
        path: p.into(),
        token: t.into(),
    };
    assert_eq!(c.take_event("tok"), Some(ev("data/x", "tok")));
    assert_eq!(c.take_event("tok"), Some(ev("data/x/z", "tok")));
    assert_eq!(c.take_event("tok"), None);
    assert_eq!(c.stats().events, 3);
    assert_eq!(
        c.stats().split_messages,
        4,
        "every message needed several pumps"
    );
    c.forget_events("other");
    assert_eq!(c.take_event("other"), None);
}

#[test]
fn error_replies_become_named_errors() {
    let mut s = Server::new();
    let mut c = Client::new();
    let names: [(&[u8], XsError); 4] = [
        (b"ENOENT\0", XsError::Server(Error::Noent)),
        (b"EACCES\0", XsError::Server(Error::Acces)),
        (b"EAGAIN\0", XsError::Server(Error::Again)),
        (b"EWHAT\0", XsError::UnknownError("EWHAT".into())),
    ];
    for (name, want) in names {
        let id = c.submit(ty::READ, 0, &[b"p\0"]).unwrap();
        c.pump(&mut s.page[..]);
        s.take();
        s.put(&msg(ty::ERROR, id, 0, name));
        c.pump(&mut s.page[..]);
        assert_eq!(c.take_reply(id), Some(Err(want)));
    }
    for e in ERRORS {
        let mut payload = e.name().as_bytes().to_vec();
        payload.push(0);
        assert_eq!(error_from_payload(&payload), XsError::Server(e));
    }
}

#[test]
fn large_request_and_reply_cross_the_ring_in_pieces_with_wrapping_indices() {
    let mut s = Server::at(u32::MAX - 500);
    let mut c = Client::new();
    let value = (0..3000).map(|i| b'a' + (i % 26) as u8).collect::<Vec<_>>();
    let id = c.submit(ty::WRITE, 0, &[b"data/big\0", &value]).unwrap();
    let mut got = Vec::new();
    loop {
        c.pump(&mut s.page[..]);
        let chunk = s.take();
        if chunk.is_empty() {
            break;
        }
        assert!(chunk.len() <= RING_SIZE as usize);
        got.extend(chunk);
    }
    let mut payload = b"data/big\0".to_vec();
    payload.extend(&value);
    assert_eq!(got, msg(ty::WRITE, id, 0, &payload));
    assert!(c.stats().ring_full >= 2, "waited for ring space");

    let rid = c.submit(ty::READ, 0, &[b"data/big\0"]).unwrap();
    c.pump(&mut s.page[..]);
    s.take();
    let reply = msg(ty::READ, rid, 0, &value);
    let mut sent = 0;
    while sent < reply.len() {
        sent += s.put(&reply[sent..]);
        c.pump(&mut s.page[..]);
    }
    assert_eq!(c.take_reply(id), None, "the write's reply never came");
    assert_eq!(c.take_reply(rid), Some(Ok(value)));
    assert_eq!(c.stats().split_messages, 1);
}

#[test]
fn oversized_payloads_are_refused_both_ways() {
    let mut s = Server::new();
    let mut c = Client::new();
    let big = vec![b'x'; 4097];
    assert_eq!(c.submit(ty::WRITE, 0, &[&big]), Err(XsError::TooLong));
    let id = c.submit(ty::READ, 0, &[b"p\0"]).unwrap();
    c.pump(&mut s.page[..]);
    let mut h = Vec::new();
    Header {
        ty: ty::READ,
        req_id: id,
        tx_id: 0,
        len: 4097,
    }
    .encode(&mut h);
    s.put(&h);
    assert!(c.pump(&mut s.page[..]).progress);
    assert_eq!(c.broken(), Some("server sent a message over 4096 bytes"));
    assert_eq!(
        c.take_reply(id),
        Some(Err(XsError::Broken(
            "server sent a message over 4096 bytes"
        )))
    );
    assert!(matches!(
        c.submit(ty::READ, 0, &[b"p\0"]),
        Err(XsError::Broken(_))
    ));
}

#[test]
fn corrupt_indices_break_the_connection() {
    let mut s = Server::new();
    let mut c = Client::new();
    s.page.store_u32(RSP_PROD, 5000);
    c.pump(&mut s.page[..]);
    assert_eq!(c.broken(), Some("response ring indices corrupt"));
    let mut s = Server::new();
    let mut c = Client::new();
    s.page.store_u32(REQ_CONS, 3000);
    c.submit(ty::READ, 0, &[b"p\0"]).unwrap();
    c.pump(&mut s.page[..]);
    assert_eq!(c.broken(), Some("request ring indices corrupt"));
    let mut s = Server::new();
    let mut c = Client::new();
    let id = c.submit(ty::READ, 0, &[b"p\0"]).unwrap();
    s.page.store_u32(RING_ERROR, 2);
    assert!(c.pump(&mut s.page[..]).progress);
    assert_eq!(s.take(), b"", "nothing sent after the server's error");
    assert_eq!(
        c.take_reply(id),
        Some(Err(XsError::Broken(
            "the server set the ring's error field"
        )))
    );
}

#[test]
fn stray_replies_and_event_overflow_are_counted() {
    let mut s = Server::new();
    let mut c = Client::new();
    s.put(&msg(ty::READ, 99, 0, b"x"));
    c.pump(&mut s.page[..]);
    assert_eq!(c.stats().stray_replies, 1);
    for i in 0..MAX_QUEUED_EVENTS + 2 {
        let p = alloc::format!("p{i}\0t\0");
        s.put(&msg(ty::WATCH_EVENT, 0, 0, p.as_bytes()));
        c.pump(&mut s.page[..]);
    }
    assert_eq!(c.stats().events_dropped, 2);
    assert_eq!(c.take_event("t").map(|e| e.path), Some("p2".into()));
}

#[test]
fn request_ids_skip_ids_still_in_flight() {
    let mut c = Client::new();
    let first = c.submit(ty::READ, 0, &[b"a\0"]).unwrap();
    c.next_req_id = first;
    let second = c.submit(ty::READ, 0, &[b"b\0"]).unwrap();
    assert_eq!(second, first.wrapping_add(1));
}

/// The client against the real engine (the stub's xenstored logic) over a byte-array page.
mod against_engine {
    use super::*;
    use crate::test_host::TestHost;
    use xenstore_engine::{ring, Config, ConnId, Engine};

    const GUEST: u32 = 5;

    struct Setup {
        engine: Engine<TestHost>,
        conn: ConnId,
        page: Vec<u8>,
        client: Client,
    }

    /// dom0 creates /local/domain/5 owned by the guest, then introduces it.
    fn setup() -> Setup {
        let mut engine = Engine::new(TestHost::default(), Config::default());
        let dom0 = engine.new_connection(0);
        let mut req = Vec::new();
        encode_msg(&mut req, ty::MKDIR, 1, 0, b"/local/domain/5\0");
        encode_msg(&mut req, ty::SET_PERMS, 2, 0, b"/local/domain/5\0b5\0");
        engine.feed(dom0, &req).unwrap();
        let mut out = Vec::new();
        engine.output_all(dom0, &mut out);
        let mut want = msg(ty::MKDIR, 1, 0, b"OK\0");
        want.extend(msg(ty::SET_PERMS, 2, 0, b"OK\0"));
        assert_eq!(out, want);
        engine.introduce(GUEST, 0, 1).unwrap();
        let mut page = vec![0; 4096];
        ring::reset(&mut page[..], 0);
        let conn = engine.platform().introduced.unwrap();
        Setup {
            engine,
            conn,
            page,
            client: Client::new(),
        }
    }

    impl Setup {
        fn call(&mut self, ty: u32, tx: u32, parts: &[&[u8]]) -> Result<Vec<u8>, XsError> {
            let id = self.client.submit(ty, tx, parts)?;
            for _ in 0..100 {
                self.client.pump(&mut self.page[..]);
                ring::service(&mut self.engine, self.conn, &mut self.page[..]);
                if let Some(r) = self.client.take_reply(id) {
                    return r;
                }
            }
            panic!("no reply to request {id}");
        }
    }

    #[test]
    fn reads_writes_errors_and_big_values() {
        let mut s = setup();
        assert_eq!(
            s.call(ty::WRITE, 0, &[b"data/x\0", b"1"]),
            Ok(b"OK\0".to_vec())
        );
        assert_eq!(s.call(ty::READ, 0, &[b"data/x\0"]), Ok(b"1".to_vec()));
        assert_eq!(
            s.call(ty::READ, 0, &[b"data/nope\0"]),
            Err(XsError::Server(Error::Noent))
        );
        assert_eq!(
            s.call(ty::WRITE, 0, &[b"/tool/x\0", b"1"]),
            Err(XsError::Server(Error::Acces))
        );
        let big = vec![b'v'; 1800];
        assert_eq!(
            s.call(ty::WRITE, 0, &[b"data/big\0", &big]),
            Ok(b"OK\0".to_vec())
        );
        assert_eq!(s.call(ty::READ, 0, &[b"data/big\0"]), Ok(big));
        assert!(s.client.stats().ring_full >= 1);
        assert!(s.client.stats().split_messages >= 1);
    }

    #[test]
    fn conflicting_write_makes_the_commit_fail_with_eagain() {
        let mut s = setup();
        s.call(ty::WRITE, 0, &[b"data/c\0", b"0"]).unwrap();
        let tx = s.call(ty::TRANSACTION_START, 0, &[b"\0"]).unwrap();
        let tx = wire::parse_u32(tx.strip_suffix(&[0]).unwrap()).unwrap();
        assert_eq!(s.call(ty::READ, tx, &[b"data/c\0"]), Ok(b"0".to_vec()));
        s.call(ty::WRITE, 0, &[b"data/c\0", b"100"]).unwrap();
        s.call(ty::WRITE, tx, &[b"data/c\0", b"1"]).unwrap();
        assert_eq!(
            s.call(ty::TRANSACTION_END, tx, &[b"T\0"]),
            Err(XsError::Server(Error::Again))
        );
        assert_eq!(s.call(ty::READ, 0, &[b"data/c\0"]), Ok(b"100".to_vec()));
    }

    #[test]
    fn watch_events_arrive_between_replies() {
        let mut s = setup();
        s.call(ty::WATCH, 0, &[b"data\0", b"t\0"]).unwrap();
        s.call(ty::WRITE, 0, &[b"data/a\0", b"1"]).unwrap();
        s.call(ty::WRITE, 0, &[b"data/b\0", b"1"]).unwrap();
        let paths: Vec<String> = core::iter::from_fn(|| s.client.take_event("t"))
            .map(|e| e.path)
            .collect();
        assert_eq!(paths, ["data", "data/a", "data/b"]);
        assert_eq!(
            s.call(ty::UNWATCH, 0, &[b"data\0", b"nope\0"]),
            Err(XsError::Server(Error::Noent))
        );
    }
}
