//! Finding and executing plugin binaries with the CNI_* environment, a
//! config on stdin, and a deadline after which the plugin is killed.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::config::valid_name;
use super::CniError;

/// One call of a plugin.
#[derive(Debug, Clone)]
pub struct Invocation<'a> {
    pub command: &'a str,
    pub container_id: &'a str,
    pub netns: &'a str,
    pub ifname: &'a str,
    pub args: &'a str,
    pub path: &'a [PathBuf],
    pub timeout: Duration,
}

impl<'a> Invocation<'a> {
    /// A call about no attachment in particular (VERSION, GC, STATUS).
    pub fn global(command: &'a str, path: &'a [PathBuf], timeout: Duration) -> Self {
        Invocation {
            command,
            container_id: "",
            netns: "",
            ifname: "",
            args: "",
            path,
            timeout,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("plugin type \"{plugin}\" is invalid: a type names a binary on the plugin path (letters, digits, '_', '.', '-'; no '/')")]
    InvalidType { plugin: String },
    #[error("plugin \"{plugin}\" not found in {searched}; install it or pass --net-plugin-path")]
    NotFound { plugin: String, searched: String },
    #[error("plugin {} is not executable; chmod +x it", path.display())]
    NotExecutable { path: PathBuf },
    #[error("cannot run plugin {}: {source}", path.display())]
    Spawn {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("plugin {} did not answer within {secs:.1}s and was killed", path.display())]
    Timeout { path: PathBuf, secs: f64 },
    #[error("{0}")]
    Plugin(CniError),
    #[error("plugin {} failed ({status}): {output}", path.display())]
    Failed {
        path: PathBuf,
        status: String,
        output: String,
    },
}

/// Looks up a plugin type on the search path. A type is a file name, never
/// a path: one with `/` (or `..`) would run a binary outside the plugin
/// directories, so it is refused as libcni refuses it.
pub fn find_plugin(ty: &str, path: &[PathBuf]) -> Result<PathBuf, ExecError> {
    if !valid_name(ty) {
        return Err(ExecError::InvalidType {
            plugin: ty.to_string(),
        });
    }
    for dir in path {
        let candidate = dir.join(ty);
        if let Ok(meta) = std::fs::metadata(&candidate) {
            if !meta.is_file() {
                continue;
            }
            if meta.permissions().mode() & 0o111 == 0 {
                return Err(ExecError::NotExecutable { path: candidate });
            }
            return Ok(candidate);
        }
    }
    Err(ExecError::NotFound {
        plugin: ty.to_string(),
        searched: path
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":"),
    })
}

/// Failure only means blocking reads.
fn set_nonblocking(fd: std::os::fd::BorrowedFd) {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    if let Ok(flags) = fcntl(fd, FcntlArg::F_GETFL) {
        let _ = fcntl(
            fd,
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
        );
    }
}

