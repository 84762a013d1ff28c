//! CNI results in every spec version (0.1.0 to 1.1.0) and their conversion.
//!
//! Internally a result always has the 1.x shape (`interfaces`, `ips`,
//! `routes`, `dns`); [`CniResult::parse`] reads any version and
//! [`CniResult::to_version`] writes any version.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{version, CniError};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
    pub address: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    /// Reads the nameserver / search / domain / options lines of a
    /// resolv.conf (host-local's `resolvConf`, `rkt run --dns=host`).
    pub fn from_resolv_conf(text: &str) -> Self {
        let mut d = Dns::default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => d.nameservers.extend(words.next().map(String::from)),
                Some("search") => d.search = words.map(String::from).collect(),
                Some("domain") => d.domain = words.next().unwrap_or("").to_string(),
                Some("options") => d.options.extend(words.map(String::from)),
                _ => {}
            }
        }
        d
    }

    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_empty()
            && self.search.is_empty()
            && self.options.is_empty()
    }

    /// What of this can be written to a resolv.conf as it is: nameservers
    /// that are IP addresses (IPv6 with an optional `%zone`), a domain and
    /// search domains that are DNS names, options without spaces or control
    /// characters. DNS data comes from configs, plugins and DHCP servers, so
    /// a newline in a domain would otherwise add lines to the pod's
    /// resolv.conf. Returns the kept values and the dropped ones.
    pub fn checked(&self) -> (Dns, Vec<String>) {
        let mut dropped = Vec::new();
        let mut keep = |v: &String, ok: bool| {
            if !ok {
                dropped.push(v.clone());
            }
            ok
        };
        let dns = Dns {
            nameservers: self
                .nameservers
                .iter()
                .filter(|n| keep(n, valid_nameserver(n)))
                .cloned()
                .collect(),
            domain: if self.domain.is_empty() || keep(&self.domain, valid_domain(&self.domain)) {
                self.domain.clone()
            } else {
                String::new()
            },
            search: self
                .search
                .iter()
                .filter(|d| keep(d, valid_domain(d)))
                .cloned()
                .collect(),
            options: self
                .options
                .iter()
                .filter(|o| keep(o, valid_resolver_option(o)))
                .cloned()
                .collect(),
        };
        (dns, dropped)
    }
}

/// A DNS name as resolv.conf and the resolver take it: dot-separated labels
/// of letters, digits, '-' and '_', at most 253 bytes.
pub fn valid_domain(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && d.trim_end_matches('.').split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// An IP address, or an IPv6 link-local address with its `%zone`.
pub fn valid_nameserver(n: &str) -> bool {
    if n.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    match n.split_once('%') {
        Some((addr, zone)) => {
            addr.parse::<std::net::Ipv6Addr>().is_ok()
                && !zone.is_empty()
                && zone.len() <= 15
                && zone
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        }
        None => false,
    }
}

/// A resolver option such as `ndots:2` or `rotate`.
pub fn valid_resolver_option(o: &str) -> bool {
    !o.is_empty()
        && o.len() <= 64
        && o.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b))
}

/// A CNI result in the 1.x shape, whatever version it was read from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniResult {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
}

#[derive(Deserialize)]
struct LegacyIp {
    ip: IpNet,
    #[serde(default)]
    gateway: Option<IpAddr>,
    #[serde(default)]
    routes: Vec<Route>,
}

#[derive(Deserialize)]
struct LegacyResult {
    #[serde(default)]
    ip4: Option<LegacyIp>,
    #[serde(default)]
    ip6: Option<LegacyIp>,
    #[serde(default)]
    dns: Dns,
}

