//! The host end of an attachment's veth pair (ptp, bridge): its name, its
//! identity, and finding it again at DEL.
//!
//! The host end is named `veth` and 8 random hex digits; a name that is
//! taken (EEXIST) is retried with another, so a link someone else made is
//! never touched. It is born in the network's device group
//! ([`super::firewall::group`], for the network's nftables rules) and
//! carries the attachment's identity in its alias (`rkt-cni:` and a hash of
//! the container ID and interface name), set by the request that sets it
//! up. DEL finds it by prevResult's interface name, or through the pod
//! end's peer index (no state kept), and acts on it only when its alias is
//! the attachment's. Host ends made by earlier versions (`veth` and a hash
//! of the attachment, no alias) are recognised by that name.

use super::error::{nl_err, PluginError};
use crate::cni::result::Interface;
use crate::cni::skeleton::{attachment_hash, Request};
use crate::netlink::link::Link;
use crate::netlink::{Netlink, NetlinkError, Netns};

/// How many names ADD tries before giving up (a collision of two random
/// 32-bit names is rare; eight in a row means something else is wrong).
const ATTEMPTS: usize = 8;

/// Debug builds only: comma-separated host veth names ADD tries first, so
/// tests can make a pick collide with a link they made.
#[cfg(debug_assertions)]
pub const TEST_NAMES_ENV: &str = "RKT_TEST_VETH_NAMES";

/// The alias that marks the host end of attachment (`container_id`,
/// `ifname`) as ours.
pub fn alias(container_id: &str, ifname: &str) -> String {
    format!("rkt-cni:{}", attachment_hash(container_id, ifname))
}

/// The host end's name in earlier versions: `veth` and 8 hex digits of a
/// hash of the container ID and interface name.
pub fn legacy_name(container_id: &str, ifname: &str) -> String {
    format!("veth{}", &attachment_hash(container_id, ifname)[..8])
}

/// `veth` and 8 random hex digits.
fn random_name() -> String {
    let b = uuid::Uuid::new_v4().into_bytes();
    format!("veth{:02x}{:02x}{:02x}{:02x}", b[0], b[1], b[2], b[3])
}

/// The name of ADD's `attempt`-th try.
fn candidate(attempt: usize) -> String {
    #[cfg(debug_assertions)]
    if let Ok(list) = std::env::var(TEST_NAMES_ENV) {
        if let Some(n) = list.split(',').nth(attempt).filter(|n| !n.is_empty()) {
            return n.to_string();
        }
    }
    let _ = attempt;
    random_name()
}

/// Whether host link `l` is the host end of the request's attachment.
pub fn is_ours(req: &Request, l: &Link) -> bool {
    l.kind.as_deref() == Some("veth")
        && match &l.alias {
            Some(a) => *a == alias(&req.container_id, &req.ifname),
            None => l.name == legacy_name(&req.container_id, &req.ifname),
        }
}

/// Creates the attachment's veth pair: the pod end `CNI_IFNAME` born in
/// `ns`, the host end under a free random name in device group `group`.
/// A stale pair of this very attachment (a failed attempt, or one left to
/// the kernel by a netns-teardown DEL) is replaced; a `CNI_IFNAME` that is
/// anything else is an error. Returns the host end.
pub fn create(
    req: &Request,
    host: &Netlink,
    ns: &Netns,
    mtu: Option<u32>,
    group: u32,
) -> Result<Link, PluginError> {
    let mut replaced = false;
    let mut attempt = 0;
    loop {
        let name = candidate(attempt);
        let e = match host.create_veth(&name, &req.ifname, ns, mtu, Some(group)) {
            Ok(()) => {
                return host.link(&name).map_err(|e| {
                    // Ours: we just made it.
                    let _ = host.delete_link_by_name(&name);
                    nl_err(req, "look up the host veth")(e)
                });
            }
            Err(e) if e.is_exists() => e,
            Err(e) => return Err(nl_err(req, "create the veth pair")(e)),
        };
        let host_taken = host
            .link_by_name(&name)
            .map_err(nl_err(req, "look up a host link"))?
            .is_some();
        if host_taken {
            attempt += 1;
            if attempt >= ATTEMPTS {
                return Err(nl_err(
                    req,
                    format!("find a free host veth name ({ATTEMPTS} random names taken)"),
                )(e));
            }
            continue;
        }
        if !replaced && remove_stale_pair(req, host, ns)? {
            replaced = true;
            continue;
        }
        return Err(PluginError::Other {
            network: req.name.clone(),
            msg: format!(
                "container veth name provided ({}) already exists in {}",
                req.ifname, req.netns
            ),
        });
    }
}

