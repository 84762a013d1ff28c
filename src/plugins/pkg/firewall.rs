//! Per-network nftables state whose cost does not grow with the pods: IP
//! masquerade, host-only isolation and source-address validation.
//!
//! One table owned by us, `inet rkt-cni` (and `bridge rkt-cni` for a
//! host-only bridge network). A network that needs any of it has base
//! chains of its own, named after its [`key`]:
//! - `masq-<key>` (nat, postrouting; `ipMasq`): traffic from the network's
//!   subnets to anywhere but them, multicast or the `nonMasqueradeCIDRs`
//!   (a cluster's pod CIDR) is masqueraded (the reference plugins' rules,
//!   without per-pod chains; the reference cannot exclude a destination).
//! - `fwd-<key>` (filter, forward; `"isolation": "host-only"`): whatever the
//!   host would forward from or to the network's host-side veths is
//!   dropped. The veths are matched by their device group ([`group`], set
//!   when the veth is created), so no rule names a pod. Traffic to the host
//!   itself is input, not forward, and passes. A bridge network also drops
//!   what is routed from or to its bridge, and gets a `fwd-<key>` chain in
//!   `bridge rkt-cni` that drops what the bridge would switch between its
//!   ports of the network (pod to pod at layer 2).
//! - `src-<key>` (filter, prerouting at raw priority; ptp): a packet from a
//!   pod whose source address is not routed back through the veth it came
//!   in on is dropped (`fib saddr . iif oif missing`), IPv4 and IPv6 alike.
//!   The kernel's rp_filter exists for IPv4 only, and a host-wide
//!   `net.ipv4.conf.all.rp_filter=2` (loose) overrides the strict value ptp
//!   sets on its veth. Link-local sources pass (the veth's fe80::/64).
//!
//! What a network has installed is described by its [`Spec`] (the union of
//! what its pods asked for), kept with its pods under `/run/rkt-cni`:
//!
//! ```text
//! /run/rkt-cni/lock                       one lock for all of it
//! /run/rkt-cni/net/<key>/pending          a Spec being installed (JSON)
//! /run/rkt-cni/net/<key>/spec             the Spec installed (JSON)
//! /run/rkt-cni/net/<key>/gen              the removal generation
//! /run/rkt-cni/net/<key>/pods/<cid>-<ifname>   one empty file per attachment
//! ```
//!
//! State comes first: an ADD that changes what is installed writes
//! `pending`, records its pod, runs `nft`, then renames `pending` to
//! `spec`; an ADD that finds its needs in `spec` only records its pod (no
//! nftables work). A killed or failing ADD thus leaves state that
//! [`reconcile`] (the plugins' CNI GC verb, so `rkt gc`) sees: it removes
//! state without pods, reinstalls the chains of every network with pods
//! (after `nft flush ruleset` they come back), and removes chains no state
//! names, in one transaction. A network's chains are removed half a second
//! after its last pod left, by a detached helper, unless a pod came back
//! (the tables with the last network). `/run` and the nftables ruleset both
//! start empty at boot.
//!
//! nftables is driven by `nft -f -` with one atomic script per change (one
//! exec at a network's first pod, one at its last, none in between): no
//! extra crate for a few small scripts. Tables other than ours are never
//! touched.

use std::fs::File;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Our tables (family inet, and bridge for host-only bridge networks).
pub const TABLE: &str = "rkt-cni";
const ROOT: &str = "/run/rkt-cni";
/// Where the masquerade state of earlier versions lived (the next ADD or
/// [`reconcile`] adopts it).
const OLD_MASQ_DIR: &str = "masq";

