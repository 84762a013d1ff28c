//! What `portmap` has installed, kept under `/run/rkt-portmap` (empty at
//! boot, as the nftables ruleset is):
//!
//! ```text
//! /run/rkt-portmap/lock              one lock for all of it
//! /run/rkt-portmap/table             present while our table is installed
//! /run/rkt-portmap/pods/<member>     one attachment: its elements (JSON)
//! /run/rkt-portmap/claims/<claim>    a host port in use: its member's name
//! /run/rkt-portmap/gone/<member>     an attachment DEL forgot, whose
//!                                    elements are still to be deleted
//! /run/rkt-portmap/flush             a flush of `gone` is scheduled
//! /run/rkt-portmap/localnet/<ifname> route_localnet was off there and we
//!                                    turned it on
//! ```
//!
//! Every change happens under the lock. An ADD claims its host ports,
//! records its attachment and adds its elements over nf_tables netlink
//! (one batch, no `nft` run, no chain rewritten). Deleting elements costs
//! the kernel an RCU grace period (8-35 ms here), so a DEL only forgets
//! the attachment (its host ports are free at once) and a detached copy
//! of the plugin deletes what DELs left, in one batch, half a second
//! later, with the table itself when no attachment is left, and then the
//! conntrack entries of those pods. An ADD that needs a key a forgotten
//! attachment still holds deletes it in its own batch. When the kernel
//! refuses a batch on what the state says is installed (someone flushed
//! the ruleset), the table is rebuilt from the state with `nft`, in one
//! transaction.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::rules::{self, Element};
use crate::lock::FileLock;
use crate::netlink::sysctl;
use crate::plugins::pkg::nf_tables::{self, Elem};
use crate::plugins::pkg::nft::{self, NftError};

const ROOT: &str = "/run/rkt-portmap";
/// The environment of the detached copy that flushes what DELs left.
pub const FLUSH_ENV: &str = "RKT_PORTMAP_FLUSH";
const GRACE: std::time::Duration = std::time::Duration::from_millis(500);
/// A scheduled flush older than this died before it ran.
const STALE_FLUSH: std::time::Duration = std::time::Duration::from_secs(5);

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
    #[error("cannot let {ifname} route 127.0.0.1 to the pod (route_localnet): {error}")]
    Localnet { ifname: String, error: String },
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
    /// Host-side interfaces that must route 127.0.0.1 to the pod
    /// (`route_localnet`) for localhost forwarding.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub localnet: Vec<String>,
}