/// Deletes the pair whose pod end is `CNI_IFNAME` in `ns` if its host end
/// is this attachment's; whether it did.
fn remove_stale_pair(req: &Request, host: &Netlink, ns: &Netns) -> Result<bool, PluginError> {
    let pod = Netlink::in_netns(ns).map_err(nl_err(req, "connect to the pod netns"))?;
    let Some(pl) = pod
        .link_by_name(&req.ifname)
        .map_err(nl_err(req, "look up the pod interface"))?
    else {
        return Ok(false);
    };
    let Some(hl) = peer_on_host(req, host, &pl).map_err(nl_err(req, "look up the host veth"))?
    else {
        return Ok(false);
    };
    crate::netlink::missing_ok(host.delete_link(hl.index)).map_err(nl_err(
        req,
        format!("remove the stale host veth {}", hl.name),
    ))?;
    Ok(true)
}

/// The host end of pod link `pl` if `pl` is a veth whose peer on the host
/// is this attachment's host end (and points back at `pl`).
pub fn peer_on_host(
    req: &Request,
    host: &Netlink,
    pl: &Link,
) -> Result<Option<Link>, NetlinkError> {
    if pl.kind.as_deref() != Some("veth") {
        return Ok(None);
    }
    let Some(peer) = pl.peer else {
        return Ok(None);
    };
    let hl = match host.link_by_index(peer) {
        Ok(l) => l,
        Err(e) if e.is_not_found() => return Ok(None),
        // `link_by_index` reports a missing link as NoLink.
        Err(NetlinkError::NoLink { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok((hl.peer == Some(pl.index) && is_ours(req, &hl)).then_some(hl))
}

/// The host end named in prevResult, if it is this attachment's.
pub fn from_prev_result(req: &Request, host: &Netlink) -> Result<Option<Link>, NetlinkError> {
    let Some(prev) = &req.prev_result else {
        return Ok(None);
    };
    for i in prev.interfaces.iter().filter(|i| i.sandbox.is_empty()) {
        if !i.name.starts_with("veth") {
            continue;
        }
        if let Some(l) = host.link_by_name(&i.name)? {
            if is_ours(req, &l) {
                return Ok(Some(l));
            }
        }
    }
    Ok(None)
}

/// The result's interfaces of a veth attachment: the host end, then the
/// pod end in its sandbox.
pub fn result_interfaces(
    req: &Request,
    host_name: &str,
    host_mac: &str,
    pod_mac: String,
) -> Vec<Interface> {
    vec![
        Interface {
            name: host_name.to_string(),
            mac: host_mac.to_string(),
            ..Default::default()
        },
        Interface {
            name: req.ifname.clone(),
            mac: pod_mac,
            sandbox: req.netns.clone(),
            ..Default::default()
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases() {
        let a = random_name();
        assert_eq!(a.len(), 12);
        assert!(a.starts_with("veth"));
        assert_ne!(a, random_name());
        assert_eq!(alias("c1", "eth0"), alias("c1", "eth0"));
        assert_ne!(alias("c1", "eth0"), alias("c1", "eth1"));
        assert!(alias(&"c".repeat(253), "eth0").len() < 64);
        assert_eq!(legacy_name("c1", "eth0").len(), 12);
    }
}