#[derive(Debug, thiserror::Error)]
pub enum FwError {
    #[error("nftables state: cannot {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("nftables state: {0}")]
    Nft(#[from] super::nft::NftError),
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> FwError + 'a {
    move |source| FwError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// What a network needs from nftables: the union of what its attachments
/// asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// The network's name (the key may be derived from it).
    pub network: String,
    /// `ipMasq`: masquerade traffic from `subnets` leaving the host.
    #[serde(default)]
    pub masq: bool,
    /// `"isolation": "host-only"`: nothing forwarded from or to the pods.
    #[serde(default)]
    pub host_only: bool,
    /// ptp: pods can only send from their own addresses.
    #[serde(default)]
    pub src_check: bool,
    /// Host-only bridge networks: their bridges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bridges: Vec<String>,
    /// The network's subnets (the pods' addresses with their prefix).
    #[serde(default)]
    pub subnets: Vec<IpNet>,
    /// `nonMasqueradeCIDRs`: destinations besides `subnets` that traffic
    /// from the pods reaches unmasqueraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub no_masq: Vec<IpNet>,
}

impl Spec {
    /// `self` and `other` together.
    fn merge(&self, other: &Spec) -> Spec {
        let union = |a: &[IpNet], b: &[IpNet]| {
            let mut all: Vec<IpNet> = a.iter().chain(b).map(IpNet::trunc).collect();
            all.sort();
            all.dedup();
            all
        };
        let mut bridges: Vec<String> = self.bridges.iter().chain(&other.bridges).cloned().collect();
        bridges.sort();
        bridges.dedup();
        Spec {
            network: if self.network.is_empty() {
                other.network.clone()
            } else {
                self.network.clone()
            },
            masq: self.masq || other.masq,
            host_only: self.host_only || other.host_only,
            src_check: self.src_check || other.src_check,
            bridges,
            subnets: union(&self.subnets, &other.subnets),
            no_masq: union(&self.no_masq, &other.no_masq),
        }
    }

    fn has_v6(&self) -> bool {
        self.subnets.iter().any(|n| n.addr().is_ipv6())
    }

    /// The chains this spec installs.
    fn chains(&self) -> Vec<Chain> {
        let key = key(&self.network);
        let group = group(&self.network);
        let mut out = Vec::new();
        if self.masq && !self.subnets.is_empty() {
            let mut rules = Vec::new();
            for v4 in [true, false] {
                let of_family = |nets: &[IpNet]| -> Vec<String> {
                    nets.iter()
                        .filter(|n| n.addr().is_ipv4() == v4)
                        .map(|n| n.trunc().to_string())
                        .collect()
                };
                let own = of_family(&self.subnets);
                if own.is_empty() {
                    continue;
                }
                let (fam, mc) = if v4 {
                    ("ip", "224.0.0.0/4")
                } else {
                    ("ip6", "ff00::/8")
                };
                let set = own.join(", ");
                let mut unmasked = own;
                unmasked.extend(of_family(&self.no_masq));
                // An interval set: a cluster CIDR may hold the subnet.
                let unmasked = unmasked.join(", ");
                rules.push(format!(
                    "{fam} saddr {{ {set} }} {fam} daddr != {{ {unmasked} }} {fam} daddr != {mc} masquerade"
                ));
            }
            out.push(Chain {
                family: "inet",
                name: format!("masq-{key}"),
                hook: "type nat hook postrouting priority srcnat",
                rules,
            });
        }
        if self.host_only {
            let mut rules = vec![
                format!("iifgroup {group} drop"),
                format!("oifgroup {group} drop"),
            ];
            for b in &self.bridges {
                rules.push(format!("iifname \"{b}\" drop"));
                rules.push(format!("oifname \"{b}\" drop"));
            }
            out.push(Chain {
                family: "inet",
                name: format!("fwd-{key}"),
                hook: "type filter hook forward priority filter",
                rules,
            });
            if !self.bridges.is_empty() {
                out.push(Chain {
                    family: "bridge",
                    name: format!("fwd-{key}"),
                    hook: "type filter hook forward priority filter",
                    rules: vec![
                        format!("iifgroup {group} drop"),
                        format!("oifgroup {group} drop"),
                    ],
                });
            }
        }
        // The source check comes with any other state of the network, or
        // on its own for IPv6 (which has no rp_filter).
        if self.src_check && (!out.is_empty() || self.has_v6()) {
            out.push(Chain {
                family: "inet",
                name: format!("src-{key}"),
                hook: "type filter hook prerouting priority raw",
                rules: vec![format!("iifgroup {group} fib saddr . iif oif missing drop")],
            });
        }
        out
    }
}

/// One base chain of a network.
struct Chain {
    family: &'static str,
    name: String,
    hook: &'static str,
    rules: Vec<String>,
}

impl Chain {
    fn declare(&self) -> String {
        format!(
            "add table {f} {TABLE}\nadd chain {f} {TABLE} {n} {{ {h}; policy accept; }}\n",
            f = self.family,
            n = self.name,
            h = self.hook
        )
    }

    /// Creates or refills the chain.
    fn install(&self) -> String {
        let mut s = self.declare();
        s += &format!("flush chain {} {TABLE} {}\n", self.family, self.name);
        for r in &self.rules {
            s += &format!("add rule {} {TABLE} {} {r}\n", self.family, self.name);
        }
        s
    }

