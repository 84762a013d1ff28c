//! The `macvlan` plugin: a macvlan on `master` (default: the interface of
//! the host's default route) created directly inside the pod netns as
//! CNI_IFNAME, `mode` (bridge by default) and `mtu`, addresses and routes
//! from IPAM, as the reference macvlan 1.1.1.

use serde::Deserialize;

use super::ipam;
use super::pkg::attachment::open_netns;
use super::pkg::conf::{parse_conf, IpamRef};
use super::pkg::error::{nl_err, PluginError};
use super::pkg::{iface, teardown};
use crate::cni::result::Interface;
use crate::cni::skeleton::{Plugin, Request};
use crate::cni::{CniError, CniResult};
use crate::netlink::{sysctl, Netlink, NetlinkError};
use rtnetlink::packet_route::link::MacVlanMode;

/// The macvlan plugin.
pub struct Macvlan;

#[derive(Debug, Clone, Deserialize)]
struct Conf {
    #[serde(default)]
    master: String,
    #[serde(default)]
    mode: String,
    #[serde(default)]
    mtu: u32,
    #[serde(default)]
    ipam: Option<IpamRef>,
}

impl Conf {
    fn has_ipam(&self) -> bool {
        self.ipam
            .as_ref()
            .map(|i| !i.ty.is_empty())
            .unwrap_or(false)
    }
}

fn parse_mode(s: &str) -> Option<MacVlanMode> {
    Some(match s {
        "" | "bridge" => MacVlanMode::Bridge,
        "private" => MacVlanMode::Private,
        "vepa" => MacVlanMode::Vepa,
        "passthru" => MacVlanMode::Passthrough,
        _ => return None,
    })
}

/// The name of the interface of the host's IPv4 default route.
fn default_route_interface(host: &Netlink) -> Result<Option<String>, NetlinkError> {
    for r in host.routes(false)? {
        if r.dst.prefix_len() == 0 {
            if let Some(oif) = r.oif {
                return Ok(Some(host.link_by_index(oif)?.name));
            }
        }
    }
    Ok(None)
}

impl Macvlan {
    fn setup(
        &self,
        req: &Request,
        conf: &Conf,
        pod: &Netlink,
        index: u32,
    ) -> Result<CniResult, CniError> {
        let mut res = CniResult::default();
        if conf.has_ipam() {
            res = ipam::add(req)?;
            for ip in res.ips.iter_mut() {
                ip.interface = Some(0);
            }
            iface::configure_iface(pod, index, &res, 0, false)
                .map_err(|(what, e)| CniError::from(nl_err(req, what)(e)))?;
        } else {
            pod.set_up(index)
                .map_err(|e| CniError::from(nl_err(req, "set the interface up")(e)))?;
        }
        Ok(res)
    }
}

impl Plugin for Macvlan {
    /// GC goes to the IPAM plugin: it holds what can leak (leases).
    fn gc(&self, req: &Request) -> Result<(), CniError> {
        ipam::gc(req)
    }

    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        let conf: Conf = parse_conf(req)?;
        let mode = parse_mode(&conf.mode).ok_or_else(|| {
            CniError::from(PluginError::Config {
                network: req.name.clone(),
                msg: format!("unknown macvlan mode: {}", conf.mode),
            })
        })?;
        let ns = open_netns(req)?;
        let host = Netlink::current().map_err(nl_err(req, "connect to the host netns"))?;
        let master_name = if conf.master.is_empty() {
            default_route_interface(&host)
                .map_err(nl_err(req, "find the default route interface"))?
                .ok_or_else(|| {
                    CniError::from(PluginError::Config {
                        network: req.name.clone(),
                        msg: "no \"master\" given and the host has no default route".into(),
                    })
                })?
        } else {
            conf.master.clone()
        };
        let master = host
            .link_by_name(&master_name)
            .map_err(nl_err(req, "look up the master"))?
            .ok_or_else(|| {
                CniError::from(PluginError::Config {
                    network: req.name.clone(),
                    msg: format!("failed to lookup master \"{master_name}\": Link not found"),
                })
            })?;
        if conf.mtu > master.mtu {
            return Err(PluginError::Config {
                network: req.name.clone(),
                msg: format!(
                    "invalid MTU {}, must be [0, master MTU({})]",
                    conf.mtu, master.mtu
                ),
            }
            .into());
        }
        host.create_macvlan(
            &req.ifname,
            master.index,
            mode,
            (conf.mtu > 0).then_some(conf.mtu),
            &ns,
        )
        .map_err(nl_err(req, format!("create the macvlan on {master_name}")))?;
        let pod = Netlink::in_netns(&ns).map_err(nl_err(req, "connect to the pod netns"))?;
        let link = pod
            .link(&req.ifname)
            .map_err(nl_err(req, "look up the macvlan"))?;
        let arp = format!("net/ipv4/conf/{}/arp_notify", req.ifname);
        let step = ns
            .run(|| sysctl::write(&arp, "1"))
            .map_err(NetlinkError::from)
            .and_then(|r| r)
            .map_err(|e| CniError::from(nl_err(req, "set arp_notify")(e)))
            .and_then(|_| self.setup(req, &conf, &pod, link.index));
        match step {
            Ok(mut res) => {
                res.interfaces = vec![Interface {
                    name: req.ifname.clone(),
                    mac: link.mac,
                    sandbox: req.netns.clone(),
                    ..Default::default()
                }];
                res.dns = req.result_dns(std::mem::take(&mut res.dns));
                Ok(res)
            }
            Err(e) => {
                let _ = pod.delete_link(link.index);
                if conf.has_ipam() {
                    let _ = ipam::del(req);
                }
                Err(e)
            }
        }
    }

    fn del(&self, req: &Request) -> Result<(), CniError> {
        let conf: Conf = parse_conf(req)?;
        if conf.has_ipam() {
            ipam::del(req)?;
        }
        teardown::delete_pod_link(req, "macvlan")
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        let conf: Conf = parse_conf(req)?;
        iface::check_attachment(req, conf.has_ipam(), 0)
    }
}
