//! The stub's log file on its 9pfs share: a 9P session (version, attach, then the file opened
//! for appending, or created) that writes queued log bytes at the file's end, one request in
//! flight at a time. Before a write would take the file past its cap, the file is copied to
//! `NAME.1` (replacing the older copy) and truncated, as logrotate's `copytruncate` does:
//! xen-9pfsd offers neither rename nor remove. The two files never hold more than twice the
//! cap, so the log cannot fill dom0's disk. [`LogFile::finish`] ends the session cleanly
//! (every fid clunked, so the backend's open-file count drops before the device closes).
//! Pure logic, host-tested against a fake server.

use super::wire::{mode, Reply, Request, WireError, NOTAG, READ_OVERHEAD, VERSION, WRITE_OVERHEAD};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// The message size we ask for (the backend may lower it, to no less than [`MIN_MSIZE`]).
pub const MSIZE: u32 = 4096;
/// The smallest message size we work with.
pub const MIN_MSIZE: u32 = 2048;
/// Permission bits of a file we create.
const FILE_PERM: u32 = 0o644;

const ROOT: u32 = 0;
const LOG: u32 = 1;
const OLD: u32 = 2;
const SRC: u32 = 3;

/// Where the session is; each step names the request it sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Version,
    Attach,
    /// Walk to the log file; `rotated`: it was just copied away, so truncate it.
    WalkLog {
        rotated: bool,
    },
    StatLog,
    OpenLog {
        truncate: bool,
    },
    CloneLog,
    CreateLog,
    /// Open: waiting for log bytes.
    Ready,
    Write,
    WalkOld,
    OpenOld,
    CloneOld,
    CreateOld,
    WalkSrc,
    OpenSrc,
    ReadSrc,
    WriteOld,
    ClunkSrc,
    ClunkOld,
    ClunkLog,
    /// `finish`: clunking the log file, then the root.
    CloseLog,
    CloseRoot,
    Finished,
    Failed,
}

/// A 9P session writing one log file.
pub struct LogFile {
    name: String,
    old: String,
    cap: u64,
    msize: u32,
    iounit: u32,
    /// Where the next write goes in the log file.
    offset: u64,
    step: Step,
    /// The request in flight: its type and tag.
    sent: Option<(u8, u16)>,
    tag: u16,
    /// Log bytes being written (what is left after a short write).
    writing: Vec<u8>,
    /// Rotation: bytes read from the log file, and where they go in `NAME.1`.
    copy: Vec<u8>,
    copy_off: u64,
    rotations: u64,
    /// `finish` was called: end the session once the current write or rotation is done.
    finishing: bool,
}

impl LogFile {
    /// A session for the file `name` in the share's root, copied away past `cap` bytes.
    pub fn new(name: &str, cap: u64) -> LogFile {
        LogFile {
            name: name.into(),
            old: format!("{name}.1"),
            cap,
            msize: MSIZE,
            iounit: 0,
            offset: 0,
            step: Step::Version,
            sent: None,
            tag: 0,
            writing: Vec::new(),
            copy: Vec::new(),
            copy_off: 0,
            rotations: 0,
            finishing: false,
        }
    }

    /// Ends the session: once no write or rotation is under way, the log file and the root
    /// are clunked; [`LogFile::finished`] after that (at once if nothing was attached).
    pub fn finish(&mut self) {
        self.finishing = true;
        if matches!(self.step, Step::Version | Step::Attach) && self.sent.is_none() {
            self.step = Step::Finished;
        }
    }

    /// True once [`LogFile::finish`] has ended the session (or it has failed).
    pub fn finished(&self) -> bool {
        matches!(self.step, Step::Finished | Step::Failed)
    }

    /// True once the file is open (log bytes are being written).
    pub fn is_open(&self) -> bool {
        matches!(self.step, Step::Ready | Step::Write) || self.rotating()
    }

    /// True when the session has failed for good.
    pub fn failed(&self) -> bool {
        self.step == Step::Failed
    }

    /// The negotiated message size: no reply is longer.
    pub fn msize(&self) -> u32 {
        self.msize
    }

    /// How many times the file was copied to `NAME.1` and truncated.
    pub fn rotations(&self) -> u64 {
        self.rotations
    }

