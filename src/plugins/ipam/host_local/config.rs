//! host-local's configuration: the legacy single range (`subnet`,
//! `rangeStart`, `rangeEnd`, `gateway`) and `ranges` (range sets), checked
//! and completed as the reference does; requested addresses from CNI_ARGS
//! `IP=`, `args.cni.ips` and `runtimeConfig.ips`.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;

use crate::cni::result::Route;
use crate::cni::skeleton::Request;
use crate::cni::{args, codes, CniError};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRange {
    subnet: String,
    #[serde(default)]
    range_start: Option<IpAddr>,
    #[serde(default)]
    range_end: Option<IpAddr>,
    #[serde(default)]
    gateway: Option<IpAddr>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawIpam {
    #[serde(default)]
    subnet: Option<String>,
    #[serde(default)]
    range_start: Option<IpAddr>,
    #[serde(default)]
    range_end: Option<IpAddr>,
    #[serde(default)]
    gateway: Option<IpAddr>,
    #[serde(default)]
    ranges: Vec<Vec<RawRange>>,
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(default)]
    resolv_conf: Option<String>,
}

/// One range, completed: first and last allocatable address, gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub subnet: IpNet,
    pub start: IpAddr,
    pub end: IpAddr,
    pub gateway: IpAddr,
}

impl Range {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.subnet.contains(&ip)
            && to_u128(ip) >= to_u128(self.start)
            && to_u128(ip) <= to_u128(self.end)
    }
}

pub type RangeSet = Vec<Range>;

/// The whole IPAM config.
#[derive(Debug, Clone)]
pub struct Config {
    pub sets: Vec<RangeSet>,
    pub routes: Vec<Route>,
    pub data_dir: String,
    pub resolv_conf: Option<String>,
    pub requested: Vec<IpAddr>,
}

pub fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

pub fn from_u128(v: u128, like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4((v as u32).into()),
        IpAddr::V6(_) => IpAddr::V6(v.into()),
    }
}

fn invalid(req: &Request, msg: String) -> CniError {
    CniError::new(
        codes::INVALID_CONFIG,
        format!("network \"{}\": host-local: {msg}", req.name),
    )
}

fn complete(req: &Request, r: &RawRange) -> Result<Range, CniError> {
    let subnet: IpNet = r
        .subnet
        .parse()
        .map_err(|_| invalid(req, format!("subnet \"{}\" is not a CIDR", r.subnet)))?;
    if subnet.addr() != subnet.network() {
        return Err(invalid(
            req,
            format!(
                "subnet {} has host bits set; the network address is {}/{}",
                r.subnet,
                subnet.network(),
                subnet.prefix_len()
            ),
        ));
    }
    if subnet.prefix_len() + 2 > subnet.max_prefix_len() {
        return Err(invalid(
            req,
            format!("subnet {subnet} is too small to allocate from"),
        ));
    }
    let net = to_u128(subnet.network());
    let last = match subnet {
        IpNet::V4(_) => to_u128(subnet.broadcast()) - 1,
        IpNet::V6(_) => to_u128(subnet.broadcast()),
    };
    let inside = |ip: IpAddr, what: &str| -> Result<IpAddr, CniError> {
        if subnet.contains(&ip) {
            Ok(ip)
        } else {
            Err(invalid(
                req,
                format!("{what} {ip} is not in subnet {subnet}"),
            ))
        }
    };
    let gateway = match r.gateway {
        Some(g) => inside(g, "gateway")?,
        None => from_u128(net + 1, subnet.addr()),
    };
    let start = match r.range_start {
        Some(s) => inside(s, "rangeStart")?,
        None => from_u128(net + 1, subnet.addr()),
    };
    let end = match r.range_end {
        Some(e) => inside(e, "rangeEnd")?,
        None => from_u128(last, subnet.addr()),
    };
    if to_u128(start) > to_u128(end) {
        return Err(invalid(
            req,
            format!("rangeStart {start} is after rangeEnd {end}"),
        ));
    }
    Ok(Range {
        subnet,
        start,
        end,
        gateway,
    })
}

