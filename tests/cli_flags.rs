//! Issue 13's flag bugs, through the real CLI in a throwaway host: rkt's
//! documented `gc --grace-period=0`, durations that do not fit, a plugin
//! timeout of zero, and hostnames with `_`.

mod common;

use common::Host;

#[test]
fn duration_flags_and_hostnames() {
    let o = Host::new()
        .run(
            r#"
rkt gc --grace-period=0 > /dev/null 2> gc0.err && echo GC0=0 || echo "GC0=$?"
rkt gc --grace-period=9999999999999999h > /dev/null 2> big.err && echo BIG=0 || echo "BIG=$?"
echo "BIG_MSG=$(head -n1 big.err)"
rkt --net-plugin-timeout=0 run --net=none "$IMG" --exec=/bin/true 2> zero.err && echo ZERO=0 || echo "ZERO=$?"
echo "ZERO_MSG=$(head -n1 zero.err)"
rkt run --net=none --hostname=web_1 "$IMG" --exec=/bin/hostname > host.out 2> host.err && echo HOST=0 || echo "HOST=$?"
echo "HOSTNAME=$(cat host.out) $(head -n1 host.err)"
rkt gc --grace-period=0 > /dev/null
"#,
        )
        .ok();
    assert_eq!(o.value("GC0").as_deref(), Some("0"), "{}", o.stdout);
    // Refused with a message and an ordinary error code, not a panic (101)
    // or a wrapped value.
    assert_eq!(o.value("BIG").as_deref(), Some("254"), "{}", o.stdout);
    let big = o.value("BIG_MSG").unwrap();
    assert!(
        big.contains("--grace-period=9999999999999999h") && big.contains("too long"),
        "{big}"
    );
    assert_eq!(o.value("ZERO").as_deref(), Some("254"), "{}", o.stdout);
    assert!(
        o.value("ZERO_MSG")
            .unwrap()
            .contains("--net-plugin-timeout=0"),
        "{}",
        o.stdout
    );
    assert_eq!(o.value("HOST").as_deref(), Some("0"), "{}", o.stdout);
    assert_eq!(
        o.value("HOSTNAME").as_deref(),
        Some("web_1 "),
        "{}",
        o.stdout
    );
}
