//! The single-threaded event loop: the main socket (dom0 clients), simulated-guest sockets,
//! and signals, all on one mio poll (edge-triggered, with adaptive busy-polling before it
//! sleeps). Each client's replies are written as soon as its input is processed.

use crate::args::Options;
use mio::net::{UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Token};
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use xenstore_engine::{ConnError, ConnId, Engine, Error, Platform};

const LISTENER: Token = Token(0);
const SIGNALS: Token = Token(1);
const FIRST_DYNAMIC: usize = 2;
const READ_CHUNK: usize = 64 * 1024;

/// What INTRODUCE/RELEASE asked the event loop to do.
enum Action {
    Listen(u32),
    Unlisten(u32),
}

/// The engine's view of this host: domain sockets instead of rings.
struct Host {
    start: Instant,
    sockets: bool,
    actions: Vec<Action>,
}

impl Platform for Host {
    fn introduce(&mut self, _conn: ConnId, domid: u32, _mfn: u64, _port: u32) -> Result<(), Error> {
        if self.sockets {
            self.actions.push(Action::Listen(domid));
        }
        Ok(())
    }

    fn reintroduce(&mut self, _conn: ConnId, _domid: u32, _port: u32) -> Result<(), Error> {
        Ok(())
    }

    fn release(&mut self, _conn: ConnId, domid: u32) {
        self.actions.push(Action::Unlisten(domid));
    }

    /// Only dom0 exists besides introduced domains (which the engine already knows), as
    /// with C xenstored on a host without guests.
    fn domain_exists(&mut self, domid: u32) -> bool {
        domid == 0
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn log(&mut self, line: &str) {
        eprintln!("ferrostored: {line}");
    }
}

struct Client {
    stream: UnixStream,
    conn: ConnId,
    out: Vec<u8>,
    out_pos: usize,
    /// Input left unread because the engine applied back-pressure (the token is then in
    /// `Server::paused`).
    paused: bool,
    /// Registered for writability: output is waiting for the client to make room. (Only
    /// then: a peer reading its replies would otherwise wake the loop for every reply.)
    want_write: bool,
}

enum Slot {
    Client(Client),
    DomainListener(u32, UnixListener),
}

struct Server {
    poll: Poll,
    engine: Engine<Host>,
    slots: HashMap<Token, Slot>,
    /// The client token of each engine connection (by `ConnId`), to flush ready ones.
    tokens: Vec<Option<Token>>,
    /// Clients whose input is paused by back-pressure (retried every loop iteration).
    paused: Vec<Token>,
    /// Simulated guest: domid → (listener token, client token).
    domains: HashMap<u32, (Token, Option<Token>)>,
    next_token: usize,
    domain_dir: Option<PathBuf>,
    buf: Vec<u8>,
    /// Accepting failed (e.g. EMFILE): retried on every loop pass until it works.
    accept_stalled: bool,
}

fn bind(path: &Path) -> Result<UnixListener, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let _ = std::fs::remove_file(path);
    UnixListener::bind(path).map_err(|e| format!("cannot listen on {}: {e}", path.display()))
}

