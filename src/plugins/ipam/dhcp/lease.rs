//! A DHCP lease as the daemon keeps it: what the server handed out, when,
//! for which attachment; its CNI result; and the on-disk store
//! (`/var/lib/cni/dhcp/<key>.json`) a restarted daemon reloads.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};

use crate::cni::config::valid_name;
use crate::cni::result::{Dns, IpConfig, Route};
use crate::cni::skeleton::valid_ifname;
use crate::cni::CniResult;

/// Where leases are kept unless `--lease-dir` says otherwise.
pub const DEFAULT_LEASE_DIR: &str = "/var/lib/cni/dhcp";

/// One pod interface on one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub container_id: String,
    pub network: String,
    pub ifname: String,
    pub netns: String,
}

/// An attachment field the daemon refuses (it names lease files).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidField {
    #[error("container ID \"{0}\" is invalid (letters, digits, '_', '.', '-'; not starting with '.' or '-')")]
    ContainerId(String),
    #[error("network name \"{0}\" is invalid (letters, digits, '_', '.', '-'; not starting with '.' or '-')")]
    Network(String),
    #[error("interface name \"{0}\" is invalid (1-15 bytes, no '/', ':' or whitespace)")]
    Ifname(String),
    #[error("network namespace \"{0}\" is not an absolute path")]
    Netns(String),
}

impl Attachment {
    /// Checks what lease file names are built from, by the rules the
    /// runtime and the CNI skeleton apply (container ID and network name:
    /// letters, digits, `_ . -`; interface: 1-15 bytes without `/`, `:`,
    /// whitespace). `whole`: the attachment names one interface (ADD, DEL,
    /// CHECK); otherwise (GC, STATUS) only the network is given.
    pub fn validate(&self, whole: bool) -> Result<(), InvalidField> {
        if !valid_name(&self.network) {
            return Err(InvalidField::Network(self.network.clone()));
        }
        if !whole {
            return Ok(());
        }
        if !valid_name(&self.container_id) {
            return Err(InvalidField::ContainerId(self.container_id.clone()));
        }
        if !valid_ifname(&self.ifname) {
            return Err(InvalidField::Ifname(self.ifname.clone()));
        }
        if !self.netns.is_empty() && !self.netns.starts_with('/') {
            return Err(InvalidField::Netns(self.netns.clone()));
        }
        Ok(())
    }

    /// Unique per attachment; also the lease file name.
    pub fn key(&self) -> String {
        format!("{}-{}-{}", self.container_id, self.network, self.ifname)
    }

    /// DHCP client identifier (option 61): type 0 then the attachment's
    /// identity, so a retried ADD gets the same lease.
    pub fn client_id(&self) -> Vec<u8> {
        let id = format!("{}/{}/{}", self.container_id, self.network, self.ifname);
        let mut out = vec![0u8];
        if id.len() <= 250 {
            out.extend_from_slice(id.as_bytes());
        } else {
            use sha2::Digest;
            out.extend_from_slice(&sha2::Sha256::digest(id.as_bytes()));
        }
        out
    }
}

/// What an ACK gave us.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub address: Ipv4Net,
    pub server: Ipv4Addr,
    #[serde(default)]
    pub router: Option<Ipv4Addr>,
    #[serde(default)]
    pub routes: Vec<(Ipv4Net, Ipv4Addr)>,
    #[serde(default)]
    pub dns: Dns,
    /// Milliseconds since the epoch when the ACK arrived.
    pub acquired_ms: u64,
    pub lease_secs: u32,
    pub t1_secs: u32,
    pub t2_secs: u32,
    /// Set when the routes came from option 121 (then 3 and 33 are ignored).
    #[serde(default)]
    pub classless: bool,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Lease {
    fn at(&self, secs: u32) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.acquired_ms + u64::from(secs) * 1000)
    }
    pub fn renew_at(&self) -> SystemTime {
        self.at(self.t1_secs)
    }
    pub fn rebind_at(&self) -> SystemTime {
        self.at(self.t2_secs)
    }
    pub fn expires_at(&self) -> SystemTime {
        self.at(self.lease_secs)
    }
    pub fn expired(&self) -> bool {
        SystemTime::now() >= self.expires_at()
    }

    /// The CNI result: address, gateway, routes (121, else 33 plus the
    /// default route via the router), and DNS.
    pub fn to_result(&self) -> CniResult {
        let mut routes = Vec::new();
        for (dst, gw) in &self.routes {
            routes.push(Route {
                dst: IpNet::V4(*dst),
                gw: (!gw.is_unspecified()).then_some(IpAddr::V4(*gw)),
            });
        }
        if !self.classless {
            if let Some(r) = self.router {
                routes.push(Route {
                    dst: IpNet::V4(Ipv4Net::default()),
                    gw: Some(IpAddr::V4(r)),
                });
            }
        }
        CniResult {
            interfaces: Vec::new(),
            ips: vec![IpConfig {
                interface: None,
                address: IpNet::V4(self.address),
                gateway: self.router.map(IpAddr::V4),
            }],
            routes,
            dns: self.dns.clone(),
        }
    }
}

