//! Network configurations: a single plugin (`.conf`, `.json`) or a chain
//! (`.conflist`), validated on load, and the per-plugin config a runtime
//! sends on stdin.

use serde_json::{json, Map, Value};

use super::version;

/// A loaded network: one plugin or a chain of them.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    pub name: String,
    pub cni_version: String,
    /// Each plugin's config object, in chain order (one for a `.conf`).
    pub plugins: Vec<Value>,
    /// The file it came from, or `built-in`.
    pub source: String,
    pub is_list: bool,
}

/// Names and IDs that end up in file paths: letters, digits, `_ . -`, not
/// starting with `.` or `-`, at most 253 chars.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && !s.starts_with('.')
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Whether a plugin config's `ipam.type`, when it has one, is a valid
/// plugin type (see [`valid_name`]).
fn valid_ipam_type(plugin: &Value) -> bool {
    match plugin.pointer("/ipam/type") {
        None => true,
        Some(Value::String(t)) => valid_name(t),
        Some(_) => false,
    }
}

/// Why a network config file is refused: the file, then the problem.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {problem}")]
pub struct ConfigError {
    pub file: String,
    pub problem: ConfigProblem,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigProblem {
    #[error("malformed JSON: {0}")]
    Json(serde_json::Error),
    #[error("a network config must be a JSON object")]
    NotObject,
    #[error("\"{0}\" must be a string")]
    NotString(&'static str),
    #[error("missing \"name\"")]
    NoName,
    #[error("network name \"{0}\" is invalid (use letters, digits, '_', '.', '-'; no '/' and no leading '.')")]
    BadName(String),
    #[error("network \"{network}\": {problem}")]
    Network {
        network: String,
        problem: NetworkProblem,
    },
}

/// What is wrong inside a network that has a valid name.
#[derive(Debug, thiserror::Error)]
pub enum NetworkProblem {
    #[error("unsupported cniVersion \"{0}\" (supported: {supported})", supported = version::SUPPORTED.join(", "))]
    UnsupportedVersion(String),
    #[error("a conflist needs a \"plugins\" array")]
    NoPluginList,
    #[error("\"plugins\" is empty")]
    NoPlugins,
    #[error("plugin type \"{0}\" is invalid")]
    BadType(String),
    #[error("missing \"type\"{}", .0.map(|i| format!(" in plugin {i}")).unwrap_or_default())]
    MissingType(Option<usize>),
    #[error(
        "IPAM type \"{0}\" is invalid (a plugin name: letters, digits, '_', '.', '-'; no '/')"
    )]
    BadIpamType(String),
    #[error("\"ipam\".\"type\" must be a string")]
    IpamTypeNotString,
}

