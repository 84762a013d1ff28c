//! The service's sockets and threads: the registration socket (bound, or
//! handed over by systemd socket activation) with its own connection slots,
//! the TCP listener apps reach with limits per client address and in total,
//! one thread per connection, a sweeper for pods whose runtime died, and a
//! clean exit on SIGTERM/SIGINT that removes the socket.
//!
//! No client can starve the others or registration: a connection over its
//! client's share or over the total is closed at once (never waited on),
//! and an admitted one must send its whole request within
//! [`Options::request_timeout`] and take its answer within as long again.

use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::os::fd::FromRawFd;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal};
use tracing::{debug, info, warn};

use super::conn::{self, Deadline, Limits, Refused};
use super::handlers::{self, State};
use super::http::{self, ReadError, Request, Response};
use super::register::{self, Reply};
use super::registry::Registry;
use super::signing::Key;
use super::MetadataError;

/// How the service runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub port: u16,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    /// HTTP connections served at once, from all clients together.
    pub max_connections: usize,
    /// HTTP connections one client address (one pod) may hold at once.
    pub max_per_client: usize,
    /// Registration connections served at once (apart from HTTP).
    pub max_registrations: usize,
    /// How long a client has to send its whole request (head and body), and
    /// then to take the answer.
    pub request_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            port: super::DEFAULT_PORT,
            socket: PathBuf::from(super::SOCKET),
            state_dir: PathBuf::from(super::STATE_DIR),
            max_connections: 256,
            max_per_client: 8,
            max_registrations: 64,
            request_timeout: Duration::from_secs(3),
        }
    }
}

/// How long a refused request's connection is kept to read what its client
/// still sends, so that closing does not reset the answer away.
const DRAIN: Duration = Duration::from_millis(500);

/// Connections the kernel queues for the TCP listener before it accepts them.
const TCP_BACKLOG: libc::c_int = 1024;

/// Counts live registration connections; a slot is given back when dropped.
struct Slots(Arc<AtomicUsize>, usize);
struct Slot(Arc<AtomicUsize>);
impl Slots {
    fn take(&self) -> Option<Slot> {
        let prev = self.0.fetch_add(1, Ordering::AcqRel);
        if prev >= self.1 {
            self.0.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Slot(self.0.clone()))
    }
}
impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The registration socket from systemd (`LISTEN_FDS`), if we were given one.
fn activated_socket() -> Option<UnixListener> {
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    let fds: u32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    if pid != std::process::id() || fds < 1 {
        return None;
    }
    // SAFETY: systemd passes the listening socket as fd 3 (SD_LISTEN_FDS_START)
    // and nothing else in this process owns it.
    Some(unsafe { UnixListener::from_raw_fd(3) })
}

/// Binds the registration socket, replacing a stale one.
fn bind_socket(path: &Path) -> Result<UnixListener, MetadataError> {
    if let Some(parent) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(|e| MetadataError::io("cannot create the directory of", path, e))?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(MetadataError::AlreadyRunning(path.to_path_buf()));
        }
        std::fs::remove_file(path)
            .map_err(|e| MetadataError::io("cannot remove the stale socket", path, e))?;
    }
    let l = UnixListener::bind(path).map_err(|e| MetadataError::io("cannot listen on", path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| MetadataError::io("cannot restrict", path, e))?;
    Ok(l)
}

/// Runs the service until SIGTERM or SIGINT.
pub fn run(opts: &Options) -> Result<(), MetadataError> {
    // Block the exit signals before any thread starts; one thread waits for them.
    let mut exit_signals = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        exit_signals.add(s);
    }
    exit_signals
        .thread_block()
        .map_err(|e| MetadataError::io("cannot block signals", "sigprocmask", e.into()))?;

    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&opts.state_dir)
        .map_err(|e| MetadataError::io("cannot create", &opts.state_dir, e))?;
    let key = Key::load_or_create(&opts.state_dir.join("hmac.key"))?;
    let registry = Registry::open(&opts.state_dir.join("pods"))?;
    let reloaded = registry.len();
    let state = Arc::new(State { registry, key });

    let tcp =
        TcpListener::bind(("0.0.0.0", opts.port)).map_err(|source| MetadataError::Listen {
            port: opts.port,
            source,
        })?;
    // std listens with a backlog of 128: a burst of connections (a flood
    // being refused) would overflow it and make every client's SYN wait a
    // second for its retry. Listening again only raises the backlog.
    let backlog =
        nix::sys::socket::Backlog::new(TCP_BACKLOG).unwrap_or(nix::sys::socket::Backlog::MAXCONN);
    if let Err(e) = nix::sys::socket::listen(&tcp, backlog) {
        warn!("cannot raise the backlog of port {}: {e}", opts.port);
    }
    let (unix, activated) = match activated_socket() {
        Some(l) => (l, true),
        None => (bind_socket(&opts.socket)?, false),
    };

    let socket = opts.socket.clone();
    thread::spawn(move || {
        let sig = exit_signals.wait();
        info!("metadata service: {sig:?}, exiting");
        if !activated {
            let _ = std::fs::remove_file(&socket);
        }
        std::process::exit(0);
    });
    let sweeper = state.clone();
    thread::spawn(move || loop {
        thread::sleep(Duration::from_secs(10));
        sweeper.registry.sweep();
    });

    let reg_state = state.clone();
    let reg_slots = Slots(Arc::new(AtomicUsize::new(0)), opts.max_registrations.max(1));
    let timeout = opts.request_timeout;
    let port = opts.port;
    thread::spawn(move || {
        for conn in unix.incoming() {
            match conn {
                Ok(s) => {
                    let Some(slot) = reg_slots.take() else {
                        warn!("registration refused: too many registrations at once");
                        let busy = Reply::error("too many registrations at once; retry");
                        conn::send_now(&s, &busy.to_line());
                        continue;
                    };
                    let st = reg_state.clone();
                    spawn_conn(move || {
                        let _slot = slot;
                        register::serve(&st.registry, s, port, timeout);
                    });
                }
                Err(e) => accept_error(e),
            }
        }
    });

    eprintln!(
        "rkt metadata-service: listening on 0.0.0.0:{} and {}{}; {reloaded} pod(s) reloaded",
        opts.port,
        opts.socket.display(),
        if activated {
            " (socket activation)"
        } else {
            ""
        }
    );
    let limits = Limits::new(opts.max_connections, opts.max_per_client);
    for conn in tcp.incoming() {
        match conn {
            Ok(s) => {
                let Ok(peer) = s.peer_addr() else { continue };
                match limits.admit(peer.ip()) {
                    Ok(permit) => {
                        let st = state.clone();
                        spawn_conn(move || {
                            let _permit = permit;
                            serve_http(&st, s, timeout);
                        });
                    }
                    Err(why) => {
                        debug!(peer = %peer.ip(), ?why, "connection refused");
                        let msg = match why {
                            Refused::Client => "too many connections from your address; retry",
                            Refused::Total => "too many connections; retry",
                        };
                        conn::send_now(&s, &Response::error(503, msg).to_bytes());
                    }
                }
            }
            Err(e) => accept_error(e),
        }
    }
    Ok(())
}

