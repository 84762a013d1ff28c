//! Config fields every plugin here reads, the `isolation` key, typed
//! config parsing, and the short fixed-size name of an attachment.

use serde::{Deserialize, Deserializer};

use super::error::PluginError;
use crate::cni::skeleton::Request;

/// Config fields every plugin here reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BaseConf {
    #[serde(default, rename = "ipMasq")]
    pub ip_masq: bool,
    /// With `ipMasq`: destinations reached with the pod's own address
    /// (a cluster's pod CIDR, so pods on other nodes see who called; the
    /// name is Kubernetes' ip-masq-agent's). The network's own subnets are
    /// never masqueraded either way.
    #[serde(default, rename = "nonMasqueradeCIDRs")]
    pub non_masquerade: Vec<ipnet::IpNet>,
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
    pub fn parse(req: &Request) -> Result<Self, PluginError> {
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
pub fn parse_conf<T: serde::de::DeserializeOwned>(req: &Request) -> Result<T, PluginError> {
    serde_json::from_value(req.config.clone()).map_err(|e| PluginError::Config {
        network: req.name.clone(),
        msg: e.to_string(),
    })
}
