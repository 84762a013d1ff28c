//! The pod manifest (`pod.json`): what was asked for, written once at
//! creation; and the per-network records written as networks come up.

use serde::{Deserialize, Serialize};

use crate::cni::CniResult;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppManifest {
    pub name: String,
    pub exec: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRef {
    pub name: String,
    pub id: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub uuid: String,
    pub created: u64,
    pub hostname: String,
    pub image: ImageRef,
    pub app: AppManifest,
    /// `host`, `none`, or the selected network names (in interface order).
    pub net_mode: String,
    /// `--annotation=K=V` (served by the metadata service).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
    /// What the app runs with; `rkt enter` gives a command the same. Absent
    /// in pods created before it was recorded (they ran with the defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<SecurityRecord>,
    /// `--memory`, `--cpu` (`memory=BYTES`, `cpu=MILLISm`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limits: Vec<String>,
    /// Host ports forwarded to the pod (`--port`, `--publish`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<crate::cni::port_mapping::PortMapping>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecurityRecord {
    /// The app's capabilities (`CAP_CHOWN`, ...).
    pub caps: Vec<String>,
    /// Protections turned off (`--insecure-options`), by name.
    pub insecure_options: Vec<String>,
    /// `--sysctl` settings, `KEY=VALUE`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sysctls: Vec<String>,
}

/// One network attachment as recorded in `<pod>/net/<index>.json`: written
/// before ADD (intent, `result` empty) and again after it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetRecord {
    pub name: String,
    pub ifname: String,
    pub args: String,
    pub cni_version: String,
    pub plugins: Vec<serde_json::Value>,
    pub source: String,
    pub is_list: bool,
    /// The `runtimeConfig` the network's plugins got at ADD (they get it
    /// again at DEL, as the spec asks).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub runtime_config: serde_json::Map<String, serde_json::Value>,
    /// The final result, in the config's version.
    #[serde(default)]
    pub result: Option<serde_json::Value>,
}

impl NetRecord {
    pub fn parsed_result(&self) -> Option<CniResult> {
        self.result
            .clone()
            .and_then(|v| CniResult::from_value(v, &self.cni_version).ok())
    }

    /// `name:ip4=A.B.C.D` as rkt lists it (the name alone without an address).
    pub fn listing(&self) -> String {
        match self
            .parsed_result()
            .as_ref()
            .and_then(|r| r.first_ipv4().cloned())
        {
            Some(ip) => format!("{}:ip4={}", self.name, ip.address.addr()),
            None => self.name.clone(),
        }
    }
}
