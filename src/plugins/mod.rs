//! The project's own CNI plugins (ptp, bridge, macvlan) and what they
//! share: IPAM delegation, IP masquerade with nftables, config parsing, the
//! plugin error type, and applying an IPAM result to a pod interface.

pub mod bridge;
pub mod ipam;
pub mod loopback;
pub mod macvlan;
pub mod masquerade;
pub mod ptp;
mod setup;
pub mod teardown;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::cni::{codes, CniError};
use crate::netlink::{sysctl, NetlinkError};

/// DEL's share of masquerade: forget this attachment.
pub(crate) fn masquerade_del(req: &crate::cni::skeleton::Request) -> Result<(), PluginError> {
    masquerade::del(&req.name, &req.container_id, &req.ifname).map_err(|source| {
        PluginError::Masquerade {
            network: req.name.clone(),
            source,
        }
    })
}

/// A bundled plugin binary's `main`: the CNI skeleton, or, when started as
/// its own detached copy ([`spawn_detached`]), the background removal of a
/// network's masquerade state or of a link.
pub fn main(plugin: &dyn crate::cni::skeleton::Plugin) -> ! {
    if let Some(network) = std::env::var_os(masquerade::CLEANUP_ENV) {
        let ok = masquerade::cleanup(&network.to_string_lossy()).is_ok();
        std::process::exit(if ok { 0 } else { 1 });
    }
    if let Some(link) = std::env::var_os(teardown::DELETE_ENV) {
        let ok = teardown::finish_delete(&link.to_string_lossy()).is_ok();
        std::process::exit(if ok { 0 } else { 1 });
    }
    crate::cni::skeleton::main(plugin)
}

/// Starts a detached copy of this plugin binary with `env`, to finish work
/// the caller should not wait for: its own process group (a runtime that
/// kills the plugin's group on timeout spares it) and no stdio (a runtime
/// reading the plugin's output to EOF does not wait for it).
pub(crate) fn spawn_detached(env: &[(&str, &std::ffi::OsStr)]) -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    Command::new(std::env::current_exe()?)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map(drop)
}

/// What a plugin can fail at; becomes a CNI error with the spec's code.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("network \"{network}\": invalid config: {msg}")]
    Config { network: String, msg: String },
    #[error("network \"{network}\", interface {ifname}: {what}: {source}")]
    Netlink {
        network: String,
        ifname: String,
        what: String,
        source: Box<NetlinkError>,
    },
    #[error("network \"{network}\": {source}")]
    Masquerade {
        network: String,
        source: masquerade::MasqError,
    },
    #[error("network \"{network}\": {msg}")]
    Other { network: String, msg: String },
    /// A delegated plugin's error, passed on as it is.
    #[error("{0}")]
    Cni(#[from] CniError),
}

impl From<PluginError> for CniError {
    fn from(e: PluginError) -> Self {
        let code = match &e {
            PluginError::Cni(_) => codes::INTERNAL,
            PluginError::Config { .. } => codes::INVALID_CONFIG,
            PluginError::Netlink { .. } | PluginError::Masquerade { .. } => codes::IO_FAILURE,
            PluginError::Other { .. } => codes::INTERNAL,
        };
        match e {
            PluginError::Cni(inner) => inner,
            other => CniError::new(code, other.to_string()),
        }
    }
}

/// Wraps a netlink error with the network, interface and step it failed at.
pub(crate) fn nl_err(
    req: &crate::cni::skeleton::Request,
    what: impl Into<String>,
) -> impl FnOnce(NetlinkError) -> PluginError + '_ {
    let what = what.into();
    move |source| PluginError::Netlink {
        network: req.name.clone(),
        ifname: req.ifname.clone(),
        what,
        source: Box::new(source),
    }
}

/// Step timings of one plugin call, printed on stderr at the end when
/// `RKT_PLUGIN_TIMINGS` is set (stdout carries the result).
pub struct StepTimer {
    start: std::time::Instant,
    last: std::time::Instant,
    steps: Vec<(&'static str, std::time::Duration)>,
    on: bool,
}

impl StepTimer {
    pub fn new() -> Self {
        let now = std::time::Instant::now();
        StepTimer {
            start: now,
            last: now,
            steps: Vec::new(),
            on: std::env::var_os("RKT_PLUGIN_TIMINGS").is_some(),
        }
    }

