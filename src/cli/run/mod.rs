//! `rkt run`, as named steps: [`Plan::new`] checks every flag and loads
//! the image (nothing exists yet); [`create_pod`] makes the pod directory;
//! from there one [`Teardown`] guard owns the pod while [`attach_networks`],
//! the pod's `/etc` files, [`register_metadata`] and [`start_app`] run; the
//! guard releases everything however the run ends.

mod app;
mod plan;
mod teardown;
mod volumes;

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use nix::sys::signal::Signal;
use tracing::debug;

use super::Global;
use crate::error::{Error, FlagError};
use crate::lock::FileLock;
use crate::metadata;
use crate::netns::{self, Netns};
use crate::networking::{self, netd};
use crate::pod::manifest::NetRecord;
use crate::pod::{time, Pod};
use crate::stage1::{self, PodSpec};

use plan::Plan;
use teardown::Teardown;

/// The flags that choose a pod's networks and DNS: `rkt run`'s, and
/// `rkt run-prepared`'s (networks are attached then, as in rkt).
#[derive(Debug, Clone, Default, Args, serde::Serialize, serde::Deserialize)]
pub struct NetFlags {
    /// Networks to attach: names (comma lists or repeated), `name:K=V;K2=V2`
    /// for CNI_ARGS, `default`, `default-restricted`, `none`, `host`, `all`.
    #[arg(long = "net")]
    pub net: Vec<String>,
    /// DNS servers (IP[,IP], repeatable), `host` (the host's resolv.conf) or
    /// `none` (no resolv.conf written).
    #[arg(long)]
    pub dns: Vec<String>,
    /// DNS search domains.
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// DNS resolver options (e.g. ndots:2).
    #[arg(long = "dns-opt")]
    pub dns_opt: Vec<String>,
    /// DNS domain.
    #[arg(long = "dns-domain")]
    pub dns_domain: Option<String>,
}

impl NetFlags {
    fn dns_given(&self) -> bool {
        !self.dns.is_empty()
            || !self.dns_search.is_empty()
            || !self.dns_opt.is_empty()
            || self.dns_domain.is_some()
    }
}

