//! DEL of a link attachment, idempotent: a missing netns, link or lease is
//! fine.
//!
//! Deleting a veth or a macvlan costs 20-40 ms here (the kernel waits for
//! RCU grace periods under the RTNL lock), while deleting a network
//! namespace reaps its links in the background. So DEL never waits for the
//! kernel's delete:
//! - CNI_NETNS empty or gone: the kernel reaps (or has reaped) the link;
//!   nothing to delete.
//! - Our veth pair, found by its host end (prevResult's host interface, or
//!   the pod end's peer; recognised by its alias, see [`super::veth`]), is
//!   cut off at once: host end down, its host routes removed.
//! - `CNI_ARGS` has `RKT_NETNS_TEARDOWN=1`
//!   ([`crate::cni::args::NETNS_TEARDOWN`]): the runtime deletes the netns
//!   right after DEL; the link is left to the kernel's reaping.
//! - Otherwise CNI_IFNAME is set down and renamed `rktdel<n>` in the pod,
//!   so the name is free at once, and a detached copy of the plugin deletes
//!   the link ([`DELETE_ENV`]) if it is still the same one; when that copy
//!   cannot start, DEL deletes it.
//!
//! A veth made by another implementation (a host end without our alias) is
//! handled like a macvlan: by CNI_IFNAME inside the netns. A later ADD of
//! the same attachment replaces a pair not yet deleted.

use std::path::Path;

use super::error::nl_err;
use super::veth;
use crate::cni::skeleton::Request;
use crate::cni::CniError;
use crate::netlink::link::Link;
use crate::netlink::route::{Route, Scope};
use crate::netlink::{missing_ok, Netlink, NetlinkError, Netns};
use ipnet::IpNet;

