//! host-local IPAM: addresses from configured ranges, leases on disk,
//! on-disk compatible with the reference plugin in both directions, so
//! either implementation can take over a directory the other wrote.
//!
//! Allocation is round-robin: it starts after `last_reserved_ip.<set>` and
//! takes the first address whose lease file it can create (`O_EXCL`), so an
//! ADD costs the same at the 1st and the 1000th pod. DEL finds the leases to
//! remove through `prevResult` when it has one, else with a directory scan.

mod config;
mod store;

use std::net::IpAddr;

use crate::cni::result::{Dns, IpConfig};
use crate::cni::skeleton::{Plugin, Request};
use crate::cni::{codes, CniError, CniResult};

pub use config::Config;
use config::{from_u128, to_u128, Range, RangeSet};
use store::{Holder, Store};

/// The plugin; also called in-process by the bundled main plugins.
pub struct HostLocal;

fn io_err(req: &Request, what: &str, e: std::io::Error) -> CniError {
    CniError::new(
        codes::IO_FAILURE,
        format!("network \"{}\": host-local: {what}: {e}", req.name),
    )
}

fn open(req: &Request, data_dir: &str) -> Result<Store, CniError> {
    Store::open(data_dir, &req.name).map_err(|e| {
        io_err(
            req,
            &format!("cannot open the lease directory {data_dir}/{}", req.name),
            e,
        )
    })
}

fn describe(set: &RangeSet) -> String {
    set.iter()
        .map(|r| format!("{}-{}", r.start, r.end))
        .collect::<Vec<_>>()
        .join(",")
}

/// The address after `ip` in the set (wrapping), skipping gateways.
fn next(set: &RangeSet, cur: Option<(usize, IpAddr)>) -> (usize, IpAddr) {
    match cur {
        None => (0, set[0].start),
        Some((i, ip)) if ip == set[i].end => {
            let j = (i + 1) % set.len();
            (j, set[j].start)
        }
        Some((i, ip)) => (i, from_u128(to_u128(ip) + 1, ip)),
    }
}

fn allocate(
    req: &Request,
    store: &Store,
    set: &RangeSet,
    idx: usize,
    want: Option<IpAddr>,
) -> Result<(Range, IpAddr), CniError> {
    let io = |e| io_err(req, "cannot write a lease", e);
    if let Some(ip) = want {
        let r = set
            .iter()
            .find(|r| r.contains(ip))
            .cloned()
            .ok_or_else(|| {
                CniError::new(
                    codes::INVALID_CONFIG,
                    format!(
                        "network \"{}\": requested address {ip} is outside range set {}",
                        req.name,
                        describe(set)
                    ),
                )
            })?;
        if ip == r.gateway {
            return Err(CniError::new(
                codes::INVALID_CONFIG,
                format!(
                    "network \"{}\": requested address {ip} is the subnet's gateway",
                    req.name
                ),
            ));
        }
        if !store
            .reserve(&req.container_id, &req.ifname, ip, idx)
            .map_err(io)?
        {
            return Err(CniError::new(
                codes::INTERNAL,
                format!("network \"{}\": requested address {ip} is not available in range set {} (taken)", req.name, describe(set)),
            ));
        }
        return Ok((r, ip));
    }
    if let Some(ip) = store
        .hinted(&req.container_id, &req.ifname)
        .into_iter()
        .find(|ip| set.iter().any(|r| r.contains(*ip)))
    {
        return Err(CniError::new(
            codes::INTERNAL,
            format!("network \"{}\": {ip} has been allocated to {}, duplicate allocation is not allowed", req.name, req.container_id),
        ));
    }
    // Start after the last address handed out in this set, if it is still in it.
    let start = store
        .last_reserved(idx)
        .and_then(|ip| set.iter().position(|r| r.contains(ip)).map(|i| (i, ip)));
    let mut cur = start;
    let total: u128 = set
        .iter()
        .map(|r| to_u128(r.end) - to_u128(r.start) + 1)
        .sum();
    for _ in 0..total {
        let (i, ip) = next(set, cur);
        cur = Some((i, ip));
        if ip == set[i].gateway {
            continue;
        }
        if store
            .reserve(&req.container_id, &req.ifname, ip, idx)
            .map_err(io)?
        {
            return Ok((set[i].clone(), ip));
        }
    }
    Err(CniError::new(
        codes::TRY_AGAIN,
        format!("network \"{}\": no IP addresses available in range set {}; free some (rkt gc) or widen the range", req.name, describe(set)),
    ))
}

