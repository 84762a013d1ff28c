//! The registry: which token belongs to which pod, and whether that pod's
//! runtime still lives. Every registration is also written to
//! `<state>/pods/<token>.json` (root only), so a restarted service reloads
//! the pods that still run and forgets the others.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use super::{hex, proc, random_bytes, MetadataError};

/// One address of the pod: its IP on a network and that network's gateway
/// (the host end the pod reaches the service through).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetAddr {
    pub name: String,
    #[serde(default)]
    pub ifname: String,
    pub ip: IpAddr,
    #[serde(default)]
    pub gateway: Option<IpAddr>,
}

/// What `rkt run` tells the service about a pod.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodInfo {
    pub uuid: String,
    pub app_name: String,
    pub image_name: String,
    pub image_id: String,
    #[serde(default)]
    pub exec: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub working_dir: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub networks: Vec<NetAddr>,
}

/// A registered pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub token: String,
    pub pod: PodInfo,
    /// The `rkt run` process that registered the pod, and its start time:
    /// the pod counts as running while that process lives.
    pub runtime_pid: i32,
    pub runtime_start: u64,
}

impl Entry {
    pub fn alive(&self) -> bool {
        proc::alive(self.runtime_pid, self.runtime_start)
    }

    /// Whether a request from `peer`, received on the host address `local`,
    /// comes from this pod on the network whose gateway is `local`.
    pub fn owns(&self, peer: IpAddr, local: IpAddr) -> bool {
        self.pod
            .networks
            .iter()
            .any(|n| n.ip == peer && n.gateway == Some(local))
    }
}

/// Length of a token in hex characters.
pub const TOKEN_LEN: usize = 64;

