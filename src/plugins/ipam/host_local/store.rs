//! The on-disk lease store, compatible with the reference host-local in both
//! directions: `<dataDir>/<network>/<ip>` holds `<container id>\r\n<ifname>`
//! (or, written by old versions, `<container id>` alone),
//! `last_reserved_ip.<range set>` the last address handed out, and every
//! change happens under an exclusive `flock` on `<dataDir>/<network>/lock`.
//!
//! Beside the leases, `.attach/<id>:<ifname>` lists the addresses an
//! attachment was given, so ADD's duplicate check and DEL find them without
//! reading every lease. It is only a hint: every address in it is checked
//! against its lease file, and a lease the reference wrote (without a hint)
//! is found by a scan when DEL has nothing better.
//!
//! Nothing in the directory is trusted to be what its name says: every
//! file is opened relative to the directory's descriptor with `O_NOFOLLOW`
//! (and `O_NONBLOCK`, checked to be a regular file, read up to a bound), so
//! a symlink, FIFO or device where a lease, `last_reserved_ip.N`, the lock
//! or a hint should be is never followed, written through or blocked on.
//! Such an entry is corrupt: replaced when it is ours to write, and a
//! lease whose file is corrupt (or whose content is not a container ID and
//! an interface name) is released by GC.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag, AT_FDCWD};
use nix::sys::stat::{fstat, mkdirat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

use crate::cni::skeleton::valid_ifname;
use crate::lock::FileLock;

/// Lease files are one line; anything longer is not one.
const MAX_LEASE: usize = 4096;
const HINTS: &str = ".attach";

/// A network's lease directory, locked while the value lives.
pub struct Store {
    dir: Dir,
    /// `.attach`, when it exists.
    hints: Option<Dir>,
    _lock: FileLock,
}

/// What a lease file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// `(container id, ifname)`; the ifname is empty in an old-style file.
    Attachment(String, String),
    /// Not a lease: a symlink or other non-file, too long, or content that
    /// is not `<container id>\r\n<ifname>` nor `<container id>`.
    Corrupt,
}

fn key(id: &str, ifname: &str) -> String {
    format!("{}\r\n{ifname}", id.trim())
}

/// Container IDs and interface names never contain ':' or '/'.
fn hint_name(id: &str, ifname: &str) -> String {
    format!("{}:{ifname}", id.trim())
}

