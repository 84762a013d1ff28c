//! Unpacking one layer's tar stream into its (empty, private) directory,
//! turning OCI whiteouts into overlayfs ones. Every entry's parent is
//! opened with the layer directory as `/` (openat2 RESOLVE_IN_ROOT, see
//! `in_root`), then the entry is made with `*at` calls on its own name,
//! never following a symlink there: a symlink an earlier entry planted can
//! redirect an entry only to somewhere else inside the same layer. Modes
//! (set-uid bits included), owners, mtimes, symlinks, hardlinks, FIFOs,
//! whiteouts and opaque directories are kept; devices are not.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;

use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{
    fchmod, fchmodat, futimens, makedev, mkdirat, mknodat, utimensat, FchmodatFlags, Mode, SFlag,
    UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, Gid, Uid};

use super::digest::Budget;
use super::in_root::{dir_in_root, kind_at, open_in_root, remove_at, RelPath};

/// What a tar header says about an entry's metadata.
#[derive(Debug, Clone, Copy)]
struct Meta {
    mode: u32,
    uid: Uid,
    gid: Gid,
    mtime: i64,
}

impl Meta {
    fn of(h: &tar::Header) -> io::Result<Meta> {
        let id = |v: u64| {
            u32::try_from(v)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "owner id out of range"))
        };
        Ok(Meta {
            mode: h.mode()? & 0o7777,
            uid: Uid::from_raw(id(h.uid()?)?),
            gid: Gid::from_raw(id(h.gid()?)?),
            mtime: i64::try_from(h.mtime()?).unwrap_or(i64::MAX),
        })
    }

    fn mode(&self) -> Mode {
        Mode::from_bits_truncate(self.mode as libc::mode_t)
    }

    fn time(&self) -> TimeSpec {
        TimeSpec::new(self.mtime, 0)
    }
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Unpacks the tar stream `stream` into the directory `root`, charging
/// bytes a sparse entry expands to beyond the stream itself to `budget`.
/// Reads the stream up to the tar's end marker (the caller drains the rest).
pub fn unpack<R: Read>(stream: R, root: BorrowedFd, budget: &Budget) -> io::Result<()> {
    let mut archive = tar::Archive::new(stream);
    // Directory metadata is applied last: entries created inside a
    // directory change its mtime.
    let mut dirs: Vec<(RelPath, Meta)> = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = entry.path_bytes().into_owned();
        let Some(path) = RelPath::parse(&raw) else {
            tracing::debug!(
                "layer entry {} has a `..` component; skipped",
                String::from_utf8_lossy(&raw)
            );
            continue;
        };
        apply(&mut entry, &raw, &path, root, budget, &mut dirs)
            .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
    }
    for (path, meta) in &dirs {
        let dir = match open_in_root(
            root,
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
        ) {
            Ok(d) => d,
            // Replaced or whited out by a later entry.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)
                ) =>
            {
                continue
            }
            Err(e) => return Err(io::Error::new(e.kind(), format!("{path}: {e}"))),
        };
        fchown(&dir, Some(meta.uid), Some(meta.gid))?;
        fchmod(&dir, meta.mode())?;
        futimens(&dir, &meta.time(), &meta.time())?;
    }
    Ok(())
}

