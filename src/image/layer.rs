//! Unpacking layer tarballs (plain or gzip) into the layer cache, turning
//! OCI whiteouts into overlayfs ones.

use std::fs;
use std::io::{self, BufReader, Read};
use std::path::{Component, Path};

use flate2::read::GzDecoder;

/// Opens a tar that may be gzip-compressed.
pub fn open_maybe_gzip(path: &Path) -> io::Result<Box<dyn Read>> {
    let mut f = BufReader::new(fs::File::open(path)?);
    let magic = {
        use std::io::BufRead;
        let buf = f.fill_buf()?;
        buf.len() >= 2 && buf[0] == 0x1f && buf[1] == 0x8b
    };
    Ok(if magic {
        Box::new(GzDecoder::new(f))
    } else {
        Box::new(f)
    })
}

fn whiteout(dir: &Path, name: &str) -> io::Result<()> {
    let target = dir.join(name);
    let _ = fs::remove_file(&target);
    let _ = fs::remove_dir_all(&target);
    nix::sys::stat::mknod(
        &target,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::empty(),
        0,
    )?;
    Ok(())
}

fn opaque(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
    // SAFETY: valid NUL-terminated path, name and value buffers.
    let rc = unsafe {
        libc::setxattr(
            c.as_ptr(),
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

/// Unpacks one layer into `dest` (which must exist and be empty).
pub fn unpack(src: &Path, dest: &Path) -> io::Result<()> {
    let mut archive = tar::Archive::new(open_maybe_gzip(src)?);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        if path.components().any(|c| {
            matches!(
                c,
                Component::ParentDir | Component::RootDir | Component::Prefix(_)
            )
        }) {
            // tar's unpack_in refuses these too; skip instead of failing the image.
            continue;
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let parent = dest.join(path.parent().unwrap_or(Path::new("")));
        if name == ".wh..wh..opq" {
            opaque(&parent)?;
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            fs::create_dir_all(&parent)?;
            whiteout(&parent, hidden)?;
            continue;
        }
        entry.unpack_in(dest)?;
    }
    Ok(())
}
