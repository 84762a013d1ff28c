//! The pod process. `rkt run` clones the pod's first process into new mount,
//! UTS, IPC and PID namespaces; it joins the pod network namespace, mounts
//! the overlayfs root, `/proc`, `/sys` (read-only) and a minimal `/dev`
//! (see `mounts`), pivots into the root and starts the app with its
//! capabilities, `no_new_privs` and seccomp filter (see `security`), then
//! stays as the pod's init: it reaps orphans, forwards signals to the app
//! and exits with its code.

pub mod caps;
pub mod cgroup;
mod error;
mod mounts;
pub mod seccomp;
pub mod security;
pub mod sysctl;

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sched::{clone, setns, CloneFlags};
use nix::sys::signal::{self, SigHandler, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{self, Pid};

use crate::netns::Netns;

pub use error::{FlagError, Stage1Error};

/// Everything the pod process needs, prepared before it is cloned.
#[derive(Debug, Clone)]
pub struct PodSpec {
    pub rootfs: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub lowers: Vec<PathBuf>,
    pub hostname: String,
    /// `None`: stay in the caller's network namespace (`--net=host`).
    pub netns: Option<PathBuf>,
    pub exec: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub interactive: bool,
    /// What the app runs with.
    pub security: security::AppSecurity,
    /// `--sysctl` settings, written in the pod's namespaces at creation.
    pub sysctls: Vec<sysctl::Sysctl>,
    /// Masked and read-only kernel paths (off with `--insecure-options=paths`).
    pub mask_paths: bool,
    /// Who the app runs as (`--user`, `--group`); root when `None`.
    pub identity: Option<security::Identity>,
    /// `--readonly-rootfs`: the pod's root is mounted read-only.
    pub readonly_rootfs: bool,
    /// Volumes, bound into the root before pivot_root.
    pub mounts: Vec<BindMount>,
    /// The `cgroup.procs` files of the pod's cgroups (`--memory`,
    /// `--cpu`), joined by its first process before anything else.
    pub cgroup_procs: Vec<PathBuf>,
}

/// A volume in the pod: `source` on the host bound at `target` (an
/// absolute path in the pod, resolved inside its root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub source: PathBuf,
    pub target: String,
    pub read_only: bool,
    pub recursive: bool,
}

/// A started pod: its first process and the pipe its errors come through.
pub struct Started {
    pub pid: Pid,
    errors: OwnedFd,
}

/// Where [`forward_signals`] sends what it catches (one child per process).
static FORWARD_TO: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = FORWARD_TO.load(Ordering::Relaxed);
    if pid > 0 {
        // kill(2) is async-signal-safe; nix only wraps it.
        if let Ok(sig) = Signal::try_from(sig) {
            let _ = signal::kill(Pid::from_raw(pid), sig);
        }
    }
}

/// From now on, `signals` sent to this process go to `child` instead: how
/// `rkt run` passes a stop to the pod, and the pod's init to its app.
pub fn forward_signals(child: Pid, signals: &[Signal]) {
    FORWARD_TO.store(child.as_raw(), Ordering::Relaxed);
    for &s in signals {
        // SAFETY: the handler only calls kill(2) on our own child.
        let _ = unsafe { signal::signal(s, SigHandler::Handler(forward)) };
    }
}

/// Sends the pod's start error to `rkt run` (read by [`Started::wait_exec`]).
fn report(fd: BorrowedFd, msg: &str) {
    let _ = unistd::write(fd, msg.as_bytes());
}

/// Exit code of a waited-for process, shell style (128 + signal).
pub fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, c) => Some(c),
        WaitStatus::Signaled(_, s, _) => Some(128 + s as i32),
        _ => None,
    }
}

