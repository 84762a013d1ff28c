//! What can go wrong building the pod: a refused flag of its protections
//! (before anything exists) or a step of creating or entering it.

use std::io;
use std::path::PathBuf;

use nix::errno::Errno;

use crate::netns::NetnsError;

/// A run flag that sets the pod's protections, refused.
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    #[error("--insecure-options: unknown value \"{0}\"; use {names}", names = super::security::VALUES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "))]
    Insecure(String),
    #[error("{flag}: unknown capability \"{name}\"")]
    Capability { flag: String, name: String },
    #[error("--sysctl={arg}: {problem}")]
    Sysctl {
        arg: String,
        problem: super::sysctl::SysctlProblem,
    },
    #[error("the seccomp filter is too large ({0} instructions)")]
    SeccompTooLarge(usize),
    #[error("{flag}={value}: {why}")]
    Limit {
        flag: &'static str,
        value: String,
        why: String,
    },
}

/// A step of creating, starting or entering the pod that failed.
#[derive(Debug, thiserror::Error)]
pub enum Stage1Error {
    #[error("cannot mount {what} on {}: {errno}", target.display())]
    Mount {
        what: String,
        target: PathBuf,
        errno: Errno,
    },
    #[error("cannot bind {}: {errno}", path.display())]
    Bind { path: PathBuf, errno: Errno },
    #[error("cannot mask {}: {errno}", path.display())]
    Mask { path: PathBuf, errno: Errno },
    #[error("cannot create {}: {source}", path.display())]
    Create { path: PathBuf, source: io::Error },
    #[error("--sysctl={key}={value}: cannot write {}: {}", path.display(), sysctl_why(source))]
    SysctlWrite {
        key: String,
        value: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cannot enter {}: {errno}", path.display())]
    Chdir { path: PathBuf, errno: Errno },
    #[error("pivot_root into {}: {errno}", path.display())]
    PivotRoot { path: PathBuf, errno: Errno },
    #[error("cannot detach the host root: {0}")]
    DetachRoot(Errno),
    #[error("cannot join the pod network namespace: {0}")]
    JoinNetns(NetnsError),
    #[error("cannot bring up lo in the pod: {0}")]
    Loopback(io::Error),
    #[error("cannot tie the pod to its runtime (PR_SET_PDEATHSIG): {0}")]
    DeathSignal(Errno),
    #[error("cannot set hostname: {0}")]
    Hostname(Errno),
    #[error("cannot set no_new_privs: {0}")]
    NoNewPrivs(Errno),
    #[error("cannot install the seccomp filter: {0}")]
    Seccomp(io::Error),
    #[error(
        "cannot run the app as uid {uid}, gid {gid}: {errno} (is CAP_SETUID/CAP_SETGID removed?)"
    )]
    Identity {
        uid: u32,
        gid: u32,
        errno: nix::errno::Errno,
    },
    #[error("volume at {target}: cannot {what}: {source}")]
    Volume {
        target: String,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("cannot join the pod's cgroup {}: {source}", path.display())]
    JoinCgroup {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Cgroup(#[from] super::cgroup::CgroupError),
    #[error("cannot make the pod's root read-only: {0}")]
    ReadOnlyRoot(nix::errno::Errno),
    #[error("cannot set capabilities: {0}")]
    Caps(caps::errors::CapsError),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("pipe: {0}")]
    Pipe(Errno),
    #[error("cannot create the pod's namespaces: {0}")]
    Clone(Errno),
    #[error("fork: {0}")]
    Fork(Errno),
    /// What the pod's process reported through its error pipe before exec.
    #[error("{0}")]
    Pod(String),
    #[error("cannot read the pod's start report: {0}")]
    Report(io::Error),
    #[error("cannot open the pod's root (pid {pid}): {source}")]
    OpenRoot { pid: i32, source: io::Error },
    #[error("cannot open {}: {source}", path.display())]
    OpenNamespace { path: PathBuf, source: io::Error },
    #[error("cannot join the pod's {name} namespace: {errno}")]
    JoinNamespace { name: &'static str, errno: Errno },
    #[error("cannot enter the pod's root: {0}")]
    Chroot(Errno),
}

fn sysctl_why(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::NotFound {
        "no such setting in the pod's namespaces".to_string()
    } else {
        e.to_string()
    }
}
