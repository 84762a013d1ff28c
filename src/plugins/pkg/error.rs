//! The plugins' error type: what a plugin can fail at, with the network,
//! interface and step, turned into a CNI error with the spec's code.

use super::firewall;
use crate::cni::skeleton::Request;
use crate::cni::{codes, CniError};
use crate::netlink::NetlinkError;

/// What a plugin can fail at; becomes a CNI error with the spec's code.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("network \"{network}\": invalid config: {msg}")]
    Config { network: String, msg: String },
    #[error("network \"{network}\", interface {ifname}: {what}: {source}")]
    Netlink {
        network: String,
        ifname: String,
        what: String,
        source: Box<NetlinkError>,
    },
    #[error("network \"{network}\": {source}")]
    Firewall {
        network: String,
        source: firewall::FwError,
    },
    #[error("network \"{network}\": {msg}")]
    Other { network: String, msg: String },
    /// A delegated plugin's error, passed on as it is.
    #[error("{0}")]
    Cni(#[from] CniError),
}

impl From<PluginError> for CniError {
    fn from(e: PluginError) -> Self {
        let code = match &e {
            PluginError::Cni(_) => codes::INTERNAL,
            PluginError::Config { .. } => codes::INVALID_CONFIG,
            PluginError::Netlink { .. } | PluginError::Firewall { .. } => codes::IO_FAILURE,
            PluginError::Other { .. } => codes::INTERNAL,
        };
        match e {
            PluginError::Cni(inner) => inner,
            other => CniError::new(code, other.to_string()),
        }
    }
}

/// Wraps a netlink error with the network, interface and step it failed at.
pub fn nl_err(
    req: &Request,
    what: impl Into<String>,
) -> impl FnOnce(NetlinkError) -> PluginError + '_ {
    let what = what.into();
    move |source| PluginError::Netlink {
        network: req.name.clone(),
        ifname: req.ifname.clone(),
        what,
        source: Box::new(source),
    }
}