fn exec_app(spec: &PodSpec, errfd: BorrowedFd) -> ! {
    let fail = |msg: String| -> ! {
        report(errfd, &msg);
        // SAFETY: leaving the forked child without running parent-owned destructors.
        unsafe { libc::_exit(127) }
    };
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        // SAFETY: restoring default dispositions in the child before exec.
        let _ = unsafe { signal::signal(s, SigHandler::SigDfl) };
    }
    if !spec.interactive {
        if let Ok(null) = nix::fcntl::open(
            "/dev/null",
            nix::fcntl::OFlag::O_RDONLY,
            nix::sys::stat::Mode::empty(),
        ) {
            let _ = unistd::dup2_stdin(null);
        }
    }
    let wd = if spec.working_dir.is_empty() {
        "/"
    } else {
        &spec.working_dir
    };
    if let Err(e) = unistd::chdir(wd) {
        fail(format!("cannot change to working directory {wd}: {e}"));
    }
    // SAFETY: single-threaded child between fork and exec.
    for (k, _) in std::env::vars_os() {
        unsafe { std::env::remove_var(k) };
    }
    for kv in &spec.env {
        if let Some((k, v)) = kv.split_once('=') {
            if !k.is_empty() {
                // SAFETY: single-threaded child between fork and exec.
                unsafe { std::env::set_var(k, v) };
            }
        }
    }
    if let Err(e) = spec.security.apply(spec.identity.as_ref()) {
        fail(e.to_string());
    }
    // `rkt run` refuses arguments with a NUL byte before the pod exists.
    let argv: Vec<CString> = match spec
        .exec
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect()
    {
        Ok(v) => v,
        Err(e) => fail(format!("an argument of the app contains a NUL byte: {e}")),
    };
    if argv.is_empty() {
        fail("nothing to execute: the image has no entrypoint or cmd; pass --exec".into());
    }
    let err = unistd::execvp(&argv[0], &argv).unwrap_err();
    fail(format!("cannot execute {} in the pod: {err}", spec.exec[0]))
}

/// Sets `lo` up in the current network namespace.
fn loopback_up() -> std::io::Result<()> {
    // SAFETY: a datagram socket for interface ioctls; ifreq is zeroed and
    // NUL-terminated; the fd is closed before returning.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        let mut rc = libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req);
        if rc == 0 {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            rc = libc::ioctl(sock, libc::SIOCSIFFLAGS, &req);
        }
        let err = std::io::Error::last_os_error();
        libc::close(sock);
        if rc != 0 {
            return Err(err);
        }
    }
    Ok(())
}

fn pid1(spec: &PodSpec, netns: Option<&Netns>, errfd: BorrowedFd) -> isize {
    let step = || -> Result<(), Stage1Error> {
        // Into the pod's cgroups first: the app, forked later, inherits them.
        for p in &spec.cgroup_procs {
            std::fs::write(p, "0").map_err(|source| Stage1Error::JoinCgroup {
                path: p.clone(),
                source,
            })?;
        }
        // The pod dies with its runtime; `rkt gc` then recovers what it held.
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(Stage1Error::DeathSignal)?;
        if let Some(ns) = netns {
            ns.enter_for_good().map_err(Stage1Error::JoinNetns)?;
            loopback_up().map_err(Stage1Error::Loopback)?;
        }
        unistd::sethostname(&spec.hostname).map_err(Stage1Error::Hostname)?;
        mounts::setup_root(spec)?;
        Ok(())
    };
    if let Err(e) = step() {
        report(errfd, &e.to_string());
        return 127;
    }
    // SAFETY: the pod's init forks its only app; no other threads exist here.
    let app = match unsafe { unistd::fork() } {
        Ok(unistd::ForkResult::Child) => exec_app(spec, errfd),
        Ok(unistd::ForkResult::Parent { child }) => child,
        Err(e) => {
            report(errfd, &format!("cannot fork the app: {e}"));
            return 127;
        }
    };
    forward_signals(
        app,
        &[
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGHUP,
            Signal::SIGUSR1,
            Signal::SIGUSR2,
        ],
    );
    // Our copy of the error pipe closes, so the parent sees EOF once the app execs.
    let _ = unistd::close(errfd.as_raw_fd());
    loop {
        match waitpid(None, None) {
            Ok(status) if status.pid() == Some(app) => {
                if let Some(code) = exit_code(status) {
                    return code as isize;
                }
            }
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return 127,
        }
    }
}

