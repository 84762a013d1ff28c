//! The `ptp` plugin: a veth pair per attachment, the pod end (CNI_IFNAME)
//! born directly inside the pod netns, the host end `veth<random>` (see
//! [`super::veth`]) carrying the gateway as /32, and the routes the
//! reference ptp 1.1.1 installs: in the pod a route to the gateway /32 and
//! the subnet route rewritten via the gateway; on the host a route to the
//! pod address. `mtu`, `ipMasq`, a config-level `dns` are honoured, and
//! `"isolation": "host-only"` keeps the pods to the host. Pods can only
//! send from their own addresses (rp_filter for IPv4, and nftables for both
//! families; see [`super::firewall`]).

use std::net::IpAddr;

use ipnet::IpNet;

use super::ipam;
use super::pkg::attachment::{self, enable_forwarding, open_netns, Undo};
use super::pkg::conf::{BaseConf, Isolation};
use super::pkg::error::{nl_err, PluginError};
use super::pkg::timing::StepTimer;
use super::pkg::{firewall, iface, veth};
use crate::cni::skeleton::{Plugin, Request};
use crate::cni::{CniError, CniResult};
use crate::netlink::route::{Route, Scope};
use crate::netlink::{sysctl, Netlink, Netns};

/// The ptp plugin.
pub struct Ptp;

fn host_prefix(ip: IpAddr) -> IpNet {
    let bits = if ip.is_ipv4() { 32 } else { 128 };
    // A full-length prefix is always valid.
    IpNet::new(ip, bits).unwrap_or_else(|_| IpNet::from(ip))
}

impl Ptp {
    #[allow(clippy::too_many_arguments)]
    fn setup(
        &self,
        req: &Request,
        conf: &BaseConf,
        ns: &Netns,
        host: &Netlink,
        res: &mut CniResult,
        timer: &mut StepTimer,
        undo: &mut Undo,
    ) -> Result<(), PluginError> {
        enable_forwarding(res).map_err(nl_err(req, "enable IP forwarding"))?;
        // The pod end is born inside the pod netns; the host end in the
        // network's device group, under a free random name.
        let hveth = veth::create(req, host, ns, conf.mtu(), firewall::group(&req.name))?;
        undo.veth = Some(hveth.clone());
        let host_name = &hveth.name;
        timer.mark("veth");
        // The network's nftables state (masquerade, isolation, source
        // checks) is in place before the veth comes up.
        let want = firewall::Spec {
            network: req.name.clone(),
            masq: conf.ip_masq,
            host_only: conf.isolation == Isolation::HostOnly,
            src_check: true,
            bridges: Vec::new(),
            subnets: res.ips.iter().map(|i| i.address.trunc()).collect(),
            no_masq: conf.non_masquerade.clone(),
        };
        attachment::firewall_add(req, &want)?;
        undo.firewall = true;
        timer.mark("nft");
        if !res.ips.iter().any(|i| i.address.addr().is_ipv6()) {
            attachment::host_veth_without_ipv6(host_name)
                .map_err(nl_err(req, "turn IPv6 off on the host veth"))?;
        }
        host.set_up_with_alias(hveth.index, &veth::alias(&req.container_id, &req.ifname))
            .map_err(nl_err(req, "set the host veth up"))?;
        // Anti-spoofing: the host drops what the pod sends from an address
        // not routed back through this veth (strict reverse-path filter;
        // the network's `src-` chain does the same for IPv6, and for IPv4
        // when a host-wide loose setting overrides this one).
        sysctl::write(&format!("net/ipv4/conf/{host_name}/rp_filter"), "1")
            .map_err(nl_err(req, "enable rp_filter on the host veth"))?;
        timer.mark("up");

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
        iface::configure_iface(&pod, cveth.index, res, 1, true)
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
        res.interfaces = veth::result_interfaces(req, host_name, &hveth.mac, cveth.mac);
        Ok(())
    }
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
        let mut undo = Undo::default();
        if let Err(e) = self.setup(req, &conf, &ns, &host, &mut res, &mut timer, &mut undo) {
            // Roll back what we did; the first error is the one to report.
            undo.run(req, &host);
            let _ = ipam::del(req);
            return Err(e.into());
        }
        res.dns = req.result_dns(std::mem::take(&mut res.dns));
        Ok(res)
    }

    fn del(&self, req: &Request) -> Result<(), CniError> {
        BaseConf::parse(req)?;
        attachment::del_veth(req, true)
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        attachment::gc_firewall(req)
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        iface::check_attachment(req, true, 1)
    }
}
