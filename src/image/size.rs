//! Sizes on the command line (`--max-image-size=10G`): a number of bytes,
//! or with a K, M, G or T suffix (binary multiples), and back for messages.

const UNITS: [(char, u32); 4] = [('K', 10), ('M', 20), ('G', 30), ('T', 40)];

/// Why a size is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error(
        "\"{0}\" is not a size: give bytes, or a number with a K, M, G or T suffix (512M, 10G)"
    )]
    NotASize(String),
    #[error("\"{0}\" is too large")]
    TooLarge(String),
    #[error("\"{0}\": the size must be more than 0")]
    Zero(String),
}

/// Parses `10G`, `512M`, `1048576`, `2t`; more than 0, at most u64.
pub fn parse_size(s: &str) -> Result<u64, SizeError> {
    let bad = || SizeError::NotASize(s.to_string());
    let t = s.trim();
    let (digits, shift) = match t.chars().last() {
        Some(c) if c.is_ascii_alphabetic() => {
            let shift = UNITS
                .iter()
                .find(|(u, _)| u.eq_ignore_ascii_case(&c))
                .map(|(_, sh)| *sh)
                .ok_or_else(bad)?;
            (&t[..t.len() - 1], shift)
        }
        _ => (t, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let v = n
        .checked_mul(1u64 << shift)
        .ok_or_else(|| SizeError::TooLarge(s.to_string()))?;
    if v == 0 {
        return Err(SizeError::Zero(s.to_string()));
    }
    Ok(v)
}

/// `10G`, `1536K`, `123` (exact: the largest unit that divides it).
pub fn format_size(n: u64) -> String {
    for (u, shift) in UNITS.iter().rev() {
        if n >= 1u64 << shift && n.is_multiple_of(1u64 << shift) {
            return format!("{}{u}", n >> shift);
        }
    }
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10G"), Ok(10 << 30));
        assert_eq!(parse_size("512m"), Ok(512 << 20));
        assert_eq!(parse_size("1K"), Ok(1024));
        assert_eq!(parse_size("2T"), Ok(2 << 40));
        assert_eq!(parse_size("4096"), Ok(4096));
        for bad in [
            "",
            "G",
            "10X",
            "1.5G",
            "-1",
            "10GB",
            "ten",
            "0",
            "0G",
            "99999999999T",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(format_size(10 << 30), "10G");
        assert_eq!(format_size(1536 << 10), "1536K");
        assert_eq!(format_size(1000), "1000");
        for s in ["10G", "3M", "7", "1T"] {
            assert_eq!(format_size(parse_size(s).unwrap()), s);
        }
    }
}
