//! The on-disk lease store, compatible with the reference host-local in both
//! directions: `<dataDir>/<network>/<ip>` holds `<container id>\r\n<ifname>`,
//! `last_reserved_ip.<range set>` the last address handed out, and every
//! change happens under an exclusive `flock` on `<dataDir>/<network>/lock`.
//!
//! Beside the leases, `.attach/<id>:<ifname>` lists the addresses an
//! attachment was given, so ADD's duplicate check and DEL find them without
//! reading every lease. It is only a hint: every address in it is checked
//! against its lease file, and a lease the reference wrote (without a hint)
//! is found by a scan when DEL has nothing better.

use std::fs::{self, OpenOptions};

use crate::lock::FileLock;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// A network's lease directory, locked while the value lives.
pub struct Store {
    dir: PathBuf,
    _lock: FileLock,
}

fn key(id: &str, ifname: &str) -> String {
    format!("{}\r\n{ifname}", id.trim())
}

/// Container IDs and interface names never contain ':' or '/'.
fn hint_name(id: &str, ifname: &str) -> String {
    format!("{}:{ifname}", id.trim())
}

impl Store {
    /// Opens (creating) `<data_dir>/<network>` and takes its lock.
    pub fn open(data_dir: &str, network: &str) -> io::Result<Self> {
        let dir = Path::new(data_dir).join(network);
        fs::create_dir_all(&dir)?;
        let lock = FileLock::acquire(&dir.join("lock"))?;
        Ok(Store { dir, _lock: lock })
    }

    /// Reserves `ip` for `id`/`ifname`; false when someone holds it.
    pub fn reserve(&self, id: &str, ifname: &str, ip: IpAddr, set: usize) -> io::Result<bool> {
        let path = self.dir.join(ip.to_string());
        let mut f = match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(e),
        };
        if let Err(e) = f.write_all(key(id, ifname).as_bytes()) {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        fs::write(
            self.dir.join(format!("last_reserved_ip.{set}")),
            ip.to_string(),
        )?;
        let hints = self.dir.join(".attach");
        fs::create_dir_all(&hints)?;
        let mut h = OpenOptions::new()
            .create(true)
            .append(true)
            .open(hints.join(hint_name(id, ifname)))?;
        writeln!(h, "{ip}")?;
        Ok(true)
    }

    /// The addresses the hint file lists that `id`/`ifname` really holds.
    pub fn hinted(&self, id: &str, ifname: &str) -> Vec<IpAddr> {
        let Ok(text) = fs::read_to_string(self.dir.join(".attach").join(hint_name(id, ifname)))
        else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|l| l.trim().parse().ok())
            .filter(|ip| {
                self.holder(*ip)
                    .is_some_and(|(i, f)| i == id.trim() && f == ifname)
            })
            .collect()
    }

    fn forget_hint(&self, id: &str, ifname: &str) {
        let _ = fs::remove_file(self.dir.join(".attach").join(hint_name(id, ifname)));
    }

    /// Removes the hints of attachments `keep` does not accept.
    pub fn prune_hints(&self, keep: impl Fn(&str, &str) -> bool) {
        let Ok(entries) = fs::read_dir(self.dir.join(".attach")) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some((id, ifname)) = name.split_once(':') {
                if !keep(id, ifname) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }

    pub fn last_reserved(&self, set: usize) -> Option<IpAddr> {
        fs::read_to_string(self.dir.join(format!("last_reserved_ip.{set}")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Who holds `ip`: `(id, ifname)`; a legacy file holds only the id.
    pub fn holder(&self, ip: IpAddr) -> Option<(String, String)> {
        let data = fs::read_to_string(self.dir.join(ip.to_string())).ok()?;
        let data = data.trim();
        Some(match data.split_once("\r\n") {
            Some((id, ifname)) => (id.to_string(), ifname.to_string()),
            None => (data.to_string(), String::new()),
        })
    }

    /// Every lease: `(ip, id, ifname)`.
    pub fn leases(&self) -> Vec<(IpAddr, String, String)> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<IpAddr>().ok())
            .filter_map(|ip| self.holder(ip).map(|(id, ifn)| (ip, id, ifn)))
            .collect()
    }

    /// The addresses `id`/`ifname` holds.
    pub fn by_id(&self, id: &str, ifname: &str) -> Vec<IpAddr> {
        self.leases()
            .into_iter()
            .filter(|(_, i, f)| i == id.trim() && (f == ifname || f.is_empty()))
            .map(|(ip, _, _)| ip)
            .collect()
    }

    pub fn release(&self, ip: IpAddr) -> io::Result<()> {
        match fs::remove_file(self.dir.join(ip.to_string())) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Releases what `id`/`ifname` holds: the addresses `prev` (from
    /// prevResult) and the hint file name when they are really its, else
    /// whatever a scan finds.
    pub fn release_by_id(&self, id: &str, ifname: &str, prev: &[IpAddr]) -> io::Result<usize> {
        let mut held: Vec<IpAddr> = prev
            .iter()
            .copied()
            .filter(|ip| {
                self.holder(*ip)
                    .is_some_and(|(i, f)| i == id.trim() && f == ifname)
            })
            .collect();
        held.extend(self.hinted(id, ifname));
        held.sort();
        held.dedup();
        if held.is_empty() {
            held = self.by_id(id, ifname);
        }
        for ip in &held {
            self.release(*ip)?;
        }
        self.forget_hint(id, ifname);
        Ok(held.len())
    }
}