impl CniResult {
    /// Parses a result printed by a plugin. The result's own `cniVersion`
    /// wins; `fallback` is the version of the config it answered.
    pub fn parse(bytes: &[u8], fallback: &str) -> Result<Self, CniError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            CniError::new(
                super::codes::DECODING_FAILURE,
                format!("result is not valid JSON: {e}"),
            )
        })?;
        Self::from_value(value, fallback)
    }

    pub fn from_value(value: Value, fallback: &str) -> Result<Self, CniError> {
        let ver = value
            .get("cniVersion")
            .and_then(Value::as_str)
            .unwrap_or(fallback)
            .to_string();
        let bad = |e: serde_json::Error| {
            CniError::new(
                super::codes::DECODING_FAILURE,
                format!("result (version {ver}) does not parse: {e}"),
            )
        };
        if version::is_legacy(&ver) {
            let legacy: LegacyResult = serde_json::from_value(value).map_err(bad)?;
            let mut out = CniResult {
                dns: legacy.dns,
                ..Default::default()
            };
            for ip in [legacy.ip4, legacy.ip6].into_iter().flatten() {
                out.ips.push(IpConfig {
                    interface: None,
                    address: ip.ip,
                    gateway: ip.gateway,
                });
                out.routes.extend(ip.routes);
            }
            Ok(out)
        } else {
            // 0.3.x / 0.4.0 carry a "version" key in each ip; serde ignores it.
            serde_json::from_value(value).map_err(bad)
        }
    }

    /// The result as JSON in the given spec version.
    pub fn to_version(&self, ver: &str) -> Value {
        if version::is_legacy(ver) {
            let mut obj = Map::new();
            obj.insert("cniVersion".into(), json!(ver));
            for (key, v4) in [("ip4", true), ("ip6", false)] {
                let Some(ip) = self.ips.iter().find(|i| i.address.addr().is_ipv4() == v4) else {
                    continue;
                };
                let routes: Vec<&Route> = self
                    .routes
                    .iter()
                    .filter(|r| r.dst.addr().is_ipv4() == v4)
                    .collect();
                let mut entry = Map::new();
                entry.insert("ip".into(), json!(ip.address.to_string()));
                if let Some(gw) = ip.gateway {
                    entry.insert("gateway".into(), json!(gw.to_string()));
                }
                if !routes.is_empty() {
                    entry.insert("routes".into(), json!(routes));
                }
                obj.insert(key.into(), Value::Object(entry));
            }
            obj.insert("dns".into(), json!(self.dns));
            return Value::Object(obj);
        }
        let mut value = serde_json::to_value(self).unwrap_or_else(|_| json!({}));
        if let Value::Object(obj) = &mut value {
            obj.insert("cniVersion".into(), json!(ver));
            if version::has_ip_version_field(ver) {
                if let Some(Value::Array(ips)) = obj.get_mut("ips") {
                    for ip in ips.iter_mut() {
                        let v4 = ip
                            .get("address")
                            .and_then(Value::as_str)
                            .map(|a| !a.contains(':'))
                            .unwrap_or(true);
                        if let Value::Object(ip) = ip {
                            ip.insert("version".into(), json!(if v4 { "4" } else { "6" }));
                        }
                    }
                }
            }
            if !obj.contains_key("dns") {
                obj.insert("dns".into(), json!({}));
            }
        }
        value
    }

    /// The first IPv4 address, if any.
    pub fn first_ipv4(&self) -> Option<&IpConfig> {
        self.ips.iter().find(|i| i.address.addr().is_ipv4())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn dns_values_that_would_break_resolv_conf_are_dropped() {
        let d = Dns {
            nameservers: vec![
                "10.0.0.53".into(),
                "fe80::1%eth0".into(),
                "10.0.0.54\nnameserver 6.6.6.6".into(),
                "dns.example".into(),
            ],
            domain: "a.test\nnameserver 6.6.6.6".into(),
            search: vec!["ok.test".into(), "bad domain".into()],
            options: vec!["ndots:2".into(), "x y".into()],
        };
        let (kept, dropped) = d.checked();
        assert_eq!(kept.nameservers, ["10.0.0.53", "fe80::1%eth0"]);
        assert_eq!(kept.domain, "");
        assert_eq!(kept.search, ["ok.test"]);
        assert_eq!(kept.options, ["ndots:2"]);
        assert_eq!(dropped.len(), 5);
        assert!(!valid_nameserver("fe80::1%eth0 x"));
    }

    use super::*;

    #[test]
    fn legacy_round_trip() {
        let raw = br#"{"cniVersion":"0.2.0","ip4":{"ip":"10.11.0.2/16","gateway":"10.11.0.1","routes":[{"dst":"0.0.0.0/0"}]},"dns":{"nameservers":["10.0.0.53"]}}"#;
        let r = CniResult::parse(raw, "0.2.0").unwrap();
        assert_eq!(r.ips.len(), 1);
        assert_eq!(r.ips[0].address.to_string(), "10.11.0.2/16");
        assert_eq!(r.routes[0].dst.to_string(), "0.0.0.0/0");
        assert_eq!(r.dns.nameservers, vec!["10.0.0.53"]);
        let back = r.to_version("0.2.0");
        assert_eq!(back["ip4"]["ip"], "10.11.0.2/16");
        assert_eq!(back["ip4"]["gateway"], "10.11.0.1");
        let v1 = r.to_version("1.0.0");
        assert_eq!(v1["ips"][0]["address"], "10.11.0.2/16");
        assert!(v1["ips"][0].get("version").is_none());
        let v3 = r.to_version("0.3.1");
        assert_eq!(v3["ips"][0]["version"], "4");
    }

    #[test]
    fn modern_parse_ignores_version_key() {
        let raw = br#"{"cniVersion":"0.4.0","interfaces":[{"name":"eth0","sandbox":"/var/run/netns/x"}],"ips":[{"version":"4","interface":0,"address":"172.16.28.2/24","gateway":"172.16.28.1"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{}}"#;
        let r = CniResult::parse(raw, "1.0.0").unwrap();
        assert_eq!(r.interfaces[0].name, "eth0");
        assert_eq!(r.ips[0].interface, Some(0));
        assert!(r.dns.is_empty());
    }

    #[test]
    fn garbage_is_a_decoding_error() {
        let e = CniResult::parse(b"nope", "1.0.0").unwrap_err();
        assert_eq!(e.code, super::super::codes::DECODING_FAILURE);
    }
}
