//! What attaching and detaching a pod's networks can fail with. Every
//! error names the network, the plugin and the verb, as the user needs
//! them to find the config or plugin at fault.

use std::fmt::{self, Display};

use crate::cni::exec::ExecError;
use crate::cni::{codes, CniError};
use crate::netns::NetnsError;

/// Why one plugin call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallFailure {
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// The plugin answered, but not with a result of the config's version.
    #[error(transparent)]
    Result(CniError),
    #[error("{0}")]
    Encode(serde_json::Error),
}

/// A plugin call that failed: network, plugin, verb (absent when the
/// plugin never ran or its answer was unreadable) and why.
#[derive(Debug, thiserror::Error)]
#[error("network \"{network}\" (plugin {plugin}{}): {failure}", verb.map(|v| format!(", {v}")).unwrap_or_default())]
pub struct CallError {
    pub network: String,
    pub plugin: String,
    pub verb: Option<&'static str>,
    pub failure: Box<CallFailure>,
}

impl CallError {
    /// The plugin's CNI error code, when it answered with one.
    pub fn code(&self) -> Option<u32> {
        match self.failure.as_ref() {
            CallFailure::Exec(ExecError::Plugin(e)) => Some(e.code),
            _ => None,
        }
    }

    /// The plugin says the network config itself is wrong (CNI codes 2
    /// unsupported field, 6 cannot decode, 7 invalid config): the config a
    /// pod was attached with never changes, so calling again with it cannot
    /// succeed.
    pub fn config_rejected(&self) -> bool {
        matches!(
            self.code(),
            Some(codes::UNSUPPORTED_FIELD | codes::DECODING_FAILURE | codes::INVALID_CONFIG)
        )
    }
}

/// What follows a DEL error the plugin gives because it rejects the
/// config: such a DEL can never succeed, so it is not retried.
pub const GIVEN_UP: &str = "the plugin rejects this network's config, so its DEL cannot succeed and is not retried; what it set up outside the pod (an address lease, host routes, firewall rules) may remain";

/// Why attaching stopped.
#[derive(Debug, thiserror::Error)]
pub enum SetupCause {
    #[error("cannot record network \"{network}\" in {dir}: {source}")]
    Record {
        network: String,
        dir: String,
        source: std::io::Error,
    },
    #[error("cannot record network \"{network}\": {source}")]
    RecordResult {
        network: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("network \"{0}\" has no plugins")]
    NoPlugins(String),
}

/// A failed setup after its rollback: why it stopped, the DELs given up on
/// (the plugin rejects the config) and those that failed and may be
/// retried by `rkt gc`.
#[derive(Debug)]
pub struct SetupError {
    pub cause: Box<SetupCause>,
    pub given_up: Vec<CallError>,
    pub rollback_failed: Vec<CallError>,
}

impl std::error::Error for SetupError {}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.cause)?;
        if !self.given_up.is_empty() {
            write!(f, "; rolling back: {}: {GIVEN_UP}", join(&self.given_up))?;
        }
        if !self.rollback_failed.is_empty() {
            write!(
                f,
                "; rolling back also failed: {}",
                join(&self.rollback_failed)
            )?;
        }
        Ok(())
    }
}

/// A failure releasing a pod's networks that a retry may fix.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseProblem {
    #[error(transparent)]
    Call(#[from] CallError),
    #[error(transparent)]
    Netns(#[from] NetnsError),
}

/// A DEL or netns removal given up on, with what it may have left.
#[derive(Debug, thiserror::Error)]
pub enum GivenUp {
    #[error("{0}: {GIVEN_UP}")]
    Rejected(CallError),
    #[error("{0}: removed anyway (--force); what the plugin set up outside the pod may remain")]
    Forced(CallError),
    #[error("{0}; rkt gc removes it once the pod is gone")]
    NetnsForced(NetnsError),
}

/// Several errors as one line, `; `-separated: what a step that keeps
/// going (teardown, rollback) reports.
pub fn join<E: Display>(errors: &[E]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
