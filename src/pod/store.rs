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

/// What a pod is doing, derived from where its directory is and its lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodState {
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

    /// Creates the directory of a new pod in `run/`, its lock already held:
    /// it is made as a hidden directory (which nobody lists), locked, and
    /// only then renamed into place, so a concurrent `rkt gc` never sees a
    /// pod with a free lock and takes it for one whose runtime died.
    pub fn create(&self, uuid: &str) -> io::Result<(Pod, FileLock)> {
        let run = self.root.join(RUN);
        mkdir_private(&run)?;
        mkdir_private(&self.root.join(EXITED))?;
        let hidden = run.join(format!(".{uuid}"));
        fs::DirBuilder::new().mode(0o700).create(&hidden)?;
        let placed = FileLock::acquire(&hidden.join("lock")).and_then(|lock| {
            let dir = run.join(uuid);
            fs::rename(&hidden, &dir)?;
            Ok((
                Pod {
                    uuid: uuid.to_string(),
                    dir,
                },
                lock,
            ))
        });
        if placed.is_err() {
            let _ = fs::remove_dir_all(&hidden);
        }
        placed
    }

    /// Removes pod directories a `rkt run` died in before placing them
    /// (see [`Store::create`]); their lock is free.
    pub fn sweep_unplaced(&self) {
        let Ok(entries) = fs::read_dir(self.root.join(RUN)) else {
            return;
        };
        for e in entries.flatten() {
            let hidden = e.file_name().to_string_lossy().starts_with('.');
            if hidden && matches!(FileLock::try_acquire(&e.path().join("lock")), Ok(Some(_))) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }

    /// Every pod, oldest first.
    pub fn all(&self) -> Vec<Pod> {
        let mut pods: Vec<(u64, Pod)> = Vec::new();
        for loc in [RUN, EXITED] {
            let Ok(entries) = fs::read_dir(self.root.join(loc)) else {
                continue;
            };
            for e in entries.flatten() {
                let uuid = e.file_name().to_string_lossy().into_owned();
                if uuid.starts_with('.') {
                    continue;
                }
                let pod = Pod {
                    uuid,
                    dir: e.path(),
                };
                let created = pod.manifest().map(|m| m.created).unwrap_or(0);
                pods.push((created, pod));
            }
        }
        pods.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.uuid.cmp(&b.1.uuid)));
        pods.into_iter().map(|(_, p)| p).collect()
    }

    /// The pod whose UUID is or starts with `prefix`.
    pub fn find(&self, prefix: &str) -> Result<Pod, String> {
        if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Err(format!("\"{prefix}\" is not a pod UUID or UUID prefix"));
        }
        let matches: Vec<Pod> = self
            .all()
            .into_iter()
            .filter(|p| p.uuid.starts_with(prefix))
            .collect();
        match matches.len() {
            0 => Err(format!("no pod with UUID {prefix}; see rkt list")),
            1 => Ok(matches.into_iter().next().expect("one match")),
            n => Err(format!(
                "UUID prefix {prefix} matches {n} pods; give more characters"
            )),
        }
    }
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

    pub fn state(&self) -> PodState {
        if self.is_exited_dir() {
            return PodState::Exited;
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
