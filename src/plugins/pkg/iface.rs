//! Shared pod-side steps: apply an IPAM result to an interface as the
//! reference plugins' `ipam.ConfigureIface` does (link up, addresses,
//! routes with the family's gateway as default next hop), and the CHECK
//! side: verify addresses and routes against `prevResult`.

use std::net::IpAddr;

use crate::cni::CniResult;
use crate::netlink::route::Route;
use crate::netlink::{Netlink, NetlinkError};

/// The first gateway of each family among the result's ips for `iface`.
fn gateways(res: &CniResult, iface: usize) -> (Option<IpAddr>, Option<IpAddr>) {
    let mine = || {
        res.ips
            .iter()
            .filter(move |i| i.interface.is_none_or(|n| n == iface))
    };
    let v4 = mine().filter_map(|i| i.gateway).find(IpAddr::is_ipv4);
    let v6 = mine().filter_map(|i| i.gateway).find(IpAddr::is_ipv6);
    (v4, v6)
}

/// Sets link `index` up, adds the result's addresses for interface
/// `iface`, then its routes. `nodad`: IPv6 addresses skip duplicate address
/// detection (usable at once as a route's source).
pub fn configure_iface(
    nl: &Netlink,
    index: u32,
    res: &CniResult,
    iface: usize,
    nodad: bool,
) -> Result<(), (String, NetlinkError)> {
    nl.set_up(index)
        .map_err(|e| ("set the pod interface up".to_string(), e))?;
    for ip in res
        .ips
        .iter()
        .filter(|i| i.interface.is_none_or(|n| n == iface))
    {
        if nodad && ip.address.addr().is_ipv6() {
            nl.add_address_nodad(index, ip.address)
        } else {
            nl.add_address(index, ip.address)
        }
        .map_err(|e| (format!("add address {}", ip.address), e))?;
    }
    let (gw4, gw6) = gateways(res, iface);
    for r in &res.routes {
        let gw = r.gw.or(if r.dst.addr().is_ipv4() { gw4 } else { gw6 });
        nl.add_route(&Route::new(r.dst, gw, index))
            .map_err(|e| (format!("add route {}", r.dst), e))?;
    }
    Ok(())
}

/// Why CHECK finds the pod's interface differs from the result.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error("interface {0} not found in the container netns")]
    NoInterface(String),
    #[error("interface {ifname} lacks address {missing} (has {have:?})")]
    NoAddress {
        ifname: String,
        missing: String,
        have: Vec<String>,
    },
    #[error("route {0} not found in the container netns")]
    NoRoute(String),
}

/// CHECK: the interface carries the result's addresses for `iface`, and
/// the routes of the result exist.
pub fn verify_iface(
    nl: &Netlink,
    ifname: &str,
    res: &CniResult,
    iface: usize,
) -> Result<(), VerifyError> {
    let link = nl
        .link_by_name(ifname)?
        .ok_or_else(|| VerifyError::NoInterface(ifname.to_string()))?;
    let have = nl.addresses(link.index)?;
    for ip in res
        .ips
        .iter()
        .filter(|i| i.interface.is_none_or(|n| n == iface))
    {
        if !have.contains(&ip.address) {
            return Err(VerifyError::NoAddress {
                ifname: ifname.to_string(),
                missing: ip.address.to_string(),
                have: have.iter().map(ToString::to_string).collect(),
            });
        }
    }
    let mut v4 = None;
    let mut v6 = None;
    for r in &res.routes {
        let table = if r.dst.addr().is_ipv4() {
            &mut v4
        } else {
            &mut v6
        };
        if table.is_none() {
            *table = Some(nl.routes(r.dst.addr().is_ipv6())?);
        }
        let found = table.as_ref().is_some_and(|t: &Vec<Route>| {
            t.iter()
                .any(|k| k.dst == r.dst && (r.gw.is_none() || k.gw == r.gw))
        });
        if !found {
            return Err(VerifyError::NoRoute(format!(
                "{}{}",
                r.dst,
                r.gw.map(|g| format!(" via {g}")).unwrap_or_default()
            )));
        }
    }
    Ok(())
}

/// CHECK of an attachment, shared by ptp, bridge and macvlan: a prevResult
/// is required, the IPAM plugin checks its part, then the pod interface is
/// verified against prevResult. `fallback` is the pod interface's index in
/// prevResult when prevResult does not name it.
pub fn check_attachment(
    req: &crate::cni::skeleton::Request,
    has_ipam: bool,
    fallback: usize,
) -> Result<(), crate::cni::CniError> {
    use crate::cni::{codes, CniError};
    let prev = req.prev_result.as_ref().ok_or_else(|| {
        CniError::new(
            codes::INVALID_CONFIG,
            format!("network \"{}\": CHECK needs a prevResult", req.name),
        )
    })?;
    if has_ipam {
        crate::plugins::ipam::check(req)?;
    }
    let ns = super::attachment::open_netns(req)?;
    let iface = prev
        .interfaces
        .iter()
        .position(|i| i.name == req.ifname && !i.sandbox.is_empty())
        .unwrap_or(fallback);
    let pod =
        Netlink::in_netns(&ns).map_err(super::error::nl_err(req, "connect to the pod netns"))?;
    verify_iface(&pod, &req.ifname, prev, iface)
        .map_err(|m| CniError::new(codes::INTERNAL, format!("network \"{}\": {m}", req.name)))
}
