//! `rkt gc`: tear down pods whose runtime died, remove exited pods after the
//! grace period, and remove network namespaces no pod owns.

use clap::Args;

use super::Global;
use crate::error::{Error, FlagError};
use crate::netns::{self, Netns};
use crate::networking::{self, live, netd};
use crate::pod::{time, Pod, PodState};

#[derive(Debug, Args)]
pub struct GcArgs {
    /// How long exited pods are kept before they are removed.
    #[arg(long = "grace-period", default_value = "30m")]
    pub grace_period: String,
    /// How long prepared pods (`rkt prepare`) wait for `rkt run-prepared`
    /// before they are removed.
    #[arg(long = "expire-prepared", default_value = "24h")]
    pub expire_prepared: String,
}

/// The pod's lock, unless someone holds it.
fn lock(pod: &Pod) -> Result<Option<crate::lock::FileLock>, Error> {
    pod.try_lock()
        .map_err(Error::state("lock the pod at", &pod.dir))
}

pub fn gc(g: &Global, a: GcArgs) -> Result<i32, Error> {
    let grace = time::parse_duration(&a.grace_period)
        .map_err(|source| FlagError::GracePeriod {
            value: a.grace_period.clone(),
            source,
        })?
        .as_secs();
    let expire = time::parse_duration(&a.expire_prepared)
        .map_err(|source| FlagError::ExpirePrepared {
            value: a.expire_prepared.clone(),
            source,
        })?
        .as_secs();
    let store = g.store();
    let mut problems = 0;
    for mut pod in store.all() {
        if pod.state() == PodState::Prepared {
            let created = pod.manifest().map(|m| m.created).unwrap_or(0);
            if time::now().saturating_sub(created) >= expire {
                let Some(_lock) = lock(&pod)? else {
                    continue;
                };
                match std::fs::remove_dir_all(&pod.dir) {
                    Ok(()) => println!("Garbage collected prepared pod \"{}\"", pod.uuid),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::state("remove", &pod.dir)(e)),
                }
            }
            continue;
        }
        if pod.state() == PodState::Abandoned {
            let Some(_lock) = lock(&pod)? else {
                continue;
            };
            let failed = release(g, &pod);
            problems += failed;
            let _ = std::fs::remove_dir_all(pod.path("work"));
            let _ = std::fs::remove_dir(pod.path("rootfs"));
            if failed == 0 {
                let dir = pod.dir.clone();
                pod.move_to_exited()
                    .map_err(Error::state("move to exited-garbage the pod at", dir))?;
                println!(
                    "Moved pod \"{}\" to exited-garbage (its runtime had died)",
                    pod.uuid
                );
            }
        }
        // Only pods in exited-garbage/: an exited pod still in run/ belongs
        // to a live `rkt run` finishing its teardown (it holds the lock), or
        // was just moved above. A concurrent gc may have removed it first.
        if pod.is_exited_dir() {
            let age = time::now().saturating_sub(pod.exited_at().unwrap_or(0));
            if age >= grace {
                // A pod whose teardown failed still has its netns record:
                // its networks are released (or given up on) first, never
                // dropped silently.
                if pod.path("netns").exists() {
                    let Some(_lock) = lock(&pod)? else {
                        continue;
                    };
                    let failed = release(g, &pod);
                    if failed > 0 {
                        problems += failed;
                        continue;
                    }
                }
                match std::fs::remove_dir_all(&pod.dir) {
                    Ok(()) => println!("Garbage collected pod \"{}\"", pod.uuid),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::state("remove", &pod.dir)(e)),
                }
            }
        }
    }
    // What is not a pod is never acted on, only named.
    for (path, why) in store.strays() {
        eprintln!(
            "rkt: gc: ignoring {}: not a pod ({why}); remove it by hand if it is not needed",
            path.display()
        );
    }
    // A `rkt run` killed while creating its pod directory: nothing was set
    // up yet (the manifest comes before the network namespace).
    for dir in store.abandoned_creations(std::time::Duration::from_secs(60)) {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            eprintln!("rkt: gc: cannot remove {}: {e}", dir.display());
            problems += 1;
        }
    }
    clean_image_tmp(g);
    // No `rkt run` is between registering a pod and recording its last ADD
    // result while this is held, so the pods seen now are all there is.
    let _collecting = live::Collecting::begin().map_err(Error::state("lock", live::LOCK))?;
    let live = live_pods(&store);
    problems += collect_leases(g, &live);
    // Namespaces named for pods that are not running any more, in this
    // store or any other.
    let live_uuids: Vec<&str> = live.iter().map(|p| p.uuid.as_str()).collect();
    if let Ok(entries) = std::fs::read_dir(netns::NETNS_DIR) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let leaked = netns::pod_of(&name).is_some_and(|u| !live_uuids.contains(&u));
            if leaked {
                match Netns::remove(&e.path()) {
                    Ok(()) => println!("Removed leaked network namespace {name}"),
                    Err(err) => {
                        eprintln!("rkt: gc: {err}");
                        problems += 1;
                    }
                }
            }
        }
    }
    Ok(if problems > 0 { 254 } else { 0 })
}