/// A saved attachment and its lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub attachment: Attachment,
    pub lease: Lease,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("lease store {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("lease file {}: {source}", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("lease file {}: {source}; ignored", path.display())]
    Invalid { path: PathBuf, source: InvalidField },
    #[error("\"{0}\" cannot name a lease file (it is not one file name)")]
    BadKey(String),
}

/// Lease files, one per attachment, written atomically.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Store { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The lease file of `key`; a key that is not one plain file name
    /// (callers validate the attachment first) never names a path.
    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        if key.is_empty() || key.starts_with('.') || key.contains('/') || key.contains('\0') {
            return Err(StoreError::BadKey(key.to_string()));
        }
        Ok(self.dir.join(format!("{key}.json")))
    }

    pub fn save(&self, rec: &Record) -> Result<(), StoreError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let path = self.path(&rec.attachment.key())?;
        let tmp = path.with_extension("json.tmp");
        let data = serde_json::to_vec_pretty(rec).map_err(|source| StoreError::Json {
            path: path.clone(),
            source,
        })?;
        std::fs::write(&tmp, data).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))
    }

    pub fn remove(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(key)?;
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(StoreError::Io { path, source: e })
            }
            _ => Ok(()),
        }
    }

    pub fn load(&self, key: &str) -> Option<Record> {
        let data = std::fs::read(self.path(key).ok()?).ok()?;
        serde_json::from_slice(&data).ok()
    }

    /// Every saved record; unreadable files are reported, not fatal.
    pub fn load_all(&self) -> (Vec<Record>, Vec<StoreError>) {
        let mut out = Vec::new();
        let mut errs = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return (out, errs);
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().and_then(|x| x.to_str()) != Some("json") {
                continue;
            }
            match std::fs::read(&path) {
                Ok(data) => match serde_json::from_slice::<Record>(&data) {
                    // A record names the files the daemon later writes and
                    // removes: it is checked as a request is.
                    Ok(r) => match r.attachment.validate(true) {
                        Ok(()) => out.push(r),
                        Err(source) => errs.push(StoreError::Invalid { path, source }),
                    },
                    Err(source) => errs.push(StoreError::Json { path, source }),
                },
                Err(source) => errs.push(StoreError::Io { path, source }),
            }
        }
        (out, errs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(classless: bool) -> Lease {
        Lease {
            address: "10.77.0.50/24".parse().unwrap(),
            server: "10.77.0.1".parse().unwrap(),
            router: Some("10.77.0.1".parse().unwrap()),
            routes: vec![(
                "10.99.0.0/16".parse().unwrap(),
                "10.77.0.254".parse().unwrap(),
            )],
            dns: Dns {
                nameservers: vec!["10.77.0.53".into()],
                domain: "lan.test".into(),
                search: vec!["a.test".into()],
                options: vec![],
            },
            acquired_ms: 1_000_000,
            lease_secs: 120,
            t1_secs: 60,
            t2_secs: 105,
            classless,
        }
    }

    #[test]
    fn result_has_default_route_unless_classless() {
        let r = lease(false).to_result();
        assert_eq!(r.ips[0].address.to_string(), "10.77.0.50/24");
        assert_eq!(r.ips[0].gateway.unwrap().to_string(), "10.77.0.1");
        assert_eq!(r.routes.len(), 2);
        assert_eq!(r.routes[1].dst.to_string(), "0.0.0.0/0");
        assert_eq!(r.dns.search, vec!["a.test"]);
        let r = lease(true).to_result();
        assert_eq!(r.routes.len(), 1);
    }

    #[test]
    fn store_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let rec = Record {
            attachment: Attachment {
                container_id: "c1".into(),
                network: "lan".into(),
                ifname: "eth0".into(),
                netns: "/run/netns/x".into(),
            },
            lease: lease(false),
        };
        store.save(&rec).unwrap();
        let (all, errs) = store.load_all();
        assert!(errs.is_empty());
        assert_eq!(all[0].lease, rec.lease);
        store.remove(&rec.attachment.key()).unwrap();
        store.remove(&rec.attachment.key()).unwrap();
        assert!(store.load_all().0.is_empty());
    }

    #[test]
    fn attachments_that_would_name_a_path_are_refused() {
        let good = Attachment {
            container_id: "c1".into(),
            network: "lan".into(),
            ifname: "eth0".into(),
            netns: "/run/netns/x".into(),
        };
        good.validate(true).unwrap();
        let bad = |f: &dyn Fn(&mut Attachment)| {
            let mut a = good.clone();
            f(&mut a);
            a.validate(true).unwrap_err()
        };
        type Edit = fn(&mut Attachment);
        type Names = fn(&InvalidField) -> bool;
        let cases: [(Edit, Names); 8] = [
            (
                |a| a.container_id = "../../../tmp/x".into(),
                |e| matches!(e, InvalidField::ContainerId(_)),
            ),
            (
                |a| a.container_id = String::new(),
                |e| matches!(e, InvalidField::ContainerId(_)),
            ),
            (
                |a| a.network = "a/b".into(),
                |e| matches!(e, InvalidField::Network(_)),
            ),
            (
                |a| a.network = ".x".into(),
                |e| matches!(e, InvalidField::Network(_)),
            ),
            (
                |a| a.ifname = "../x".into(),
                |e| matches!(e, InvalidField::Ifname(_)),
            ),
            (
                |a| a.ifname = "a b".into(),
                |e| matches!(e, InvalidField::Ifname(_)),
            ),
            (
                |a| a.ifname = "x".repeat(16),
                |e| matches!(e, InvalidField::Ifname(_)),
            ),
            (
                |a| a.netns = "rel/ns".into(),
                |e| matches!(e, InvalidField::Netns(_)),
            ),
        ];
        for (i, (edit, names_the_field)) in cases.iter().enumerate() {
            let e = bad(edit);
            assert!(names_the_field(&e), "case {i}: {e:?}");
        }
        // GC and STATUS give only the network.
        let gc = Attachment {
            container_id: String::new(),
            ifname: String::new(),
            netns: String::new(),
            ..good.clone()
        };
        gc.validate(false).unwrap();
        assert!(gc.validate(true).is_err());
        // The store refuses a key that is not one file name whatever the caller.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("leases"));
        for key in ["../x", "a/b", ".hidden", ""] {
            assert!(
                matches!(store.remove(key), Err(StoreError::BadKey(_))),
                "{key}"
            );
        }
        // A saved record with a bad attachment is reported, not loaded.
        std::fs::create_dir_all(store.dir()).unwrap();
        let rec = Record {
            attachment: Attachment {
                container_id: "../../x".into(),
                ..good.clone()
            },
            lease: lease(false),
        };
        std::fs::write(
            store.dir().join("planted.json"),
            serde_json::to_vec(&rec).unwrap(),
        )
        .unwrap();
        let (ok, errs) = store.load_all();
        assert!(ok.is_empty());
        assert!(matches!(errs[..], [StoreError::Invalid { .. }]), "{errs:?}");
    }

    #[test]
    fn client_id_is_stable_and_bounded() {
        let mut a = Attachment {
            container_id: "c".into(),
            network: "n".into(),
            ifname: "eth0".into(),
            netns: String::new(),
        };
        assert_eq!(a.client_id(), b"\0c/n/eth0".to_vec());
        a.container_id = "x".repeat(300);
        assert_eq!(a.client_id().len(), 33);
    }
}
