//! IP masquerade with nftables whose cost does not grow with the pods.
//!
//! One table owned by us, `inet rkt-cni`; its `postrouting` nat chain has
//! two fixed rules (`ip saddr vmap @nets4`, `ip6 saddr vmap @nets6`). Each
//! masqueraded network has one map element per subnet (`subnet : jump
//! masq-<net>`) and one chain `masq-<net>`: traffic to the network's own
//! subnet and to multicast returns, the rest is masqueraded (the reference
//! plugins' rules, without per-pod chains).
//!
//! Which pods use a network is kept in `/run/rkt-cni/masq/<net>/`, one
//! empty file per attachment, under a lock file: the network's nftables
//! state is installed when its first pod arrives and removed with its last
//! pod (the table with the last network). Every other ADD and DEL creates or
//! removes one file and does no nftables work at all. `/run` and the
//! nftables ruleset both start empty at boot, so they stay in step.
//!
//! nftables is driven by `nft -f -` with one atomic script per change: no
//! extra crate, and it only runs at a network's first and last pod. Tables
//! other than ours are never touched.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ipnet::IpNet;

/// Our table (family inet).
pub const TABLE: &str = "rkt-cni";
const STATE_DIR: &str = "/run/rkt-cni/masq";

#[derive(Debug, thiserror::Error)]
pub enum MasqError {
    #[error("ip masquerade: cannot {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ip masquerade: nft failed ({status}): {stderr}")]
    Nft { status: String, stderr: String },
    #[error("ip masquerade: cannot run nft: {0}; install nftables")]
    NoNft(std::io::Error),
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> MasqError + 'a {
    move |source| MasqError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// The exclusive lock on the masquerade state, released on drop.
struct Lock {
    _file: File,
}

impl Lock {
    fn take(root: &Path) -> Result<Self, MasqError> {
        std::fs::create_dir_all(root).map_err(io("create", root))?;
        let path = root.join("lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io("open", &path))?;
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(MasqError::Io {
                what: "lock",
                path,
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(Lock { _file: f })
    }
}

/// The chain of a network: `masq-<name>`, hashed when the name is long.
fn chain_name(network: &str) -> String {
    if network.len() <= 200 {
        format!("masq-{network}")
    } else {
        format!("masq-{}", super::host_veth_name(network, "masq"))
    }
}

fn nft(script: &str) -> Result<(), MasqError> {
    let bin = ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("nft");
    let mut child = Command::new(bin)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(MasqError::NoNft)?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(script.as_bytes());
    }
    let out = child.wait_with_output().map_err(MasqError::NoNft)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(MasqError::Nft {
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr)
                .trim()
                .replace('\n', " "),
        })
    }
}

/// The two scripts that install a network: its chain (and the table), then
/// its map elements. nft 1.0.6 cannot add a `jump` element to a chain made
/// in the same transaction, hence two transactions.
fn install_script(network: &str, subnets: &[IpNet]) -> (String, String) {
    let chain = chain_name(network);
    let mut s = format!(
        "add table inet {TABLE}\n\
         add chain inet {TABLE} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}\n\
         add map inet {TABLE} nets4 {{ type ipv4_addr : verdict; flags interval; }}\n\
         add map inet {TABLE} nets6 {{ type ipv6_addr : verdict; flags interval; }}\n\
         flush chain inet {TABLE} postrouting\n\
         add rule inet {TABLE} postrouting ip saddr vmap @nets4\n\
         add rule inet {TABLE} postrouting ip6 saddr vmap @nets6\n\
         add chain inet {TABLE} {chain}\n\
         flush chain inet {TABLE} {chain}\n"
    );
    for net in subnets {
        let (fam, mc) = if net.addr().is_ipv4() {
            ("ip", "224.0.0.0/4")
        } else {
            ("ip6", "ff00::/8")
        };
        s += &format!(
            "add rule inet {TABLE} {chain} {fam} daddr {} return\n",
            net.trunc()
        );
        s += &format!("add rule inet {TABLE} {chain} {fam} daddr {mc} return\n");
    }
    s += &format!("add rule inet {TABLE} {chain} masquerade\n");
    let mut elements = String::new();
    for net in subnets {
        let map = if net.addr().is_ipv4() {
            "nets4"
        } else {
            "nets6"
        };
        elements += &format!(
            "add element inet {TABLE} {map} {{ {} : jump {chain} }}\n",
            net.trunc()
        );
    }
    (s, elements)
}

fn remove_script(network: &str, subnets: &[IpNet], last: bool) -> String {
    if last {
        return format!("delete table inet {TABLE}\n");
    }
    let chain = chain_name(network);
    let mut s = String::new();
    for net in subnets {
        let map = if net.addr().is_ipv4() {
            "nets4"
        } else {
            "nets6"
        };
        s += &format!("delete element inet {TABLE} {map} {{ {} }}\n", net.trunc());
    }
    s += &format!("flush chain inet {TABLE} {chain}\ndelete chain inet {TABLE} {chain}\n");
    s
}

fn member_name(container_id: &str, ifname: &str) -> String {
    format!("{container_id}-{ifname}")
}

fn dir_is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

/// Masquerades traffic of `subnets` (the attachment's addresses with their
/// prefix) leaving through the host; records the attachment.
pub fn add(
    network: &str,
    container_id: &str,
    ifname: &str,
    subnets: &[IpNet],
) -> Result<(), MasqError> {
    add_at(Path::new(STATE_DIR), network, container_id, ifname, subnets)
}

fn add_at(
    root: &Path,
    network: &str,
    container_id: &str,
    ifname: &str,
    subnets: &[IpNet],
) -> Result<(), MasqError> {
    let _lock = Lock::take(root)?;
    let dir = root.join(network);
    let installed = root.join(format!("{network}.subnets"));
    // The network's subnets so far plus this attachment's (pods of one
    // network may come from several ranges).
    let have = read_subnets(&installed);
    let mut want: Vec<IpNet> = have.clone().unwrap_or_default();
    want.extend(subnets.iter().map(IpNet::trunc));
    want.sort();
    want.dedup();
    if have.as_ref() != Some(&want) {
        // First pod of this network, or a new subnet: (re)build its chain,
        // add the missing map elements.
        let known = have.unwrap_or_default();
        let missing: Vec<IpNet> = want
            .iter()
            .filter(|n| !known.contains(n))
            .copied()
            .collect();
        let (chain, _) = install_script(network, &want);
        let (_, elements) = install_script(network, &missing);
        nft(&chain)?;
        nft(&elements)?;
        let text: Vec<String> = want.iter().map(ToString::to_string).collect();
        std::fs::write(&installed, text.join("\n")).map_err(io("write", &installed))?;
    }
    std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    let member = dir.join(member_name(container_id, ifname));
    File::create(&member).map_err(io("create", &member))?;
    Ok(())
}

fn read_subnets(path: &Path) -> Option<Vec<IpNet>> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(text.lines().filter_map(|l| l.parse().ok()).collect())
}

