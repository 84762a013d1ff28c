//! Issue 4 acceptance: the `dhcp` IPAM plugin and its daemon against a real
//! dnsmasq. Each test builds its own LAN in its throwaway host: a "lan"
//! netns running dnsmasq behind a veth whose host end (`lan0`) is the
//! macvlan master. No DHCP traffic leaves the namespaces the test made.
//!
//! The plugins are the bundled ones (macvlan and dhcp, first on the plugin
//! path); `examples/bench_dhcp` compares them with the reference ones.

mod common;

use std::time::Instant;

use common::Host;

/// The LAN helpers (setup_lan, start_dnsmasq, start_daemon, stop_all).
const LAN: &str = include_str!("dhcp_lan.sh");

/// Runs `body` with the LAN up, dnsmasq (when `dnsmasq` is true) and our
/// daemon running, and the macvlan+dhcp network "lan" configured;
/// everything is stopped after.
fn with_lan(dnsmasq: bool, ipam_extra: &str, body: &str) -> common::Outcome {
    with_lan_version("0.4.0", dnsmasq, ipam_extra, body)
}

fn with_lan_version(version: &str, dnsmasq: bool, ipam_extra: &str, body: &str) -> common::Outcome {
    let start_dnsmasq = if dnsmasq { "start_dnsmasq" } else { "" };
    Host::new().run(&format!(
        r#"
{LAN}
cd /tmp
trap stop_all EXIT
setup_lan
{start_dnsmasq}
start_daemon
cat > /etc/rkt/net.d/10-lan.conf <<CONF
{{"cniVersion":"{version}","name":"lan","type":"macvlan","master":"lan0","ipam":{{"type":"dhcp"{ipam_extra}}}}}
CONF
RKT_NET="--net-plugin-path=$BIN_DIR:/usr/lib/cni"
{body}
"#
    ))
}

/// Acceptance 1 and 2: the seed scenario end to end (address from the
/// range, default route via the router option, DNS in resolv.conf), and
/// the lease released when the pod exits; with the seed's cniVersion 0.2.0
/// and with 0.4.0.
#[test]
fn seed_scenario_address_route_dns_then_release() {
    for version in ["0.2.0", "0.4.0"] {
        seed_scenario(version);
    }
}

fn seed_scenario(version: &str) {
    let o = with_lan_version(
        version,
        true,
        "",
        r#"
rkt $RKT_NET run --net=lan "$IMG" --exec=/bin/sh -- -c 'ip -o -4 addr show eth0; ip route; echo ---resolv; cat /etc/resolv.conf; echo ---end; sleep 1' > out &
pod=$!
for i in $(seq 100); do
  grep -q 10.77.0 /tmp/dnsmasq.leases 2>/dev/null && [ -n "$(ls /var/lib/cni/dhcp 2>/dev/null)" ] && break
  sleep 0.02
done
echo "DURING=$(grep -c 10.77.0 /tmp/dnsmasq.leases)"
echo "STORE_DURING=$(ls /var/lib/cni/dhcp | wc -l)"
wait $pod
cat out
grep -q DHCPRELEASE /tmp/dnsmasq.log && echo RELEASED=yes
echo "AFTER=$(grep -c 10.77.0 /tmp/dnsmasq.leases || true)"
echo "STORE=$(ls /var/lib/cni/dhcp | wc -l)"
"#,
    )
    .ok();
    let s = &o.stdout;
    assert!(s.contains("inet 10.77.0."), "{s}");
    assert!(s.contains("default via 10.77.0.1 dev eth0"), "{s}");
    assert_eq!(o.value("DURING").as_deref(), Some("1"), "{s}");
    assert_eq!(o.value("STORE_DURING").as_deref(), Some("1"), "{s}");
    // Our macvlan passes the IPAM DNS on (the reference 1.1.1 drops it).
    let resolv = s
        .split("---resolv")
        .nth(1)
        .and_then(|r| r.split("---end").next())
        .unwrap_or_default();
    assert!(resolv.contains("nameserver 10.77.0.53"), "{s}");
    assert!(resolv.contains("search a.test b.test"), "{s}");
    assert!(resolv.contains("domain lan.test"), "{s}");
    assert_eq!(o.value("RELEASED").as_deref(), Some("yes"), "{s}");
    assert_eq!(o.value("AFTER").as_deref(), Some("0"), "{s}");
    assert_eq!(o.value("STORE").as_deref(), Some("0"), "{s}");
}

