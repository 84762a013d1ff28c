//! Issue 15: the image store. `rkt image list` shows what was imported
//! (id, name, size, import time, pods using it); `rkt image rm` is
//! refused while a pod runs the image; after rm and `rkt image gc` the
//! layer directory holds nothing unreferenced.

mod common;

use common::Host;

#[test]
fn list_rm_and_gc() {
    let image = common::image::oci_layout();
    let image = image.to_str().unwrap();
    let host = Host::new().start();
    let images = || {
        host.rkt(&["image", "list", "--format=json"])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    assert_eq!(images(), "[]");
    let run = host.rkt_spawn(&["run", "--net=none", image, "--exec=/bin/sleep", "--", "30"]);
    let uuid = host.wait_running(1).remove(0);
    let list: serde_json::Value = serde_json::from_str(&images()).unwrap();
    let img = &list[0];
    assert_eq!(img["name"], "busybox-test:1");
    assert_eq!(img["pods"], 1);
    assert!(img["size"].as_u64().unwrap() > 500_000, "{img}");
    let id = img["id"].as_str().unwrap().to_string();
    let tabbed = host.rkt(&["image", "list"]).ok();
    assert!(
        tabbed
            .stdout
            .starts_with("ID\tNAME\tSIZE\tIMPORT TIME\tPODS"),
        "{}",
        tabbed.stdout
    );
    assert!(
        tabbed.stdout.contains("busybox-test:1"),
        "{}",
        tabbed.stdout
    );
    // Refused while the pod runs, by name or by id prefix.
    let e = host
        .rkt(&["image", "rm", "busybox-test:1"])
        .fails_with(254, "uses it; stop that pod first");
    assert!(e.contains(&uuid), "{e}");
    host.rkt(&["image", "rm", &id[..16]])
        .fails_with(254, "uses it");
    host.rkt(&["image", "rm", "no-such-image"])
        .fails_with(254, "no such image");
    // gc keeps what an image names.
    host.rkt(&["image", "gc"]).ok();
    assert!(!host.ls("/var/lib/rkt/cas/layers/sha256").is_empty());
    host.rkt(&["stop", &uuid]).ok();
    run.wait_with_output().unwrap();
    host.rkt(&["rm", &uuid]).ok();
    let removed = host.rkt(&["image", "rm", "busybox-test:1"]).ok();
    assert!(removed.stdout.contains(&id), "{}", removed.stdout);
    assert_eq!(images(), "[]");
    let gc = host.rkt(&["image", "gc"]).ok();
    assert!(
        gc.stdout.starts_with("removed layer sha256:"),
        "{}",
        gc.stdout
    );
    assert!(
        host.ls("/var/lib/rkt/cas/layers/sha256").is_empty(),
        "no unreferenced layer left"
    );
    // A new run imports it again.
    host.rkt(&["run", "--net=none", image, "--exec=/bin/true"])
        .ok();
    assert_eq!(host.ls("/var/lib/rkt/cas/images").len(), 1);
    host.finish();
}

/// Importing on a terminal shows the layer and the bytes so far; without
/// a terminal nothing is shown.
#[test]
fn import_progress_on_a_terminal() {
    let image = common::image::oci_archive();
    let image = image.to_str().unwrap();
    let host = Host::new().start();
    let rkt = common::rkt_bin().display().to_string();
    let cmd = format!("{rkt} run --net=none {image} --exec=/bin/true");
    let on_tty = host.exec(&["script", "-qec", &cmd, "/dev/null"]).ok();
    assert!(
        on_tty
            .stdout
            .contains("importing busybox-oci-3.tar: layer 1 of 1")
            && on_tty.stdout.contains("MiB"),
        "{on_tty:?}"
    );
    host.rkt(&["image", "rm", "busybox-test:1"]).ok();
    host.rkt(&["image", "gc"]).ok();
    let no_tty = host
        .rkt(&["run", "--net=none", image, "--exec=/bin/true"])
        .ok();
    assert!(!no_tty.stderr.contains("importing"), "{no_tty:?}");
    host.finish();
}
