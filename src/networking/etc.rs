//! The pod's `/etc/resolv.conf`, `/etc/hosts` and `/etc/hostname`, from the
//! DNS data its networks returned and the DNS flags, written into the pod's
//! upper layer so they appear in its root without touching the image; the
//! decision is recorded in `<pod>/dns.json` for `rkt status` and `list`.

use std::io;
use std::path::{Path, PathBuf};

use tracing::debug;

use super::dns::{self, DnsFlags, HostsFlags};
use crate::pod::manifest::NetRecord;
use crate::pod::Pod;

/// A file of the pod's `/etc` that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum EtcError {
    #[error("{flag}: cannot read the host's {}: {source}", path.display())]
    Host {
        flag: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cannot write {} of pod {pod}: {source}", path.display())]
    Write {
        pod: String,
        path: PathBuf,
        source: io::Error,
    },
}

/// Writes the pod's `/etc` files (see the module comment).
pub fn write(
    pod: &Pod,
    hostname: &str,
    records: &[NetRecord],
    flags: &DnsFlags,
    hosts_flags: &HostsFlags,
) -> Result<(), EtcError> {
    let etc: PathBuf = pod.path("upper/etc");
    let put = |path: &Path, data: &[u8]| -> Result<(), EtcError> {
        std::fs::write(path, data).map_err(|source| EtcError::Write {
            pod: pod.uuid.clone(),
            path: path.to_path_buf(),
            source,
        })
    };
    std::fs::create_dir_all(&etc).map_err(|source| EtcError::Write {
        pod: pod.uuid.clone(),
        path: etc.clone(),
        source,
    })?;
    let results: Vec<_> = records
        .iter()
        .map(|r| (r.name.clone(), r.parsed_result().unwrap_or_default()))
        .collect();
    let host_resolv = if flags.host {
        String::from_utf8_lossy(&read_host("--dns=host", "/etc/resolv.conf")?).into_owned()
    } else {
        String::new()
    };
    let nets: Vec<_> = results
        .iter()
        .map(|(n, r)| {
            let (dns, dropped) = r.dns.checked();
            if !dropped.is_empty() {
                tracing::warn!(
                    "pod {}: network \"{n}\" returned DNS values that cannot go in resolv.conf, ignored: {dropped:?}",
                    pod.uuid
                );
            }
            (n.clone(), dns)
        })
        .collect();
    let (pod_dns, notes) = dns::decide(flags, &nets, &host_resolv);
    for n in notes {
        debug!("{n}");
    }
    let resolv = etc.join("resolv.conf");
    match pod_dns.source.as_str() {
        "host" => put(&resolv, host_resolv.as_bytes())?,
        "none" | "image" => {}
        source => put(&resolv, dns::resolv_conf(&pod_dns.dns, source).as_bytes())?,
    }
    pod.write_json("dns.json", &pod_dns)
        .map_err(|source| EtcError::Write {
            pod: pod.uuid.clone(),
            path: pod.path("dns.json"),
            source,
        })?;
    let hosts = if hosts_flags.host {
        read_host("--hosts-entry=host", "/etc/hosts")?
    } else {
        let first_ip = results
            .iter()
            .find_map(|(_, r)| r.ips.first())
            .map(|i| i.address.addr().to_string());
        dns::hosts(hostname, first_ip.as_deref(), &hosts_flags.entries).into_bytes()
    };
    put(&etc.join("hosts"), &hosts)?;
    put(&etc.join("hostname"), format!("{hostname}\n").as_bytes())
}

fn read_host(flag: &'static str, path: &str) -> Result<Vec<u8>, EtcError> {
    std::fs::read(path).map_err(|source| EtcError::Host {
        flag,
        path: path.into(),
        source,
    })
}
