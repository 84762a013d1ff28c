//! The runtime side of CNI: attaching a pod's networks in order (journaled
//! in the pod directory, rolled back on failure) and detaching them.

pub mod dns;
mod error;
pub mod etc;
pub mod live;
pub mod netd;
pub mod ports;
pub mod preflight;
mod release;

pub use error::{
    join, CallError, CallFailure, GivenUp, ReleaseProblem, SetupCause, SetupError, GIVEN_UP,
};
pub use release::{release, Released};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tracing::debug;

use crate::cni::exec::{self, Invocation};
use crate::cni::{args, codes, version, CniResult, NetConf};
use crate::pod::manifest::NetRecord;
use crate::pod::Pod;

/// How this runtime invokes plugins: the same for every pod and for gc.
#[derive(Debug, Clone, Copy)]
pub struct Plugins<'a> {
    pub path: &'a [PathBuf],
    pub timeout: Duration,
}

/// What every plugin call of one pod's attachments shares.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub plugins: Plugins<'a>,
    pub container_id: &'a str,
    pub netns: &'a Path,
    pub runtime_config: Map<String, Value>,
}

fn cni_args(user: &[(String, String)]) -> String {
    if user.is_empty() {
        String::new()
    } else if user.iter().any(|(k, _)| k == IGNORE_UNKNOWN) {
        args::join(user)
    } else {
        format!("{IGNORE_UNKNOWN}=1;{}", args::join(user))
    }
}

const IGNORE_UNKNOWN: &str = "IgnoreUnknown";

/// CNI_ARGS of a DEL: the saved ADD arguments with the netns-teardown hint
/// (see [`del_first`]), every key once: plugins refuse a key given twice.
/// A user's own hint is replaced; of a key repeated in a journal written
/// before repeats were refused, the first is kept, the one ADD used.
fn del_args(saved: &str) -> String {
    let key = |p: &str| p.split_once('=').map_or(p, |(k, _)| k).to_string();
    let mut seen: Vec<String> = vec![args::NETNS_TEARDOWN.to_string()];
    let mut out: Vec<&str> = Vec::new();
    for p in saved.split(';').filter(|p| !p.is_empty()) {
        if !seen.contains(&key(p)) {
            seen.push(key(p));
            out.push(p);
        }
    }
    let ignore = format!("{IGNORE_UNKNOWN}=1");
    if !seen.iter().any(|k| k == IGNORE_UNKNOWN) {
        out.insert(0, &ignore);
    }
    let hint = format!("{}=1", args::NETNS_TEARDOWN);
    out.push(&hint);
    out.join(";")
}

impl NetRecord {
    fn conf(&self) -> NetConf {
        NetConf {
            name: self.name.clone(),
            cni_version: self.cni_version.clone(),
            plugins: self.plugins.clone(),
            source: self.source.clone(),
            is_list: self.is_list,
        }
    }
}

/// Runs one plugin of a network's chain; errors name network and plugin.
fn call(
    ctx: &Context,
    rec: &NetRecord,
    conf: &NetConf,
    i: usize,
    command: &'static str,
    cni_args: &str,
    prev: Option<&Value>,
) -> Result<Vec<u8>, CallError> {
    let ty = conf.types()[i].to_string();
    let fail = |failure: CallFailure| CallError {
        network: conf.name.clone(),
        plugin: ty.clone(),
        verb: Some(command),
        failure: Box::new(failure),
    };
    let plugin = exec::find_plugin(&ty, ctx.plugins.path).map_err(|e| fail(e.into()))?;
    let stdin = conf.plugin_stdin(i, prev, &rec.runtime_config);
    let stdin = serde_json::to_vec(&stdin).map_err(|e| fail(CallFailure::Encode(e)))?;
    let inv = Invocation {
        command,
        container_id: ctx.container_id,
        netns: &ctx.netns.to_string_lossy(),
        ifname: &rec.ifname,
        args: cni_args,
        path: ctx.plugins.path,
        timeout: ctx.plugins.timeout,
    };
    let t = Instant::now();
    let out = exec::run(&plugin, &inv, &stdin).map_err(|e| fail(e.into()))?;
    debug!(network = %conf.name, plugin = %ty, command, elapsed_ms = t.elapsed().as_secs_f64() * 1e3, "plugin");
    Ok(out)
}

/// A failed ADD: why, and how many plugins of the chain were run (and so
/// need a DEL).
struct AddError {
    cause: SetupCause,
    ran: usize,
}