    /// Deletes the chain whether or not it exists.
    fn remove(&self) -> String {
        self.declare() + &format!("delete chain {} {TABLE} {}\n", self.family, self.name)
    }
}

/// The name a network's state and chains go by: the network name itself
/// when it has at most 64 characters (names reaching a plugin are letters,
/// digits, `_ . -`: see [`crate::cni::config::valid_name`]), else its first
/// 48 characters, `-` and 16 hex digits of a hash of the whole name (65
/// characters, so never a kept name). Keys are safe as file names and as
/// nftables chain names, and no two networks share one (`lock` or
/// `x.subnets` included: the key is a directory of its own).
pub fn key(network: &str) -> String {
    if network.len() <= 64 {
        return network.to_string();
    }
    let d = Sha256::digest(network.as_bytes());
    let hex: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
    let head: String = network.chars().take(48).collect();
    format!("{head}-{hex}")
}

/// The device group of a network's host-side veths: 30 bits of a hash of
/// its name above 2^30 (far from the small numbers people assign, and
/// positive where `ip link` prints it signed). Two networks sharing one
/// (one chance in 2^30 per pair) would share their isolation: the error is
/// on the closed side.
pub fn group(network: &str) -> u32 {
    let d = Sha256::digest(network.as_bytes());
    0x4000_0000 | (u32::from_be_bytes([d[0], d[1], d[2], d[3]]) & 0x3fff_ffff)
}

fn nft(script: &str) -> Result<(), FwError> {
    super::nft::apply(script).map_err(FwError::from)
}

/// The exclusive lock on all of the state, released on drop.
fn lock(root: &Path) -> Result<crate::lock::FileLock, FwError> {
    std::fs::create_dir_all(root).map_err(io("create", root))?;
    let path = root.join("lock");
    crate::lock::FileLock::acquire(&path).map_err(io("lock", &path))
}

fn net_dir(root: &Path, network: &str) -> PathBuf {
    root.join("net").join(key(network))
}

fn read_spec(path: &Path) -> Option<Spec> {
    let text = std::fs::read(path).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Writes `spec` to `path` whole or not at all (a temporary file renamed
/// into place: a process killed mid-write leaves no truncated spec).
fn write_spec(path: &Path, spec: &Spec) -> Result<(), FwError> {
    let text = serde_json::to_vec(spec).unwrap_or_default();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(io("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("rename", &tmp))
}

/// What the network dir `dir` describes: `spec` and `pending` together.
fn read_state(dir: &Path) -> Option<Spec> {
    match (
        read_spec(&dir.join("spec")),
        read_spec(&dir.join("pending")),
    ) {
        (Some(a), Some(b)) => Some(a.merge(&b)),
        (a, b) => a.or(b),
    }
}

fn dir_is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

/// Records the attachment and makes sure the network's chains cover
/// `want`. Nothing to do (no lock, no file) when `want` needs no nftables
/// state.
pub fn add(want: &Spec, container_id: &str, ifname: &str) -> Result<(), FwError> {
    add_at(Path::new(ROOT), want, container_id, ifname)
}

fn add_at(root: &Path, want: &Spec, container_id: &str, ifname: &str) -> Result<(), FwError> {
    if want.chains().is_empty() {
        return Ok(());
    }
    let _lock = lock(root)?;
    // After an upgrade with pods running (one stat otherwise).
    if root.join(OLD_MASQ_DIR).exists() {
        adopt_old_masq(root);
    }
    let dir = net_dir(root, &want.network);
    let pods = dir.join("pods");
    std::fs::create_dir_all(&pods).map_err(io("create", &pods))?;
    let have = read_spec(&dir.join("spec"));
    let merged = have.clone().unwrap_or_default().merge(want);
    let member = pods.join(crate::cni::skeleton::attachment_file_name(
        container_id,
        ifname,
    ));
    if have.as_ref() == Some(&merged) {
        File::create(&member).map_err(io("create", &member))?;
        return Ok(());
    }
    // First pod, or something new (a subnet, a feature): state first,
    // then the rules, then what is installed.
    let pending = dir.join("pending");
    write_spec(&pending, &merged)?;
    let script: String = merged.chains().iter().map(Chain::install).collect();
    let spec = dir.join("spec");
    let installed = File::create(&member)
        .map_err(io("create", &member))
        .and_then(|_| nft(&script))
        .and_then(|()| std::fs::rename(&pending, &spec).map_err(io("rename", &pending)));
    if installed.is_err() {
        // nft applies a script whole or not at all: what is installed is
        // still `spec` (nothing for a first pod, whose state goes).
        let _ = std::fs::remove_file(&member);
        let _ = std::fs::remove_file(&pending);
        if have.is_none() && dir_is_empty(&pods) {
            remove_state(&dir);
        }
    }
    installed
}

/// Forgets the attachment; with the network's last one, its chains go
/// (after a grace period), and our tables with the last network.
/// Idempotent, and a single failed unlink for an attachment that had none.
pub fn del(network: &str, container_id: &str, ifname: &str) -> Result<(), FwError> {
    del_member(
        Path::new(ROOT),
        network,
        &crate::cni::skeleton::attachment_file_name(container_id, ifname),
    )
}

/// Removes one member file (by name) and, with the last one, schedules the
/// removal of the network's chains.
fn del_member(root: &Path, network: &str, member: &str) -> Result<(), FwError> {
    let dir = net_dir(root, network);
    let path = dir.join("pods").join(member);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("remove", &path)(e)),
    }
    let _lock = lock(root)?;
    // A removal that ran meanwhile may have taken the directory.
    if !dir.exists() || !dir_is_empty(&dir.join("pods")) {
        return Ok(());
    }
    // The network's last pod left: its chains go after a short grace
    // period (see [`remove_later`]).
    let gen_path = dir.join("gen");
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
pub const CLEANUP_ENV: &str = "RKT_FW_CLEANUP";
const CLEANUP_GEN_ENV: &str = "RKT_FW_CLEANUP_GEN";
const CLEANUP_ROOT_ENV: &str = "RKT_FW_ROOT";

/// How long a network's state outlives its last pod, so that pods started
/// back to back reuse it instead of rebuilding it each time.
const GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// Removes a network's nftables state without making DEL wait for it.
/// Deleting nftables objects costs 10-15 ms of kernel time here (an RCU
/// grace period). A detached copy of this plugin (its own process group, no
/// stdio) waits [`GRACE`], takes the lock, and removes the state only if no
/// pod came back and no later last pod scheduled a removal of its own (the
/// generation `gen` is still current) ([`super::detached::spawn_detached`]). When the
/// copy cannot be started, the removal happens here.
fn remove_later(root: &Path, network: &str, gen: u64) {
    let gen_s = gen.to_string();
    let spawned = super::detached::spawn_detached(&[
        (CLEANUP_ENV, network.as_ref()),
        (CLEANUP_GEN_ENV, gen_s.as_ref()),
        (CLEANUP_ROOT_ENV, root.as_os_str()),
    ]);
    if spawned.is_err() {
        let _ = remove_if_idle(root, network, gen);
    }
}

/// The background removal that [`remove_later`] started.
pub fn cleanup(network: &str) -> Result<(), FwError> {
    let root = std::env::var_os(CLEANUP_ROOT_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(ROOT));
    let gen = std::env::var(CLEANUP_GEN_ENV)
        .ok()
        .and_then(|g| g.parse().ok())
        .unwrap_or(0);
    std::thread::sleep(GRACE);
    let _lock = lock(&root)?;
    remove_if_idle(&root, network, gen)
}

/// Whether a network other than `key` has state.
fn others_have_state(root: &Path, key: &str) -> bool {
    std::fs::read_dir(root.join("net"))
        .map(|d| {
            d.filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy() != key)
        })
        .unwrap_or(false)
}

/// Removes the network's chains and state (and our tables with the last
/// network) if it has no pod and `gen` is its latest removal request. Call
/// under the lock. The chains go first: state without chains is harmless,
/// chains without state would stay.
fn remove_if_idle(root: &Path, network: &str, gen: u64) -> Result<(), FwError> {
    let dir = net_dir(root, network);
    let current = std::fs::read_to_string(dir.join("gen"))
        .ok()
        .and_then(|g| g.trim().parse::<u64>().ok());
    if current != Some(gen) || !dir_is_empty(&dir.join("pods")) {
        return Ok(());
    }
    let spec = read_state(&dir).unwrap_or_default();
    let chains = spec.chains();
    let script: String = if others_have_state(root, &key(network)) {
        chains.iter().map(Chain::remove).collect()
    } else {
        let mut families: Vec<&str> = chains.iter().map(|c| c.family).collect();
        families.push("inet");
        families.sort();
        families.dedup();
        families
            .iter()
            .map(|f| format!("add table {f} {TABLE}\ndelete table {f} {TABLE}\n"))
            .collect()
    };
    if !script.is_empty() {
        nft(&script)?;
    }
    remove_state(&dir);
    Ok(())
}

/// Removes a network's state directory (its pods are gone).
fn remove_state(dir: &Path) {
    for f in ["spec", "pending", "gen", "spec.tmp", "pending.tmp"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let _ = std::fs::remove_dir(dir.join("pods"));
    let _ = std::fs::remove_dir(dir);
}

/// CNI GC: forgets this network's attachments that are not in `valid`
/// (container ID, interface), then [`reconcile`]s nftables with the state.
/// Returns how many attachments were forgotten.
pub fn gc(network: &str, valid: &[(String, String)]) -> Result<usize, FwError> {
    let root = Path::new(ROOT);
    let n = gc_members(root, network, valid)?;
    reconcile_at(root)?;
    Ok(n)
}

fn gc_members(root: &Path, network: &str, valid: &[(String, String)]) -> Result<usize, FwError> {
    let pods = net_dir(root, network).join("pods");
    if !pods.exists() {
        return Ok(0);
    }
    let keep: Vec<String> = valid
        .iter()
        .map(|(c, i)| crate::cni::skeleton::attachment_file_name(c, i))
        .collect();
    let stale: Vec<String> = {
        let _lock = lock(root)?;
        let entries = match std::fs::read_dir(&pods) {
            Ok(e) => e,
            // Its last pod left while we waited for the lock.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io("read", &pods)(e)),
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

/// Brings nftables in line with the state, in both directions, in one
/// transaction: the state of a network without pods is removed, the chains
/// of every network with pods are installed afresh (whatever happened to
/// them, e.g. `nft flush ruleset`), and chains no state names go with our
/// tables, which are rebuilt. Masquerade state of earlier versions
/// (`/run/rkt-cni/masq`) is adopted first. Without nft there is nothing to
/// reconcile.
pub fn reconcile() -> Result<(), FwError> {
    reconcile_at(Path::new(ROOT))
}

fn reconcile_at(root: &Path) -> Result<(), FwError> {
    if super::nft::bin().is_none() {
        return Ok(());
    }
    let _lock = lock(root)?;
    adopt_old_masq(root);
    let mut live: Vec<(PathBuf, Spec)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(root.join("net")) {
        for e in entries.filter_map(Result::ok) {
            let dir = e.path();
            match read_state(&dir) {
                Some(spec) if !dir_is_empty(&dir.join("pods")) => live.push((dir, spec)),
                _ => remove_state(&dir),
            }
        }
    }
    let listing = super::nft::run(&["-j", "list", "tables"], "")?;
    let mut script: String = super::nft::tables_named(&listing, TABLE)
        .iter()
        .map(|f| format!("delete table {f} {TABLE}\n"))
        .collect();
    for (_, spec) in &live {
        script += &spec.chains().iter().map(Chain::install).collect::<String>();
    }
    if script.is_empty() {
        return Ok(());
    }
    nft(&script)?;
    for (dir, spec) in &live {
        write_spec(&dir.join("spec"), spec)?;
        let _ = std::fs::remove_file(dir.join("pending"));
    }
    Ok(())
}

/// Turns the masquerade state of earlier versions (`masq/<net>/<member>`,
/// `masq/<net>.subnets`) into state of this one (`pending`: the old chain
/// `masq-<net>` has the same name and is refilled by the network's next
/// change), once. Call under the lock.
fn adopt_old_masq(root: &Path) {
    let old = root.join(OLD_MASQ_DIR);
    let Ok(entries) = std::fs::read_dir(&old) else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(network) = name.strip_suffix(".subnets") else {
            continue;
        };
        let subnets: Vec<IpNet> = std::fs::read_to_string(e.path())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect();
        let members: Vec<String> = std::fs::read_dir(old.join(network))
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|m| m.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        if members.is_empty() || !crate::cni::config::valid_name(network) {
            continue;
        }
        let want = Spec {
            network: network.to_string(),
            masq: true,
            subnets,
            ..Default::default()
        };
        let dir = net_dir(root, network);
        let pods = dir.join("pods");
        if std::fs::create_dir_all(&pods).is_err() {
            continue;
        }
        let spec = read_state(&dir).unwrap_or_default().merge(&want);
        let _ = write_spec(&dir.join("pending"), &spec);
        for m in members {
            let _ = File::create(pods.join(m));
        }
    }
    let _ = std::fs::remove_dir_all(&old);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(masq: bool, host_only: bool, src: bool, nets: &[&str]) -> Spec {
        Spec {
            network: "default".into(),
            masq,
            host_only,
            src_check: src,
            bridges: vec![],
            subnets: nets.iter().map(|n| n.parse().unwrap()).collect(),
            no_masq: vec![],
        }
    }

    fn script(s: &Spec) -> String {
        s.chains().iter().map(Chain::install).collect()
    }

    #[test]
    fn non_masquerade_cidrs_join_the_unmasqueraded_destinations() {
        let mut a = spec(true, false, false, &["10.244.1.7/24"]);
        a.no_masq = vec!["10.244.0.0/16".parse().unwrap()];
        let b = spec(true, false, false, &["10.244.1.9/24", "fd00::9/64"]);
        let both = b.merge(&a);
        assert_eq!(both.no_masq, a.no_masq, "kept by a merge");
        let s = script(&both);
        assert!(
            s.contains("ip saddr { 10.244.1.0/24 } ip daddr != { 10.244.1.0/24, 10.244.0.0/16 } ip daddr != 224.0.0.0/4 masquerade"),
            "{s}"
        );
        assert!(
            s.contains("ip6 daddr != { fd00::/64 }"),
            "IPv4 CIDRs stay in IPv4 rules: {s}"
        );
    }

    #[test]
    fn scripts_name_only_our_tables() {
        let s = script(&spec(true, true, true, &["172.16.28.5/24", "fd00::5/64"]));
        assert!(s.contains("ip saddr { 172.16.28.0/24 } ip daddr != { 172.16.28.0/24 } ip daddr != 224.0.0.0/4 masquerade"), "{s}");
        assert!(s.contains("ip6 saddr { fd00::/64 }"), "{s}");
        let g = group("default");
        assert!(
            s.contains(&format!(
                "add rule inet rkt-cni fwd-default iifgroup {g} drop"
            )),
            "{s}"
        );
        assert!(
            s.contains(&format!(
                "add rule inet rkt-cni fwd-default oifgroup {g} drop"
            )),
            "{s}"
        );
        assert!(
            s.contains(&format!(
                "src-default iifgroup {g} fib saddr . iif oif missing drop"
            )),
            "{s}"
        );
        for line in s.lines() {
            assert!(line.contains(&format!("inet {TABLE}")), "{line}");
        }
    }

    #[test]
    fn what_needs_chains() {
        // Plain IPv4 ptp: rp_filter only, no nftables at all.
        assert!(spec(false, false, true, &["10.1.0.0/24"])
            .chains()
            .is_empty());
        // IPv6: the source check.
        let c = spec(false, false, true, &["10.1.0.0/24", "fd00::/64"]).chains();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].name, "src-default");
        // Host-only: forward and source chains.
        let names: Vec<String> = spec(false, true, true, &["10.1.0.0/24"])
            .chains()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["fwd-default", "src-default"]);
        // A host-only bridge network: the bridge table too, no source check.
        let mut b = spec(false, true, false, &[]);
        b.bridges = vec!["cni0".into()];
        let c = b.chains();
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].family, "bridge");
        assert!(c[0].rules.contains(&"iifname \"cni0\" drop".to_string()));
    }

    #[test]
    fn keys_are_safe_and_distinct() {
        assert_eq!(key("lock"), "lock");
        assert_eq!(key("x.subnets"), "x.subnets");
        let sixty = "n".repeat(60);
        assert_eq!(key(&sixty), sixty);
        let long = "a".repeat(253);
        let k = key(&long);
        assert_eq!(k.len(), 65);
        assert_ne!(k, key(&"a".repeat(252)));
        assert!(k
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)));
        assert_ne!(group("default"), group("default-restricted"));
        assert!((0x4000_0000..0x8000_0000).contains(&group("x")));
        assert!(crate::cni::skeleton::attachment_file_name(&"c".repeat(253), "eth0").len() <= 200);
    }

    #[test]
    fn merge_is_a_union() {
        let a = spec(true, false, true, &["10.1.0.0/24"]);
        let b = spec(false, true, false, &["10.1.0.7/24", "10.2.0.0/24"]);
        let m = a.merge(&b);
        assert!(m.masq && m.host_only && m.src_check);
        assert_eq!(m.subnets.len(), 2);
        assert_eq!(m.merge(&a), m);
    }
}
