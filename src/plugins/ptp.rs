//! The `ptp` plugin: a veth pair per attachment, the pod end (CNI_IFNAME)
//! born directly inside the pod netns, the host end `veth<hash>` carrying
//! the gateway as /32, and the routes the reference ptp 1.1.1 installs: in
//! the pod a route to the gateway /32 and the subnet route rewritten via
//! the gateway; on the host a route to the pod address. `mtu`, `ipMasq`
//! (see [`super::masquerade`]) and a config-level `dns` are honoured.

use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;

use super::{host_veth_name, ipam, masquerade, nl_err, setup, BaseConf, PluginError};
use crate::cni::result::Interface;
use crate::cni::skeleton::{Plugin, Request};
use crate::cni::{codes, CniError, CniResult};
use crate::netlink::route::{Route, Scope};
use crate::netlink::{sysctl, Netlink, NetlinkError, Netns};

/// The ptp plugin.
pub struct Ptp;

/// Turns on forwarding for the families in use (host netns).
pub(crate) fn enable_forwarding(res: &CniResult) -> Result<(), NetlinkError> {
    if res.ips.iter().any(|i| i.address.addr().is_ipv4()) {
        sysctl::ensure("net/ipv4/ip_forward", "1")?;
    }
    if res.ips.iter().any(|i| i.address.addr().is_ipv6()) {
        sysctl::ensure("net/ipv6/conf/all/forwarding", "1")?;
    }
    Ok(())
}

fn host_prefix(ip: IpAddr) -> IpNet {
    let bits = if ip.is_ipv4() { 32 } else { 128 };
    // A full-length prefix is always valid.
    IpNet::new(ip, bits).unwrap_or_else(|_| IpNet::from(ip))
}

impl Ptp {
    fn setup(
        &self,
        req: &Request,
        conf: &BaseConf,
        ns: &Netns,
        host: &Netlink,
        res: &mut CniResult,
        host_name: &str,
    ) -> Result<(), PluginError> {
        enable_forwarding(res).map_err(nl_err(req, "enable IP forwarding"))?;
        // The pod end is born inside the pod netns; a stale host end from a
        // failed attempt of this very attachment is ours to replace.
        if let Err(e) = host.create_veth(host_name, &req.ifname, ns, conf.mtu()) {
            if !e.is_exists() {
                return Err(nl_err(req, "create the veth pair")(e));
            }
            if host
                .delete_link_by_name(host_name)
                .map_err(nl_err(req, "remove a stale host veth"))?
            {
                host.create_veth(host_name, &req.ifname, ns, conf.mtu())
                    .map_err(nl_err(req, "create the veth pair"))?;
            } else {
                return Err(PluginError::Other {
                    network: req.name.clone(),
                    msg: format!(
                        "container veth name provided ({}) already exists in {}",
                        req.ifname, req.netns
                    ),
                });
            }
        }
        let hveth = host
            .link(host_name)
            .map_err(nl_err(req, "look up the host veth"))?;
        host.set_up(hveth.index)
            .map_err(nl_err(req, "set the host veth up"))?;
        // Anti-spoofing: the host drops what the pod sends from an address
        // not routed back through this veth (strict reverse-path filter).
        sysctl::write(&format!("net/ipv4/conf/{host_name}/rp_filter"), "1")
            .map_err(nl_err(req, "enable rp_filter on the host veth"))?;

        // Pod side.
        let pod = Netlink::in_netns(ns).map_err(nl_err(req, "connect to the pod netns"))?;
        let cveth = pod
            .link(&req.ifname)
            .map_err(nl_err(req, "look up the pod interface"))?;
        for ip in res.ips.iter_mut() {
            ip.interface = Some(1);
        }
        setup::configure_iface(&pod, cveth.index, res, 1)
            .map_err(|(what, e)| nl_err(req, what)(e))?;
        for ip in &res.ips {
            let Some(gw) = ip.gateway else {
                return Err(PluginError::Other {
                    network: req.name.clone(),
                    msg: format!("IPAM gave {} without a gateway; ptp needs one", ip.address),
                });
            };
            let subnet = ip.address.trunc();
            pod.delete_route(&Route::new(subnet, None, cveth.index).scope(Scope::Other))
                .map_err(nl_err(req, format!("delete the route to {subnet}")))?;
            let addr = ip.address.addr();
            pod.add_route(
                &Route::new(host_prefix(gw), None, cveth.index)
                    .scope(Scope::Link)
                    .src(addr),
            )
            .map_err(nl_err(req, format!("add the route to the gateway {gw}")))?;
            pod.add_route(&Route::new(subnet, Some(gw), cveth.index).src(addr))
                .map_err(nl_err(req, format!("add the route to {subnet} via {gw}")))?;
        }

        // Host side: the gateway as /32, a route to each pod address.
        for ip in &res.ips {
            if let Some(gw) = ip.gateway {
                host.add_address(hveth.index, host_prefix(gw))
                    .map_err(nl_err(
                        req,
                        format!("add {gw} to the host veth {host_name}"),
                    ))?;
            }
            let r =
                Route::new(host_prefix(ip.address.addr()), None, hveth.index).scope(Scope::Host);
            if let Err(e) = host.add_route(&r) {
                if !e.is_exists() {
                    return Err(nl_err(req, "add the host route to the pod")(e));
                }
            }
        }
        if conf.ip_masq {
            let nets: Vec<IpNet> = res.ips.iter().map(|i| i.address).collect();
            masquerade::add(&req.name, &req.container_id, &req.ifname, &nets).map_err(
                |source| PluginError::Masquerade {
                    network: req.name.clone(),
                    source,
                },
            )?;
        }
        res.interfaces = vec![
            Interface {
                name: host_name.to_string(),
                mac: hveth.mac,
                ..Default::default()
            },
            Interface {
                name: req.ifname.clone(),
                mac: cveth.mac,
                sandbox: req.netns.clone(),
                ..Default::default()
            },
        ];
        Ok(())
    }
}

