//! The plugin <-> daemon protocol: one JSON request line over the unix
//! socket, one JSON response line back.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

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
    stream.set_read_timeout(Some(io_timeout)).map_err(io)?;
    let mut line = serde_json::to_vec(req).map_err(|e| {
        CniError::new(
            codes::INTERNAL,
            format!("cannot encode daemon request: {e}"),
        )
    })?;
    line.push(b'\n');
    stream.write_all(&line).map_err(io)?;
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer).map_err(io)?;
    if answer.trim().is_empty() {
        return Err(CniError::new(
            codes::IO_FAILURE,
            format!(
                "the DHCP daemon at {} closed the connection without answering (see its log)",
                socket.display()
            ),
        ));
    }
    let resp: Response = serde_json::from_str(&answer).map_err(|e| {
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
