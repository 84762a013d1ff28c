//! IPAM address ranges as host-local reads them: the legacy single range
//! (`subnet`, `rangeStart`, `rangeEnd`, `gateway`) and `ranges` (a list of
//! range sets), checked and completed as the reference plugin does. One
//! parser for both sides: host-local allocates from it, and the runtime's
//! preflight checks a network's subnets with it before anything is created.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;

/// A range's optional bounds and gateway (completed from its subnet).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bounds {
    #[serde(default)]
    range_start: Option<IpAddr>,
    #[serde(default)]
    range_end: Option<IpAddr>,
    #[serde(default)]
    gateway: Option<IpAddr>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct RawRange {
    subnet: String,
    #[serde(flatten)]
    bounds: Bounds,
}

/// The range keys of an `ipam` object (its other keys are the plugin's).
#[derive(Debug, Clone, Default, Deserialize)]
struct RawRanges {
    #[serde(default)]
    subnet: Option<String>,
    #[serde(flatten)]
    bounds: Bounds,
    #[serde(default)]
    ranges: Vec<Vec<RawRange>>,
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

    fn overlaps(&self, b: &Range) -> bool {
        self.subnet.addr().is_ipv4() == b.subnet.addr().is_ipv4()
            && to_u128(self.start) <= to_u128(b.end)
            && to_u128(b.start) <= to_u128(self.end)
    }
}

/// Ranges of one family an address is taken from, in order.
pub type RangeSet = Vec<Range>;

/// Why an `ipam` object's ranges cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RangeError {
    #[error("cannot parse \"ipam\": {0}")]
    Parse(#[from] serde_json::Error),
    #[error("subnet \"{0}\" is not a CIDR")]
    NotCidr(String),
    #[error("subnet {given} has host bits set; the network address is {network}")]
    HostBits { given: String, network: IpNet },
    #[error("subnet {0} is too small to allocate from")]
    TooSmall(IpNet),
    #[error("{what} {ip} is not in subnet {subnet}")]
    Outside {
        what: &'static str,
        ip: IpAddr,
        subnet: IpNet,
    },
    #[error("rangeStart {start} is after rangeEnd {end}")]
    Reversed { start: IpAddr, end: IpAddr },
    #[error("range set mixes IPv4 and IPv6 ({0} and {1})")]
    MixedFamilies(IpNet, IpNet),
    #[error("range {0} overlaps with {1}")]
    RangesOverlap(IpNet, IpNet),
    #[error("range set {0} overlaps with range set {1}")]
    SetsOverlap(usize, usize),
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

fn complete(r: &RawRange) -> Result<Range, RangeError> {
    let subnet: IpNet = r
        .subnet
        .parse()
        .map_err(|_| RangeError::NotCidr(r.subnet.clone()))?;
    if subnet.addr() != subnet.network() {
        return Err(RangeError::HostBits {
            given: r.subnet.clone(),
            network: subnet.trunc(),
        });
    }
    if subnet.prefix_len() + 2 > subnet.max_prefix_len() {
        return Err(RangeError::TooSmall(subnet));
    }
    let net = to_u128(subnet.network());
    let last = match subnet {
        IpNet::V4(_) => to_u128(subnet.broadcast()) - 1,
        IpNet::V6(_) => to_u128(subnet.broadcast()),
    };
    let inside = |ip: IpAddr, what| {
        if subnet.contains(&ip) {
            Ok(ip)
        } else {
            Err(RangeError::Outside { what, ip, subnet })
        }
    };
    let first = from_u128(net + 1, subnet.addr());
    let gateway = r
        .bounds
        .gateway
        .map_or(Ok(first), |g| inside(g, "gateway"))?;
    let start = r
        .bounds
        .range_start
        .map_or(Ok(first), |s| inside(s, "rangeStart"))?;
    let end = match r.bounds.range_end {
        Some(e) => inside(e, "rangeEnd")?,
        None => from_u128(last, subnet.addr()),
    };
    if to_u128(start) > to_u128(end) {
        return Err(RangeError::Reversed { start, end });
    }
    Ok(Range {
        subnet,
        start,
        end,
        gateway,
    })
}

/// The range sets of an `ipam` object (the legacy single range first),
/// each checked and completed; none when it names no range at all.
pub fn parse(ipam: &Value) -> Result<Vec<RangeSet>, RangeError> {
    let raw = RawRanges::deserialize(ipam)?;
    let mut raw_sets = raw.ranges;
    if let Some(subnet) = raw.subnet {
        raw_sets.insert(
            0,
            vec![RawRange {
                subnet,
                bounds: raw.bounds,
            }],
        );
    }
    let mut sets: Vec<RangeSet> = Vec::new();
    for raw_set in &raw_sets {
        let mut set: RangeSet = Vec::new();
        for r in raw_set {
            let r = complete(r)?;
            if let Some(first) = set.first() {
                if first.subnet.addr().is_ipv4() != r.subnet.addr().is_ipv4() {
                    return Err(RangeError::MixedFamilies(first.subnet, r.subnet));
                }
            }
            if let Some(o) = set.iter().find(|o| o.overlaps(&r)) {
                return Err(RangeError::RangesOverlap(r.subnet, o.subnet));
            }
            set.push(r);
        }
        for (i, other) in sets.iter().enumerate() {
            if other.iter().any(|o| set.iter().any(|r| o.overlaps(r))) {
                return Err(RangeError::SetsOverlap(sets.len(), i));
            }
        }
        sets.push(set);
    }
    Ok(sets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn legacy_range_first_then_sets() {
        let sets = parse(&json!({
            "subnet": "10.1.0.0/24", "rangeStart": "10.1.0.10",
            "ranges": [[{"subnet": "fd00::/120"}]]
        }))
        .unwrap();
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0][0].start.to_string(), "10.1.0.10");
        assert_eq!(sets[0][0].end.to_string(), "10.1.0.254");
        assert_eq!(sets[0][0].gateway.to_string(), "10.1.0.1");
        assert_eq!(sets[1][0].end.to_string(), "fd00::ff");
        assert!(parse(&json!({"type": "dhcp"})).unwrap().is_empty());
    }

    #[test]
    fn bad_ranges_are_refused() {
        let e = |v| parse(&v).unwrap_err().to_string();
        assert!(e(json!({"subnet": "10.1.0.1/24"})).contains("host bits set"));
        assert!(e(json!({"subnet": "10.1.0.0/31"})).contains("too small"));
        assert!(e(json!({"subnet": "x"})).contains("not a CIDR"));
        assert!(e(json!({"subnet": "10.1.0.0/24", "gateway": "10.2.0.1"}))
            .contains("gateway 10.2.0.1 is not in subnet"));
        assert!(
            e(json!({"ranges": [[{"subnet": "10.72.0.0/16"}], [{"subnet": "10.72.1.0/24"}]]}))
                .contains("overlaps")
        );
        assert!(e(
            json!({"subnet": "10.1.0.0/24", "rangeStart": "10.1.0.9", "rangeEnd": "10.1.0.8"})
        )
        .contains("after rangeEnd"));
    }
}