/// The IPAM result itself, as a main plugin receives it: address, gateway,
/// DNS (nameserver, domain, search) and, with option 121, the classless
/// routes instead of the default route. A retried ADD gets the same lease,
/// CHECK passes, DEL releases and is idempotent.
#[test]
fn ipam_result_dns_classless_routes_retry_check_del() {
    let o = Host::new()
        .run(&format!(
            r#"
{LAN}
cd /tmp
trap 'ip netns del pod 2>/dev/null; stop_all' EXIT
setup_lan
start_dnsmasq --dhcp-option=121,10.99.0.0/16,10.77.0.254,0.0.0.0/0,10.77.0.1
start_daemon
ip netns add pod
ip link add m0 link lan0 type macvlan mode bridge
ip link set m0 netns pod
ip -n pod link set m0 name eth0
export CNI_CONTAINERID=c1 CNI_NETNS=/run/netns/pod CNI_IFNAME=eth0 CNI_PATH=$BIN_DIR
CONF='{{"cniVersion":"1.0.0","name":"lan","type":"macvlan","ipam":{{"type":"dhcp","timeout":"2s"}}}}'
echo "ADD1=$(echo "$CONF" | CNI_COMMAND=ADD "$BIN_DIR/dhcp")"
echo "ADD2=$(echo "$CONF" | CNI_COMMAND=ADD "$BIN_DIR/dhcp")"
echo "GONE=$(echo "$CONF" | CNI_COMMAND=ADD CNI_IFNAME=nope0 "$BIN_DIR/dhcp")"
echo "$CONF" | CNI_COMMAND=CHECK "$BIN_DIR/dhcp" && echo CHECK=ok
echo "$CONF" | CNI_COMMAND=DEL "$BIN_DIR/dhcp" && echo DEL1=ok
echo "$CONF" | CNI_COMMAND=DEL "$BIN_DIR/dhcp" && echo DEL2=ok
echo "CHECK_AFTER=$(echo "$CONF" | CNI_COMMAND=CHECK "$BIN_DIR/dhcp")"
for i in $(seq 50); do grep -q DHCPRELEASE /tmp/dnsmasq.log && break; sleep 0.02; done
echo "AFTER=$(grep -c 10.77.0 /tmp/dnsmasq.leases || true)"
"#
        ))
        .ok();
    let s = &o.stdout;
    let add1: serde_json::Value = serde_json::from_str(&o.value("ADD1").unwrap()).unwrap();
    let add2: serde_json::Value = serde_json::from_str(&o.value("ADD2").unwrap()).unwrap();
    let addr = add1["ips"][0]["address"].as_str().unwrap();
    assert!(addr.starts_with("10.77.0.") && addr.ends_with("/24"), "{s}");
    assert_eq!(add1["ips"], add2["ips"], "{s}");
    assert_eq!(add1["ips"][0]["gateway"], "10.77.0.1", "{s}");
    assert_eq!(add1["dns"]["nameservers"][0], "10.77.0.53", "{s}");
    assert_eq!(add1["dns"]["domain"], "lan.test", "{s}");
    assert_eq!(
        add1["dns"]["search"],
        serde_json::json!(["a.test", "b.test"]),
        "{s}"
    );
    let routes = add1["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 2, "{s}");
    assert_eq!(routes[0]["dst"], "10.99.0.0/16", "{s}");
    assert_eq!(routes[0]["gw"], "10.77.0.254", "{s}");
    assert_eq!(routes[1]["dst"], "0.0.0.0/0", "{s}");
    let gone: serde_json::Value = serde_json::from_str(&o.value("GONE").unwrap()).unwrap();
    assert!(
        gone["msg"]
            .as_str()
            .unwrap()
            .contains("interface \"nope0\" does not exist in network namespace /run/netns/pod"),
        "{s}"
    );
    assert_eq!(o.value("CHECK").as_deref(), Some("ok"), "{s}");
    assert_eq!(o.value("DEL1").as_deref(), Some("ok"), "{s}");
    assert_eq!(o.value("DEL2").as_deref(), Some("ok"), "{s}");
    assert!(o.value("CHECK_AFTER").unwrap().contains("no lease"), "{s}");
    assert_eq!(o.value("AFTER").as_deref(), Some("0"), "{s}");
}

/// Acceptance 3: the daemon is killed (SIGKILL, leaving a stale socket)
/// and restarted while a pod runs: the new daemon replaces the stale
/// socket, reloads the lease, renews it at once (dnsmasq's expiry moves)
/// and the pod keeps its address; the pod's exit still releases it.
#[test]
fn daemon_restart_keeps_and_renews_lease() {
    let o = with_lan(
        true,
        "",
        r#"
rkt $RKT_NET run --net=lan "$IMG" --exec=/bin/sh -- -c 'echo STARTED; sleep 3.5; ip -o -4 addr show eth0' > out &
pod=$!
# The pod runs: its networks are set up.
for i in $(seq 250); do grep -q STARTED out 2>/dev/null && break; sleep 0.02; done
ip=$(awk '{print $3}' /tmp/dnsmasq.leases)
echo "IP=$ip"
before=$(lease_expiry "$ip")
kill -9 "$DHCPD_PID"; wait "$DHCPD_PID" 2>/dev/null || true
[ -S /run/cni/dhcp.sock ] && echo STALE=yes
sleep 1.1
start_daemon
for i in $(seq 150); do [ "$(lease_expiry "$ip")" != "$before" ] && break; sleep 0.02; done
after=$(lease_expiry "$ip")
echo "MOVED=$(( after - before ))"
grep -q "renewed $ip" /tmp/dhcpd.log && echo RENEWED=yes
wait $pod
cat out
echo "AFTER=$(grep -c 10.77.0 /tmp/dnsmasq.leases || true)"
"#,
    )
    .ok();
    let s = &o.stdout;
    let ip = o.value("IP").unwrap();
    assert!(ip.starts_with("10.77.0."), "{s}");
    assert_eq!(o.value("STALE").as_deref(), Some("yes"), "{s}");
    let moved: i64 = o.value("MOVED").unwrap().parse().unwrap();
    assert!(moved >= 1, "lease expiry did not move: {s}");
    assert_eq!(o.value("RENEWED").as_deref(), Some("yes"), "{s}");
    assert!(s.contains(&format!("inet {ip}/24")), "{s}");
    assert_eq!(o.value("AFTER").as_deref(), Some("0"), "{s}");
}

/// Acceptance 4: several pods at once each get their own lease.
#[test]
fn several_pods_each_get_their_own_lease() {
    let o = with_lan(
        true,
        "",
        r#"
for n in 1 2 3 4; do
  rkt $RKT_NET run --net=lan "$IMG" --exec=/bin/sh -- -c 'ip -o -4 addr show eth0; sleep 1.5' > out$n &
  eval "pod$n=\$!"
done
for i in $(seq 200); do [ "$(grep -c 10.77.0 /tmp/dnsmasq.leases 2>/dev/null)" = 4 ] && break; sleep 0.02; done
echo "DURING=$(grep -c 10.77.0 /tmp/dnsmasq.leases)"
wait $pod1 $pod2 $pod3 $pod4
for n in 1 2 3 4; do echo "ADDR$n=$(grep -o 'inet [0-9./]*' out$n)"; done
echo "AFTER=$(grep -c 10.77.0 /tmp/dnsmasq.leases || true)"
"#,
    )
    .ok();
    let s = &o.stdout;
    assert_eq!(o.value("DURING").as_deref(), Some("4"), "{s}");
    let mut addrs: Vec<String> = (1..=4)
        .map(|n| o.value(&format!("ADDR{n}")).unwrap_or_default())
        .collect();
    for a in &addrs {
        assert!(a.starts_with("inet 10.77.0."), "{s}");
    }
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 4, "duplicate addresses: {s}");
    assert_eq!(o.value("AFTER").as_deref(), Some("0"), "{s}");
}

