//! DEL of a link attachment, idempotent: a missing netns, link or lease is
//! fine.
//!
//! Deleting a veth costs 20-40 ms here (the kernel waits for RCU grace
//! periods under the RTNL lock), while deleting a network namespace reaps
//! its veths in the background. So DEL of one of our veth pairs never waits
//! for the kernel's delete:
//! - CNI_NETNS empty or gone: the kernel reaps (or has reaped) the pair;
//!   nothing to delete.
//! - CNI_NETNS present: the attachment is detached at once, found by its
//!   host end's name `veth<hash>` (no need to enter the pod netns): host
//!   end down (the pod is cut off), its host routes removed. Then:
//!   - `CNI_ARGS` has `RKT_NETNS_TEARDOWN=1`
//!     ([`crate::cni::args::NETNS_TEARDOWN`]): the runtime deletes the
//!     netns right after DEL, so the pair is left to the kernel's reaping.
//!   - otherwise the pod end is set down and renamed, so CNI_IFNAME is free
//!     in the pod at once, and a detached copy of the plugin deletes the
//!     pair ([`DELETE_ENV`]); when that copy cannot start, DEL deletes it.
//! - An attachment made by another implementation (no `veth<hash>`) is
//!   deleted by CNI_IFNAME inside the netns, as the reference plugins do.
//!
//! A later ADD of the same attachment replaces a pair not yet deleted.

use std::path::Path;

use super::{host_veth_name, nl_err};
use crate::cni::skeleton::Request;
use crate::cni::CniError;
use crate::netlink::route::{Route, Scope};
use crate::netlink::{Netlink, Netns};
use ipnet::IpNet;

/// Opens CNI_NETNS; None when it is empty or no longer exists.
fn open_if_present(req: &Request) -> Result<Option<Netns>, CniError> {
    if req.netns.is_empty() {
        return Ok(None);
    }
    match Netns::open(Path::new(&req.netns)) {
        Ok(ns) => Ok(Some(ns)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(nl_err(req, "open the pod netns")(e).into()),
    }
}

/// Environment of the detached copy of a plugin that deletes a link
/// (`<ifindex>:<name>`, in the netns it starts in) without making DEL wait.
pub const DELETE_ENV: &str = "RKT_LINK_DELETE";

/// DEL of a veth attachment (ptp, bridge).
pub fn delete_veth(req: &Request) -> Result<(), CniError> {
    let Some(ns) = open_if_present(req)? else {
        return Ok(());
    };
    let host = Netlink::current().map_err(nl_err(req, "connect to the host netns"))?;
    let host_name = host_veth_name(&req.container_id, &req.ifname);
    let Some(l) = host
        .link_by_name(&host_name)
        .map_err(nl_err(req, "look up the host veth"))?
    else {
        return delete_in(req, &ns, "veth");
    };
    match host.set_down(l.index) {
        Err(e) if !e.is_not_found() => return Err(nl_err(req, "set the host veth down")(e).into()),
        _ => {}
    }
    // IPv4 host routes survive a link going down: remove ours.
    delete_host_routes(req, &host, l.index)?;
    if req.netns_goes_away() {
        return Ok(());
    }
    free_pod_ifname(req, &ns, l.index)?;
    let target = format!("{}:{host_name}", l.index);
    if crate::plugins::spawn_detached(&[(DELETE_ENV, target.as_ref())]).is_err() {
        match host.delete_link(l.index) {
            Err(e) if !e.is_not_found() => {
                return Err(nl_err(req, "delete the host veth")(e).into())
            }
            _ => {}
        }
    }
    Ok(())
}

/// Sets the pod end (CNI_IFNAME, a veth) down and renames it
/// `rktdel<host ifindex>`, so the name is free for the next ADD while the
/// pair waits for its deletion.
fn free_pod_ifname(req: &Request, ns: &Netns, host_index: u32) -> Result<(), CniError> {
    let pod = Netlink::in_netns(ns).map_err(nl_err(req, "connect to the pod netns"))?;
    let Some(l) = pod
        .link_by_name(&req.ifname)
        .map_err(nl_err(req, "look up the pod interface"))?
    else {
        return Ok(());
    };
    if l.kind.as_deref() != Some("veth") {
        return Ok(());
    }
    let done = pod
        .set_down(l.index)
        .and_then(|()| pod.rename(l.index, &format!("rktdel{host_index}")));
    match done {
        Err(e) if !e.is_not_found() => Err(nl_err(req, "set the pod interface aside")(e).into()),
        _ => Ok(()),
    }
}

/// The detached copy's work: deletes link `<ifindex>:<name>` of this netns
/// if it is still that link (an ADD may have replaced it since).
pub fn finish_delete(target: &str) -> Result<(), crate::netlink::NetlinkError> {
    let Some((index, name)) = target
        .split_once(':')
        .and_then(|(i, n)| Some((i.parse::<u32>().ok()?, n)))
    else {
        return Ok(());
    };
    let nl = Netlink::current()?;
    match nl.link_by_index(index) {
        Ok(l) if l.name == name && !l.up => match nl.delete_link(index) {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Deletes the routes out of host link `index`: the prevResult's pod
/// addresses when there is one, else whatever the main table sends there.
fn delete_host_routes(req: &Request, host: &Netlink, index: u32) -> Result<(), CniError> {
    let routes: Vec<Route> = match &req.prev_result {
        Some(prev) if !prev.ips.is_empty() => prev
            .ips
            .iter()
            .map(|i| {
                let bits = if i.address.addr().is_ipv4() { 32 } else { 128 };
                let dst = IpNet::new(i.address.addr(), bits).unwrap_or(i.address);
                Route::new(dst, None, index).scope(Scope::Other)
            })
            .collect(),
        _ => {
            let mut all = host
                .routes(false)
                .map_err(nl_err(req, "list host routes"))?;
            all.extend(host.routes(true).map_err(nl_err(req, "list host routes"))?);
            all.into_iter()
                .filter(|r| r.oif == Some(index))
                .map(|r| r.scope(Scope::Other))
                .collect()
        }
    };
    for r in routes {
        match host.delete_route(&r) {
            Err(e) if !e.is_not_found() => {
                return Err(nl_err(req, format!("delete the host route {r}"))(e).into())
            }
            _ => {}
        }
    }
    Ok(())
}

/// Deletes CNI_IFNAME in the pod netns if it is of `kind` (macvlan).
pub fn delete_pod_link(req: &Request, kind: &str) -> Result<(), CniError> {
    // The runtime removes the netns right after: the kernel reaps the link.
    if req.netns_goes_away() {
        return Ok(());
    }
    match open_if_present(req)? {
        Some(ns) => delete_in(req, &ns, kind),
        None => Ok(()),
    }
}

fn delete_in(req: &Request, ns: &Netns, kind: &str) -> Result<(), CniError> {
    let pod = Netlink::in_netns(ns).map_err(nl_err(req, "connect to the pod netns"))?;
    if let Some(l) = pod
        .link_by_name(&req.ifname)
        .map_err(nl_err(req, "look up the pod interface"))?
    {
        if l.kind.as_deref() == Some(kind) {
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
