//! Network namespaces, in one place for the runtime, the plugins, the dhcp
//! daemon and stage1: named ones under `/var/run/netns` (compatible with
//! `ip netns`), created and removed here; any one (`/var/run/netns/X`,
//! `/proc/PID/ns/net`) opened and entered through [`Netns`]. Entering
//! returns a guard that puts the thread back where it was, even when the
//! code inside panics.

use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

/// Where named namespaces live (`ip netns` uses the same directory).
pub const NETNS_DIR: &str = "/var/run/netns";

/// What every pod namespace's name starts with.
const POD_PREFIX: &str = "rkt-";

/// The name of the pod's namespace: `rkt-<uuid>`.
pub fn pod_name(uuid: &str) -> String {
    format!("{POD_PREFIX}{uuid}")
}

/// The pod uuid a namespace name belongs to, if it is a pod's.
pub fn pod_of(name: &str) -> Option<&str> {
    name.strip_prefix(POD_PREFIX)
}

/// What a namespace operation failed at, and why.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("cannot open netns {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot enter netns {}: {source}", path.display())]
    Enter { path: PathBuf, source: io::Error },
    #[error("cannot return to the original netns: {0}")]
    Return(io::Error),
    #[error("cannot create netns {}: {source}", path.display())]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot remove netns {}: {source}", path.display())]
    Remove { path: PathBuf, source: io::Error },
}

impl NetnsError {
    /// The underlying OS error.
    pub fn io(&self) -> &io::Error {
        match self {
            NetnsError::Open { source, .. }
            | NetnsError::Enter { source, .. }
            | NetnsError::Create { source, .. }
            | NetnsError::Remove { source, .. }
            | NetnsError::Return(source) => source,
        }
    }

    /// The namespace does not exist (or its file holds no namespace).
    pub fn is_not_found(&self) -> bool {
        self.io().kind() == io::ErrorKind::NotFound
    }
}

type Result<T> = std::result::Result<T, NetnsError>;

/// An open network namespace.
pub struct Netns {
    file: File,
    path: PathBuf,
}

/// The calling thread inside a namespace; dropping it (or [`Entered::leave`])
/// switches the thread back to the namespace it came from.
#[must_use = "the thread leaves the namespace when this is dropped"]
pub struct Entered {
    home: Option<File>,
}

impl Entered {
    /// Goes back, reporting a failure instead of aborting on it.
    pub fn leave(mut self) -> Result<()> {
        let home = self.home.take().expect("guard holds its home");
        setns(home.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| NetnsError::Return(e.into()))
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        if let Some(home) = self.home.take() {
            if let Err(e) = setns(home.as_fd(), CloneFlags::CLONE_NEWNET) {
                // A thread left in a pod's namespace would configure the
                // wrong network from here on: stop rather than go on.
                eprintln!("fatal: cannot return to the original netns: {e}");
                std::process::abort();
            }
        }
    }
}