/// Acceptance 5: no server: ADD fails within the configured timeout with
/// code 11 and a clear message, and nothing is left (the leak check:
/// no netns, no link, no lease file, no process). Without the daemon the
/// error says how to start it.
#[test]
fn server_down_fails_cleanly_within_timeout() {
    let t = Instant::now();
    let o = with_lan(
        false,
        r#","timeout":"1s""#,
        r#"
s=$(date +%s%N)
if rkt $RKT_NET run --net=lan "$IMG" --exec=/bin/true > out 2> err; then fail "run succeeded without a server"; fi
echo "ELAPSED_MS=$(( ($(date +%s%N) - s) / 1000000 ))"
echo "ERR=$(tr '\n' ' ' < err)"
echo "STORE=$(ls /var/lib/cni/dhcp 2>/dev/null | wc -l)"
echo "PODS_RUNNING=$(ls /var/lib/rkt/pods/run 2>/dev/null | wc -l)"
echo "MACVLANS=$(ip -o link show type macvlan | wc -l)"
# Direct call, to see the CNI error code.
ip netns add probe
ip link add m0 link lan0 type macvlan mode bridge
ip link set m0 netns probe
echo "DIRECT=$(echo '{"cniVersion":"1.0.0","name":"lan","type":"macvlan","ipam":{"type":"dhcp","timeout":"300ms"}}' | CNI_COMMAND=ADD CNI_CONTAINERID=c9 CNI_NETNS=/run/netns/probe CNI_IFNAME=m0 CNI_PATH=$BIN_DIR "$BIN_DIR/dhcp")"
kill "$DHCPD_PID"; wait "$DHCPD_PID" || true; DHCPD_PID=
echo "NODAEMON=$(echo '{"cniVersion":"1.0.0","name":"lan","type":"macvlan","ipam":{"type":"dhcp"}}' | CNI_COMMAND=ADD CNI_CONTAINERID=c9 CNI_NETNS=/run/netns/probe CNI_IFNAME=m0 CNI_PATH=$BIN_DIR "$BIN_DIR/dhcp")"
ip netns del probe
"#,
    )
    .ok();
    let s = &o.stdout;
    let ms: u64 = o.value("ELAPSED_MS").unwrap().parse().unwrap();
    assert!(ms < 5000, "took {ms} ms: {s}");
    let err = o.value("ERR").unwrap();
    assert!(err.contains("no DHCP server answered"), "{s}");
    assert_eq!(o.value("STORE").as_deref(), Some("0"), "{s}");
    assert_eq!(o.value("MACVLANS").as_deref(), Some("0"), "{s}");
    let direct: serde_json::Value = serde_json::from_str(&o.value("DIRECT").unwrap()).unwrap();
    assert_eq!(direct["code"], 11, "{s}");
    assert!(
        direct["msg"]
            .as_str()
            .unwrap()
            .contains("no DHCP server answered"),
        "{s}"
    );
    let nodaemon: serde_json::Value = serde_json::from_str(&o.value("NODAEMON").unwrap()).unwrap();
    assert!(
        nodaemon["msg"].as_str().unwrap().contains("dhcp daemon"),
        "{s}"
    );
    assert!(t.elapsed().as_secs() < 30);
}

