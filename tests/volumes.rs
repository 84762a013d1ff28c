//! Issue 15: rkt's volume tests re-expressed (`tests/rkt_volume_test.go`,
//! `rkt_etc_hosts_test.go` case 1): host volumes read and written, readOnly
//! enforced, empty volumes with mode/uid/gid, one volume at two targets,
//! `/etc/hosts` from a volume, the image's own mount points; a target that
//! a symlink in the image points outside the root stays inside it; bad
//! flags are refused before anything exists.

mod common;

use common::Host;

/// `rkt run --net=none [flags] IMG --exec=/bin/sh -- -c script`.
fn sh(host: &common::Session, image: &str, flags: &[&str], script: &str) -> common::Outcome {
    let mut args = vec!["run", "--net=none"];
    args.extend(flags);
    args.extend([image, "--exec=/bin/sh", "--", "-c", script]);
    host.rkt(&args)
}

#[test]
fn host_empty_and_read_only_volumes() {
    let host = Host::new().start();
    let img = host.image();
    host.write("/tmp/shared/hello", "from-the-host\n");
    let host_vol = [
        "--volume=shared,kind=host,source=/tmp/shared",
        "--mount=volume=shared,target=/mnt/shared",
    ];
    let out = sh(
        &host,
        &img,
        &host_vol,
        "cat /mnt/shared/hello && echo from-the-pod > /mnt/shared/back",
    )
    .ok();
    assert_eq!(out.lines(), ["from-the-host"]);
    assert_eq!(
        host.read("/tmp/shared/back"),
        "from-the-pod\n",
        "the pod's write reaches the host"
    );
    // readOnly really is read-only.
    let ro = sh(
        &host,
        &img,
        &[
            "--volume=shared,kind=host,source=/tmp/shared,readOnly=true",
            "--mount=volume=shared,target=/mnt/shared",
        ],
        "cat /mnt/shared/hello; touch /mnt/shared/x 2>&1; true",
    )
    .ok();
    assert_eq!(
        ro.lines(),
        [
            "from-the-host",
            "touch: /mnt/shared/x: Read-only file system"
        ]
    );
    // An empty volume with its mode and owner, at two targets.
    let empty = sh(
        &host,
        &img,
        &[
            "--volume=scratch,kind=empty,mode=0750,uid=1000,gid=1001",
            "--mount=volume=scratch,target=/a",
            "--mount=volume=scratch,target=/b/c",
        ],
        "stat -c '%a %u %g' /a && echo via-a > /a/f && cat /b/c/f",
    )
    .ok();
    assert_eq!(empty.lines(), ["750 1000 1001", "via-a"]);
    // Nothing of the pod's mounts is on the host.
    let mounts = host.read("/proc/self/mountinfo");
    assert!(!mounts.contains("/mnt/shared"), "{mounts}");
    host.finish();
}

/// rkt's TestEtcHosts case 1: a volume at /etc/hosts is the pod's
/// /etc/hosts (not overwritten by the runtime's own).
#[test]
fn etc_hosts_from_a_volume() {
    let host = Host::new().start();
    host.write("/tmp/hosts", "10.9.8.7 supplied-by-a-volume\n");
    let out = sh(
        &host,
        &host.image(),
        &[
            "--volume=hosts,kind=host,source=/tmp/hosts,readOnly=true",
            "--mount=volume=hosts,target=/etc/hosts",
        ],
        "cat /etc/hosts",
    )
    .ok();
    assert_eq!(out.lines(), ["10.9.8.7 supplied-by-a-volume"]);
    host.finish();
}

/// An OCI image's `Volumes` (`/data`) get an empty volume of their own
/// unless a `--mount` covers them.
#[test]
fn image_mount_points_get_empty_volumes() {
    let image = common::image::oci_layout();
    let image = image.to_str().unwrap();
    let host = Host::new().start();
    let out = sh(
        &host,
        image,
        &[],
        "grep -c ' /data ' /proc/self/mountinfo; touch /data/x && echo writable",
    )
    .ok();
    assert_eq!(out.lines(), ["1", "writable"]);
    host.write("/tmp/d/own", "mine\n");
    let covered = sh(
        &host,
        image,
        &[
            "--volume=d,kind=host,source=/tmp/d",
            "--mount=volume=d,target=/data",
        ],
        "cat /data/own",
    )
    .ok();
    assert_eq!(covered.lines(), ["mine"]);
    host.finish();
}

/// The image points `/escape` at a host directory (an absolute symlink,
/// and a relative one climbing out): a volume mounted there lands inside
/// the pod's root (its own /tmp/victim), the host directory is untouched;
/// where the link leads nowhere in the root, the mount is refused.
#[test]
fn symlinked_targets_stay_inside_the_root() {
    let host = Host::new().start();
    host.exec(&["cp", "-a", &host.image(), "/tmp/img"]).ok();
    host.exec(&["mkdir", "-p", "/tmp/victim"]).ok();
    host.exec(&["ln", "-s", "/tmp/victim", "/tmp/img/escape"])
        .ok();
    host.exec(&["ln", "-s", "../../../../../../tmp/victim", "/tmp/img/climb"])
        .ok();
    host.write("/tmp/src/payload", "x\n");
    let dangling = sh(
        &host,
        "/tmp/img",
        &[
            "--volume=v,kind=host,source=/tmp/src",
            "--mount=volume=v,target=/escape",
        ],
        "true",
    );
    dangling.fails_with(254, "volume at /escape: cannot make the target directory");
    host.exec(&["mkdir", "-p", "/tmp/img/tmp/victim"]).ok();
    for target in ["/escape", "/climb/sub"] {
        let mount = format!("--mount=volume=v,target={target}");
        let out = sh(
            &host,
            "/tmp/img",
            &["--volume=v,kind=host,source=/tmp/src", &mount],
            &format!("cat {target}/payload"),
        )
        .ok();
        assert_eq!(out.lines(), ["x"], "{target}");
    }
    assert!(
        host.ls("/tmp/victim").is_empty(),
        "nothing reached the host's /tmp/victim"
    );
    host.finish();
}

#[test]
fn bad_volume_flags_are_refused() {
    let host = Host::new().start();
    let img = host.image();
    for (flags, says) in [
        (
            &["--mount=volume=nope,target=/x"][..],
            "--mount=volume=nope,target=/x: no --volume named \"nope\" (defined: none)",
        ),
        (
            &["--volume=v,kind=host,source=/nonexistent"],
            "--volume=v,kind=host,source=/nonexistent: source /nonexistent",
        ),
        (
            &["--volume=v,kind=empty", "--mount=volume=v,target=relative"],
            "target \"relative\" is not an absolute path",
        ),
        (
            &["--volume=v,kind=tmpfs"],
            "kind \"tmpfs\" is not host or empty",
        ),
        (
            &["--volume=v,kind=empty,mode=abc"],
            "mode \"abc\" is not an octal mode",
        ),
    ] {
        sh(&host, &img, flags, "true").fails_with(254, says);
    }
    assert!(host.pods("").is_empty(), "nothing was created");
    host.finish();
}