pub fn run(opts: &Options) -> Result<(), String> {
    let poll = Poll::new().map_err(|e| format!("epoll: {e}"))?;
    let (sig_rx, sig_tx) =
        std::os::unix::net::UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
    for s in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::low_level::pipe::register(s, sig_tx.try_clone().map_err(|e| e.to_string())?)
            .map_err(|e| format!("cannot handle signal {s}: {e}"))?;
    }
    sig_rx.set_nonblocking(true).map_err(|e| e.to_string())?;
    let mut sig_rx = UnixStream::from_std(sig_rx);
    poll.registry()
        .register(&mut sig_rx, SIGNALS, Interest::READABLE)
        .map_err(|e| e.to_string())?;

    if let Some(dir) = &opts.domain_dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut listener = bind(&opts.socket)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .map_err(|e| e.to_string())?;
    if let Some(pf) = &opts.pid_file {
        std::fs::write(pf, format!("{}\n", std::process::id()))
            .map_err(|e| format!("cannot write pid file {}: {e}", pf.display()))?;
    }
    let host = Host {
        start: Instant::now(),
        sockets: opts.domain_dir.is_some(),
        actions: Vec::new(),
    };
    let mut srv = Server {
        poll,
        engine: Engine::new(host, opts.config.clone()),
        slots: HashMap::new(),
        tokens: Vec::new(),
        paused: Vec::new(),
        domains: HashMap::new(),
        next_token: FIRST_DYNAMIC,
        domain_dir: opts.domain_dir.clone(),
        buf: vec![0; READ_CHUNK],
        accept_stalled: false,
    };
    let mut events = Events::with_capacity(256);
    let mut last_tick = Instant::now();
    let mut spin = Spin::default();
    loop {
        let timeout = if srv.paused.is_empty() && !srv.accept_stalled {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(20)
        };
        spin.wait(&mut srv.poll, &mut events, timeout)?;
        for ev in events.iter() {
            match ev.token() {
                SIGNALS => {
                    let _ = std::fs::remove_file(&opts.socket);
                    srv.remove_domain_sockets();
                    return Ok(());
                }
                LISTENER => srv.accept_main(&listener),
                t => srv.on_event(
                    t,
                    ev.is_readable(),
                    ev.is_writable(),
                    ev.is_read_closed() || ev.is_error(),
                ),
            }
        }
        if srv.accept_stalled {
            srv.accept_main(&listener);
        }
        if !srv.paused.is_empty() {
            for t in std::mem::take(&mut srv.paused) {
                if let Some(Slot::Client(c)) = srv.slots.get_mut(&t) {
                    c.paused = false;
                }
                srv.read_client(t, true);
            }
            srv.after_work();
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            srv.engine.tick();
            last_tick = Instant::now();
        }
    }
}

/// Longest busy-poll before sleeping in epoll_wait. When other processes compete for the
/// CPU, every sleep can cost a scheduler slice before the loop runs again, so the budget
/// covers a millisecond; an idle server stops spinning after at most twice this.
const SPIN_MAX: Duration = Duration::from_millis(1);
/// Shortest busy-poll worth doing (a shorter budget is dropped to none).
const SPIN_MIN: Duration = Duration::from_micros(10);

/// Adaptive busy-polling before sleeping, like the kernel's halt-polling. Sleeping in
/// epoll_wait and being woken for the next request costs a context switch and, on an idle
/// core, an inter-processor interrupt each time; a client in a request/reply exchange sends
/// its next request within tens of microseconds, so the loop first polls without sleeping
/// for up to `budget`. The budget doubles (to [`SPIN_MAX`]) when the next event came soon
/// after it ran out, and halves (to none) when the loop then slept long, so an idle or
/// sparsely used server does not spin.
#[derive(Default)]
struct Spin {
    budget: Duration,
}

impl Spin {
    /// Fills `events`: busy-polls for up to the budget, then sleeps for up to `timeout`.
    fn wait(
        &mut self,
        poll: &mut Poll,
        events: &mut Events,
        timeout: Duration,
    ) -> Result<(), String> {
        let poll_once =
            |poll: &mut Poll, events: &mut Events, t: Duration| match poll.poll(events, Some(t)) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {
                    events.clear();
                    Ok(())
                }
                Err(e) => Err(format!("poll: {e}")),
            };
        let start = Instant::now();
        if !self.budget.is_zero() {
            loop {
                poll_once(poll, events, Duration::ZERO)?;
                if !events.is_empty() {
                    return Ok(());
                }
                if start.elapsed() >= self.budget {
                    break;
                }
            }
        }
        poll_once(poll, events, timeout)?;
        if !events.is_empty() && start.elapsed() <= SPIN_MAX {
            self.budget = (self.budget * 2).clamp(SPIN_MIN, SPIN_MAX);
        } else {
            self.budget /= 2;
            if self.budget < SPIN_MIN {
                self.budget = Duration::ZERO;
            }
        }
        Ok(())
    }
}

