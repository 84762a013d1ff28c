//! Issue 15, the first of rkt's run flags: the app's environment
//! (`--set-env`, `--set-env-file`), its working directory, and the UUID
//! file that `rkt run --uuid-file-save` writes and `status`, `enter`,
//! `stop` and `rm --uuid-file` read.

mod common;

use common::Host;

/// The image says GREETING=hello-oci, PATH=/bin and WorkingDir /tmp; the
/// flags replace and add, the file's variables come before the flags'.
#[test]
fn environment_and_working_dir() {
    let image = common::image::oci_layout();
    let image = image.to_str().unwrap();
    let host = Host::new().start();
    host.write(
        "/tmp/app.env",
        "# the app's settings\nGREETING=from-file\nFILE_ONLY=1\n\nLEVEL=file\n",
    );
    let show = [
        "/bin/sh",
        "-c",
        "echo \"$GREETING $LEVEL $FILE_ONLY $EXTRA\"; pwd",
    ];
    let run = |flags: &[&str]| {
        let mut args = vec!["run", "--net=none"];
        args.extend(flags);
        args.extend([image, "--exec=/bin/sh", "--"]);
        args.extend(&show[1..]);
        host.rkt(&args)
    };
    let plain = run(&[]).ok();
    assert_eq!(plain.lines(), ["hello-oci   ", "/tmp"], "the image's own");
    let flagged = run(&[
        "--set-env-file=/tmp/app.env",
        "--set-env=LEVEL=flag",
        "--set-env=EXTRA=x y",
        "--working-dir=/etc",
    ])
    .ok();
    assert_eq!(flagged.lines(), ["from-file flag 1 x y", "/etc"]);
    // Refused before anything exists, naming the flag.
    for (flags, says) in [
        (&["--set-env=NOVALUE"][..], "--set-env=NOVALUE"),
        (&["--set-env==x"], "--set-env==x"),
        (
            &["--set-env-file=/nonexistent"],
            "--set-env-file=/nonexistent",
        ),
        (&["--working-dir=relative"], "--working-dir=relative"),
    ] {
        run(flags).fails_with(254, says);
    }
    host.write("/tmp/bad.env", "A=1\nnot a variable\n");
    let bad = run(&["--set-env-file=/tmp/bad.env"]).fails_with(254, "--set-env-file=/tmp/bad.env");
    assert!(bad.contains("line 2"), "{bad}");
    let pods = host.list_json();
    assert_eq!(
        pods.as_array().unwrap().len(),
        2,
        "only the two pods that ran: {pods}"
    );
    host.rkt(&["gc", "--grace-period=0s"]).ok();
    host.finish();
}

/// `--uuid-file-save` then `--uuid-file` through status, enter,
/// cat-manifest, stop and rm.
#[test]
fn uuid_files_round_trip() {
    let host = Host::new().start();
    let (run, uuid) = host.pod_in_background(
        "none",
        &["--uuid-file-save=/tmp/pod.uuid"],
        &["/bin/sleep", "30"],
    );
    assert_eq!(host.read("/tmp/pod.uuid"), format!("{uuid}\n"));
    let status = host.rkt(&["status", "--uuid-file=/tmp/pod.uuid"]).ok();
    assert!(status.lines().contains(&"state=running"), "{status:?}");
    let entered = host
        .rkt(&["enter", "--uuid-file=/tmp/pod.uuid", "/bin/hostname"])
        .ok();
    assert_eq!(entered.stdout.trim(), format!("rkt-{uuid}"));
    let manifest = host
        .rkt(&["cat-manifest", "--uuid-file=/tmp/pod.uuid"])
        .ok();
    let m: serde_json::Value =
        serde_json::from_str(&manifest.stdout).expect("cat-manifest prints JSON");
    assert_eq!(m["uuid"], uuid.as_str());
    assert_eq!(m["app"]["exec"], serde_json::json!(["/bin/sleep", "30"]));
    let one_line = host
        .rkt(&["cat-manifest", "--pretty-print=false", &uuid])
        .ok();
    assert_eq!(one_line.lines().len(), 1);
    host.rkt(&["stop", "--uuid-file=/tmp/pod.uuid"]).ok();
    run.wait_with_output().expect("rkt run");
    host.rkt(&["rm", "--uuid-file=/tmp/pod.uuid"]).ok();
    assert_eq!(host.list_json(), serde_json::json!([]));
    // Both or neither: refused; a missing file named.
    host.rkt(&["status", &uuid, "--uuid-file=/tmp/pod.uuid"])
        .fails_with(254, "not both");
    host.rkt(&["rm"]).fails_with(254, "--uuid-file");
    host.rkt(&["status", "--uuid-file=/tmp/none"])
        .fails_with(254, "--uuid-file=/tmp/none");
    // A UUID file that cannot be written: the pod is not started.
    let img = host.image();
    host.rkt(&[
        "run",
        "--net=none",
        "--uuid-file-save=/nonexistent/dir/pod.uuid",
        &img,
        "--exec=/bin/true",
    ])
    .fails_with(254, "--uuid-file-save=/nonexistent/dir/pod.uuid");
    assert_eq!(host.list_json(), serde_json::json!([]));
    host.finish();
}

