//! The pod's `/etc/resolv.conf`, `/etc/hosts` and `/etc/hostname`: rkt's
//! `--dns*` and `--hosts-entry` flags, and the DNS the networks returned.
//!
//! Precedence: flags > DNS returned by the networks (the first network, in
//! interface order, whose result carries DNS) > the image's own files.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::cni::result::{valid_domain, valid_resolver_option, Dns};

/// What the `--dns`, `--dns-search`, `--dns-opt`, `--dns-domain` flags asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsFlags {
    pub servers: Vec<IpAddr>,
    /// `--dns=host`: the host's resolv.conf.
    pub host: bool,
    /// `--dns=none`: no resolv.conf is written.
    pub none: bool,
    pub search: Vec<String>,
    pub options: Vec<String>,
    pub domain: Option<String>,
}

fn split_list(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// A `--dns*` or `--hosts-entry` flag that cannot be taken; names the flag.
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    #[error("--dns={0}: not an IP address (use IP[,IP], host or none)")]
    DnsServer(String),
    #[error("{0}={1}: not a valid domain")]
    Domain(&'static str, String),
    #[error("--dns-opt={0}: not a resolver option (letters, digits, '_', '-', '.', ':')")]
    DnsOption(String),
    #[error("--dns={0} cannot be combined with other DNS flags (--dns=IP, --dns-search, --dns-opt, --dns-domain, {1})")]
    DnsCombined(&'static str, &'static str),
    #[error("--hosts-entry={0}: use IP=HOST[,HOST...] or host")]
    HostsForm(String),
    #[error("--hosts-entry={0}: \"{1}\" is not an IP address")]
    HostsIp(String, String),
    #[error("--hosts-entry={0}: give one or more valid host names after '='")]
    HostsNames(String),
    #[error("--hosts-entry=host cannot be combined with IP=HOST entries")]
    HostsCombined,
}

impl DnsFlags {
    /// Parses and checks the flags; errors name the flag.
    pub fn parse(
        dns: &[String],
        search: &[String],
        opt: &[String],
        domain: Option<&str>,
    ) -> Result<Self, FlagError> {
        let mut f = DnsFlags::default();
        for v in split_list(dns) {
            match v.as_str() {
                "host" => f.host = true,
                "none" => f.none = true,
                ip => f.servers.push(
                    ip.parse()
                        .map_err(|_| FlagError::DnsServer(ip.to_string()))?,
                ),
            }
        }
        f.search = split_list(search);
        for s in &f.search {
            if !valid_domain(s) {
                return Err(FlagError::Domain("--dns-search", s.clone()));
            }
        }
        f.options = split_list(opt);
        for o in &f.options {
            if !valid_resolver_option(o) {
                return Err(FlagError::DnsOption(o.clone()));
            }
        }
        if let Some(d) = domain {
            if !valid_domain(d) {
                return Err(FlagError::Domain("--dns-domain", d.to_string()));
            }
            f.domain = Some(d.to_string());
        }
        let others = !f.servers.is_empty()
            || !f.search.is_empty()
            || !f.options.is_empty()
            || f.domain.is_some();
        for (set, name) in [(f.host, "host"), (f.none, "none")] {
            if set && (others || (f.host && f.none)) {
                let also = if name == "host" {
                    "--dns=none"
                } else {
                    "--dns=host"
                };
                return Err(FlagError::DnsCombined(name, also));
            }
        }
        Ok(f)
    }

    fn any_field(&self) -> bool {
        !self.servers.is_empty()
            || !self.search.is_empty()
            || !self.options.is_empty()
            || self.domain.is_some()
    }

    /// The `dns` capability for plugins that declare it in `capabilities`.
    pub fn runtime_config(&self) -> Option<serde_json::Value> {
        self.any_field().then(|| {
            serde_json::json!({
                "servers": self.servers.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                "searches": self.search,
                "options": self.options,
                "domain": self.domain.clone().unwrap_or_default(),
            })
        })
    }
}

/// What ends up in the pod's resolv.conf, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodDns {
    /// `flags`, `network "<name>"`, `host`, `none`, or `image`.
    pub source: String,
    #[serde(flatten)]
    pub dns: Dns,
}

