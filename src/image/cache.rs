//! The image cache `<dir>/cas`, root-only (0700: no other user reaches a
//! set-uid file of a layer through it):
//!
//! - `layers/sha256/<hex>/`: a layer unpacked, named by the digest of its
//!   uncompressed tar stream as computed while it was unpacked; written
//!   once (renamed into place from `tmp/`) and shared by every pod.
//! - `verified/<source>`: what a layer source was found to hold
//!   (`<diff id> <bytes>`), so a cached layer is used without reading its
//!   blob again. A source is a compressed blob digest (`blob-<hex>`: content
//!   addressed) or, for a `docker save` layer, one version of a file
//!   (`file-<hash of device, inode, size, ctime, mtime, member>`).
//! - `tmp/`: layers being unpacked (`layer-*.<pid>`, removed by `rkt gc`
//!   when the pid is gone) and unnamed decompressed archives.
//! - `empty/`: the root of an image without layers.

use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{renameat2, AtFlags, RenameFlags, AT_FDCWD};
use nix::unistd::linkat;

use super::digest::Sha256Digest;

/// Where a layer's bytes come from, as the cache remembers it.
#[derive(Debug, Clone)]
pub enum SourceKey {
    /// A compressed (or plain) layer blob, by its verified digest.
    Blob(Sha256Digest),
    /// One version of a file or archive member (see `archive::stamp`).
    Stamp(String),
}

impl SourceKey {
    fn file_name(&self) -> String {
        match self {
            SourceKey::Blob(d) => format!("blob-{}", d.hex()),
            SourceKey::Stamp(s) => format!("file-{}", Sha256Digest::of(s.as_bytes()).hex()),
        }
    }
}

pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// Opens `<dir>/cas`, creating it 0700 or making an existing one 0700.
    pub fn open(cas: &Path) -> io::Result<Cache> {
        match fs::symlink_metadata(cas) {
            Ok(m) if m.is_dir() => {
                if m.permissions().mode() & 0o7777 != 0o700 {
                    fs::set_permissions(cas, fs::Permissions::from_mode(0o700))?;
                }
            }
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} is not a directory", cas.display()),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(parent) = cas.parent() {
                    fs::create_dir_all(parent)?;
                }
                match fs::DirBuilder::new().mode(0o700).create(cas) {
                    Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                    _ => {}
                }
                // The umask may have taken bits off; nothing may add any.
                fs::set_permissions(cas, fs::Permissions::from_mode(0o700))?;
            }
            Err(e) => return Err(e),
        }
        Ok(Cache {
            root: cas.to_path_buf(),
        })
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn layer_dir(&self, diff: &Sha256Digest) -> PathBuf {
        self.root.join("layers/sha256").join(diff.hex())
    }

    /// The root of an image without layers.
    pub fn empty_dir(&self) -> io::Result<PathBuf> {
        let empty = self.root.join("empty");
        fs::create_dir_all(&empty)?;
        Ok(empty)
    }

    /// What `key` was found to hold: its diff id and uncompressed size.
    pub fn lookup(&self, key: &SourceKey) -> Option<(Sha256Digest, u64)> {
        let data = fs::read_to_string(self.root.join("verified").join(key.file_name())).ok()?;
        let (diff, size) = data.trim().split_once(' ')?;
        Some((Sha256Digest::parse(diff)?, size.parse().ok()?))
    }

    /// Remembers that `key` holds `diff` (`size` bytes uncompressed). The
    /// record appears whole or not at all (an unnamed file linked in).
    pub fn record(&self, key: &SourceKey, diff: &Sha256Digest, size: u64) -> io::Result<()> {
        let dir = self.root.join("verified");
        fs::create_dir_all(&dir)?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE)
            .open(&dir)?;
        writeln!(f, "{diff} {size}")?;
        let proc_path = format!("/proc/self/fd/{}", f.as_raw_fd());
        let name = dir.join(key.file_name());
        match linkat(
            AT_FDCWD,
            Path::new(&proc_path),
            AT_FDCWD,
            &name,
            AtFlags::AT_SYMLINK_FOLLOW,
        ) {
            // Another run recorded the same source first: a source holds
            // one content, so the record says the same.
            Ok(()) | Err(nix::errno::Errno::EEXIST) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// A new empty directory to unpack a layer into, removed when dropped
    /// unless committed.
    pub fn unpack_dir(&self) -> io::Result<UnpackDir> {
        let tmp = self.tmp_dir();
        fs::create_dir_all(&tmp)?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        // `<name>.<pid>`: what `rkt gc` recognises as a leftover once the
        // pid is gone.
        let path = tmp.join(format!("layer-{nanos}.{}", std::process::id()));
        fs::DirBuilder::new().mode(0o755).create(&path)?;
        let fd = fs::File::open(&path)?.into();
        Ok(UnpackDir {
            path,
            fd,
            committed: false,
        })
    }

    /// Moves an unpacked layer into place as `diff`; when another run put
    /// it there first, ours is removed and theirs used.
    pub fn commit(&self, dir: UnpackDir, diff: &Sha256Digest) -> io::Result<PathBuf> {
        let dest = self.layer_dir(diff);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut dir = dir;
        match renameat2(
            AT_FDCWD,
            &dir.path,
            AT_FDCWD,
            &dest,
            RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) => {
                dir.committed = true;
                Ok(dest)
            }
            Err(nix::errno::Errno::EEXIST) => Ok(dest),
            Err(e) => Err(e.into()),
        }
    }
}

/// A layer being unpacked in `cas/tmp`.
pub struct UnpackDir {
    path: PathBuf,
    fd: OwnedFd,
    committed: bool,
}

impl UnpackDir {
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for UnpackDir {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        // std's remove_dir_all never follows a symlink in the tree.
        let _ = fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_is_root_only_and_records_round_trip() {
        let t = tempfile::tempdir().unwrap();
        let cas = t.path().join("rkt/cas");
        let c = Cache::open(&cas).unwrap();
        assert_eq!(
            fs::metadata(&cas).unwrap().permissions().mode() & 0o7777,
            0o700
        );
        fs::set_permissions(&cas, fs::Permissions::from_mode(0o755)).unwrap();
        Cache::open(&cas).unwrap();
        assert_eq!(
            fs::metadata(&cas).unwrap().permissions().mode() & 0o7777,
            0o700
        );

        let d = Sha256Digest::of(b"x");
        let key = SourceKey::Stamp("1:2:3".into());
        assert!(c.lookup(&key).is_none());
        c.record(&key, &d, 42).unwrap();
        c.record(&key, &d, 42).unwrap();
        assert_eq!(c.lookup(&key), Some((d.clone(), 42)));
        assert!(c.lookup(&SourceKey::Blob(d.clone())).is_none());

        // An unpack directory goes away unless committed.
        let u = c.unpack_dir().unwrap();
        let p = u.path.clone();
        drop(u);
        assert!(!p.exists());
        let u = c.unpack_dir().unwrap();
        fs::write(u.path.join("f"), "1").unwrap();
        let dest = c.commit(u, &d).unwrap();
        assert!(dest.join("f").exists());
        // A second commit of the same layer keeps the first.
        let u = c.unpack_dir().unwrap();
        let p = u.path.clone();
        let again = c.commit(u, &d).unwrap();
        assert_eq!(again, dest);
        assert!(dest.join("f").exists());
        assert!(!p.exists());
        assert_eq!(fs::read_dir(c.tmp_dir()).unwrap().count(), 0);
    }
}
