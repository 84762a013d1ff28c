//! `rkt stop` and `rkt rm`.

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use clap::Args;

use super::Global;
use crate::pod::PodState;

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Kill the app (SIGKILL) instead of asking it to stop (SIGTERM).
    #[arg(long)]
    pub force: bool,
    #[arg(required = true)]
    pub uuids: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Remove the pod even when detaching its networks fails; each failure
    /// is printed as a warning (what a network set up outside the pod may
    /// remain).
    #[arg(long)]
    pub force: bool,
    #[arg(required = true)]
    pub uuids: Vec<String>,
}

pub fn stop(g: &Global, a: StopArgs) -> Result<i32> {
    let store = g.store();
    let mut failed = 0;
    for u in &a.uuids {
        let res = (|| -> Result<String> {
            let pod = store.find(u)?;
            if pod.state() != PodState::Running {
                return Err(anyhow!(
                    "pod {} is {}, not running",
                    pod.uuid,
                    pod.state().as_str()
                ));
            }
            let pid = pod
                .pid()
                .ok_or_else(|| anyhow!("pod {} has no pid", pod.uuid))?;
            let sig = if a.force {
                Signal::SIGKILL
            } else {
                Signal::SIGTERM
            };
            if let Err(e) = signal::kill(Pid::from_raw(pid), sig) {
                return Err(anyhow!("cannot signal pod {} (pid {pid}): {e}", pod.uuid));
            }
            // Wait until its runtime has torn it down (it releases the lock).
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if matches!(
                    store.find(&pod.uuid).map(|p| p.state()),
                    Ok(PodState::Exited) | Ok(PodState::Abandoned)
                ) {
                    return Ok(pod.uuid);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(anyhow!(
                "pod {} did not stop within 30s; try rkt stop --force",
                pod.uuid
            ))
        })();
        match res {
            Ok(uuid) => println!("{uuid}"),
            Err(e) => {
                eprintln!("rkt: {e}");
                failed += 1;
            }
        }
    }
    Ok(if failed > 0 { 254 } else { 0 })
}

pub fn rm(g: &Global, a: RmArgs) -> Result<i32> {
    let store = g.store();
    let mut failed = 0;
    for u in &a.uuids {
        let res = (|| -> Result<String> {
            let pod = store.find(u)?;
            let Some(_lock) = pod.try_lock()? else {
                return Err(anyhow!(
                    "pod {} is running; stop it first (rkt stop {})",
                    pod.uuid,
                    pod.uuid
                ));
            };
            let released = g.release_network(&pod, a.force);
            for w in &released.given_up {
                eprintln!("rkt: pod {}: warning: {w}", pod.uuid);
            }
            if !released.problems.is_empty() {
                return Err(anyhow!(
                    "pod {}: {}; fix the cause and retry, or remove the pod anyway with `rkt rm --force {}`",
                    pod.uuid,
                    crate::networking::join(&released.problems),
                    pod.uuid
                ));
            }
            std::fs::remove_dir_all(&pod.dir)
                .map_err(|e| anyhow!("cannot remove {}: {e}", pod.dir.display()))?;
            Ok(pod.uuid)
        })();
        match res {
            Ok(uuid) => println!("\"{uuid}\""),
            Err(e) => {
                eprintln!("rkt: {e}");
                failed += 1;
            }
        }
    }
    Ok(if failed > 0 { 254 } else { 0 })
}