fn valid_token(t: &str) -> bool {
    t.len() == TOKEN_LEN && t.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The registered pods, by token.
#[derive(Debug)]
pub struct Registry {
    dir: Option<PathBuf>,
    entries: Mutex<HashMap<String, Arc<Entry>>>,
}

impl Registry {
    /// A registry kept only in memory (for tests).
    pub fn in_memory() -> Self {
        Registry {
            dir: None,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Opens the registry persisted in `dir`, keeping the pods whose runtime
    /// still lives and removing the others' files.
    pub fn open(dir: &Path) -> Result<Self, MetadataError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| MetadataError::io("cannot create the registry directory", dir, e))?;
        let mut entries = HashMap::new();
        let listing = fs::read_dir(dir)
            .map_err(|e| MetadataError::io("cannot read the registry directory", dir, e))?;
        for f in listing.flatten() {
            let path = f.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let entry = fs::read(&path)
                .ok()
                .and_then(|d| serde_json::from_slice::<Entry>(&d).ok());
            match entry {
                Some(e) if valid_token(&e.token) && e.alive() => {
                    debug!(pod = %e.pod.uuid, "reloaded registration");
                    entries.insert(e.token.clone(), Arc::new(e));
                }
                _ => {
                    debug!(file = %path.display(), "dropping stale registration");
                    let _ = fs::remove_file(&path);
                }
            }
        }
        Ok(Registry {
            dir: Some(dir.to_path_buf()),
            entries: Mutex::new(entries),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Entry>>> {
        // A panic while holding the lock cannot leave the map half-updated
        // (every update is one insert or remove): keep serving.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn file(&self, token: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{token}.json")))
    }

    /// Registers `pod` for the runtime process `pid`; returns its new token.
    /// A pod registered again replaces its earlier registration.
    pub fn register(&self, pod: PodInfo, pid: i32) -> Result<String, MetadataError> {
        let start = proc::start_time(pid).ok_or_else(|| {
            MetadataError::Protocol(format!("registering process {pid} is not running"))
        })?;
        let mut raw = [0u8; TOKEN_LEN / 2];
        random_bytes(&mut raw)
            .map_err(|e| MetadataError::io("cannot read random bytes", "getrandom", e))?;
        let token = hex(&raw);
        let entry = Entry {
            token: token.clone(),
            pod,
            runtime_pid: pid,
            runtime_start: start,
        };
        if let Some(path) = self.file(&token) {
            write_private(&path, &entry)?;
        }
        let mut map = self.lock();
        let old: Vec<String> = map
            .values()
            .filter(|e| e.pod.uuid == entry.pod.uuid)
            .map(|e| e.token.clone())
            .collect();
        for t in old {
            map.remove(&t);
            self.remove_file(&t);
        }
        map.insert(token.clone(), Arc::new(entry));
        Ok(token)
    }

    /// Forgets `token`; false when it was not registered.
    pub fn unregister(&self, token: &str) -> bool {
        if !valid_token(token) {
            return false;
        }
        let found = self.lock().remove(token).is_some();
        self.remove_file(token);
        found
    }

    fn remove_file(&self, token: &str) {
        if let Some(path) = self.file(token) {
            if let Err(e) = fs::remove_file(&path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    warn!("cannot remove {}: {e}", path.display());
                }
            }
        }
    }

    /// The registration of `token` while its pod's runtime lives; a dead
    /// pod's registration is dropped on the way.
    pub fn lookup(&self, token: &str) -> Option<Arc<Entry>> {
        if !valid_token(token) {
            return None;
        }
        let entry = self.lock().get(token).cloned()?;
        if entry.alive() {
            Some(entry)
        } else {
            self.unregister(token);
            None
        }
    }

    /// Drops every registration whose runtime died.
    pub fn sweep(&self) {
        let dead: Vec<String> = self
            .lock()
            .values()
            .filter(|e| !e.alive())
            .map(|e| e.token.clone())
            .collect();
        for t in dead {
            self.unregister(&t);
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Writes `value` as JSON to `path` atomically, readable by root only.
fn write_private<T: Serialize>(path: &Path, value: &T) -> Result<(), MetadataError> {
    let data = serde_json::to_vec(value)
        .map_err(|e| MetadataError::Protocol(format!("cannot encode registration: {e}")))?;
    crate::pod::store::write_private(path, &data)
        .map_err(|e| MetadataError::io("cannot write registration", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uuid: &str) -> PodInfo {
        PodInfo {
            uuid: uuid.into(),
            networks: vec![NetAddr {
                name: "default-restricted".into(),
                ifname: "eth0".into(),
                ip: "172.17.0.2".parse().unwrap(),
                gateway: Some("172.17.0.1".parse().unwrap()),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn register_lookup_unregister_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id() as i32;
        let reg = Registry::open(dir.path()).unwrap();
        let t = reg.register(pod("a"), me).unwrap();
        assert_eq!(t.len(), TOKEN_LEN);
        let e = reg.lookup(&t).unwrap();
        assert!(e.owns("172.17.0.2".parse().unwrap(), "172.17.0.1".parse().unwrap()));
        assert!(!e.owns("172.17.0.3".parse().unwrap(), "172.17.0.1".parse().unwrap()));
        // Reloaded after a restart.
        let again = Registry::open(dir.path()).unwrap();
        assert!(again.lookup(&t).is_some());
        // Registering the same pod again replaces the old token.
        let t2 = again.register(pod("a"), me).unwrap();
        assert!(again.lookup(&t).is_none());
        assert!(again.unregister(&t2));
        assert!(again.is_empty());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(reg.lookup("../../etc/passwd").is_none());
    }

    #[test]
    fn dead_runtimes_are_dropped_on_reload() {
        let dir = tempfile::tempdir().unwrap();
        let entry = Entry {
            token: "ab".repeat(32),
            pod: pod("dead"),
            runtime_pid: std::process::id() as i32,
            runtime_start: 1,
        };
        write_private(&dir.path().join(format!("{}.json", entry.token)), &entry).unwrap();
        let reg = Registry::open(dir.path()).unwrap();
        assert!(reg.is_empty());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
