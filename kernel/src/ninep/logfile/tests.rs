//! The log session against a fake 9P server holding files in memory.

use super::*;
use crate::ninep::wire::{op, reply};
use alloc::collections::BTreeMap;
use alloc::vec;

/// A 9P server with one flat directory, answering as xen-9pfsd does.
#[derive(Default)]
struct Server {
    files: BTreeMap<String, Vec<u8>>,
    /// fid → (file name, or "" for the root).
    fids: BTreeMap<u32, String>,
    /// Most bytes one write stores (short writes below the request's count).
    write_limit: Option<usize>,
    requests: usize,
}

fn u32_at(m: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(m[at..at + 4].try_into().unwrap())
}

fn u64_at(m: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(m[at..at + 8].try_into().unwrap())
}

fn str_at(m: &[u8], at: usize) -> (String, usize) {
    let n = usize::from(u16::from_le_bytes([m[at], m[at + 1]]));
    (
        String::from_utf8(m[at + 2..at + 2 + n].to_vec()).unwrap(),
        at + 2 + n,
    )
}

fn error(tag: u16, errno: u32) -> Vec<u8> {
    let mut b = vec![4, 0];
    b.extend_from_slice(b"fail");
    b.extend_from_slice(&errno.to_le_bytes());
    reply(op::RERROR, tag, &b)
}

impl Server {
    fn answer(&mut self, m: &[u8]) -> Vec<u8> {
        self.requests += 1;
        assert_eq!(u32_at(m, 0) as usize, m.len());
        let ty = m[4];
        let tag = u16::from_le_bytes([m[5], m[6]]);
        let qid = [0u8; 13];
        match ty {
            op::TVERSION => {
                let mut b = 4096u32.to_le_bytes().to_vec();
                b.extend_from_slice(&[8, 0]);
                b.extend_from_slice(b"9P2000.u");
                reply(101, tag, &b)
            }
            op::TATTACH => {
                self.fids.insert(u32_at(m, 7), String::new());
                reply(105, tag, &qid)
            }
            op::TWALK => {
                let newfid = u32_at(m, 11);
                let n = u16::from_le_bytes([m[15], m[16]]);
                if n == 0 {
                    self.fids.insert(newfid, String::new());
                    return reply(111, tag, &[0, 0]);
                }
                let (name, _) = str_at(m, 17);
                if !self.files.contains_key(&name) {
                    return error(tag, 2);
                }
                self.fids.insert(newfid, name);
                let mut b = vec![1, 0];
                b.extend_from_slice(&qid);
                reply(111, tag, &b)
            }
            op::TOPEN => {
                let name = self.fids[&u32_at(m, 7)].clone();
                if m[11] & mode::TRUNC != 0 {
                    self.files.get_mut(&name).unwrap().clear();
                }
                let mut b = qid.to_vec();
                b.extend_from_slice(&0u32.to_le_bytes());
                reply(113, tag, &b)
            }
            op::TCREATE => {
                let fid = u32_at(m, 7);
                let (name, _) = str_at(m, 11);
                if self.files.contains_key(&name) {
                    return error(tag, 17);
                }
                self.files.insert(name.clone(), Vec::new());
                self.fids.insert(fid, name);
                let mut b = qid.to_vec();
                b.extend_from_slice(&0u32.to_le_bytes());
                reply(115, tag, &b)
            }
            op::TREAD => {
                let file = &self.files[&self.fids[&u32_at(m, 7)]];
                let off = (u64_at(m, 11) as usize).min(file.len());
                let end = (off + u32_at(m, 19) as usize).min(file.len());
                let mut b = ((end - off) as u32).to_le_bytes().to_vec();
                b.extend_from_slice(&file[off..end]);
                reply(117, tag, &b)
            }
            op::TWRITE => {
                let name = self.fids[&u32_at(m, 7)].clone();
                let off = u64_at(m, 11) as usize;
                let mut data = &m[23..];
                assert_eq!(u32_at(m, 19) as usize, data.len());
                if let Some(l) = self.write_limit {
                    data = &data[..data.len().min(l)];
                }
                let file = self.files.get_mut(&name).unwrap();
                assert!(off <= file.len(), "a write leaves a hole");
                file.truncate(off);
                file.extend_from_slice(data);
                reply(119, tag, &(data.len() as u32).to_le_bytes())
            }
            op::TCLUNK => {
                self.fids.remove(&u32_at(m, 7)).unwrap();
                reply(121, tag, &[])
            }
            op::TSTAT => {
                let len = self.files[&self.fids[&u32_at(m, 7)]].len() as u64;
                let mut st = vec![0u8; 2 + 2 + 4 + 13 + 4 + 4 + 4];
                st.extend_from_slice(&len.to_le_bytes());
                st.extend_from_slice(&[0; 5 * 2 + 12]);
                let mut b = (st.len() as u16).to_le_bytes().to_vec();
                b.extend_from_slice(&st);
                reply(125, tag, &b)
            }
            other => panic!("unexpected request type {other}"),
        }
    }
}

/// Runs the session until it has nothing to send; `log` is what is still to be written.
fn run(lf: &mut LogFile, server: &mut Server, log: &mut Vec<u8>) {
    let mut out = Vec::new();
    for _ in 0..100_000 {
        out.clear();
        let sent = lf.request(
            |max| {
                let n = max.min(log.len());
                log.drain(..n).collect()
            },
            &mut out,
        );
        if !sent {
            return;
        }
        let r = server.answer(&out);
        lf.reply(&r).unwrap();
    }
    panic!("the session does not settle");
}