#[derive(Debug, Clone, Args, serde::Serialize, serde::Deserialize)]
pub struct RunArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub network: NetFlags,
    /// Hand the terminal to the app.
    #[arg(long)]
    pub interactive: bool,
    /// The pod's hostname [default: rkt-<uuid>].
    #[arg(long)]
    pub hostname: Option<String>,
    /// Run this instead of the image's entrypoint.
    #[arg(long)]
    pub exec: Option<String>,
    /// /etc/hosts entries `IP=HOST[,HOST...]` (repeatable), or `host`.
    #[arg(long = "hosts-entry")]
    pub hosts_entry: Vec<String>,
    /// Capabilities the app keeps, replacing the default set.
    #[arg(long = "caps-retain")]
    pub caps_retain: Option<String>,
    /// Capabilities taken from the app's set.
    #[arg(long = "caps-remove")]
    pub caps_remove: Option<String>,
    /// Protections to turn off (comma list, repeatable): image, paths,
    /// seccomp, setuid, all-run, all. `rkt status` shows them.
    #[arg(long = "insecure-options", value_name = "LIST")]
    pub insecure_options: Vec<String>,
    /// A kernel setting of the pod's own namespaces, `KEY=VALUE` (repeatable):
    /// net.* (not with --net=host), IPC limits, fs.mqueue.*, kernel.domainname.
    #[arg(long = "sysctl", value_name = "KEY=VALUE")]
    pub sysctl: Vec<String>,
    /// Pod annotations `K=V` (repeatable), served by the metadata service.
    #[arg(long = "annotation", value_name = "K=V")]
    pub annotation: Vec<String>,
    /// An environment variable of the app, `NAME=VALUE` (repeatable);
    /// replaces the image's and the file's of that name.
    #[arg(long = "set-env", value_name = "NAME=VALUE")]
    pub set_env: Vec<String>,
    /// A file of `NAME=VALUE` lines (`#` comments) for the app's
    /// environment; replaces the image's variables of those names.
    #[arg(long = "set-env-file", value_name = "FILE")]
    pub set_env_file: Option<PathBuf>,
    /// The app's working directory in the pod [default: the image's].
    #[arg(long = "working-dir", value_name = "DIR")]
    pub working_dir: Option<String>,
    /// The app's user: a uid or a name from the image's /etc/passwd
    /// [default: root].
    #[arg(long = "user", value_name = "UID|NAME")]
    pub user: Option<String>,
    /// The app's group: a gid or a name from the image's /etc/group
    /// [default: the user's group in /etc/passwd, else root].
    #[arg(long = "group", value_name = "GID|NAME")]
    pub group: Option<String>,
    /// A volume, `NAME,kind=host,source=/PATH[,readOnly=true][,recursive=true]`
    /// or `NAME,kind=empty[,mode=0755][,uid=0][,gid=0][,readOnly=true]`
    /// (repeatable).
    #[arg(long = "volume", value_name = "NAME,kind=...")]
    pub volume: Vec<String>,
    /// Where a volume appears in the pod, `volume=NAME,target=/PATH`
    /// (repeatable).
    #[arg(long = "mount", value_name = "volume=NAME,target=PATH")]
    pub mount: Vec<String>,
    /// The pod's memory limit (e.g. 256M, 1G); the kernel kills the pod's
    /// processes beyond it.
    #[arg(long = "memory", value_name = "SIZE")]
    pub memory: Option<String>,
    /// The pod's CPU limit in thousandths of a CPU (500m) or CPUs (2).
    #[arg(long = "cpu", value_name = "MILLICORES")]
    pub cpu: Option<String>,
    /// Mount the pod's root filesystem read-only.
    #[arg(long = "readonly-rootfs")]
    pub readonly_rootfs: bool,
    /// Write the pod's UUID to FILE once the pod exists.
    #[arg(long = "uuid-file-save", value_name = "FILE")]
    pub uuid_file_save: Option<PathBuf>,
    /// Forward a host port to a port the image declares,
    /// `NAME:[HOSTIP:]HOSTPORT` (repeatable; an OCI image's `8080/tcp` is
    /// named `8080-tcp`).
    #[arg(long = "port", value_name = "NAME:[HOSTIP:]HOSTPORT")]
    pub port: Vec<String>,
    /// Forward a host port to a pod port,
    /// `[HOSTIP:]HOSTPORT:PODPORT[/tcp|/udp|/sctp]` (repeatable).
    #[arg(
        long = "publish",
        short = 'p',
        value_name = "[HOSTIP:]HOSTPORT:PODPORT[/PROTO]"
    )]
    pub publish: Vec<String>,
    /// Register the pod with the metadata service when it runs.
    #[arg(long = "mds-register", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub mds_register: bool,
    /// The image: an OCI layout directory, an OCI or docker-save archive, or a root filesystem directory.
    pub image: String,
    /// Arguments for the app.
    #[arg(last = true)]
    pub args: Vec<String>,
}

