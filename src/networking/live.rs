//! What `rkt gc` needs to know before it releases anything, whatever store
//! (`--dir`) a pod belongs to:
//!
//! - the machine-wide index of pods that have (or are getting) networking,
//!   `/run/rkt/live/<uuid>` holding the pod's store directory, written before
//!   the pod's network namespace is created and removed once its networks
//!   are released; a gc of one store treats the attachments of another
//!   store's live pods as valid and never removes their namespaces;
//! - a lock that orders ADDs against the lease collection: every `rkt run`
//!   holds it shared from registration to its last recorded ADD result, and
//!   gc holds it exclusively while it computes the valid attachments and
//!   runs the CNI GC verb, so no lease of a pod being created is released.
//!
//! `/run` is a tmpfs: like the namespaces, the index does not survive a
//! reboot, and neither does anything it describes.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::lock::FileLock;
use crate::pod::Pod;

pub const DIR: &str = "/run/rkt/live";
pub const LOCK: &str = "/run/rkt/live.lock";

fn ensure_dir() -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(DIR)
}

/// Held by `rkt run` while it registers its pod and attaches its networks.
pub struct Adding(#[allow(dead_code)] FileLock);

/// Held by `rkt gc` while it collects leases and namespaces.
pub struct Collecting(#[allow(dead_code)] FileLock);

impl Adding {
    pub fn begin() -> io::Result<Adding> {
        ensure_dir()?;
        FileLock::acquire_shared(Path::new(LOCK)).map(Adding)
    }
}

impl Collecting {
    pub fn begin() -> io::Result<Collecting> {
        ensure_dir()?;
        FileLock::acquire(Path::new(LOCK)).map(Collecting)
    }
}

/// Records that pod `uuid` of the store `store_dir` has networking.
pub fn register(uuid: &str, store_dir: &Path) -> io::Result<()> {
    ensure_dir()?;
    let store = fs::canonicalize(store_dir)?;
    crate::pod::store::write_private(
        &Path::new(DIR).join(uuid),
        store.as_os_str().as_encoded_bytes(),
    )
}

/// Forgets pod `uuid` (its networks are released).
pub fn unregister(uuid: &str) {
    let _ = fs::remove_file(Path::new(DIR).join(uuid));
}

/// The pods of every store that still have networking: the index's entries
/// whose pod directory is still in its store's `run/`. Entries whose pod is
/// gone are dropped from the index.
pub fn pods() -> Vec<Pod> {
    let Ok(entries) = fs::read_dir(DIR) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let uuid = e.file_name().to_string_lossy().into_owned();
        if uuid.ends_with(".tmp") {
            continue;
        }
        let Ok(store) = fs::read_to_string(e.path()) else {
            continue;
        };
        let dir = PathBuf::from(store).join("pods/run").join(&uuid);
        if dir.is_dir() {
            out.push(Pod { uuid, dir });
        } else {
            unregister(&uuid);
        }
    }
    out
}
