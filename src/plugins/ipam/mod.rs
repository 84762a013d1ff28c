//! IPAM delegation: runs the plugin named by the config's `ipam.type`,
//! found on CNI_PATH, with the same config on stdin and the same CNI_*
//! environment (CNI_COMMAND set to the verb), and reads its result.
//!
//! When the `host-local` found on CNI_PATH is our own (it sits beside the
//! running plugin), it runs in-process instead: same code, same result,
//! no fork and exec.

use std::time::Duration;

use serde_json::Value;

pub mod dhcp;
pub mod host_local;

use crate::cni::exec::{self, ExecError, Invocation};
use crate::cni::skeleton::Plugin;
use crate::cni::skeleton::Request;
use crate::cni::{codes, CniError, CniResult};

/// How long an IPAM plugin may take.
const TIMEOUT: Duration = Duration::from_secs(60);

fn ipam_type(req: &Request) -> Result<String, CniError> {
    req.config
        .get("ipam")
        .and_then(|i| i.get("type"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            CniError::new(
                codes::INVALID_CONFIG,
                format!("network \"{}\": missing \"ipam\".\"type\"", req.name),
            )
        })
}

/// Runs the IPAM plugin. A 1.1.0 config that an older IPAM plugin refuses
/// (code 1, incompatible version) is retried as 1.0.0: the two versions'
/// IPAM results have the same shape, and GC/STATUS are not delegated.
fn run(req: &Request, command: &str) -> Result<Vec<u8>, CniError> {
    match run_as(req, command, &req.config) {
        Err(e) if e.code == codes::INCOMPATIBLE_VERSION && req.cni_version == "1.1.0" => {
            let mut older = req.config.clone();
            older["cniVersion"] = Value::from("1.0.0");
            if let Some(prev) = older.get_mut("prevResult") {
                prev["cniVersion"] = Value::from("1.0.0");
            }
            run_as(req, command, &older)
        }
        other => other,
    }
}

fn run_as(req: &Request, command: &str, config: &Value) -> Result<Vec<u8>, CniError> {
    let ty = ipam_type(req)?;
    let fail = |e: ExecError| match e {
        ExecError::Plugin(e) => e,
        other => CniError::new(
            codes::INTERNAL,
            format!("network \"{}\": IPAM {command}: {other}", req.name),
        ),
    };
    let plugin = exec::find_plugin(&ty, &req.path).map_err(fail)?;
    let stdin = serde_json::to_vec(config).map_err(|e| {
        CniError::new(
            codes::INTERNAL,
            format!("network \"{}\": cannot encode config: {e}", req.name),
        )
    })?;
    let inv = Invocation {
        command,
        container_id: &req.container_id,
        netns: &req.netns,
        ifname: &req.ifname,
        args: &req.args,
        path: &req.path,
        timeout: TIMEOUT,
    };
    exec::run(&plugin, &inv, &stdin).map_err(fail)
}

/// The bundled host-local, when it is the one CNI_PATH would run.
fn in_process(req: &Request) -> Option<host_local::HostLocal> {
    if ipam_type(req).ok()? != "host-local" {
        return None;
    }
    let found = exec::find_plugin("host-local", &req.path).ok()?;
    let ours = std::env::current_exe().ok()?.parent()?.join("host-local");
    (std::fs::canonicalize(found).ok()? == std::fs::canonicalize(ours).ok()?)
        .then_some(host_local::HostLocal)
}

/// IPAM ADD: the addresses, routes and DNS for this attachment.
pub fn add(req: &Request) -> Result<CniResult, CniError> {
    let res = match in_process(req) {
        Some(p) => p.add(req)?,
        None => CniResult::parse(&run(req, "ADD")?, &req.cni_version)?,
    };
    if res.ips.is_empty() {
        return Err(CniError::new(
            codes::INTERNAL,
            format!(
                "network \"{}\": IPAM plugin returned missing IP config",
                req.name
            ),
        ));
    }
    Ok(res)
}

/// IPAM DEL: releases this attachment's addresses.
pub fn del(req: &Request) -> Result<(), CniError> {
    match in_process(req) {
        Some(p) => p.del(req),
        None => run(req, "DEL").map(|_| ()),
    }
}

/// IPAM CHECK.
pub fn check(req: &Request) -> Result<(), CniError> {
    match in_process(req) {
        Some(p) => p.check(req),
        None => run(req, "CHECK").map(|_| ()),
    }
}

/// IPAM GC (spec 1.1.0): releases leases of attachments no longer valid.
/// A network without IPAM has nothing to collect.
pub fn gc(req: &Request) -> Result<(), CniError> {
    if ipam_type(req).is_err() {
        return Ok(());
    }
    match in_process(req) {
        Some(p) => p.gc(req),
        None => run(req, "GC").map(|_| ()),
    }
}
