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
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::cni::port_mapping::{PortMapping, Proto};
use crate::plugins::pkg::nf_tables::{Elem, Fields};

pub const TABLE: &str = "rkt-portmap";

/// The table with its maps and chains (added: see [`create`] and
/// [`replace`]).
fn table() -> String {
    format!(
        "table inet {TABLE} {{
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

/// The table, refused (the whole transaction) when one of its name exists:
/// the common case, with none, costs no deletion (a table's deletion costs
/// the kernel an RCU grace period: 10-30 ms here).
pub fn create() -> String {
    format!("create table inet {TABLE}\n{}", table())
}

/// The table, replacing one of its name (whose chains would otherwise get
/// their rules twice).
pub fn replace() -> String {
    remove() + &table()
}

/// One element of one of the table's maps or sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Element {
    /// `any4`/`any6` (no host address) or `hip4`/`hip6`: a host port
    /// forwarded to the pod.
    #[serde(rename_all = "camelCase")]
    Forward {
        proto: Proto,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host_ip: Option<IpAddr>,
        host_port: u16,
        pod: IpAddr,
        pod_port: u16,
    },
    /// `masq4`/`masq6`: connections from the pod's subnet to the pod are
    /// masqueraded (hairpin).
    Hairpin { subnet: IpNet, pod: IpAddr },
}

fn octets(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn proto_number(p: Proto) -> u8 {
    match p {
        Proto::Tcp => 6,
        Proto::Udp => 17,
        Proto::Sctp => 132,
    }
}

impl Element {
    /// The map or set it belongs to.
    pub fn set(&self) -> String {
        let (name, ip) = match self {
            Element::Forward {
                host_ip: None, pod, ..
            } => ("any", pod),
            Element::Forward { pod, .. } => ("hip", pod),
            Element::Hairpin { pod, .. } => ("masq", pod),
        };
        format!("{name}{}", if ip.is_ipv4() { 4 } else { 6 })
    }

    /// The key in nft's syntax.
    pub fn key(&self) -> String {
        match self {
            Element::Forward {
                proto,
                host_ip: Some(ip),
                host_port,
                ..
            } => {
                format!("{} . {ip} . {host_port}", proto.name())
            }
            Element::Forward {
                proto, host_port, ..
            } => format!("{} . {host_port}", proto.name()),
            Element::Hairpin { subnet, pod } => format!("{} . {pod}", subnet.trunc()),
        }
    }

    /// A map element's value in nft's syntax.
    pub fn value(&self) -> Option<String> {
        match self {
            Element::Forward { pod, pod_port, .. } => Some(format!("{pod} . {pod_port}")),
            Element::Hairpin { .. } => None,
        }
    }

    /// `add element ...` for an nft script.
    pub fn add(&self) -> String {
        let text = match self.value() {
            Some(v) => format!("{} : {v}", self.key()),
            None => self.key(),
        };
        format!("add element inet {TABLE} {} {{ {text} }}\n", self.set())
    }

    /// `nft get element` arguments that print it.
    pub fn get_args(&self) -> Vec<String> {
        ["get", "element", "inet", TABLE, &self.set()]
            .iter()
            .map(|s| s.to_string())
            .chain([format!("{{ {} }}", self.key())])
            .collect()
    }

    /// The host port a forward claims, as a file name unique per map key.
    pub fn claim(&self) -> Option<String> {
        match self {
            Element::Forward { .. } => {
                Some(format!("{}-{}", self.set(), self.key().replace(" . ", "-")))
            }
            Element::Hairpin { .. } => None,
        }
    }

    /// The element as nf_tables netlink carries it.
    pub fn netlink(&self) -> Elem {
        match self {
            Element::Forward {
                proto,
                host_ip,
                host_port,
                pod,
                pod_port,
            } => {
                let mut key = Fields::new().bytes(&[proto_number(*proto)]);
                if let Some(ip) = host_ip {
                    key = key.bytes(&octets(*ip));
                }
                Elem {
                    set: self.set(),
                    key: key.bytes(&host_port.to_be_bytes()).done(),
                    key_end: None,
                    data: Some(
                        Fields::new()
                            .bytes(&octets(*pod))
                            .bytes(&pod_port.to_be_bytes())
                            .done(),
                    ),
                }
            }
            Element::Hairpin { subnet, pod } => Elem {
                set: self.set(),
                key: Fields::new()
                    .bytes(&octets(subnet.network()))
                    .bytes(&octets(*pod))
                    .done(),
                key_end: Some(
                    Fields::new()
                        .bytes(&octets(subnet.broadcast()))
                        .bytes(&octets(*pod))
                        .done(),
                ),
                data: None,
            },
        }
    }
}

/// The elements that forward `m` to the pod's `addrs` (its first address
/// of each family, with their prefix); `snat` adds the hairpin elements.
pub fn elements(m: &PortMapping, addrs: &[IpNet], snat: bool) -> Vec<Element> {
    let mut out = Vec::new();
    for pod in addrs {
        if !m.applies(pod.addr().is_ipv4()) {
            continue;
        }
        out.push(Element::Forward {
            proto: m.proto,
            host_ip: m.host_ip.filter(|ip| !ip.is_unspecified()),
            host_port: m.host_port,
            pod: pod.addr(),
            pod_port: m.container_port,
        });
        if snat {
            let e = Element::Hairpin {
                subnet: pod.trunc(),
                pod: pod.addr(),
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
        assert_eq!(one[0].key(), "tcp . 192.168.1.1 . 8080");
        assert_eq!(one[0].claim().unwrap(), "hip4-tcp-192.168.1.1-8080");
        let nl = one[0].netlink();
        assert_eq!(nl.key, [6, 0, 0, 0, 192, 168, 1, 1, 0x1f, 0x90, 0, 0]);
        assert_eq!(nl.data.unwrap(), [10, 1, 0, 5, 0, 80, 0, 0]);
        // 0.0.0.0 is IPv4's wildcard, :: IPv6's.
        assert_eq!(
            elements(&m(Some("0.0.0.0")), &addrs, false)[0].set(),
            "any4"
        );
        let v6 = elements(&m(Some("::")), &addrs, false);
        assert_eq!((v6.len(), v6[0].set().as_str()), (1, "any6"));
        let hairpin = all[1].netlink();
        assert_eq!(hairpin.key, [10, 1, 0, 0, 10, 1, 0, 5]);
        assert_eq!(hairpin.key_end.unwrap(), [10, 1, 0, 255, 10, 1, 0, 5]);
    }
}