/// Decides the pod's DNS from the flags and the networks' results (in
/// interface order). Returns it and the notes `--debug` shows.
pub fn decide(
    flags: &DnsFlags,
    nets: &[(String, Dns)],
    host_resolv: &str,
) -> (PodDns, Vec<String>) {
    let mut notes = Vec::new();
    let from_net = nets.iter().find(|(_, d)| !d.is_empty());
    if let Some((first, d)) = from_net {
        for (name, other) in nets.iter().filter(|(n, o)| n != first && !o.is_empty()) {
            if other != d {
                notes.push(format!(
                    "network \"{name}\" returned DNS {other:?} too; network \"{first}\" comes first and wins"
                ));
            }
        }
    }
    if flags.none {
        return (
            PodDns {
                source: "none".into(),
                dns: Dns::default(),
            },
            notes,
        );
    }
    if flags.host {
        return (
            PodDns {
                source: "host".into(),
                dns: Dns::from_resolv_conf(host_resolv),
            },
            notes,
        );
    }
    if flags.any_field() {
        let mut dns = from_net.map(|(_, d)| d.clone()).unwrap_or_default();
        if !flags.servers.is_empty() {
            dns.nameservers = flags.servers.iter().map(|s| s.to_string()).collect();
        }
        if !flags.search.is_empty() {
            dns.search = flags.search.clone();
        }
        if !flags.options.is_empty() {
            dns.options = flags.options.clone();
        }
        if let Some(d) = &flags.domain {
            dns.domain = d.clone();
        }
        return (
            PodDns {
                source: "flags".into(),
                dns,
            },
            notes,
        );
    }
    match from_net {
        Some((name, d)) => (
            PodDns {
                source: format!("network \"{name}\""),
                dns: d.clone(),
            },
            notes,
        ),
        None => (
            PodDns {
                source: "image".into(),
                dns: Dns::default(),
            },
            notes,
        ),
    }
}

/// resolv.conf in rkt's layout, with a comment naming where it came from.
pub fn resolv_conf(dns: &Dns, source: &str) -> String {
    let mut s = format!("# Generated by rkt from {source}\n");
    if !dns.search.is_empty() {
        s.push_str(&format!("search {}\n", dns.search.join(" ")));
    }
    for ns in &dns.nameservers {
        s.push_str(&format!("nameserver {ns}\n"));
    }
    if !dns.options.is_empty() {
        s.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    if !dns.domain.is_empty() {
        s.push_str(&format!("domain {}\n", dns.domain));
    }
    s
}

/// What `--hosts-entry` asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostsFlags {
    /// `--hosts-entry=host`: the host's /etc/hosts.
    pub host: bool,
    pub entries: Vec<(IpAddr, Vec<String>)>,
}

impl HostsFlags {
    /// Parses `IP=HOST[,HOST...]` (repeatable) and `host`.
    pub fn parse(values: &[String]) -> Result<Self, FlagError> {
        let mut f = HostsFlags::default();
        for v in values {
            if v == "host" {
                f.host = true;
                continue;
            }
            let (ip, names) = v
                .split_once('=')
                .ok_or_else(|| FlagError::HostsForm(v.clone()))?;
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| FlagError::HostsIp(v.clone(), ip.to_string()))?;
            let names: Vec<String> = names
                .split(',')
                .filter(|n| !n.is_empty())
                .map(String::from)
                .collect();
            if names.is_empty() || names.iter().any(|n| !valid_domain(n)) {
                return Err(FlagError::HostsNames(v.clone()));
            }
            match f.entries.iter_mut().find(|(i, _)| *i == ip) {
                Some((_, existing)) => existing.extend(names),
                None => f.entries.push((ip, names)),
            }
        }
        if f.host && !f.entries.is_empty() {
            return Err(FlagError::HostsCombined);
        }
        Ok(f)
    }
}

