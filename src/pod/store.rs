//! Pod directories: creating, finding by UUID prefix, reading state.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{de::DeserializeOwned, Serialize};

use super::manifest::{Manifest, NetRecord};
use crate::lock::FileLock;

const RUN: &str = "run";
const EXITED: &str = "exited-garbage";
/// Pods `rkt prepare` made, waiting for `rkt run-prepared`.
const PREPARED: &str = "prepared";
/// Prefix of a pod directory being created (see [`Store::create`]).
const CREATING: &str = ".creating-";

/// A UUID as rkt writes it: lowercase, hyphenated.
fn is_uuid(s: &str) -> bool {
    uuid::Uuid::try_parse(s).is_ok_and(|u| u.hyphenated().to_string() == s)
}

/// The UUID an entry of `run/` or `exited-garbage/` is named for, when it
/// is a directory (not a symlink to one) with such a name.
fn pod_name(e: &fs::DirEntry) -> Option<String> {
    let name = e.file_name().into_string().ok()?;
    (is_uuid(&name) && e.file_type().ok()?.is_dir()).then_some(name)
}

/// What a pod is doing, derived from where its directory is and its lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodState {
    /// Made by `rkt prepare`; `rkt run-prepared` runs it.
    Prepared,
    /// Its runtime is setting it up.
    Preparing,
    Running,
    /// Its runtime died: `rkt gc` tears it down.
    Abandoned,
    Exited,
}

impl PodState {
    pub fn as_str(self) -> &'static str {
        match self {
            PodState::Prepared => "prepared",
            PodState::Preparing => "preparing",
            PodState::Running => "running",
            PodState::Abandoned => "abandoned",
            PodState::Exited => "exited",
        }
    }
}

/// The pod store under `<dir>/pods`.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// One pod's directory.
#[derive(Debug, Clone)]
pub struct Pod {
    pub uuid: String,
    pub dir: PathBuf,
}