impl Plugin for HostLocal {
    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        let conf = Config::parse(req)?;
        let store = open(req, &conf.data_dir)?;
        let mut wanted = conf.requested.clone();
        let mut result = CniResult::default();
        for (idx, set) in conf.sets.iter().enumerate() {
            let want = wanted
                .iter()
                .position(|ip| set.iter().any(|r| r.contains(*ip)))
                .map(|p| wanted.remove(p));
            match allocate(req, &store, set, idx, want) {
                Ok((range, ip)) => result.ips.push(IpConfig {
                    interface: None,
                    address: ipnet::IpNet::new(ip, range.subnet.prefix_len())
                        .expect("prefix of a parsed subnet"),
                    gateway: Some(range.gateway),
                }),
                Err(e) => {
                    for ip in &result.ips {
                        let _ = store.release(ip.address.addr());
                    }
                    return Err(e);
                }
            }
        }
        if !wanted.is_empty() {
            for ip in &result.ips {
                let _ = store.release(ip.address.addr());
            }
            let list: Vec<String> = wanted.iter().map(IpAddr::to_string).collect();
            return Err(CniError::new(
                codes::INVALID_CONFIG,
                format!("network \"{}\": failed to allocate all requested IPs: {} (outside every range)", req.name, list.join(" ")),
            ));
        }
        result.routes = conf.routes.clone();
        if let Some(path) = &conf.resolv_conf {
            let text = std::fs::read_to_string(path)
                .map_err(|e| io_err(req, &format!("cannot read resolvConf {path}"), e))?;
            result.dns = Dns::from_resolv_conf(&text);
        } else {
            result.dns = Dns::default();
        }
        Ok(result)
    }

    /// Releases by container ID and interface, whatever the ranges, the
    /// requested addresses or the routes of the config say (as the
    /// reference releases by ID across the directory): a DEL must undo an
    /// ADD that failed on a config only this plugin rejects, or the
    /// attachment could never be deleted. Only the lease directory
    /// (`dataDir`, the network name) matters.
    fn del(&self, req: &Request) -> Result<(), CniError> {
        let store = open(req, &config::data_dir(req)?)?;
        let hint: Vec<IpAddr> = req
            .prev_result
            .as_ref()
            .map(|r| r.ips.iter().map(|i| i.address.addr()).collect())
            .unwrap_or_default();
        store
            .release_by_id(&req.container_id, &req.ifname, &hint)
            .map_err(|e| io_err(req, "cannot release a lease", e))?;
        Ok(())
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        let conf = Config::parse(req)?;
        let store = open(req, &conf.data_dir)?;
        let held = store.by_id(&req.container_id, &req.ifname);
        let prev = req
            .prev_result
            .as_ref()
            .map(|r| r.ips.clone())
            .unwrap_or_default();
        for ip in prev {
            let addr = ip.address.addr();
            if conf.sets.iter().flatten().any(|r| r.contains(addr)) && !held.contains(&addr) {
                return Err(CniError::new(
                    codes::INTERNAL,
                    format!(
                        "network \"{}\": host-local: {addr} is not reserved for {}/{}",
                        req.name, req.container_id, req.ifname
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Releases every lease not held by a valid attachment, and every
    /// corrupt one (not a regular file, or content that names no
    /// attachment): nothing could ever DEL those. Like DEL, it needs only
    /// the lease directory from the config.
    fn gc(&self, req: &Request) -> Result<(), CniError> {
        let store = open(req, &config::data_dir(req)?)?;
        let valid = req.valid_attachments();
        let is_valid = |id: &str, ifname: &str| {
            valid
                .iter()
                .any(|(v_id, v_if)| v_id == id && (ifname.is_empty() || v_if == ifname))
        };
        for (ip, holder) in store.leases() {
            let keep = match &holder {
                Holder::Attachment(id, ifname) => is_valid(id, ifname),
                Holder::Corrupt => false,
            };
            if !keep {
                store
                    .release(ip)
                    .map_err(|e| io_err(req, "cannot release a stale lease", e))?;
            }
        }
        store.prune_hints(is_valid);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(dir: &std::path::Path, id: &str, ipam: serde_json::Value, args: &str) -> Request {
        let mut ipam = ipam;
        ipam["dataDir"] = json!(dir.to_str().unwrap());
        Request {
            command: crate::cni::skeleton::Command::Add,
            container_id: id.into(),
            netns: "/x".into(),
            ifname: "eth0".into(),
            args: args.into(),
            path: vec![],
            config: json!({"cniVersion": "1.0.0", "name": "n", "ipam": ipam}),
            name: "n".into(),
            cni_version: "1.0.0".into(),
            prev_result: None,
        }
    }

    #[test]
    fn round_robin_exhaustion_and_release() {
        let d = tempfile::tempdir().unwrap();
        let ipam = json!({"type": "host-local", "subnet": "10.0.0.0/29", "rangeStart": "10.0.0.2", "rangeEnd": "10.0.0.4"});
        let a = HostLocal
            .add(&req(d.path(), "a", ipam.clone(), ""))
            .unwrap();
        assert_eq!(a.ips[0].address.to_string(), "10.0.0.2/29");
        assert_eq!(a.ips[0].gateway.unwrap().to_string(), "10.0.0.1");
        let b = HostLocal
            .add(&req(d.path(), "b", ipam.clone(), ""))
            .unwrap();
        assert_eq!(b.ips[0].address.to_string(), "10.0.0.3/29");
        HostLocal
            .del(&req(d.path(), "a", ipam.clone(), ""))
            .unwrap();
        // Round robin: .4 next, then wraps to the freed .2.
        assert_eq!(
            HostLocal
                .add(&req(d.path(), "c", ipam.clone(), ""))
                .unwrap()
                .ips[0]
                .address
                .to_string(),
            "10.0.0.4/29"
        );
        assert_eq!(
            HostLocal
                .add(&req(d.path(), "e", ipam.clone(), ""))
                .unwrap()
                .ips[0]
                .address
                .to_string(),
            "10.0.0.2/29"
        );
        let err = HostLocal
            .add(&req(d.path(), "f", ipam.clone(), ""))
            .unwrap_err();
        assert_eq!(err.code, codes::TRY_AGAIN);
        assert!(err.msg.contains("no IP addresses available"), "{}", err.msg);
        let lease = std::fs::read_to_string(d.path().join("n/10.0.0.3")).unwrap();
        assert_eq!(lease, "b\r\neth0");
    }

    #[test]
    fn requested_and_invalid() {
        let d = tempfile::tempdir().unwrap();
        let ipam = json!({"type": "host-local", "subnet": "10.1.0.0/24"});
        let r = HostLocal
            .add(&req(
                d.path(),
                "a",
                ipam.clone(),
                "IgnoreUnknown=1;IP=10.1.0.77",
            ))
            .unwrap();
        assert_eq!(r.ips[0].address.to_string(), "10.1.0.77/24");
        let e = HostLocal
            .add(&req(d.path(), "b", ipam.clone(), "IP=10.1.0.77"))
            .unwrap_err();
        assert!(
            e.msg.contains("10.1.0.77") && e.msg.contains("taken"),
            "{}",
            e.msg
        );
        let e = HostLocal
            .add(&req(d.path(), "c", ipam.clone(), "IP=10.9.0.1"))
            .unwrap_err();
        assert!(e.msg.contains("10.9.0.1"), "{}", e.msg);
        for (bad, want) in [
            (json!({"subnet": "10.2.0.1/24"}), "host bits"),
            (json!({"subnet": "10.2.0.0/31"}), "too small"),
            (
                json!({"ranges": [[{"subnet": "10.3.0.0/16"}], [{"subnet": "10.3.1.0/24"}]]}),
                "overlaps",
            ),
            (
                json!({"subnet": "10.4.0.0/24", "rangeStart": "10.5.0.1"}),
                "not in subnet",
            ),
            (json!({}), "no IP ranges"),
        ] {
            let e = HostLocal.add(&req(d.path(), "x", bad, "")).unwrap_err();
            assert_eq!(e.code, codes::INVALID_CONFIG);
            assert!(e.msg.contains(want), "{} / {want}", e.msg);
        }
    }

    #[test]
    fn dual_stack_and_gc() {
        let d = tempfile::tempdir().unwrap();
        let ipam = json!({"type": "host-local", "ranges": [[{"subnet": "10.6.0.0/24"}], [{"subnet": "fd00:6::/64"}]], "routes": [{"dst": "0.0.0.0/0"}]});
        let r = HostLocal
            .add(&req(d.path(), "a", ipam.clone(), ""))
            .unwrap();
        assert_eq!(r.ips.len(), 2);
        assert_eq!(r.ips[1].address.to_string(), "fd00:6::2/64");
        assert_eq!(r.routes.len(), 1);
        HostLocal
            .add(&req(d.path(), "b", ipam.clone(), ""))
            .unwrap();
        let mut g = req(d.path(), "", ipam.clone(), "");
        g.config["cni.dev/valid-attachments"] = json!([{"containerID": "b", "ifname": "eth0"}]);
        HostLocal.gc(&g).unwrap();
        let left: Vec<String> = std::fs::read_dir(d.path().join("n"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.parse::<IpAddr>().is_ok())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(left.contains(&"10.6.0.3".to_string()));
    }
}
