//! RFC 3339 timestamps (UTC) without a calendar crate.

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
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
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
/// documented `--grace-period=0`). Milliseconds are kept; a value that does
/// not fit is refused, never wrapped.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let bad = || DurationError::Invalid(s.to_string());
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let (mut total_ms, mut num) = (0u64, String::new());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let too_long = || DurationError::TooLong(s.to_string());
        let n: u64 = match num.parse() {
            Ok(n) => n,
            Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => return Err(too_long()),
            Err(_) => return Err(bad()),
        };
        num.clear();
        let unit_ms = match c {
            'h' => 3_600_000,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                1
            }
            'm' => 60_000,
            's' => 1000,
            _ => return Err(bad()),
        };
        total_ms = n
            .checked_mul(unit_ms)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(too_long)?;
    }
    if !num.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_millis(total_ms))
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
