//! Issue 15: resource limits (`--memory`, `--cpu`) on the pod's own
//! cgroup: a pod over its memory is killed by the kernel and `rkt status`
//! says so; a CPU limit throttles a busy loop; the cgroups go with the
//! pod; bad values are refused before anything exists. (The cgroup
//! filesystem is the machine's: each check names this test's own pods.)

mod common;

use common::Host;

/// The pod's cgroup directories still on the machine.
fn cgroups_of(uuid: &str) -> Vec<String> {
    let out = std::process::Command::new("find")
        .args([
            "/sys/fs/cgroup",
            "-maxdepth",
            "6",
            "-type",
            "d",
            "-name",
            &format!("rkt-{uuid}"),
        ])
        .output()
        .expect("find");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

fn uuid_of(host: &common::Session) -> String {
    host.read("/tmp/pod.uuid").trim().to_string()
}

#[test]
fn memory_over_the_limit_is_killed_and_reported() {
    let host = Host::new().start();
    let img = host.image();
    // dd's 64 MiB buffer cannot fit in 32M.
    let dd = |flags: &[&str]| {
        let mut args = vec!["run", "--net=none"];
        args.extend(flags);
        args.extend([
            img.as_str(),
            "--exec=/bin/dd",
            "--",
            "if=/dev/zero",
            "of=/dev/null",
            "bs=64M",
            "count=1",
        ]);
        host.rkt(&args)
    };
    let out = dd(&["--memory=32M", "--uuid-file-save=/tmp/pod.uuid"]);
    assert_eq!(out.code, 137, "killed by SIGKILL: {out:?}");
    assert!(
        out.stderr
            .contains("the kernel killed the app: out of memory"),
        "{}",
        out.stderr
    );
    let uuid = uuid_of(&host);
    let status = host.rkt(&["status", &uuid]).ok();
    assert!(
        status.lines().contains(&"oom-killed=true"),
        "{}",
        status.stdout
    );
    assert!(
        status.lines().contains(&"memory=33554432"),
        "{}",
        status.stdout
    );
    assert!(cgroups_of(&uuid).is_empty(), "the pod's cgroup is gone");
    // The same app with room enough is not killed.
    let fine = dd(&["--memory=256M"]);
    assert_eq!(fine.code, 0, "{fine:?}");
    host.finish();
}

#[test]
fn cpu_limit_throttles_a_busy_loop() {
    let host = Host::new().start();
    let img = host.image();
    // The shell's children's CPU time (ticks of 10 ms) after 2 s of a busy loop.
    let busy = "timeout 2 sh -c 'while :; do :; done'; cut -d' ' -f16,17 /proc/$$/stat";
    let ticks = |flags: &[&str]| -> u64 {
        let mut args = vec!["run", "--net=none", "--uuid-file-save=/tmp/pod.uuid"];
        args.extend(flags);
        args.extend([img.as_str(), "--exec=/bin/sh", "--", "-c", busy]);
        let out = host.rkt(&args).ok();
        out.stdout
            .split_whitespace()
            .filter_map(|t| t.parse::<u64>().ok())
            .sum()
    };
    let limited = ticks(&["--cpu=100m"]);
    let uuid = uuid_of(&host);
    let status = host.rkt(&["status", &uuid]).ok();
    assert!(status.lines().contains(&"cpu=100m"), "{}", status.stdout);
    assert!(cgroups_of(&uuid).is_empty(), "the pod's cgroup is gone");
    let free = ticks(&[]);
    eprintln!("busy loop for 2 s: {limited} ticks with --cpu=100m, {free} without");
    assert!(
        limited < 60,
        "100m is a tenth of a CPU: {limited} ticks of 200"
    );
    assert!(
        free > 2 * limited,
        "without a limit the loop runs: {free} vs {limited}"
    );
    host.finish();
}

#[test]
fn bad_limits_are_refused() {
    let host = Host::new().start();
    let img = host.image();
    for (flag, says) in [
        ("--memory=1M", "--memory=1M: below 4M"),
        ("--memory=lots", "--memory=lots: not a size"),
        ("--cpu=5m", "--cpu=5m: below 10m"),
        ("--cpu=half", "--cpu=half: not a CPU amount"),
    ] {
        host.rkt(&["run", "--net=none", flag, &img, "--exec=/bin/true"])
            .fails_with(254, says);
    }
    assert!(host.pods("").is_empty(), "nothing was created");
    host.finish();
}
