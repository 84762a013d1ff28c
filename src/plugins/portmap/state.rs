//! What `portmap` has installed, kept under `/run/rkt-portmap` (empty at
//! boot, as the nftables ruleset is):
//!
//! ```text
//! /run/rkt-portmap/lock              one lock for all of it
//! /run/rkt-portmap/table             present while our table is installed
//! /run/rkt-portmap/gen               the removal generation
//! /run/rkt-portmap/pods/<member>     one attachment: its elements (JSON)
//! /run/rkt-portmap/claims/<claim>    a host port in use: its member's name
//! ```
//!
//! Every change happens under the lock: an ADD claims its host ports,
//! records its attachment and adds its elements (one `nft` run, no chain
//! rewritten); a DEL deletes them. When `nft` fails on what the state says
//! is installed (someone flushed the ruleset), the table is rebuilt from
//! the state of every attachment, in one transaction. After the last
//! attachment the table goes half a second later, by a detached copy of
//! the plugin, unless an attachment came back.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::rules::{self, Element};
use crate::lock::FileLock;
use crate::plugins::pkg::nft::{self, NftError};

const ROOT: &str = "/run/rkt-portmap";
/// The environment of the detached copy that removes the table.
pub const CLEANUP_ENV: &str = "RKT_PORTMAP_CLEANUP_GEN";
const GRACE: std::time::Duration = std::time::Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("port mapping state: cannot {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("port mapping rules (table inet rkt-portmap): {0}")]
    Nft(#[from] NftError),
    #[error("host port {port} is already forwarded to container {owner}; stop that pod or pick another host port (run `rkt gc` if its pod is gone)")]
    Claimed { port: String, owner: String },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// One attachment's share of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    pub container_id: String,
    pub ifname: String,
    pub elements: Vec<Element>,
    /// The pod's addresses the elements forward to (their conntrack
    /// entries go at DEL).
    pub addrs: Vec<IpAddr>,
}

impl Attachment {
    pub fn member(&self) -> String {
        member_name(&self.container_id, &self.ifname)
    }
}

/// The file of an attachment: `<cid>-<ifname>`, hashed when too long.
pub fn member_name(container_id: &str, ifname: &str) -> String {
    let name = format!("{container_id}-{ifname}");
    if name.len() <= 200 {
        return name;
    }
    let hex = crate::cni::skeleton::attachment_hash(container_id, ifname);
    format!("{}-{hex}", &container_id[..container_id.len().min(160)])
}

/// The state directory, locked while this value lives.
pub struct State {
    root: PathBuf,
    _lock: FileLock,
}

impl State {
    pub fn lock() -> Result<State, StateError> {
        Self::lock_at(Path::new(ROOT))
    }

    fn lock_at(root: &Path) -> Result<State, StateError> {
        for d in [root.to_path_buf(), root.join("pods"), root.join("claims")] {
            std::fs::create_dir_all(&d).map_err(io("create", &d))?;
        }
        let path = root.join("lock");
        let lock = FileLock::acquire(&path).map_err(io("lock", &path))?;
        Ok(State {
            root: root.to_path_buf(),
            _lock: lock,
        })
    }

    fn pod_path(&self, member: &str) -> PathBuf {
        self.root.join("pods").join(member)
    }

    pub fn get(&self, member: &str) -> Option<Attachment> {
        let text = std::fs::read(self.pod_path(member)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Every recorded attachment (unreadable records are dropped).
    pub fn all(&self) -> Vec<Attachment> {
        let Ok(entries) = std::fs::read_dir(self.root.join("pods")) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let a = self.get(&name);
                if a.is_none() {
                    let _ = std::fs::remove_file(e.path());
                }
                a
            })
            .collect()
    }

    fn has_members(&self) -> bool {
        std::fs::read_dir(self.root.join("pods"))
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    }

    fn installed(&self) -> bool {
        self.root.join("table").exists()
    }

    fn set_installed(&self, yes: bool) -> Result<(), StateError> {
        let path = self.root.join("table");
        if yes {
            std::fs::write(&path, b"").map_err(io("write", &path))
        } else {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", &path)(e)),
                _ => Ok(()),
            }
        }
    }

    /// Claims the attachment's host ports, records it and adds its
    /// elements. Nothing is left when it fails.
    pub fn add(&self, att: &Attachment) -> Result<(), StateError> {
        let member = att.member();
        let mut claimed = Vec::new();
        let result = self
            .claim_all(att, &member, &mut claimed)
            .and_then(|()| {
                let path = self.pod_path(&member);
                let text = serde_json::to_vec(att).unwrap_or_default();
                std::fs::write(&path, text).map_err(io("write", &path))
            })
            .and_then(|()| {
                let script: String = att.elements.iter().map(Element::add).collect();
                self.apply_or_rebuild(&script)
            });
        if result.is_err() {
            for c in &claimed {
                let _ = std::fs::remove_file(c);
            }
            let _ = std::fs::remove_file(self.pod_path(&member));
        }
        result
    }

    fn claim_all(
        &self,
        att: &Attachment,
        member: &str,
        claimed: &mut Vec<PathBuf>,
    ) -> Result<(), StateError> {
        for e in &att.elements {
            let Some(claim) = e.claim() else { continue };
            let path = self.root.join("claims").join(&claim);
            match std::fs::read_to_string(&path) {
                Ok(owner) if owner != member && self.get(&owner).is_some() => {
                    let owner = self
                        .get(&owner)
                        .map(|a| format!("{} (interface {})", a.container_id, a.ifname))
                        .unwrap_or(owner);
                    return Err(StateError::Claimed {
                        port: e.key.replace(" . ", " "),
                        owner,
                    });
                }
                _ => {}
            }
            std::fs::write(&path, member).map_err(io("write", &path))?;
            claimed.push(path);
        }
        Ok(())
    }

    /// Applies `script` on the installed table; installs the table first
    /// when it is not, and rebuilds it from the state when the script
    /// fails on what should be there.
    fn apply_or_rebuild(&self, script: &str) -> Result<(), StateError> {
        if self.installed() && nft::apply(script).is_ok() {
            return Ok(());
        }
        self.rebuild()
    }

    /// The table afresh with the elements of every recorded attachment,
    /// in one transaction; without attachments, no table.
    pub fn rebuild(&self) -> Result<(), StateError> {
        let all = self.all();
        if all.is_empty() {
            nft::apply(&rules::remove())?;
            return self.set_installed(false);
        }
        let mut script = rules::install();
        for a in &all {
            script.extend(a.elements.iter().map(Element::add));
        }
        nft::apply(&script)?;
        self.set_installed(true)
    }

    /// Deletes the attachment's elements and forgets it; with the last
    /// one, the table's removal is scheduled. What it had, if anything.
    pub fn remove(&self, member: &str) -> Result<Option<Attachment>, StateError> {
        let Some(att) = self.get(member) else {
            return Ok(None);
        };
        let script: String = att.elements.iter().map(Element::delete).collect();
        let path = self.pod_path(member);
        std::fs::remove_file(&path).map_err(io("remove", &path))?;
        if !(self.installed() && nft::apply(&script).is_ok()) {
            if let Err(e) = self.rebuild() {
                let _ = std::fs::write(&path, serde_json::to_vec(&att).unwrap_or_default());
                return Err(e);
            }
        }
        for e in &att.elements {
            let Some(claim) = e.claim() else { continue };
            let c = self.root.join("claims").join(claim);
            if std::fs::read_to_string(&c).is_ok_and(|o| o == member) {
                let _ = std::fs::remove_file(&c);
            }
        }
        if !self.has_members() && self.installed() {
            self.remove_later();
        }
        Ok(Some(att))
    }

    fn bump_gen(&self) -> u64 {
        let path = self.root.join("gen");
        let gen = std::fs::read_to_string(&path)
            .ok()
            .and_then(|g| g.trim().parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        let _ = std::fs::write(&path, gen.to_string());
        gen
    }

    fn gen(&self) -> u64 {
        std::fs::read_to_string(self.root.join("gen"))
            .ok()
            .and_then(|g| g.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Deleting a table costs 10-15 ms of kernel time: a detached copy of
    /// the plugin does it after [`GRACE`], unless an attachment came back
    /// or a later DEL scheduled its own removal.
    fn remove_later(&self) {
        let gen = self.bump_gen().to_string();
        let spawned = crate::plugins::pkg::detached::spawn_detached(&[(CLEANUP_ENV, gen.as_ref())]);
        if spawned.is_err() {
            let _ = self.remove_if_idle(gen.parse().unwrap_or(0));
        }
    }

    fn remove_if_idle(&self, gen: u64) -> Result<(), StateError> {
        if self.gen() != gen || self.has_members() {
            return Ok(());
        }
        nft::apply(&rules::remove())?;
        self.set_installed(false)
    }
}

/// The detached removal [`State::remove_later`] started.
pub fn cleanup(gen: &str) -> Result<(), StateError> {
    std::thread::sleep(GRACE);
    let gen = gen.parse().unwrap_or(0);
    State::lock()?.remove_if_idle(gen)
}
