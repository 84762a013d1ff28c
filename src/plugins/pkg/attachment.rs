//! Steps every link plugin (ptp, bridge, macvlan) takes for an attachment:
//! open the request's netns, turn on forwarding, keep the host veth out of
//! the host's IPv6 tables, record the attachment with the network's
//! nftables state (and forget it on DEL and GC), and undo a failed ADD.

use std::path::Path;

use super::error::PluginError;
use super::{firewall, teardown};
use crate::cni::skeleton::Request;
use crate::cni::{codes, CniError, CniResult};
use crate::netlink::link::Link;
use crate::netlink::{sysctl, Netlink, NetlinkError, Netns};
use crate::plugins::ipam;

/// Records the attachment with the network's nftables state
/// ([`firewall::add`]).
pub fn firewall_add(req: &Request, want: &firewall::Spec) -> Result<(), PluginError> {
    firewall::add(want, &req.container_id, &req.ifname).map_err(|source| PluginError::Firewall {
        network: req.name.clone(),
        source,
    })
}

/// DEL's share of the nftables state: forget this attachment (a failed
/// unlink when it had none).
pub fn firewall_del(req: &Request) -> Result<(), PluginError> {
    firewall::del(&req.name, &req.container_id, &req.ifname).map_err(|source| {
        PluginError::Firewall {
            network: req.name.clone(),
            source,
        }
    })
}

/// CNI GC for plugins with nftables state: the attachments the runtime
/// still has (`cni.dev/valid-attachments`) stay recorded, the others are
/// forgotten, and nftables is reconciled with the state of all networks
/// ([`firewall::gc`]); the IPAM plugin gets the GC too.
pub fn gc_firewall(req: &Request) -> Result<(), CniError> {
    let valid = req.valid_attachments();
    firewall::gc(&req.name, &valid).map_err(|source| PluginError::Firewall {
        network: req.name.clone(),
        source,
    })?;
    if req.config.get("ipam").and_then(|i| i.get("type")).is_some() {
        ipam::gc(req)?;
    }
    Ok(())
}

/// Turns IPv6 off on a host-side veth before it goes up: the kernel then
/// gives it no link-local address and no `fe80::/64` and `ff00::/8` routes.
/// Those routes share one prefix per table across all pods, and the kernel
/// inserts each new one in time linear in their number, so without this
/// every pod's ADD gets slower as pods accumulate (measured: 1.2 ms to
/// 2.6 ms over 1000 pods). A kernel without IPv6 has nothing to turn off.
pub fn host_veth_without_ipv6(name: &str) -> Result<(), NetlinkError> {
    crate::netlink::missing_ok(sysctl::write(
        &format!("net/ipv6/conf/{name}/disable_ipv6"),
        "1",
    ))
}

/// Opens the pod netns or says which one failed.
pub fn open_netns(req: &Request) -> Result<Netns, CniError> {
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

/// Turns on forwarding for the families in use (host netns).
pub fn enable_forwarding(res: &CniResult) -> Result<(), NetlinkError> {
    if res.ips.iter().any(|i| i.address.addr().is_ipv4()) {
        sysctl::ensure("net/ipv4/ip_forward", "1")?;
    }
    if res.ips.iter().any(|i| i.address.addr().is_ipv6()) {
        sysctl::ensure("net/ipv6/conf/all/forwarding", "1")?;
    }
    Ok(())
}

/// What a failed ADD has to undo beyond IPAM.
#[derive(Default)]
pub struct Undo {
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
    pub fn run(&self, req: &Request, host: &Netlink) {
        if let Some(l) = &self.veth {
            if host
                .link_by_index(l.index)
                .is_ok_and(|now| now.name == l.name)
            {
                let _ = host.delete_link(l.index);
            }
        }
        if self.firewall {
            let _ = firewall_del(req);
        }
    }
}

/// DEL of a veth attachment (ptp, bridge): the address lease, the
/// attachment's nftables record, then the pair ([`teardown::delete_veth`]).
pub fn del_veth(req: &Request, has_ipam: bool) -> Result<(), CniError> {
    if has_ipam {
        ipam::del(req)?;
    }
    firewall_del(req)?;
    teardown::delete_veth(req)
}
