//! The `bridge` plugin: a host bridge (default `cni0`, created on first
//! use), a veth per attachment whose pod end is born in the pod netns and
//! whose host end is enslaved to the bridge; `isGateway` /
//! `isDefaultGateway` / `forceAddress` put the gateway on the bridge,
//! `ipMasq`, `mtu`, `hairpinMode`, `promiscMode`, `vlan` as in the
//! reference bridge 1.1.1; `nonMasqueradeCIDRs` (ours) leaves traffic to
//! those destinations unmasqueraded (a cluster's pod CIDR). `"isolation": "host-only"` keeps the pods to
//! the host: the bridge switches nothing between the network's ports and
//! the host routes nothing from or to the bridge ([`super::firewall`]).

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;

use super::ipam;
use super::pkg::attachment::{self, enable_forwarding, open_netns, Undo};
use super::pkg::conf::{parse_conf, BaseConf, Isolation};
use super::pkg::error::{nl_err, PluginError};
use super::pkg::{firewall, iface, veth};
use crate::cni::result::{Interface, Route as CniRoute};
use crate::cni::skeleton::{Plugin, Request};
use crate::cni::{CniError, CniResult};
use crate::netlink::link::Link;
use crate::netlink::{sysctl, Netlink, NetlinkError, Netns};

/// The bridge plugin.
pub struct Bridge;

#[derive(Debug, Clone, Deserialize)]
struct Conf {
    #[serde(default = "default_bridge", rename = "bridge")]
    bridge: String,
    #[serde(default, rename = "isGateway")]
    is_gateway: bool,
    #[serde(default, rename = "isDefaultGateway")]
    is_default_gateway: bool,
    #[serde(default, rename = "forceAddress")]
    force_address: bool,
    /// `ipMasq`, `nonMasqueradeCIDRs`, `mtu`, `ipam`, `isolation`.
    #[serde(flatten)]
    base: BaseConf,
    #[serde(default, rename = "hairpinMode")]
    hairpin_mode: bool,
    #[serde(default, rename = "promiscMode")]
    promisc_mode: bool,
    #[serde(default)]
    vlan: u16,
}

fn default_bridge() -> String {
    "cni0".into()
}

impl Conf {
    fn load(req: &Request) -> Result<Self, PluginError> {
        let mut c: Conf = parse_conf(req)?;
        if c.is_default_gateway {
            c.is_gateway = true;
        }
        let bad = |msg: &str| PluginError::Config {
            network: req.name.clone(),
            msg: msg.into(),
        };
        if c.hairpin_mode && c.promisc_mode {
            return Err(bad(
                "cannot set hairpin mode and promiscuous mode at the same time",
            ));
        }
        if c.vlan > 4094 {
            return Err(bad("invalid VLAN ID (must be between 0 and 4094)"));
        }
        if !crate::cni::skeleton::valid_ifname(&c.bridge) {
            return Err(bad("\"bridge\" is not a valid interface name"));
        }
        // The bridge is named in an nftables rule.
        let plain = |n: &str| {
            n.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '.' | '-'))
        };
        if c.base.isolation == Isolation::HostOnly && !plain(&c.bridge) {
            return Err(bad(
                "\"isolation\": \"host-only\" needs a \"bridge\" name of letters, digits, '_', '.', '-'",
            ));
        }
        Ok(c)
    }
    fn has_ipam(&self) -> bool {
        self.base.has_ipam()
    }
}

/// The first address of a subnet: the gateway when IPAM names none.
fn first_host(net: &IpNet) -> IpAddr {
    match net.network() {
        IpAddr::V4(a) => IpAddr::V4((u32::from(a).wrapping_add(1)).into()),
        IpAddr::V6(a) => IpAddr::V6((u128::from(a).wrapping_add(1)).into()),
    }
}

