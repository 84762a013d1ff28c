//! `dhcp daemon`: listens on a unix socket (or a socket systemd passes in
//! with LISTEN_FDS), runs one DHCP client thread per attachment inside the
//! pod's network namespace, renews at T1, rebinds at T2, releases on DEL,
//! and keeps every lease on disk so a restarted daemon resumes (and at
//! once renews) its attachments.

use std::collections::HashMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::FromRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{SigSet, Signal};
use tracing::{info, warn};

use super::client::{self, ClientError, Identity};
use super::lease::{Attachment, InvalidField, Lease, Record, Store};
use super::link::{self, Link, LinkError, RawTransport, UdpTransport};
use super::rpc::{self, LineError, Op, Request, Response};
use crate::cni::{codes, CniError, CniResult};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("another DHCP daemon is already listening on {}; stop it first", .0.display())]
    AlreadyRunning(PathBuf),
    #[error("socket {}: {source}", path.display())]
    Socket {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("pidfile {}: {source}", path.display())]
    Pidfile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("signals: {0}")]
    Signals(nix::Error),
}

/// Command line of `dhcp daemon`.
#[derive(Debug, Clone)]
pub struct Options {
    pub socket_path: PathBuf,
    pub pidfile: Option<PathBuf>,
    pub lease_dir: PathBuf,
}

enum Cmd {
    Release(SyncSender<()>),
    Stop,
}

struct Handle {
    generation: u64,
    netns: String,
    tx: Sender<Cmd>,
    lease: Arc<Mutex<Option<Lease>>>,
}

struct Daemon {
    store: Store,
    attachments: Mutex<HashMap<String, Handle>>,
    generation: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking client thread must not take the daemon down with it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

enum Start {
    Acquire {
        timeout: Duration,
        reply: SyncSender<Result<Lease, CniError>>,
    },
    Resume(Lease),
}

fn cni_err(att: &Attachment, e: impl std::fmt::Display, code: u32) -> CniError {
    CniError::new(
        code,
        format!(
            "DHCP for container {} on network \"{}\" ({}): {e}",
            att.container_id, att.network, att.ifname
        ),
    )
}

fn client_code(e: &ClientError) -> u32 {
    match e {
        ClientError::Timeout { .. } | ClientError::Nak { .. } => codes::TRY_AGAIN,
        _ => codes::IO_FAILURE,
    }
}

/// Opens the link in the current (the pod's) namespace.
fn prepare(att: &Attachment) -> Result<(Link, Identity), LinkError> {
    link::enter_netns(&att.netns)?;
    let link = Link::find(&att.ifname, &att.netns)?;
    let id = Identity {
        ifname: att.ifname.clone(),
        mac: link.mac,
        client_id: att.client_id(),
    };
    Ok((link, id))
}

/// Closing an AF_PACKET socket waits for an RCU grace period (10-20 ms);
/// sockets handed here are closed on a helper thread, off the ADD path.
fn close_later(raw: RawTransport) {
    if let Err(e) = std::thread::Builder::new()
        .name("dhcp-close".into())
        .spawn(move || drop(raw))
    {
        warn!("cannot start a thread to close a socket: {e}");
    }
}

/// INIT on a raw socket; the socket comes back so the caller can close it
/// once the answer is out.
fn acquire(
    link: &Link,
    id: &Identity,
    timeout: Duration,
) -> Result<(Lease, RawTransport), CniError> {
    let start = Instant::now();
    let deadline = start + timeout;
    link.up_and_wait_carrier(timeout)
        .map_err(|e| CniError::new(codes::IO_FAILURE, e.to_string()))?;
    tracing::debug!(
        "{}: link up with carrier after {:.1} ms",
        link.ifname,
        start.elapsed().as_secs_f64() * 1e3
    );
    let raw = RawTransport::open(link, Ipv4Addr::UNSPECIFIED)
        .map_err(|e| CniError::new(codes::IO_FAILURE, e.to_string()))?;
    match client::acquire(&raw, id, deadline) {
        Ok(lease) => Ok((lease, raw)),
        Err(e) => {
            close_later(raw);
            Err(CniError::new(client_code(&e), e.to_string()))
        }
    }
}

impl Daemon {
    fn save(&self, att: &Attachment, lease: &Lease) {
        let rec = Record {
            attachment: att.clone(),
            lease: lease.clone(),
        };
        if let Err(e) = self.store.save(&rec) {
            warn!("{}: cannot save lease: {e}", att.key());
        }
    }

