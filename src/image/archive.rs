//! An image archive (OCI or `docker save` tar) read in place: an index of
//! its regular-file members (path -> offset, size), built from the headers
//! alone, and readers over those byte ranges of the archive file. Nothing
//! is extracted, so a member can never be a way out to a host file: a
//! symlink member, a directory or a device is refused as a blob, and a
//! hardlink member is the member it names. A gzip-compressed archive is
//! first decompressed into an unnamed root-only file in the cache
//! (O_TMPFILE, gone when closed).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::in_root::RelPath;

#[derive(Debug, Clone)]
enum Member {
    File {
        offset: u64,
        size: u64,
    },
    /// Present but not a regular file: what it is.
    Refused(&'static str),
}

/// An archive file and the members it holds.
pub struct Archive {
    file: File,
    members: HashMap<RelPath, Member>,
    /// What identifies this version of the archive file (see [`stamp`]).
    stamp: String,
}

/// Device, inode, size, change and modification times: changes whenever the
/// file's content can have changed (ctime cannot be set back).
pub fn stamp(meta: &std::fs::Metadata) -> String {
    format!(
        "{}:{}:{}:{}.{}:{}.{}",
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.ctime(),
        meta.ctime_nsec(),
        meta.mtime(),
        meta.mtime_nsec()
    )
}

impl Archive {
    /// Opens and indexes `path`; `tmp_dir` (root-only) holds the
    /// decompressed copy of a gzip-compressed archive.
    pub fn open(path: &Path, tmp_dir: &Path) -> io::Result<Archive> {
        let file = File::open(path)?;
        let stamp = stamp(&file.metadata()?);
        let mut probe = BufReader::new(&file);
        let gzip = probe.fill_buf()?.starts_with(&[0x1f, 0x8b]);
        let file = if gzip {
            std::fs::create_dir_all(tmp_dir)?;
            let mut out = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .mode(0o600)
                .custom_flags(libc::O_TMPFILE)
                .open(tmp_dir)?;
            (&file).rewind()?;
            io::copy(
                &mut flate2::read::MultiGzDecoder::new(BufReader::new(&file)),
                &mut out,
            )?;
            out
        } else {
            file
        };
        // The tar reader seeks relative to where the file is: the start.
        (&file).rewind()?;
        let members = index(&file)?;
        Ok(Archive {
            file,
            members,
            stamp,
        })
    }

    /// Whether `path` is a member, whatever it is.
    pub fn contains(&self, path: &RelPath) -> bool {
        self.members.contains_key(path)
    }

    /// A reader over member `path`, its size and a stamp naming this
    /// version of it.
    pub fn open_member(&self, path: &RelPath) -> io::Result<(MemberReader<'_>, u64, String)> {
        match self.members.get(path) {
            Some(Member::File { offset, size }) => Ok((
                MemberReader {
                    file: &self.file,
                    pos: *offset,
                    end: offset + size,
                },
                *size,
                format!("{}:{offset}:{size}", self.stamp),
            )),
            Some(Member::Refused(what)) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{path} is {what} in the archive, not a file; refused"),
            )),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{path} is not in the archive"),
            )),
        }
    }
}

