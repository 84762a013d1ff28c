//! The pod identity key: HMAC-SHA512 over the pod UUID and the content, with
//! a random key only the service holds (kept root-only on disk so a restarted
//! service still verifies earlier signatures). Signatures travel as base64,
//! as in rkt.

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha512;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, Engine, GeneralPurpose, GeneralPurposeConfig};

use super::{random_bytes, MetadataError};

/// Key length in bytes (SHA-512's block size).
pub const KEY_LEN: usize = 64;

type HmacSha512 = Hmac<Sha512>;

/// The service's signing key.
pub struct Key([u8; KEY_LEN]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Key(bytes)
    }

    /// Reads the key at `path`, or makes a new one there (mode 0600).
    pub fn load_or_create(path: &Path) -> Result<Self, MetadataError> {
        match fs::File::open(path) {
            Ok(mut f) => {
                let mut buf = Vec::new();
                f.read_to_end(&mut buf)
                    .map_err(|e| MetadataError::io("cannot read the HMAC key", path, e))?;
                let bytes: [u8; KEY_LEN] = buf
                    .try_into()
                    .map_err(|_| MetadataError::BadKey(path.to_path_buf()))?;
                Ok(Key(bytes))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let mut bytes = [0u8; KEY_LEN];
                random_bytes(&mut bytes)
                    .map_err(|e| MetadataError::io("cannot read random bytes", "getrandom", e))?;
                let tmp = path.with_extension("tmp");
                let write = || -> std::io::Result<()> {
                    let mut f = fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .mode(0o600)
                        .open(&tmp)?;
                    f.write_all(&bytes)?;
                    f.sync_all()?;
                    // Two services starting at once: the first key wins.
                    fs::hard_link(&tmp, path)?;
                    fs::remove_file(&tmp)
                };
                match write() {
                    Ok(()) => Ok(Key(bytes)),
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                        let _ = fs::remove_file(&tmp);
                        Self::load_or_create(path)
                    }
                    Err(e) => Err(MetadataError::io("cannot write the HMAC key", path, e)),
                }
            }
            Err(e) => Err(MetadataError::io("cannot open the HMAC key", path, e)),
        }
    }

    fn mac(&self, uuid: &str, content: &[u8]) -> HmacSha512 {
        // HMAC takes keys of any length: this cannot fail.
        let mut mac = <HmacSha512 as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        // The UUID's length first, so (uuid, content) pairs cannot collide.
        mac.update(&(uuid.len() as u64).to_be_bytes());
        mac.update(uuid.as_bytes());
        mac.update(content);
        mac
    }

    /// The base64 signature of `content` by pod `uuid`.
    pub fn sign(&self, uuid: &str, content: &[u8]) -> String {
        base64_encode(&self.mac(uuid, content).finalize().into_bytes())
    }

    /// Whether `signature` (base64) is pod `uuid`'s signature of `content`.
    /// Compares in constant time.
    pub fn verify(&self, uuid: &str, content: &[u8], signature: &str) -> bool {
        match base64_decode(signature.trim()) {
            Some(sig) => self.mac(uuid, content).verify_slice(&sig).is_ok(),
            None => false,
        }
    }
}

/// Standard base64; decoding takes it with or without padding.
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Standard base64 with padding.
pub fn base64_encode(data: &[u8]) -> String {
    B64.encode(data)
}

/// Standard base64, padding optional; `None` when not base64.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    B64.decode(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for (raw, enc) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(raw), enc);
            assert_eq!(base64_decode(enc).unwrap(), raw);
        }
        assert!(base64_decode("Z").is_none());
        assert!(base64_decode("Zm9v!").is_none());
    }

    #[test]
    fn sign_and_verify() {
        let k = Key::from_bytes([7; KEY_LEN]);
        let s = k.sign("pod-a", b"hello");
        assert!(k.verify("pod-a", b"hello", &s));
        assert!(!k.verify("pod-b", b"hello", &s));
        assert!(!k.verify("pod-a", b"hellO", &s));
        assert!(!k.verify("pod-a", b"hello", "not base64!"));
        assert!(!Key::from_bytes([8; KEY_LEN]).verify("pod-a", b"hello", &s));
    }

    #[test]
    fn key_persists() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hmac.key");
        let a = Key::load_or_create(&p).unwrap();
        let b = Key::load_or_create(&p).unwrap();
        assert_eq!(a.0, b.0);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::write(&p, b"short").unwrap();
        assert!(matches!(
            Key::load_or_create(&p),
            Err(MetadataError::BadKey(_))
        ));
    }
}
