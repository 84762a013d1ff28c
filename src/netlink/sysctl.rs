//! Writing sysctls under /proc/sys (in the netns of the calling thread at
//! the time of the call; see [`super::Netns::run`]).

use super::{NetlinkError, Result};

/// Writes `value` to `/proc/sys/<key>` (`key` with `/` or `.` separators;
/// use `/` when an interface name could contain a dot).
pub fn write(key: &str, value: &str) -> Result<()> {
    let path = format!("/proc/sys/{key}");
    std::fs::write(&path, value).map_err(|source| NetlinkError::Io {
        what: format!("write {value} to {path}"),
        source,
    })
}

/// Reads `/proc/sys/<key>`, trimmed.
pub fn read(key: &str) -> Result<String> {
    let path = format!("/proc/sys/{key}");
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(|source| NetlinkError::Io {
            what: format!("read {path}"),
            source,
        })
}

/// Sets `value` unless it already is (avoids a write, keeps errors away
/// when /proc/sys is read-only but already right).
pub fn ensure(key: &str, value: &str) -> Result<()> {
    if read(key).map(|v| v == value).unwrap_or(false) {
        return Ok(());
    }
    write(key, value)
}
