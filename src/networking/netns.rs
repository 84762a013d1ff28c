//! Named network namespaces under `/var/run/netns`, compatible with
//! `ip netns`: created by unsharing a thread and bind-mounting its namespace.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

pub const NETNS_DIR: &str = "/var/run/netns";

/// Makes `/var/run/netns` a shared mount point, as `ip netns add` does, so
/// namespaces mounted later show up in every mount namespace.
fn ensure_shared(dir: &Path) -> io::Result<()> {
    let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
    match mount(None::<&str>, dir, None::<&str>, shared, None::<&str>) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL) => {
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

/// Creates the named namespace and returns its path.
pub fn create(name: &str) -> io::Result<PathBuf> {
    let dir = Path::new(NETNS_DIR);
    fs::create_dir_all(dir)?;
    ensure_shared(dir)?;
    let path = dir.join(name);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
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
        return Err(e);
    }
    Ok(path)
}

/// Unmounts and removes a namespace; gone already is fine. The kernel reaps
/// its devices (and the host ends of their veths) in the background.
pub fn remove(path: &Path) -> io::Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(e.into()),
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