/// /etc/hosts: localhost lines, the hostname on the first address, extras.
pub fn hosts(hostname: &str, first_ip: Option<&str>, extra: &[(IpAddr, Vec<String>)]) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost localhost.localdomain localhost4 localhost4.localdomain4\n\
         ::1\tlocalhost localhost.localdomain localhost6 localhost6.localdomain6\n",
    );
    match first_ip {
        Some(ip) => s.push_str(&format!("{ip}\t{hostname}\n")),
        None => s.push_str(&format!("127.0.1.1\t{hostname}\n")),
    }
    for (ip, names) in extra {
        s.push_str(&format!("{ip}\t{}\n", names.join(" ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn layouts() {
        let dns = Dns {
            nameservers: vec!["10.0.0.53".into()],
            domain: "example.test".into(),
            search: vec!["a.test".into(), "b.test".into()],
            options: vec!["ndots:2".into()],
        };
        let r = resolv_conf(&dns, "network \"n\"");
        assert_eq!(
            r,
            "# Generated by rkt from network \"n\"\nsearch a.test b.test\nnameserver 10.0.0.53\noptions ndots:2\ndomain example.test\n"
        );
        assert_eq!(Dns::from_resolv_conf(&r), dns);
        let h = hosts("pod", Some("10.1.0.2"), &[]);
        assert!(h.ends_with("10.1.0.2\tpod\n"));
    }

    #[test]
    fn flag_rules() {
        let f = DnsFlags::parse(
            &s(&["10.0.0.1,10.0.0.2", "::1"]),
            &s(&["a.test"]),
            &s(&["ndots:3"]),
            Some("d.test"),
        )
        .unwrap();
        assert_eq!(f.servers.len(), 3);
        for (dns, search, want) in [
            (s(&["host", "10.0.0.1"]), s(&[]), "--dns=host"),
            (s(&["none"]), s(&["a.test"]), "--dns=none"),
            (s(&["host", "none"]), s(&[]), "--dns=host"),
            (s(&["not-an-ip"]), s(&[]), "--dns=not-an-ip"),
            (s(&[]), s(&["bad domain"]), "--dns-search"),
        ] {
            let e = DnsFlags::parse(&dns, &search, &[], None)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e} / {want}");
        }
        assert!(HostsFlags::parse(&s(&["host", "10.0.0.1=a"])).is_err());
        assert!(HostsFlags::parse(&s(&["10.0.0.1"])).is_err());
        assert!(HostsFlags::parse(&s(&["x=a"])).is_err());
        let h = HostsFlags::parse(&s(&["10.0.0.1=a,b", "10.0.0.1=c"])).unwrap();
        assert_eq!(h.entries[0].1, s(&["a", "b", "c"]));
    }

    #[test]
    fn precedence() {
        let net = |ns: &str| Dns {
            nameservers: vec![ns.into()],
            ..Default::default()
        };
        let nets = vec![
            ("a".to_string(), Dns::default()),
            ("b".to_string(), net("10.0.0.2")),
            ("c".to_string(), net("10.0.0.3")),
        ];
        let (d, notes) = decide(&DnsFlags::default(), &nets, "");
        assert_eq!(d.source, "network \"b\"");
        assert_eq!(notes.len(), 1);
        let flags = DnsFlags::parse(&s(&["10.9.9.9"]), &[], &[], None).unwrap();
        assert_eq!(
            decide(&flags, &nets, "").0.dns.nameservers,
            s(&["10.9.9.9"])
        );
        let host = DnsFlags::parse(&s(&["host"]), &[], &[], None).unwrap();
        assert_eq!(
            decide(&host, &nets, "nameserver 10.1.1.1\n")
                .0
                .dns
                .nameservers,
            s(&["10.1.1.1"])
        );
        assert_eq!(decide(&DnsFlags::default(), &[], "").0.source, "image");
    }
}
