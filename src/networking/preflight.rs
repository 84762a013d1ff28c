//! Checks made before anything is created: a network's subnet must not
//! overlap a route the host already has (other than the network's own
//! bridge), nor another selected network's subnet, nor (for networks the
//! host routes to, ptp and bridge) the subnet of any other such network
//! defined on this host: two networks handing out the same addresses give
//! two pods one address, and the second pod's host route takes the first's.

use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};
use serde_json::Value;

use super::netd::{Attach, Networks};
use crate::cni::{ranges, NetConf};

/// The IPv4 subnets a network's IPAM hands out, read and checked by the
/// parser host-local uses (CIDR, no host bits, room to allocate, ranges
/// inside their subnet and not overlapping), so a bad config is refused
/// before anything is created, in host-local's words.
fn subnets(conf: &NetConf) -> Result<Vec<Ipv4Net>, String> {
    let mut out = Vec::new();
    for ipam in conf.plugins.iter().filter_map(|p| p.get("ipam")) {
        let sets = ranges::parse(ipam)
            .map_err(|e| format!("network \"{}\" ({}): {e}", conf.name, conf.source))?;
        for r in sets.iter().flatten() {
            if let IpNet::V4(n) = r.subnet {
                if !out.contains(&n) {
                    out.push(n);
                }
            }
        }
    }
    Ok(out)
}

/// The device a network itself routes its subnet through (a bridge).
fn own_device(conf: &NetConf) -> Option<String> {
    conf.plugins.iter().find_map(|p| {
        (p.get("type").and_then(Value::as_str) == Some("bridge")).then(|| {
            p.get("bridge")
                .and_then(Value::as_str)
                .unwrap_or("cni0")
                .to_string()
        })
    })
}

/// IPv4 routes of the caller's network namespace: (destination, device).
fn host_routes() -> Vec<(Ipv4Net, String)> {
    let Ok(text) = std::fs::read_to_string("/proc/net/route") else {
        return Vec::new();
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dst = u32::from_str_radix(f.get(1)?, 16).ok()?;
            // The kernel prints the address as a native-endian u32 of network-order bytes.
            let dst = Ipv4Addr::from(dst.to_ne_bytes());
            let prefix = u32::from_str_radix(f.get(7)?, 16).ok()?.count_ones() as u8;
            Some((Ipv4Net::new(dst, prefix).ok()?, f[0].to_string()))
        })
        .collect()
}

fn overlap(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Whether the host routes the network's addresses itself (a /32 per pod
/// for ptp, the subnet on the bridge): then no other network may share them.
fn host_routed(conf: &NetConf) -> bool {
    matches!(conf.types().first(), Some(&("ptp" | "bridge")))
}

/// Fails with one line naming the network, its subnet and the conflict.
/// `all` holds every network defined on this host.
pub fn check(nets: &[Attach], all: &Networks) -> Result<(), String> {
    let routes = host_routes();
    let mut seen: Vec<(Ipv4Net, &str)> = Vec::new();
    for (conf, _) in nets {
        let own = own_device(conf);
        for subnet in subnets(conf)? {
            for (dst, dev) in &routes {
                let pod_route = dst.prefix_len() == 32 || dst.prefix_len() == 0;
                if !pod_route && Some(dev) != own.as_ref() && overlap(&subnet, dst) {
                    return Err(format!(
                        "network \"{}\" ({}): subnet {subnet} overlaps the host route {dst} dev {dev}; choose another subnet",
                        conf.name, conf.source
                    ));
                }
            }
            if let Some((other, name)) = seen.iter().find(|(o, _)| overlap(o, &subnet)) {
                return Err(format!(
                    "network \"{}\": subnet {subnet} overlaps subnet {other} of network \"{name}\"; choose another subnet",
                    conf.name
                ));
            }
            seen.push((subnet, &conf.name));
        }
        if host_routed(conf) {
            let mine = subnets(conf)?;
            for other in all.by_name.values() {
                if other.name == conf.name || !host_routed(other) {
                    continue;
                }
                // Another network's own mistakes are its own to report.
                let Ok(theirs) = subnets(other) else { continue };
                for a in &mine {
                    if let Some(b) = theirs.iter().find(|b| overlap(a, b)) {
                        return Err(format!(
                            "network \"{}\" ({}): subnet {a} overlaps subnet {b} of network \"{}\" ({}): \
                             pods of both would get the same addresses and take each other's host routes; \
                             give one of them another subnet",
                            conf.name, conf.source, other.name, other.source
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}
