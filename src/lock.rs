//! Advisory `flock` locks on files: pod locks, lease and masquerade state.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
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
        Self::flock(file, libc::LOCK_EX)
    }

    fn flock(file: File, op: libc::c_int) -> io::Result<Self> {
        loop {
            // SAFETY: flock on a file descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
                return Ok(FileLock { _file: file });
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Blocks until the lock is ours.
    pub fn acquire(path: &Path) -> io::Result<Self> {
        Self::flock(Self::open(path)?, libc::LOCK_EX)
    }

    /// Blocks until we share the lock (with other shared holders only).
    pub fn acquire_shared(path: &Path) -> io::Result<Self> {
        Self::flock(Self::open(path)?, libc::LOCK_SH)
    }

    /// Takes the lock if nobody holds it.
    pub fn try_acquire(path: &Path) -> io::Result<Option<Self>> {
        let file = Self::open(path)?;
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(Some(FileLock { _file: file }));
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            Ok(None)
        } else {
            Err(e)
        }
    }
}
