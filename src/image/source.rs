//! Where an image's files are read from: a layout directory (every file
//! opened beneath it with openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, so a
//! blob that is a symlink, or a path through one, is refused) or an archive
//! (its member index). Paths an image names (manifest.json's `Config` and
//! `Layers`, blob paths) must be relative and stay inside it.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use super::archive::{self, Archive};
use super::in_root::{open_beneath, RelPath};

pub enum Source {
    Dir(OwnedFd),
    Archive(Archive),
}

/// One file of an image, opened.
pub struct Blob<'a> {
    pub reader: Box<dyn Read + 'a>,
    /// Names this version of the file (see [`archive::stamp`]).
    pub stamp: String,
}

/// Why a path an image names is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("\"{0}\" is an absolute path")]
    Absolute(String),
    #[error("\"{0}\" leaves the image (`..`)")]
    Leaves(String),
    #[error("\"{0}\" names no file")]
    NoFile(String),
}

/// A path named inside an image: relative, without `..`, not empty.
pub fn image_path(s: &str) -> Result<RelPath, PathError> {
    if s.starts_with('/') {
        return Err(PathError::Absolute(s.into()));
    }
    match RelPath::parse(s.as_bytes()) {
        None => Err(PathError::Leaves(s.into())),
        Some(p) if p.is_root() => Err(PathError::NoFile(s.into())),
        Some(p) => Ok(p),
    }
}

impl Source {
    pub fn dir(path: &Path) -> io::Result<Source> {
        Ok(Source::Dir(File::open(path)?.into()))
    }

    pub fn archive(path: &Path, tmp: &Path) -> io::Result<Source> {
        Ok(Source::Archive(Archive::open(path, tmp)?))
    }

    /// Whether the top-level `name` is there, whatever it is.
    pub fn has(&self, name: &str) -> bool {
        match self {
            Source::Dir(root) => {
                matches!(
                    super::in_root::kind_at(root.as_fd(), std::ffi::OsStr::new(name)),
                    Ok(Some(_))
                )
            }
            Source::Archive(a) => RelPath::parse(name.as_bytes()).is_some_and(|p| a.contains(&p)),
        }
    }

    pub fn open(&self, path: &RelPath) -> io::Result<Blob<'_>> {
        match self {
            Source::Dir(root) => {
                let file = File::from(open_beneath(root.as_fd(), path).map_err(|e| {
                    if e.raw_os_error() == Some(libc::ELOOP)
                        || e.raw_os_error() == Some(libc::EXDEV)
                    {
                        io::Error::new(
                            e.kind(),
                            format!("{path} is or goes through a symbolic link; refused"),
                        )
                    } else {
                        io::Error::new(e.kind(), format!("cannot open {path}: {e}"))
                    }
                })?);
                let meta = file.metadata()?;
                if !meta.is_file() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{path} is not a regular file; refused"),
                    ));
                }
                Ok(Blob {
                    stamp: archive::stamp(&meta),
                    reader: Box::new(file),
                })
            }
            Source::Archive(a) => {
                let (r, _, stamp) = a.open_member(path)?;
                Ok(Blob {
                    reader: Box::new(r),
                    stamp,
                })
            }
        }
    }

    /// The whole of a small file (a JSON document): an error past `max` bytes.
    pub fn read_small(&self, path: &RelPath, max: u64) -> io::Result<Vec<u8>> {
        let blob = self.open(path)?;
        let mut data = Vec::new();
        blob.reader.take(max + 1).read_to_end(&mut data)?;
        if data.len() as u64 > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{path} is larger than {} MiB; refused", max >> 20),
            ));
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_paths() {
        assert_eq!(
            image_path("./abc/layer.tar").unwrap().to_string(),
            "abc/layer.tar"
        );
        for bad in ["/etc/rkt/canary", "../x", "a/../../b", "", "./"] {
            assert!(image_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dir_blobs_never_through_symlinks() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("secret"), "host").unwrap();
        let root = t.path().join("layout");
        std::fs::create_dir_all(root.join("blobs/sha256")).unwrap();
        std::fs::write(root.join("blobs/sha256/ok"), "blob").unwrap();
        std::os::unix::fs::symlink(t.path().join("secret"), root.join("blobs/sha256/link"))
            .unwrap();
        std::os::unix::fs::symlink(t.path(), root.join("up")).unwrap();
        std::fs::create_dir(root.join("adir")).unwrap();
        let src = Source::dir(&root).unwrap();
        let p = |s: &str| image_path(s).unwrap();
        assert_eq!(src.read_small(&p("blobs/sha256/ok"), 10).unwrap(), b"blob");
        assert!(src.read_small(&p("blobs/sha256/ok"), 3).is_err());
        for refused in ["blobs/sha256/link", "up/secret", "adir"] {
            let e = src.open(&p(refused)).err().unwrap();
            assert!(e.to_string().contains("refused"), "{refused}: {e}");
        }
        assert!(src.has("blobs"));
        assert!(!src.has("nothing"));
    }
}