/// Opens CNI_NETNS; None when it is empty or no longer exists.
fn open_if_present(req: &Request) -> Result<Option<Netns>, CniError> {
    if req.netns.is_empty() {
        return Ok(None);
    }
    match Netns::open(Path::new(&req.netns)) {
        Ok(ns) => Ok(Some(ns)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(nl_err(req, "open the pod netns")(e.into()).into()),
    }
}

/// Environment of the detached copy of a plugin that deletes a link
/// (`<ifindex>:<name>`) without making DEL wait; [`DELETE_NETNS_ENV`]
/// names the netns it is in (unset: the copy's own).
pub const DELETE_ENV: &str = "RKT_LINK_DELETE";
const DELETE_NETNS_ENV: &str = "RKT_LINK_DELETE_NETNS";

/// DEL of a veth attachment (ptp, bridge).
pub fn delete_veth(req: &Request) -> Result<(), CniError> {
    let Some(ns) = open_if_present(req)? else {
        return Ok(());
    };
    let host = Netlink::current().map_err(nl_err(req, "connect to the host netns"))?;
    // The host end: prevResult names it (no need to enter the pod netns),
    // else the pod end's peer is it.
    let mut pod = None;
    let found = veth::from_prev_result(req, &host).map_err(nl_err(req, "look up the host veth"))?;
    let l = match found {
        Some(l) => l,
        None => {
            let p = Netlink::in_netns(&ns).map_err(nl_err(req, "connect to the pod netns"))?;
            let Some(pl) = pod_link(req, &p, "veth")? else {
                // Gone, or set aside by an earlier DEL.
                return Ok(());
            };
            match veth::peer_on_host(req, &host, &pl)
                .map_err(nl_err(req, "look up the host veth"))?
            {
                Some(l) => {
                    pod = Some(p);
                    l
                }
                None => return delete_pod_link_in(req, &ns, "veth"),
            }
        }
    };
    missing_ok(host.set_down(l.index)).map_err(nl_err(req, "set the host veth down"))?;
    // IPv4 host routes survive a link going down: remove ours.
    delete_host_routes(req, &host, l.index)?;
    if req.netns_goes_away() {
        return Ok(());
    }
    let pod = match pod {
        Some(p) => p,
        None => Netlink::in_netns(&ns).map_err(nl_err(req, "connect to the pod netns"))?,
    };
    let set = match pod_link(req, &pod, "veth")? {
        Some(p) => set_aside(&pod, &p).is_ok(),
        None => true,
    };
    if set {
        delete_later(req, &host, l.index, &l.name, None)
    } else {
        delete_now(req, &host, l.index, &l.name)
    }
}

/// Deletes CNI_IFNAME in the pod netns if it is of `kind` (macvlan, or a
/// veth another implementation made), without waiting for the kernel.
pub fn delete_pod_link(req: &Request, kind: &str) -> Result<(), CniError> {
    match open_if_present(req)? {
        Some(ns) => delete_pod_link_in(req, &ns, kind),
        None => Ok(()),
    }
}

/// [`delete_pod_link`] in the already opened pod netns.
fn delete_pod_link_in(req: &Request, ns: &Netns, kind: &str) -> Result<(), CniError> {
    // The runtime removes the netns right after: the kernel reaps the link.
    if req.netns_goes_away() {
        return Ok(());
    }
    let pod = Netlink::in_netns(ns).map_err(nl_err(req, "connect to the pod netns"))?;
    let Some(l) = pod_link(req, &pod, kind)? else {
        return Ok(());
    };
    match set_aside(&pod, &l) {
        Ok(name) => delete_later(req, &pod, l.index, &name, Some(&req.netns)),
        Err(_) => delete_now(req, &pod, l.index, &req.ifname),
    }
}

/// CNI_IFNAME in the pod, if it is there and of `kind`.
fn pod_link(req: &Request, pod: &Netlink, kind: &str) -> Result<Option<Link>, CniError> {
    let l = pod
        .link_by_name(&req.ifname)
        .map_err(nl_err(req, "look up the pod interface"))?;
    Ok(l.filter(|l| l.kind.as_deref() == Some(kind)))
}

/// Sets pod link `l` down and renames it `rktdel<its index>`, so its name
/// is free for the next ADD while it waits for its deletion; the new name.
/// On failure the caller deletes it at once instead.
fn set_aside(pod: &Netlink, l: &Link) -> Result<String, NetlinkError> {
    let name = format!("rktdel{}", l.index);
    pod.set_down(l.index)
        .and_then(|()| pod.rename(l.index, &name))
        .map(|()| name)
}

/// Deletes link `index` (now called `name`) of `nl`'s netns (`netns`, or
/// the plugin's own) in a detached copy of the plugin; here, when that copy
/// cannot start.
fn delete_later(
    req: &Request,
    nl: &Netlink,
    index: u32,
    name: &str,
    netns: Option<&str>,
) -> Result<(), CniError> {
    let target = format!("{index}:{name}");
    let mut env = vec![(DELETE_ENV, target.as_ref())];
    if let Some(ns) = netns {
        env.push((DELETE_NETNS_ENV, ns.as_ref()));
    }
    match super::detached::spawn_detached(&env) {
        Ok(()) => Ok(()),
        Err(_) => delete_now(req, nl, index, name),
    }
}

/// Deletes link `index` of `nl`'s netns and waits for the kernel.
fn delete_now(req: &Request, nl: &Netlink, index: u32, name: &str) -> Result<(), CniError> {
    missing_ok(nl.delete_link(index)).map_err(|e| nl_err(req, format!("delete {name}"))(e).into())
}

/// The detached copy's work: deletes link `<ifindex>:<name>` if it is
/// still that link, down (an ADD may have replaced it since).
pub fn finish_delete(target: &str) -> Result<(), NetlinkError> {
    let Some((index, name)) = target
        .split_once(':')
        .and_then(|(i, n)| Some((i.parse::<u32>().ok()?, n)))
    else {
        return Ok(());
    };
    let nl = match std::env::var_os(DELETE_NETNS_ENV) {
        Some(ns) => Netlink::at(Path::new(&ns))?,
        None => Netlink::current()?,
    };
    match nl.link_by_index(index) {
        Ok(l) if l.name == name && !l.up => missing_ok(nl.delete_link(index)),
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
        missing_ok(host.delete_route(&r))
            .map_err(nl_err(req, format!("delete the host route {r}")))?;
    }
    Ok(())
}
