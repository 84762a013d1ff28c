//! Paths resolved inside a directory, never outside it: openat2 with
//! RESOLVE_IN_ROOT (a layer being unpacked: its own symlinks are followed as
//! if the layer were `/`, so `..` and absolute targets stay in it) or
//! RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS (an image layout: no symlink at all),
//! and the `*at` helpers that act on one name relative to a directory fd
//! without following a symlink in that name.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstatat, mkdirat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

/// A path relative to a root, as its components (none is empty, `.` or
/// `..`, none holds a `/`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RelPath(Vec<OsString>);

impl RelPath {
    /// Splits `raw` on `/`, dropping empty and `.` components (a leading
    /// `/` means the root). `None` when a component is `..`.
    pub fn parse(raw: &[u8]) -> Option<RelPath> {
        let mut out = Vec::new();
        for c in raw.split(|b| *b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => return None,
                c => out.push(OsStr::from_bytes(c).to_os_string()),
            }
        }
        Some(RelPath(out))
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The last component.
    pub fn name(&self) -> Option<&OsStr> {
        self.0.last().map(OsString::as_os_str)
    }

    /// Everything but the last component (the root for a top-level name).
    pub fn parent(&self) -> RelPath {
        RelPath(self.0[..self.0.len().saturating_sub(1)].to_vec())
    }

    /// The directories above the last component, top-most first (`a`,
    /// `a/b` for `a/b/c`).
    pub fn ancestors(&self) -> impl Iterator<Item = RelPath> + '_ {
        (1..self.0.len()).map(|n| self.prefix(n))
    }

    /// The first `n` components.
    fn prefix(&self, n: usize) -> RelPath {
        RelPath(self.0[..n].to_vec())
    }

    /// `a/b/c`, or `.` for the root.
    pub fn to_os_string(&self) -> OsString {
        if self.0.is_empty() {
            return ".".into();
        }
        let parts: Vec<&[u8]> = self.0.iter().map(|c| c.as_bytes()).collect();
        OsString::from_vec(parts.join(&b'/'))
    }
}

impl std::fmt::Display for RelPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.to_os_string().to_string_lossy())
    }
}

fn open2(
    root: BorrowedFd,
    path: &OsStr,
    flags: OFlag,
    resolve: ResolveFlag,
) -> io::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(resolve);
    // openat2 fails with EAGAIN when a rename elsewhere on the filesystem
    // races with a resolution that crosses `..`; retrying is what the man
    // page asks for.
    for _ in 0..16 {
        match openat2(root, path, how) {
            Err(Errno::EAGAIN) => continue,
            r => return r.map_err(io::Error::from),
        }
    }
    Err(io::Error::from(Errno::EAGAIN))
}

/// Opens `path` with `root` as `/`: `..` and symlinks (absolute or not)
/// never leave `root`.
pub fn open_in_root(root: BorrowedFd, path: &RelPath, flags: OFlag) -> io::Result<OwnedFd> {
    open2(
        root,
        &path.to_os_string(),
        flags,
        ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS,
    )
}

/// Opens `path` beneath `root` following no symlink at all (the last
/// component included), read-only and non-blocking (a FIFO cannot hang us).
pub fn open_beneath(root: BorrowedFd, path: &RelPath) -> io::Result<OwnedFd> {
    open2(
        root,
        &path.to_os_string(),
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK,
        ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS,
    )
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY.union(OFlag::O_DIRECTORY);

/// The directory `path` inside `root` (symlinks resolved in the root),
/// creating missing components (mode 0755) when `create` is set.
pub fn dir_in_root(root: BorrowedFd, path: &RelPath, create: bool) -> io::Result<OwnedFd> {
    match open_in_root(root, path, DIR_FLAGS) {
        Err(e) if create && e.raw_os_error() == Some(libc::ENOENT) => {}
        r => return r,
    }
    // Walk down from the root, creating what is missing one name at a time
    // in a directory that was itself resolved inside the root.
    let mut cur = open_in_root(root, &RelPath::default(), DIR_FLAGS)?;
    for (i, name) in path.0.iter().enumerate() {
        let prefix = path.prefix(i + 1);
        cur = match open_in_root(root, &prefix, DIR_FLAGS) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                match mkdirat(
                    cur.as_fd(),
                    name.as_os_str(),
                    Mode::from_bits_truncate(0o755),
                ) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                open_in_root(root, &prefix, DIR_FLAGS)?
            }
            r => r?,
        };
    }
    Ok(cur)
}

