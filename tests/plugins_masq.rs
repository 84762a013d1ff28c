//! IP masquerade of the bundled ptp: a pod with `ipMasq` reaches an
//! "upstream" netns (made by the test, routed through the throwaway host,
//! with no route back to the pod subnet) and arrives with the host's
//! address; our nftables table holds no per-pod chain and goes away with
//! the network's last pod; a pod without masquerade does not get through.

mod common;

use common::Host;

const SETUP: &str = r#"
ip netns add up
ip link add uphost type veth peer name eth0 netns up
ip addr add 10.200.0.1/24 dev uphost
ip link set uphost up
ip -n up addr add 10.200.0.2/24 dev eth0
ip -n up link set eth0 up
ip -n up link set lo up
cni() { # verb netns conf
  CNI_COMMAND=$1 CNI_CONTAINERID=c-$2 CNI_NETNS=/run/netns/$2 CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni "$BIN_DIR/ptp" <<<"$3"; }
MASQ='{"cniVersion":"1.0.0","name":"default","type":"ptp","ipMasq":true,"ipam":{"type":"host-local","subnet":"172.16.28.0/24","routes":[{"dst":"0.0.0.0/0"}]}}'
PLAIN='{"cniVersion":"1.0.0","name":"plain","type":"ptp","ipMasq":false,"ipam":{"type":"host-local","subnet":"172.18.0.0/24","routes":[{"dst":"0.0.0.0/0"}]}}'
# One TCP connection from netns $1 to the upstream; prints the peer address
# the upstream saw (or nothing).
probe() {
  rm -f /tmp/peer
  ip netns exec up python3 -c '
import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.200.0.2",8080)); s.listen(1); s.settimeout(3)
try:
    c,a=s.accept(); open("/tmp/peer","w").write(a[0]); c.close()
except Exception: pass
' &
  srv=$!
  sleep 0.3
  ip netns exec "$1" python3 -c '
import socket
s=socket.create_connection(("10.200.0.2",8080),timeout=2); s.close()' 2>/dev/null || true
  wait $srv
  cat /tmp/peer 2>/dev/null || true
}
"#;

#[test]
fn masquerade_reaches_upstream_with_host_address() {
    let o = Host::new()
        .run(&format!(
            r#"{SETUP}
ip netns add p1; ip netns add p2; ip netns add p3
cni ADD p1 "$MASQ" >/dev/null
cni ADD p2 "$MASQ" >/dev/null
cni ADD p3 "$PLAIN" >/dev/null
echo "PEER1=$(probe p1)"
echo "PEER3=$(probe p3)"
echo "CHAINS=$(nft list table inet rkt-cni | grep -c 'chain masq-')"
echo "CNICHAINS=$(nft list ruleset | grep -c 'chain CNI-' || true)"
cni DEL p1 "$MASQ"
echo "TABLE_AFTER_FIRST=$(nft list tables | grep -c rkt-cni || true)"
echo "PEER2=$(probe p2)"
cni DEL p2 "$MASQ"
cni DEL p3 "$PLAIN"
echo "TABLE_AFTER_LAST=$(masq_tables)"
ip netns del p1; ip netns del p2; ip netns del p3; ip link del uphost; ip netns del up
"#
        ))
        .ok();
    assert_eq!(
        o.value("PEER1").as_deref(),
        Some("10.200.0.1"),
        "{}",
        o.stdout
    );
    assert_eq!(
        o.value("PEER2").as_deref(),
        Some("10.200.0.1"),
        "{}",
        o.stdout
    );
    // No masquerade: the upstream has no route back, the connection fails.
    assert_eq!(o.value("PEER3").as_deref(), Some(""), "{}", o.stdout);
    // One masquerade chain for the network, whatever the number of pods
    // (beside it the source check, `src-default`: tests/netsec.rs).
    assert_eq!(o.value("CHAINS").as_deref(), Some("1"), "{}", o.stdout);
    assert_eq!(o.value("CNICHAINS").as_deref(), Some("0"), "{}", o.stdout);
    assert_eq!(
        o.value("TABLE_AFTER_FIRST").as_deref(),
        Some("1"),
        "{}",
        o.stdout
    );
    assert_eq!(
        o.value("TABLE_AFTER_LAST").as_deref(),
        Some("0"),
        "{}",
        o.stdout
    );
}

/// Pods of one network from two subnets are both masqueraded; the first
/// one leaving keeps the other's state.
#[test]
fn masquerade_several_subnets_of_one_network() {
    let o = Host::new()
        .run(&format!(
            r#"{SETUP}
MASQ2=$(echo "$MASQ" | sed 's#172.16.28.0/24#172.16.29.0/24#')
ip netns add p1; ip netns add p2
cni ADD p1 "$MASQ" >/dev/null
cni ADD p2 "$MASQ2" >/dev/null
echo "ELEMENTS=$(nft list table inet rkt-cni | grep 'saddr' | grep -o '172.16.2[89].0/2[34]' | sort -u | tr '\n' ' ')"
cni DEL p1 "$MASQ"
echo "PEER2=$(probe p2)"
cni DEL p2 "$MASQ2"
echo "TABLE=$(masq_tables)"
ip netns del p1; ip netns del p2; ip link del uphost; ip netns del up
"#
        ))
        .ok();
    assert_eq!(
        o.value("ELEMENTS").as_deref(),
        // nft merges the two adjacent /24s into one interval.
        Some("172.16.28.0/23 "),
        "{}",
        o.stdout
    );
    assert_eq!(
        o.value("PEER2").as_deref(),
        Some("10.200.0.1"),
        "{}",
        o.stdout
    );
    assert_eq!(o.value("TABLE").as_deref(), Some("0"), "{}", o.stdout);
}

