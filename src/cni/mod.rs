//! The CNI protocol, shared by the runtime and the plugins: configs, results
//! of every spec version, errors and their codes, CNI_ARGS, plugin exec.

pub mod args;
pub mod config;
pub mod exec;
pub mod port_mapping;
pub mod ranges;
pub mod result;
pub mod skeleton;

pub use config::NetConf;
pub use result::CniResult;

use serde::{Deserialize, Serialize};

/// Error codes from the CNI spec.
pub mod codes {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENV: u32 = 4;
    pub const IO_FAILURE: u32 = 5;
    pub const DECODING_FAILURE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const TRY_AGAIN: u32 = 11;
    pub const INTERNAL: u32 = 999;
}

/// Spec versions and their families.
pub mod version {
    pub const SUPPORTED: &[&str] = &[
        "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
    ];
    pub const LATEST: &str = "1.1.0";

    pub fn is_supported(v: &str) -> bool {
        SUPPORTED.contains(&v)
    }
    /// 0.1.0 and 0.2.0: `ip4` / `ip6` results.
    pub fn is_legacy(v: &str) -> bool {
        matches!(v, "0.1.0" | "0.2.0" | "")
    }
    /// 0.3.x and 0.4.0 results carry `"version"` in each ip.
    pub fn has_ip_version_field(v: &str) -> bool {
        matches!(v, "0.3.0" | "0.3.1" | "0.4.0")
    }
    /// DEL gets `prevResult` and CHECK exists from 0.4.0 on.
    pub fn at_least_040(v: &str) -> bool {
        !is_legacy(v) && !matches!(v, "0.3.0" | "0.3.1")
    }
    /// GC and STATUS exist from 1.1.0 on.
    pub fn at_least_110(v: &str) -> bool {
        v == "1.1.0"
    }
}

/// A CNI error result: `{"cniVersion", "code", "msg", "details"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{msg}{}", if details.is_empty() { String::new() } else { format!(" ({details})") })]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }
}
