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

impl NetConf {
    /// Parses and validates a config file's bytes. `source` names the file in
    /// errors.
    pub fn parse(bytes: &[u8], source: &str, is_list: bool) -> Result<Self, String> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| format!("{source}: malformed JSON: {e}"))?;
        let Value::Object(obj) = value else {
            return Err(format!("{source}: a network config must be a JSON object"));
        };
        let name = match obj.get("name") {
            Some(Value::String(n)) => n.clone(),
            Some(_) => return Err(format!("{source}: \"name\" must be a string")),
            None => return Err(format!("{source}: missing \"name\"")),
        };
        if !valid_name(&name) {
            return Err(format!(
                "{source}: network name \"{name}\" is invalid (use letters, digits, '_', '.', '-'; no '/' and no leading '.')"
            ));
        }
        let cni_version = match obj.get("cniVersion") {
            None => "0.1.0".to_string(),
            Some(Value::String(v)) => v.clone(),
            Some(_) => return Err(format!("{source}: \"cniVersion\" must be a string")),
        };
        if !version::is_supported(&cni_version) {
            return Err(format!(
                "{source}: network \"{name}\": unsupported cniVersion \"{cni_version}\" (supported: {})",
                version::SUPPORTED.join(", ")
            ));
        }
        let plugins = if is_list || obj.contains_key("plugins") {
            let Some(Value::Array(list)) = obj.get("plugins") else {
                return Err(format!(
                    "{source}: network \"{name}\": a conflist needs a \"plugins\" array"
                ));
            };
            if list.is_empty() {
                return Err(format!(
                    "{source}: network \"{name}\": \"plugins\" is empty"
                ));
            }
            list.clone()
        } else {
            vec![Value::Object(obj.clone())]
        };
        for (i, p) in plugins.iter().enumerate() {
            match p.get("type") {
                Some(Value::String(t)) if valid_name(t) => {}
                Some(Value::String(t)) => {
                    return Err(format!(
                        "{source}: network \"{name}\": plugin type \"{t}\" is invalid"
                    ))
                }
                _ => {
                    return Err(format!(
                        "{source}: network \"{name}\": missing \"type\"{}",
                        if is_list {
                            format!(" in plugin {i}")
                        } else {
                            String::new()
                        }
                    ))
                }
            }
            // The IPAM type is a plugin type too: main plugins look it up
            // on CNI_PATH, so it must be a file name, never a path.
            if !valid_ipam_type(p) {
                return Err(match p.pointer("/ipam/type") {
                    Some(Value::String(t)) => format!(
                        "{source}: network \"{name}\": IPAM type \"{t}\" is invalid (a plugin name: letters, digits, '_', '.', '-'; no '/')"
                    ),
                    _ => format!(
                        "{source}: network \"{name}\": \"ipam\".\"type\" must be a string"
                    ),
                });
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
            let err = NetConf::parse(input, "f.conf", false).unwrap_err();
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
