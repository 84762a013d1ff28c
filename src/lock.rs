//! Advisory locks on files (std's `File::lock`, `flock` on Linux): pod
//! locks, lease and masquerade state.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::Path;

/// A lock, released when dropped (or when the process dies).
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

impl FileLock {
    fn open(path: &Path) -> io::Result<File> {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
    }

    /// Blocks until the lock on an already opened file is ours (for
    /// callers that open the file their own way, e.g. without following
    /// symlinks).
    pub fn lock(file: File) -> io::Result<Self> {
        retry(|| file.lock())?;
        Ok(FileLock { _file: file })
    }

    /// Blocks until the lock is ours.
    pub fn acquire(path: &Path) -> io::Result<Self> {
        Self::lock(Self::open(path)?)
    }

    /// Blocks until we share the lock (with other shared holders only).
    pub fn acquire_shared(path: &Path) -> io::Result<Self> {
        let file = Self::open(path)?;
        retry(|| file.lock_shared())?;
        Ok(FileLock { _file: file })
    }

    /// Takes the lock if nobody holds it.
    pub fn try_acquire(path: &Path) -> io::Result<Option<Self>> {
        let file = Self::open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(FileLock { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }
}

/// A blocking lock interrupted by a signal (rkt run forwards signals to
/// the pod) is taken again, as before.
fn retry(mut f: impl FnMut() -> io::Result<()>) -> io::Result<()> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_and_drop_releases() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l");
        let held = FileLock::acquire(&p).unwrap();
        assert!(FileLock::try_acquire(&p).unwrap().is_none());
        drop(held);
        assert!(FileLock::try_acquire(&p).unwrap().is_some());
        let _a = FileLock::acquire_shared(&p).unwrap();
        let _b = FileLock::acquire_shared(&p).unwrap();
        assert!(FileLock::try_acquire(&p).unwrap().is_none());
    }
}