    /// Forgets an attachment, but only the generation that asks.
    fn forget(&self, key: &str, generation: u64) {
        let mut map = lock(&self.attachments);
        if map.get(key).is_some_and(|h| h.generation == generation) {
            map.remove(key);
        }
    }

    /// Starts the client thread of one attachment and registers it.
    fn spawn(self: &Arc<Self>, att: Attachment, start: Start) {
        let (tx, rx) = mpsc::channel();
        let lease = Arc::new(Mutex::new(match &start {
            Start::Resume(l) => Some(l.clone()),
            Start::Acquire { .. } => None,
        }));
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let handle = Handle {
            generation,
            netns: att.netns.clone(),
            tx,
            lease: lease.clone(),
        };
        if let Some(old) = lock(&self.attachments).insert(att.key(), handle) {
            let _ = old.tx.send(Cmd::Stop);
        }
        let me = self.clone();
        let name = format!("dhcp-{}", att.ifname);
        let spawned = std::thread::Builder::new().name(name).spawn(move || {
            me.client_thread(att, start, rx, lease, generation);
        });
        if let Err(e) = spawned {
            warn!("cannot start a client thread: {e}");
        }
    }

    fn client_thread(
        &self,
        att: Attachment,
        start: Start,
        rx: Receiver<Cmd>,
        shared: Arc<Mutex<Option<Lease>>>,
        generation: u64,
    ) {
        let key = att.key();
        let prepared = prepare(&att);
        let (link, id, mut lease, renew_now) = match (start, prepared) {
            (Start::Acquire { reply, .. }, Err(e)) => {
                self.forget(&key, generation);
                let _ = reply.send(Err(cni_err(&att, e, codes::IO_FAILURE)));
                return;
            }
            (Start::Resume(_), Err(e)) => {
                warn!("{key}: cannot resume ({e}); forgetting its lease");
                self.forget(&key, generation);
                if let Err(e) = self.store.remove(&key) {
                    warn!("{key}: {e}");
                }
                return;
            }
            (Start::Acquire { timeout, reply }, Ok((link, id))) => {
                let t = Instant::now();
                match acquire(&link, &id, timeout) {
                    Ok((lease, raw)) => {
                        info!(
                            "{key}: lease {} from {} for {}s in {:.1} ms",
                            lease.address,
                            lease.server,
                            lease.lease_secs,
                            t.elapsed().as_secs_f64() * 1e3
                        );
                        self.save(&att, &lease);
                        *lock(&shared) = Some(lease.clone());
                        let replied = reply.send(Ok(lease.clone()));
                        close_later(raw);
                        if replied.is_err() {
                            // The plugin gave up waiting; do not hold the lease.
                            let _ = release(&link, &id, &lease);
                            self.forget(&key, generation);
                            let _ = self.store.remove(&key);
                            return;
                        }
                        (link, id, lease, false)
                    }
                    Err(e) => {
                        self.forget(&key, generation);
                        let _ = reply.send(Err(cni_err(&att, e.msg, e.code)));
                        return;
                    }
                }
            }
            (Start::Resume(lease), Ok((link, id))) => {
                info!(
                    "{key}: resuming lease {} from {}",
                    lease.address, lease.server
                );
                (link, id, lease, true)
            }
        };
        let mut next = if renew_now {
            SystemTime::now()
        } else {
            lease.renew_at()
        };
        loop {
            let wait = next
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            match rx.recv_timeout(wait) {
                Ok(Cmd::Release(done)) => {
                    match release(&link, &id, &lease) {
                        Ok(()) => info!("{key}: released {}", lease.address),
                        Err(e) => warn!("{key}: release of {} failed: {e}", lease.address),
                    }
                    let _ = done.send(());
                    return;
                }
                Ok(Cmd::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {}
            }
            // The thread itself keeps the namespace alive: once its file is
            // gone the pod is gone, whether DEL came or not.
            if !link::netns_exists(&att.netns) {
                warn!(
                    "{key}: network namespace {} is gone without DEL; releasing {}",
                    att.netns, lease.address
                );
                let _ = release(&link, &id, &lease);
                self.forget(&key, generation);
                let _ = self.store.remove(&key);
                return;
            }
            if let Err(e) = Link::find(&att.ifname, &att.netns) {
                warn!("{key}: {e}; dropping the attachment");
                self.forget(&key, generation);
                let _ = self.store.remove(&key);
                return;
            }
            let now = SystemTime::now();
            if lease.expired() {
                warn!("{key}: lease {} expired; asking anew", lease.address);
                match acquire(&link, &id, Duration::from_secs(10)) {
                    Ok((l, raw)) => {
                        close_later(raw);
                        info!("{key}: new lease {}", l.address);
                        lease = l;
                        self.save(&att, &lease);
                        *lock(&shared) = Some(lease.clone());
                        next = lease.renew_at();
                    }
                    Err(e) => {
                        warn!("{key}: {}", e.msg);
                        next = now + Duration::from_secs(5);
                    }
                }
                continue;
            }
            let rebind = now >= lease.rebind_at();
            let until = if rebind {
                lease.expires_at()
            } else {
                lease.rebind_at()
            };
            let left = until.duration_since(now).unwrap_or(Duration::ZERO);
            let attempt = Duration::from_secs(4).min(left.max(Duration::from_millis(500)));
            let outcome = match UdpTransport::open(&link) {
                Ok(udp) => client::extend(&udp, &id, &lease, rebind, Instant::now() + attempt),
                Err(e) => {
                    warn!("{key}: {e}");
                    Ok(None)
                }
            };
            match outcome {
                Ok(Some(l)) => {
                    if l.address != lease.address {
                        warn!(
                            "{key}: server changed the address from {} to {}; the pod keeps the old one",
                            lease.address, l.address
                        );
                    }
                    info!(
                        "{key}: {} {} for {}s",
                        if rebind { "rebound" } else { "renewed" },
                        l.address,
                        l.lease_secs
                    );
                    lease = l;
                    self.save(&att, &lease);
                    *lock(&shared) = Some(lease.clone());
                    next = lease.renew_at();
                }
                Ok(None) => {
                    let retry = (left / 2).max(Duration::from_secs(2));
                    warn!(
                        "{key}: no answer to {}; retrying in {:.0}s",
                        if rebind { "REBIND" } else { "RENEW" },
                        retry.as_secs_f64()
                    );
                    next = SystemTime::now() + retry;
                }
                Err(e @ ClientError::Nak { .. }) => {
                    warn!("{key}: {e}; the lease is gone, asking anew");
                    lease.lease_secs = 0;
                    next = SystemTime::now();
                }
                Err(e) => {
                    warn!("{key}: {e}; retrying in 2s");
                    next = SystemTime::now() + Duration::from_secs(2);
                }
            }
        }
    }

    fn handle(self: &Arc<Self>, req: Request) -> Result<Option<CniResult>, CniError> {
        // Before any path is built from it: the lease file is named after
        // the attachment.
        let whole = matches!(req.op, Op::Add | Op::Del | Op::Check);
        req.attachment.validate(whole).map_err(|e| {
            let code = match e {
                InvalidField::Network(_) => codes::INVALID_CONFIG,
                _ => codes::INVALID_ENV,
            };
            CniError::new(code, format!("bad request to the DHCP daemon: {e}"))
        })?;
        let att = req.attachment.clone();
        let key = att.key();
        match req.op {
            Op::Add => {
                {
                    let map = lock(&self.attachments);
                    if let Some(h) = map.get(&key) {
                        let current = lock(&h.lease).clone();
                        if let Some(l) = current.filter(|l| h.netns == att.netns && !l.expired()) {
                            return Ok(Some(l.to_result()));
                        }
                    }
                }
                let timeout = Duration::from_millis(req.timeout_ms.max(100));
                let (reply, answer) = mpsc::sync_channel(1);
                self.spawn(att.clone(), Start::Acquire { timeout, reply });
                match answer.recv_timeout(timeout + Duration::from_secs(2)) {
                    Ok(Ok(lease)) => Ok(Some(lease.to_result())),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(cni_err(
                        &att,
                        format!("no lease within {:.1}s", timeout.as_secs_f64()),
                        codes::TRY_AGAIN,
                    )),
                }
            }
            Op::Del => {
                self.release_key(&key);
                self.store
                    .remove(&key)
                    .map_err(|e| cni_err(&att, e, codes::IO_FAILURE))?;
                Ok(None)
            }
            Op::Status => Ok(None),
            Op::Gc => {
                let valid = |a: &Attachment| {
                    req.valid
                        .iter()
                        .any(|(cid, ifname)| *cid == a.container_id && *ifname == a.ifname)
                };
                let (saved, _) = self.store.load_all();
                let mut stale: Vec<String> = saved
                    .into_iter()
                    .map(|r| r.attachment)
                    .filter(|a| a.network == att.network && !valid(a))
                    .map(|a| a.key())
                    .collect();
                stale.sort();
                stale.dedup();
                for key in stale {
                    info!("{key}: not among the valid attachments; releasing (GC)");
                    self.release_key(&key);
                    if let Err(e) = self.store.remove(&key) {
                        warn!("{key}: {e}");
                    }
                }
                Ok(None)
            }
            Op::Check => {
                let map = lock(&self.attachments);
                let lease = map.get(&key).and_then(|h| lock(&h.lease).clone());
                match lease {
                    Some(l) if !l.expired() => Ok(None),
                    Some(l) => Err(cni_err(
                        &att,
                        format!("lease {} has expired", l.address),
                        codes::TRY_AGAIN,
                    )),
                    None => Err(cni_err(
                        &att,
                        "the daemon holds no lease",
                        codes::UNKNOWN_CONTAINER,
                    )),
                }
            }
        }
    }

    /// Releases the lease of one attachment, running or only saved, and
    /// stops its client; waits up to 3 s for the RELEASE to go out.
    fn release_key(&self, key: &str) {
        let handle = lock(&self.attachments).remove(key);
        let (done, wait) = mpsc::sync_channel(1);
        let asked = match handle {
            Some(h) => h.tx.send(Cmd::Release(done)).is_ok(),
            // Not running (its thread gave up), but saved: release from
            // the saved lease if the namespace is still there.
            None => match self.store.load(key) {
                Some(rec) if link::netns_exists(&rec.attachment.netns) => {
                    release_saved(rec, done);
                    true
                }
                _ => false,
            },
        };
        if asked {
            let _ = wait.recv_timeout(Duration::from_secs(3));
        }
    }

    /// One connection: one request line, read within [`REQUEST_DEADLINE`]
    /// and at most [`rpc::MAX_LINE`] long, and one answer. Each connection
    /// has its own thread, so a slow or oversized client holds only its own.
    fn serve(self: &Arc<Self>, stream: UnixStream) {
        let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
        let resp = match rpc::read_line(&stream, REQUEST_DEADLINE) {
            Err(LineError::Closed) => return,
            Err(e) => {
                warn!("bad request: {e}; connection closed");
                Response {
                    result: None,
                    error: Some(CniError::new(
                        codes::DECODING_FAILURE,
                        format!("bad request to the DHCP daemon: {e}"),
                    )),
                }
            }
            Ok(line) if line.trim_ascii().is_empty() => return,
            Ok(line) => match serde_json::from_slice::<Request>(&line) {
                Ok(req) => match self.handle(req) {
                    Ok(result) => Response {
                        result,
                        error: None,
                    },
                    Err(e) => Response {
                        result: None,
                        error: Some(e),
                    },
                },
                Err(e) => Response {
                    result: None,
                    error: Some(CniError::new(
                        codes::DECODING_FAILURE,
                        format!("bad request to the DHCP daemon: {e}"),
                    )),
                },
            },
        };
        if let Ok(mut out) = serde_json::to_vec(&resp) {
            out.push(b'\n');
            let mut w = &stream;
            let _ = w.write_all(&out);
        }
    }
}

/// How long a client has to send its request line once connected.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// How long writing an answer may block on a client that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends DHCPRELEASE over UDP (routed, the interface normally still has
/// its address) and once more as a link-layer broadcast from the leased
/// address, which needs neither address nor route; a server ignores the
/// second copy.
fn release(link: &Link, id: &Identity, lease: &Lease) -> Result<(), ReleaseError> {
    let udp = UdpTransport::open(link)
        .map_err(ReleaseError::from)
        .and_then(|udp| Ok(client::release(&udp, id, lease)?));
    let raw = RawTransport::open(link, lease.address.addr())
        .map_err(ReleaseError::from)
        .and_then(|raw| {
            let sent = client::release(&raw, id, lease);
            close_later(raw);
            Ok(sent?)
        });
    match (udp, raw) {
        (Err(udp), Err(raw)) => Err(ReleaseError::Both(Box::new(udp), Box::new(raw))),
        _ => Ok(()),
    }
}

/// Why a DHCPRELEASE could not be sent (by either way).
#[derive(Debug, thiserror::Error)]
enum ReleaseError {
    #[error(transparent)]
    Link(#[from] super::link::LinkError),
    #[error(transparent)]
    Client(#[from] client::ClientError),
    #[error("{0}; {1}")]
    Both(Box<ReleaseError>, Box<ReleaseError>),
}

/// Releases a saved lease from a short-lived thread in its namespace.
fn release_saved(rec: Record, done: SyncSender<()>) {
    let spawned = std::thread::Builder::new()
        .name("dhcp-release".into())
        .spawn(move || {
            let key = rec.attachment.key();
            match prepare(&rec.attachment) {
                Ok((link, id)) => match release(&link, &id, &rec.lease) {
                    Ok(()) => info!("{key}: released saved lease {}", rec.lease.address),
                    Err(e) => warn!("{key}: release of {} failed: {e}", rec.lease.address),
                },
                Err(e) => warn!("{key}: cannot release {}: {e}", rec.lease.address),
            }
            let _ = done.send(());
        });
    if let Err(e) = spawned {
        warn!("cannot start a release thread: {e}");
    }
}

/// The socket systemd passed (LISTEN_PID is us, LISTEN_FDS >= 1: fd 3).
fn activated_listener() -> Option<UnixListener> {
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    let fds: u32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    if pid != std::process::id() || fds < 1 {
        return None;
    }
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    // SAFETY: per the socket-activation protocol fd 3 is ours and open.
    Some(unsafe { UnixListener::from_raw_fd(3) })
}

/// Binds the socket, replacing a stale file but never a live daemon.
fn bind(path: &PathBuf) -> Result<UnixListener, DaemonError> {
    let sock_err = |source| DaemonError::Socket {
        path: path.clone(),
        source,
    };
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(DaemonError::AlreadyRunning(path.clone()));
        }
        info!("replacing stale socket {}", path.display());
        std::fs::remove_file(path).map_err(sock_err)?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(sock_err)?;
    }
    let listener = UnixListener::bind(path).map_err(sock_err)?;
    // Only root may ask for leases in other namespaces.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(sock_err)?;
    Ok(listener)
}

/// Runs the daemon until SIGTERM / SIGINT.
pub fn run(opts: Options) -> Result<(), DaemonError> {
    let mut signals = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        signals.add(s);
    }
    signals.thread_block().map_err(DaemonError::Signals)?;
    let (listener, owned_socket) = match activated_listener() {
        Some(l) => (l, None),
        None => (bind(&opts.socket_path)?, Some(opts.socket_path.clone())),
    };
    if let Some(p) = &opts.pidfile {
        std::fs::write(p, format!("{}\n", std::process::id())).map_err(|source| {
            DaemonError::Pidfile {
                path: p.clone(),
                source,
            }
        })?;
    }
    let daemon = Arc::new(Daemon {
        store: Store::new(&opts.lease_dir),
        attachments: Mutex::new(HashMap::new()),
        generation: AtomicU64::new(1),
    });
    let (records, errors) = daemon.store.load_all();
    for e in errors {
        warn!("{e}");
    }
    for rec in records {
        daemon.spawn(rec.attachment, Start::Resume(rec.lease));
    }
    let pidfile = opts.pidfile.clone();
    std::thread::spawn(move || {
        let sig = signals.wait();
        info!("stopping on {sig:?}; leases stay in the store for the next daemon");
        if let Some(p) = owned_socket {
            let _ = std::fs::remove_file(p);
        }
        if let Some(p) = pidfile {
            let _ = std::fs::remove_file(p);
        }
        std::process::exit(0);
    });
    info!(
        "listening on {}, leases in {}",
        opts.socket_path.display(),
        opts.lease_dir.display()
    );
    for stream in listener.incoming() {
        match stream {
            Ok(s) => {
                let d = daemon.clone();
                std::thread::spawn(move || d.serve(s));
            }
            Err(e) => warn!("accept on {}: {e}", opts.socket_path.display()),
        }
    }
    Ok(())
}