/// Forgets the attachment; removes the network's masquerade state with its
/// last attachment, and our table with the last network. Idempotent.
pub fn del(network: &str, container_id: &str, ifname: &str) -> Result<(), MasqError> {
    del_at(Path::new(STATE_DIR), network, container_id, ifname)
}

fn del_at(root: &Path, network: &str, container_id: &str, ifname: &str) -> Result<(), MasqError> {
    del_member(root, network, &member_name(container_id, ifname))
}

/// Removes one member file (by name) and, with the last one, the network.
fn del_member(root: &Path, network: &str, member: &str) -> Result<(), MasqError> {
    if !root.exists() {
        return Ok(());
    }
    let _lock = Lock::take(root)?;
    let dir = root.join(network);
    let member = dir.join(member);
    match std::fs::remove_file(&member) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("remove", &member)(e)),
    }
    if !dir_is_empty(&dir) {
        return Ok(());
    }
    let installed = root.join(format!("{network}.subnets"));
    let subnets = read_subnets(&installed).unwrap_or_default();
    let others = std::fs::read_dir(root)
        .map_err(io("read", root))?
        .filter_map(Result::ok)
        .any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.ends_with(".subnets") && name != format!("{network}.subnets")
        });
    nft(&remove_script(network, &subnets, !others))?;
    let _ = std::fs::remove_file(&installed);
    let _ = std::fs::remove_dir(&dir);
    Ok(())
}

/// CNI GC: forgets this network's attachments that are not in `valid`
/// (container ID, interface) and removes the network's state if none is
/// left. Returns how many were forgotten.
pub fn gc(network: &str, valid: &[(String, String)]) -> Result<usize, MasqError> {
    gc_at(Path::new(STATE_DIR), network, valid)
}

fn gc_at(root: &Path, network: &str, valid: &[(String, String)]) -> Result<usize, MasqError> {
    let dir = root.join(network);
    if !dir.exists() {
        return Ok(0);
    }
    let keep: Vec<String> = valid.iter().map(|(c, i)| member_name(c, i)).collect();
    let stale: Vec<String> = {
        let _lock = Lock::take(root)?;
        std::fs::read_dir(&dir)
            .map_err(io("read", &dir))?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !keep.contains(n))
            .collect()
    };
    // Each stale member goes the way of DEL (its own lock, same cleanup).
    for name in &stale {
        del_member(root, network, name)?;
    }
    Ok(stale.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_name_only_our_table() {
        let nets: Vec<IpNet> = vec!["172.16.28.5/24".parse().unwrap()];
        let (s, e) = install_script("default", &nets);
        assert!(s.contains("ip daddr 172.16.28.0/24 return"));
        assert!(e.contains("add element inet rkt-cni nets4 { 172.16.28.0/24 : jump masq-default }"));
        for line in s
            .lines()
            .chain(e.lines())
            .chain(remove_script("default", &nets, false).lines())
        {
            assert!(line.contains(&format!("inet {TABLE}")), "{line}");
        }
        assert_eq!(
            remove_script("x", &nets, true),
            "delete table inet rkt-cni\n"
        );
        assert!(chain_name(&"n".repeat(250)).len() < 30);
    }
}