/// Opens the pod netns or says which one failed.
pub(crate) fn open_netns(req: &Request) -> Result<Netns, CniError> {
    Netns::open(Path::new(&req.netns)).map_err(|e| {
        CniError::new(
            codes::INTERNAL,
            format!(
                "network \"{}\": failed to open netns \"{}\": {e}",
                req.name, req.netns
            ),
        )
    })
}

impl Plugin for Ptp {
    /// GC goes to the IPAM plugin: it holds what can leak (leases).
    fn gc(&self, req: &Request) -> Result<(), CniError> {
        ipam::gc(req)
    }

    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        let conf = BaseConf::parse(req)?;
        let ns = open_netns(req)?;
        let host = Netlink::current().map_err(nl_err(req, "connect to the host netns"))?;
        let mut res = ipam::add(req)?;
        let host_name = host_veth_name(&req.container_id, &req.ifname);
        if let Err(e) = self.setup(req, &conf, &ns, &host, &mut res, &host_name) {
            // Roll back what we did; the first error is the one to report.
            let _ = host.delete_link_by_name(&host_name);
            if conf.ip_masq {
                let _ = masquerade::del(&req.name, &req.container_id, &req.ifname);
            }
            let _ = ipam::del(req);
            return Err(e.into());
        }
        res.dns = req.result_dns(std::mem::take(&mut res.dns));
        Ok(res)
    }

    fn del(&self, req: &Request) -> Result<(), CniError> {
        let conf = BaseConf::parse(req)?;
        ipam::del(req)?;
        if conf.ip_masq {
            masquerade::del(&req.name, &req.container_id, &req.ifname).map_err(|source| {
                PluginError::Masquerade {
                    network: req.name.clone(),
                    source,
                }
            })?;
        }
        // No netns, or the runtime removes it right after: the kernel
        // reaps the pod's links (and a veth's host end) with it.
        if req.netns.is_empty() || req.netns_goes_away() {
            return Ok(());
        }
        // Deleting the host end deletes the pod end with it: no need to
        // enter the pod netns. Fall back to the pod end by name (an
        // attachment made by another ptp implementation).
        let host = Netlink::current().map_err(nl_err(req, "connect to the host netns"))?;
        let host_name = host_veth_name(&req.container_id, &req.ifname);
        if host
            .delete_link_by_name(&host_name)
            .map_err(nl_err(req, "delete the host veth"))?
        {
            return Ok(());
        }
        let ns = match Netns::open(Path::new(&req.netns)) {
            Ok(ns) => ns,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(nl_err(req, "open the pod netns")(e).into()),
        };
        let pod = Netlink::in_netns(&ns).map_err(nl_err(req, "connect to the pod netns"))?;
        if let Some(l) = pod
            .link_by_name(&req.ifname)
            .map_err(nl_err(req, "look up the pod interface"))?
        {
            if l.kind.as_deref() == Some("veth") {
                match pod.delete_link(l.index) {
                    Err(e) if !e.is_not_found() => {
                        return Err(nl_err(req, "delete the pod interface")(e).into())
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        let prev = req.prev_result.as_ref().ok_or_else(|| {
            CniError::new(
                codes::INVALID_CONFIG,
                format!("network \"{}\": CHECK needs a prevResult", req.name),
            )
        })?;
        ipam::check(req)?;
        let ns = open_netns(req)?;
        let iface = prev
            .interfaces
            .iter()
            .position(|i| i.name == req.ifname && !i.sandbox.is_empty())
            .unwrap_or(1);
        let pod = Netlink::in_netns(&ns).map_err(nl_err(req, "connect to the pod netns"))?;
        setup::verify_iface(&pod, &req.ifname, prev, iface)
            .map_err(|m| CniError::new(codes::INTERNAL, format!("network \"{}\": {m}", req.name)))
    }
}