/// Detaches a pod's networks, printing what was given up on (warnings) and
/// what failed; returns how many failures keep the pod for the next gc.
fn release(g: &Global, pod: &Pod) -> usize {
    let released = g.release_pod(pod, false);
    for w in &released.given_up {
        eprintln!("rkt: gc: pod {}: warning: {w}", pod.uuid);
    }
    for e in &released.problems {
        eprintln!("rkt: gc: pod {}: {e}", pod.uuid);
    }
    if !released.problems.is_empty() {
        eprintln!(
            "rkt: gc: pod {}: kept, the next gc retries; if it keeps failing, `rkt rm --force {}` removes it anyway",
            pod.uuid, pod.uuid
        );
    }
    released.problems.len()
}

/// Lease files of a network's host-local directory (to report what GC freed).
fn lease_count(conf: &crate::cni::NetConf) -> usize {
    let data_dir = conf
        .plugins
        .iter()
        .find_map(|p| {
            p.pointer("/ipam/dataDir")
                .and_then(|v| v.as_str())
                .map(String::from)
        })
        .unwrap_or_else(|| "/var/lib/cni/networks".into());
    std::fs::read_dir(std::path::Path::new(&data_dir).join(&conf.name))
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .parse::<std::net::IpAddr>()
                        .is_ok()
                })
                .count()
        })
        .unwrap_or(0)
}

/// The pods whose networks must be left alone: this store's pods that have
/// not exited, and every other store's pods that still have networking.
fn live_pods(store: &crate::pod::Store) -> Vec<Pod> {
    let mut pods: Vec<Pod> = store
        .all()
        .into_iter()
        .filter(|p| !p.is_exited_dir())
        .collect();
    for p in live::pods() {
        if !pods.iter().any(|q| q.uuid == p.uuid) {
            pods.push(p);
        }
    }
    pods
}

/// Runs the CNI GC verb for every network with the attachments of the live
/// pods (of every store), so leases leaked outside any pod are released.
fn collect_leases(g: &Global, live: &[Pod]) -> usize {
    let nets = match netd::load(&g.local_config) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("rkt: gc: cannot load networks, leases not collected: {e}");
            return 1;
        }
    };
    let plugin_path = g.plugin_path();
    let timeout = g
        .plugin_timeout()
        .unwrap_or(std::time::Duration::from_secs(60));
    let plugins = networking::Plugins {
        path: &plugin_path,
        timeout,
    };
    let mut problems = 0;
    let mut known = networking::GcSupport::new();
    for conf in nets.by_name.values() {
        let valid: Vec<(String, String)> = live
            .iter()
            .flat_map(|p| {
                p.nets()
                    .into_iter()
                    .filter(|r| r.name == conf.name)
                    .map(|r| (p.uuid.clone(), r.ifname))
                    .collect::<Vec<_>>()
            })
            .collect();
        let before = lease_count(conf);
        for e in networking::gc(&plugins, conf, &valid, &mut known) {
            if e.config_rejected() {
                // Every `rkt run` on this network fails on the same config;
                // gc says so but does not fail for it.
                eprintln!(
                    "rkt: gc: warning: {e}; fix or remove {} (its leaked leases are not collected until then)",
                    conf.source
                );
            } else {
                eprintln!("rkt: gc: {e}");
                problems += 1;
            }
        }
        let freed = before.saturating_sub(lease_count(conf));
        if freed > 0 {
            println!(
                "Released {freed} leaked lease(s) of network \"{}\"",
                conf.name
            );
        }
    }
    problems
}

/// Removes half-unpacked image trees left by runs that died while unpacking.
fn clean_image_tmp(g: &Global) {
    let Ok(entries) = std::fs::read_dir(g.dir.join("cas/tmp")) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid: Option<i32> = name.rsplit('.').next().and_then(|p| p.parse().ok());
        if let Some(pid) = pid {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}
