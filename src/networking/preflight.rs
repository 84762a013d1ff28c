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
fn subnets(conf: &NetConf) -> Result<Vec<Ipv4Net>, PreflightError> {
    let mut out = Vec::new();
    for ipam in conf.plugins.iter().filter_map(|p| p.get("ipam")) {
        let sets = ranges::parse(ipam).map_err(|source| PreflightError::Ranges {
            network: conf.name.clone(),
            file: conf.source.clone(),
            source,
        })?;
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

/// Why a network cannot be attached; each names the network and what to do.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error("network \"{network}\" ({file}): {source}")]
    Ranges {
        network: String,
        file: String,
        source: ranges::RangeError,
    },
    #[error("network \"{network}\" ({file}): subnet {subnet} overlaps the host route {dst} dev {dev}; choose another subnet")]
    HostRoute {
        network: String,
        file: String,
        subnet: Ipv4Net,
        dst: Ipv4Net,
        dev: String,
    },
    #[error("network \"{network}\": subnet {subnet} overlaps subnet {other} of network \"{other_network}\"; choose another subnet")]
    Selected {
        network: String,
        subnet: Ipv4Net,
        other: Ipv4Net,
        other_network: String,
    },
    #[error("network \"{network}\" ({file}): subnet {subnet} overlaps subnet {other} of network \"{other_network}\" ({other_file}): pods of both would get the same addresses and take each other's host routes; give one of them another subnet")]
    Defined {
        network: String,
        file: String,
        subnet: Ipv4Net,
        other: Ipv4Net,
        other_network: String,
        other_file: String,
    },
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
pub fn check(nets: &[Attach], all: &Networks) -> Result<(), PreflightError> {
    let routes = host_routes();
    let mut seen: Vec<(Ipv4Net, &str)> = Vec::new();
    for (conf, _) in nets {
        let own = own_device(conf);
        for subnet in subnets(conf)? {
            for (dst, dev) in &routes {
                let pod_route = dst.prefix_len() == 32 || dst.prefix_len() == 0;
                if !pod_route && Some(dev) != own.as_ref() && overlap(&subnet, dst) {
                    return Err(PreflightError::HostRoute {
                        network: conf.name.clone(),
                        file: conf.source.clone(),
                        subnet,
                        dst: *dst,
                        dev: dev.clone(),
                    });
                }
            }
            if let Some((other, name)) = seen.iter().find(|(o, _)| overlap(o, &subnet)) {
                return Err(PreflightError::Selected {
                    network: conf.name.clone(),
                    subnet,
                    other: *other,
                    other_network: name.to_string(),
                });
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
                        return Err(PreflightError::Defined {
                            network: conf.name.clone(),
                            file: conf.source.clone(),
                            subnet: *a,
                            other: *b,
                            other_network: other.name.clone(),
                            other_file: other.source.clone(),
                        });
                    }
                }
            }
        }
    }
    Ok(())
}
