//! Time as the CLI shows and reads it: RFC 3339 timestamps (UTC) and
//! duration flags, on `humantime`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the epoch, now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `2026-11-29T03:36:34Z` for a Unix time.
pub fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// Why a duration flag was refused.
#[derive(Debug, thiserror::Error)]
pub enum DurationError {
    #[error("invalid duration \"{0}\" (use e.g. 30m, 1h, 10s, 500ms, 0)")]
    Invalid(String),
    #[error("duration \"{0}\" is too long")]
    TooLong(String),
}

/// Parses `30m`, `1h`, `10s`, `0s`, `1h30m`, `500ms`, or a bare `0` (rkt's
/// documented `--grace-period=0`), in humantime's syntax (which also takes
/// `1h 30m` or `2days`). Milliseconds are kept; a value that does
/// not fit is refused, never wrapped.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    match humantime::parse_duration(s) {
        Ok(d) => Ok(d),
        Err(humantime::DurationError::NumberOverflow) => Err(DurationError::TooLong(s.into())),
        Err(_) => Err(DurationError::Invalid(s.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_923_394), "2026-11-29T03:36:34Z");
        let secs = |s| parse_duration(s).unwrap().as_secs();
        assert_eq!(secs("30m"), 1800);
        assert_eq!(secs("1h30m"), 5400);
        assert_eq!(secs("0s"), 0);
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("").is_err());
    }

    /// Issue 13's duration bugs: a bare 0 is zero, milliseconds are kept,
    /// a value that does not fit is refused (it overflowed before).
    #[test]
    fn zero_milliseconds_and_overflow() {
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(
            parse_duration("1s500ms").unwrap(),
            Duration::from_millis(1500)
        );
        for s in [
            "9999999999999999h",
            "99999999999999999999s",
            "5124095576030432h",
        ] {
            assert!(
                matches!(parse_duration(s), Err(DurationError::TooLong(_))),
                "{s}"
            );
        }
    }
}