/// ADD through the chain; returns the final result in the config's version.
fn add(ctx: &Context, rec: &NetRecord) -> Result<Value, AddError> {
    let conf = &rec.conf();
    let mut prev: Option<Value> = None;
    for i in 0..conf.plugins.len() {
        let ty = conf.types()[i];
        let fail = |failure: CallFailure, ran: usize| AddError {
            cause: SetupCause::Call(CallError {
                network: conf.name.clone(),
                plugin: ty.to_string(),
                verb: None,
                failure: Box::new(failure),
            }),
            ran,
        };
        // A plugin that cannot be found or executed never ran: nothing to undo.
        if let Err(e) = exec::find_plugin(ty, ctx.plugins.path) {
            return Err(fail(e.into(), i));
        }
        let out =
            call(ctx, rec, conf, i, "ADD", &rec.args, prev.as_ref()).map_err(|e| AddError {
                cause: e.into(),
                ran: i + 1,
            })?;
        let result = CniResult::parse(&out, &conf.cni_version)
            .map_err(|e| fail(CallFailure::Result(e), i + 1))?;
        prev = Some(result.to_version(&conf.cni_version));
    }
    prev.ok_or_else(|| AddError {
        cause: SetupCause::NoPlugins(conf.name.clone()),
        ran: 0,
    })
}

/// DEL through the chain in reverse; every plugin runs, errors are collected.
fn del(ctx: &Context, rec: &NetRecord) -> Vec<CallError> {
    del_first(ctx, rec, rec.plugins.len())
}

/// DEL of the first `ran` plugins of the chain, in reverse.
fn del_first(ctx: &Context, rec: &NetRecord, ran: usize) -> Vec<CallError> {
    let conf = rec.conf();
    let prev = if version::at_least_040(&conf.cni_version) {
        rec.result.as_ref()
    } else {
        None
    };
    // The runtime removes the pod's netns right after DEL: the hint lets our
    // plugins leave the pod's links to the kernel, which reaps them with the
    // namespace in the background instead of a synchronous 20-40 ms delete.
    let cni_args = del_args(&rec.args);
    (0..ran.min(conf.plugins.len()))
        .rev()
        .filter_map(|i| call(ctx, rec, &conf, i, "DEL", &cni_args, prev).err())
        .collect()
}

/// What a network's plugins get of the pod's `runtimeConfig` (each
/// plugin then gets the capabilities it declares): everything, but port
/// mappings never reach `default-restricted`.
fn runtime_config_for(conf: &NetConf, all: &Map<String, Value>) -> Map<String, Value> {
    let mut rc = all.clone();
    if conf.name == netd::DEFAULT_RESTRICTED {
        rc.remove(crate::cni::port_mapping::CAPABILITY);
    }
    rc
}

/// Attaches the networks in order. Before each ADD the intent is recorded
/// in `<pod>/net/<i>.json`, after it the result. On failure every network
/// touched so far (the failing one included) is detached again, in reverse.
pub fn setup(
    pod: &Pod,
    ctx: &Context,
    nets: &[netd::Attach],
) -> Result<Vec<NetRecord>, SetupError> {
    let mut records: Vec<NetRecord> = Vec::new();
    for (i, (conf, user_args)) in nets.iter().enumerate() {
        let mut rec = NetRecord {
            name: conf.name.clone(),
            ifname: format!("eth{i}"),
            args: cni_args(user_args),
            cni_version: conf.cni_version.clone(),
            plugins: conf.plugins.clone(),
            source: conf.source.clone(),
            is_list: conf.is_list,
            runtime_config: runtime_config_for(conf, &ctx.runtime_config),
            result: None,
        };
        let rel = format!("net/{i}.json");
        if let Err(source) = pod.write_json(&rel, &rec) {
            let cause = SetupCause::Record {
                network: conf.name.clone(),
                dir: pod.dir.display().to_string(),
                source,
            };
            return Err(rollback(ctx, pod, &records, None, cause));
        }
        match add(ctx, &rec) {
            Ok(result) => {
                rec.result = Some(result);
                if let Err(source) = pod.write_json(&rel, &rec) {
                    let cause = SetupCause::RecordResult {
                        network: conf.name.clone(),
                        source,
                    };
                    return Err(rollback(
                        ctx,
                        pod,
                        &records,
                        Some((&rec, rec.plugins.len())),
                        cause,
                    ));
                }
                records.push(rec);
            }
            Err(e) => return Err(rollback(ctx, pod, &records, Some((&rec, e.ran)), e.cause)),
        }
    }
    Ok(records)
}

/// Undoes a failed setup: the failing network's plugins that ran, then
/// every network attached before it, in reverse. A DEL the plugin refuses
/// because it rejects the config is not retried later (it cannot
/// succeed): the error says what may remain.
fn rollback(
    ctx: &Context,
    pod: &Pod,
    records: &[NetRecord],
    failing: Option<(&NetRecord, usize)>,
    cause: SetupCause,
) -> SetupError {
    let mut problems = failing
        .map(|(rec, ran)| del_first(ctx, rec, ran))
        .unwrap_or_default();
    problems.extend(teardown(ctx, records));
    let (given_up, rollback_failed): (Vec<_>, Vec<_>) =
        problems.into_iter().partition(CallError::config_rejected);
    if rollback_failed.is_empty() {
        // Everything is undone: clear the journal so nothing is undone twice.
        let _ = std::fs::remove_dir_all(pod.path("net"));
    }
    SetupError {
        cause: Box::new(cause),
        given_up,
        rollback_failed,
    }
}