/// Socket activation as systemd does it (LISTEN_FDS, fd 3), through
/// `systemd-socket-activate`: the first plugin call starts the daemon on
/// the passed socket and gets its lease.
#[test]
fn socket_activation() {
    if !std::path::Path::new("/usr/bin/systemd-socket-activate").exists() {
        eprintln!("systemd-socket-activate not installed; skipping");
        return;
    }
    let o = Host::new()
        .run(&format!(
            r#"
{LAN}
cd /tmp
trap 'ip netns del pod 2>/dev/null; stop_all' EXIT
setup_lan
start_dnsmasq
mkdir -p /run/cni
systemd-socket-activate -l /run/cni/dhcp.sock "$BIN_DIR/dhcp" daemon 2>>/tmp/dhcpd.log &
DHCPD_PID=$!
for i in $(seq 200); do [ -S /run/cni/dhcp.sock ] && break; sleep 0.01; done
ip netns add pod
ip link add m0 link lan0 type macvlan mode bridge
ip link set m0 netns pod
export CNI_CONTAINERID=c1 CNI_NETNS=/run/netns/pod CNI_IFNAME=m0 CNI_PATH=$BIN_DIR
CONF='{{"cniVersion":"1.0.0","name":"lan","type":"macvlan","ipam":{{"type":"dhcp","timeout":"2s"}}}}'
echo "ADD=$(echo "$CONF" | CNI_COMMAND=ADD "$BIN_DIR/dhcp")"
echo "COMM=$(cat /proc/$DHCPD_PID/comm)"
echo "$CONF" | CNI_COMMAND=DEL "$BIN_DIR/dhcp" && echo DEL=ok
"#
        ))
        .ok();
    let s = &o.stdout;
    let add: serde_json::Value = serde_json::from_str(&o.value("ADD").unwrap()).unwrap();
    assert!(
        add["ips"][0]["address"]
            .as_str()
            .unwrap()
            .starts_with("10.77.0."),
        "{s}"
    );
    assert_eq!(o.value("COMM").as_deref(), Some("dhcp"), "{s}");
    assert_eq!(o.value("DEL").as_deref(), Some("ok"), "{s}");
}