impl Server {
    fn token(&mut self) -> Token {
        let t = Token(self.next_token);
        self.next_token += 1;
        t
    }

    /// Accepts every pending client. When accepting fails (e.g. out of file descriptors:
    /// EMFILE), the edge-triggered listener would not wake the loop again for the clients
    /// already waiting, so the loop retries every 20 ms until accepting works again; the
    /// failure and the recovery are logged once each.
    fn accept_main(&mut self, listener: &UnixListener) {
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    self.accepting_again();
                    let conn = self.engine.new_connection(0);
                    self.add_client(stream, conn);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.accepting_again();
                    break;
                }
                Err(e) => {
                    if !self.accept_stalled {
                        eprintln!(
                            "ferrostored: cannot accept connections: {e}; retrying every 20 ms (raise the open-file limit, ulimit -n, if this persists)"
                        );
                        self.accept_stalled = true;
                    }
                    break;
                }
            }
        }
        self.after_work();
    }

    fn accepting_again(&mut self) {
        if self.accept_stalled {
            self.accept_stalled = false;
            eprintln!("ferrostored: accepting connections again");
        }
    }

    fn add_client(&mut self, mut stream: UnixStream, conn: ConnId) -> Option<Token> {
        let t = self.token();
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, t, Interest::READABLE)
        {
            eprintln!("ferrostored: cannot watch a client: {e}");
            return None;
        }
        self.slots.insert(
            t,
            Slot::Client(Client {
                stream,
                conn,
                out: Vec::new(),
                out_pos: 0,
                paused: false,
                want_write: false,
            }),
        );
        if self.tokens.len() <= conn {
            self.tokens.resize(conn + 1, None);
        }
        self.tokens[conn] = Some(t);
        Some(t)
    }

    /// `closed`: the peer hung up (or the socket failed), so input is read to the end.
    fn on_event(&mut self, t: Token, readable: bool, writable: bool, closed: bool) {
        match self.slots.get(&t) {
            Some(Slot::DomainListener(domid, _)) => {
                let domid = *domid;
                self.accept_domain(t, domid);
            }
            Some(Slot::Client(_)) => {
                if writable {
                    self.flush(t);
                }
                if readable {
                    self.read_client(t, closed);
                }
            }
            None => {}
        }
        self.after_work();
    }

    fn accept_domain(&mut self, t: Token, domid: u32) {
        let Some(Slot::DomainListener(_, l)) = self.slots.get(&t) else {
            return;
        };
        let mut accepted = Vec::new();
        loop {
            match l.accept() {
                Ok((s, _)) => accepted.push(s),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => {
                    eprintln!("ferrostored: accept on domain {domid} socket failed: {e}");
                    break;
                }
            }
        }
        let Some(conn) = self.engine.domain_connection(domid) else {
            return;
        };
        for s in accepted {
            if let Some(old) = self.domains.get_mut(&domid).and_then(|d| d.1.take()) {
                self.drop_client(old);
            }
            self.engine.reset_connection(conn);
            let ct = self.add_client(s, conn);
            if let Some(d) = self.domains.get_mut(&domid) {
                d.1 = ct;
            }
        }
    }

    fn drop_client(&mut self, t: Token) {
        if let Some(Slot::Client(mut c)) = self.slots.remove(&t) {
            let _ = self.poll.registry().deregister(&mut c.stream);
            self.forget_token(c.conn, t);
            if self.engine.connection_domid(c.conn) == Some(0) {
                self.engine.close_connection(c.conn);
            }
        }
        for d in self.domains.values_mut() {
            if d.1 == Some(t) {
                d.1 = None;
            }
        }
    }

    fn forget_token(&mut self, conn: ConnId, t: Token) {
        if let Some(slot) = self.tokens.get_mut(conn) {
            if *slot == Some(t) {
                *slot = None;
            }
        }
    }

    /// Reads and processes the client's input. The socket is edge-triggered: a read that
    /// does not fill the buffer has emptied the socket (new data raises a new event), so it
    /// ends the loop without a read that would only say EAGAIN, unless `drain` (the peer
    /// hung up, or input was paused: read on to the end or to EAGAIN).
    fn read_client(&mut self, t: Token, drain: bool) {
        loop {
            let Some(Slot::Client(c)) = self.slots.get_mut(&t) else {
                return;
            };
            let conn = c.conn;
            if !self.engine.wants_input(conn) {
                if !c.paused {
                    c.paused = true;
                    self.paused.push(t);
                }
                return;
            }
            match c.stream.read(&mut self.buf) {
                Ok(0) => {
                    self.drop_client(t);
                    return;
                }
                Ok(n) => {
                    if let Err(ConnError::Proto | ConnError::Closed) =
                        self.engine.feed(conn, &self.buf[..n])
                    {
                        self.flush(t);
                        self.drop_client(t);
                        return;
                    }
                    if n < self.buf.len() && !drain {
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.drop_client(t);
                    return;
                }
            }
        }
    }

    /// Writes queued output of the client at `t`. Output is taken from the engine only when
    /// the previous batch is fully written, so the engine's back-pressure (outstanding
    /// replies, event expiry) sees what the client has not read yet.
    fn flush(&mut self, t: Token) {
        let Some(Slot::Client(c)) = self.slots.get_mut(&t) else {
            return;
        };
        let blocked = loop {
            if c.out_pos >= c.out.len() {
                c.out.clear();
                c.out_pos = 0;
                self.engine.output_all(c.conn, &mut c.out);
                if c.out.is_empty() {
                    break false;
                }
            }
            match c.stream.write(&c.out[c.out_pos..]) {
                Ok(0) => break true,
                Ok(n) => c.out_pos += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break true,
                Err(_) => break false,
            }
        };
        if blocked != c.want_write {
            let interest = if blocked {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if self
                .poll
                .registry()
                .reregister(&mut c.stream, t, interest)
                .is_ok()
            {
                c.want_write = blocked;
            }
        }
    }

    /// Carries out INTRODUCE/RELEASE actions, then flushes every connection with new output
    /// (so a RELEASE reply is sent only once the domain's socket is gone).
    fn after_work(&mut self) {
        let actions = std::mem::take(&mut self.engine.platform().actions);
        for a in actions {
            match a {
                Action::Listen(domid) => self.listen_domain(domid),
                Action::Unlisten(domid) => self.unlisten_domain(domid),
            }
        }
        for conn in self.engine.take_ready() {
            if let Some(Some(t)) = self.tokens.get(conn) {
                self.flush(*t);
            }
        }
    }

    fn domain_path(&self, domid: u32) -> Option<PathBuf> {
        self.domain_dir.as_ref().map(|d| d.join(domid.to_string()))
    }

    fn listen_domain(&mut self, domid: u32) {
        let Some(path) = self.domain_path(domid) else {
            return;
        };
        let mut l = match bind(&path) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("ferrostored: domain {domid}: {e}");
                return;
            }
        };
        let t = self.token();
        if self
            .poll
            .registry()
            .register(&mut l, t, Interest::READABLE)
            .is_ok()
        {
            self.slots.insert(t, Slot::DomainListener(domid, l));
            self.domains.insert(domid, (t, None));
        }
    }

    fn unlisten_domain(&mut self, domid: u32) {
        let Some((lt, ct)) = self.domains.remove(&domid) else {
            return;
        };
        if let Some(ct) = ct {
            if let Some(Slot::Client(mut c)) = self.slots.remove(&ct) {
                let _ = self.poll.registry().deregister(&mut c.stream);
                self.forget_token(c.conn, ct);
            }
        }
        if let Some(Slot::DomainListener(_, mut l)) = self.slots.remove(&lt) {
            let _ = self.poll.registry().deregister(&mut l);
        }
        if let Some(p) = self.domain_path(domid) {
            let _ = std::fs::remove_file(p);
        }
    }

    fn remove_domain_sockets(&mut self) {
        let ids: Vec<u32> = self.domains.keys().copied().collect();
        for d in ids {
            if let Some(p) = self.domain_path(d) {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}