    /// The log file's length as far as we know.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn rotating(&self) -> bool {
        matches!(
            self.step,
            Step::WalkOld
                | Step::OpenOld
                | Step::CloneOld
                | Step::CreateOld
                | Step::WalkSrc
                | Step::OpenSrc
                | Step::ReadSrc
                | Step::WriteOld
                | Step::ClunkSrc
                | Step::ClunkOld
                | Step::ClunkLog
        ) || self.step == (Step::WalkLog { rotated: true })
    }

    /// The most data bytes one read or write may carry.
    fn chunk(&self) -> usize {
        let by_msize = (self.msize as usize).saturating_sub(WRITE_OVERHEAD.max(READ_OVERHEAD));
        match self.iounit {
            0 => by_msize,
            n => by_msize.min(n as usize),
        }
    }

    /// The next request, if one is due and none is in flight: appended to `out`. In the
    /// `Ready` step `take(max)` is asked for at most `max` log bytes (whole lines, empty if
    /// there are none).
    pub fn request(&mut self, take: impl FnOnce(usize) -> Vec<u8>, out: &mut Vec<u8>) -> bool {
        if self.sent.is_some() {
            return false;
        }
        if self.step == Step::Ready {
            let bytes = take(self.chunk());
            if bytes.is_empty() {
                if !self.finishing {
                    return false;
                }
                self.step = Step::CloseLog;
            } else {
                self.writing = bytes;
                let end = self.offset.saturating_add(self.writing.len() as u64);
                self.step = if self.offset > 0 && end > self.cap {
                    Step::WalkOld
                } else {
                    Step::Write
                };
            }
        }
        let name = [self.name.as_str()];
        let old = [self.old.as_str()];
        let req = match self.step {
            Step::Version => Request::Version { msize: MSIZE },
            Step::Attach => Request::Attach { fid: ROOT },
            Step::WalkLog { .. } => walk(LOG, &name),
            Step::StatLog => Request::Stat { fid: LOG },
            Step::OpenLog { truncate } => Request::Open {
                fid: LOG,
                mode: if truncate {
                    mode::WRITE | mode::TRUNC
                } else {
                    mode::WRITE
                },
            },
            Step::CloneLog => walk(LOG, &[]),
            Step::CreateLog => create(LOG, name[0]),
            Step::Write => Request::Write {
                fid: LOG,
                offset: self.offset,
                data: &self.writing,
            },
            Step::WalkOld => walk(OLD, &old),
            Step::OpenOld => Request::Open {
                fid: OLD,
                mode: mode::WRITE | mode::TRUNC,
            },
            Step::CloneOld => walk(OLD, &[]),
            Step::CreateOld => create(OLD, old[0]),
            Step::WalkSrc => walk(SRC, &name),
            Step::OpenSrc => Request::Open {
                fid: SRC,
                mode: mode::READ,
            },
            Step::ReadSrc => Request::Read {
                fid: SRC,
                offset: self.copy_off,
                count: (self.chunk() as u64).min(self.cap.saturating_sub(self.copy_off)) as u32,
            },
            Step::WriteOld => Request::Write {
                fid: OLD,
                offset: self.copy_off,
                data: &self.copy,
            },
            Step::ClunkSrc => Request::Clunk { fid: SRC },
            Step::ClunkOld => Request::Clunk { fid: OLD },
            Step::ClunkLog | Step::CloseLog => Request::Clunk { fid: LOG },
            Step::CloseRoot => Request::Clunk { fid: ROOT },
            Step::Ready | Step::Finished | Step::Failed => return false,
        };
        let tag = if self.step == Step::Version {
            NOTAG
        } else {
            self.tag = self.tag.wrapping_add(1) % NOTAG;
            self.tag
        };
        self.sent = Some((req.op(), tag));
        req.encode(tag, out);
        true
    }

    /// Handles the reply to the request in flight; an error stops the session for good.
    pub fn reply(&mut self, msg: &[u8]) -> Result<(), String> {
        let Some((op, tag)) = self.sent.take() else {
            return self.fail(String::from("a reply with no request in flight"));
        };
        match super::wire::decode(msg, op, tag) {
            Ok(r) => self.advance(r),
            Err(e) => self.fail(bad(e, op, msg)),
        }
    }

    fn fail<T>(&mut self, why: String) -> Result<T, String> {
        self.step = Step::Failed;
        Err(why)
    }

    fn advance(&mut self, r: Reply) -> Result<(), String> {
        let step = self.step;
        self.step = match (step, r) {
            (Step::Version, Reply::Version { msize, version }) => {
                if version != VERSION {
                    return self.fail(format!("the backend speaks {version:?}, not {VERSION}"));
                }
                if !(MIN_MSIZE..=MSIZE).contains(&msize) {
                    return self.fail(format!("the backend's message size {msize} is unusable"));
                }
                self.msize = msize;
                Step::Attach
            }
            (Step::Attach, Reply::Attach) => Step::WalkLog { rotated: false },
            (Step::WalkLog { rotated }, Reply::Walk { walked: 1 }) => {
                if rotated {
                    Step::OpenLog { truncate: true }
                } else {
                    Step::StatLog
                }
            }
            (Step::WalkLog { .. }, Reply::Walk { .. } | Reply::Error { .. }) => Step::CloneLog,
            (Step::StatLog, Reply::Stat { length }) => {
                self.offset = length;
                Step::OpenLog { truncate: false }
            }
            (Step::OpenLog { truncate }, Reply::Opened { iounit }) => {
                if truncate {
                    self.offset = 0;
                }
                self.iounit = iounit;
                self.after_open()
            }
            (Step::CloneLog, Reply::Walk { walked: 0 }) => Step::CreateLog,
            (Step::CreateLog, Reply::Opened { iounit }) => {
                self.offset = 0;
                self.iounit = iounit;
                self.after_open()
            }
            (Step::Write, Reply::Write { count }) => {
                let n = count as usize;
                if n == 0 || n > self.writing.len() {
                    return self.fail(format!(
                        "a write of {} bytes answered with {count}",
                        self.writing.len()
                    ));
                }
                self.offset += u64::from(count);
                self.writing.drain(..n);
                if self.writing.is_empty() {
                    Step::Ready
                } else {
                    Step::Write
                }
            }
            (Step::WalkOld, Reply::Walk { walked: 1 }) => Step::OpenOld,
            (Step::WalkOld, Reply::Walk { .. } | Reply::Error { .. }) => Step::CloneOld,
            (Step::CloneOld, Reply::Walk { walked: 0 }) => Step::CreateOld,
            (Step::OpenOld | Step::CreateOld, Reply::Opened { .. }) => Step::WalkSrc,
            (Step::WalkSrc, Reply::Walk { walked: 1 }) => Step::OpenSrc,
            (Step::OpenSrc, Reply::Opened { .. }) => {
                self.copy_off = 0;
                Step::ReadSrc
            }
            (Step::ReadSrc, Reply::Read { data }) => {
                if data.len() > self.chunk() {
                    return self.fail(format!("a read answered with {} bytes", data.len()));
                }
                if data.is_empty() {
                    Step::ClunkSrc
                } else {
                    self.copy = data;
                    Step::WriteOld
                }
            }
            (Step::WriteOld, Reply::Write { count }) => {
                let n = count as usize;
                if n == 0 || n > self.copy.len() {
                    return self.fail(format!(
                        "a write of {} bytes answered with {count}",
                        self.copy.len()
                    ));
                }
                self.copy_off += u64::from(count);
                self.copy.drain(..n);
                if !self.copy.is_empty() {
                    Step::WriteOld
                } else if self.copy_off >= self.cap {
                    Step::ClunkSrc
                } else {
                    Step::ReadSrc
                }
            }
            (Step::ClunkSrc, Reply::Clunk) => Step::ClunkOld,
            (Step::ClunkOld, Reply::Clunk) => Step::ClunkLog,
            (Step::ClunkLog, Reply::Clunk) => {
                self.rotations += 1;
                Step::WalkLog { rotated: true }
            }
            (Step::CloseLog, Reply::Clunk) => Step::CloseRoot,
            (Step::CloseRoot, Reply::Clunk) => Step::Finished,
            (_, Reply::Error { ename, errno }) => {
                return self.fail(format!("{step:?}: {ename} (errno {errno})"));
            }
            (_, r) => return self.fail(format!("{step:?}: unexpected reply {r:?}")),
        };
        Ok(())
    }

    /// After the log file is (re)opened: finish a pending write, else wait for bytes.
    fn after_open(&self) -> Step {
        if self.writing.is_empty() {
            Step::Ready
        } else {
            Step::Write
        }
    }
}

fn walk<'a>(newfid: u32, names: &'a [&'a str]) -> Request<'a> {
    Request::Walk {
        fid: ROOT,
        newfid,
        names,
    }
}

fn create(fid: u32, name: &str) -> Request<'_> {
    Request::Create {
        fid,
        name,
        perm: FILE_PERM,
        mode: mode::WRITE,
    }
}

/// Why a reply to request type `op` was refused, with its type byte and size.
fn bad(e: WireError, op: u8, msg: &[u8]) -> String {
    let ty = msg.get(4).copied().unwrap_or(0);
    format!(
        "bad reply (type {ty} of {} bytes, to type {op}): {e}",
        msg.len()
    )
}

#[cfg(test)]
mod tests;