struct Phase(Instant, &'static str);
impl Drop for Phase {
    fn drop(&mut self) {
        debug!(
            phase = self.1,
            elapsed_ms = self.0.elapsed().as_secs_f64() * 1e3,
            "phase"
        );
    }
}
fn phase(name: &'static str) -> Phase {
    Phase(Instant::now(), name)
}

pub fn run(g: &Global, a: RunArgs) -> Result<i32, Error> {
    let total = phase("total");
    let mut plan = Plan::new(g, &a, None)?;
    let (pod, _lock) = create_pod(g, &plan)?;
    plan.image.release_store();
    let code = run_pod(g, &plan, pod)?;
    drop(total);
    log_peak_memory();
    Ok(code)
}

/// From a pod directory with our lock on it to the app's exit code, under
/// the one teardown guard.
fn run_pod(g: &Global, plan: &Plan, pod: Pod) -> Result<i32, Error> {
    let mut pod = Teardown::new(g, pod);
    let result = launch(g, plan, &mut pod);
    pod.finish(result)
}

/// `rkt prepare`: every check `rkt run` makes and the pod directory (in
/// `prepared/`, with the flags kept for `rkt run-prepared`); prints the
/// UUID. No network, namespace or process exists until run-prepared.
pub fn prepare(g: &Global, a: RunArgs) -> Result<i32, Error> {
    let mut plan = Plan::new(g, &a, None)?;
    let pod = g
        .store()
        .prepare(&plan.uuid, &plan.manifest)
        .map_err(Error::state("create the pod directory in", &g.dir))?;
    plan.image.release_store();
    let saved = pod.write_json("run-args.json", &a);
    let uuid_file = match (&saved, &plan.uuid_file_save) {
        (Ok(()), Some(path)) => {
            std::fs::write(path, format!("{}\n", plan.uuid)).map_err(|source| {
                FlagError::UuidFileSave {
                    path: path.clone(),
                    source,
                }
                .into()
            })
        }
        _ => Ok(()),
    };
    if let Err(e) = saved
        .map_err(Error::state("write", pod.path("run-args.json")))
        .and(uuid_file)
    {
        let _ = std::fs::remove_dir_all(&pod.dir);
        return Err(e);
    }
    println!("{}", plan.uuid);
    Ok(0)
}

#[derive(Debug, Args)]
pub struct RunPreparedArgs {
    /// Networks and DNS (as `rkt run`'s) [default: what prepare got].
    #[command(flatten)]
    pub network: NetFlags,
    /// Hand the terminal to the app.
    #[arg(long)]
    pub interactive: bool,
    /// Register the pod with the metadata service [default: what prepare got].
    #[arg(long = "mds-register", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub mds_register: Option<bool>,
    pub uuid: Option<String>,
    #[command(flatten)]
    pub pod: super::PodRef,
}

/// `rkt run-prepared`: runs a prepared pod with the flags prepare kept,
/// its networks (and DNS) given now as rkt does, checked again.
pub fn run_prepared(g: &Global, r: RunPreparedArgs) -> Result<i32, Error> {
    let uuid = r.pod.uuid(r.uuid.clone())?;
    let store = g.store();
    let pod = store.find(&uuid)?;
    let state = pod.state();
    if state != crate::pod::PodState::Prepared {
        return Err(FlagError::NotPrepared {
            uuid: pod.uuid,
            state: state.as_str(),
        }
        .into());
    }
    let mut a: RunArgs = pod
        .read_json("run-args.json")
        .map_err(Error::state("read", pod.path("run-args.json")))?;
    if !r.network.net.is_empty() {
        a.network.net = r.network.net.clone();
    }
    if r.network.dns_given() {
        let net = std::mem::take(&mut a.network.net);
        a.network = NetFlags { net, ..r.network };
    }
    a.interactive |= r.interactive;
    if let Some(m) = r.mds_register {
        a.mds_register = m;
    }
    a.uuid_file_save = None;
    let mut plan = Plan::new(g, &a, Some(pod.uuid.clone()))?;
    let (pod, _lock) = store
        .start_prepared(&pod)
        .map_err(Error::state("start the prepared pod at", &pod.dir))?
        .ok_or_else(|| FlagError::PreparedBusy(pod.uuid.clone()))?;
    pod.write_json("pod.json", &plan.manifest)
        .map_err(Error::state("write", pod.path("pod.json")))?;
    plan.image.release_store();
    run_pod(g, &plan, pod)
}

/// The pod directory appears with its manifest and our lock on it; the
/// UUID goes to `--uuid-file-save` (a pod whose UUID cannot be saved is
/// not started).
fn create_pod(g: &Global, plan: &Plan) -> Result<(Pod, FileLock), Error> {
    let _p = phase("pod dir");
    let (pod, lock) = g
        .store()
        .create(&plan.uuid, &plan.manifest)
        .map_err(Error::state("create the pod directory in", &g.dir))?;
    if let Some(path) = &plan.uuid_file_save {
        if let Err(source) = std::fs::write(path, format!("{}\n", plan.uuid)) {
            let _ = std::fs::remove_dir_all(&pod.dir);
            return Err(FlagError::UuidFileSave {
                path: path.clone(),
                source,
            }
            .into());
        }
    }
    Ok((pod, lock))
}

/// Everything between the pod directory and the app's exit code.
fn launch(g: &Global, plan: &Plan, pod: &mut Teardown) -> Result<i32, Error> {
    let (netns, records) = attach_networks(g, plan, pod.pod())?;
    {
        let _p = phase("dns files");
        let m = &plan.manifest;
        networking::etc::write(pod.pod(), &m.hostname, &records, &plan.dns, &plan.hosts)?;
    }
    let mut env = plan.manifest.app.env.clone();
    if let Some((token, url)) = register_metadata(plan, &records) {
        pod.unregister_at_exit(token);
        env.push(format!("AC_METADATA_URL={url}"));
    }
    start_app(plan, pod.pod(), netns, env)
}

/// The pod's network namespace and its networks, attached in order. A
/// concurrent `rkt gc` waits until every ADD result is recorded, so it
/// never releases a lease of this pod.
fn attach_networks(
    g: &Global,
    plan: &Plan,
    pod: &Pod,
) -> Result<(Option<PathBuf>, Vec<NetRecord>), Error> {
    if matches!(plan.selection, netd::Selection::Host) {
        return Ok((None, Vec::new()));
    }
    let adding =
        networking::live::Adding::begin().map_err(Error::state("take", networking::live::LOCK))?;
    networking::live::register(&plan.uuid, &g.dir)
        .map_err(Error::state("register the pod in", networking::live::DIR))?;
    let netns = {
        let _p = phase("netns");
        let p = Netns::create(&netns::pod_name(&plan.uuid))?;
        pod.write_file("netns", p.as_os_str().as_encoded_bytes())
            .map_err(Error::state("write", pod.path("netns")))?;
        p
    };
    let records = if plan.nets.is_empty() {
        Vec::new()
    } else {
        let _p = phase("networks");
        let plugin_path = g.plugin_path();
        let ctx = networking::Context {
            plugins: networking::Plugins {
                path: &plugin_path,
                timeout: plan.plugin_timeout,
            },
            container_id: &plan.uuid,
            netns: &netns,
            runtime_config: plan.runtime_config(),
        };
        networking::setup(pod, &ctx, &plan.nets)?
    };
    drop(adding);
    Ok((Some(netns), records))
}

/// Registers the pod with the metadata service (when asked and running):
/// the token to unregister at exit and the URL the app is given.
fn register_metadata(plan: &Plan, records: &[NetRecord]) -> Option<(String, String)> {
    if !plan.mds_register {
        return None;
    }
    let _p = phase("metadata registration");
    metadata::pod::register(&plan.manifest, records)
}

/// Starts the pod's process, forwards our signals to it and waits for the
/// app's exit code.
fn start_app(
    plan: &Plan,
    pod: &Pod,
    netns: Option<PathBuf>,
    env: Vec<String>,
) -> Result<i32, Error> {
    let m = &plan.manifest;
    let spec = PodSpec {
        rootfs: pod.path("rootfs"),
        upper: pod.path("upper"),
        work: pod.path("work"),
        lowers: plan.image.lowers.clone(),
        hostname: m.hostname.clone(),
        netns,
        exec: m.app.exec.clone(),
        env,
        working_dir: m.app.working_dir.clone(),
        interactive: plan.interactive,
        security: plan.security.clone(),
        sysctls: plan.sysctls.clone(),
        mask_paths: !plan.insecure.paths,
        identity: plan.identity.clone(),
        readonly_rootfs: plan.readonly_rootfs,
        mounts: volumes::prepare(pod, &plan.volumes)?,
        cgroup_procs: Vec::new(),
    };
    for dir in [&spec.rootfs, &spec.work] {
        std::fs::create_dir_all(dir).map_err(Error::state("create", dir))?;
    }
    let in_pod = |source| Error::Pod {
        pod: plan.uuid.clone(),
        source,
    };
    let mut spec = spec;
    let cgroups = if plan.limits.is_empty() {
        None
    } else {
        let c = stage1::cgroup::create(&plan.uuid, &plan.limits).map_err(|e| in_pod(e.into()))?;
        // Listed before anything joins them: teardown and gc remove them.
        pod.write_file("cgroups", c.list().as_bytes())
            .map_err(Error::state("write", pod.path("cgroups")))?;
        spec.cgroup_procs = c.procs();
        Some(c)
    };
    let start = phase("app start");
    let started = stage1::start(&spec).map_err(in_pod)?;
    stage1::forward_signals(
        started.pid,
        &[Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP],
    );
    let record = |rel: &str, data: String| {
        pod.write_file(rel, data.as_bytes())
            .map_err(Error::state("write", pod.path(rel)))
    };
    record("pid", started.pid.to_string())?;
    record("started", time::now().to_string())?;
    let exec_result = started.wait_exec();
    drop(start);
    let code = started.wait();
    exec_result.map_err(in_pod)?;
    if cgroups.as_ref().is_some_and(|c| c.oom_killed()) {
        record("oom-killed", String::new())?;
        eprintln!(
            "rkt: pod {}: the kernel killed the app: out of memory (--memory={})",
            plan.uuid,
            plan.limits.memory.unwrap_or(0)
        );
    }
    Ok(code)
}

/// `--debug`: the runtime's peak memory.
fn log_peak_memory() {
    if let Ok(usage) = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF) {
        debug!(maxrss_kb = usage.max_rss(), "rkt peak memory");
    }
}