fn apply<R: Read>(
    entry: &mut tar::Entry<R>,
    raw: &[u8],
    path: &RelPath,
    root: BorrowedFd,
    budget: &Budget,
    dirs: &mut Vec<(RelPath, Meta)>,
) -> io::Result<()> {
    use tar::EntryType as T;
    let kind = entry.header().entry_type();
    let Some(name) = path.name() else {
        // `./`: the layer's root directory itself.
        if kind.is_dir() {
            dirs.push((path.clone(), Meta::of(entry.header())?));
        }
        return Ok(());
    };
    let parent = path.parent();
    if name.as_bytes() == b".wh..wh..opq" {
        let dir = dir_in_root(root, &parent, true)?;
        return set_opaque(dir.as_fd());
    }
    if name.as_bytes().starts_with(b".wh..wh.") {
        // aufs bookkeeping (`.wh..wh.plnk` and the like), not content.
        return Ok(());
    }
    if let Some(hidden) = name.as_bytes().strip_prefix(b".wh.") {
        if matches!(hidden, b"" | b"." | b"..") {
            return Err(bad("whiteout of no name"));
        }
        let hidden = std::ffi::OsStr::from_bytes(hidden);
        let dir = dir_in_root(root, &parent, true)?;
        remove_at(dir.as_fd(), hidden)?;
        // overlayfs's whiteout: a 0:0 character device.
        mknodat(
            dir.as_fd(),
            hidden,
            SFlag::S_IFCHR,
            Mode::empty(),
            makedev(0, 0),
        )?;
        return Ok(());
    }
    match kind {
        T::Regular
        | T::Continuous
        | T::GNUSparse
        | T::Directory
        | T::Symlink
        | T::Link
        | T::Fifo => {}
        // Devices are never made: a pod could not open one anyway (its
        // root is mounted nodev and its /dev is stage1's own), and a device
        // node in the cache is one more thing for the host to guard.
        T::Char | T::Block => {
            tracing::debug!("layer entry {path} is a device node; skipped");
            return Ok(());
        }
        // Metadata records (the tar parser applied the per-file ones) and
        // anything unknown.
        _ => return Ok(()),
    }
    let meta = Meta::of(entry.header())?;
    let dir = dir_in_root(root, &parent, true)?;
    let dfd = dir.as_fd();
    match kind {
        // Old tars mark a directory with a trailing slash on a file entry.
        T::Regular if raw.ends_with(b"/") => make_dir(dir.as_fd(), name, path, meta, dirs),
        T::Directory => make_dir(dir.as_fd(), name, path, meta, dirs),
        T::Regular | T::Continuous | T::GNUSparse => {
            remove_at(dir.as_fd(), name)?;
            let fd = openat(
                dfd,
                name,
                OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_WRONLY
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )?;
            let mut file = File::from(fd);
            let written = io::copy(entry, &mut file)?;
            // A sparse entry writes more than the stream holds; those bytes
            // count towards the image's size too.
            let stored = entry.header().entry_size()?;
            if written > stored {
                budget.charge(written - stored)?;
            }
            // Owner before mode: chown clears the set-uid bits.
            fchown(&file, Some(meta.uid), Some(meta.gid))?;
            fchmod(&file, meta.mode())?;
            futimens(&file, &meta.time(), &meta.time())?;
            Ok(())
        }
        T::Symlink => {
            let target = entry
                .link_name_bytes()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| bad("symbolic link without a target"))?;
            remove_at(dir.as_fd(), name)?;
            symlinkat(std::ffi::OsStr::from_bytes(&target), dfd, name)?;
            finish_at(dfd, name, &meta, false)
        }
        T::Link => {
            let target = entry
                .link_name_bytes()
                .and_then(|t| RelPath::parse(&t))
                .filter(|t| !t.is_root())
                .ok_or_else(|| bad("hard link to nothing in the layer"))?;
            if target == *path {
                return Ok(());
            }
            let tname = target.name().unwrap_or_default();
            // The target's directory, resolved inside the layer; its last
            // name is linked as it is (a symlink is linked, not followed).
            let tdir = dir_in_root(root, &target.parent(), false)
                .map_err(|e| bad(format!("hard link target {target}: {e}")))?;
            remove_at(dir.as_fd(), name)?;
            linkat(tdir.as_fd(), tname, dfd, name, AtFlags::empty())
                .map_err(|e| bad(format!("hard link to {target}: {e}")))?;
            Ok(())
        }
        T::Fifo => {
            remove_at(dir.as_fd(), name)?;
            mknodat(
                dfd,
                name,
                SFlag::S_IFIFO,
                Mode::from_bits_truncate(0o600),
                0,
            )?;
            finish_at(dfd, name, &meta, true)
        }
        // Kinds filtered out above.
        _ => Ok(()),
    }
}

/// Owner, then (`with_mode`) mode, then times of the entry `name` just made
/// in `dfd`, in that order (a chown clears set-id bits). Never follows a
/// symlink: the mode is only set on what was just made here, in our private
/// directory, where nothing can have swapped a symlink in.
fn finish_at(
    dfd: BorrowedFd,
    name: &std::ffi::OsStr,
    meta: &Meta,
    with_mode: bool,
) -> io::Result<()> {
    fchownat(
        dfd,
        name,
        Some(meta.uid),
        Some(meta.gid),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )?;
    if with_mode {
        fchmodat(dfd, name, meta.mode(), FchmodatFlags::FollowSymlink)?;
    }
    utimensat(
        dfd,
        name,
        &meta.time(),
        &meta.time(),
        UtimensatFlags::NoFollowSymlink,
    )?;
    Ok(())
}

fn make_dir(
    dir: BorrowedFd,
    name: &std::ffi::OsStr,
    path: &RelPath,
    meta: Meta,
    dirs: &mut Vec<(RelPath, Meta)>,
) -> io::Result<()> {
    match kind_at(dir, name)? {
        Some(SFlag::S_IFDIR) => {}
        Some(_) => {
            remove_at(dir, name)?;
            mkdirat(dir.as_fd(), name, Mode::from_bits_truncate(0o700))?;
        }
        None => mkdirat(dir.as_fd(), name, Mode::from_bits_truncate(0o700))?,
    }
    dirs.push((path.clone(), meta));
    Ok(())
}

/// Whether a layer's directory is opaque for overlayfs (it hides the lower
/// layers' one): `trusted.overlay.opaque` is `y`.
pub fn is_opaque(dir: BorrowedFd) -> bool {
    let mut value = [0u8; 2];
    // SAFETY: a valid fd, NUL-terminated name, and a buffer of the length
    // given.
    let n = unsafe {
        libc::fgetxattr(
            dir.as_raw_fd(),
            c"trusted.overlay.opaque".as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    n == 1 && value[0] == b'y'
}

/// Marks a directory opaque for overlayfs (it hides the lower layers' one).
fn set_opaque(dir: BorrowedFd) -> io::Result<()> {
    // SAFETY: a valid fd, NUL-terminated name and a 1-byte value buffer.
    let rc = unsafe {
        libc::fsetxattr(
            dir.as_raw_fd(),
            c"trusted.overlay.opaque".as_ptr(),
            b"y".as_ptr().cast(),
            1,
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
