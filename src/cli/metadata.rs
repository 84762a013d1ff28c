//! `rkt metadata-service`: the host service `default-restricted` pods ask
//! who they are (see docs/metadata.md).

use std::path::PathBuf;

use clap::Args;

use super::Global;
use crate::metadata::{self, server};

#[derive(Debug, Args)]
pub struct MetadataArgs {
    /// TCP port apps reach the service on (through their gateway address).
    #[arg(long = "listen-port", default_value_t = metadata::DEFAULT_PORT)]
    pub listen_port: u16,
    /// The registration socket `rkt run` connects to.
    #[arg(long, default_value = metadata::SOCKET, hide = true)]
    pub socket: PathBuf,
    /// Where registrations and the HMAC key are kept.
    #[arg(long = "state-dir", default_value = metadata::STATE_DIR, hide = true)]
    pub state_dir: PathBuf,
    /// HTTP connections served at once, from all pods together.
    #[arg(long = "max-connections", default_value_t = 256)]
    pub max_connections: usize,
    /// HTTP connections one address (one pod) may hold at once; more are
    /// closed at once.
    #[arg(long = "max-connections-per-client", default_value_t = 8)]
    pub max_per_client: usize,
}

pub fn metadata_service(_g: &Global, a: MetadataArgs) -> Result<i32, crate::error::Error> {
    let opts = server::Options {
        port: a.listen_port,
        socket: a.socket,
        state_dir: a.state_dir,
        max_connections: a.max_connections,
        max_per_client: a.max_per_client,
        ..Default::default()
    };
    server::run(&opts)?;
    Ok(0)
}
