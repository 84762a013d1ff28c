//! The on-disk lease store, compatible with the reference host-local in both
//! directions: `<dataDir>/<network>/<ip>` holds `<container id>\r\n<ifname>`,
//! `last_reserved_ip.<range set>` the last address handed out, and every
//! change happens under an exclusive `flock` on `<dataDir>/<network>/lock`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// A network's lease directory, locked while the value lives.
pub struct Store {
    dir: PathBuf,
    _lock: File,
}

fn key(id: &str, ifname: &str) -> String {
    format!("{}\r\n{ifname}", id.trim())
}

impl Store {
    /// Opens (creating) `<data_dir>/<network>` and takes its lock.
    pub fn open(data_dir: &str, network: &str) -> io::Result<Self> {
        let dir = Path::new(data_dir).join(network);
        fs::create_dir_all(&dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))?;
        loop {
            // SAFETY: flock on an fd we own.
            if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } == 0 {
                break;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
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
        Ok(true)
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

    /// Releases what `id`/`ifname` holds: first the addresses `hint` names
    /// (from prevResult: no directory scan), else a scan.
    pub fn release_by_id(&self, id: &str, ifname: &str, hint: &[IpAddr]) -> io::Result<usize> {
        let mut n = 0;
        for ip in hint {
            if self
                .holder(*ip)
                .is_some_and(|(i, f)| i == id.trim() && f == ifname)
            {
                self.release(*ip)?;
                n += 1;
            }
        }
        if n > 0 {
            return Ok(n);
        }
        for ip in self.by_id(id, ifname) {
            self.release(ip)?;
            n += 1;
        }
        Ok(n)
    }
}
