//! The users and groups an image declares: `/etc/passwd` and `/etc/group`
//! read from its layers, top-most first, for `rkt run --user`/`--group`
//! names. Hostile until checked: no symlink is followed (a link there is
//! refused), a whiteout or an opaque directory above the file ends the
//! search, a file is read up to 1 MiB, and
//! malformed lines are skipped.

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;

use nix::fcntl::{open, OFlag};
use nix::sys::stat::{fstat, Mode, SFlag};

use super::in_root::{open_beneath, RelPath};
use super::layer::is_opaque;

const MAX: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error(
        "the image's /{0} is not a regular file (a symlink?); give a numeric id instead of a name"
    )]
    NotAFile(String),
    #[error("the image's /{0} is larger than 1 MiB")]
    TooLarge(String),
    #[error("cannot read the image's /{path} in {}: {source}", layer.display())]
    Read {
        path: String,
        layer: PathBuf,
        source: std::io::Error,
    },
}

/// One `/etc/passwd` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// One `/etc/group` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// `rel` (e.g. `etc/passwd`) as the image's merged root shows it; `None`
/// when no layer has it (or a whiteout hides it).
fn read(lowers: &[PathBuf], rel: &str) -> Result<Option<String>, UsersError> {
    let path = RelPath::parse(rel.as_bytes()).unwrap_or_default();
    for layer in lowers {
        let err = |source| UsersError::Read {
            path: rel.to_string(),
            layer: layer.clone(),
            source,
        };
        let root = open(
            layer.as_path(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| err(e.into()))?;
        let fd = match open_beneath(root.as_fd(), &path) {
            Ok(fd) => fd,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                if hides_lower_layers(root.as_fd(), &path) {
                    return Ok(None);
                }
                continue;
            }
            // A device node (an overlayfs whiteout is 0:0) cannot be
            // opened: deleted by this layer.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENXIO | libc::ENODEV)) => {
                return Ok(None)
            }
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(UsersError::NotAFile(rel.to_string()))
            }
            Err(e) => return Err(err(e)),
        };
        let st = fstat(&fd).map_err(|e| err(e.into()))?;
        match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
            SFlag::S_IFREG => {}
            // An overlayfs whiteout: deleted by this layer.
            SFlag::S_IFCHR => return Ok(None),
            _ => return Err(UsersError::NotAFile(rel.to_string())),
        }
        let mut text = String::new();
        std::fs::File::from(fd)
            .take(MAX + 1)
            .read_to_string(&mut text)
            .map_err(err)?;
        if text.len() as u64 > MAX {
            return Err(UsersError::TooLarge(rel.to_string()));
        }
        return Ok(Some(text));
    }
    Ok(None)
}

/// Whether a layer without `path` hides the lower layers' one: a
/// directory above it is opaque, or deleted (a whiteout device).
fn hides_lower_layers(root: BorrowedFd, path: &RelPath) -> bool {
    for dir in path.ancestors() {
        match open_beneath(root, &dir) {
            Ok(fd) => {
                let is_dir = fstat(&fd)
                    .map(|st| st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFDIR.bits())
                    .unwrap_or(false);
                if !is_dir || is_opaque(fd.as_fd()) {
                    return true;
                }
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENXIO | libc::ENODEV)) => return true,
            Err(_) => return false,
        }
    }
    false
}

/// The image's users (none when it has no `/etc/passwd`).
pub fn users(lowers: &[PathBuf]) -> Result<Vec<User>, UsersError> {
    Ok(read(lowers, "etc/passwd")?
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(User {
                name: f.first().filter(|n| !n.is_empty())?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
            })
        })
        .collect())
}

/// The image's groups (none when it has no `/etc/group`).
pub fn groups(lowers: &[PathBuf]) -> Result<Vec<Group>, UsersError> {
    Ok(read(lowers, "etc/group")?
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(Group {
                name: f.first().filter(|n| !n.is_empty())?.to_string(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_layers_win_whiteouts_hide_links_refused() {
        let t = tempfile::tempdir().unwrap();
        let (top, low) = (t.path().join("top"), t.path().join("low"));
        for d in [&top, &low] {
            std::fs::create_dir_all(d.join("etc")).unwrap();
        }
        std::fs::write(
            low.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nold:x:5:5::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            top.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nbad line\nweb:x:1000:1001::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            low.join("etc/group"),
            "root:x:0:\nweb:x:1001:\nstaff:x:50:web,other\n",
        )
        .unwrap();
        let lowers = vec![top.clone(), low.clone()];
        let u = users(&lowers).unwrap();
        assert_eq!(
            u.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(),
            ["root", "web"]
        );
        assert_eq!(
            u[1],
            User {
                name: "web".into(),
                uid: 1000,
                gid: 1001
            }
        );
        let g = groups(&lowers).unwrap();
        assert_eq!(g[2].members, ["web", "other"]);
        // A symlinked passwd is refused, not followed.
        std::fs::remove_file(top.join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", top.join("etc/passwd")).unwrap();
        assert!(matches!(users(&lowers), Err(UsersError::NotAFile(_))));
        // A whiteout (an overlayfs 0:0 character device) deletes it.
        nix::sys::stat::mknod(
            &top.join("etc/group"),
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o644),
            0,
        )
        .unwrap();
        assert!(groups(&lowers).unwrap().is_empty());
    }

    #[test]
    fn an_opaque_or_deleted_directory_hides_the_lower_layers_file() {
        let t = tempfile::tempdir().unwrap();
        let (top, low) = (t.path().join("top"), t.path().join("low"));
        std::fs::create_dir_all(top.join("etc")).unwrap();
        std::fs::create_dir_all(low.join("etc")).unwrap();
        std::fs::write(low.join("etc/passwd"), "old:x:5:5::/:/bin/sh\n").unwrap();
        let lowers = vec![top.clone(), low.clone()];
        assert_eq!(users(&lowers).unwrap().len(), 1, "seen through a plain dir");
        let etc = std::fs::File::open(top.join("etc")).unwrap();
        // SAFETY: a valid fd, NUL-terminated name, a 1-byte value.
        let rc = unsafe {
            libc::fsetxattr(
                std::os::fd::AsRawFd::as_raw_fd(&etc),
                c"trusted.overlay.opaque".as_ptr(),
                b"y".as_ptr().cast(),
                1,
                0,
            )
        };
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
        assert!(
            users(&lowers).unwrap().is_empty(),
            "hidden by an opaque etc"
        );
        // The opaque layer's own file is still read.
        std::fs::write(top.join("etc/passwd"), "web:x:7:7::/:/bin/sh\n").unwrap();
        assert_eq!(users(&lowers).unwrap()[0].name, "web");
        // etc itself deleted by the top layer (a whiteout device).
        std::fs::remove_file(top.join("etc/passwd")).unwrap();
        std::fs::remove_dir(top.join("etc")).unwrap();
        nix::sys::stat::mknod(
            &top.join("etc"),
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o644),
            0,
        )
        .unwrap();
        assert!(
            users(&lowers).unwrap().is_empty(),
            "hidden by a deleted etc"
        );
    }
}
