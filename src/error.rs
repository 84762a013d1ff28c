//! The crate's error: every module's error enum rolls up into [`Error`],
//! so code that combines modules (the `rkt run` steps) takes them all with
//! `?` and the message stays the module's own: what failed, where, and
//! what to do.

use std::fmt::Display;
use std::io;
use std::path::PathBuf;

use crate::{cli, cni, image, metadata, netns, networking, pod, stage1};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    GlobalFlag(#[from] cli::GlobalFlagError),
    #[error(transparent)]
    RunFlag(#[from] cli::RunFlagError),
    #[error(transparent)]
    DnsFlag(#[from] networking::dns::FlagError),
    #[error(transparent)]
    PodFlag(#[from] stage1::FlagError),
    #[error(transparent)]
    Annotation(#[from] metadata::pod::AnnotationError),
    #[error(transparent)]
    Networks(#[from] networking::netd::NetdError),
    #[error(transparent)]
    Preflight(#[from] networking::preflight::PreflightError),
    #[error(transparent)]
    Image(#[from] image::ImageError),
    #[error(transparent)]
    FindPod(#[from] pod::FindError),
    #[error(transparent)]
    Netns(#[from] netns::NetnsError),
    #[error(transparent)]
    Setup(#[from] networking::SetupError),
    #[error(transparent)]
    Etc(#[from] networking::etc::EtcError),
    #[error(transparent)]
    Exec(#[from] cni::exec::ExecError),
    /// A step of creating or starting the pod's process.
    #[error("pod {pod}: {source}")]
    Pod {
        pod: String,
        source: stage1::Stage1Error,
    },
    /// A file or directory of the runtime's own state.
    #[error("cannot {what} {}: {source}", path.display())]
    State {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

impl Error {
    /// A failed operation on the runtime's state at `path`.
    pub fn state(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::State { what, path, source }
    }
}

/// Several errors as one line, `; `-separated: what a step that keeps
/// going (teardown, rollback) reports.
pub fn join<E: Display>(errors: &[E]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