/// CNI GC (1.1.0) forgets the masquerade membership of attachments the
/// runtime no longer has, and removes the table with the last.
#[test]
fn masquerade_gc_forgets_stale_attachments() {
    let o = Host::new()
        .run(&format!(
            r#"{SETUP}
M11=$(echo "$MASQ" | sed 's/"1.0.0"/"1.1.0"/')
ip netns add p1; ip netns add p2
cni ADD p1 "$M11" >/dev/null
cni ADD p2 "$M11" >/dev/null
gc() {{ CNI_COMMAND=GC CNI_PATH=/usr/lib/cni "$BIN_DIR/ptp" <<<"$1"; }}
gc "$(jq -c '. + {{"cni.dev/valid-attachments": [{{"containerID": "c-p2", "ifname": "eth0"}}]}}' <<<"$M11")"
echo "MEMBERS=$(ls /run/rkt-cni/net/default/pods | tr '\n' ' ')"
echo "PEER2=$(probe p2)"
gc "$(jq -c '. + {{"cni.dev/valid-attachments": []}}' <<<"$M11")"
echo "TABLE=$(masq_tables)"
cni DEL p1 "$M11"; cni DEL p2 "$M11"
ip netns del p1; ip netns del p2; ip link del uphost; ip netns del up
"#
        ))
        .ok();
    assert_eq!(
        o.value("MEMBERS").as_deref(),
        Some("c-p2-eth0 "),
        "{}",
        o.stdout
    );
    assert_eq!(
        o.value("PEER2").as_deref(),
        Some("10.200.0.1"),
        "{}",
        o.stdout
    );
    assert_eq!(o.value("TABLE").as_deref(), Some("0"), "{}", o.stdout);
}

/// Concurrent ADD and DEL on one network keep the state consistent: all
/// pods masqueraded while up, the table gone after the last.
#[test]
fn masquerade_concurrent_add_del() {
    let o = Host::new()
        .run(&format!(
            r#"{SETUP}
for i in $(seq 1 8); do ip netns add n$i; done
for i in $(seq 1 8); do cni ADD n$i "$MASQ" >/dev/null & done; wait
echo "MEMBERS=$(ls /run/rkt-cni/net/default/pods | wc -l)"
echo "ELEMENTS=$(nft list table inet rkt-cni | grep -c masquerade)"
for i in $(seq 1 8); do cni DEL n$i "$MASQ" & done; wait
echo "TABLE=$(masq_tables)"
for i in $(seq 1 8); do ip netns del n$i; done
ip link del uphost; ip netns del up
"#
        ))
        .ok();
    assert_eq!(o.value("MEMBERS").as_deref(), Some("8"), "{}", o.stdout);
    assert_eq!(o.value("ELEMENTS").as_deref(), Some("1"), "{}", o.stdout);
    assert_eq!(o.value("TABLE").as_deref(), Some("0"), "{}", o.stdout);
}

/// Acceptance 4 through the runtime with the bundled plugins: a pod on the
/// `default` network reaches the upstream with the host's address; a pod on
/// `default-restricted` (no default route, no masquerade) does not.
#[test]
fn rkt_pods_default_masqueraded_restricted_not() {
    let o = Host::new()
        .run(&format!(
            r#"{SETUP}
listen() {{
  rm -f /tmp/peer
  ip netns exec up python3 -c '
import socket
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.200.0.2",8080)); s.listen(1); s.settimeout(6)
try:
    c,a=s.accept(); open("/tmp/peer","w").write(a[0]); c.close()
except Exception: pass
' &
  srv=$!
  sleep 0.3
}}
listen
rkt run --net=default "$IMG" --exec=/bin/sh -- -c 'echo hi | nc -w 2 10.200.0.2 8080; true' >/dev/null 2>&1
wait $srv
echo "DEFAULT_PEER=$(cat /tmp/peer 2>/dev/null)"
listen
rkt run --net=default-restricted "$IMG" --exec=/bin/sh -- -c 'echo hi | nc -w 2 10.200.0.2 8080; true' >/dev/null 2>&1
wait $srv
echo "RESTRICTED_PEER=$(cat /tmp/peer 2>/dev/null)"
echo "TABLE_AFTER=$(masq_tables)"
# The reference ptp would have left iptables-nft's `ip nat` table behind:
# none proves the bundled ptp served these pods.
echo "IPTABLES_NAT=$(nft list tables | grep -c 'ip nat' || true)"
ip link del uphost; ip netns del up
"#
        ))
        .ok();
    assert_eq!(
        o.value("DEFAULT_PEER").as_deref(),
        Some("10.200.0.1"),
        "{}",
        o.stdout
    );
    assert_eq!(
        o.value("RESTRICTED_PEER").as_deref(),
        Some(""),
        "{}",
        o.stdout
    );
    assert_eq!(o.value("TABLE_AFTER").as_deref(), Some("0"), "{}", o.stdout);
    assert_eq!(
        o.value("IPTABLES_NAT").as_deref(),
        Some("0"),
        "{}",
        o.stdout
    );
}
