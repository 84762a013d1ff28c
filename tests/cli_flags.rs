//! Issue 13's flag bugs, through the real CLI in a throwaway host: rkt's
//! documented `gc --grace-period=0`, durations that do not fit, a plugin
//! timeout of zero, and hostnames with `_`.

mod common;

use common::Host;

#[test]
fn duration_flags_and_hostnames() {
    let host = Host::new().start();
    host.rkt(&["gc", "--grace-period=0"]).ok();
    // Refused with a message and an ordinary error code, not a panic (101)
    // or a wrapped value.
    let big = host
        .rkt(&["gc", "--grace-period=9999999999999999h"])
        .fails_with(254, "--grace-period=9999999999999999h");
    assert!(big.contains("too long"), "{big}");
    let img = host.image();
    host.rkt(&[
        "--net-plugin-timeout=0",
        "run",
        "--net=none",
        &img,
        "--exec=/bin/true",
    ])
    .fails_with(254, "--net-plugin-timeout=0");
    let named = host
        .rkt(&[
            "run",
            "--net=none",
            "--hostname=web_1",
            &img,
            "--exec=/bin/hostname",
        ])
        .ok();
    assert_eq!(named.stdout.trim(), "web_1");
    host.rkt(&["gc", "--grace-period=0"]).ok();
    host.finish();
}
