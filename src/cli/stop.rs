//! `rkt stop` and `rkt rm`.

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

use clap::Args;

use super::Global;
use crate::error::{Error, PodCommandError};
use crate::pod::PodState;

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Kill the app (SIGKILL) instead of asking it to stop (SIGTERM).
    #[arg(long)]
    pub force: bool,
    pub uuids: Vec<String>,
    #[command(flatten)]
    pub pod: super::PodRef,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Remove the pod even when detaching its networks fails; each failure
    /// is printed as a warning (what a network set up outside the pod may
    /// remain).
    #[arg(long)]
    pub force: bool,
    pub uuids: Vec<String>,
    #[command(flatten)]
    pub pod: super::PodRef,
}

pub fn stop(g: &Global, a: StopArgs) -> Result<i32, Error> {
    let store = g.store();
    let mut failed = 0;
    for u in &a.pod.uuids(a.uuids.clone())? {
        let res = (|| -> Result<String, Error> {
            let pod = store.find(u)?;
            if pod.state() != PodState::Running {
                return Err(PodCommandError::NotRunning {
                    uuid: pod.uuid.clone(),
                    state: pod.state().as_str(),
                    why: "",
                }
                .into());
            }
            let pid = pod
                .pid()
                .ok_or_else(|| PodCommandError::NoPid(pod.uuid.clone()))?;
            let sig = if a.force {
                Signal::SIGKILL
            } else {
                Signal::SIGTERM
            };
            if let Err(errno) = signal::kill(Pid::from_raw(pid), sig) {
                return Err(PodCommandError::Signal {
                    uuid: pod.uuid.clone(),
                    pid,
                    errno,
                }
                .into());
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
            Err(PodCommandError::StopTimeout(pod.uuid).into())
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

pub fn rm(g: &Global, a: RmArgs) -> Result<i32, Error> {
    let store = g.store();
    let mut failed = 0;
    for u in &a.pod.uuids(a.uuids.clone())? {
        let res = (|| -> Result<String, Error> {
            let pod = store.find(u)?;
            let lock = pod
                .try_lock()
                .map_err(Error::state("lock the pod at", &pod.dir))?;
            let Some(_lock) = lock else {
                return Err(PodCommandError::Running(pod.uuid).into());
            };
            let released = g.release_pod(&pod, a.force);
            for w in &released.given_up {
                eprintln!("rkt: pod {}: warning: {w}", pod.uuid);
            }
            if !released.problems.is_empty() {
                return Err(PodCommandError::Release {
                    uuid: pod.uuid,
                    problems: released.problems,
                }
                .into());
            }
            std::fs::remove_dir_all(&pod.dir).map_err(Error::state("remove", &pod.dir))?;
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