/// What `name` in `dir` is, without following a symlink; `None` if absent.
pub fn kind_at(dir: BorrowedFd, name: &OsStr) -> io::Result<Option<SFlag>> {
    match fstatat(dir.as_fd(), name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT))),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Removes `name` in `dir` whatever it is (a directory with everything in
/// it), following no symlink. Absent is fine.
pub fn remove_at(dir: BorrowedFd, name: &OsStr) -> io::Result<()> {
    match kind_at(dir, name)? {
        None => Ok(()),
        Some(SFlag::S_IFDIR) => {
            let fd = nix::fcntl::openat(
                dir.as_fd(),
                name,
                DIR_FLAGS | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            let mut d = nix::dir::Dir::from_fd(fd)?;
            let names: Vec<OsString> = d
                .iter()
                .filter_map(Result::ok)
                .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_os_string())
                .filter(|n| n != "." && n != "..")
                .collect();
            for n in &names {
                remove_at(d.as_fd(), n)?;
            }
            drop(d);
            unlinkat(dir.as_fd(), name, UnlinkatFlags::RemoveDir)?;
            Ok(())
        }
        Some(_) => match unlinkat(dir.as_fd(), name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(e.into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::symlink;

    fn rel(s: &str) -> RelPath {
        RelPath::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn relpath_parsing() {
        assert_eq!(rel("./a//b/./c/").to_os_string(), "a/b/c");
        assert_eq!(rel("/etc/passwd").to_os_string(), "etc/passwd");
        assert!(rel("./").is_root());
        assert_eq!(rel("./").to_os_string(), ".");
        assert!(RelPath::parse(b"a/../b").is_none());
        assert!(RelPath::parse(b"..").is_none());
        assert_eq!(rel("a/b").parent(), rel("a"));
        assert_eq!(rel("a/b").name(), Some(OsStr::new("b")));
        assert!(rel("a").parent().is_root());
    }

    /// A tree with an outside directory and a root whose symlinks aim out.
    fn setup() -> (tempfile::TempDir, fs::File) {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("outside/sub")).unwrap();
        fs::write(t.path().join("outside/sub/secret"), "host").unwrap();
        let root = t.path().join("root");
        fs::create_dir_all(root.join("inside/sub")).unwrap();
        fs::write(root.join("inside/sub/secret"), "layer").unwrap();
        let outside = t.path().join("outside");
        symlink(&outside, root.join("abs")).unwrap();
        symlink("../../../../../outside", root.join("rel")).unwrap();
        symlink(format!("{}/sub", outside.display()), root.join("abssub")).unwrap();
        let fd = fs::File::open(&root).unwrap();
        (t, fd)
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let (t, root) = setup();
        // `abs` -> <tmp>/outside: inside the root there is no such path.
        let e = open_in_root(root.as_fd(), &rel("abs/sub/secret"), OFlag::O_RDONLY).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        let e = open_in_root(root.as_fd(), &rel("rel/sub/secret"), OFlag::O_RDONLY).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        // A symlink to /inside resolves to the root's own /inside.
        symlink("/inside", t.path().join("root/toinside")).unwrap();
        let fd = open_in_root(root.as_fd(), &rel("toinside/sub/secret"), OFlag::O_RDONLY).unwrap();
        assert_eq!(
            fs::read_to_string(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap(),
            "layer"
        );
    }

    #[test]
    fn creating_through_a_symlink_stays_inside() {
        let (t, root) = setup();
        let outside = t.path().join("outside/sub");
        let inside = t
            .path()
            .join("root")
            .join(outside.strip_prefix("/").unwrap());
        // A symlink whose target is missing inside the root: refused, and
        // nothing made outside.
        assert!(dir_in_root(root.as_fd(), &rel("abssub/new"), true).is_err());
        assert!(dir_in_root(root.as_fd(), &rel("rel/x"), true).is_err());
        assert!(!t.path().join("outside/sub/new").exists());
        assert!(!t.path().join("outside/x").exists());
        // Once the targets exist inside the root, creation goes there.
        fs::create_dir_all(&inside).unwrap();
        fs::create_dir_all(t.path().join("root/outside")).unwrap();
        dir_in_root(root.as_fd(), &rel("abssub/new/deeper"), true).unwrap();
        dir_in_root(root.as_fd(), &rel("rel/x"), true).unwrap();
        assert!(inside.join("new/deeper").is_dir());
        assert!(t.path().join("root/outside/x").is_dir());
        assert!(
            !t.path().join("outside/sub/new").exists(),
            "created outside the root"
        );
        assert!(
            !t.path().join("outside/x").exists(),
            "created outside the root"
        );
        // Without `create`, a missing directory is an error.
        assert!(dir_in_root(root.as_fd(), &rel("nope/x"), false).is_err());
    }

    #[test]
    fn remove_at_never_follows() {
        let (t, root) = setup();
        remove_at(root.as_fd(), OsStr::new("abs")).unwrap();
        assert!(t.path().join("outside/sub/secret").exists());
        assert!(fs::symlink_metadata(t.path().join("root/abs")).is_err());
        // A directory holding a symlink to the outside: the tree goes, the
        // outside stays.
        symlink(
            t.path().join("outside"),
            t.path().join("root/inside/sub/link"),
        )
        .unwrap();
        remove_at(root.as_fd(), OsStr::new("inside")).unwrap();
        assert!(!t.path().join("root/inside").exists());
        assert!(t.path().join("outside/sub/secret").exists());
        remove_at(root.as_fd(), OsStr::new("absent")).unwrap();
        assert_eq!(
            kind_at(root.as_fd(), OsStr::new("rel")).unwrap(),
            Some(SFlag::S_IFLNK)
        );
    }

    #[test]
    fn beneath_refuses_every_symlink() {
        let (t, root) = setup();
        symlink("inside/sub/secret", t.path().join("root/link")).unwrap();
        for p in ["link", "abs/sub/secret", "rel"] {
            assert!(open_beneath(root.as_fd(), &rel(p)).is_err(), "{p}");
        }
        assert!(open_beneath(root.as_fd(), &rel("inside/sub/secret")).is_ok());
    }
}
