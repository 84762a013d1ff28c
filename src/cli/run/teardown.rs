//! The one teardown of `rkt run`: from the moment the pod directory exists,
//! this guard owns it. However the run ends (the app exits, a step fails,
//! a panic unwinds), the pod is unregistered from the metadata service,
//! its networks are released (DEL in reverse, then the netns), its scratch
//! directories are removed, and the pod is kept in exited-garbage, or
//! removed when it never started and nothing is left to retry.

use tracing::debug;

use crate::cli::Global;
use crate::error::Error;
use crate::metadata;
use crate::pod::Pod;

pub struct Teardown<'g> {
    g: &'g Global,
    /// `None` once torn down.
    pod: Option<Pod>,
    mds_token: Option<String>,
}

impl<'g> Teardown<'g> {
    pub fn new(g: &'g Global, pod: Pod) -> Self {
        Teardown {
            g,
            pod: Some(pod),
            mds_token: None,
        }
    }

    pub fn pod(&self) -> &Pod {
        self.pod.as_ref().expect("the pod is held until teardown")
    }

    /// The metadata service registration to end at teardown.
    pub fn unregister_at_exit(&mut self, token: String) {
        self.mds_token = Some(token);
    }

    /// Tears the pod down after `result` (the app's exit code, or why the
    /// run failed) and returns it, or the error of keeping the pod.
    pub fn finish(mut self, result: Result<i32, Error>) -> Result<i32, Error> {
        let mut pod = self.pod.take().expect("finish runs once");
        let clean = self.release(&mut pod, result.as_ref().ok().copied());
        match result {
            Ok(code) => {
                let path = pod.dir.clone();
                pod.move_to_exited()
                    .map_err(Error::state("move to exited-garbage the pod at", path))?;
                Ok(code)
            }
            Err(e) => {
                discard(pod, clean);
                Err(e)
            }
        }
    }

    /// Everything but the pod directory itself; whether nothing is left
    /// that a later `rkt gc` must retry.
    fn release(&mut self, pod: &mut Pod, exit: Option<i32>) -> bool {
        let _p = super::phase("teardown");
        if let Some(token) = self.mds_token.take() {
            metadata::pod::unregister(&token);
        }
        if let Some(code) = exit {
            let _ = pod.write_file("exit", code.to_string().as_bytes());
        }
        let released = self.g.release_pod(pod, false);
        let _ = std::fs::remove_dir_all(pod.path("work"));
        let _ = std::fs::remove_dir(pod.path("rootfs"));
        for w in &released.given_up {
            eprintln!("rkt: pod {}: teardown: warning: {w}", pod.uuid);
        }
        for p in &released.problems {
            eprintln!("rkt: pod {}: teardown: {p}", pod.uuid);
        }
        released.problems.is_empty()
    }
}

/// A pod that never ran is not kept, unless something of it must still be
/// released (then `rkt gc` finds it in exited-garbage).
fn discard(mut pod: Pod, clean: bool) {
    if clean {
        let _ = std::fs::remove_dir_all(&pod.dir);
    } else {
        let _ = pod.move_to_exited();
    }
}

impl Drop for Teardown<'_> {
    /// Reached with the pod still held only when a step panicked.
    fn drop(&mut self) {
        if let Some(mut pod) = self.pod.take() {
            debug!(pod = %pod.uuid, "teardown after a panic");
            let clean = self.release(&mut pod, None);
            discard(pod, clean);
        }
    }
}
