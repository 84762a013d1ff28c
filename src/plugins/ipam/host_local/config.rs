//! host-local's configuration: its ranges (read by the shared
//! [`crate::cni::ranges`] parser, which the runtime's preflight uses too),
//! routes, `resolvConf`, `dataDir`, and requested addresses from CNI_ARGS
//! `IP=`, `args.cni.ips` and `runtimeConfig.ips`.

use std::net::IpAddr;

use serde::Deserialize;
use serde_json::Value;

use crate::cni::ranges;
pub use crate::cni::ranges::{from_u128, to_u128, Range, RangeSet};
use crate::cni::result::Route;
use crate::cni::skeleton::Request;
use crate::cni::{args, codes, CniError};

/// host-local's own keys of the `ipam` object (the ranges are read by
/// [`ranges::parse`]).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawIpam {
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(default)]
    resolv_conf: Option<String>,
}

/// The whole IPAM config.
#[derive(Debug, Clone)]
pub struct Config {
    pub sets: Vec<RangeSet>,
    pub routes: Vec<Route>,
    pub data_dir: String,
    pub resolv_conf: Option<String>,
    pub requested: Vec<IpAddr>,
}

fn invalid(req: &Request, msg: String) -> CniError {
    CniError::new(
        codes::INVALID_CONFIG,
        format!("network \"{}\": host-local: {msg}", req.name),
    )
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
        let raw = RawIpam::deserialize(&ipam)
            .map_err(|e| invalid(req, format!("cannot parse \"ipam\": {e}")))?;
        let sets = ranges::parse(&ipam).map_err(|e| invalid(req, e.to_string()))?;
        if sets.is_empty() || sets.iter().any(Vec::is_empty) {
            return Err(invalid(
                req,
                "no IP ranges specified (set \"subnet\" or \"ranges\")".into(),
            ));
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
