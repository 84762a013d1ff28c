//! The project's own CNI plugins (ptp, bridge, macvlan) and what they
//! share: IPAM delegation, per-network nftables state (masquerade,
//! host-only isolation, source checks), the host end of a veth pair, config
//! parsing, the plugin error type, and applying an IPAM result to a pod
//! interface.

pub mod bridge;
pub mod firewall;
pub mod ipam;
pub mod loopback;
pub mod macvlan;
pub mod ptp;
mod setup;
pub mod teardown;
pub mod veth;

use serde::{Deserialize, Deserializer};

use crate::cni::{codes, CniError};
use crate::netlink::{sysctl, NetlinkError};

/// Records the attachment with the network's nftables state
/// ([`firewall::add`]).
pub(crate) fn firewall_add(
    req: &crate::cni::skeleton::Request,
    want: &firewall::Spec,
) -> Result<(), PluginError> {
    firewall::add(want, &req.container_id, &req.ifname).map_err(|source| PluginError::Firewall {
        network: req.name.clone(),
        source,
    })
}

/// DEL's share of the nftables state: forget this attachment (a failed
/// unlink when it had none).
pub(crate) fn firewall_del(req: &crate::cni::skeleton::Request) -> Result<(), PluginError> {
    firewall::del(&req.name, &req.container_id, &req.ifname).map_err(|source| {
        PluginError::Firewall {
            network: req.name.clone(),
            source,
        }
    })
}

/// A bundled plugin binary's `main`: the CNI skeleton, or, when started as
/// its own detached copy ([`spawn_detached`]), the background removal of a
/// network's nftables state or of a link.
pub fn main(plugin: &dyn crate::cni::skeleton::Plugin) -> ! {
    if let Some(network) = std::env::var_os(firewall::CLEANUP_ENV) {
        let ok = firewall::cleanup(&network.to_string_lossy()).is_ok();
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
    Firewall {
        network: String,
        source: firewall::FwError,
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
            PluginError::Netlink { .. } | PluginError::Firewall { .. } => codes::IO_FAILURE,
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
    #[serde(default)]
    pub isolation: Isolation,
}

/// The `isolation` key of ptp and bridge configs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Isolation {
    /// `"none"` (the default): pods reach whatever the host routes them to.
    #[default]
    None,
    /// `"host-only"`: pods reach the host and nothing else; the host
    /// forwards nothing from or to them, pod to pod included
    /// ([`firewall`]).
    HostOnly,
}

impl<'de> Deserialize<'de> for Isolation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "none" | "" => Ok(Isolation::None),
            "host-only" => Ok(Isolation::HostOnly),
            other => Err(serde::de::Error::custom(format!(
                "\"isolation\": \"{other}\" is not one of \"none\", \"host-only\""
            ))),
        }
    }
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

/// 16 bytes of SHA-256 over an attachment's container ID and interface, in
/// hex: a short, fixed-size name for it (host veth aliases, firewall state).
pub fn attachment_hash(container_id: &str, ifname: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(container_id.as_bytes());
    h.update([0]);
    h.update(ifname.as_bytes());
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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

/// CNI GC for plugins with nftables state: the attachments the runtime
/// still has (`cni.dev/valid-attachments`) stay recorded, the others are
/// forgotten, and nftables is reconciled with the state of all networks
/// ([`firewall::gc`]); the IPAM plugin gets the GC too.
pub fn gc_firewall(req: &crate::cni::skeleton::Request) -> Result<(), CniError> {
    let valid = req.valid_attachments();
    firewall::gc(&req.name, &valid).map_err(|source| PluginError::Firewall {
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