/// Clones the pod's first process. Returns once it is running; the app's
/// start is confirmed by [`Started::wait_exec`].
pub fn start(spec: &PodSpec) -> Result<Started, Stage1Error> {
    let netns = match &spec.netns {
        Some(p) => Some(Netns::open(p)?),
        None => None,
    };
    let (rd, wr) = unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(Stage1Error::Pipe)?;
    let wr_fd = wr.as_fd();
    let mut stack = vec![0u8; 1 << 20];
    let flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWPID;
    let cb = Box::new(|| {
        let code = pid1(spec, netns.as_ref(), wr_fd);
        // SAFETY: leave the cloned child without unwinding into the parent's frames.
        unsafe { libc::_exit(code as i32) }
    });
    // SAFETY: no CLONE_VM: the child runs on a copy of our memory, like fork.
    let pid =
        unsafe { clone(cb, &mut stack, flags, Some(libc::SIGCHLD)) }.map_err(Stage1Error::Clone)?;
    drop(wr);
    Ok(Started { pid, errors: rd })
}

impl Started {
    /// Waits until the app has been exec'd, or returns the pod's error.
    pub fn wait_exec(&self) -> Result<(), Stage1Error> {
        let mut f = std::fs::File::from(self.errors.try_clone().map_err(Stage1Error::Report)?);
        let mut msg = String::new();
        use std::io::Read;
        let _ = f.read_to_string(&mut msg);
        if msg.is_empty() {
            Ok(())
        } else {
            Err(Stage1Error::Pod(msg))
        }
    }

    /// Waits for the pod's first process and returns its exit code.
    pub fn wait(&self) -> i32 {
        loop {
            match waitpid(self.pid, None) {
                Ok(status) => {
                    if let Some(code) = exit_code(status) {
                        return code;
                    }
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return 255,
            }
        }
    }
}

/// Runs `argv` inside a running pod: joins the namespaces and root of its
/// first process (`pid`), then forks so the command is inside its PID
/// namespace. Returns the command's exit code.
pub fn enter(
    pid: i32,
    argv: &[String],
    env: &[String],
    security: security::AppSecurity,
) -> Result<i32, Stage1Error> {
    let ns_dir = PathBuf::from(format!("/proc/{pid}/ns"));
    let root = std::fs::File::open(format!("/proc/{pid}/root"))
        .map_err(|source| Stage1Error::OpenRoot { pid, source })?;
    let mut fds = Vec::new();
    for (name, flag) in [
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ] {
        let f = std::fs::File::open(ns_dir.join(name)).map_err(|source| {
            Stage1Error::OpenNamespace {
                path: ns_dir.join(name),
                source,
            }
        })?;
        fds.push((f, flag, name));
    }
    for (f, flag, name) in &fds {
        setns(f, *flag).map_err(|errno| Stage1Error::JoinNamespace { name, errno })?;
    }
    unistd::fchdir(&root).map_err(Stage1Error::Chroot)?;
    unistd::chroot(".").map_err(Stage1Error::Chroot)?;
    let spec = PodSpec {
        rootfs: PathBuf::new(),
        upper: PathBuf::new(),
        work: PathBuf::new(),
        lowers: vec![],
        hostname: String::new(),
        netns: None,
        exec: argv.to_vec(),
        env: env.to_vec(),
        working_dir: "/".into(),
        interactive: true,
        security,
        sysctls: Vec::new(),
        mask_paths: true,
        identity: None,
        readonly_rootfs: false,
        mounts: Vec::new(),
        cgroup_procs: Vec::new(),
    };
    let (rd, wr) = unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(Stage1Error::Pipe)?;
    // SAFETY: the runtime is single-threaded here; the child execs at once.
    match unsafe { unistd::fork() } {
        Ok(unistd::ForkResult::Child) => exec_app(&spec, wr.as_fd()),
        Ok(unistd::ForkResult::Parent { child }) => {
            drop(wr);
            let started = Started {
                pid: child,
                errors: rd,
            };
            if let Err(e) = started.wait_exec() {
                started.wait();
                return Err(e);
            }
            Ok(started.wait())
        }
        Err(e) => Err(Stage1Error::Fork(e)),
    }
}

/// The overlayfs mount data for the pod root.
pub fn overlay_data(spec: &PodSpec) -> String {
    let lowers: Vec<String> = spec
        .lowers
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    format!(
        "lowerdir={},upperdir={},workdir={}",
        lowers.join(":"),
        spec.upper.display(),
        spec.work.display()
    )
}