fn spawn_conn(f: impl FnOnce() + Send + 'static) {
    if let Err(e) = thread::Builder::new().stack_size(256 * 1024).spawn(f) {
        warn!("cannot start a connection thread: {e}");
    }
}

/// Accept errors (out of descriptors, aborted connections) are transient:
/// back off a little instead of spinning.
fn accept_error(e: std::io::Error) {
    if e.kind() != ErrorKind::ConnectionAborted && e.kind() != ErrorKind::Interrupted {
        warn!("accept: {e}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// Serves one HTTP connection: one request, read within `timeout`; a
/// request that is refused is refused from its head, without waiting for
/// its body.
fn serve_http(state: &State, s: TcpStream, timeout: Duration) {
    let (Ok(peer), Ok(local)) = (s.peer_addr(), s.local_addr()) else {
        return;
    };
    let mut reader = Deadline::new(&s, Instant::now() + timeout);
    let refuse = |resp: Response, pending: usize| {
        let _ = resp.write_to(&mut Deadline::new(&s, Instant::now() + timeout));
        conn::drain(&s, pending, Instant::now() + DRAIN);
    };
    let (head, got) = match http::read_head(&mut reader) {
        Ok(h) => h,
        Err(ReadError::Reply(status, msg)) => {
            return refuse(Response::error(status, msg), http::MAX_BODY)
        }
        Err(ReadError::TooSlow) => return too_slow(&s, peer.ip()),
        Err(ReadError::Gone) => return,
    };
    let (entry, rest) = match handlers::authorize(state, &head.path, peer.ip(), local.ip()) {
        Ok((entry, rest)) => (entry, rest.to_string()),
        Err(resp) => {
            debug!(
                peer = %peer.ip(),
                method = %head.method,
                path = %redact(&head.path),
                status = resp.status,
                "refused"
            );
            return refuse(resp, head.content_length.saturating_sub(got.len()));
        }
    };
    let body = match http::read_body(&mut reader, &head, got) {
        Ok(b) => b,
        Err(ReadError::Reply(status, msg)) => return refuse(Response::error(status, msg), 0),
        Err(ReadError::TooSlow) => return too_slow(&s, peer.ip()),
        Err(ReadError::Gone) => return,
    };
    let req = Request {
        method: head.method,
        path: head.path,
        body,
    };
    let resp = handlers::route(state, &entry, &req, &rest);
    debug!(
        peer = %peer.ip(),
        method = %req.method,
        path = %redact(&req.path),
        status = resp.status,
        "request"
    );
    let _ = resp.write_to(&mut Deadline::new(&s, Instant::now() + timeout));
}

/// A request that did not arrive whole in time: 408 if the socket takes it
/// at once, and the connection closed.
fn too_slow(s: &TcpStream, peer: std::net::IpAddr) {
    debug!(%peer, "request not received in time; connection closed");
    let resp = Response::error(408, "request not received in time");
    conn::send_now(s, &resp.to_bytes());
}

/// The path with its token shortened, for logs.
fn redact(path: &str) -> String {
    let p = path.trim_start_matches('/');
    match p.split_once('/') {
        Some((t, rest)) => format!("/{}…/{rest}", t.chars().take(8).collect::<String>()),
        None => format!("/{}…", p.chars().take(8).collect::<String>()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_cap_connections() {
        let slots = Slots(Arc::new(AtomicUsize::new(0)), 2);
        let a = slots.take().unwrap();
        let _b = slots.take().unwrap();
        assert!(slots.take().is_none());
        drop(a);
        assert!(slots.take().is_some());
    }

    #[test]
    fn redacts_tokens() {
        assert_eq!(
            redact("/0123456789abcdef/acMetadata/v1/pod/uuid"),
            "/01234567…/acMetadata/v1/pod/uuid"
        );
        assert_eq!(redact("/é"), "/é…");
    }
}