/// A container ID as the CNI spec has it: an alphanumeric, then
/// alphanumerics, `_`, `.` and `-`.
fn valid_container_id(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Parses a lease file's content as the reference writes and reads it
/// (surrounding whitespace ignored).
fn parse_holder(data: &[u8]) -> Holder {
    let Ok(text) = std::str::from_utf8(data) else {
        return Holder::Corrupt;
    };
    let text = text.trim();
    let (id, ifname) = text.split_once("\r\n").unwrap_or((text, ""));
    let valid = match text.split_once("\r\n") {
        Some(_) => valid_container_id(id) && valid_ifname(ifname),
        None => valid_container_id(id),
    };
    if valid {
        Holder::Attachment(id.to_string(), ifname.to_string())
    } else {
        Holder::Corrupt
    }
}

fn errno(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// What reading a file of the directory found.
enum Content {
    Missing,
    /// Not a regular file (a symlink, FIFO, device, directory) or too long.
    Corrupt,
    Data(Vec<u8>),
}

/// A directory handle; every name given to it is one path component,
/// opened without following a symlink.
struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

impl Dir {
    fn raw(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn openat(&self, name: &str, flags: OFlag, mode: u32) -> Result<File, Errno> {
        let fd = openat(
            self.raw(),
            name,
            flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
            Mode::from_bits_truncate(mode),
        )?;
        Ok(File::from(fd))
    }

    /// Opens (or makes) the directory `path`; its last component must be
    /// a real directory, not a symlink to one.
    fn open(path: &Path, create: bool) -> io::Result<Dir> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let open = || openat(AT_FDCWD, path, flags, Mode::empty());
        let fd = match open() {
            Err(Errno::ENOENT) if create => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                match mkdirat(AT_FDCWD, path, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(errno(e)),
                }
                open()
            }
            other => other,
        };
        let fd = fd.map_err(|e| match e {
            Errno::ELOOP | Errno::ENOTDIR => io::Error::other(format!(
                "{} is not a directory (a symlink there is not followed); move it away",
                path.display()
            )),
            e => errno(e),
        })?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Opens (or makes) the subdirectory `name`, replacing whatever
    /// non-directory is in its place.
    fn subdir(&self, name: &str, create: bool) -> io::Result<Option<Dir>> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        for _ in 0..3 {
            match openat(self.raw(), name, flags, Mode::empty()) {
                Ok(fd) => {
                    return Ok(Some(Dir {
                        fd,
                        path: self.path.join(name),
                    }));
                }
                Err(Errno::ENOENT) if !create => return Ok(None),
                Err(Errno::ENOENT) => {}
                Err(Errno::ELOOP | Errno::ENOTDIR) if create => self.remove(name)?,
                Err(Errno::ELOOP | Errno::ENOTDIR) => return Ok(None),
                Err(e) => return Err(errno(e)),
            }
            match mkdirat(self.raw(), name, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(errno(e)),
            }
        }
        Err(io::Error::other(format!(
            "{}: cannot make it a directory",
            self.path.join(name).display()
        )))
    }

    /// Reads a file up to `limit` bytes.
    fn read(&self, name: &str, limit: usize) -> io::Result<Content> {
        let mut f = match self.openat(name, OFlag::O_RDONLY, 0) {
            Ok(f) => f,
            Err(Errno::ENOENT) => return Ok(Content::Missing),
            // A symlink (ELOOP), or a FIFO or socket that cannot be opened.
            Err(Errno::ELOOP | Errno::ENXIO | Errno::EISDIR) => return Ok(Content::Corrupt),
            Err(e) => return Err(errno(e)),
        };
        if !is_regular(&f) {
            return Ok(Content::Corrupt);
        }
        let mut data = Vec::new();
        (&mut f).take(limit as u64 + 1).read_to_end(&mut data)?;
        Ok(if data.len() > limit {
            Content::Corrupt
        } else {
            Content::Data(data)
        })
    }

    /// Opens `name` for writing with `flags`; whatever is in its place
    /// that is not a regular file is removed first (never written through).
    fn open_write(&self, name: &str, flags: OFlag) -> io::Result<File> {
        for _ in 0..3 {
            match self.openat(name, OFlag::O_WRONLY | OFlag::O_CREAT | flags, 0o644) {
                Ok(f) if is_regular(&f) => return Ok(f),
                Ok(_) | Err(Errno::ELOOP | Errno::ENXIO | Errno::EISDIR) => self.remove(name)?,
                Err(e) => return Err(errno(e)),
            }
        }
        Err(io::Error::other(format!(
            "{}: cannot replace it with a regular file",
            self.path.join(name).display()
        )))
    }

    /// Creates `name` with `data` unless something is there; false then.
    fn create_new(&self, name: &str, data: &[u8]) -> io::Result<bool> {
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL;
        let mut f = match self.openat(name, flags, 0o644) {
            Ok(f) => f,
            Err(Errno::EEXIST) => return Ok(false),
            Err(e) => return Err(errno(e)),
        };
        if let Err(e) = f.write_all(data) {
            drop(f);
            let _ = self.remove(name);
            return Err(e);
        }
        Ok(true)
    }

    /// Whether `name` exists as something other than a regular file.
    fn is_corrupt(&self, name: &str) -> bool {
        nix::sys::stat::fstatat(self.raw(), name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
            .is_ok_and(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG)
    }

    /// Removes `name` (a file, a symlink, an empty directory); a missing
    /// one is fine.
    fn remove(&self, name: &str) -> io::Result<()> {
        match unlinkat(self.raw(), name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(Errno::EISDIR) => match unlinkat(self.raw(), name, UnlinkatFlags::RemoveDir) {
                Ok(()) | Err(Errno::ENOENT) => Ok(()),
                Err(e) => Err(errno(e)),
            },
            Err(e) => Err(errno(e)),
        }
    }

    /// The names in the directory.
    fn names(&self) -> Vec<String> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let Ok(mut dir) = nix::dir::Dir::openat(self.raw(), ".", flags, Mode::empty()) else {
            return Vec::new();
        };
        dir.iter()
            .flatten()
            .filter_map(|e| e.file_name().to_str().ok().map(str::to_string))
            .filter(|n| n != "." && n != "..")
            .collect()
    }
}

fn is_regular(f: &File) -> bool {
    fstat(f).is_ok_and(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG)
}

impl Store {
    /// Opens (creating) `<data_dir>/<network>` and takes its lock.
    pub fn open(data_dir: &str, network: &str) -> io::Result<Self> {
        let dir = Dir::open(&Path::new(data_dir).join(network), true)?;
        let lock = FileLock::lock(dir.open_write("lock", OFlag::empty())?)?;
        let hints = dir.subdir(HINTS, false)?;
        Ok(Store {
            dir,
            hints,
            _lock: lock,
        })
    }

    /// Reserves `ip` for `id`/`ifname`; false when someone holds it.
    pub fn reserve(&self, id: &str, ifname: &str, ip: IpAddr, set: usize) -> io::Result<bool> {
        let name = ip.to_string();
        let mut created = self.dir.create_new(&name, key(id, ifname).as_bytes())?;
        if !created && self.dir.is_corrupt(&name) {
            // A symlink or other non-file where a lease should be: no lease.
            self.dir.remove(&name)?;
            created = self.dir.create_new(&name, key(id, ifname).as_bytes())?;
        }
        if !created {
            return Ok(false);
        }
        let mut last = self
            .dir
            .open_write(&format!("last_reserved_ip.{set}"), OFlag::O_TRUNC)?;
        last.write_all(name.as_bytes())?;
        let made;
        let hints = match &self.hints {
            Some(h) => h,
            None => {
                made = self.dir.subdir(HINTS, true)?;
                made.as_ref()
                    .ok_or_else(|| io::Error::other("cannot make the hint directory"))?
            }
        };
        let mut h = hints.open_write(&hint_name(id, ifname), OFlag::O_APPEND)?;
        writeln!(h, "{ip}")?;
        Ok(true)
    }

    /// The addresses the hint file lists that `id`/`ifname` really holds.
    pub fn hinted(&self, id: &str, ifname: &str) -> Vec<IpAddr> {
        let Some(hints) = &self.hints else {
            return Vec::new();
        };
        let Ok(Content::Data(data)) = hints.read(&hint_name(id, ifname), 64 * 1024) else {
            return Vec::new();
        };
        String::from_utf8_lossy(&data)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .filter(|ip| self.holds(*ip, id, ifname))
            .collect()
    }

    fn holds(&self, ip: IpAddr, id: &str, ifname: &str) -> bool {
        self.holder(ip)
            == Some(Holder::Attachment(
                id.trim().to_string(),
                ifname.to_string(),
            ))
    }

    fn forget_hint(&self, id: &str, ifname: &str) {
        if let Some(hints) = &self.hints {
            let _ = hints.remove(&hint_name(id, ifname));
        }
    }

    /// Removes the hints of attachments `keep` does not accept.
    pub fn prune_hints(&self, keep: impl Fn(&str, &str) -> bool) {
        let Some(hints) = &self.hints else {
            return;
        };
        for name in hints.names() {
            let stale = match name.split_once(':') {
                Some((id, ifname)) => !keep(id, ifname),
                None => true,
            };
            if stale {
                let _ = hints.remove(&name);
            }
        }
    }

    pub fn last_reserved(&self, set: usize) -> Option<IpAddr> {
        match self.dir.read(&format!("last_reserved_ip.{set}"), 64).ok()? {
            Content::Data(d) => std::str::from_utf8(&d).ok()?.trim().parse().ok(),
            _ => None,
        }
    }

    /// Who holds `ip`; `None` when nobody does.
    pub fn holder(&self, ip: IpAddr) -> Option<Holder> {
        match self.dir.read(&ip.to_string(), MAX_LEASE) {
            Ok(Content::Data(d)) => Some(parse_holder(&d)),
            Ok(Content::Corrupt) => Some(Holder::Corrupt),
            Ok(Content::Missing) | Err(_) => None,
        }
    }

    /// Every lease: the files named as an IP address, and who holds them.
    /// Other names (`lock`, `last_reserved_ip.N`, `.attach`, anything
    /// else) are not leases and never touched.
    pub fn leases(&self) -> Vec<(IpAddr, Holder)> {
        self.dir
            .names()
            .into_iter()
            .filter_map(|n| n.parse::<IpAddr>().ok())
            .filter_map(|ip| self.holder(ip).map(|h| (ip, h)))
            .collect()
    }

    /// The addresses `id`/`ifname` holds (an old-style lease: `id` alone).
    pub fn by_id(&self, id: &str, ifname: &str) -> Vec<IpAddr> {
        self.leases()
            .into_iter()
            .filter(|(_, h)| match h {
                Holder::Attachment(i, f) => i == id.trim() && (f == ifname || f.is_empty()),
                Holder::Corrupt => false,
            })
            .map(|(ip, _)| ip)
            .collect()
    }

    pub fn release(&self, ip: IpAddr) -> io::Result<()> {
        self.dir.remove(&ip.to_string())
    }

    /// Releases what `id`/`ifname` holds: the addresses `prev` (from
    /// prevResult) and the hint file name when they are really its, else
    /// whatever a scan finds.
    pub fn release_by_id(&self, id: &str, ifname: &str, prev: &[IpAddr]) -> io::Result<usize> {
        let mut held: Vec<IpAddr> = prev
            .iter()
            .copied()
            .filter(|ip| self.holds(*ip, id, ifname))
            .collect();
        held.extend(self.hinted(id, ifname));
        held.sort();
        held.dedup();
        if held.is_empty() {
            held = self.by_id(id, ifname);
        }
        for ip in &held {
            self.release(*ip)?;
        }
        self.forget_hint(id, ifname);
        Ok(held.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn lease_content() {
        let a = |id: &str, f: &str| Holder::Attachment(id.into(), f.into());
        assert_eq!(parse_holder(b"abc\r\neth0"), a("abc", "eth0"));
        assert_eq!(parse_holder(b"  abc\r\neth0\n"), a("abc", "eth0"));
        assert_eq!(parse_holder(b"abc"), a("abc", ""));
        // Whitespace around is trimmed, as the reference trims it.
        assert_eq!(parse_holder(b"abc\r\n"), a("abc", ""));
        assert_eq!(
            parse_holder(b"0b5e4c2e-1d8f.x_y"),
            a("0b5e4c2e-1d8f.x_y", "")
        );
        for bad in [
            &b""[..],
            b"abc\r\neth0\r\nmore",
            b"../x\r\neth0",
            b"abc\r\na/b",
            b"abc\r\n0123456789abcdef",
            b"a b",
            b"abc\neth0",
            b"\xff\xfe",
            b"-abc",
        ] {
            assert_eq!(parse_holder(bad), Holder::Corrupt, "{bad:?}");
        }
    }

    /// A store whose files cannot be trusted: no last reservation, the
    /// lease `corrupt` held by nobody known; then `c1` reserves `ip`.
    fn unreadable_until_reserved(store: &Store, corrupt: &str, ip: &str) {
        assert_eq!(store.last_reserved(0), None);
        assert_eq!(
            store.holder(corrupt.parse().unwrap()),
            Some(Holder::Corrupt)
        );
        assert!(store.reserve("c1", "eth0", ip.parse().unwrap(), 0).unwrap());
    }

    #[test]
    fn symlinks_in_the_directory_are_never_followed() {
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let canary = outside.join("canary");
        std::fs::write(&canary, "keep").unwrap();
        let net = d.path().join("data/n");
        std::fs::create_dir_all(&net).unwrap();
        for name in ["lock", "last_reserved_ip.0", "10.0.0.2", "10.0.0.3"] {
            symlink(&canary, net.join(name)).unwrap();
        }
        symlink(&outside, net.join(HINTS)).unwrap();
        let data = d.path().join("data");
        let store = Store::open(data.to_str().unwrap(), "n").unwrap();
        unreadable_until_reserved(&store, "10.0.0.3", "10.0.0.2");
        // The symlinked lease was replaced by ours; nothing written through.
        assert_eq!(std::fs::read_to_string(&canary).unwrap(), "keep");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
        for name in ["lock", "last_reserved_ip.0", "10.0.0.2", HINTS] {
            let t = std::fs::symlink_metadata(net.join(name))
                .unwrap()
                .file_type();
            assert!(!t.is_symlink(), "{name} is still a symlink");
        }
        assert_eq!(store.last_reserved(0), Some("10.0.0.2".parse().unwrap()));
        drop(store);
        let store = Store::open(data.to_str().unwrap(), "n").unwrap();
        assert_eq!(
            store.hinted("c1", "eth0"),
            vec!["10.0.0.2".parse::<IpAddr>().unwrap()]
        );
        let leases = store.leases();
        assert!(leases.contains(&("10.0.0.3".parse().unwrap(), Holder::Corrupt)));
        assert_eq!(store.release_by_id("c1", "eth0", &[]).unwrap(), 1);
        drop(store);
        // A symlinked network directory is refused, not followed.
        symlink(&outside, data.join("m")).unwrap();
        let e = Store::open(data.to_str().unwrap(), "m").err().unwrap();
        assert!(e.to_string().contains("not a directory"), "{e}");
    }

    #[test]
    fn a_fifo_is_neither_blocked_on_nor_written_to() {
        let d = tempfile::tempdir().unwrap();
        let net = d.path().join("n");
        std::fs::create_dir_all(&net).unwrap();
        for name in ["last_reserved_ip.0", "10.0.0.7"] {
            nix::unistd::mkfifo(&net.join(name), Mode::from_bits_truncate(0o644)).unwrap();
        }
        let store = Store::open(d.path().to_str().unwrap(), "n").unwrap();
        unreadable_until_reserved(&store, "10.0.0.7", "10.0.0.7");
        assert_eq!(store.last_reserved(0), Some("10.0.0.7".parse().unwrap()));
    }
}
