//! The first step of `rkt run`: every flag checked, the networks resolved
//! and preflighted, the image loaded, and the pod's manifest written out
//! in memory. Nothing on the host exists yet: bad input ends here with one
//! line naming the flag.

use std::time::Duration;

use ::caps::Capability;

use std::path::PathBuf;

use super::{app, phase, volumes, RunArgs};
use crate::cli::Global;
use crate::cni::port_mapping::{self, PortMapping};
use crate::error::{Error, FlagError};
use crate::image::{self, Image};
use crate::metadata;
use crate::netns;
use crate::networking::{self, dns, netd, ports};
use crate::pod::manifest::{AppManifest, ImageRef, Manifest, SecurityRecord};
use crate::pod::time;
use crate::stage1::caps;
use crate::stage1::cgroup::Limits;
use crate::stage1::security::{AppSecurity, Identity, Insecure};
use crate::stage1::sysctl::Sysctl;

/// Everything `rkt run` will do, checked.
pub struct Plan {
    pub uuid: String,
    pub manifest: Manifest,
    pub selection: netd::Selection,
    pub nets: Vec<netd::Attach>,
    pub image: Image,
    pub plugin_timeout: Duration,
    pub dns: dns::DnsFlags,
    pub hosts: dns::HostsFlags,
    pub security: AppSecurity,
    pub insecure: Insecure,
    pub sysctls: Vec<Sysctl>,
    pub interactive: bool,
    pub mds_register: bool,
    pub uuid_file_save: Option<PathBuf>,
    /// `--user`/`--group`, resolved in the image.
    pub identity: Option<Identity>,
    /// `--volume`/`--mount` and the image's mount points.
    pub volumes: Vec<volumes::Planned>,
    /// `--memory`, `--cpu`.
    pub limits: Limits,
    pub readonly_rootfs: bool,
}

