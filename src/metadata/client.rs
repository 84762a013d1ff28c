//! The runtime's side of registration (`rkt run`): cheap when no service
//! runs (one failed `connect`), bounded in time when one does, and never
//! fatal: a pod without the metadata service still runs.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use tracing::{debug, warn};

use super::register::{Message, Reply, MAX_MESSAGE};
use super::registry::PodInfo;
use super::MetadataError;

/// How long the runtime waits for the service.
const TIMEOUT: Duration = Duration::from_secs(2);

fn exchange(socket: &Path, msg: &Message) -> Result<Option<Reply>, MetadataError> {
    let stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        // No service: nothing to do.
        Err(e) => {
            debug!(
                "metadata service not reachable at {}: {e}",
                socket.display()
            );
            return Ok(None);
        }
    };
    let io = |e| MetadataError::io("metadata service", socket, e);
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    let mut line = serde_json::to_vec(msg)
        .map_err(|e| MetadataError::Protocol(format!("cannot encode: {e}")))?;
    line.push(b'\n');
    (&stream).write_all(&line).map_err(io)?;
    let mut answer = String::new();
    BufReader::new(std::io::Read::take(&stream, MAX_MESSAGE))
        .read_line(&mut answer)
        .map_err(io)?;
    let reply: Reply = serde_json::from_str(&answer)
        .map_err(|e| MetadataError::Protocol(format!("malformed answer {answer:?}: {e}")))?;
    if let Some(err) = reply.error {
        return Err(MetadataError::Protocol(err));
    }
    Ok(Some(reply))
}

/// Registers `pod` with the service listening on `socket`: its token and
/// the service's TCP port, or `None` when no service runs or it refused
/// (with a warning).
pub fn register(socket: &Path, pod: &PodInfo) -> Option<(String, u16)> {
    let msg = Message::Register { pod: pod.clone() };
    match exchange(socket, &msg) {
        Ok(reply) => reply.and_then(|r| Some((r.token?, r.port.unwrap_or(super::DEFAULT_PORT)))),
        Err(e) => {
            warn!(
                "pod {}: cannot register with the metadata service: {e}; the pod runs without it",
                pod.uuid
            );
            None
        }
    }
}

/// Unregisters `token`; problems are only logged.
pub fn unregister(socket: &Path, token: &str) {
    let msg = Message::Unregister {
        token: token.to_string(),
    };
    if let Err(e) = exchange(socket, &msg) {
        debug!("cannot unregister from the metadata service: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_service_is_quick_and_quiet() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("none.sock");
        let t = std::time::Instant::now();
        assert_eq!(register(&sock, &PodInfo::default()), None);
        unregister(&sock, "x");
        assert!(t.elapsed() < Duration::from_millis(50));
    }
}
