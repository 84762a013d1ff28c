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
use std::path::Path;

use ipnet::IpNet;

use super::{
    firewall, ipam, nl_err, setup, teardown, veth, BaseConf, Isolation, PluginError, StepTimer,
};
use crate::cni::result::Interface;
use crate::cni::skeleton::{Plugin, Request};
use crate::cni::{codes, CniError, CniResult};
use crate::netlink::link::Link;
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

/// What a failed ADD has to undo beyond IPAM.
#[derive(Default)]
pub(crate) struct Undo {
    /// The host end we created.
    pub veth: Option<Link>,
    /// Whether the attachment was recorded with the nftables state (a
    /// failing [`firewall::add`] undoes its own work).
    pub firewall: bool,
}

impl Undo {
    /// Removes the host veth we created (if it is still that link) and the
    /// attachment's nftables record; errors are the caller's first error's
    /// business, not ours.
    pub(crate) fn run(&self, req: &Request, host: &Netlink) {
        if let Some(l) = &self.veth {
            if host
                .link_by_index(l.index)
                .is_ok_and(|now| now.name == l.name)
            {
                let _ = host.delete_link(l.index);
            }
        }
        if self.firewall {
            let _ = super::firewall_del(req);
        }
    }
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
        };
        super::firewall_add(req, &want)?;
        undo.firewall = true;
        timer.mark("nft");
        if !res.ips.iter().any(|i| i.address.addr().is_ipv6()) {
            super::host_veth_without_ipv6(host_name)
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
        res.interfaces = vec![
            Interface {
                name: host_name.to_string(),
                mac: hveth.mac.clone(),
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
        ipam::del(req)?;
        super::firewall_del(req)?;
        teardown::delete_veth(req)
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        super::gc_firewall(req)
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        setup::check_attachment(req, true, 1)
    }
}
