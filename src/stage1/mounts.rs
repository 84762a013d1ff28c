//! The pod's filesystem: overlayfs root, /proc, read-only /sys, a minimal
//! /dev, then pivot_root. Runs in the pod's first process, in its own mount
//! namespace, so nothing is mounted on the host and nothing can leak there.

use std::fs;
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{mknod, Mode, SFlag};
use nix::unistd;

use super::{overlay_data, PodSpec};

fn m(
    src: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), String> {
    mount(src, target, fstype, flags, data).map_err(|e| {
        format!(
            "cannot mount {} on {}: {e}",
            fstype.or(src).unwrap_or("?"),
            target.display()
        )
    })
}

fn dir(p: &Path) -> Result<(), String> {
    fs::create_dir_all(p).map_err(|e| format!("cannot create {}: {e}", p.display()))
}

pub fn setup_root(spec: &PodSpec) -> Result<(), String> {
    let none = None::<&str>;
    m(
        none,
        Path::new("/"),
        none,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        none,
    )?;
    let root = &spec.rootfs;
    m(
        Some("overlay"),
        root,
        Some("overlay"),
        MsFlags::empty(),
        Some(&overlay_data(spec)),
    )?;
    let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    dir(&root.join("proc"))?;
    m(Some("proc"), &root.join("proc"), Some("proc"), nosuid, none)?;
    dir(&root.join("sys"))?;
    m(
        Some("sysfs"),
        &root.join("sys"),
        Some("sysfs"),
        nosuid | MsFlags::MS_RDONLY,
        none,
    )?;
    let dev = root.join("dev");
    dir(&dev)?;
    m(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        let p = dev.join(name);
        mknod(
            &p,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(major, minor),
        )
        .map_err(|e| format!("cannot create {}: {e}", p.display()))?;
        // mknod honours the umask; devices must be usable by everyone.
        let _ = nix::sys::stat::fchmodat(
            None,
            &p,
            Mode::from_bits_truncate(0o666),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        );
    }
    dir(&dev.join("pts"))?;
    m(
        Some("devpts"),
        &dev.join("pts"),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )?;
    dir(&dev.join("shm"))?;
    m(
        Some("shm"),
        &dev.join("shm"),
        Some("tmpfs"),
        nosuid,
        Some("mode=1777,size=65536k"),
    )?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let _ = std::os::unix::fs::symlink(target, dev.join(link));
    }
    unistd::chdir(root).map_err(|e| format!("cannot enter {}: {e}", root.display()))?;
    nix::unistd::pivot_root(".", ".")
        .map_err(|e| format!("pivot_root into {}: {e}", root.display()))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| format!("cannot detach the host root: {e}"))?;
    unistd::chdir("/").map_err(|e| e.to_string())?;
    Ok(())
}