impl Attachment {
    pub fn member(&self) -> String {
        crate::cni::skeleton::attachment_file_name(&self.container_id, &self.ifname)
    }
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
        let path = root.join("lock");
        let lock = match FileLock::acquire(&path) {
            Ok(lock) => lock,
            // The first call since boot: the directories come first.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                for d in ["pods", "claims", "gone", "localnet"].map(|d| root.join(d)) {
                    std::fs::create_dir_all(&d).map_err(io("create", &d))?;
                }
                FileLock::acquire(&path).map_err(io("lock", &path))?
            }
            Err(e) => return Err(io("lock", &path)(e)),
        };
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
            .and_then(|()| self.write(&self.pod_path(&member), att))
            .and_then(|()| self.route_localnet(att))
            .and_then(|()| self.insert(att));
        if result.is_err() {
            for c in &claimed {
                let _ = std::fs::remove_file(c);
            }
            let _ = std::fs::remove_file(self.pod_path(&member));
            self.unroute_localnet();
        }
        result
    }

    /// Turns `route_localnet` on where the attachment needs it, noting
    /// (under `localnet/`) where it was off: those go back off once no
    /// attachment needs them ([`Self::unroute_localnet`]), so a bridge
    /// that outlives its pods does not keep routing 127.0.0.1.
    fn route_localnet(&self, att: &Attachment) -> Result<(), StateError> {
        for name in &att.localnet {
            let key = format!("net/ipv4/conf/{name}/route_localnet");
            if sysctl::read(&key).is_ok_and(|v| v == "1") {
                continue;
            }
            let note = self.root.join("localnet").join(name);
            std::fs::write(&note, b"").map_err(io("write", &note))?;
            sysctl::write(&key, "1").map_err(|e| StateError::Localnet {
                ifname: name.clone(),
                error: e.to_string(),
            })?;
        }
        Ok(())
    }

    /// Turns `route_localnet` back off where we turned it on and no
    /// recorded attachment needs it any more.
    fn unroute_localnet(&self) {
        let Ok(entries) = std::fs::read_dir(self.root.join("localnet")) else {
            return;
        };
        let live = self.all();
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            if live.iter().any(|a| a.localnet.contains(&name)) {
                continue;
            }
            // A link that is gone took its setting with it.
            let _ = sysctl::write(&format!("net/ipv4/conf/{name}/route_localnet"), "0");
            let _ = std::fs::remove_file(e.path());
        }
    }

    fn write(&self, path: &Path, att: &Attachment) -> Result<(), StateError> {
        let text = serde_json::to_vec(att).unwrap_or_default();
        std::fs::write(path, text).map_err(io("write", path))
    }

    /// Adds the attachment's elements (the table first when it is not
    /// installed), deleting in the same batch what a forgotten attachment
    /// still holds of its keys.
    fn insert(&self, att: &Attachment) -> Result<(), StateError> {
        if !self.installed() {
            return self.rebuild();
        }
        let gone = self.gone();
        let stale: Vec<Elem> = gone
            .iter()
            .flat_map(|g| &g.elements)
            .filter(|e| att.elements.iter().any(|a| same_key(a, e)))
            .map(Element::netlink)
            .collect();
        let adds: Vec<Elem> = att.elements.iter().map(Element::netlink).collect();
        if nf_tables::apply(rules::TABLE, &stale, &adds).is_err() {
            return self.rebuild();
        }
        if !stale.is_empty() {
            // Those elements are gone now: the flush must not delete them.
            for mut g in gone {
                let before = g.elements.len();
                g.elements
                    .retain(|e| !att.elements.iter().any(|a| same_key(a, e)));
                if g.elements.len() != before {
                    self.write(&self.gone_path(&g.member()), &g)?;
                }
            }
        }
        Ok(())
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
            if let Ok(owner) = std::fs::read_to_string(&path) {
                if let Some(a) = self.get(&owner).filter(|_| owner != member) {
                    return Err(StateError::Claimed {
                        port: e.key().replace(" . ", " "),
                        owner: format!("{} (interface {})", a.container_id, a.ifname),
                    });
                }
            }
            std::fs::write(&path, member).map_err(io("write", &path))?;
            claimed.push(path);
        }
        Ok(())
    }

    /// The table afresh with the elements of every recorded attachment,
    /// in one `nft` transaction; without attachments, no table.
    pub fn rebuild(&self) -> Result<(), StateError> {
        let all = self.all();
        if all.is_empty() {
            nft::apply(&rules::remove())?;
            return self.set_installed(false);
        }
        let elements: String = all
            .iter()
            .flat_map(|a| a.elements.iter().map(Element::add))
            .collect();
        // A table left from before (nft flush ruleset spares none, but a
        // lost state directory leaves one) makes `create` fail: replaced then.
        if nft::apply(&(rules::create() + &elements)).is_err() {
            nft::apply(&(rules::replace() + &elements))?;
        }
        self.set_installed(true)
    }

    fn gone_path(&self, member: &str) -> PathBuf {
        self.root.join("gone").join(member)
    }

    /// The attachments DEL forgot whose elements are still to delete.
    fn gone(&self) -> Vec<Attachment> {
        let Ok(entries) = std::fs::read_dir(self.root.join("gone")) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
            .collect()
    }

    /// Forgets the attachment: its host ports are free at once, its
    /// elements go with the next flush (scheduled here). What it had.
    pub fn remove(&self, member: &str) -> Result<Option<Attachment>, StateError> {
        let Some(att) = self.get(member) else {
            return Ok(None);
        };
        // What an earlier DEL of the same attachment left and no flush
        // deleted yet stays to delete.
        let mut gone = att.clone();
        if let Some(earlier) = std::fs::read(self.gone_path(member))
            .ok()
            .and_then(|t| serde_json::from_slice::<Attachment>(&t).ok())
        {
            for e in earlier.elements {
                if !gone.elements.contains(&e) {
                    gone.elements.push(e);
                }
            }
            for a in earlier.addrs {
                if !gone.addrs.contains(&a) {
                    gone.addrs.push(a);
                }
            }
        }
        self.write(&self.gone_path(member), &gone)?;
        let path = self.pod_path(member);
        std::fs::remove_file(&path).map_err(io("remove", &path))?;
        for e in &att.elements {
            let Some(claim) = e.claim() else { continue };
            let c = self.root.join("claims").join(claim);
            if std::fs::read_to_string(&c).is_ok_and(|o| o == member) {
                let _ = std::fs::remove_file(&c);
            }
        }
        self.schedule_flush();
        Ok(Some(att))
    }

    /// Starts the detached flush unless one is scheduled (a marker older
    /// than a few seconds is one that died).
    fn schedule_flush(&self) {
        let marker = self.root.join("flush");
        let fresh = std::fs::metadata(&marker)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < STALE_FLUSH);
        if fresh {
            return;
        }
        let _ = std::fs::write(&marker, b"");
        let spawned = crate::plugins::pkg::detached::spawn_detached(&[(FLUSH_ENV, "1".as_ref())]);
        if spawned.is_err() {
            let _ = std::fs::remove_file(&marker);
            let _ = self.flush();
        }
    }

    /// Deletes the elements of the forgotten attachments (not those a
    /// live attachment took over), or the whole table when none is live;
    /// the forgotten attachments, whose conntrack entries are to go.
    pub fn flush(&self) -> Result<Vec<Attachment>, StateError> {
        let gone = self.gone();
        if gone.is_empty() && (self.has_members() || !self.installed()) {
            return Ok(gone);
        }
        // Off before the guard goes with the table.
        self.unroute_localnet();
        if !self.has_members() {
            nft::apply(&rules::remove())?;
            self.set_installed(false)?;
        } else {
            let live = self.all();
            let dels: Vec<Elem> = gone
                .iter()
                .flat_map(|g| &g.elements)
                .filter(|e| {
                    !live
                        .iter()
                        .flat_map(|a| &a.elements)
                        .any(|a| same_key(a, e))
                })
                .map(Element::netlink)
                .collect();
            if nf_tables::apply(rules::TABLE, &dels, &[]).is_err() {
                self.rebuild()?;
            }
        }
        for g in &gone {
            let _ = std::fs::remove_file(self.gone_path(&g.member()));
        }
        Ok(gone)
    }
}

/// Whether two elements have the same key in the same map or set.
fn same_key(a: &Element, b: &Element) -> bool {
    a.set() == b.set() && a.key() == b.key()
}

/// The detached flush [`State::schedule_flush`] started: after a grace
/// period (pods started back to back reuse the table), the forgotten
/// attachments' elements go, then their pods' conntrack entries.
pub fn flush_later() -> Result<(), StateError> {
    std::thread::sleep(GRACE);
    let gone = {
        let s = State::lock()?;
        let _ = std::fs::remove_file(s.root.join("flush"));
        s.flush()?
    };
    for a in gone {
        super::forget_connections(&a.addrs);
    }
    Ok(())
}