/// Renewal at T1 (dnsmasq told to hand out T1 = 2 s, T2 = 3 s) while the
/// attachment lives; an attachment whose namespace vanished without DEL is
/// released and forgotten; the pidfile holds the daemon's PID; a second
/// daemon refuses to start over the live socket.
#[test]
fn renews_at_t1_pidfile_single_instance() {
    let o = Host::new()
        .run(&format!(
            r#"
{LAN}
cd /tmp
trap 'ip netns del pod 2>/dev/null; stop_all' EXIT
setup_lan
start_dnsmasq --dhcp-option=option:T1,2 --dhcp-option=option:T2,3
start_daemon --pidfile=/tmp/dhcpd.pid
echo "PIDFILE=$(cat /tmp/dhcpd.pid) $DHCPD_PID"
if "$BIN_DIR/dhcp" daemon 2> second.err; then fail "second daemon started"; fi
echo "SECOND=$(cat second.err)"
ip netns add pod
export CNI_CONTAINERID=c1 CNI_NETNS=/run/netns/pod CNI_IFNAME=eth0 CNI_PATH=$BIN_DIR
CONF='{{"cniVersion":"0.4.0","name":"lan","type":"macvlan","master":"lan0","ipam":{{"type":"dhcp","timeout":"2s"}}}}'
echo "$CONF" | CNI_COMMAND=ADD /usr/lib/cni/macvlan > add.json || fail "ADD: $(cat add.json)"
# A second pod whose namespace disappears without DEL: released at its T1.
ip netns add pod2
echo "$CONF" | CNI_COMMAND=ADD CNI_CONTAINERID=c2 CNI_NETNS=/run/netns/pod2 /usr/lib/cni/macvlan > add2.json || fail "ADD2: $(cat add2.json)"
ip netns del pod2
for i in $(seq 200); do grep -q renewed /tmp/dhcpd.log && grep -q 'gone without DEL' /tmp/dhcpd.log && break; sleep 0.02; done
grep -q renewed /tmp/dhcpd.log && echo RENEWED=yes
grep -q 'c2-lan-eth0: network namespace /run/netns/pod2 is gone without DEL' /tmp/dhcpd.log && echo GONE=yes
echo "STORE=$(ls /var/lib/cni/dhcp)"
echo "$CONF" | CNI_COMMAND=DEL /usr/lib/cni/macvlan || fail "DEL"
for i in $(seq 50); do grep -q DHCPRELEASE /tmp/dnsmasq.log && break; sleep 0.02; done
echo "AFTER=$(grep -c 10.77.0 /tmp/dnsmasq.leases || true)"
"#
        ))
        .ok();
    let s = &o.stdout;
    let pids = o.value("PIDFILE").unwrap();
    let mut it = pids.split(' ');
    assert_eq!(it.next(), it.next(), "{s}");
    assert!(
        o.value("SECOND")
            .unwrap()
            .contains("another DHCP daemon is already listening on /run/cni/dhcp.sock"),
        "{s}"
    );
    assert_eq!(o.value("RENEWED").as_deref(), Some("yes"), "{s}");
    assert_eq!(o.value("GONE").as_deref(), Some("yes"), "{s}");
    assert_eq!(o.value("STORE").as_deref(), Some("c1-lan-eth0.json"), "{s}");
    assert_eq!(o.value("AFTER").as_deref(), Some("0"), "{s}");
}

