//! The pod's filesystem: the overlayfs root, a minimal `/dev`, `/proc` and a
//! read-only `/sys`, then pivot_root. Runs in the pod's first process, in
//! its own mount namespace, so nothing is mounted on the host.
//!
//! Devices: every mount is `nodev` but the device nodes of `/dev`, which
//! are bind mounts of the host's own null, zero, full, random, urandom and
//! tty (plus the pod's private devpts). A device node the app creates or
//! that an image carries cannot be opened anywhere, so CAP_MKNOD reaches
//! no host device. The kernel's knobs: `/proc/sys`, `/proc/sysrq-trigger`
//! and friends are read-only, and `/proc/kcore`, `/proc/keys`,
//! `/sys/firmware`... are masked, as Docker and Podman do by default
//! (`--insecure-options=paths` turns that off).

use std::fs;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use super::Stage1Error;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd;

use super::{overlay_data, PodSpec};

/// Mounted on themselves read-only.
const READ_ONLY: &[&str] = &[
    "proc/bus",
    "proc/fs",
    "proc/irq",
    "proc/sys",
    "proc/sysrq-trigger",
];

/// Hidden: files get `/dev/null` over them, directories an empty
/// read-only tmpfs. Paths this kernel does not have are skipped.
const MASKED: &[&str] = &[
    "proc/acpi",
    "proc/asound",
    "proc/interrupts",
    "proc/kcore",
    "proc/keys",
    "proc/latency_stats",
    "proc/sched_debug",
    "proc/scsi",
    "proc/timer_list",
    "proc/timer_stats",
    "sys/devices/virtual/powercap",
    "sys/firmware",
    "sys/fs/selinux",
];

/// The host device nodes bound into the pod's `/dev`.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// nosuid, nodev, noexec: every pseudo filesystem but devpts gets all three.
const LOCKED: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

fn m(
    src: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), Stage1Error> {
    mount(src, target, fstype, flags, data).map_err(|errno| Stage1Error::Mount {
        what: fstype
            .map(str::to_string)
            .or_else(|| src.map(|s| s.display().to_string()))
            .unwrap_or_else(|| "?".into()),
        target: target.to_path_buf(),
        errno,
    })
}

fn fs_mount(
    fstype: &str,
    target: &Path,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), Stage1Error> {
    m(Some(Path::new(fstype)), target, Some(fstype), flags, data)
}

fn dir(p: &Path) -> Result<(), Stage1Error> {
    fs::create_dir_all(p).map_err(|source| Stage1Error::Create {
        path: p.to_path_buf(),
        source,
    })
}

