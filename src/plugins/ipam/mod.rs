//! IPAM delegation: runs the plugin named by the config's `ipam.type`,
//! found on CNI_PATH, with the same config on stdin and the same CNI_*
//! environment (CNI_COMMAND set to the verb), and reads its result.
//!
//! When the IPAM plugin found on CNI_PATH is one of our own binaries (it
//! sits beside the running plugin) and is compiled into this one too
//! ([`BUILTIN`]), it runs in-process instead: the same code on the same
//! files, without a fork and exec. The bundled host-local is there.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

pub mod dhcp;
pub mod host_local;

use crate::cni::config::valid_name;
use crate::cni::exec::{self, ExecError, Invocation};
use crate::cni::skeleton::{Command, Plugin, Request};
use crate::cni::{codes, CniError, CniResult};

/// IPAM plugins compiled into this binary, by CNI type.
pub static BUILTIN: &[(&str, &(dyn Plugin + Sync))] = &[("host-local", &host_local::HostLocal)];

/// The built-in plugin to use in place of `found`, if `found` is our own
/// binary of type `ty` (beside the running executable).
fn in_process(
    ty: &str,
    found: &Path,
    builtin: &'static [(&'static str, &'static (dyn Plugin + Sync))],
) -> Option<&'static (dyn Plugin + Sync)> {
    let (_, plugin) = builtin.iter().find(|(t, _)| *t == ty)?;
    let me = std::env::current_exe().ok()?;
    let same_dir = |a: &Path, b: &Path| match (a.parent(), b.parent()) {
        (Some(a), Some(b)) => a.canonicalize().ok() == b.canonicalize().ok(),
        _ => false,
    };
    same_dir(&me, found).then_some(*plugin)
}

/// How long an IPAM plugin may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The config's `ipam.type`: a plugin name looked up on CNI_PATH, so never
/// a path (`/tmp/x`, `../../x` would run a binary outside CNI_PATH).
fn ipam_type(req: &Request) -> Result<String, CniError> {
    let ty = req
        .config
        .get("ipam")
        .and_then(|i| i.get("type"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            CniError::new(
                codes::INVALID_CONFIG,
                format!("network \"{}\": missing \"ipam\".\"type\"", req.name),
            )
        })?;
    if !valid_name(ty) {
        return Err(CniError::new(
            codes::INVALID_CONFIG,
            format!(
                "network \"{}\": IPAM type \"{ty}\" is invalid (a plugin name: letters, digits, '_', '.', '-'; no '/')",
                req.name
            ),
        ));
    }
    Ok(ty.to_string())
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

/// The built-in IPAM plugin to run in-process for this request, if any.
fn builtin_for(req: &Request) -> Option<&'static (dyn Plugin + Sync)> {
    if BUILTIN.is_empty() {
        return None;
    }
    let ty = ipam_type(req).ok()?;
    let found = exec::find_plugin(&ty, &req.path).ok()?;
    in_process(&ty, &found, BUILTIN)
}

fn with_command(req: &Request, command: Command) -> Request {
    Request {
        command,
        ..req.clone()
    }
}

/// IPAM ADD: the addresses, routes and DNS for this attachment.
pub fn add(req: &Request) -> Result<CniResult, CniError> {
    let res = match builtin_for(req) {
        Some(p) => p.add(&with_command(req, Command::Add))?,
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
    match builtin_for(req) {
        Some(p) => p.del(&with_command(req, Command::Del)),
        None => run(req, "DEL").map(|_| ()),
    }
}

/// IPAM GC, best effort: an IPAM plugin that does not know GC (an older
/// spec: incompatible version, unknown command, or the container ID that
/// pre-1.1 plugins require for every verb) is not an error.
pub fn gc(req: &Request) -> Result<(), CniError> {
    let out = match builtin_for(req) {
        Some(p) => p.gc(&with_command(req, Command::Gc)),
        None => run(req, "GC").map(|_| ()),
    };
    match out {
        Err(e)
            if matches!(
                e.code,
                codes::INCOMPATIBLE_VERSION | codes::UNKNOWN_CONTAINER | codes::INVALID_ENV
            ) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// IPAM CHECK.
pub fn check(req: &Request) -> Result<(), CniError> {
    match builtin_for(req) {
        Some(p) => p.check(&with_command(req, Command::Check)),
        None => run(req, "CHECK").map(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake;
    impl Plugin for Fake {
        fn add(&self, _req: &Request) -> Result<CniResult, CniError> {
            Ok(CniResult::default())
        }
        fn del(&self, _req: &Request) -> Result<(), CniError> {
            Ok(())
        }
    }
    static FAKE: Fake = Fake;
    static TABLE: &[(&str, &(dyn Plugin + Sync))] = &[("fake-ipam", &FAKE)];

    #[test]
    fn ipam_type_is_a_name_not_a_path() {
        let req = |ty: &str| Request {
            command: Command::Add,
            container_id: "c".into(),
            netns: "/x".into(),
            ifname: "eth0".into(),
            args: String::new(),
            path: vec![],
            config: serde_json::json!({"name": "n", "ipam": {"type": ty}}),
            name: "n".into(),
            cni_version: "1.0.0".into(),
            prev_result: None,
        };
        assert_eq!(ipam_type(&req("host-local")).unwrap(), "host-local");
        for bad in ["/tmp/evil", "../../tmp/evil", "a/b", ".."] {
            let e = ipam_type(&req(bad)).unwrap_err();
            assert_eq!(e.code, codes::INVALID_CONFIG, "{bad}");
            assert!(e.msg.contains("is invalid"), "{bad}: {}", e.msg);
            // Nothing is run: ADD fails before any lookup.
            let e = add(&req(bad)).unwrap_err();
            assert_eq!(e.code, codes::INVALID_CONFIG, "{bad}: {}", e.msg);
        }
    }

    #[test]
    fn in_process_only_for_our_own_binary() {
        let me = std::env::current_exe().unwrap();
        let beside = me.parent().unwrap().join("fake-ipam");
        assert!(in_process("fake-ipam", &beside, TABLE).is_some());
        assert!(in_process("fake-ipam", Path::new("/usr/lib/cni/fake-ipam"), TABLE).is_none());
        assert!(in_process("other", &beside, TABLE).is_none());
    }
}