fn overlaps(a: &Range, b: &Range) -> bool {
    a.subnet.addr().is_ipv4() == b.subnet.addr().is_ipv4()
        && to_u128(a.start) <= to_u128(b.end)
        && to_u128(b.start) <= to_u128(a.end)
}

fn requested(req: &Request) -> Result<Vec<IpAddr>, CniError> {
    let mut out = Vec::new();
    let bad = |s: &str, from: &str| {
        invalid(
            req,
            format!("requested address \"{s}\" ({from}) is not an IP address"),
        )
    };
    if let Some(list) = args::get(&req.args, "IP") {
        for s in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            out.push(s.parse().map_err(|_| bad(s, "CNI_ARGS IP"))?);
        }
    }
    let strip = |s: &str| s.split('/').next().unwrap_or(s).to_string();
    for (ptr, from) in [
        ("/args/cni/ips", "args.cni.ips"),
        ("/runtimeConfig/ips", "runtimeConfig.ips"),
    ] {
        for v in req
            .config
            .pointer(ptr)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let s = v.as_str().map(strip).unwrap_or_default();
            out.push(s.parse().map_err(|_| bad(&s, from))?);
        }
    }
    Ok(out)
}

/// Where leases live: `ipam.dataDir`, by default `/var/lib/cni/networks`.
/// Read on its own, so DEL and GC work on a config whose ranges are invalid.
pub fn data_dir(req: &Request) -> Result<String, CniError> {
    match req.config.pointer("/ipam/dataDir") {
        None | Some(Value::Null) => Ok(DEFAULT_DATA_DIR.into()),
        Some(Value::String(d)) if !d.is_empty() => Ok(d.clone()),
        Some(other) => Err(invalid(
            req,
            format!("\"dataDir\" {other} is not a directory path"),
        )),
    }
}

const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

impl Config {
    /// Reads `req.config["ipam"]` and completes it.
    pub fn parse(req: &Request) -> Result<Self, CniError> {
        let ipam = req.config.get("ipam").cloned().unwrap_or(Value::Null);
        let raw: RawIpam = serde_json::from_value(ipam)
            .map_err(|e| invalid(req, format!("cannot parse \"ipam\": {e}")))?;
        let mut raw_sets = raw.ranges.clone();
        if let Some(subnet) = &raw.subnet {
            raw_sets.insert(
                0,
                vec![RawRange {
                    subnet: subnet.clone(),
                    range_start: raw.range_start,
                    range_end: raw.range_end,
                    gateway: raw.gateway,
                }],
            );
        }
        if raw_sets.is_empty() || raw_sets.iter().any(Vec::is_empty) {
            return Err(invalid(
                req,
                "no IP ranges specified (set \"subnet\" or \"ranges\")".into(),
            ));
        }
        let mut sets: Vec<RangeSet> = Vec::new();
        for raw_set in &raw_sets {
            let mut set: RangeSet = Vec::new();
            for r in raw_set {
                let r = complete(req, r)?;
                if let Some(first) = set.first() {
                    if first.subnet.addr().is_ipv4() != r.subnet.addr().is_ipv4() {
                        return Err(invalid(
                            req,
                            format!(
                                "range set mixes IPv4 and IPv6 ({} and {})",
                                first.subnet, r.subnet
                            ),
                        ));
                    }
                }
                if let Some(o) = set.iter().find(|o| overlaps(o, &r)) {
                    return Err(invalid(
                        req,
                        format!("range {} overlaps with {}", r.subnet, o.subnet),
                    ));
                }
                set.push(r);
            }
            for (i, other) in sets.iter().enumerate() {
                if other.iter().any(|o| set.iter().any(|r| overlaps(o, r))) {
                    return Err(invalid(
                        req,
                        format!("range set {} overlaps with range set {i}", sets.len()),
                    ));
                }
            }
            sets.push(set);
        }
        let data_dir = data_dir(req)?;
        Ok(Config {
            sets,
            routes: raw.routes,
            data_dir,
            resolv_conf: raw.resolv_conf,
            requested: requested(req)?,
        })
    }
}
