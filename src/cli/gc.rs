//! `rkt gc`: tear down pods whose runtime died, remove exited pods after the
//! grace period, and remove network namespaces no pod owns.

use anyhow::{anyhow, Result};
use clap::Args;

use super::{release_network, Global};
use crate::networking::netns;
use crate::pod::{time, PodState};

#[derive(Debug, Args)]
pub struct GcArgs {
    /// How long exited pods are kept before they are removed.
    #[arg(long = "grace-period", default_value = "30m")]
    pub grace_period: String,
}

pub fn gc(g: &Global, a: GcArgs) -> Result<i32> {
    let grace =
        time::parse_duration(&a.grace_period).map_err(|e| anyhow!("--grace-period: {e}"))?;
    let store = g.store();
    let mut problems = 0;
    for mut pod in store.all() {
        if pod.state() == PodState::Abandoned {
            let Some(_lock) = pod.try_lock()? else {
                continue;
            };
            let errs = release_network(g, &pod);
            for e in &errs {
                eprintln!("rkt: gc: pod {}: {e}", pod.uuid);
            }
            problems += errs.len();
            let _ = std::fs::remove_dir_all(pod.path("work"));
            let _ = std::fs::remove_dir(pod.path("rootfs"));
            if errs.is_empty() {
                pod.move_to_exited()?;
                println!(
                    "Moved pod \"{}\" to exited-garbage (its runtime had died)",
                    pod.uuid
                );
            }
        }
        if pod.state() == PodState::Exited {
            let age = time::now().saturating_sub(pod.exited_at().unwrap_or(0));
            if age >= grace {
                std::fs::remove_dir_all(&pod.dir)
                    .map_err(|e| anyhow!("cannot remove {}: {e}", pod.dir.display()))?;
                println!("Garbage collected pod \"{}\"", pod.uuid);
            }
        }
    }
    // Namespaces named for pods that are not running any more.
    let live: Vec<String> = store
        .all()
        .into_iter()
        .filter(|p| !p.is_exited_dir())
        .map(|p| format!("rkt-{}", p.uuid))
        .collect();
    if let Ok(entries) = std::fs::read_dir(netns::NETNS_DIR) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("rkt-") && !live.contains(&name) {
                match netns::remove(&e.path()) {
                    Ok(()) => println!("Removed leaked network namespace {name}"),
                    Err(err) => {
                        eprintln!("rkt: gc: cannot remove network namespace {name}: {err}");
                        problems += 1;
                    }
                }
            }
        }
    }
    Ok(if problems > 0 { 254 } else { 0 })
}
