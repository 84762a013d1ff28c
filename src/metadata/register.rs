//! The registration protocol on the unix socket: one JSON line in, one JSON
//! line out, then the connection closes. Only root (or the service's own
//! user) may register; the registering process (from `SO_PEERCRED`) is taken
//! as the pod's runtime, and the pod counts as running while it lives. The
//! request must arrive whole, and the answer be taken, within a deadline each.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use nix::unistd::geteuid;
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use super::conn::Deadline;
use super::registry::{PodInfo, Registry};

/// Largest registration message.
pub const MAX_MESSAGE: u64 = 1024 * 1024;

/// What `rkt run` sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Message {
    Register { pod: PodInfo },
    Unregister { token: String },
}

/// What the service answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The TCP port apps reach the service on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Reply {
    pub(crate) fn error(msg: impl Into<String>) -> Self {
        Reply {
            error: Some(msg.into()),
            ..Default::default()
        }
    }

    /// The reply as one line on the wire.
    pub(crate) fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

/// Why a registration is refused; the caller is told the message.
#[derive(Debug, thiserror::Error)]
enum RefuseError {
    #[error("cannot identify the caller: {0}")]
    Caller(nix::Error),
    #[error("user {0} may not register pods")]
    NotAllowed(u32),
    #[error("cannot read the request: {0}")]
    Read(std::io::Error),
    #[error("malformed request: {0}")]
    Malformed(serde_json::Error),
    #[error("registration without a pod UUID")]
    NoUuid,
    #[error(transparent)]
    Registry(#[from] super::MetadataError),
}

/// Serves one connection on the registration socket: the request must
/// arrive within `timeout`, and the answer be taken within `timeout` more.
pub fn serve(registry: &Registry, stream: UnixStream, port: u16, timeout: Duration) {
    let reply = match answer(registry, &stream, port, Instant::now() + timeout) {
        Ok(r) => r,
        Err(e) => {
            warn!("registration: {e}");
            Reply::error(e.to_string())
        }
    };
    let mut w = Deadline::new(&stream, Instant::now() + timeout);
    if let Err(e) = w.write_all(&reply.to_line()) {
        debug!("registration: cannot answer: {e}");
    }
}

fn answer(
    registry: &Registry,
    stream: &UnixStream,
    port: u16,
    deadline: Instant,
) -> Result<Reply, RefuseError> {
    let cred = getsockopt(stream, PeerCredentials).map_err(RefuseError::Caller)?;
    let (pid, uid) = (cred.pid(), cred.uid());
    if uid != 0 && uid != geteuid().as_raw() {
        return Err(RefuseError::NotAllowed(uid));
    }
    let mut line = String::new();
    BufReader::new(Deadline::new(stream, deadline).take(MAX_MESSAGE))
        .read_line(&mut line)
        .map_err(RefuseError::Read)?;
    let msg: Message = serde_json::from_str(&line).map_err(RefuseError::Malformed)?;
    match msg {
        Message::Register { pod } => {
            if pod.uuid.is_empty() {
                return Err(RefuseError::NoUuid);
            }
            let uuid = pod.uuid.clone();
            let token = registry.register(pod, pid)?;
            debug!(pod = %uuid, runtime = pid, "registered");
            Ok(Reply {
                token: Some(token),
                port: Some(port),
                error: None,
            })
        }
        Message::Unregister { token } => {
            registry.unregister(&token);
            Ok(Reply::default())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_and_unregister_over_a_socket_pair() {
        let reg = Registry::in_memory();
        let (mut a, b) = UnixStream::pair().unwrap();
        let msg = Message::Register {
            pod: PodInfo {
                uuid: "u".into(),
                ..Default::default()
            },
        };
        a.write_all(&serde_json::to_vec(&msg).unwrap()).unwrap();
        a.write_all(b"\n").unwrap();
        serve(&reg, b, 18112, Duration::from_secs(5));
        let mut out = String::new();
        a.read_to_string(&mut out).unwrap();
        let reply: Reply = serde_json::from_str(&out).unwrap();
        let token = reply.token.unwrap();
        assert!(reg.lookup(&token).is_some());

        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(b"{\"op\":\"unregister\",\"token\":\"").unwrap();
        a.write_all(token.as_bytes()).unwrap();
        a.write_all(b"\"}\n").unwrap();
        serve(&reg, b, 18112, Duration::from_secs(5));
        assert!(reg.is_empty());

        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(b"nonsense\n").unwrap();
        serve(&reg, b, 18112, Duration::from_secs(5));
        let mut out = String::new();
        a.read_to_string(&mut out).unwrap();
        assert!(out.contains("malformed request"), "{out}");
    }

    /// A caller that connects and trickles its request is answered with an
    /// error at the deadline, however often it sends a byte.
    #[test]
    fn a_slow_registration_is_cut_off() {
        let reg = Registry::in_memory();
        let (a, b) = UnixStream::pair().unwrap();
        let trickle = std::thread::spawn(move || {
            for _ in 0..100 {
                if (&a).write_all(b" ").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let mut out = String::new();
            let _ = (&a).read_to_string(&mut out);
            out
        });
        let t = Instant::now();
        serve(&reg, b, 18112, Duration::from_millis(200));
        assert!(
            t.elapsed() < Duration::from_millis(700),
            "{:?}",
            t.elapsed()
        );
        let out = trickle.join().unwrap();
        assert!(out.contains("cannot read the request"), "{out}");
        assert!(reg.is_empty());
    }
}
