//! Issue 15: two-phase start. `rkt prepare [run flags] IMAGE` makes a pod
//! (`prepared` in `rkt list`) without running it; `rkt run-prepared
//! [--net=...] UUID` runs it on the networks given then and returns the
//! app's exit code; UUID files go both ways; `rkt gc` removes prepared
//! pods past `--expire-prepared`, `rkt rm` removes one at once.

mod common;

use common::Host;

#[test]
fn prepare_then_run_prepared() {
    let host = Host::new().start();
    let img = host.image();
    let out = host
        .rkt(&[
            "prepare",
            "--uuid-file-save=/tmp/prepared.uuid",
            "--set-env=WHO=prepared",
            &img,
            "--exec=/bin/sh",
            "--",
            "-c",
            "echo $WHO; ip -o -4 addr show eth0 | grep -c 172.16.28.; exit 7",
        ])
        .ok();
    let uuid = out.stdout.trim().to_string();
    assert_eq!(host.read("/tmp/prepared.uuid").trim(), uuid);
    assert_eq!(host.pods("prepared"), std::slice::from_ref(&uuid));
    let status = host.rkt(&["status", &uuid]).ok();
    assert!(
        status.lines().contains(&"state=prepared"),
        "{}",
        status.stdout
    );
    assert!(
        host.ls("/run/netns").is_empty(),
        "no namespace before run-prepared"
    );
    let ran = host.rkt(&[
        "run-prepared",
        "--net=default",
        "--uuid-file=/tmp/prepared.uuid",
    ]);
    assert_eq!(ran.code, 7, "the app's exit code: {ran:?}");
    assert_eq!(
        ran.lines(),
        ["prepared", "1"],
        "its flags, on the network given at run-prepared"
    );
    assert_eq!(host.pods("exited"), std::slice::from_ref(&uuid));
    // Only a prepared pod runs this way.
    host.rkt(&["run-prepared", &uuid])
        .fails_with(254, "is exited, not prepared");
    host.rkt(&["rm", &uuid]).ok();
    host.finish();
}

#[test]
fn prepared_pods_expire_or_are_removed() {
    let host = Host::new().start();
    let img = host.image();
    let prepare = || {
        host.rkt(&["prepare", &img, "--exec=/bin/true"])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    let (a, b) = (prepare(), prepare());
    host.rkt(&["gc"]).ok();
    assert_eq!(host.pods("prepared").len(), 2, "within 24 h they stay");
    host.rkt(&["rm", &a]).ok();
    assert_eq!(host.pods("prepared"), std::slice::from_ref(&b));
    let gc = host.rkt(&["gc", "--expire-prepared=0s"]).ok();
    assert!(
        gc.stdout
            .contains(&format!("Garbage collected prepared pod \"{b}\"")),
        "{}",
        gc.stdout
    );
    assert!(host.pods("").is_empty());
    // Bad flags are refused by prepare as by run, before anything exists.
    host.rkt(&["prepare", "--publish=8080:0", &img])
        .fails_with(254, "--publish=8080:0");
    host.rkt(&["gc", "--expire-prepared=soon"])
        .fails_with(254, "--expire-prepared=soon");
    assert!(host.pods("").is_empty());
    host.finish();
}