fn ensure_bridge(req: &Request, conf: &Conf, host: &Netlink) -> Result<Link, PluginError> {
    let existing = host
        .link_by_name(&conf.bridge)
        .map_err(nl_err(req, format!("look up bridge {}", conf.bridge)))?;
    let br = match existing {
        Some(l) => l,
        None => {
            match host.create_bridge(&conf.bridge, conf.base.mtu(), conf.vlan != 0) {
                Err(e) if !e.is_exists() => {
                    let what = if conf.vlan != 0 {
                        format!(
                            "create bridge {} with VLAN filtering (for \"vlan\": {}; the kernel needs CONFIG_BRIDGE_VLAN_FILTERING)",
                            conf.bridge, conf.vlan
                        )
                    } else {
                        format!("create bridge {}", conf.bridge)
                    };
                    return Err(nl_err(req, what)(e));
                }
                _ => {}
            }
            host.link(&conf.bridge)
                .map_err(nl_err(req, format!("look up bridge {}", conf.bridge)))?
        }
    };
    if br.kind.as_deref() != Some("bridge") {
        return Err(PluginError::Other {
            network: req.name.clone(),
            msg: format!("{} already exists but is not a bridge", conf.bridge),
        });
    }
    if conf.promisc_mode && !br.promisc {
        host.set_promisc(br.index, true).map_err(nl_err(
            req,
            format!("set bridge {} promiscuous", conf.bridge),
        ))?;
    }
    // We own the bridge's routes: no router advertisements (best effort,
    // IPv6 may be disabled).
    let _ = sysctl::write(&format!("net/ipv6/conf/{}/accept_ra", conf.bridge), "0");
    if !br.up {
        host.set_up(br.index)
            .map_err(nl_err(req, format!("set bridge {} up", conf.bridge)))?;
    }
    Ok(br)
}

/// Puts `gw` on the bridge unless it is there; another address of the
/// family is replaced with `forceAddress`, an error without.
fn ensure_addr(
    req: &Request,
    conf: &Conf,
    host: &Netlink,
    br: &Link,
    gw: IpNet,
) -> Result<(), PluginError> {
    let have = host.addresses(br.index).map_err(nl_err(
        req,
        format!("list addresses of bridge {}", conf.bridge),
    ))?;
    for a in have
        .iter()
        .filter(|a| a.addr().is_ipv4() == gw.addr().is_ipv4())
    {
        if *a == gw {
            return Ok(());
        }
        let clash = gw.addr().is_ipv4() || a.contains(&gw.addr()) || gw.contains(&a.addr());
        if !clash || matches!(a, IpNet::V6(n) if n.addr().segments()[0] & 0xffc0 == 0xfe80) {
            continue;
        }
        if !conf.force_address {
            return Err(PluginError::Other {
                network: req.name.clone(),
                msg: format!(
                    "\"{}\" already has an IP address different from {gw}",
                    conf.bridge
                ),
            });
        }
        host.delete_address(br.index, *a).map_err(nl_err(
            req,
            format!("remove {a} from bridge {}", conf.bridge),
        ))?;
    }
    match host.add_address(br.index, gw) {
        Err(e) if !e.is_exists() => {
            return Err(nl_err(req, format!("add {gw} to bridge {}", conf.bridge))(
                e,
            ))
        }
        _ => {}
    }
    // Pin the bridge's MAC, or it follows the lowest port MAC as ports churn.
    if let Some(mac) = crate::netlink::link::parse_mac(&br.mac) {
        host.set_mac(br.index, &mac).map_err(nl_err(
            req,
            format!("set the MAC of bridge {}", conf.bridge),
        ))?;
    }
    Ok(())
}

