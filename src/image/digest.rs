//! Digests: the one form of digest an image may use to name content
//! (`sha256:` and 64 lower-case hex digits), a reader that hashes and counts
//! what passes through it (so a blob is verified while it is being
//! unpacked, in one pass), and the byte budget that bounds one image.

use std::cell::Cell;
use std::fmt;
use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

/// A validated `sha256:<64 lower-case hex>` digest: safe to use as a file
/// name, and the only thing layer directories are named from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sha256Digest(String);

impl Sha256Digest {
    /// `None` unless `s` is exactly `sha256:` and 64 lower-case hex digits.
    pub fn parse(s: &str) -> Option<Self> {
        let hex = s.strip_prefix("sha256:")?;
        (hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| Sha256Digest(s.to_string()))
    }

    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        Sha256Digest(format!("sha256:{:x}", Sha256::digest(data)))
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The uncompressed bytes one image may unpack (`--max-image-size`), shared
/// by all its layers.
#[derive(Debug)]
pub struct Budget {
    limit: u64,
    used: Cell<u64>,
    exceeded: Cell<bool>,
    /// Shown on a terminal as bytes are charged.
    progress: Option<super::progress::Progress>,
}

/// The error a reader returns once the budget is spent.
#[derive(Debug, thiserror::Error)]
#[error("the image is larger than its size limit")]
pub struct OverBudget;

impl Budget {
    pub fn new(limit: u64) -> Self {
        Budget {
            limit,
            used: Cell::new(0),
            exceeded: Cell::new(false),
            progress: None,
        }
    }

    /// A budget that shows its progress on a terminal, as `image`'s.
    pub fn with_progress(limit: u64, image: &str) -> Self {
        Budget {
            progress: super::progress::Progress::on_terminal(image),
            ..Budget::new(limit)
        }
    }

    /// What is being unpacked now, for the progress line.
    pub fn step(&self, what: &str) {
        if let Some(p) = &self.progress {
            p.step(what);
        }
    }

    /// Spends `n` bytes; an error once the total goes over the limit.
    pub fn charge(&self, n: u64) -> io::Result<()> {
        let used = self.used.get().saturating_add(n);
        self.used.set(used);
        if let Some(p) = &self.progress {
            p.bytes(used);
        }
        if used > self.limit {
            self.exceeded.set(true);
            return Err(io::Error::other(OverBudget));
        }
        Ok(())
    }

    /// Whether some charge went over the limit (the cause of a failure).
    pub fn exceeded(&self) -> bool {
        self.exceeded.get()
    }

    pub fn used(&self) -> u64 {
        self.used.get()
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }
}

/// Hashes (sha256) and counts every byte read through it, charging them to
/// a budget when it has one.
pub struct HashingReader<'b, R> {
    inner: R,
    hasher: Sha256,
    count: u64,
    budget: Option<&'b Budget>,
}

impl<'b, R: Read> HashingReader<'b, R> {
    pub fn new(inner: R, budget: Option<&'b Budget>) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
            budget,
        }
    }

    /// Reads (and hashes) whatever is left, to the end of the stream.
    pub fn drain(&mut self) -> io::Result<()> {
        let mut buf = vec![0u8; 1 << 16];
        while self.read(&mut buf)? > 0 {}
        Ok(())
    }

    /// The digest and the number of bytes read so far.
    pub fn finish(self) -> (Sha256Digest, u64) {
        (
            Sha256Digest(format!("sha256:{:x}", self.hasher.finalize())),
            self.count,
        )
    }
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        if let Some(b) = self.budget {
            b.charge(n as u64)?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parse_accepts_only_sha256_lower_hex_64() {
        assert!(Sha256Digest::parse(EMPTY).is_some());
        assert_eq!(Sha256Digest::parse(EMPTY).unwrap().hex().len(), 64);
        for bad in [
            "sha256:../../..",
            "sha256:abcd",
            &EMPTY.to_uppercase(),
            &EMPTY.replace("sha256:", "sha512:"),
            &EMPTY.replace("sha256:", "sha256-"),
            &format!("{EMPTY}0"),
            &EMPTY.replace('e', "g"),
            &format!("{}/x", &EMPTY[..EMPTY.len() - 2]),
            "",
        ] {
            assert!(Sha256Digest::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn reader_hashes_and_counts() {
        let data = b"hello world".repeat(10_000);
        let mut r = HashingReader::new(&data[..], None);
        let mut first = [0u8; 7];
        r.read_exact(&mut first).unwrap();
        r.drain().unwrap();
        let (d, n) = r.finish();
        assert_eq!(d, Sha256Digest::of(&data));
        assert_eq!(n, data.len() as u64);
        let (d, n) = HashingReader::new(&b""[..], None).finish();
        assert_eq!((d.as_str(), n), (EMPTY, 0));
    }

    #[test]
    fn budget_stops_a_reader_and_is_shared() {
        let budget = Budget::new(100);
        let mut r = HashingReader::new(&[0u8; 60][..], Some(&budget));
        r.drain().unwrap();
        assert!(!budget.exceeded());
        let mut r = HashingReader::new(&[0u8; 60][..], Some(&budget));
        let e = r.drain().unwrap_err();
        assert!(e.get_ref().is_some_and(|e| e.is::<OverBudget>()), "{e}");
        assert!(budget.exceeded());
        assert!(budget.used() > budget.limit());
    }
}