fn lines(from: usize, n: usize) -> Vec<u8> {
    (from..from + n)
        .flat_map(|i| format!("[INFO] line {i}\n").into_bytes())
        .collect()
}

#[test]
fn creates_the_file_then_appends() {
    let mut s = Server::default();
    let mut lf = LogFile::new("ferrostore.log", 1 << 20);
    let mut log = lines(0, 500);
    let all = log.clone();
    run(&mut lf, &mut s, &mut log);
    assert!(lf.is_open());
    assert_eq!(s.files["ferrostore.log"], all);
    assert_eq!(lf.offset(), all.len() as u64);

    // A new session (the stub restarted) appends to what is there.
    let mut lf = LogFile::new("ferrostore.log", 1 << 20);
    let mut more = lines(500, 10);
    run(&mut lf, &mut s, &mut more);
    assert_eq!(s.files["ferrostore.log"], [all, lines(500, 10)].concat());
}

#[test]
fn short_writes_are_finished() {
    let mut s = Server {
        write_limit: Some(100),
        ..Server::default()
    };
    let mut lf = LogFile::new("l", 1 << 20);
    let mut log = lines(0, 300);
    let all = log.clone();
    run(&mut lf, &mut s, &mut log);
    assert_eq!(s.files["l"], all);
}

#[test]
fn a_full_file_is_copied_to_dot_1_and_truncated() {
    let mut s = Server::default();
    let cap = 10_000;
    let mut lf = LogFile::new("x.log", cap);
    let mut written = Vec::new();
    for round in 0..30 {
        let mut log = lines(round * 100, 100);
        written.extend_from_slice(&log);
        run(&mut lf, &mut s, &mut log);
        let cur = &s.files["x.log"];
        assert!(cur.len() as u64 <= cap, "the file stays under its cap");
        if let Some(old) = s.files.get("x.log.1") {
            assert!(old.len() as u64 <= cap);
            // The two files hold the newest log, in order, cut only between lines.
            let both = [old.as_slice(), cur].concat();
            assert!(written.ends_with(&both));
            assert!(old.ends_with(b"\n") && (cur.is_empty() || cur.ends_with(b"\n")));
        }
    }
    assert!(lf.rotations() >= 5, "{} rotations", lf.rotations());
    assert_eq!(s.fids.len(), 2, "only the root and the log file stay open");
}

#[test]
fn an_existing_file_over_the_cap_is_rotated_first() {
    let mut s = Server::default();
    s.files.insert("x.log".into(), vec![b'a'; 5000]);
    let mut lf = LogFile::new("x.log", 4000);
    let mut log = b"new line\n".to_vec();
    run(&mut lf, &mut s, &mut log);
    assert_eq!(s.files["x.log.1"].len(), 4000, "copied up to the cap");
    assert_eq!(s.files["x.log"], b"new line\n");
}

#[test]
fn bad_replies_stop_the_session() {
    let mut lf = LogFile::new("l", 1 << 20);
    let mut out = Vec::new();
    assert!(lf.request(|_| Vec::new(), &mut out));
    // Rversion with another protocol.
    let mut b = 4096u32.to_le_bytes().to_vec();
    b.extend_from_slice(&[6, 0]);
    b.extend_from_slice(b"9P2000");
    let e = lf.reply(&reply(101, NOTAG, &b)).unwrap_err();
    assert!(e.contains("9P2000"), "{e}");
    assert!(lf.failed());
    out.clear();
    assert!(!lf.request(|_| Vec::new(), &mut out));

    // A write answered with more than was sent, then an error on a write.
    for bad in [
        reply(119, 0, &1000u32.to_le_bytes()),
        error(0, 28),
        reply(121, 0, &[]),
    ] {
        let mut s = Server::default();
        let mut lf = LogFile::new("l", 1 << 20);
        let mut log = Vec::new();
        run(&mut lf, &mut s, &mut log);
        let mut out = Vec::new();
        assert!(lf.request(|_| b"x\n".to_vec(), &mut out));
        let tag = u16::from_le_bytes([out[5], out[6]]);
        let mut bad = bad;
        bad[5..7].copy_from_slice(&tag.to_le_bytes());
        assert!(lf.reply(&bad).is_err());
        assert!(lf.failed());
    }

    // A reply nobody asked for.
    let mut lf = LogFile::new("l", 1 << 20);
    assert!(lf.reply(&reply(121, 0, &[])).is_err());
}

#[test]
fn finish_writes_what_is_queued_then_clunks_every_fid() {
    let mut s = Server::default();
    let mut lf = LogFile::new("ferrostore.log", 1 << 20);
    let mut log = lines(0, 50);
    let all = log.clone();
    lf.finish();
    assert!(
        lf.finished(),
        "finishing before anything was sent ends at once"
    );
    let mut lf = LogFile::new("ferrostore.log", 1 << 20);
    run(&mut lf, &mut s, &mut log);
    assert!(lf.is_open() && !lf.finished());
    let mut more = lines(50, 3);
    lf.finish();
    run(&mut lf, &mut s, &mut more);
    assert!(lf.finished());
    assert!(s.fids.is_empty(), "fids left open: {:?}", s.fids);
    assert_eq!(s.files["ferrostore.log"], [all, lines(50, 3)].concat());
}
