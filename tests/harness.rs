//! The harness itself: a throwaway host cannot write outside its
//! temporary directories, and its leak check does catch a leftover.

mod common;

use common::Host;

#[test]
fn a_test_host_writes_only_to_its_temporary_directories() {
    let host = Host::new().start();
    let repo = env!("CARGO_MANIFEST_DIR");
    for outside in [
        format!("{repo}/harness-write-probe"),
        "/root/harness-write-probe".to_string(),
        "/var/tmp/harness-write-probe".to_string(),
    ] {
        let o = host.exec(&["touch", &outside]);
        assert_ne!(o.code, 0, "{outside} was writable: {o:?}");
        assert!(
            o.stderr.contains("Read-only file system"),
            "{outside}: {o:?}"
        );
        assert!(!std::path::Path::new(&outside).exists(), "{outside}");
    }
    // The state directories are the host's own tmpfs: writable, and
    // nothing written there reaches the machine.
    let probe = format!("harness-probe-{}", std::process::id());
    for dir in ["/tmp", "/run", "/etc/rkt", "/var/lib/rkt", "/var/lib/cni"] {
        let p = format!("{dir}/{probe}");
        host.exec(&["touch", &p]).ok();
        assert!(
            !std::path::Path::new(&p).exists(),
            "{p} reached the machine"
        );
    }
    host.finish();
}

#[test]
fn the_leak_check_catches_a_leftover() {
    let host = Host::new().start();
    host.exec(&["ip", "netns", "add", "left-behind"]).ok();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| host.finish()));
    let msg = caught.expect_err("a leftover netns must fail the test");
    let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("LEAK: netns left-behind"), "{msg}");
}