impl Bridge {
    fn setup(
        &self,
        req: &Request,
        conf: &Conf,
        ns: &Netns,
        host: &Netlink,
        undo: &mut Undo,
    ) -> Result<CniResult, PluginError> {
        let br = ensure_bridge(req, conf, host)?;
        let mut res = CniResult::default();
        if conf.has_ipam() {
            res = ipam::add(req)?;
        }
        let hveth = veth::create(req, host, ns, conf.base.mtu(), firewall::group(&req.name))?;
        undo.veth = Some(hveth.clone());
        let host_name = hveth.name.as_str();
        host.set_master(hveth.index, br.index).map_err(nl_err(
            req,
            format!("connect {host_name} to bridge {}", conf.bridge),
        ))?;
        if conf.hairpin_mode {
            host.set_hairpin(hveth.index, true)
                .map_err(nl_err(req, format!("set hairpin mode on {host_name}")))?;
        }
        if conf.vlan != 0 {
            host.add_port_vlan(hveth.index, conf.vlan).map_err(nl_err(
                req,
                format!("set vlan {} on {host_name}", conf.vlan),
            ))?;
        }
        // A bridge port needs no addresses of its own, IPv6 or not: the
        // bridge carries the gateway, and IPv6 frames are bridged at layer 2.
        attachment::host_veth_without_ipv6(host_name)
            .map_err(nl_err(req, "turn IPv6 off on the host veth"))?;
        // The network's nftables state (masquerade, isolation) is in place
        // before the port comes up.
        let host_only = conf.base.isolation == Isolation::HostOnly;
        let want = firewall::Spec {
            network: req.name.clone(),
            masq: conf.base.ip_masq && conf.has_ipam(),
            host_only,
            src_check: false,
            bridges: if host_only {
                vec![conf.bridge.clone()]
            } else {
                Vec::new()
            },
            subnets: res.ips.iter().map(|i| i.address.trunc()).collect(),
            no_masq: conf.base.non_masquerade.clone(),
        };
        attachment::firewall_add(req, &want)?;
        undo.firewall = true;
        host.set_up_with_alias(hveth.index, &veth::alias(&req.container_id, &req.ifname))
            .map_err(nl_err(req, "set the host veth up"))?;
        let pod = Netlink::in_netns(ns).map_err(nl_err(req, "connect to the pod netns"))?;
        let cveth = pod
            .link(&req.ifname)
            .map_err(nl_err(req, "look up the pod interface"))?;

        if conf.has_ipam() {
            let mut default_found = [false, false];
            let mut gws: Vec<IpNet> = Vec::new();
            for i in 0..res.ips.len() {
                let ip = &mut res.ips[i];
                ip.interface = Some(2);
                let gw = *ip.gateway.get_or_insert_with(|| first_host(&ip.address));
                let v6 = gw.is_ipv6() as usize;
                let any: IpNet = if v6 == 1 {
                    IpNet::V6(ipnet::Ipv6Net::default())
                } else {
                    IpNet::V4(ipnet::Ipv4Net::default())
                };
                if conf.is_default_gateway && !default_found[v6] {
                    default_found[v6] = res.routes.iter().any(|r| r.gw.is_some() && r.dst == any);
                    if !default_found[v6] {
                        res.routes.push(CniRoute {
                            dst: any,
                            gw: Some(gw),
                        });
                        default_found[v6] = true;
                    }
                }
                let ip = &res.ips[i];
                if let Ok(n) = IpNet::new(gw, ip.address.prefix_len()) {
                    gws.push(n);
                }
            }
            // Announce the address on the LAN when it comes up (gratuitous
            // ARP), as the reference bridge does.
            let arp = format!("net/ipv4/conf/{}/arp_notify", req.ifname);
            ns.run(|| sysctl::write(&arp, "1"))
                .map_err(NetlinkError::from)
                .and_then(|r| r)
                .map_err(nl_err(req, "set arp_notify"))?;
            iface::configure_iface(&pod, cveth.index, &res, 2, false)
                .map_err(|(what, e)| nl_err(req, what)(e))?;
            if conf.is_gateway {
                for gw in &gws {
                    ensure_addr(req, conf, host, &br, *gw)?;
                }
                enable_forwarding(&res).map_err(nl_err(req, "enable IP forwarding"))?;
            }
        } else {
            pod.set_up(cveth.index)
                .map_err(nl_err(req, "set the pod interface up"))?;
        }
        // The bridge's MAC may change as ports come: read it last.
        let br_mac = host
            .link_by_index(br.index)
            .map(|l| l.mac)
            .unwrap_or(br.mac);
        res.interfaces = vec![Interface {
            name: conf.bridge.clone(),
            mac: br_mac,
            ..Default::default()
        }];
        res.interfaces.extend(veth::result_interfaces(
            req, host_name, &hveth.mac, cveth.mac,
        ));
        Ok(res)
    }
}

impl Plugin for Bridge {
    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        let conf = Conf::load(req)?;
        let ns = open_netns(req)?;
        let host = Netlink::current().map_err(nl_err(req, "connect to the host netns"))?;
        let mut undo = Undo::default();
        match self.setup(req, &conf, &ns, &host, &mut undo) {
            Ok(mut res) => {
                res.dns = req.result_dns(std::mem::take(&mut res.dns));
                Ok(res)
            }
            Err(e) => {
                undo.run(req, &host);
                if conf.has_ipam() {
                    let _ = ipam::del(req);
                }
                Err(e.into())
            }
        }
    }

    fn del(&self, req: &Request) -> Result<(), CniError> {
        attachment::del_veth(req, Conf::load(req)?.has_ipam())
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        attachment::gc_firewall(req)
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        iface::check_attachment(req, Conf::load(req)?.has_ipam(), 2)
    }
}
