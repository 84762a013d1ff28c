//! The `ptp` plugin: a veth pair per attachment, the pod end (CNI_IFNAME)
//! born directly inside the pod netns, the host end `veth<hash>` carrying
//! the gateway as /32, and the routes the reference ptp 1.1.1 installs: in
//! the pod a route to the gateway /32 and the subnet route rewritten via
//! the gateway; on the host a route to the pod address. `mtu`, `ipMasq`
//! (see [`super::masquerade`]) and a config-level `dns` are honoured.

use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;

use super::{
    host_veth_name, ipam, masquerade, nl_err, setup, teardown, BaseConf, PluginError, StepTimer,
};
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
        timer: &mut StepTimer,
    ) -> Result<(), PluginError> {
        let host_name = &host_veth_name(&req.container_id, &req.ifname);
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
        if !res.ips.iter().any(|i| i.address.addr().is_ipv6()) {
            super::host_veth_without_ipv6(host_name)
                .map_err(nl_err(req, "turn IPv6 off on the host veth"))?;
        }
        host.set_up(hveth.index)
            .map_err(nl_err(req, "set the host veth up"))?;
        // Anti-spoofing: the host drops what the pod sends from an address
        // not routed back through this veth (strict reverse-path filter).
        sysctl::write(&format!("net/ipv4/conf/{host_name}/rp_filter"), "1")
            .map_err(nl_err(req, "enable rp_filter on the host veth"))?;
        timer.mark("veth");

        // Pod side.
        let pod = Netlink::in_netns(ns).map_err(nl_err(req, "connect to the pod netns"))?;
        let cveth = pod
            .link(&req.ifname)
            .map_err(nl_err(req, "look up the pod interface"))?;
        for ip in res.ips.iter_mut() {
            ip.interface = Some(1);
        }
        // A point-to-point link has two ends, both addressed by IPAM: IPv6
        // addresses skip DAD so routes can use them as source at once (the
        // reference waits ~2 s for DAD instead).
        setup::configure_iface(&pod, cveth.index, res, 1, true)
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

        timer.mark("pod");
        // Host side: the gateway as /32, a route to each pod address.
        for ip in &res.ips {
            if let Some(gw) = ip.gateway {
                host.add_address(hveth.index, host_prefix(gw))
                    .map_err(nl_err(
                        req,
                        format!("add {gw} to the host veth {host_name}"),
                    ))?;
            }
            timer.mark("host-addr");
            let r =
                Route::new(host_prefix(ip.address.addr()), None, hveth.index).scope(Scope::Host);
            // Replace: a route to a reused address may still point at the
            // downed veth of a pair the kernel has not reaped yet.
            host.replace_route(&r)
                .map_err(nl_err(req, "add the host route to the pod"))?;
        }
        timer.mark("host-route");
        if conf.ip_masq {
            let nets: Vec<IpNet> = res.ips.iter().map(|i| i.address).collect();
            masquerade::add(&req.name, &req.container_id, &req.ifname, &nets).map_err(
                |source| PluginError::Masquerade {
                    network: req.name.clone(),
                    source,
                },
            )?;
        }
        timer.mark("masq");
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
    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        let mut timer = StepTimer::new();
        let conf = BaseConf::parse(req)?;
        let ns = open_netns(req)?;
        let host = Netlink::current().map_err(nl_err(req, "connect to the host netns"))?;
        timer.mark("connect");
        let mut res = ipam::add(req)?;
        timer.mark("ipam");
        let host_name = host_veth_name(&req.container_id, &req.ifname);
        if let Err(e) = self.setup(req, &conf, &ns, &host, &mut res, &mut timer) {
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
            super::masquerade_del(req)?;
        }
        teardown::delete_veth(req)
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        super::gc_masquerade(req)
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        setup::check_attachment(req, true, 1)
    }
}
