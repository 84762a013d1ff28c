//! `rkt enter`: run a command inside a running pod.

use clap::Args;

use super::Global;
use crate::error::{Error, PodCommandError};
use crate::pod::PodState;
use crate::stage1::{self, caps, security};

#[derive(Debug, Args)]
pub struct EnterArgs {
    #[command(flatten)]
    pub pod: super::PodRef,
    /// The pod (UUID or prefix); with --uuid-file, the command's first word.
    pub uuid: Option<String>,
    /// The command and its arguments [default: /bin/sh].
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

pub fn enter(g: &Global, a: EnterArgs) -> Result<i32, Error> {
    let (uuid, cmd) = match a.pod.uuid_file {
        Some(_) => (
            a.pod.uuid(None)?,
            a.uuid.into_iter().chain(a.cmd).collect::<Vec<_>>(),
        ),
        None => (a.pod.uuid(a.uuid)?, a.cmd),
    };
    let pod = g.store().find(&uuid)?;
    if pod.state() != PodState::Running {
        return Err(PodCommandError::NotRunning {
            uuid: pod.uuid.clone(),
            state: pod.state().as_str(),
            why: "; rkt enter needs a running pod",
        }
        .into());
    }
    let pid = pod
        .pid()
        .ok_or_else(|| PodCommandError::NoPid(pod.uuid.clone()))?;
    let m = pod
        .manifest()
        .map_err(Error::state("read the manifest of the pod at", &pod.dir))?;
    let argv = if cmd.is_empty() {
        vec!["/bin/sh".to_string()]
    } else {
        cmd
    };
    // The command gets what the pod's app got: its capabilities, its
    // no_new_privs and its seccomp filter.
    let (app_caps, insecure) = match &m.security {
        Some(s) => (
            s.caps
                .iter()
                .filter_map(|c| c.parse().ok())
                .collect::<Vec<_>>(),
            security::Insecure::from_names(&s.insecure_options),
        ),
        None => (caps::DEFAULT.to_vec(), security::Insecure::default()),
    };
    let sec = security::AppSecurity::new(app_caps, &insecure).map_err(|source| {
        PodCommandError::Protections {
            uuid: pod.uuid.clone(),
            source,
        }
    })?;
    stage1::enter(pid, &argv, &m.app.env, sec).map_err(|source| Error::Pod {
        pod: pod.uuid.clone(),
        source,
    })
}
