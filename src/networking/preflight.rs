//! Checks made before anything is created: a network's subnet must not
//! overlap a route the host already has (other than the network's own
//! bridge), nor another selected network's subnet, nor (for networks the
//! host routes to, ptp and bridge) the subnet of any other such network
//! defined on this host: two networks handing out the same addresses give
//! two pods one address, and the second pod's host route takes the first's.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde_json::Value;

use super::netd::{Attach, Networks};
use crate::cni::NetConf;

/// The IPv4 subnets a network's IPAM hands out, checked: parseable, no
/// host bits set, room for at least one address besides the gateway.
fn subnets(conf: &NetConf) -> Result<Vec<Ipv4Net>, String> {
    let mut out = Vec::new();
    let mut spans: Vec<(Ipv4Net, (u32, u32))> = Vec::new();
    let mut bad = None;
    for p in &conf.plugins {
        let Some(ipam) = p.get("ipam") else { continue };
        let mut push = |range: &Value| {
            let Some(s) = range.get("subnet").and_then(Value::as_str) else {
                return;
            };
            if s.contains(':') {
                return; // IPv6: left to the IPAM plugin.
            }
            let what = format!("network \"{}\" ({})", conf.name, conf.source);
            match s.parse::<Ipv4Net>() {
                Err(_) => {
                    bad = Some(format!(
                        "{what}: subnet \"{s}\" is not an IPv4 CIDR like 10.1.0.0/24"
                    ))
                }
                Ok(n) if n != n.trunc() => {
                    bad = Some(format!(
                        "{what}: subnet {s} has host bits set; use {}",
                        n.trunc()
                    ))
                }
                Ok(n) if n.prefix_len() > 30 => {
                    bad = Some(format!(
                        "{what}: subnet {s} is too small (at most /30: a gateway and one pod)"
                    ))
                }
                Ok(n) => {
                    let bound = |key: &str, default: Ipv4Addr| {
                        range
                            .get(key)
                            .and_then(Value::as_str)
                            .and_then(|a| a.parse::<Ipv4Addr>().ok())
                            .unwrap_or(default)
                    };
                    let span = (
                        u32::from(bound("rangeStart", n.network())),
                        u32::from(bound("rangeEnd", n.broadcast())),
                    );
                    if let Some((o, _)) = spans
                        .iter()
                        .find(|(_, (a, b))| span.0 <= *b && *a <= span.1)
                    {
                        bad = Some(format!("{what}: ranges in {o} and {n} overlap"));
                    }
                    spans.push((n, span));
                    if !out.contains(&n) {
                        out.push(n);
                    }
                }
            }
        };
        push(ipam);
        for set in ipam
            .get("ranges")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for r in set.as_array().into_iter().flatten() {
                push(r);
            }
        }
    }
    match bad {
        Some(e) => Err(e),
        None => Ok(out),
    }
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