/// Detaches networks in reverse order; keeps going and returns every error.
pub fn teardown(ctx: &Context, records: &[NetRecord]) -> Vec<CallError> {
    records.iter().rev().flat_map(|r| del(ctx, r)).collect()
}

/// Which plugin binaries speak the latest spec (and so GC), asked once per
/// binary with VERSION and remembered across networks.
pub type GcSupport = std::collections::HashMap<PathBuf, bool>;

/// Runs the CNI GC verb on every plugin of a network's chain, with the
/// attachments that are still valid (`cni.dev/valid-attachments`). Plugins
/// that predate GC (spec < 1.1.0) or are not installed are skipped.
pub fn gc(
    plugins: &Plugins,
    conf: &NetConf,
    valid: &[(String, String)],
    known: &mut GcSupport,
) -> Vec<CallError> {
    let mut conf = conf.clone();
    conf.cni_version = version::LATEST.to_string();
    let attachments: Vec<Value> = valid
        .iter()
        .map(|(id, ifname)| serde_json::json!({"containerID": id, "ifname": ifname}))
        .collect();
    let mut problems = Vec::new();
    for i in 0..conf.plugins.len() {
        let ty = conf.types()[i].to_string();
        let Ok(plugin) = exec::find_plugin(&ty, plugins.path) else {
            continue;
        };
        let speaks = *known
            .entry(plugin.clone())
            .or_insert_with(|| supports(plugins, &plugin, version::LATEST));
        if !speaks {
            continue;
        }
        let mut stdin = conf.plugin_stdin(i, None, &Map::new());
        stdin["cni.dev/valid-attachments"] = Value::Array(attachments.clone());
        let inv = Invocation::global("GC", plugins.path, plugins.timeout);
        let stdin = serde_json::to_vec(&stdin).unwrap_or_default();
        match exec::run(&plugin, &inv, &stdin) {
            Ok(_) => {}
            Err(exec::ExecError::Plugin(e)) if e.code == codes::INCOMPATIBLE_VERSION => {}
            Err(e) => problems.push(CallError {
                network: conf.name.clone(),
                plugin: ty,
                verb: Some("GC"),
                failure: Box::new(e.into()),
            }),
        }
    }
    problems
}

/// The spec versions a plugin says it supports (CNI VERSION, asked in
/// `ver`); `None` when it does not answer.
pub fn plugin_versions(plugins: &Plugins, plugin: &Path, ver: &str) -> Option<Vec<String>> {
    let inv = Invocation::global("VERSION", plugins.path, plugins.timeout);
    let stdin = serde_json::json!({ "cniVersion": ver }).to_string();
    let out = exec::run(plugin, &inv, stdin.as_bytes()).ok()?;
    let v: Value = serde_json::from_slice(&out).ok()?;
    Some(
        v.get("supportedVersions")?
            .as_array()?
            .iter()
            .filter_map(|s| s.as_str().map(String::from))
            .collect(),
    )
}

/// Whether a plugin supports a spec version (asked with VERSION).
fn supports(plugins: &Plugins, plugin: &Path, ver: &str) -> bool {
    plugin_versions(plugins, plugin, ver).is_some_and(|vs| vs.iter().any(|v| v == ver))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cni_args_key_once() {
        let p = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(cni_args(&[]), "");
        assert_eq!(
            cni_args(&[p("IP", "10.1.0.5")]),
            "IgnoreUnknown=1;IP=10.1.0.5"
        );
        assert_eq!(
            cni_args(&[p("IgnoreUnknown", "1"), p("IP", "10.1.0.5")]),
            "IgnoreUnknown=1;IP=10.1.0.5"
        );
        assert_eq!(del_args(""), "IgnoreUnknown=1;RKT_NETNS_TEARDOWN=1");
        assert_eq!(
            del_args("IgnoreUnknown=1;IP=10.1.0.5"),
            "IgnoreUnknown=1;IP=10.1.0.5;RKT_NETNS_TEARDOWN=1"
        );
        assert_eq!(
            del_args("IP=10.1.0.5;RKT_NETNS_TEARDOWN=0;IP=10.1.0.6"),
            "IgnoreUnknown=1;IP=10.1.0.5;RKT_NETNS_TEARDOWN=1"
        );
        for a in [
            del_args("IgnoreUnknown=1;IgnoreUnknown=1;X=y"),
            del_args("X=1;RKT_NETNS_TEARDOWN=1"),
        ] {
            args::check_unique(&a).unwrap_or_else(|e| panic!("{a}: {e}"));
        }
    }
}