fn mkdir_private(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

/// Writes `path` atomically (temp file + rename), readable by root only.
pub fn write_private(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(data)?;
    drop(f);
    fs::rename(tmp, path)
}

impl Store {
    pub fn new(dir: &Path) -> Self {
        Store {
            root: dir.join("pods"),
        }
    }

    /// Creates a new pod in `run/`, with its manifest written and its lock
    /// taken (held until the returned lock is dropped). The directory is
    /// made as `run/.creating-<uuid>` and renamed into place once
    /// `pod.json` is in it, so a directory in `run/` named as a UUID
    /// without a `pod.json` is never a pod (see [`Store::all`]).
    pub fn create(&self, uuid: &str, manifest: &Manifest) -> io::Result<(Pod, FileLock)> {
        self.create_in(RUN, uuid, manifest)
    }

    /// Creates a prepared pod (`rkt prepare`): as [`Store::create`], in
    /// `prepared/`.
    pub fn prepare(&self, uuid: &str, manifest: &Manifest) -> io::Result<Pod> {
        self.create_in(PREPARED, uuid, manifest).map(|(pod, _)| pod)
    }

    /// Moves a prepared pod to `run/` with its lock taken (`rkt
    /// run-prepared`); `None` when another runtime holds it.
    pub fn start_prepared(&self, pod: &Pod) -> io::Result<Option<(Pod, FileLock)>> {
        let Some(lock) = pod.try_lock()? else {
            return Ok(None);
        };
        let run = self.root.join(RUN);
        mkdir_private(&run)?;
        let dir = run.join(&pod.uuid);
        fs::rename(&pod.dir, &dir)?;
        Ok(Some((
            Pod {
                uuid: pod.uuid.clone(),
                dir,
            },
            lock,
        )))
    }

    fn create_in(&self, loc: &str, uuid: &str, manifest: &Manifest) -> io::Result<(Pod, FileLock)> {
        let run = self.root.join(loc);
        mkdir_private(&run)?;
        mkdir_private(&self.root.join(EXITED))?;
        let staging = run.join(format!("{CREATING}{uuid}"));
        fs::DirBuilder::new().mode(0o700).create(&staging)?;
        let made = (|| {
            let lock = FileLock::acquire(&staging.join("lock"))?;
            let data = serde_json::to_vec_pretty(manifest).map_err(io::Error::other)?;
            write_private(&staging.join("pod.json"), &data)?;
            let dir = run.join(uuid);
            // A lock on a file survives the rename of its directory.
            fs::rename(&staging, &dir)?;
            Ok((
                Pod {
                    uuid: uuid.to_string(),
                    dir,
                },
                lock,
            ))
        })();
        if made.is_err() {
            let _ = fs::remove_dir_all(&staging);
        }
        made
    }

    /// Every pod, oldest first. Only directories named as a UUID and
    /// holding a readable `pod.json` are pods: anything else in `run/` or
    /// `exited-garbage/` (a file, a symlink, another name, a directory
    /// without a manifest) is left alone by every command; [`Store::strays`]
    /// lists it.
    pub fn all(&self) -> Vec<Pod> {
        let mut pods: Vec<(u64, Pod)> = Vec::new();
        for loc in [RUN, EXITED, PREPARED] {
            let Ok(entries) = fs::read_dir(self.root.join(loc)) else {
                continue;
            };
            for e in entries.flatten() {
                let Some(uuid) = pod_name(&e) else {
                    continue;
                };
                let pod = Pod {
                    uuid,
                    dir: e.path(),
                };
                if let Ok(m) = pod.manifest() {
                    pods.push((m.created, pod));
                }
            }
        }
        pods.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.uuid.cmp(&b.1.uuid)));
        pods.into_iter().map(|(_, p)| p).collect()
    }

    /// What is in `run/` and `exited-garbage/` but is not a pod (see
    /// [`Store::all`]), with the reason; pods being created are not listed.
    pub fn strays(&self) -> Vec<(PathBuf, &'static str)> {
        let mut out = Vec::new();
        for loc in [RUN, EXITED, PREPARED] {
            let Ok(entries) = fs::read_dir(self.root.join(loc)) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(CREATING) {
                    continue;
                }
                let why = match pod_name(&e) {
                    None if !e.file_type().is_ok_and(|t| t.is_dir()) => "not a directory",
                    None => "not named as a pod UUID",
                    Some(_) => match fs::read(e.path().join("pod.json")) {
                        Err(_) => "no pod.json",
                        Ok(d) if serde_json::from_slice::<Manifest>(&d).is_err() => {
                            "unreadable pod.json"
                        }
                        Ok(_) => continue,
                    },
                };
                out.push((e.path(), why));
            }
        }
        out
    }

    /// Pod directories whose `rkt run` died while creating them (see
    /// [`Store::create`]): unlocked and older than `min_age`.
    pub fn abandoned_creations(&self, min_age: std::time::Duration) -> Vec<PathBuf> {
        let Ok(entries) = fs::read_dir(self.root.join(RUN)) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.strip_prefix(CREATING).is_some_and(is_uuid)
                    && e.file_type().is_ok_and(|t| t.is_dir())
                    && e.metadata()
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age >= min_age)
                    && matches!(FileLock::try_acquire(&e.path().join("lock")), Ok(Some(_)))
            })
            .map(|e| e.path())
            .collect()
    }

    /// The pod whose UUID is or starts with `prefix`.
    pub fn find(&self, prefix: &str) -> Result<Pod, FindError> {
        if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Err(FindError::NotAUuid(prefix.into()));
        }
        let matches: Vec<Pod> = self
            .all()
            .into_iter()
            .filter(|p| p.uuid.starts_with(prefix))
            .collect();
        match matches.len() {
            0 => Err(FindError::NoPod(prefix.into())),
            1 => Ok(matches.into_iter().next().expect("one match")),
            n => Err(FindError::Ambiguous(prefix.into(), n)),
        }
    }
}

/// Why a UUID given on the command line names no single pod.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FindError {
    #[error("\"{0}\" is not a pod UUID or UUID prefix")]
    NotAUuid(String),
    #[error("no pod with UUID {0}; see rkt list")]
    NoPod(String),
    #[error("UUID prefix {0} matches {1} pods; give more characters")]
    Ambiguous(String, usize),
}