/// Rebinding at T2: the server's namespace drops unicast DHCP (nft), so
/// the RENEW at T1 (2 s) goes unanswered and the broadcast REBIND after
/// T2 (3 s) extends the lease.
#[test]
fn rebinds_at_t2_when_renew_goes_unanswered() {
    let o = Host::new()
        .run(&format!(
            r#"
{LAN}
cd /tmp
trap 'ip netns del pod 2>/dev/null; stop_all' EXIT
setup_lan
start_dnsmasq --dhcp-option=option:T1,2 --dhcp-option=option:T2,3
start_daemon
ip netns add pod
export CNI_CONTAINERID=c1 CNI_NETNS=/run/netns/pod CNI_IFNAME=eth0 CNI_PATH=$BIN_DIR
CONF='{{"cniVersion":"0.4.0","name":"lan","type":"macvlan","master":"lan0","ipam":{{"type":"dhcp","timeout":"2s"}}}}'
echo "$CONF" | CNI_COMMAND=ADD /usr/lib/cni/macvlan > add.json || fail "ADD: $(cat add.json)"
ip netns exec lan nft -f - <<'NFT'
table inet dhcptest {{
  chain input {{
    type filter hook input priority 0;
    ip daddr 10.77.0.1 udp dport 67 drop
  }}
}}
NFT
for i in $(seq 400); do grep -q rebound /tmp/dhcpd.log && break; sleep 0.02; done
grep -q 'no answer to RENEW' /tmp/dhcpd.log && echo RENEW_UNANSWERED=yes
grep -q rebound /tmp/dhcpd.log && echo REBOUND=yes
grep -q 'renewed' /tmp/dhcpd.log && echo RENEWED=yes
echo "$CONF" | CNI_COMMAND=DEL /usr/lib/cni/macvlan || fail "DEL"
"#
        ))
        .ok();
    let s = &o.stdout;
    assert_eq!(o.value("RENEW_UNANSWERED").as_deref(), Some("yes"), "{s}");
    assert_eq!(o.value("REBOUND").as_deref(), Some("yes"), "{s}");
    assert_eq!(o.value("RENEWED"), None, "{s}");
}

/// CNI 1.1 GC releases the network's leases that are not among the valid
/// attachments; STATUS succeeds while the daemon answers and says code 50
/// once it is gone.
#[test]
fn gc_and_status() {
    let o = Host::new()
        .run(&format!(
            r#"
{LAN}
cd /tmp
trap 'ip netns del pod 2>/dev/null; stop_all' EXIT
setup_lan
start_dnsmasq
start_daemon
ip netns add pod
for n in 0 1; do
  ip link add m$n link lan0 type macvlan mode bridge
  ip link set m$n netns pod
done
export CNI_NETNS=/run/netns/pod CNI_PATH=$BIN_DIR
CONF='{{"cniVersion":"1.1.0","name":"lan","type":"macvlan","ipam":{{"type":"dhcp","timeout":"2s"}}}}'
echo "$CONF" | CNI_COMMAND=ADD CNI_CONTAINERID=keep CNI_IFNAME=m0 "$BIN_DIR/dhcp" > a0.json || fail "$(cat a0.json)"
echo "$CONF" | CNI_COMMAND=ADD CNI_CONTAINERID=gone CNI_IFNAME=m1 "$BIN_DIR/dhcp" > a1.json || fail "$(cat a1.json)"
GC='{{"cniVersion":"1.1.0","name":"lan","type":"macvlan","ipam":{{"type":"dhcp"}},"cni.dev/valid-attachments":[{{"containerID":"keep","ifname":"m0"}}]}}'
echo "$GC" | CNI_COMMAND=GC "$BIN_DIR/dhcp" && echo GC=ok
echo "STORE=$(ls /var/lib/cni/dhcp | tr '\n' ' ')"
for i in $(seq 50); do grep -q DHCPRELEASE /tmp/dnsmasq.log && break; sleep 0.02; done
echo "LEASES=$(grep -c 10.77.0 /tmp/dnsmasq.leases)"
echo "$CONF" | CNI_COMMAND=STATUS "$BIN_DIR/dhcp" && echo STATUS=ok
echo "$CONF" | CNI_COMMAND=DEL CNI_CONTAINERID=keep CNI_IFNAME=m0 "$BIN_DIR/dhcp" || fail "DEL"
kill "$DHCPD_PID"; wait "$DHCPD_PID" || true; DHCPD_PID=
echo "STATUS_DOWN=$(echo "$CONF" | CNI_COMMAND=STATUS "$BIN_DIR/dhcp")"
"#
        ))
        .ok();
    let s = &o.stdout;
    assert_eq!(o.value("GC").as_deref(), Some("ok"), "{s}");
    assert_eq!(
        o.value("STORE").as_deref().map(str::trim),
        Some("keep-lan-m0.json"),
        "{s}"
    );
    assert_eq!(o.value("LEASES").as_deref(), Some("1"), "{s}");
    assert_eq!(o.value("STATUS").as_deref(), Some("ok"), "{s}");
    let down: serde_json::Value = serde_json::from_str(&o.value("STATUS_DOWN").unwrap()).unwrap();
    assert_eq!(down["code"], 50, "{s}");
}

