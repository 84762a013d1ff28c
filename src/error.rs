//! The crate's error: every module's error enum rolls up into [`Error`],
//! so code that combines modules (the `rkt run` steps) takes them all with
//! `?` and the message stays the module's own: what failed, where, and
//! what to do.

use std::io;
use std::path::PathBuf;

use crate::{cni, image, metadata, netns, networking, pod, stage1};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    RunFlag(#[from] RunFlagError),
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

/// A flag of `rkt run` (or a global one it reads), or the app an image
/// names, refused before anything exists. The other flags' errors are
/// their modules' (`networking::dns::FlagError`, `stage1::FlagError`, ...).
#[derive(Debug, thiserror::Error)]
pub enum RunFlagError {
    #[error("--max-image-size={value}: {source}")]
    MaxImageSize {
        value: String,
        source: image::SizeError,
    },
    #[error("--net-plugin-timeout={value}: {source}")]
    PluginTimeout {
        value: String,
        source: pod::time::DurationError,
    },
    #[error(
        "--net-plugin-timeout={0}: must be more than zero (every plugin would time out at once)"
    )]
    ZeroTimeout(String),
    #[error("--hostname={0}: not a valid hostname (letters, digits, '-', '_', dot-separated labels, 64 bytes at most)")]
    Hostname(String),
    #[error("image {image}: no entrypoint or cmd to run; pass --exec=/path/to/program")]
    NoCommand { image: String },
    #[error("image {image}: argument {index} of the app ({arg:?}) contains a NUL byte, which no program can receive; fix the image's entrypoint/cmd or pass --exec")]
    NulArgument {
        image: String,
        index: usize,
        arg: String,
    },
}
