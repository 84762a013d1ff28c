//! `rkt run`: image, pod directory, network namespace, networks, DNS files,
//! the pod process, and teardown when the app exits.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Instant;

use anyhow::{anyhow, bail, Context as _, Result};
use clap::Args;
use nix::sys::signal::{self, SigHandler, Signal};
use tracing::debug;

use super::Global;
use crate::image;
use crate::metadata;
use crate::netns::{self, Netns};
use crate::networking::{self, dns, netd};
use crate::pod::manifest::{AppManifest, ImageRef, Manifest, NetRecord, SecurityRecord};
use crate::pod::{time, Pod};
use crate::stage1::security::{AppSecurity, Insecure};
use crate::stage1::sysctl::Sysctl;
use crate::stage1::{self, caps, PodSpec};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Networks to attach: names (comma lists or repeated), `name:K=V;K2=V2`
    /// for CNI_ARGS, `default`, `default-restricted`, `none`, `host`, `all`.
    #[arg(long = "net")]
    pub net: Vec<String>,
    /// Hand the terminal to the app.
    #[arg(long)]
    pub interactive: bool,
    /// The pod's hostname [default: rkt-<uuid>].
    #[arg(long)]
    pub hostname: Option<String>,
    /// Run this instead of the image's entrypoint.
    #[arg(long)]
    pub exec: Option<String>,
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

static POD_PID: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward_to_pod(sig: libc::c_int) {
    let pid = POD_PID.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe; the pid is our own child.
        unsafe { libc::kill(pid, sig) };
    }
}

/// A name the kernel takes as a hostname (64 bytes at most) and that is a
/// host name as `--hosts-entry` accepts it (the same check: `_` included).
fn valid_hostname(h: &str) -> bool {
    h.len() <= 64 && !h.ends_with('.') && crate::cni::result::valid_domain(h)
}