impl Plan {
    /// Checks the flags and loads what the pod needs (see the module
    /// comment), for a new pod or the prepared pod `uuid`.
    pub fn new(g: &Global, a: &RunArgs, uuid: Option<String>) -> Result<Plan, Error> {
        let plugin_timeout = g.plugin_timeout()?;
        let retain = a
            .caps_retain
            .as_deref()
            .map(|v| caps::parse_list("--caps-retain", v))
            .transpose()?;
        let remove = caps::parse_list("--caps-remove", a.caps_remove.as_deref().unwrap_or(""))?;
        let app_caps = caps::effective_set(retain.as_deref(), &remove);
        let insecure = Insecure::parse(&a.insecure_options)?;
        let limits = Limits {
            memory: a.memory.as_deref().map(Limits::parse_memory).transpose()?,
            cpu_millis: a.cpu.as_deref().map(Limits::parse_cpu).transpose()?,
        };
        if let Some(h) = &a.hostname {
            if !valid_hostname(h) {
                return Err(FlagError::Hostname(h.clone()).into());
            }
        }
        let dns = dns::DnsFlags::parse(
            &a.network.dns,
            &a.network.dns_search,
            &a.network.dns_opt,
            a.network.dns_domain.as_deref(),
        )?;
        let hosts = dns::HostsFlags::parse(&a.hosts_entry)?;
        let annotations = metadata::pod::parse_annotations(&a.annotation)?;
        let selection = netd::parse_selection(&a.network.net)?;
        let own_netns = !matches!(selection, netd::Selection::Host);
        let sysctls = a
            .sysctl
            .iter()
            .map(|s| Sysctl::parse(s, own_netns))
            .collect::<Result<Vec<_>, _>>()?;
        let security = {
            let _p = phase("seccomp filter");
            AppSecurity::new(app_caps.clone(), &insecure)?
        };
        let mut nets = match &selection {
            netd::Selection::Networks(sel) => {
                let _p = phase("load networks");
                let all = netd::load(&g.local_config)?;
                let nets = netd::resolve(sel, &all)?;
                networking::preflight::check(&nets, &all)?;
                nets
            }
            _ => Vec::new(),
        };
        let image = {
            let _p = phase("image");
            let opts = image::LoadOptions {
                max_size: g.max_image_size()?,
                verify_digests: !insecure.image,
            };
            image::load(&a.image, &g.dir.join("cas"), &opts)?
        };
        let forwarded = plan_ports(g, a, &image, &selection, &mut nets)?;
        let exec = app_exec(a, &image.config)?;
        let env = app::environment(&image.config.env, &a.set_env, a.set_env_file.as_deref())?;
        let working_dir = app::working_dir(a.working_dir.as_deref(), &image.config.working_dir)?;
        let identity = app::identity(a.user.as_deref(), a.group.as_deref(), &image.lowers)?;
        let volumes = volumes::plan(&a.volume, &a.mount, &image.config.volumes)?;
        let uuid = uuid.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let manifest = Manifest {
            uuid: uuid.clone(),
            created: time::now(),
            hostname: a.hostname.clone().unwrap_or_else(|| netns::pod_name(&uuid)),
            image: ImageRef {
                name: image.name.clone(),
                id: image.id.clone(),
            },
            app: AppManifest {
                name: app_name(&image.name),
                exec,
                env,
                working_dir,
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
            security: Some(record(&app_caps, &insecure, &sysctls)),
            ports: forwarded,
            limits: limits.describe(),
        };
        Ok(Plan {
            uuid,
            manifest,
            selection,
            nets,
            image,
            plugin_timeout,
            dns,
            hosts,
            security,
            insecure,
            sysctls,
            interactive: a.interactive,
            mds_register: a.mds_register,
            uuid_file_save: a.uuid_file_save.clone(),
            identity,
            volumes,
            limits,
            readonly_rootfs: a.readonly_rootfs,
        })
    }

    /// The `runtimeConfig` the networks' plugins get (each plugin the
    /// capabilities it declares): `dns` from the DNS flags,
    /// `portMappings` from `--port` and `--publish`.
    pub fn runtime_config(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut rc = serde_json::Map::new();
        if let Some(d) = self.dns.runtime_config() {
            rc.insert("dns".into(), d);
        }
        if !self.manifest.ports.is_empty() {
            rc.insert(
                port_mapping::CAPABILITY.into(),
                ports::runtime_config(&self.manifest.ports),
            );
        }
        rc
    }
}

/// `--port` and `--publish`, checked against the image's declared ports,
/// the host's addresses, the pod's networks and the ports running pods
/// forward (read only when the pod forwards any). Without them, the
/// built-in networks leave out their `portmap`.
fn plan_ports(
    g: &Global,
    a: &RunArgs,
    image: &Image,
    selection: &netd::Selection,
    nets: &mut [netd::Attach],
) -> Result<Vec<PortMapping>, Error> {
    if a.port.is_empty() && a.publish.is_empty() {
        ports::without_idle_portmap(nets);
        return Ok(Vec::new());
    }
    let declared = ports::declared(&image.config.exposed_ports);
    let local: Vec<std::net::IpAddr> = nix::ifaddrs::getifaddrs()
        .map(|addrs| {
            addrs
                .filter_map(|i| i.address)
                .filter_map(|s| {
                    s.as_sockaddr_in()
                        .map(|v4| std::net::IpAddr::V4(v4.ip()))
                        .or_else(|| s.as_sockaddr_in6().map(|v6| std::net::IpAddr::V6(v6.ip())))
                })
                .collect()
        })
        .unwrap_or_default();
    let running = g
        .store()
        .all()
        .into_iter()
        .filter(|p| p.state() == crate::pod::PodState::Running)
        .filter_map(|p| p.manifest().ok().map(|m| (p.uuid.clone(), m.ports)));
    Ok(ports::plan(
        &a.port,
        &a.publish,
        &declared,
        selection,
        nets,
        |ip| local.contains(&ip),
        running,
    )?)
}

/// What the pod records of its protections, for `rkt status` and `enter`.
fn record(caps: &[Capability], insecure: &Insecure, sysctls: &[Sysctl]) -> SecurityRecord {
    SecurityRecord {
        caps: caps.iter().map(|c| c.to_string()).collect(),
        insecure_options: insecure.names(),
        sysctls: sysctls
            .iter()
            .map(|s| format!("{}={}", s.key, s.value))
            .collect(),
    }
}

/// A name the kernel takes as a hostname (64 bytes at most) and that is a
/// host name as `--hosts-entry` accepts it (the same check: `_` included).
fn valid_hostname(h: &str) -> bool {
    h.len() <= 64 && !h.ends_with('.') && crate::cni::result::valid_domain(h)
}

/// The app's argv reaches execve as C strings: an argument with a NUL byte
/// (possible only from an image's config) cannot be passed as it is.
fn check_argv(argv: &[String], image: &str) -> Result<(), FlagError> {
    match argv.iter().enumerate().find(|(_, a)| a.contains('\0')) {
        Some((index, arg)) => Err(FlagError::NulArgument {
            image: image.to_string(),
            index,
            arg: arg.clone(),
        }),
        None => Ok(()),
    }
}

/// The app's argv: `--exec` plus args, or the image's entrypoint + cmd
/// (args replace cmd).
fn app_exec(a: &RunArgs, cfg: &image::ImageConfig) -> Result<Vec<String>, FlagError> {
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
        return Err(FlagError::NoCommand {
            image: a.image.clone(),
        });
    }
    check_argv(&argv, &a.image)?;
    Ok(argv)
}

/// The app's name from its image's: the last path segment without tag or
/// digest, lower-case letters, digits and `-`.
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