/// Reads one member's bytes (positioned reads: members are independent).
pub struct MemberReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for MemberReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min((self.end - self.pos) as usize);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive is truncated",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Reads the headers (seeking over the data) into a member index.
fn index(file: &File) -> io::Result<HashMap<RelPath, Member>> {
    let mut members = HashMap::new();
    let mut ar = tar::Archive::new(file);
    for entry in ar.entries_with_seek()? {
        let entry = entry?;
        // Absolute or `..` names can never be asked for: leave them out.
        let Some(path) = RelPath::parse(&entry.path_bytes()) else {
            continue;
        };
        let kind = entry.header().entry_type();
        let member = match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => Member::File {
                offset: entry.raw_file_position(),
                size: entry.size(),
            },
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .and_then(|t| RelPath::parse(&t))
                    .and_then(|t| members.get(&t).cloned());
                match target {
                    Some(m @ Member::File { .. }) => m,
                    _ => Member::Refused("a hard link to no earlier file member"),
                }
            }
            tar::EntryType::Symlink => Member::Refused("a symbolic link"),
            tar::EntryType::Directory => Member::Refused("a directory"),
            tar::EntryType::GNUSparse => Member::Refused("a sparse file"),
            _ => Member::Refused("a special file"),
        };
        members.insert(path, member);
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h
    }

    fn build() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = header(tar::EntryType::Regular, 5);
        b.append_data(&mut h, "./dir/a.json", &b"hello"[..])
            .unwrap();
        let big = vec![7u8; 100_000];
        let mut h = header(tar::EntryType::Regular, big.len() as u64);
        b.append_data(&mut h, "big", &big[..]).unwrap();
        let mut h = header(tar::EntryType::Link, 0);
        b.append_link(&mut h, "hard", "dir/a.json").unwrap();
        let mut h = header(tar::EntryType::Symlink, 0);
        b.append_link(&mut h, "layer.tar", "/etc/rkt/canary/secret")
            .unwrap();
        let mut h = header(tar::EntryType::Link, 0);
        b.append_link(&mut h, "hardout", "/etc/passwd").unwrap();
        let mut h = header(tar::EntryType::Directory, 0);
        b.append_data(&mut h, "dir", &b""[..]).unwrap();
        b.into_inner().unwrap()
    }

    fn read(ar: &Archive, p: &str) -> io::Result<Vec<u8>> {
        let (mut r, size, _) = ar.open_member(&RelPath::parse(p.as_bytes()).unwrap())?;
        let mut v = Vec::new();
        r.read_to_end(&mut v)?;
        assert_eq!(v.len() as u64, size);
        Ok(v)
    }

    #[test]
    fn members_by_offset_links_resolved_symlinks_refused() {
        let t = tempfile::tempdir().unwrap();
        let plain = t.path().join("a.tar");
        std::fs::write(&plain, build()).unwrap();
        let gz = t.path().join("a.tar.gz");
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&build()).unwrap();
        std::fs::write(&gz, e.finish().unwrap()).unwrap();
        for path in [&plain, &gz] {
            let ar = Archive::open(path, &t.path().join("tmp")).unwrap();
            assert_eq!(read(&ar, "dir/a.json").unwrap(), b"hello");
            assert_eq!(read(&ar, "hard").unwrap(), b"hello");
            assert_eq!(read(&ar, "big").unwrap(), vec![7u8; 100_000]);
            for refused in ["layer.tar", "hardout", "dir"] {
                let e = read(&ar, refused).unwrap_err();
                assert!(e.to_string().contains("refused"), "{refused}: {e}");
            }
            assert!(read(&ar, "missing").is_err());
            assert!(ar.contains(&RelPath::parse(b"layer.tar").unwrap()));
            assert!(!ar.contains(&RelPath::parse(b"missing").unwrap()));
        }
        // Nothing was left in the temporary directory.
        assert_eq!(std::fs::read_dir(t.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn stamps_name_members_and_change_with_the_file() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("a.tar");
        std::fs::write(&p, build()).unwrap();
        let ar = Archive::open(&p, t.path()).unwrap();
        let s1 = ar.open_member(&RelPath::parse(b"big").unwrap()).unwrap().2;
        let s2 = ar
            .open_member(&RelPath::parse(b"dir/a.json").unwrap())
            .unwrap()
            .2;
        assert_ne!(s1, s2);
        std::fs::write(&p, build()).unwrap();
        let ar = Archive::open(&p, t.path()).unwrap();
        assert_ne!(
            ar.open_member(&RelPath::parse(b"big").unwrap()).unwrap().2,
            s1
        );
    }
}
