//! The nftables side of `portmap`: one table, `inet rkt-portmap`, whose
//! chains never change; each attachment adds and removes map elements.
//!
//! - `any4`/`any6` map (protocol, host port) to (pod address, pod port):
//!   mappings without a host address, on every local address.
//! - `hip4`/`hip6` map (protocol, host address, host port): mappings
//!   limited to one host address (looked up first, so they win).
//! - `masq4`/`masq6` hold (pod subnet, pod address): connections DNATed to
//!   a pod from its own subnet (another pod on its network, or itself:
//!   hairpin) are masqueraded, so the answer comes back through the host
//!   (`snat`, on by default, as in the reference).
//! - `pre` and `out` jump to `mapped` for packets to a local address,
//!   arriving or sent by the host itself (127.0.0.1 included); `post`
//!   masquerades what `masq*` names and what the host sent from 127.0.0.0/8
//!   (the answer could not find its way back otherwise).
//! - `guard` drops packets that arrive on a non-loopback interface to or
//!   from 127.0.0.0/8: localhost forwarding needs `route_localnet` on the
//!   host side of a pod's link, which would otherwise let a pod reach the
//!   host's localhost services (CVE-2020-8558, as kube-proxy guards it).

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::cni::port_mapping::PortMapping;

pub const TABLE: &str = "rkt-portmap";

/// The table with its maps and chains, replacing any table of that name.
pub fn install() -> String {
    format!(
        "add table inet {TABLE}
delete table inet {TABLE}
table inet {TABLE} {{
  map any4 {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}
  map hip4 {{ type inet_proto . ipv4_addr . inet_service : ipv4_addr . inet_service; }}
  map any6 {{ type inet_proto . inet_service : ipv6_addr . inet_service; }}
  map hip6 {{ type inet_proto . ipv6_addr . inet_service : ipv6_addr . inet_service; }}
  set masq4 {{ type ipv4_addr . ipv4_addr; flags interval; }}
  set masq6 {{ type ipv6_addr . ipv6_addr; flags interval; }}
  chain mapped {{
    meta nfproto ipv4 dnat ip to meta l4proto . ip daddr . th dport map @hip4
    meta nfproto ipv4 dnat ip to meta l4proto . th dport map @any4
    meta nfproto ipv6 dnat ip6 to meta l4proto . ip6 daddr . th dport map @hip6
    meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @any6
  }}
  chain pre {{ type nat hook prerouting priority dstnat; policy accept; fib daddr type local jump mapped; }}
  chain out {{ type nat hook output priority -100; policy accept; fib daddr type local jump mapped; }}
  chain post {{
    type nat hook postrouting priority srcnat; policy accept;
    ct status dnat ip saddr 127.0.0.0/8 masquerade
    ct status dnat ip saddr . ip daddr @masq4 masquerade
    ct status dnat ip6 saddr . ip6 daddr @masq6 masquerade
  }}
  chain guard {{
    type filter hook prerouting priority raw; policy accept;
    iiftype != loopback ip daddr 127.0.0.0/8 drop
    iiftype != loopback ip saddr 127.0.0.0/8 drop
  }}
}}
"
    )
}

/// Removes the table (whether or not it exists).
pub fn remove() -> String {
    format!("add table inet {TABLE}\ndelete table inet {TABLE}\n")
}

/// One element of one of the table's maps or sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Element {
    pub map: String,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl Element {
    fn text(&self) -> String {
        match &self.value {
            Some(v) => format!("{} : {v}", self.key),
            None => self.key.clone(),
        }
    }

    pub fn add(&self) -> String {
        format!(
            "add element inet {TABLE} {} {{ {} }}\n",
            self.map,
            self.text()
        )
    }

    pub fn delete(&self) -> String {
        format!(
            "delete element inet {TABLE} {} {{ {} }}\n",
            self.map, self.key
        )
    }

    /// `nft get element` arguments that print it.
    pub fn get_args(&self) -> Vec<String> {
        ["get", "element", "inet", TABLE, &self.map]
            .iter()
            .map(|s| s.to_string())
            .chain([format!("{{ {} }}", self.key)])
            .collect()
    }

    /// The name of the host port this element claims (maps only), unique
    /// per map key: a file name for the claim.
    pub fn claim(&self) -> Option<String> {
        self.value.as_ref()?;
        Some(format!("{}-{}", self.map, self.key.replace(" . ", "-")))
    }
}

/// The elements that forward `m` to the pod's `addrs` (its first address
/// of each family, with their prefix); `snat` adds the hairpin elements.
pub fn elements(m: &PortMapping, addrs: &[IpNet], snat: bool) -> Vec<Element> {
    let mut out = Vec::new();
    for pod in addrs {
        let v4 = pod.addr().is_ipv4();
        if !m.applies(v4) {
            continue;
        }
        let fam = if v4 { '4' } else { '6' };
        let proto = m.proto.name();
        let (map, key) = match m.host_ip.filter(|ip| !ip.is_unspecified()) {
            Some(ip) => (
                format!("hip{fam}"),
                format!("{proto} . {ip} . {}", m.host_port),
            ),
            None => (format!("any{fam}"), format!("{proto} . {}", m.host_port)),
        };
        out.push(Element {
            map,
            key,
            value: Some(format!("{} . {}", pod.addr(), m.container_port)),
        });
        if snat {
            let e = Element {
                map: format!("masq{fam}"),
                key: format!("{} . {}", pod.trunc(), pod.addr()),
                value: None,
            };
            if !out.contains(&e) {
                out.push(e);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::port_mapping::Proto;

    fn m(host_ip: Option<&str>) -> PortMapping {
        PortMapping {
            host_port: 8080,
            container_port: 80,
            proto: Proto::Tcp,
            host_ip: host_ip.map(|h| h.parse().unwrap()),
        }
    }

    #[test]
    fn elements_per_family_and_host_address() {
        let addrs: Vec<IpNet> = vec![
            "10.1.0.5/24".parse().unwrap(),
            "fd00::5/64".parse().unwrap(),
        ];
        let all = elements(&m(None), &addrs, true);
        let texts: Vec<String> = all.iter().map(Element::add).collect();
        assert_eq!(
            texts,
            [
                "add element inet rkt-portmap any4 { tcp . 8080 : 10.1.0.5 . 80 }\n",
                "add element inet rkt-portmap masq4 { 10.1.0.0/24 . 10.1.0.5 }\n",
                "add element inet rkt-portmap any6 { tcp . 8080 : fd00::5 . 80 }\n",
                "add element inet rkt-portmap masq6 { fd00::/64 . fd00::5 }\n",
            ]
        );
        let one = elements(&m(Some("192.168.1.1")), &addrs, false);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].key, "tcp . 192.168.1.1 . 8080");
        assert_eq!(one[0].claim().unwrap(), "hip4-tcp-192.168.1.1-8080");
        // 0.0.0.0 is IPv4's wildcard, :: IPv6's.
        assert_eq!(elements(&m(Some("0.0.0.0")), &addrs, false)[0].map, "any4");
        let v6 = elements(&m(Some("::")), &addrs, false);
        assert_eq!((v6.len(), v6[0].map.as_str()), (1, "any6"));
    }
}
