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
    Flag(#[from] FlagError),
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
    Ports(#[from] networking::ports::PortError),
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
    #[error(transparent)]
    Metadata(#[from] metadata::MetadataError),
    #[error(transparent)]
    PodCommand(#[from] PodCommandError),
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
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

/// A command-line flag refused (a global one, or one of `rkt run`, `list`,
/// `gc`), or the app an image names, before anything exists. Flags whose
/// checks belong to a module have the module's error
/// (`networking::dns::FlagError`, `stage1::FlagError`, ...).
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
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
    #[error("--grace-period={value}: {source}")]
    GracePeriod {
        value: String,
        source: pod::time::DurationError,
    },
    #[error("--expire-prepared={value}: {source}")]
    ExpirePrepared {
        value: String,
        source: pod::time::DurationError,
    },
    #[error(
        "pod {uuid} is {state}, not prepared; `rkt run-prepared` runs pods made by `rkt prepare`"
    )]
    NotPrepared { uuid: String, state: &'static str },
    #[error("pod {0} is being started by another `rkt run-prepared`")]
    PreparedBusy(String),
    #[error("--format={0}: unknown format; use tabbed or json")]
    Format(String),
    #[error("--set-env={0}: not NAME=VALUE (a non-empty name, no NUL byte)")]
    SetEnv(String),
    #[error("--set-env-file={}: {problem}", path.display())]
    SetEnvFile {
        path: std::path::PathBuf,
        problem: EnvFileProblem,
    },
    #[error("{flag}={value}: {problem}")]
    Volume {
        flag: &'static str,
        value: String,
        problem: String,
    },
    #[error("{flag}={value}: {problem}")]
    Identity {
        flag: &'static str,
        value: String,
        problem: String,
    },
    #[error("--working-dir={0}: not an absolute path in the pod")]
    WorkingDir(String),
    #[error("--uuid-file={}: {source}", path.display())]
    UuidFile { path: PathBuf, source: io::Error },
    #[error("--uuid-file-save={}: {source}", path.display())]
    UuidFileSave { path: PathBuf, source: io::Error },
    #[error("give the pod's UUID or --uuid-file, not both and not neither")]
    UuidSource,
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

/// What `rkt enter`, `stop` and `rm` refuse or fail at, for one pod.
#[derive(Debug, thiserror::Error)]
pub enum PodCommandError {
    #[error("pod {uuid} is {state}, not running{why}")]
    NotRunning {
        uuid: String,
        state: &'static str,
        /// What needed it running, for the message.
        why: &'static str,
    },
    #[error("pod {0} has no pid yet")]
    NoPid(String),
    #[error("cannot signal pod {uuid} (pid {pid}): {errno}")]
    Signal {
        uuid: String,
        pid: i32,
        errno: nix::errno::Errno,
    },
    #[error("pod {0} did not stop within 30s; try rkt stop --force")]
    StopTimeout(String),
    #[error("pod {0} is running; stop it first (rkt stop {0})")]
    Running(String),
    #[error("pod {uuid}: {}; fix the cause and retry, or remove the pod anyway with `rkt rm --force {uuid}`", networking::join(problems))]
    Release {
        uuid: String,
        problems: Vec<networking::ReleaseProblem>,
    },
    #[error("pod {uuid}: {source}")]
    Protections {
        uuid: String,
        source: stage1::FlagError,
    },
}

/// What is wrong with a `--set-env-file`.
#[derive(Debug, thiserror::Error)]
pub enum EnvFileProblem {
    #[error("{0}")]
    Read(io::Error),
    #[error("larger than {0} bytes")]
    TooLarge(u64),
    #[error("line {number}: {text:?} is not NAME=VALUE")]
    Line { number: usize, text: String },
}
