//! The metadata service (`rkt metadata-service`): what `default-restricted`
//! pods exist for.
//!
//! `rkt run` registers each pod over a unix socket ([`SOCKET`]) and gets a
//! random token back; the app finds `AC_METADATA_URL=http://<gateway>:<port>/<token>`
//! in its environment and asks the service, over HTTP, who it is
//! (`/acMetadata/v1/pod/uuid`, annotations, manifests) and to sign or verify
//! content with a key only the service holds (`pod/hmac/sign`, `pod/hmac/verify`).
//! A request is answered only when its token belongs to a registered pod whose
//! runtime still lives and it comes from that pod's address on the network the
//! URL points at.
//!
//! Registrations and the HMAC key are kept under [`STATE_DIR`], so a restarted
//! service keeps answering for the pods that still run.

pub mod client;
pub mod conn;
pub mod handlers;
pub mod http;
pub mod pod;
pub mod proc;
pub mod register;
pub mod registry;
pub mod server;
pub mod signing;

use std::path::PathBuf;

/// Where `rkt run` registers pods (rkt's path).
pub const SOCKET: &str = "/run/rkt/metadata-svc.sock";
/// Registrations (`pods/<token>.json`) and the HMAC key (`hmac.key`).
pub const STATE_DIR: &str = "/run/rkt/metadata";
/// The TCP port apps reach the service on.
pub const DEFAULT_PORT: u16 = 18112;

/// What can go wrong in the metadata service or when talking to it.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the HMAC key {0} is damaged (expected {len} bytes); remove it to make a new one (signatures made with it stop verifying)", len = signing::KEY_LEN)]
    BadKey(PathBuf),
    #[error("another metadata service already listens on {0}")]
    AlreadyRunning(PathBuf),
    #[error("cannot listen on TCP port {port}: {source} (another metadata service running? see --listen-port)")]
    Listen {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("registration protocol: {0}")]
    Protocol(String),
}

impl MetadataError {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        MetadataError::Io {
            what,
            path: path.into(),
            source,
        }
    }
}

/// Random bytes from the kernel (getrandom(2), retried on EINTR).
pub(crate) fn random_bytes(buf: &mut [u8]) -> std::io::Result<()> {
    getrandom::fill(buf).map_err(std::io::Error::from)
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
