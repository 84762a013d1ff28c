//! DEL and CHECK of the bundled ptp beyond the differential tests: plain DEL
//! (detach at once, delete the pair in the background), the
//! netns-teardown mode (CNI_ARGS RKT_NETNS_TEARDOWN=true), DEL after the
//! netns is gone, and CHECK noticing a missing address.

mod common;

use common::Host;

const PRELUDE: &str = r#"
CONF='{"cniVersion":"1.0.0","name":"deltest","type":"ptp","ipam":{"type":"host-local","subnet":"10.70.0.0/24"}}'
cni() { CNI_COMMAND=$1 CNI_CONTAINERID=ctr CNI_NETNS=/run/netns/pod CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni CNI_ARGS="${ARGS:-}" "$BIN_DIR/ptp"; }
"#;

#[test]
fn netns_teardown_mode_leaves_the_pair_to_the_kernel() {
    let o = Host::new()
        .run(&format!(
            r#"{PRELUDE}
ip netns add pod
cni ADD <<<"$CONF" >/dev/null
veth=$(ip -o link show type veth | awk -F': ' '{{print $2}}' | cut -d@ -f1)
ARGS="IgnoreUnknown=1;RKT_NETNS_TEARDOWN=true" cni DEL <<<"$CONF"
echo "STATE=$(ip -o link show "$veth" | grep -o 'state [A-Z]*')"
echo "HOSTROUTES=$(ip route | grep -c 10.70.0 || true)"
echo "LEASES=$(ls /var/lib/cni/networks/deltest | grep -c '^10' || true)"
ip netns del pod
for i in $(seq 1 50); do ip link show "$veth" >/dev/null 2>&1 || break; sleep 0.1; done
echo "REAPED=$(ip link show "$veth" >/dev/null 2>&1 && echo no || echo yes)"
cni DEL <<<"$CONF"
echo "DEL_AFTER_NETNS=ok"
"#
        ))
        .ok();
    assert_eq!(
        o.value("STATE").as_deref(),
        Some("state DOWN"),
        "{}",
        o.stdout
    );
    assert_eq!(o.value("HOSTROUTES").as_deref(), Some("0"), "{}", o.stdout);
    assert_eq!(o.value("LEASES").as_deref(), Some("0"), "{}", o.stdout);
    assert_eq!(o.value("REAPED").as_deref(), Some("yes"), "{}", o.stdout);
    assert!(o.stdout.contains("DEL_AFTER_NETNS=ok"));
}

#[test]
fn check_notices_a_missing_address_and_readd_replaces_a_stale_pair() {
    let o = Host::new()
        .run(&format!(
            r#"{PRELUDE}
ip netns add pod
res=$(cni ADD <<<"$CONF")
full=$(jq -c --argjson p "$res" '. + {{prevResult: $p}}' <<<"$CONF")
cni CHECK <<<"$full" && echo "CHECK1=ok"
ip -n pod addr flush dev eth0
if out=$(cni CHECK <<<"$full"); then echo "CHECK2=ok"; else echo "CHECK2=$(echo "$out" | jq -r .msg)"; fi
# DEL in netns-teardown mode, then ADD again into the surviving netns.
ARGS="IgnoreUnknown=1;RKT_NETNS_TEARDOWN=true" cni DEL <<<"$full"
cni ADD <<<"$CONF" >/dev/null && echo "READD=ok"
echo "ADDR=$(ip -n pod -o -4 addr show eth0 | awk '{{print $4}}')"
cni DEL <<<"$CONF"
ip netns del pod
"#
        ))
        .ok();
    assert_eq!(o.value("CHECK1").as_deref(), Some("ok"), "{}", o.stdout);
    let c2 = o.value("CHECK2").unwrap_or_default();
    assert!(c2.contains("lacks address 10.70.0.2/24"), "{}", o.stdout);
    assert_eq!(o.value("READD").as_deref(), Some("ok"), "{}", o.stdout);
    assert!(
        o.value("ADDR").unwrap_or_default().starts_with("10.70.0."),
        "{}",
        o.stdout
    );
}

/// A plain DEL detaches at once and leaves the kernel's slow veth delete to
/// a detached copy of the plugin: the host end is down without routes when
/// DEL returns, CNI_IFNAME is free in the pod at once, the pair is gone
/// soon after, and an attachment added again meanwhile is left alone.
#[test]
fn plain_del_detaches_at_once_and_deletes_in_the_background() {
    let o = Host::new()
        .run(&format!(
            r#"{PRELUDE}
ip netns add pod
cni ADD <<<"$CONF" >/dev/null
veth=$(ip -o link show type veth | awk -F': ' '{{print $2}}' | cut -d@ -f1)
cni DEL <<<"$CONF"
echo "HOSTROUTES=$(ip route | grep -c 10.70.0 || true)"
echo "LEASES=$(ls /var/lib/cni/networks/deltest | grep -c '^10' || true)"
# Another attachment takes eth0 in the same netns right away.
CNI_COMMAND=ADD CNI_CONTAINERID=other CNI_NETNS=/run/netns/pod CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni "$BIN_DIR/ptp" <<<"$CONF" >/dev/null && echo "OTHER=ok"
for i in $(seq 1 100); do ip link show "$veth" >/dev/null 2>&1 || break; sleep 0.02; done
echo "GONE=$(ip link show "$veth" >/dev/null 2>&1 && echo no || echo yes)"
echo "PODLINKS=$(ip -n pod -o link show type veth | wc -l)"
CNI_COMMAND=DEL CNI_CONTAINERID=other CNI_NETNS=/run/netns/pod CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni "$BIN_DIR/ptp" <<<"$CONF"
# The same attachment added again before the background delete ran.
for i in 1 2 3 4 5; do cni ADD <<<"$CONF" >/dev/null; cni DEL <<<"$CONF"; done
cni ADD <<<"$CONF" >/dev/null
sleep 0.5
echo "READDED=$(ip -n pod -o link show eth0 | grep -c 'state UP' || true)"
# The host end has a new random name: the one veth up on the host.
echo "HOSTEND=$(ip -o link show type veth | grep -c 'state UP' || true)"
cni DEL <<<"$CONF"
ip netns del pod
"#
        ))
        .ok();
    let v = |k: &str| o.value(k).unwrap_or_else(|| panic!("no {k}: {}", o.stdout));
    assert_eq!(v("HOSTROUTES"), "0");
    assert_eq!(v("LEASES"), "0");
    assert_eq!(v("OTHER"), "ok", "{}", o.stderr);
    assert_eq!(v("GONE"), "yes");
    assert_eq!(v("PODLINKS"), "1", "only the other attachment's eth0");
    assert_eq!(v("READDED"), "1", "the background delete took a new pair");
    assert_eq!(v("HOSTEND"), "1");
}