/// Issue 15: `--user` and `--group`, by number or by the image's names;
/// a non-root app holds no capability; unknown names are refused before
/// anything exists.
#[test]
fn user_and_group() {
    let host = Host::new().start();
    host.exec(&["cp", "-a", &host.image(), "/tmp/img"]).ok();
    host.write(
        "/tmp/img/etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1001::/:/bin/sh\n",
    );
    host.write(
        "/tmp/img/etc/group",
        "root:x:0:\nweb:x:1001:\nstaff:x:50:web,other\n",
    );
    let run = |flags: &[&str], argv: &[&str]| {
        let mut args = vec!["run", "--net=none"];
        args.extend(flags);
        args.extend(["/tmp/img", "--exec", argv[0], "--"]);
        args.extend(&argv[1..]);
        host.rkt(&args)
    };
    let ids = |flags: &[&str]| {
        run(flags, &["/bin/sh", "-c", "echo $(id -u) $(id -g) $(id -G)"])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    assert_eq!(ids(&[]), "0 0 0", "root by default");
    assert_eq!(
        ids(&["--user=web"]),
        "1000 1001 1001 50",
        "the user's group and its supplementary groups"
    );
    assert_eq!(ids(&["--user=web", "--group=staff"]), "1000 50 50");
    assert_eq!(
        ids(&["--user=4321", "--group=765"]),
        "4321 765 765",
        "numbers need no entry"
    );
    assert_eq!(ids(&["--group=web"]), "0 1001 1001");
    let caps = run(
        &["--user=web"],
        &["/bin/grep", "CapEff", "/proc/self/status"],
    )
    .ok();
    assert!(
        caps.stdout.contains("0000000000000000"),
        "a non-root app holds no capability: {}",
        caps.stdout
    );
    let root_caps = run(&[], &["/bin/grep", "CapEff", "/proc/self/status"]).ok();
    assert!(
        !root_caps.stdout.contains("0000000000000000"),
        "{}",
        root_caps.stdout
    );
    for (flags, says) in [
        (
            &["--user=nobody"][..],
            "--user=nobody: no such user in the image's /etc/passwd (it has: root, web)",
        ),
        (
            &["--group=wheel"],
            "--group=wheel: no such group in the image's /etc/group (it has: root, web, staff)",
        ),
        (&["--user=4294967295"], "--user=4294967295: no such user"),
    ] {
        run(flags, &["/bin/true"]).fails_with(254, says);
    }
    // A passwd that is a symlink is not followed.
    host.exec(&["rm", "/tmp/img/etc/passwd"]).ok();
    host.exec(&["ln", "-s", "/proc/1/environ", "/tmp/img/etc/passwd"])
        .ok();
    run(&["--user=web"], &["/bin/true"]).fails_with(254, "is not a regular file");
    assert!(host.pods("").is_empty(), "nothing was created");
    host.finish();
}

/// Issue 15: `--readonly-rootfs`: writes to the root fail, /dev/shm and
/// /proc stay as they are, an empty volume gives it a writable /tmp.
#[test]
fn readonly_rootfs() {
    let host = Host::new().start();
    let out = host
        .in_pod_with(
            "none",
            &["--readonly-rootfs"],
            &[
                "/bin/sh",
                "-c",
                "touch /x 2>&1; touch /etc/y 2>&1; touch /dev/shm/z && echo shm-ok",
            ],
        )
        .ok();
    assert_eq!(
        out.lines(),
        [
            "touch: /x: Read-only file system",
            "touch: /etc/y: Read-only file system",
            "shm-ok"
        ]
    );
    let rw = host
        .in_pod("none", &["/bin/sh", "-c", "touch /x && echo rw-ok"])
        .ok();
    assert_eq!(rw.lines(), ["rw-ok"]);
    host.finish();
}
