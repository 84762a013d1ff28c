//! The plugin <-> daemon protocol: one JSON request line over the unix
//! socket, one JSON response line back.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::lease::Attachment;
use crate::cni::{codes, CniError, CniResult};

/// Where the daemon listens unless configured otherwise.
pub const DEFAULT_SOCKET: &str = "/run/cni/dhcp.sock";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Add,
    Del,
    Check,
    /// Release every lease of the network not in `valid`.
    Gc,
    /// Is the daemon there?
    Status,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    pub op: Op,
    pub attachment: Attachment,
    /// How long the daemon may wait for a server on ADD.
    pub timeout_ms: u64,
    /// GC: the attachments (container ID, interface) still in use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub valid: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Response {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<CniResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<CniError>,
}

/// The longest request or answer line, newline excluded: a GC request
/// lists every valid attachment (about 60 bytes each), so this is room for
/// some 15 000 of them.
pub const MAX_LINE: usize = 1 << 20;

/// Why a line could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error("the line is longer than {MAX_LINE} bytes")]
    TooLong,
    #[error("no complete line within {0:.1}s")]
    Timeout(f64),
    #[error("the connection closed before a line")]
    Closed,
    #[error("{0}")]
    Io(std::io::Error),
}

/// Reads one line (up to `\n` or the end of the stream) of at most
/// [`MAX_LINE`] bytes, all of it within `within`, whatever the peer's pace.
pub fn read_line(stream: &UnixStream, within: Duration) -> Result<Vec<u8>, LineError> {
    let deadline = Instant::now() + within;
    let mut line = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(LineError::Timeout(within.as_secs_f64()));
        }
        stream.set_read_timeout(Some(left)).map_err(LineError::Io)?;
        let n = match (&*stream).read(&mut chunk) {
            Ok(0) if line.is_empty() => return Err(LineError::Closed),
            Ok(0) => return Ok(line),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(LineError::Timeout(within.as_secs_f64()))
            }
            Err(e) => return Err(LineError::Io(e)),
        };
        let end = chunk[..n].iter().position(|b| *b == b'\n');
        line.extend_from_slice(&chunk[..end.unwrap_or(n)]);
        if line.len() > MAX_LINE {
            return Err(LineError::TooLong);
        }
        if end.is_some() {
            return Ok(line);
        }
    }
}

/// How to start the daemon, for error messages.
pub fn how_to_start(socket: &Path) -> String {
    format!(
        "is the DHCP daemon running? start it with `dhcp daemon --socket-path={}` \
         or `systemctl enable --now cni-dhcp.socket`",
        socket.display()
    )
}

/// Sends one request and reads the answer; the daemon's CNI error comes
/// back as is.
pub fn call(
    socket: &Path,
    req: &Request,
    io_timeout: Duration,
) -> Result<Option<CniResult>, CniError> {
    let unreachable = |e: std::io::Error| {
        CniError::new(
            codes::TRY_AGAIN,
            format!(
                "cannot reach the DHCP daemon at {}: {e}; {}",
                socket.display(),
                how_to_start(socket)
            ),
        )
    };
    let io = |e: std::io::Error| {
        CniError::new(
            codes::IO_FAILURE,
            format!("talking to the DHCP daemon at {}: {e}", socket.display()),
        )
    };
    let mut stream = UnixStream::connect(socket).map_err(unreachable)?;
    stream.set_write_timeout(Some(io_timeout)).map_err(io)?;
    let mut line = serde_json::to_vec(req).map_err(|e| {
        CniError::new(
            codes::INTERNAL,
            format!("cannot encode daemon request: {e}"),
        )
    })?;
    line.push(b'\n');
    stream.write_all(&line).map_err(io)?;
    let answer = match read_line(&stream, io_timeout) {
        Ok(a) if !a.trim_ascii().is_empty() => a,
        Ok(_) | Err(LineError::Closed) => {
            return Err(CniError::new(
                codes::IO_FAILURE,
                format!(
                    "the DHCP daemon at {} closed the connection without answering (see its log)",
                    socket.display()
                ),
            ))
        }
        Err(e) => {
            return Err(CniError::new(
                codes::IO_FAILURE,
                format!(
                    "reading the answer of the DHCP daemon at {}: {e}",
                    socket.display()
                ),
            ))
        }
    };
    let resp: Response = serde_json::from_slice(&answer).map_err(|e| {
        CniError::new(
            codes::DECODING_FAILURE,
            format!(
                "bad answer from the DHCP daemon at {}: {e}",
                socket.display()
            ),
        )
    })?;
    match resp.error {
        Some(e) => Err(e),
        None => Ok(resp.result),
    }
}
