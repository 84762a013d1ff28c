//! The plugin side of CNI: reads the CNI_* environment and the config on
//! stdin, validates them, dispatches ADD / DEL / CHECK / VERSION / GC /
//! STATUS to a [`Plugin`], and prints the result in the config's version
//! (or a CNI error with the spec's code).

use std::io::{Read, Write};
use std::path::PathBuf;

use serde_json::{json, Value};

use super::{codes, config::valid_name, version, CniError, CniResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    Gc,
    Status,
}

impl Command {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "GC" => Command::Gc,
            "STATUS" => Command::Status,
            _ => return None,
        })
    }
}

/// One validated plugin call.
#[derive(Debug, Clone)]
pub struct Request {
    pub command: Command,
    pub container_id: String,
    /// Empty on DEL when the runtime no longer has a namespace.
    pub netns: String,
    pub ifname: String,
    /// CNI_ARGS as given.
    pub args: String,
    /// CNI_PATH, for delegating to IPAM plugins.
    pub path: Vec<PathBuf>,
    /// The whole config from stdin.
    pub config: Value,
    pub name: String,
    pub cni_version: String,
    /// `prevResult`, parsed (CHECK, DEL from 0.4.0 on, chained ADD).
    pub prev_result: Option<CniResult>,
}

impl Request {
    /// A config field, e.g. `req.field("ipMasq")`.
    pub fn field(&self, key: &str) -> Option<&Value> {
        self.config.get(key)
    }

    /// `cni.dev/valid-attachments` of a GC call, as (container ID, ifname).
    pub fn valid_attachments(&self) -> Vec<(String, String)> {
        self.config
            .get("cni.dev/valid-attachments")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|a| {
                Some((
                    a.get("containerID")?.as_str()?.to_string(),
                    a.get("ifname")?.as_str()?.to_string(),
                ))
            })
            .collect()
    }

    /// Whether the runtime deletes the netns right after this DEL (see
    /// [`super::args::NETNS_TEARDOWN`]).
    pub fn netns_goes_away(&self) -> bool {
        matches!(
            super::args::get(&self.args, super::args::NETNS_TEARDOWN),
            Some("1") | Some("true")
        )
    }

    /// The DNS a main plugin returns: the config's `dns` block (or the `dns`
    /// capability) when set, otherwise what its IPAM returned (e.g.
    /// host-local's `resolvConf`), as the reference plugins do.
    pub fn result_dns(&self, ipam: super::result::Dns) -> super::result::Dns {
        let conf = self.conf_dns();
        if conf.is_empty() {
            ipam
        } else {
            conf
        }
    }

    /// The DNS from the config: the config's `dns` block, overridden field
    /// by field by the `dns` capability (`runtimeConfig.dns`: `servers`,
    /// `searches`, `options`, `domain`) when the runtime passed it.
    pub fn conf_dns(&self) -> super::result::Dns {
        let mut dns: super::result::Dns = self
            .config
            .get("dns")
            .cloned()
            .and_then(|d| serde_json::from_value(d).ok())
            .unwrap_or_default();
        if let Some(rc) = self.config.pointer("/runtimeConfig/dns") {
            let list = |k: &str| -> Vec<String> {
                rc.get(k)
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let (servers, searches, options) = (list("servers"), list("searches"), list("options"));
            if !servers.is_empty() {
                dns.nameservers = servers;
            }
            if !searches.is_empty() {
                dns.search = searches;
            }
            if !options.is_empty() {
                dns.options = options;
            }
            if let Some(d) = rc
                .get("domain")
                .and_then(Value::as_str)
                .filter(|d| !d.is_empty())
            {
                dns.domain = d.to_string();
            }
        }
        dns
    }
}

/// What a plugin implements; CHECK, GC and STATUS default to success.
pub trait Plugin {
    fn add(&self, req: &Request) -> Result<CniResult, CniError>;
    fn del(&self, req: &Request) -> Result<(), CniError>;
    fn check(&self, _req: &Request) -> Result<(), CniError> {
        Ok(())
    }
    fn gc(&self, _req: &Request) -> Result<(), CniError> {
        Ok(())
    }
    fn status(&self, _req: &Request) -> Result<(), CniError> {
        Ok(())
    }
}

/// 16 bytes of SHA-256 over an attachment's container ID and interface, in
/// hex: a short, fixed-size name for the attachment (the CNI spec's
/// identity of one: container ID and interface), for what a plugin names
/// after it on the host (veth aliases, firewall state).
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

/// An attachment as a file name: `<cid>-<ifname>`, or the first 160
/// bytes of the container ID and the [`attachment_hash`] when that would
/// be longer than 200 bytes (container IDs reaching a plugin are checked
/// names: letters, digits, `_ . -`).
pub fn attachment_file_name(container_id: &str, ifname: &str) -> String {
    let name = format!("{container_id}-{ifname}");
    if name.len() <= 200 {
        return name;
    }
    let hex = attachment_hash(container_id, ifname);
    format!("{}-{hex}", &container_id[..container_id.len().min(160)])
}

/// Interface names: 1-15 bytes, no `/`, `:`, whitespace, not `.` or `..`.
pub fn valid_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s != "."
        && s != ".."
        && !s.chars().any(|c| c == '/' || c == ':' || c.is_whitespace())
}

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_default()
}

fn invalid_env(msg: String) -> CniError {
    CniError::new(codes::INVALID_ENV, msg)
}

