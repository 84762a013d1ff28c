//! Issue 2 acceptance: the runtime and its networking stage, against the
//! real kernel, each test in a throwaway host.

mod common;

use common::{plugin_sets, Host};

/// Acceptance 1, the default network: eth0 in 172.16.28.0/24, a default route via
/// the gateway, a lease holding the pod UUID while the pod runs, gone after.
#[test]
fn default_network() {
    for (set, flags) in plugin_sets() {
        let o = Host::new()
            .global(flags)
            .run(
                r#"
rkt run --net=default "$IMG" --exec=/bin/sh -- -c 'ip -o -4 addr show eth0; ip route; sleep 1' > out &
sleep 0.6
uuid=$(rkt list --full --no-legend | awk '{print $1}')
echo "UUID=$uuid"
echo "LEASE=$(head -n1 /var/lib/cni/networks/default/172.16.28.* | tr -d '\r')"
wait $!
cat out
echo "AFTER=$(ls /var/lib/cni/networks/default | grep -c 172.16.28 || true)"
"#,
            )
            .ok();
        let uuid = o.value("UUID").unwrap();
        assert_eq!(uuid.len(), 36, "{set}: {o:?}");
        assert_eq!(
            o.value("LEASE").as_deref(),
            Some(uuid.as_str()),
            "{set}: {}",
            o.stdout
        );
        assert!(o.stdout.contains("inet 172.16.28."), "{set}: {}", o.stdout);
        assert!(
            o.stdout.contains("default via 172.16.28.1 dev eth0"),
            "{set}: {}",
            o.stdout
        );
        assert_eq!(
            o.value("AFTER").as_deref(),
            Some("0"),
            "{set}: {}",
            o.stdout
        );
    }
}
