//! Network namespaces by path (`/var/run/netns/X`, `/proc/PID/ns/net`):
//! open one, and run a closure with this thread switched into it (the
//! thread is switched back afterwards, whatever the closure returned).

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};

use super::{NetlinkError, Result};

/// An open network namespace.
pub struct Netns {
    file: File,
    path: PathBuf,
}

impl Netns {
    /// Opens the namespace file at `path`. A file that is not a namespace
    /// (its creator died between creating the file and mounting the
    /// namespace on it) counts as no namespace at all: not found.
    pub fn open(path: &Path) -> Result<Self> {
        let err = |source| NetlinkError::Netns {
            path: path.display().to_string(),
            source,
        };
        let file = File::open(path).map_err(err)?;
        let fs = nix::sys::statfs::fstatfs(&file).map_err(|e| err(e.into()))?;
        if fs.filesystem_type() != nix::sys::statfs::NSFS_MAGIC {
            return Err(err(std::io::Error::from_raw_os_error(libc::ENOENT)));
        }
        Ok(Netns {
            file,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The fd, e.g. for IFLA_NET_NS_FD.
    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Runs `f` with the calling thread inside this namespace.
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        let io = |what: String| {
            move |e: nix::Error| NetlinkError::Io {
                what,
                source: std::io::Error::from(e),
            }
        };
        let home = File::open("/proc/thread-self/ns/net").map_err(|source| NetlinkError::Io {
            what: "open this thread's netns".into(),
            source,
        })?;
        setns(self.file.as_fd(), CloneFlags::CLONE_NEWNET)
            .map_err(io(format!("enter netns {}", self.path.display())))?;
        let out = f();
        // Going back must work: we hold the fd of the namespace we came from.
        setns(home.as_fd(), CloneFlags::CLONE_NEWNET)
            .map_err(io("return to the original netns".into()))?;
        Ok(out)
    }
}