    /// Records the time since the previous mark under `step`.
    pub fn mark(&mut self, step: &'static str) {
        if self.on {
            let now = std::time::Instant::now();
            self.steps.push((step, now - self.last));
            self.last = now;
        }
    }
}

impl Default for StepTimer {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for StepTimer {
    fn drop(&mut self) {
        if self.on {
            let steps: Vec<String> = self
                .steps
                .iter()
                .map(|(s, d)| format!("{s}={:.3}ms", d.as_secs_f64() * 1e3))
                .collect();
            eprintln!(
                "timings: {} total={:.3}ms",
                steps.join(" "),
                self.start.elapsed().as_secs_f64() * 1e3
            );
        }
    }
}

/// Config fields every plugin here reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BaseConf {
    #[serde(default, rename = "ipMasq")]
    pub ip_masq: bool,
    #[serde(default)]
    pub mtu: u32,
    #[serde(default)]
    pub ipam: Option<IpamRef>,
}

/// The `ipam` block: only its type matters here.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct IpamRef {
    #[serde(default, rename = "type")]
    pub ty: String,
}

impl BaseConf {
    /// Parses the fields from a request's config.
    pub fn parse(req: &crate::cni::skeleton::Request) -> Result<Self, PluginError> {
        parse_conf(req)
    }

    pub fn mtu(&self) -> Option<u32> {
        (self.mtu > 0).then_some(self.mtu)
    }

    pub fn has_ipam(&self) -> bool {
        self.ipam
            .as_ref()
            .map(|i| !i.ty.is_empty())
            .unwrap_or(false)
    }
}

/// Parses a plugin's typed config out of a request.
pub fn parse_conf<T: serde::de::DeserializeOwned>(
    req: &crate::cni::skeleton::Request,
) -> Result<T, PluginError> {
    serde_json::from_value(req.config.clone()).map_err(|e| PluginError::Config {
        network: req.name.clone(),
        msg: e.to_string(),
    })
}

/// CNI GC for plugins with masquerade: the attachments the runtime still
/// has (`cni.dev/valid-attachments`) keep their masquerade membership, the
/// others are forgotten; the IPAM plugin gets the GC too.
pub fn gc_masquerade(req: &crate::cni::skeleton::Request) -> Result<(), CniError> {
    let valid = req.valid_attachments();
    masquerade::gc(&req.name, &valid).map_err(|source| PluginError::Masquerade {
        network: req.name.clone(),
        source,
    })?;
    if req.config.get("ipam").and_then(|i| i.get("type")).is_some() {
        ipam::gc(req)?;
    }
    Ok(())
}

/// Turns IPv6 off on a host-side veth before it goes up: the kernel then
/// gives it no link-local address and no `fe80::/64` and `ff00::/8` routes.
/// Those routes share one prefix per table across all pods, and the kernel
/// inserts each new one in time linear in their number, so without this
/// every pod's ADD gets slower as pods accumulate (measured: 1.2 ms to
/// 2.6 ms over 1000 pods). A kernel without IPv6 has nothing to turn off.
pub(crate) fn host_veth_without_ipv6(name: &str) -> Result<(), NetlinkError> {
    crate::netlink::missing_ok(sysctl::write(
        &format!("net/ipv6/conf/{name}/disable_ipv6"),
        "1",
    ))
}

/// The host-side veth name of an attachment: `veth` and 8 hex digits of a
/// hash of the container ID and interface name. Deterministic, so DEL finds
/// it without entering the pod's netns, and unique per attachment.
pub fn host_veth_name(container_id: &str, ifname: &str) -> String {
    let mut h = Sha256::new();
    h.update(container_id.as_bytes());
    h.update([0]);
    h.update(ifname.as_bytes());
    let d = h.finalize();
    format!("veth{:02x}{:02x}{:02x}{:02x}", d[0], d[1], d[2], d[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_veth_names_are_stable_and_short() {
        let a = host_veth_name("c1", "eth0");
        assert_eq!(a, host_veth_name("c1", "eth0"));
        assert_ne!(a, host_veth_name("c1", "eth1"));
        assert_eq!(a.len(), 12);
        assert!(a.starts_with("veth"));
    }
}