impl Netns {
    /// Opens the namespace file at `path`. A file that is not a namespace
    /// (its creator died between creating the file and mounting the
    /// namespace on it) counts as no namespace at all: not found.
    pub fn open(path: &Path) -> Result<Self> {
        let err = |source| NetnsError::Open {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(err)?;
        let fs = nix::sys::statfs::fstatfs(&file).map_err(|e| err(e.into()))?;
        if fs.filesystem_type() != nix::sys::statfs::NSFS_MAGIC {
            return Err(err(io::Error::from_raw_os_error(libc::ENOENT)));
        }
        Ok(Netns {
            file,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The fd, e.g. for IFLA_NET_NS_FD or to hand to a child process.
    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Switches the calling thread into this namespace until the guard goes.
    pub fn enter(&self) -> Result<Entered> {
        let home = File::open("/proc/thread-self/ns/net").map_err(NetnsError::Return)?;
        self.enter_for_good()?;
        Ok(Entered { home: Some(home) })
    }

    /// Switches the calling thread into this namespace for the rest of its
    /// life (a thread that works only there, or a pod's init).
    pub fn enter_for_good(&self) -> Result<()> {
        join(self.file.as_fd()).map_err(|source| NetnsError::Enter {
            path: self.path.clone(),
            source,
        })
    }

    /// Runs `f` with the calling thread inside this namespace.
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        let entered = self.enter()?;
        let out = f();
        entered.leave()?;
        Ok(out)
    }

    /// Creates the named namespace under [`NETNS_DIR`] and returns its path.
    pub fn create(name: &str) -> Result<PathBuf> {
        let dir = Path::new(NETNS_DIR);
        let path = dir.join(name);
        let err = |source| NetnsError::Create {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(dir).map_err(err)?;
        ensure_shared(dir).map_err(err)?;
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(err)?;
        let target = path.clone();
        let made = std::thread::spawn(move || -> io::Result<()> {
            unshare(CloneFlags::CLONE_NEWNET)?;
            mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )?;
            Ok(())
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("netns thread panicked")));
        if let Err(e) = made {
            let _ = fs::remove_file(&path);
            return Err(err(e));
        }
        Ok(path)
    }

    /// Unmounts and removes a named namespace; gone already is fine. The
    /// kernel reaps its devices (and the host ends of their veths) in the
    /// background.
    pub fn remove(path: &Path) -> Result<()> {
        let err = |source| NetnsError::Remove {
            path: path.to_path_buf(),
            source,
        };
        match umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(err(e.into())),
        }
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(err(e)),
            _ => Ok(()),
        }
    }
}

/// Switches the calling thread into the network namespace behind `fd`.
pub fn join(fd: BorrowedFd<'_>) -> io::Result<()> {
    setns(fd, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
}

/// Makes `/var/run/netns` a shared mount point, as `ip netns add` does, so
/// namespaces mounted later show up in every mount namespace.
fn ensure_shared(dir: &Path) -> io::Result<()> {
    let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
    match mount(None::<&str>, dir, None::<&str>, shared, None::<&str>) {
        Ok(()) => Ok(()),
        Err(Errno::EINVAL) => {
            // Not a mount point yet: make it one, once, under a lock.
            fs::create_dir_all("/run/rkt")?;
            let _lock = crate::lock::FileLock::acquire(Path::new("/run/rkt/netns.lock"))?;
            if mount(None::<&str>, dir, None::<&str>, shared, None::<&str>).is_ok() {
                return Ok(());
            }
            mount(
                Some(dir),
                dir,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )?;
            mount(None::<&str>, dir, None::<&str>, shared, None::<&str>)?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_names_round_trip() {
        let n = pod_name("0f3c");
        assert_eq!(n, "rkt-0f3c");
        assert_eq!(pod_of(&n), Some("0f3c"));
        assert_eq!(pod_of("cni-1234"), None);
    }

    #[test]
    fn a_plain_file_is_no_namespace() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let e = Netns::open(f.path())
            .err()
            .expect("a plain file is refused");
        assert!(e.is_not_found(), "{e}");
    }

    /// Root only: enters a fresh namespace and comes back, also when the
    /// code inside panics.
    #[test]
    fn the_guard_returns_even_on_panic() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let ino = || {
            fs::metadata("/proc/thread-self/ns/net").map(|m| {
                use std::os::unix::fs::MetadataExt;
                m.ino()
            })
        };
        std::thread::spawn(move || {
            let home = ino().unwrap();
            // A namespace of our own, held by a thread's fd (nothing named).
            let (tx, rx) = std::sync::mpsc::channel();
            let holder = std::thread::spawn(move || {
                unshare(CloneFlags::CLONE_NEWNET).unwrap();
                let f = File::open("/proc/thread-self/ns/net").unwrap();
                tx.send(f).unwrap();
            });
            let file = rx.recv().unwrap();
            holder.join().unwrap();
            let ns = Netns {
                file,
                path: "test".into(),
            };
            let inside = ns.run(|| ino().unwrap()).unwrap();
            assert_ne!(inside, home);
            assert_eq!(ino().unwrap(), home);
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _g = ns.enter().unwrap();
                panic!("inside");
            }));
            assert!(caught.is_err());
            assert_eq!(ino().unwrap(), home, "the guard put the thread back");
        })
        .join()
        .unwrap();
    }
}
