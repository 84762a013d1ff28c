//! The service's sockets and threads: the registration socket (bound, or
//! handed over by systemd socket activation), the TCP listener apps reach,
//! one thread per connection up to a cap, a sweeper for pods whose runtime
//! died, and a clean exit on SIGTERM/SIGINT that removes the socket.

use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::os::fd::FromRawFd;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};
use tracing::{debug, info, warn};

use super::handlers::{self, State};
use super::http::{self, ReadError, Response};
use super::registry::Registry;
use super::signing::Key;
use super::{register, MetadataError};

/// How the service runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub port: u16,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    /// Connections served at once (HTTP and registration together).
    pub max_connections: usize,
    /// How long a client may take to send its request.
    pub read_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            port: super::DEFAULT_PORT,
            socket: PathBuf::from(super::SOCKET),
            state_dir: PathBuf::from(super::STATE_DIR),
            max_connections: 256,
            read_timeout: Duration::from_secs(5),
        }
    }
}

/// Counts live connections; a slot is given back when dropped.
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

    let slots = Arc::new(Slots(
        Arc::new(AtomicUsize::new(0)),
        opts.max_connections.max(1),
    ));
    let reg_state = state.clone();
    let reg_slots = slots.clone();
    let timeout = opts.read_timeout;
    let port = opts.port;
    thread::spawn(move || {
        for conn in unix.incoming() {
            match conn {
                Ok(s) => {
                    let Some(slot) = reg_slots.take() else {
                        warn!("registration refused: too many connections");
                        continue;
                    };
                    let st = reg_state.clone();
                    let _ = s.set_read_timeout(Some(timeout));
                    let _ = s.set_write_timeout(Some(timeout));
                    spawn_conn(move || {
                        let _slot = slot;
                        register::serve(&st.registry, s, port);
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
    for conn in tcp.incoming() {
        match conn {
            Ok(s) => match slots.take() {
                Some(slot) => {
                    let st = state.clone();
                    spawn_conn(move || {
                        let _slot = slot;
                        serve_http(&st, s, timeout);
                    });
                }
                None => {
                    let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
                    let _ = Response::error(503, "too many connections; retry").write_to(&mut &s);
                }
            },
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

fn serve_http(state: &State, s: TcpStream, timeout: Duration) {
    let (Ok(peer), Ok(local)) = (s.peer_addr(), s.local_addr()) else {
        return;
    };
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    let mut reader = http::Deadline {
        inner: &s,
        deadline: std::time::Instant::now() + 2 * timeout,
    };
    let resp = match http::read_request(&mut reader) {
        Ok(req) => {
            let r = handlers::handle(state, &req, peer.ip(), local.ip());
            debug!(
                peer = %peer.ip(),
                method = %req.method,
                path = %redact(&req.path),
                status = r.status,
                "request"
            );
            r
        }
        Err(ReadError::Reply(status, msg)) => {
            let _ = Response::error(status, msg).write_to(&mut &s);
            linger(&s);
            return;
        }
        Err(ReadError::Gone) => return,
    };
    let _ = resp.write_to(&mut &s);
}

/// After refusing a request whose rest was not read: stop writing and drain
/// a bounded amount of what the client still sends, so closing does not
/// reset the connection before the client has read the answer.
fn linger(s: &TcpStream) {
    use std::io::Read;
    let _ = s.shutdown(std::net::Shutdown::Write);
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 4096];
    let mut left = 4 * http::MAX_BODY;
    while left > 0 {
        match (&mut &*s).read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
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
