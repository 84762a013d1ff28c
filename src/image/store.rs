//! The images `rkt` has imported into `<dir>/cas`, for `rkt image list`,
//! `rm` and `gc`: one record per image, `images/<id hex>.json` (its name,
//! layers, size, first import time), written when an OCI or docker image
//! is loaded (a root filesystem directory is the user's own, not stored).
//! A layer no record names is garbage for `rkt image gc`, which also
//! forgets what `verified/` remembers of it.
//!
//! `<dir>/cas/lock` keeps the two apart: an import holds it shared
//! ([`lease`]) from its first layer until its pod's directory exists (the
//! layers are recorded then, and the pod names the image), `rkt image gc`
//! and `rkt image rm` hold it exclusively ([`exclusive`]), so neither
//! removes what a pod being started is about to mount.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::in_root::remove_at;
use crate::lock::FileLock;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// `sha256:<hex>`, as pods record it.
    pub id: String,
    pub name: String,
    /// The layers' diff ids (hex), bottom first.
    pub layers: Vec<String>,
    /// Uncompressed bytes of its layers.
    pub size: u64,
    /// When it was first imported (Unix seconds).
    pub imported: u64,
}

fn images_dir(cas: &Path) -> PathBuf {
    cas.join("images")
}

fn record_path(cas: &Path, id: &str) -> PathBuf {
    let hex: String = id
        .rsplit(':')
        .next()
        .unwrap_or(id)
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .collect();
    images_dir(cas).join(format!("{hex}.json"))
}

/// The layer diff ids (hex) of `lowers` that live in the cache, bottom
/// first (overlayfs lists them top-most first).
fn layer_ids(cas: &Path, lowers: &[PathBuf]) -> Vec<String> {
    let layers = cas.join("layers/sha256");
    lowers
        .iter()
        .rev()
        .filter(|l| l.parent() == Some(layers.as_path()))
        .filter_map(|l| l.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect()
}

/// Sizes of layers as `verified/` remembers them (diff hex -> bytes).
fn layer_sizes(cas: &Path) -> Vec<(String, u64)> {
    let Ok(entries) = fs::read_dir(cas.join("verified")) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let text = fs::read_to_string(e.path()).ok()?;
            let (diff, size) = text.trim().split_once(' ')?;
            Some((diff.rsplit(':').next()?.to_string(), size.parse().ok()?))
        })
        .collect()
}

/// Records an image loaded from the cache, once (the first import time
/// stays). Written whole or not at all.
pub fn record(cas: &Path, id: &str, name: &str, lowers: &[PathBuf], now: u64) -> io::Result<()> {
    let path = record_path(cas, id);
    if path.exists() {
        return Ok(());
    }
    let layers = layer_ids(cas, lowers);
    let sizes = layer_sizes(cas);
    let size = layers
        .iter()
        .filter_map(|l| sizes.iter().find(|(d, _)| d == l).map(|(_, s)| *s))
        .sum();
    let rec = Record {
        id: id.to_string(),
        name: name.to_string(),
        layers,
        size,
        imported: now,
    };
    fs::create_dir_all(images_dir(cas))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, serde_json::to_vec(&rec).unwrap_or_default())?;
    fs::rename(&tmp, &path)
}

/// Every record, oldest import first.
pub fn all(cas: &Path) -> Vec<Record> {
    let Ok(entries) = fs::read_dir(images_dir(cas)) else {
        return Vec::new();
    };
    let mut out: Vec<Record> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .filter_map(|e| serde_json::from_slice(&fs::read(e.path()).ok()?).ok())
        .collect();
    out.sort_by(|a, b| (a.imported, &a.id).cmp(&(b.imported, &b.id)));
    out
}

/// The records `what` names: a name, a full id, or an id prefix of at
/// least 4 hex digits (with or without `sha256:`).
pub fn find<'a>(records: &'a [Record], what: &str) -> Vec<&'a Record> {
    let hex = what.strip_prefix("sha256:").unwrap_or(what);
    records
        .iter()
        .filter(|r| {
            r.name == what
                || r.id == what
                || (hex.len() >= 4
                    && hex.chars().all(|c| c.is_ascii_hexdigit())
                    && r.id.trim_start_matches("sha256:").starts_with(hex))
        })
        .collect()
}

fn lock_path(cas: &Path) -> PathBuf {
    cas.join("lock")
}

/// Taken by an import (shared with other imports) until its pod's
/// directory exists.
pub fn lease(cas: &Path) -> io::Result<FileLock> {
    FileLock::acquire_shared(&lock_path(cas))
}

/// Taken by `rkt image rm` and [`gc`]: waits for the imports in progress;
/// `None` when there is no store yet.
pub fn exclusive(cas: &Path) -> io::Result<Option<FileLock>> {
    match FileLock::acquire(&lock_path(cas)) {
        Ok(l) => Ok(Some(l)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Forgets an image (its layers stay until [`gc`]).
pub fn remove(cas: &Path, id: &str) -> io::Result<()> {
    fs::remove_file(record_path(cas, id))
}

/// Removes the layers no record names, and what `verified/` says of
/// them; the diff ids (hex) removed.
pub fn gc(cas: &Path) -> io::Result<Vec<String>> {
    let Some(_excl) = exclusive(cas)? else {
        return Ok(Vec::new());
    };
    let keep: Vec<String> = all(cas).into_iter().flat_map(|r| r.layers).collect();
    let layers = cas.join("layers/sha256");
    let mut removed = Vec::new();
    let dir = match fs::File::open(&layers) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(e),
    };
    for e in fs::read_dir(&layers)?.filter_map(Result::ok) {
        let name = e.file_name();
        let hex = name.to_string_lossy().into_owned();
        if keep.contains(&hex) {
            continue;
        }
        use std::os::fd::AsFd;
        remove_at(dir.as_fd(), &name)?;
        removed.push(hex);
    }
    if let Ok(entries) = fs::read_dir(cas.join("verified")) {
        for e in entries.filter_map(Result::ok) {
            let text = fs::read_to_string(e.path()).unwrap_or_default();
            let diff = text
                .split(' ')
                .next()
                .unwrap_or("")
                .rsplit(':')
                .next()
                .unwrap_or("")
                .to_string();
            if removed.contains(&diff) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// An import's layer is unpacked but not yet recorded: gc waits for
    /// the import's lease, then keeps what the import recorded.
    #[test]
    fn gc_waits_for_imports_and_keeps_what_they_record() {
        let t = tempfile::tempdir().unwrap();
        let cas = t.path();
        let layers = cas.join("layers/sha256");
        fs::create_dir_all(layers.join("aa11")).unwrap();
        fs::create_dir_all(layers.join("bb22")).unwrap();
        let lease = lease(cas).unwrap();
        let (tx, rx) = mpsc::channel();
        let cas2 = cas.to_path_buf();
        let gc_thread = std::thread::spawn(move || tx.send(gc(&cas2).unwrap()).unwrap());
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "gc ran during an import"
        );
        assert!(layers.join("aa11").exists());
        record(cas, "sha256:1234", "img", &[layers.join("aa11")], 1).unwrap();
        drop(lease);
        let removed = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        gc_thread.join().unwrap();
        assert_eq!(removed, ["bb22"]);
        assert!(layers.join("aa11").exists());
        // No store at all: nothing to do, no error.
        assert!(gc(&cas.join("missing")).unwrap().is_empty());
    }
}
