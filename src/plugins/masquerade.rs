//! IP masquerade with nftables whose cost does not grow with the pods.
//!
//! One table owned by us, `inet rkt-cni`. Each masqueraded network has one
//! base chain `masq-<net>` on the postrouting hook with one rule per address
//! family: from the network's subnets, to anywhere but them or multicast,
//! masquerade (the reference plugins' rules, without per-pod chains).
//!
//! Which pods use a network is kept in `/run/rkt-cni/masq/<net>/`, one
//! empty file per attachment, under a lock file: the network's nftables
//! state is installed when its first pod arrives and removed half a second
//! after its last pod left, by a detached helper, unless a pod came back
//! (the table with the last network). Every other ADD and DEL creates or
//! removes one file and does no nftables work at all. `/run` and the
//! nftables ruleset both start empty at boot, so they stay in step.
//!
//! nftables is driven by `nft -f -` with one atomic script per change (one
//! exec at a network's first pod, one at its last, none in between): no
//! extra crate for two small scripts. Tables
//! other than ours are never touched.

use std::fs::File;
use std::io::Write;
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
fn lock(root: &Path) -> Result<crate::lock::FileLock, MasqError> {
    std::fs::create_dir_all(root).map_err(io("create", root))?;
    let path = root.join("lock");
    crate::lock::FileLock::acquire(&path).map_err(io("lock", &path))
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

/// The script that installs a network: our table (if new) and the
/// network's own base chain on the postrouting hook, so one transaction
/// installs it and deleting the chain removes it. Traffic from the
/// network's subnets to anywhere but the subnets or multicast is
/// masqueraded (the reference plugins' rules, without per-pod chains).
fn install_script(network: &str, subnets: &[IpNet]) -> String {
    let chain = chain_name(network);
    let mut s = format!(
        "add table inet {TABLE}\n\
         add chain inet {TABLE} {chain} {{ type nat hook postrouting priority srcnat; policy accept; }}\n\
         flush chain inet {TABLE} {chain}\n"
    );
    for fam in ["ip", "ip6"] {
        let own: Vec<String> = subnets
            .iter()
            .filter(|n| n.addr().is_ipv4() == (fam == "ip"))
            .map(|n| n.trunc().to_string())
            .collect();
        if own.is_empty() {
            continue;
        }
        let set = own.join(", ");
        let mc = if fam == "ip" {
            "224.0.0.0/4"
        } else {
            "ff00::/8"
        };
        s += &format!(
            "add rule inet {TABLE} {chain} {fam} saddr {{ {set} }} {fam} daddr != {{ {set} }} {fam} daddr != {mc} masquerade\n"
        );
    }
    s
}

fn remove_script(network: &str, last: bool) -> String {
    if last {
        return format!("delete table inet {TABLE}\n");
    }
    let chain = chain_name(network);
    format!("delete chain inet {TABLE} {chain}\n")
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
    let _lock = lock(root)?;
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
        // First pod of this network, or a new subnet: (re)build its chain
        // in one transaction (the script flushes and refills it).
        nft(&install_script(network, &want))?;
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
    let _lock = lock(root)?;
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
    // The network's last pod left: its nftables state goes after a short
    // grace period (see [`remove_later`]).
    let gen_path = root.join(format!("{network}.gen"));
    let gen = std::fs::read_to_string(&gen_path)
        .ok()
        .and_then(|g| g.trim().parse::<u64>().ok())
        .unwrap_or(0)
        + 1;
    std::fs::write(&gen_path, gen.to_string()).map_err(io("write", &gen_path))?;
    remove_later(root, network, gen);
    Ok(())
}

/// Environment variables that make a plugin binary the background remover
/// of a network's nftables state (see [`remove_later`]).
pub const CLEANUP_ENV: &str = "RKT_MASQ_CLEANUP";
const CLEANUP_GEN_ENV: &str = "RKT_MASQ_CLEANUP_GEN";
const CLEANUP_ROOT_ENV: &str = "RKT_MASQ_ROOT";

/// How long a network's state outlives its last pod, so that pods started
/// back to back reuse it instead of rebuilding it each time.
const GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// Removes a network's nftables state without making DEL wait for it.
/// Deleting nftables objects costs 10-15 ms of kernel time here (an RCU
/// grace period). A detached copy of this plugin (its own process group, no
/// stdio) waits [`GRACE`], takes the lock, and removes the state only if no
/// pod came back and no later last pod scheduled a removal of its own (the
/// generation `gen` is still current) ([`super::spawn_detached`]). When the
/// copy cannot be started, the removal happens here.
fn remove_later(root: &Path, network: &str, gen: u64) {
    let gen_s = gen.to_string();
    let spawned = super::spawn_detached(&[
        (CLEANUP_ENV, network.as_ref()),
        (CLEANUP_GEN_ENV, gen_s.as_ref()),
        (CLEANUP_ROOT_ENV, root.as_os_str()),
    ]);
    if spawned.is_err() {
        let _ = remove_if_idle(root, network, gen);
    }
}

/// The background removal that [`remove_later`] started.
pub fn cleanup(network: &str) -> Result<(), MasqError> {
    let root = std::env::var_os(CLEANUP_ROOT_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(STATE_DIR));
    let gen = std::env::var(CLEANUP_GEN_ENV)
        .ok()
        .and_then(|g| g.parse().ok())
        .unwrap_or(0);
    std::thread::sleep(GRACE);
    let _lock = lock(&root)?;
    remove_if_idle(&root, network, gen)
}

/// Removes the network's state (and our table with the last network) if it
/// has no pod and `gen` is its latest removal request. Call under the lock.
fn remove_if_idle(root: &Path, network: &str, gen: u64) -> Result<(), MasqError> {
    let gen_path = root.join(format!("{network}.gen"));
    let current = std::fs::read_to_string(&gen_path)
        .ok()
        .and_then(|g| g.trim().parse::<u64>().ok());
    if current != Some(gen) || !dir_is_empty(&root.join(network)) {
        return Ok(());
    }
    let installed = root.join(format!("{network}.subnets"));
    let _ = std::fs::remove_file(&installed);
    let _ = std::fs::remove_file(&gen_path);
    let _ = std::fs::remove_dir(root.join(network));
    let others = std::fs::read_dir(root)
        .map_err(io("read", root))?
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().ends_with(".subnets"));
    nft(&remove_script(network, !others))
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
        let _lock = lock(root)?;
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            // Its last pod left while we waited for the lock.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io("read", &dir)(e)),
        };
        entries
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
        let nets: Vec<IpNet> = vec![
            "172.16.28.5/24".parse().unwrap(),
            "fd00::5/64".parse().unwrap(),
        ];
        let s = install_script("default", &nets);
        assert!(s.contains("ip saddr { 172.16.28.0/24 } ip daddr != { 172.16.28.0/24 } ip daddr != 224.0.0.0/4 masquerade"), "{s}");
        assert!(s.contains("ip6 saddr { fd00::/64 }"), "{s}");
        for line in s.lines().chain(remove_script("default", false).lines()) {
            assert!(line.contains(&format!("inet {TABLE}")), "{line}");
        }
        assert_eq!(remove_script("x", true), "delete table inet rkt-cni\n");
        assert!(chain_name(&"n".repeat(250)).len() < 30);
    }
}