impl Pod {
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    pub fn is_exited_dir(&self) -> bool {
        self.dir
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n == EXITED)
            .unwrap_or(false)
    }

    /// Writes `rel` atomically (temp file + rename), readable by root only.
    pub fn write_file(&self, rel: &str, data: &[u8]) -> io::Result<()> {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            mkdir_private(parent)?;
        }
        write_private(&path, data)
    }

    pub fn write_json<T: Serialize>(&self, rel: &str, value: &T) -> io::Result<()> {
        let data = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
        self.write_file(rel, &data)
    }

    pub fn read_json<T: DeserializeOwned>(&self, rel: &str) -> io::Result<T> {
        let data = fs::read(self.path(rel))?;
        serde_json::from_slice(&data).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", self.path(rel).display()),
            )
        })
    }

    fn read_number<T: std::str::FromStr>(&self, rel: &str) -> Option<T> {
        fs::read_to_string(self.path(rel)).ok()?.trim().parse().ok()
    }

    pub fn manifest(&self) -> io::Result<Manifest> {
        self.read_json("pod.json")
    }

    /// The network records, in interface order.
    pub fn nets(&self) -> Vec<NetRecord> {
        let mut out: Vec<(usize, NetRecord)> = Vec::new();
        if let Ok(entries) = fs::read_dir(self.path("net")) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(idx) = name.strip_suffix(".json").and_then(|i| i.parse().ok()) else {
                    continue;
                };
                if let Ok(rec) = self.read_json::<NetRecord>(&format!("net/{name}")) {
                    out.push((idx, rec));
                }
            }
        }
        out.sort_by_key(|(i, _)| *i);
        out.into_iter().map(|(_, r)| r).collect()
    }

    /// The host PID of the pod's first process.
    pub fn pid(&self) -> Option<i32> {
        self.read_number("pid")
    }

    pub fn started(&self) -> Option<u64> {
        self.read_number("started")
    }

    pub fn exit_code(&self) -> Option<i32> {
        self.read_number("exit")
    }

    /// When the pod exited (the `exit` or `exited` file's mtime).
    pub fn exited_at(&self) -> Option<u64> {
        ["exited", "exit"].iter().find_map(|f| {
            fs::metadata(self.path(f))
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
        })
    }

    /// Takes the pod lock without waiting: `None` when a live runtime holds it.
    pub fn try_lock(&self) -> io::Result<Option<FileLock>> {
        FileLock::try_acquire(&self.path("lock"))
    }

    pub fn is_prepared_dir(&self) -> bool {
        self.dir
            .parent()
            .and_then(|p| p.file_name())
            .is_some_and(|n| n == PREPARED)
    }

    pub fn state(&self) -> PodState {
        if self.is_exited_dir() {
            return PodState::Exited;
        }
        if self.is_prepared_dir() {
            return PodState::Prepared;
        }
        match self.try_lock() {
            Ok(Some(_)) => PodState::Abandoned,
            _ if self.pid().is_some() && self.exit_code().is_none() => PodState::Running,
            _ if self.exit_code().is_some() => PodState::Exited,
            _ => PodState::Preparing,
        }
    }

    /// Moves the pod from `run/` to `exited-garbage/`.
    pub fn move_to_exited(&mut self) -> io::Result<()> {
        if self.is_exited_dir() {
            return Ok(());
        }
        let run = self.dir.parent().map(Path::to_path_buf).unwrap_or_default();
        let pods = run.parent().map(Path::to_path_buf).unwrap_or_default();
        let dest = pods.join(EXITED).join(&self.uuid);
        mkdir_private(&pods.join(EXITED))?;
        self.write_file("exited", b"")?;
        fs::rename(&self.dir, &dest)?;
        self.dir = dest;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_uuid_directories_with_a_manifest_are_pods() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path());
        let uuid = uuid::Uuid::new_v4().to_string();
        let manifest = Manifest {
            uuid: uuid.clone(),
            ..Default::default()
        };
        let (pod, lock) = store.create(&uuid, &manifest).unwrap();
        assert_eq!(pod.manifest().unwrap().uuid, uuid);
        // Still locked by its creator: running or preparing, not abandoned.
        assert_ne!(pod.state(), PodState::Abandoned);
        drop(lock);
        assert_eq!(pod.state(), PodState::Abandoned);
        let run = d.path().join("pods/run");
        fs::write(run.join("file"), "x").unwrap();
        fs::create_dir(run.join("notauuid")).unwrap();
        let bare = uuid::Uuid::new_v4().to_string();
        fs::create_dir(run.join(&bare)).unwrap();
        let upper = uuid.to_uppercase();
        std::os::unix::fs::symlink(&pod.dir, run.join(&upper)).unwrap();
        let all: Vec<String> = store.all().into_iter().map(|p| p.uuid).collect();
        assert_eq!(all, vec![uuid.clone()]);
        let mut strays: Vec<String> = store
            .strays()
            .into_iter()
            .map(|(p, why)| format!("{}: {why}", p.file_name().unwrap().to_string_lossy()))
            .collect();
        strays.sort();
        let mut want = vec![
            "file: not a directory".to_string(),
            "notauuid: not named as a pod UUID".to_string(),
            format!("{bare}: no pod.json"),
            format!("{upper}: not a directory"),
        ];
        want.sort();
        assert_eq!(strays, want);
        assert!(store.find(&bare[..8]).is_err());
    }

    #[test]
    fn an_abandoned_creation_is_found_only_when_unlocked_and_old() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path());
        let run = d.path().join("pods/run");
        let staging = run.join(format!("{CREATING}{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&staging).unwrap();
        let held = FileLock::acquire(&staging.join("lock")).unwrap();
        let zero = std::time::Duration::ZERO;
        assert!(store.abandoned_creations(zero).is_empty(), "locked");
        drop(held);
        assert_eq!(store.abandoned_creations(zero), vec![staging.clone()]);
        let hour = std::time::Duration::from_secs(3600);
        assert!(store.abandoned_creations(hour).is_empty(), "too young");
        assert!(store.strays().is_empty(), "a creation is not a stray");
        assert!(store.all().is_empty());
    }
}
