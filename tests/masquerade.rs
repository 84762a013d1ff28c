//! Issue 3 acceptance 4: a pod on the default network reaches a throwaway
//! "upstream" namespace routed through the test host, with its source
//! address masqueraded; a pod on default-restricted cannot reach it. The
//! nftables state is one chain per network (not per pod) and is gone with
//! the network's last pod.

mod common;

use common::Host;

#[test]
fn default_pods_are_masqueraded_restricted_pods_stay_home() {
    let o = Host::new()
        .run(
            r#"ip netns add up
ip link add uphost type veth peer name uppeer netns up
ip addr add 10.199.0.1/24 dev uphost; ip link set uphost up
ip -n up addr add 10.199.0.2/24 dev uppeer; ip -n up link set uppeer up; ip -n up link set lo up
# The upstream has no route back to the pods: only masqueraded traffic gets an answer.
ip netns exec up nft add table inet count
ip netns exec up nft add chain inet count in '{ type filter hook input priority 0; }'
ip netns exec up nft add rule inet count in ip saddr 10.199.0.1 tcp dport 8080 counter
ip netns exec up nft add rule inet count in ip saddr 172.16.0.0/12 tcp dport 8080 counter
ip netns exec up busybox nc -ll -p 8080 -e /bin/echo hello-from-upstream &
srv=$!
sleep 0.2
rkt run --net=default "$IMG" --exec=/bin/sh -- -c 'sleep 1; echo "REACHED=$(nc 10.199.0.2 8080 </dev/null)"' > a &
rkt run --net=default "$IMG" --exec=/bin/sleep -- 1.5 >/dev/null &
wait_running 2
echo "CHAINS=$(nft list table inet rkt-cni | grep -c 'chain ')"
echo "RULES=$(nft list table inet rkt-cni | grep -c masquerade)"
wait %2 %3 || true
cat a
set +e
rkt run --net=default-restricted "$IMG" --exec=/bin/sh -- -c 'nc -w 1 10.199.0.2 8080 </dev/null 2>&1; echo "RESTRICTED_RC=$?"' > b
set -e
cat b
ip netns exec up nft list table inet count > counters
echo "MASQ=$(grep 'saddr 10.199.0.1' counters | sed 's/.*packets \([0-9]*\).*/\1/')"
echo "RAW=$(grep 'saddr 172.16.0.0/12' counters | sed 's/.*packets \([0-9]*\).*/\1/')"
echo "TABLE_AFTER=$(nft list tables | grep -c rkt-cni || true)"
kill $srv; wait $srv || true
ip link del uphost; ip netns del up
rkt gc --grace-period=0s > /dev/null
"#,
        )
        .ok();
    assert_eq!(
        o.value("REACHED").as_deref(),
        Some("hello-from-upstream"),
        "{}",
        o.stdout
    );
    assert_eq!(
        o.value("CHAINS").as_deref(),
        Some("1"),
        "one chain for the network, none per pod"
    );
    assert_eq!(o.value("RULES").as_deref(), Some("1"));
    assert_ne!(
        o.value("RESTRICTED_RC").as_deref(),
        Some("0"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("unreachable"), "{}", o.stdout);
    assert_ne!(
        o.value("MASQ").as_deref(),
        Some("0"),
        "arrives from the host's address: {}",
        o.stdout
    );
    assert_eq!(
        o.value("RAW").as_deref(),
        Some("0"),
        "never from the pod's own address"
    );
    assert_eq!(
        o.value("TABLE_AFTER").as_deref(),
        Some("0"),
        "gone with the last pod"
    );
}