fn dev(root: &Path) -> Result<(), Stage1Error> {
    let dev = root.join("dev");
    dir(&dev)?;
    fs_mount(
        "tmpfs",
        &dev,
        LOCKED | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    for name in DEVICES {
        let target = dev.join(name);
        fs::File::create(&target).map_err(|source| Stage1Error::Create {
            path: target.clone(),
            source,
        })?;
        m(
            Some(&Path::new("/dev").join(name)),
            &target,
            None,
            MsFlags::MS_BIND,
            None,
        )?;
    }
    dir(&dev.join("pts"))?;
    fs_mount(
        "devpts",
        &dev.join("pts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )?;
    dir(&dev.join("shm"))?;
    fs_mount(
        "tmpfs",
        &dev.join("shm"),
        LOCKED,
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
    Ok(())
}

/// Mounts `path` on itself read-only; a path this kernel lacks is skipped.
fn read_only(path: &Path) -> Result<(), Stage1Error> {
    match mount(
        Some(path),
        path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    ) {
        Err(Errno::ENOENT) => return Ok(()),
        r => r.map_err(|errno| Stage1Error::Bind {
            path: path.to_path_buf(),
            errno,
        })?,
    }
    m(
        None,
        path,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | LOCKED,
        None,
    )
}

/// Hides `path` (see [`MASKED`]).
fn mask(root: &Path, path: &Path) -> Result<(), Stage1Error> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(_) => return Ok(()),
    };
    let r = if meta.is_dir() {
        mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            LOCKED | MsFlags::MS_RDONLY,
            Some("size=0,mode=555"),
        )
    } else {
        mount(
            Some(&root.join("dev/null")),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    };
    match r {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(errno) => Err(Stage1Error::Mask {
            path: path.to_path_buf(),
            errno,
        }),
    }
}

fn proc_and_sys(spec: &PodSpec) -> Result<(), Stage1Error> {
    let root = &spec.rootfs;
    let proc = root.join("proc");
    dir(&proc)?;
    fs_mount("proc", &proc, LOCKED, None)?;
    // The pod's own settings, written through its own /proc while this
    // process is in the pod's namespaces and before /proc/sys turns read-only.
    for s in &spec.sysctls {
        let p = s.path(&proc);
        fs::write(&p, &s.value).map_err(|source| Stage1Error::SysctlWrite {
            key: s.key.clone(),
            value: s.value.clone(),
            path: s.path(Path::new("/proc")),
            source,
        })?;
    }
    let sys = root.join("sys");
    dir(&sys)?;
    fs_mount("sysfs", &sys, LOCKED | MsFlags::MS_RDONLY, None)?;
    if spec.mask_paths {
        for p in READ_ONLY {
            read_only(&root.join(p))?;
        }
        for p in MASKED {
            mask(root, &root.join(p))?;
        }
    }
    Ok(())
}

/// Binds the volumes into the root. Each target is resolved inside the
/// root (openat2 `RESOLVE_IN_ROOT`: a symlink in the image cannot send a
/// mount outside it) and created when missing, as a directory, or as a
/// file for a file volume; the bind goes onto the opened target (its
/// `/proc/self/fd` path), then is remounted nodev (and read-only for
/// `readOnly`), as every mount of the pod but its `/dev` is.
fn volumes(spec: &PodSpec) -> Result<(), Stage1Error> {
    use crate::image::in_root::{dir_in_root, open_in_root, RelPath};
    use nix::fcntl::OFlag;
    use std::os::fd::{AsFd, AsRawFd};
    if spec.mounts.is_empty() {
        return Ok(());
    }
    let root = nix::fcntl::open(
        &spec.rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|errno| Stage1Error::Volume {
        target: "/".into(),
        what: "open the pod's root",
        source: errno.into(),
    })?;
    for b in &spec.mounts {
        let fail = |what: &'static str| {
            let target = b.target.clone();
            move |source: std::io::Error| Stage1Error::Volume {
                target,
                what,
                source,
            }
        };
        let rel = RelPath::parse(b.target.trim_start_matches('/').as_bytes())
            .ok_or_else(|| fail("resolve the target")(std::io::ErrorKind::InvalidInput.into()))?;
        let is_dir = fs::metadata(&b.source)
            .map_err(fail("read the volume's source"))?
            .is_dir();
        let fd = if is_dir {
            dir_in_root(root.as_fd(), &rel, true).map_err(fail("make the target directory"))?
        } else {
            dir_in_root(root.as_fd(), &rel.parent(), true)
                .map_err(fail("make the target's directory"))?;
            open_in_root(
                root.as_fd(),
                &rel,
                OFlag::O_RDONLY | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            )
            .map_err(fail("make the target file"))?
        };
        let at = PathBuf::from(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()));
        let mut flags = MsFlags::MS_BIND;
        if b.recursive {
            flags |= MsFlags::MS_REC;
        }
        mount(Some(&b.source), &at, None::<&str>, flags, None::<&str>)
            .map_err(|e| fail("bind the volume")(e.into()))?;
        // The new mount sits on the target's path (inside the root, as
        // resolved above): remount it there.
        let path = fs::read_link(&at).map_err(fail("find the target"))?;
        let mut flags =
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NODEV | MsFlags::MS_NOSUID;
        if b.read_only {
            flags |= MsFlags::MS_RDONLY;
        }
        mount(None::<&str>, &path, None::<&str>, flags, None::<&str>)
            .map_err(|e| fail("remount the volume nodev/read-only")(e.into()))?;
    }
    Ok(())
}

pub fn setup_root(spec: &PodSpec) -> Result<(), Stage1Error> {
    m(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )?;
    let root = &spec.rootfs;
    m(
        Some(Path::new("overlay")),
        root,
        Some("overlay"),
        MsFlags::MS_NODEV,
        Some(&overlay_data(spec)),
    )?;
    volumes(spec)?;
    dev(root)?;
    proc_and_sys(spec)?;
    unistd::chdir(root).map_err(|errno| Stage1Error::Chdir {
        path: root.clone(),
        errno,
    })?;
    nix::unistd::pivot_root(".", ".").map_err(|errno| Stage1Error::PivotRoot {
        path: root.clone(),
        errno,
    })?;
    umount2(".", MntFlags::MNT_DETACH).map_err(Stage1Error::DetachRoot)?;
    unistd::chdir("/").map_err(|errno| Stage1Error::Chdir {
        path: "/".into(),
        errno,
    })?;
    if spec.readonly_rootfs {
        // The root only: /dev, /proc and the volumes keep their own flags.
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NODEV,
            None::<&str>,
        )
        .map_err(Stage1Error::ReadOnlyRoot)?;
    }
    Ok(())
}