/// Reads and validates a call from the environment and `stdin`.
pub fn read_request(stdin: &[u8]) -> Result<Request, CniError> {
    let command_s = env("CNI_COMMAND");
    let command = Command::parse(&command_s).ok_or_else(|| {
        invalid_env(format!(
            "CNI_COMMAND \"{command_s}\" is not ADD, DEL, CHECK, VERSION, GC or STATUS"
        ))
    })?;
    let config: Value = if command == Command::Version && stdin.iter().all(u8::is_ascii_whitespace)
    {
        json!({})
    } else {
        serde_json::from_slice(stdin).map_err(|e| {
            CniError::new(
                codes::DECODING_FAILURE,
                format!("config on stdin is not valid JSON: {e}"),
            )
        })?
    };
    let cni_version = config
        .get("cniVersion")
        .and_then(Value::as_str)
        .unwrap_or("0.1.0")
        .to_string();
    let name = config
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut req = Request {
        command,
        container_id: env("CNI_CONTAINERID"),
        netns: env("CNI_NETNS"),
        ifname: env("CNI_IFNAME"),
        args: env("CNI_ARGS"),
        path: std::env::split_paths(&env("CNI_PATH"))
            .filter(|p| !p.as_os_str().is_empty())
            .collect(),
        config,
        name,
        cni_version,
        prev_result: None,
    };
    if command == Command::Version {
        return Ok(req);
    }
    if !version::is_supported(&req.cni_version) {
        return Err(CniError::new(
            codes::INCOMPATIBLE_VERSION,
            format!(
                "unsupported cniVersion \"{}\" (supported: {})",
                req.cni_version,
                version::SUPPORTED.join(", ")
            ),
        ));
    }
    if !valid_name(&req.name) {
        return Err(CniError::new(
            codes::INVALID_CONFIG,
            format!(
                "network name \"{}\" is missing or invalid (letters, digits, '_', '.', '-', not starting with '.' or '-', at most 253 characters); rename the network",
                req.name
            ),
        ));
    }
    if matches!(command, Command::Gc | Command::Status) {
        return Ok(req);
    }
    if !valid_name(&req.container_id) {
        return Err(invalid_env(format!(
            "CNI_CONTAINERID \"{}\" is missing or invalid (letters, digits, '_', '.', '-')",
            req.container_id
        )));
    }
    if !valid_ifname(&req.ifname) {
        return Err(invalid_env(format!(
            "CNI_IFNAME \"{}\" is missing or invalid",
            req.ifname
        )));
    }
    super::args::check_unique(&req.args).map_err(|e| invalid_env(format!("CNI_ARGS: {e}")))?;
    if matches!(command, Command::Add | Command::Check) && req.netns.is_empty() {
        return Err(invalid_env("CNI_NETNS is required".into()));
    }
    if let Some(prev) = req.config.get("prevResult").cloned() {
        req.prev_result = Some(CniResult::from_value(prev, &req.cni_version)?);
    }
    Ok(req)
}

/// Runs a request against a plugin; returns what to print on stdout.
pub fn dispatch(plugin: &dyn Plugin, req: &Request) -> Result<Option<Value>, CniError> {
    match req.command {
        Command::Version => Ok(Some(json!({
            "cniVersion": if version::is_supported(&req.cni_version) && req.config.get("cniVersion").is_some() { req.cni_version.as_str() } else { version::LATEST },
            "supportedVersions": version::SUPPORTED,
        }))),
        Command::Add => plugin
            .add(req)
            .map(|r| Some(r.to_version(&req.cni_version))),
        Command::Del => plugin.del(req).map(|_| None),
        Command::Check => {
            if !version::at_least_040(&req.cni_version) {
                return Err(CniError::new(
                    codes::INCOMPATIBLE_VERSION,
                    format!("CHECK is not supported for cniVersion {}", req.cni_version),
                ));
            }
            plugin.check(req).map(|_| None)
        }
        Command::Gc | Command::Status => {
            if !version::at_least_110(&req.cni_version) {
                return Err(CniError::new(
                    codes::INCOMPATIBLE_VERSION,
                    format!(
                        "GC and STATUS need cniVersion 1.1.0, not {}",
                        req.cni_version
                    ),
                ));
            }
            if req.command == Command::Gc {
                plugin.gc(req).map(|_| None)
            } else {
                plugin.status(req).map(|_| None)
            }
        }
    }
}

/// The whole plugin process: read, dispatch, print, exit.
pub fn main(plugin: &dyn Plugin) -> ! {
    let mut stdin = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut stdin);
    let outcome = read_request(&stdin).and_then(|req| dispatch(plugin, &req).map(|out| (req, out)));
    let mut stdout = std::io::stdout().lock();
    match outcome {
        Ok((_, Some(value))) => {
            let _ = writeln!(stdout, "{value}");
            let _ = stdout.flush();
            std::process::exit(0)
        }
        Ok((_, None)) => std::process::exit(0),
        Err(e) => {
            let ver = serde_json::from_slice::<Value>(&stdin)
                .ok()
                .and_then(|v| {
                    v.get("cniVersion")
                        .and_then(Value::as_str)
                        .map(String::from)
                })
                .unwrap_or_else(|| version::LATEST.to_string());
            let mut v = serde_json::to_value(&e).unwrap_or_else(|_| json!({}));
            v["cniVersion"] = json!(ver);
            let _ = writeln!(stdout, "{v}");
            let _ = stdout.flush();
            std::process::exit(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifnames() {
        assert!(valid_ifname("eth0"));
        assert!(!valid_ifname("a/b"));
        assert!(!valid_ifname(".."));
        assert!(!valid_ifname("0123456789abcdef"));
    }
}