/// The app's argv reaches execve as C strings: an argument with a NUL byte
/// (possible only from an image's config) cannot be passed as it is.
fn check_argv(argv: &[String], image: &str) -> Result<()> {
    if let Some((i, a)) = argv.iter().enumerate().find(|(_, a)| a.contains('\0')) {
        bail!(
            "image {image}: argument {i} of the app ({:?}) contains a NUL byte, which no program can receive; fix the image's entrypoint/cmd or pass --exec",
            a
        );
    }
    Ok(())
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

/// The app's argv: `--exec` plus args, or the image's entrypoint + cmd
/// (args replace cmd).
fn app_exec(a: &RunArgs, cfg: &image::ImageConfig) -> Result<Vec<String>> {
    let argv: Vec<String> = match &a.exec {
        Some(e) => std::iter::once(e.clone())
            .chain(a.args.iter().cloned())
            .collect(),
        None => {
            let tail = if a.args.is_empty() {
                cfg.cmd.clone()
            } else {
                a.args.clone()
            };
            cfg.entrypoint.iter().cloned().chain(tail).collect()
        }
    };
    if argv.is_empty() {
        bail!(
            "image {}: no entrypoint or cmd to run; pass --exec=/path/to/program",
            a.image
        );
    }
    check_argv(&argv, &a.image)?;
    Ok(argv)
}

pub fn run(g: &Global, a: RunArgs) -> Result<i32> {
    let total = phase("total");
    let timeout = g.plugin_timeout()?;
    let retain = a
        .caps_retain
        .as_deref()
        .map(|v| caps::parse_list("--caps-retain", v))
        .transpose()
        .map_err(|e| anyhow!(e))?;
    let remove = caps::parse_list("--caps-remove", a.caps_remove.as_deref().unwrap_or(""))
        .map_err(|e| anyhow!(e))?;
    let app_caps = caps::effective_set(retain.as_deref(), &remove);
    let insecure = Insecure::parse(&a.insecure_options).map_err(|e| anyhow!(e))?;
    if let Some(h) = &a.hostname {
        if !valid_hostname(h) {
            bail!(
                "--hostname={h}: not a valid hostname (letters, digits, '-', '_', dot-separated labels, 64 bytes at most)"
            );
        }
    }
    let dns_flags =
        dns::DnsFlags::parse(&a.dns, &a.dns_search, &a.dns_opt, a.dns_domain.as_deref())?;
    let hosts_flags = dns::HostsFlags::parse(&a.hosts_entry)?;
    let annotations = metadata::pod::parse_annotations(&a.annotation)?;
    let selection = netd::parse_selection(&a.net).map_err(|e| anyhow!(e))?;
    let sysctls = a
        .sysctl
        .iter()
        .map(|s| Sysctl::parse(s, !matches!(selection, netd::Selection::Host)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!(e))?;
    let app_security = {
        let _p = phase("seccomp filter");
        AppSecurity::new(app_caps.clone(), &insecure).map_err(|e| anyhow!(e))?
    };
    let nets = match &selection {
        netd::Selection::Networks(sel) => {
            let _p = phase("load networks");
            let all = netd::load(&g.local_config).map_err(|e| anyhow!(e))?;
            let nets = netd::resolve(sel, &all).map_err(|e| anyhow!(e))?;
            networking::preflight::check(&nets, &all)?;
            nets
        }
        _ => Vec::new(),
    };
    let img = {
        let _p = phase("image");
        let opts = image::LoadOptions {
            max_size: g.max_image_size()?,
            verify_digests: !insecure.image,
        };
        image::load(&a.image, &g.dir.join("cas"), &opts)?
    };
    let exec = app_exec(&a, &img.config)?;

    let uuid = uuid::Uuid::new_v4().to_string();
    let store = g.store();
    let hostname = a.hostname.clone().unwrap_or_else(|| netns::pod_name(&uuid));
    let mut env = img.config.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    let manifest = Manifest {
        uuid: uuid.clone(),
        created: time::now(),
        hostname: hostname.clone(),
        image: ImageRef {
            name: img.name.clone(),
            id: img.id.clone(),
        },
        app: AppManifest {
            name: app_name(&img.name),
            exec: exec.clone(),
            env: env.clone(),
            working_dir: img.config.working_dir.clone(),
        },
        net_mode: match &selection {
            netd::Selection::Host => "host".into(),
            netd::Selection::None => "none".into(),
            netd::Selection::Networks(_) => nets
                .iter()
                .map(|(c, _)| c.name.clone())
                .collect::<Vec<_>>()
                .join(","),
        },
        annotations,
        security: Some(SecurityRecord {
            caps: app_caps.iter().map(|c| c.to_string()).collect(),
            insecure_options: insecure.names(),
            sysctls: sysctls
                .iter()
                .map(|s| format!("{}={}", s.key, s.value))
                .collect(),
        }),
    };
    // The pod directory appears with its manifest and our lock on it.
    let (pod, _lock) = {
        let _p = phase("pod dir");
        store
            .create(&uuid, &manifest)
            .with_context(|| format!("cannot create pod directory in {}", g.dir.display()))?
    };
    let mut mds_token: Option<String> = None;
    let result = (|| -> Result<i32> {
        // Held until every ADD result is recorded: a concurrent `rkt gc`
        // waits, so it never releases a lease of this pod.
        let adding = match selection {
            netd::Selection::Host => None,
            _ => {
                let adding =
                    networking::live::Adding::begin().context("cannot take /run/rkt/live.lock")?;
                networking::live::register(&uuid, &g.dir)
                    .context("cannot register the pod in /run/rkt/live")?;
                Some(adding)
            }
        };
        let netns_path = match selection {
            netd::Selection::Host => None,
            _ => {
                let _p = phase("netns");
                let p = Netns::create(&netns::pod_name(&uuid)).with_context(|| {
                    format!("cannot create the network namespace of pod {uuid}")
                })?;
                pod.write_file("netns", p.as_os_str().as_encoded_bytes())?;
                Some(p)
            }
        };
        let records = match &netns_path {
            Some(ns) if !nets.is_empty() => {
                let _p = phase("networks");
                let plugin_path = g.plugin_path();
                let ctx = networking::Context {
                    plugins: networking::Plugins {
                        path: &plugin_path,
                        timeout,
                    },
                    container_id: &uuid,
                    netns: ns,
                    runtime_config: dns_flags
                        .runtime_config()
                        .map(|d| [("dns".to_string(), d)].into_iter().collect())
                        .unwrap_or_default(),
                };
                networking::setup(&pod, &ctx, &nets).map_err(|e| anyhow!(e))?
            }
            _ => Vec::new(),
        };
        drop(adding);
        {
            let _p = phase("dns files");
            write_etc(&pod, &hostname, &records, &dns_flags, &hosts_flags)?;
        }
        let mut env = env.clone();
        if a.mds_register {
            let _p = phase("metadata registration");
            if let Some((token, url)) = metadata::pod::register(&manifest, &records) {
                mds_token = Some(token);
                env.push(format!("AC_METADATA_URL={url}"));
            }
        }
        let spec = PodSpec {
            rootfs: pod.path("rootfs"),
            upper: pod.path("upper"),
            work: pod.path("work"),
            lowers: img.lowers.clone(),
            hostname: hostname.clone(),
            netns: netns_path,
            exec: exec.clone(),
            env: env.clone(),
            working_dir: img.config.working_dir.clone(),
            interactive: a.interactive,
            security: app_security.clone(),
            sysctls: sysctls.clone(),
            mask_paths: !insecure.paths,
        };
        std::fs::create_dir_all(&spec.rootfs)?;
        std::fs::create_dir_all(&spec.work)?;
        let start = phase("app start");
        let started = stage1::start(&spec).map_err(|e| anyhow!("pod {uuid}: {e}"))?;
        POD_PID.store(started.pid.as_raw(), Ordering::Relaxed);
        for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            // SAFETY: the handler only calls kill(2) on our child.
            let _ = unsafe { signal::signal(s, SigHandler::Handler(forward_to_pod)) };
        }
        pod.write_file("pid", started.pid.to_string().as_bytes())?;
        pod.write_file("started", time::now().to_string().as_bytes())?;
        let exec_result = started.wait_exec();
        drop(start);
        let code = started.wait();
        exec_result.map_err(|e| anyhow!("pod {uuid}: {e}"))?;
        Ok(code)
    })();

    let _t = phase("teardown");
    if let Some(token) = &mds_token {
        metadata::pod::unregister(token);
    }
    let mut pod = pod;
    if let Ok(code) = &result {
        let _ = pod.write_file("exit", code.to_string().as_bytes());
    }
    let released = g.release_network(&pod, false);
    let problems = released.problems;
    let _ = std::fs::remove_dir_all(pod.path("work"));
    let _ = std::fs::remove_dir(pod.path("rootfs"));
    for w in &released.given_up {
        eprintln!("rkt: pod {uuid}: teardown: warning: {w}");
    }
    for p in &problems {
        eprintln!("rkt: pod {uuid}: teardown: {p}");
    }
    match result {
        Ok(code) => {
            pod.move_to_exited()
                .with_context(|| format!("cannot move pod {uuid} to exited-garbage"))?;
            drop(_t);
            drop(total);
            // SAFETY: getrusage with a valid out-pointer.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
            debug!(maxrss_kb = usage.ru_maxrss, "rkt peak memory");
            Ok(code)
        }
        Err(e) => {
            // A pod that never started is not kept.
            if problems.is_empty() {
                let _ = std::fs::remove_dir_all(&pod.dir);
            } else {
                let _ = pod.move_to_exited();
            }
            Err(e)
        }
    }
}

fn app_name(image_name: &str) -> String {
    let base = image_name.rsplit('/').next().unwrap_or(image_name);
    let base = base.split([':', '@']).next().unwrap_or(base);
    let clean: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    if clean.is_empty() {
        "app".into()
    } else {
        clean
    }
}

/// Writes /etc/resolv.conf, /etc/hosts and /etc/hostname into the pod's
/// upper layer, so they appear in its root without touching the image, and
/// records the pod's DNS in `<pod>/dns.json` for `status` and `list`.
fn write_etc(
    pod: &Pod,
    hostname: &str,
    records: &[NetRecord],
    flags: &dns::DnsFlags,
    hosts_flags: &dns::HostsFlags,
) -> Result<()> {
    let etc: PathBuf = pod.path("upper/etc");
    std::fs::create_dir_all(&etc)?;
    let results: Vec<_> = records
        .iter()
        .map(|r| (r.name.clone(), r.parsed_result().unwrap_or_default()))
        .collect();
    let host_resolv = if flags.host {
        std::fs::read_to_string("/etc/resolv.conf")
            .context("--dns=host: cannot read the host's /etc/resolv.conf")?
    } else {
        String::new()
    };
    let nets: Vec<_> = results
        .iter()
        .map(|(n, r)| {
            let (dns, dropped) = r.dns.checked();
            if !dropped.is_empty() {
                tracing::warn!(
                    "pod {}: network \"{n}\" returned DNS values that cannot go in resolv.conf, ignored: {dropped:?}",
                    pod.uuid
                );
            }
            (n.clone(), dns)
        })
        .collect();
    let (pod_dns, notes) = dns::decide(flags, &nets, &host_resolv);
    for n in notes {
        debug!("{n}");
    }
    match pod_dns.source.as_str() {
        "host" => std::fs::write(etc.join("resolv.conf"), &host_resolv)?,
        "none" | "image" => {}
        source => std::fs::write(
            etc.join("resolv.conf"),
            dns::resolv_conf(&pod_dns.dns, source),
        )?,
    }
    pod.write_json("dns.json", &pod_dns)?;
    if hosts_flags.host {
        let host = std::fs::read("/etc/hosts")
            .context("--hosts-entry=host: cannot read the host's /etc/hosts")?;
        std::fs::write(etc.join("hosts"), host)?;
    } else {
        let first_ip = results
            .iter()
            .find_map(|(_, r)| r.ips.first())
            .map(|i| i.address.addr().to_string());
        std::fs::write(
            etc.join("hosts"),
            dns::hosts(hostname, first_ip.as_deref(), &hosts_flags.entries),
        )?;
    }
    std::fs::write(etc.join("hostname"), format!("{hostname}\n"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 13: Linux and rkt take `_` in a hostname; `--hosts-entry` did.
    #[test]
    fn hostnames_with_underscores_are_valid() {
        for ok in ["a_b", "web_1.example", "rkt-0f3c", "x"] {
            assert!(valid_hostname(ok), "{ok}");
        }
        let long = "a".repeat(65);
        for bad in ["", "a b", "a\nb", "-a", "a..b", "a.", long.as_str()] {
            assert!(!valid_hostname(bad), "{bad:?}");
        }
    }

    /// Issue 13: an argument with a NUL byte was silently dropped.
    #[test]
    fn arguments_with_nul_are_refused() {
        let argv = vec!["/bin/echo".to_string(), "a\0b".to_string()];
        let e = check_argv(&argv, "img").unwrap_err().to_string();
        assert!(e.contains("argument 1") && e.contains("NUL"), "{e}");
        assert!(check_argv(&["/bin/echo".into(), "ab".into()], "img").is_ok());
    }
}