impl NetConf {
    /// Parses and validates a config file's bytes. `source` names the file in
    /// errors.
    pub fn parse(bytes: &[u8], source: &str, is_list: bool) -> Result<Self, ConfigError> {
        let fail = |problem| ConfigError {
            file: source.to_string(),
            problem,
        };
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| fail(ConfigProblem::Json(e)))?;
        let Value::Object(obj) = value else {
            return Err(fail(ConfigProblem::NotObject));
        };
        let name = match obj.get("name") {
            Some(Value::String(n)) => n.clone(),
            Some(_) => return Err(fail(ConfigProblem::NotString("name"))),
            None => return Err(fail(ConfigProblem::NoName)),
        };
        if !valid_name(&name) {
            return Err(fail(ConfigProblem::BadName(name)));
        }
        let in_net = |problem| {
            fail(ConfigProblem::Network {
                network: name.clone(),
                problem,
            })
        };
        let cni_version = match obj.get("cniVersion") {
            None => "0.1.0".to_string(),
            Some(Value::String(v)) => v.clone(),
            Some(_) => return Err(fail(ConfigProblem::NotString("cniVersion"))),
        };
        if !version::is_supported(&cni_version) {
            return Err(in_net(NetworkProblem::UnsupportedVersion(cni_version)));
        }
        let plugins = if is_list || obj.contains_key("plugins") {
            let Some(Value::Array(list)) = obj.get("plugins") else {
                return Err(in_net(NetworkProblem::NoPluginList));
            };
            if list.is_empty() {
                return Err(in_net(NetworkProblem::NoPlugins));
            }
            list.clone()
        } else {
            vec![Value::Object(obj.clone())]
        };
        for (i, p) in plugins.iter().enumerate() {
            match p.get("type") {
                Some(Value::String(t)) if valid_name(t) => {}
                Some(Value::String(t)) => return Err(in_net(NetworkProblem::BadType(t.clone()))),
                _ => return Err(in_net(NetworkProblem::MissingType(is_list.then_some(i)))),
            }
            // The IPAM type is a plugin type too: main plugins look it up
            // on CNI_PATH, so it must be a file name, never a path.
            if !valid_ipam_type(p) {
                return Err(in_net(match p.pointer("/ipam/type") {
                    Some(Value::String(t)) => NetworkProblem::BadIpamType(t.clone()),
                    _ => NetworkProblem::IpamTypeNotString,
                }));
            }
        }
        Ok(NetConf {
            name,
            cni_version,
            plugins,
            source: source.to_string(),
            is_list: is_list || obj.contains_key("plugins"),
        })
    }

    /// The plugin types in chain order.
    pub fn types(&self) -> Vec<&str> {
        self.plugins
            .iter()
            .map(|p| p.get("type").and_then(Value::as_str).unwrap_or(""))
            .collect()
    }

    /// The config sent on stdin to plugin `i`: its object with `name` and
    /// `cniVersion` injected, `prevResult` when given, and `runtimeConfig`
    /// holding the capabilities the plugin declares.
    pub fn plugin_stdin(
        &self,
        i: usize,
        prev_result: Option<&Value>,
        runtime_config: &Map<String, Value>,
    ) -> Value {
        let mut conf = match &self.plugins[i] {
            Value::Object(o) => o.clone(),
            _ => Map::new(),
        };
        conf.insert("name".into(), json!(self.name));
        conf.insert("cniVersion".into(), json!(self.cni_version));
        conf.remove("plugins");
        if let Some(prev) = prev_result {
            conf.insert("prevResult".into(), prev.clone());
        }
        if let Some(Value::Object(caps)) = conf.get("capabilities").cloned() {
            let rc: Map<String, Value> = runtime_config
                .iter()
                .filter(|(k, _)| caps.get(*k).and_then(Value::as_bool) == Some(true))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if !rc.is_empty() {
                conf.insert("runtimeConfig".into(), Value::Object(rc));
            }
        }
        Value::Object(conf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_configs() {
        let bad = [
            (&b"{"[..], "malformed JSON"),
            (br#"{"type":"ptp"}"#, "missing \"name\""),
            (br#"{"name":"x"}"#, "missing \"type\""),
            (br#"{"name":"../x","type":"ptp"}"#, "is invalid"),
            (
                br#"{"name":"x","type":"ptp","cniVersion":"9.9.9"}"#,
                "unsupported cniVersion",
            ),
            (br#"{"name":"x","type":"../../bin/sh"}"#, "is invalid"),
            (
                br#"{"name":"x","type":"ptp","ipam":{"type":"/tmp/evil"}}"#,
                "IPAM type \"/tmp/evil\" is invalid",
            ),
            (
                br#"{"name":"x","type":"ptp","ipam":{"type":"../../tmp/evil"}}"#,
                "IPAM type \"../../tmp/evil\" is invalid",
            ),
            (
                br#"{"name":"x","plugins":[{"type":"ptp","ipam":{"type":"a/b"}}]}"#,
                "IPAM type \"a/b\" is invalid",
            ),
            (
                br#"{"name":"x","type":"ptp","ipam":{"type":5}}"#,
                "must be a string",
            ),
        ];
        for (input, want) in bad {
            let err = NetConf::parse(input, "f.conf", false)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{err} should contain {want}");
            assert!(err.starts_with("f.conf"), "{err}");
        }
    }

    #[test]
    fn conflist_injects_name_and_prev_result() {
        let c = NetConf::parse(
            br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"ptp"},{"type":"portmap","capabilities":{"portMappings":true}}]}"#,
            "n.conflist",
            true,
        )
        .unwrap();
        assert_eq!(c.types(), vec!["ptp", "portmap"]);
        let mut rc = Map::new();
        rc.insert("portMappings".into(), json!([]));
        rc.insert("ips".into(), json!(["10.0.0.2"]));
        let s0 = c.plugin_stdin(0, None, &rc);
        assert_eq!(s0["name"], "n");
        assert!(s0.get("runtimeConfig").is_none());
        let s1 = c.plugin_stdin(1, Some(&json!({"ips":[]})), &rc);
        assert_eq!(s1["cniVersion"], "1.0.0");
        assert_eq!(s1["prevResult"], json!({"ips":[]}));
        assert_eq!(s1["runtimeConfig"], json!({"portMappings":[]}));
    }
}
