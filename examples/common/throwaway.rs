//! Runs a benchmark inside a throwaway network + mount namespace: the
//! example re-executes itself under `unshare --net --mount` after a setup
//! script (tmpfs mounts, links), so it touches nothing on the machine.

/// Set in the re-executed copy.
pub const INNER: &str = "RKT_BENCH_INNER";

/// Whether this process is the copy inside the namespace.
pub fn inside() -> bool {
    std::env::var_os(INNER).is_some()
}

/// Runs this binary again, with the same arguments, after `setup` (bash)
/// in a new network and mount namespace; exits when it fails.
pub fn reexec(setup: &str) {
    let me = std::env::current_exe().expect("the benchmark's own path");
    let script = format!("set -e\nip link set lo up\n{setup}\nexec \"$0\" \"$@\"");
    let status = std::process::Command::new("unshare")
        .args([
            "--net",
            "--mount",
            "--propagation",
            "private",
            "bash",
            "-c",
            &script,
        ])
        .arg(&me)
        .args(std::env::args().skip(1))
        .env(INNER, "1")
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => {
            eprintln!("benchmark exited with {s}");
            std::process::exit(1)
        }
        Err(e) => {
            eprintln!("cannot run unshare (needs root and util-linux): {e}");
            std::process::exit(1)
        }
    }
}
