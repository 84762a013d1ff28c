//! Detached copies of a plugin binary, for work a CNI call should not wait
//! for (the background removal of a link or of a network's nftables state).

/// Starts a detached copy of this plugin binary with `env`, to finish work
/// the caller should not wait for: its own process group (a runtime that
/// kills the plugin's group on timeout spares it) and no stdio (a runtime
/// reading the plugin's output to EOF does not wait for it).
pub fn spawn_detached(env: &[(&str, &std::ffi::OsStr)]) -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    Command::new(std::env::current_exe()?)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map(drop)
}