/// The daemon checks every request before a path is built from it, and
/// bounds each connection. A DEL or ADD whose container ID climbs out of
/// the lease directory gets an error reply (code 4) and the canary lease
/// file it points at on /tmp stays; a client that sends half a request and
/// stalls gets an error after the 5 s deadline while another client is
/// answered at once; a 2 MiB line without newline gets an error instead of
/// being buffered (both used to hold their connection forever).
#[test]
fn daemon_validates_requests_and_bounds_connections() {
    let o = Host::new().run(&format!(
        r#"
{LAN}
cd /tmp
trap stop_all EXIT
setup_lan
start_daemon
mkdir -p /var/lib/cni/dhcp
echo keep > /tmp/x-lan-eth0.json
cat > client.py <<'PY'
import json, socket, sys, threading, time
SOCK = "/run/cni/dhcp.sock"
def att(cid, net="lan", ifname="eth0", netns=""):
    return {{"container_id": cid, "network": net, "ifname": ifname, "netns": netns}}
def req(op, a):
    return (json.dumps({{"op": op, "attachment": a, "timeout_ms": 1000}}) + "\n").encode()
def connect():
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(12)
    s.connect(SOCK)
    return s
def answer(s):
    t = time.time()
    try:
        line = s.makefile("rb").readline()
    except OSError:
        line = b""
    return (json.loads(line) if line.strip() else None), time.time() - t
def call(data):
    s = connect()
    try:
        s.sendall(data)
    except OSError:
        pass
    return answer(s)
def code(r):
    return (r or {{}}).get("error", {{}}).get("code")
r, _ = call(req("del", att("../../../../tmp/x")))
print("DEL_CODE=%s" % code(r))
r, _ = call(req("add", att("../../../../tmp/x", netns="/run/netns/none")))
print("ADD_CODE=%s" % code(r))
r, _ = call(req("del", att("c1", net="../x")))
print("NET_CODE=%s" % code(r))
r, _ = call(req("del", att("c1", ifname="a/b")))
print("IF_CODE=%s" % code(r))
slow = connect()
slow.sendall(b'{{"op":')
t0 = time.time()
r, secs = call(req("status", att("", ifname="")))
print("OTHER_OK=%s" % (r is not None and r.get("error") is None))
print("OTHER_MS=%d" % (secs * 1000))
r, _ = answer(slow)
print("SLOW_MS=%d" % ((time.time() - t0) * 1000))
print("SLOW_ERR=%s" % (r or {{}}).get("error", {{}}).get("msg"))
r, _ = call(b"x" * (2 << 20))
print("BIG_ERR=%s" % (r or {{}}).get("error", {{}}).get("msg"))
PY
python3 client.py
echo "CANARY=$(cat /tmp/x-lan-eth0.json)"
"#
    ));
    let o = o.ok();
    let v = |k: &str| o.value(k).unwrap_or_else(|| panic!("no {k}: {}", o.stdout));
    assert_eq!(v("DEL_CODE"), "4", "{}", o.stdout);
    assert_eq!(v("ADD_CODE"), "4", "{}", o.stdout);
    assert_eq!(v("NET_CODE"), "7", "{}", o.stdout);
    assert_eq!(v("IF_CODE"), "4", "{}", o.stdout);
    assert_eq!(
        v("CANARY"),
        "keep",
        "the DEL removed a file outside the lease dir"
    );
    assert_eq!(v("OTHER_OK"), "True", "{}", o.stdout);
    let other: u64 = v("OTHER_MS").parse().unwrap();
    assert!(
        other < 1000,
        "a stalled client delayed another by {other} ms"
    );
    let slow: u64 = v("SLOW_MS").parse().unwrap();
    assert!(
        (4000..9000).contains(&slow),
        "stalled client answered after {slow} ms"
    );
    assert!(
        v("SLOW_ERR").contains("no complete line within 5.0s"),
        "{}",
        o.stdout
    );
    assert!(
        v("BIG_ERR").contains("longer than 1048576 bytes"),
        "{}",
        o.stdout
    );
}
