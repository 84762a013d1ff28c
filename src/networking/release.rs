//! Releasing a pod's networks: DEL of every attachment in reverse (with
//! the configs and results saved at ADD), then the pod's network namespace.
//! Used by `rkt run` at exit, `rkt stop`/`rm` and `rkt gc`.

use std::path::PathBuf;

use super::{GivenUp, ReleaseProblem};
use crate::netns::Netns;
use crate::pod::Pod;

/// What detaching a pod's networks left over.
#[derive(Debug, Default)]
pub struct Released {
    /// Failures a retry may fix: the pod keeps what it needs to retry.
    pub problems: Vec<ReleaseProblem>,
    /// DELs given up on (the plugin rejects the config, or `force`), each
    /// with what it may have left: to print as warnings.
    pub given_up: Vec<GivenUp>,
}

/// Detaches a pod's networks (DEL in reverse, with the saved configs and
/// results) and removes its network namespace. Keeps going. A DEL that
/// fails because the plugin rejects the network's config can never
/// succeed (the saved config does not change): it is given up on, as is
/// every failure with `force`.
pub fn release(pod: &Pod, plugins: super::Plugins, force: bool) -> Released {
    let records = pod.nets();
    let netns_path = std::fs::read_to_string(pod.path("netns"))
        .ok()
        .map(PathBuf::from);
    let Some(netns_path) = netns_path else {
        super::live::unregister(&pod.uuid);
        return Released::default();
    };
    let mut out = Released::default();
    let ctx = super::Context {
        plugins,
        container_id: &pod.uuid,
        netns: &netns_path,
        runtime_config: Default::default(),
    };
    for e in super::teardown(&ctx, &records) {
        if e.config_rejected() {
            out.given_up.push(GivenUp::Rejected(e));
        } else if force {
            out.given_up.push(GivenUp::Forced(e));
        } else {
            out.problems.push(e.into());
        }
    }
    if let Err(e) = Netns::remove(&netns_path) {
        if force {
            out.given_up.push(GivenUp::NetnsForced(e));
        } else {
            out.problems.push(e.into());
        }
    }
    if out.problems.is_empty() {
        let _ = std::fs::remove_file(pod.path("netns"));
        super::live::unregister(&pod.uuid);
    }
    out
}