/// A pidfd for our child `pid` (readable once it exits), if the kernel has them.
fn pidfd_open(pid: i32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open(2) on our own unreaped child; the fd it returns is ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a non-negative return is a new fd nobody else owns.
    (fd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// Reaps a child and returns its exit status and peak resident memory (KiB).
fn wait_with_rusage(pid: i32) -> std::io::Result<(std::process::ExitStatus, i64)> {
    use std::os::unix::process::ExitStatusExt;
    loop {
        let mut status = 0;
        // SAFETY: rusage is plain data; pid is our own child.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 on our own child with valid out-pointers.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if rc == pid {
            return Ok((std::process::ExitStatus::from_raw(status), usage.ru_maxrss));
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Runs `plugin` and returns its stdout. A non-zero exit becomes
/// [`ExecError::Plugin`] when the plugin printed a CNI error.
pub fn run(plugin: &Path, inv: &Invocation, stdin: &[u8]) -> Result<Vec<u8>, ExecError> {
    let cni_path = std::env::join_paths(inv.path)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut command = Command::new(plugin);
    command
        .env("CNI_COMMAND", inv.command)
        .env("CNI_CONTAINERID", inv.container_id)
        .env("CNI_NETNS", inv.netns)
        .env("CNI_IFNAME", inv.ifname)
        .env("CNI_ARGS", inv.args)
        .env("CNI_PATH", cni_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // A plugin dies with its runtime: a runtime killed mid-ADD must not
    // leave a plugin finishing the ADD after `rkt gc` has undone it.
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    // Its own process group, so a plugin that hangs is killed with its children.
    {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    let mut child = command.spawn().map_err(|source| ExecError::Spawn {
        path: plugin.to_path_buf(),
        source,
    })?;
    // The deadline covers the whole call: writing the config (a plugin that
    // never reads a config larger than the pipe would block the write),
    // the run, reading the output, and the exit (a plugin may close its
    // output and go on).
    let deadline = Instant::now() + inv.timeout;
    let as_file = |fd: std::os::fd::OwnedFd| std::fs::File::from(fd);
    let mut input = child
        .stdin
        .take()
        .map(|p| as_file(p.into()))
        .filter(|_| !stdin.is_empty());
    let mut out = child.stdout.take().map(|p| as_file(p.into()));
    let mut err = child.stderr.take().map(|p| as_file(p.into()));
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    for p in [&input, &out, &err].into_iter().flatten() {
        set_nonblocking(p.as_fd());
    }
    // Readable once the plugin has exited; without pidfds (Linux < 5.3)
    // the exit is waited for after the output, as before.
    let exit_fd = pidfd_open(child.id() as i32);
    let mut exited = exit_fd.is_none();
    let mut written = 0;
    while input.is_some() || out.is_some() || err.is_some() || !exited {
        let now = Instant::now();
        if now >= deadline {
            // We started this child in its own group: kill the group and reap it.
            let group = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            let _ = child.kill();
            let _ = child.wait();
            return Err(ExecError::Timeout {
                path: plugin.to_path_buf(),
                secs: inv.timeout.as_secs_f64(),
            });
        }
        let fd = |f: &Option<std::fs::File>| f.as_ref().map_or(-1, |f| f.as_raw_fd());
        let mut fds = [
            (fd(&input), libc::POLLOUT),
            (fd(&out), libc::POLLIN),
            (fd(&err), libc::POLLIN),
            (
                match (&exit_fd, exited) {
                    (Some(f), false) => f.as_raw_fd(),
                    _ => -1,
                },
                libc::POLLIN,
            ),
        ]
        .map(|(fd, events)| libc::pollfd {
            fd,
            events,
            revents: 0,
        });
        let wait_ms = (deadline - now).as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: fds is a valid array of pollfd for the duration of the call.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait_ms.max(1)) };
        if let Some(p) = &mut input {
            match p.write(&stdin[written..]) {
                Ok(n) => written += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                    ) => {}
                // A plugin that exits without reading its config gives
                // EPIPE: not ours to report.
                Err(_) => written = stdin.len(),
            }
            if written >= stdin.len() {
                input = None; // EOF for the plugin
            }
        }
        for (pipe, buf) in [(&mut out, &mut stdout), (&mut err, &mut stderr)] {
            if let Some(p) = pipe {
                let mut chunk = [0u8; 16384];
                match p.read(&mut chunk) {
                    Ok(0) => *pipe = None,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => *pipe = None,
                }
            }
        }
        if fds[3].revents != 0 {
            exited = true;
        }
    }
    let (status, maxrss_kb) =
        wait_with_rusage(child.id() as i32).map_err(|source| ExecError::Spawn {
            path: plugin.to_path_buf(),
            source,
        })?;
    tracing::debug!(plugin = %plugin.display(), command = inv.command, maxrss_kb, "plugin peak memory");
    if status.success() {
        return Ok(stdout);
    }
    if let Ok(e) = serde_json::from_slice::<CniError>(&stdout) {
        return Err(ExecError::Plugin(e));
    }
    let output = String::from_utf8_lossy(if stdout.is_empty() { &stderr } else { &stdout })
        .trim()
        .replace('\n', " ");
    Err(ExecError::Failed {
        path: plugin.to_path_buf(),
        status: status.to_string(),
        output,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_types_are_file_names_not_paths() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        // A plugin outside the search path that a path-like type would reach.
        let outside = dir.path().join("evil");
        std::fs::write(&outside, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::copy(&outside, bin.join("good")).unwrap();
        let path = vec![bin.clone()];
        assert_eq!(find_plugin("good", &path).unwrap(), bin.join("good"));
        for bad in [
            "../evil",
            outside.to_str().unwrap(),
            "a/b",
            "..",
            ".",
            "",
            "-x",
        ] {
            match find_plugin(bad, &path) {
                Err(ExecError::InvalidType { plugin }) => assert_eq!(plugin, bad),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}
