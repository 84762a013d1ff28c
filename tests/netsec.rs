//! Networks that cannot be turned against each other: host-only isolation
//! (`default-restricted`, and a user's ptp or bridge network with
//! `"isolation": "host-only"`), source-address checks on ptp for IPv6 (and
//! IPv4 under a host-wide loose rp_filter), host veth names that never
//! clobber someone else's link, and nftables state that survives killed
//! and failing ADDs, odd network names and a flushed ruleset.
//!
//! Traffic is UDP to port 9999 with a tag as payload, sent with ordinary
//! sockets or as raw Ethernet frames crafted in the sender's netns (what a
//! pod app with CAP_NET_RAW can do), and counted by a listener in each
//! target netns: what arrives is in `/tmp/got.<target>`.

mod common;

use common::Host;

/// Helpers: a UDP/TCP listener, a raw frame sender, a "LAN" netns routed
/// through the host, and pod look-ups.
const PRELUDE: &str = r#"
cat > /tmp/listen.py <<'PY'
import socket, sys, select
out = open(sys.argv[1], "a", buffering=1)
socks = []
for fam, any_ in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
    for ty in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        try:
            s = socket.socket(fam, ty)
        except OSError:
            continue
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            s.bind((any_, 9999))
        except OSError:
            continue
        if ty == socket.SOCK_STREAM:
            s.listen(8)
        socks.append(s)
open(sys.argv[1] + ".ready", "w").close()
while True:
    for s in select.select(socks, [], [])[0]:
        if s.type == socket.SOCK_STREAM:
            c, a = s.accept()
            c.settimeout(2)
            try:
                d = c.recv(200)
            except OSError:
                d = b""
            c.close()
        else:
            d, a = s.recvfrom(2048)
        out.write("%s from %s\n" % (d.decode(errors="replace"), a[0]))
PY
cat > /tmp/rawsend.py <<'PY'
# rawsend.py IFNAME DSTMAC SRC DST TAG: one UDP datagram to DST:9999 from
# SRC:40000, as a raw Ethernet frame (any source address).
import socket, struct, sys
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF
ifn, dmac, src, dst, tag = sys.argv[1:6]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifn, 0))
smac = s.getsockname()[4]
dm = bytes.fromhex(dmac.replace(":", ""))
data = tag.encode()
if ":" in dst:
    sa = socket.inet_pton(socket.AF_INET6, src)
    da = socket.inet_pton(socket.AF_INET6, dst)
    ulen = 8 + len(data)
    udp = struct.pack("!HHHH", 40000, 9999, ulen, 0) + data
    c = csum(sa + da + struct.pack("!I3xB", ulen, 17) + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", c) + udp[8:]
    frame = dm + smac + b"\x86\xdd" + struct.pack("!IHBB", 6 << 28, ulen, 17, 64) + sa + da + udp
else:
    sa = socket.inet_aton(src)
    da = socket.inet_aton(dst)
    udp = struct.pack("!HHHH", 40000, 9999, 8 + len(data), 0) + data
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, sa, da)
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    frame = dm + smac + b"\x08\x00" + h + udp
s.send(frame)
PY
cat > /tmp/send.py <<'PY'
# send.py DST TAG [tcp]: one datagram (or a TCP connection) with a normal socket.
import socket, sys
dst, tag = sys.argv[1], sys.argv[2]
fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
try:
    if len(sys.argv) > 3:
        s = socket.create_connection((dst, 9999), timeout=1)
        s.send(tag.encode())
    else:
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.sendto(tag.encode(), (dst, 9999))
    s.close()
except OSError:
    pass
PY
LISTENERS=""
# listen NAME [NETNS]: a listener writing to /tmp/got.NAME.
listen() {
  rm -f /tmp/got.$1 /tmp/got.$1.ready
  if [ -n "${2:-}" ]; then ip netns exec "$2" python3 /tmp/listen.py /tmp/got.$1 & else python3 /tmp/listen.py /tmp/got.$1 & fi
  LISTENERS="$LISTENERS $!"
  for _ in $(seq 100); do [ -e /tmp/got.$1.ready ] && return 0; sleep 0.02; done
  fail "listener $1 did not start"
}
stop_listeners() { sleep 0.5; for p in $LISTENERS; do kill $p; wait $p 2>/dev/null || true; done; LISTENERS=""; }
# got NAME TAG: whether TAG arrived at NAME (yes/no).
got() { grep -q "^$2 from" /tmp/got.$1 2>/dev/null && echo yes || echo no; }
# sendraw NETNS IFNAME DSTMAC SRC DST TAG
sendraw() { ip netns exec "$1" python3 /tmp/rawsend.py "$2" "$3" "$4" "$5" "$6"; }
send() { ip netns exec "$1" python3 /tmp/send.py "${@:2}"; }
# The MAC of the other end of veth IFNAME in NETNS (the host end).
peer_mac() {
  local peer
  peer=$(ip netns exec "$1" cat /sys/class/net/$2/iflink)
  ip -j link | jq -r ".[] | select(.ifindex==$peer) | .address"
}
mac_of() { ip netns exec "$1" cat /sys/class/net/$2/address; }
# A "LAN" netns routed through the host: 10.200.0.2/24 and fd20::2/64.
lan_up() {
  ip netns add lan
  ip link add lanhost type veth peer name eth0 netns lan
  ip addr add 10.200.0.1/24 dev lanhost
  ip addr add fd20::1/64 dev lanhost nodad
  ip link set lanhost up
  ip -n lan link set lo up
  ip -n lan addr add 10.200.0.2/24 dev eth0
  ip -n lan addr add fd20::2/64 dev eth0 nodad
  ip -n lan link set eth0 up
  ip -n lan route add default via 10.200.0.1
  ip -n lan -6 route add default via fd20::1
}
lan_down() { ip link del lanhost; ip netns del lan; }
# Pods started with rkt run (sleeping), known by variable name.
PODS=""
# start VAR NETS: starts a pod on NETS and sets VAR to its UUID.
start() {
  rkt run --net="$2" "$IMG" --exec=/bin/sleep -- 120 >/dev/null 2>&1 &
  local n
  n=$(( $(echo $PODS | wc -w) + 1 ))
  wait_running $n
  local u
  u=$(rkt list --full --no-legend | awk '{print $1}' | grep -vxF -e x $(for p in $PODS; do echo "-e $p"; done) | head -1)
  PODS="$PODS $u"
  eval "$1=$u"
}
# ip_of UUID NET: the pod's IPv4 address on NET.
ip_of() {
  rkt list --format=json | jq -r --arg u "$1" --arg n "$2" '.[] | select(.name==$u) | .networks[] | select(.netName==$n) | .ip'
}
stop_all() {
  for p in $PODS; do rkt stop $p >/dev/null; done
  wait
  PODS=""
}
"#;

/// default-restricted through `rkt run`: two pods reach the host (its
/// gateway address, a UDP and a TCP listener) and nothing else: not each
/// other, not a pod on `default` or on a bridge network, not a LAN routed
/// through the host, neither with ordinary sockets nor with raw frames
/// (own or forged source). Two pods on a user ptp network without the key
/// reach each other and the LAN: the rule is what blocks.
#[test]
fn restricted_pods_reach_the_host_and_nothing_else() {
    let o = Host::new()
        .run(&format!(
            r#"{PRELUDE}
lan_up
cat > /etc/rkt/net.d/br.conf <<'EOF'
{{"cniVersion":"0.4.0","name":"br","type":"bridge","bridge":"rktbr0","isGateway":true,"ipam":{{"type":"host-local","subnet":"10.11.0.0/24"}}}}
EOF
cat > /etc/rkt/net.d/open.conf <<'EOF'
{{"cniVersion":"0.4.0","name":"open","type":"ptp","ipam":{{"type":"host-local","subnet":"172.19.0.0/24","routes":[{{"dst":"10.200.0.0/24"}}]}}}}
EOF
start R1 default-restricted
start R2 default-restricted
start D default
start B br
start O1 open
start O2 open
r1=$(ip_of $R1 default-restricted); r2=$(ip_of $R2 default-restricted)
d=$(ip_of $D default); b=$(ip_of $B br); o1=$(ip_of $O1 open); o2=$(ip_of $O2 open)
echo "ADDRS=$r1 $r2 $d $b $o1 $o2"
listen host; listen lan lan
listen r2 rkt-$R2; listen d rkt-$D; listen b rkt-$B; listen o2 rkt-$O2
gw=$(peer_mac rkt-$R1 eth0)
# Ordinary sockets from R1 (the app's view: a route to 172.17.0.0/16 only).
send rkt-$R1 172.17.0.1 r1-host-udp
send rkt-$R1 172.17.0.1 r1-host-tcp tcp
send rkt-$R1 $r2 r1-r2-udp
send rkt-$R1 $r2 r1-r2-tcp tcp
# Raw frames to the host end of R1's veth: its own source, then forged.
sendraw rkt-$R1 eth0 $gw $r1 172.17.0.1 r1-host-raw
sendraw rkt-$R1 eth0 $gw $r1 $r2 r1-r2-raw
sendraw rkt-$R1 eth0 $gw $r1 $d r1-d-raw
sendraw rkt-$R1 eth0 $gw $r1 $b r1-b-raw
sendraw rkt-$R1 eth0 $gw $r1 10.200.0.2 r1-lan-raw
sendraw rkt-$R1 eth0 $gw $r1 $o2 r1-o2-raw
sendraw rkt-$R1 eth0 $gw $d 10.200.0.2 r1-lan-forged
sendraw rkt-$R1 eth0 $gw 10.200.0.9 $r2 r1-r2-forged
# And the other way: the LAN and a default pod towards R2.
send lan $r2 lan-r2-udp
ogw=$(peer_mac rkt-$D eth0)
sendraw rkt-$D eth0 $ogw $d $r2 d-r2-raw
# The control: a ptp network without the key.
send rkt-$O1 $o2 o1-o2-udp
sendraw rkt-$O1 eth0 $(peer_mac rkt-$O1 eth0) $o1 10.200.0.2 o1-lan-raw
stop_listeners
for t in r1-host-udp r1-host-tcp r1-host-raw; do echo "HOST_$t=$(got host $t)"; done
echo "R2_GOT=$(cat /tmp/got.r2 | cut -d' ' -f1 | sort | tr '\n' ' ')"
echo "D_GOT=$(cat /tmp/got.d | cut -d' ' -f1 | sort | tr '\n' ' ')"
echo "B_GOT=$(cat /tmp/got.b | cut -d' ' -f1 | sort | tr '\n' ' ')"
echo "LAN_GOT=$(cat /tmp/got.lan | cut -d' ' -f1 | sort | tr '\n' ' ')"
echo "O2_GOT=$(cat /tmp/got.o2 | cut -d' ' -f1 | sort | tr '\n' ' ')"
echo "CHAINS=$(nft list table inet rkt-cni | grep -o 'chain [a-z-]*' | sort | tr '\n' ' ')"
stop_all
lan_down
ip link del rktbr0
"#
        ))
        .ok();
    let v = |k: &str| o.value(k).unwrap_or_else(|| panic!("no {k}: {}", o.stdout));
    // The host is reachable: ordinary sockets and raw frames.
    assert_eq!(v("HOST_r1-host-udp"), "yes", "{}", o.stdout);
    assert_eq!(v("HOST_r1-host-tcp"), "yes", "{}", o.stdout);
    assert_eq!(v("HOST_r1-host-raw"), "yes", "{}", o.stdout);
    // Nothing else, in either direction.
    assert_eq!(v("R2_GOT"), "", "{}", o.stdout);
    assert_eq!(v("D_GOT"), "", "{}", o.stdout);
    assert_eq!(v("B_GOT"), "", "{}", o.stdout);
    // The LAN only hears the control pod.
    assert_eq!(v("LAN_GOT"), "o1-lan-raw ", "{}", o.stdout);
    assert_eq!(v("O2_GOT"), "o1-o2-udp ", "{}", o.stdout);
    assert_eq!(
        v("CHAINS"),
        "chain fwd-default-restricted chain masq-default chain src-default chain src-default-restricted ",
        "{}",
        o.stdout
    );
}

/// `"isolation": "host-only"` on a user bridge network: pods reach the
/// bridge's gateway address, but the bridge switches nothing between them
/// (ARP or a frame straight to the other pod's MAC) and the host routes
/// nothing from or to the bridge. The same network without the key: pod to
/// pod and pod to LAN work.
#[test]
fn host_only_bridge_network() {
    let o = Host::new()
        .run(&format!(
            r#"{PRELUDE}
lan_up
HO='{{"cniVersion":"1.0.0","name":"hob","type":"bridge","bridge":"hobr0","isGateway":true,"isolation":"host-only","ipam":{{"type":"host-local","subnet":"10.12.0.0/24","routes":[{{"dst":"0.0.0.0/0"}}]}}}}'
OPEN='{{"cniVersion":"1.0.0","name":"openbr","type":"bridge","bridge":"opbr0","isGateway":true,"ipam":{{"type":"host-local","subnet":"10.13.0.0/24","routes":[{{"dst":"0.0.0.0/0"}}]}}}}'
cni() {{ CNI_COMMAND=$1 CNI_CONTAINERID=c-$2 CNI_NETNS=/run/netns/$2 CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni "$BIN_DIR/bridge" <<<"$3"; }}
addr() {{ ip -n $1 -o -4 addr show eth0 | awk '{{print $4}}' | cut -d/ -f1; }}
for n in b1 b2 o1 o2; do ip netns add $n; done
cni ADD b1 "$HO" >/dev/null; cni ADD b2 "$HO" >/dev/null
cni ADD o1 "$OPEN" >/dev/null; cni ADD o2 "$OPEN" >/dev/null
b1=$(addr b1); b2=$(addr b2); o1=$(addr o1); o2=$(addr o2)
listen host; listen lan lan; listen b2 b2; listen o2 o2
send b1 10.12.0.1 b1-host-udp
send b1 10.12.0.1 b1-host-tcp tcp
send b1 $b2 b1-b2-udp
sendraw b1 eth0 $(mac_of b2 eth0) $b1 $b2 b1-b2-raw
send b1 10.200.0.2 b1-lan-udp
sendraw b1 eth0 $(ip -j link show hobr0 | jq -r '.[0].address') $b1 10.200.0.2 b1-lan-raw
send lan $b2 lan-b2-udp
send o1 $o2 o1-o2-udp
sendraw o1 eth0 $(mac_of o2 eth0) $o1 $o2 o1-o2-raw
send o1 10.200.0.2 o1-lan-udp
stop_listeners
echo "HOST_GOT=$(cat /tmp/got.host | cut -d' ' -f1 | sort | tr '\n' ' ')"
echo "B2_GOT=$(cat /tmp/got.b2 | cut -d' ' -f1 | sort | tr '\n' ' ')"
echo "LAN_GOT=$(cat /tmp/got.lan | cut -d' ' -f1 | sort | tr '\n' ' ')"
echo "O2_GOT=$(cat /tmp/got.o2 | cut -d' ' -f1 | sort | tr '\n' ' ')"
echo "TABLES=$(nft list tables | grep rkt-cni | sort | tr '\n' ' ')"
for n in b1 b2; do cni DEL $n "$HO"; done
for n in o1 o2; do cni DEL $n "$OPEN"; done
echo "TABLES_AFTER=$(masq_tables)"
for n in b1 b2 o1 o2; do ip netns del $n; done
ip link del hobr0; ip link del opbr0
lan_down
"#
        ))
        .ok();
    let v = |k: &str| o.value(k).unwrap_or_else(|| panic!("no {k}: {}", o.stdout));
    assert_eq!(v("HOST_GOT"), "b1-host-tcp b1-host-udp ", "{}", o.stdout);
    assert_eq!(v("B2_GOT"), "", "{}", o.stdout);
    assert_eq!(v("LAN_GOT"), "o1-lan-udp ", "{}", o.stdout);
    assert_eq!(v("O2_GOT"), "o1-o2-raw o1-o2-udp ", "{}", o.stdout);
    assert_eq!(
        v("TABLES"),
        "table bridge rkt-cni table inet rkt-cni ",
        "{}",
        o.stdout
    );
    assert_eq!(v("TABLES_AFTER"), "0", "{}", o.stdout);
}

/// A dual-stack ptp pod can only send from its own addresses: IPv6 frames
/// with a forged source (unused in its subnet, another pod's, the LAN's)
/// never arrive, its own do; with a host-wide loose rp_filter
/// (`all.rp_filter=2`, which overrides ptp's strict per-veth value) forged
/// IPv4 sources are still dropped. Ordinary traffic of both families flows.
#[test]
fn ptp_pods_cannot_forge_their_source() {
    let o = Host::new()
        .run(&format!(
            r#"{PRELUDE}
lan_up
DS='{{"cniVersion":"1.0.0","name":"ds","type":"ptp","ipam":{{"type":"host-local","ranges":[[{{"subnet":"10.80.0.0/24"}}],[{{"subnet":"fd80::/64"}}]],"routes":[{{"dst":"0.0.0.0/0"}},{{"dst":"::/0"}}]}}}}'
cni() {{ CNI_COMMAND=$1 CNI_CONTAINERID=c-$2 CNI_NETNS=/run/netns/$2 CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni "$BIN_DIR/ptp" <<<"$3"; }}
ip netns add p1; ip netns add p2
r1=$(cni ADD p1 "$DS"); r2=$(cni ADD p2 "$DS")
v4() {{ jq -r '.ips[] | .address' <<<"$1" | grep -v : | cut -d/ -f1; }}
v6() {{ jq -r '.ips[] | .address' <<<"$1" | grep : | cut -d/ -f1; }}
p1=$(v4 "$r1"); p16=$(v6 "$r1"); p2=$(v4 "$r2"); p26=$(v6 "$r2")
echo "ADDRS=$p1 $p16 $p2 $p26"
echo 2 > /proc/sys/net/ipv4/conf/all/rp_filter
# The host's side of the veths does duplicate address detection.
for _ in $(seq 100); do [ -z "$(ip -6 addr show tentative)" ] && break; sleep 0.05; done
listen lan lan; listen host
gw=$(peer_mac p1 eth0)
send p1 fd20::2 v6-socket
send p1 fd20::2 v6-tcp tcp
send p1 10.200.0.2 v4-socket
sendraw p1 eth0 $gw $p16 fd20::2 v6-own
sendraw p1 eth0 $gw fd80::99 fd20::2 v6-forged-unused
sendraw p1 eth0 $gw $p26 fd20::2 v6-forged-pod
sendraw p1 eth0 $gw fd20::77 fd20::2 v6-forged-lan
sendraw p1 eth0 $gw 2001:db8::1 fd20::2 v6-forged-other
sendraw p1 eth0 $gw fd80::1 fd20::2 v6-forged-gateway
sendraw p1 eth0 $gw $p26 fd80::1 v6-forged-to-host
sendraw p1 eth0 $gw $p1 10.200.0.2 v4-own
sendraw p1 eth0 $gw $p2 10.200.0.2 v4-forged-pod
sendraw p1 eth0 $gw 10.200.0.77 10.200.0.2 v4-forged-lan
stop_listeners
echo "LAN_GOT=$(cat /tmp/got.lan | cut -d' ' -f1 | sort | tr '\n' ' ')"
echo "HOST_GOT=$(cat /tmp/got.host | cut -d' ' -f1 | sort | tr '\n' ' ')"
echo "V6_FROM=$(grep '^v6-own ' /tmp/got.lan | cut -d' ' -f3)"
cni DEL p1 "$DS"; cni DEL p2 "$DS"
echo "TABLES_AFTER=$(masq_tables)"
ip netns del p1; ip netns del p2
lan_down
"#
        ))
        .ok();
    let v = |k: &str| o.value(k).unwrap_or_else(|| panic!("no {k}: {}", o.stdout));
    assert_eq!(
        v("LAN_GOT"),
        "v4-own v4-socket v6-own v6-socket v6-tcp ",
        "{}",
        o.stdout
    );
    assert_eq!(v("HOST_GOT"), "", "{}", o.stdout);
    assert!(v("V6_FROM").starts_with("fd80::"), "{}", o.stdout);
    assert_eq!(v("TABLES_AFTER"), "0", "{}", o.stdout);
}

const CNI: &str = r#"
cni() { CNI_COMMAND=$1 CNI_CONTAINERID=c-$2 CNI_NETNS=/run/netns/$2 CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni "$BIN_DIR/ptp" <<<"$3"; }
# masq NAME SUBNET: a masqueraded ptp config.
masq() { echo '{"cniVersion":"1.1.0","name":"'$1'","type":"ptp","ipMasq":true,"ipam":{"type":"host-local","subnet":"'$2'","routes":[{"dst":"0.0.0.0/0"}]}}'; }
# nft_slow / nft_fail: nft (as the plugins find it) waits 1 s, or fails.
fake_nft() {
  cp /usr/sbin/nft /tmp/nft.real
  cat > /tmp/nft.wrap <<'SH'
#!/bin/sh
touch /tmp/nft.started
if [ -e /tmp/nft.fail ]; then echo "nft: simulated failure" >&2; exit 1; fi
if [ -e /tmp/nft.slow ]; then sleep 1; fi
/tmp/nft.real "$@"; rc=$?
touch /tmp/nft.done
exit $rc
SH
  chmod +x /tmp/nft.wrap
  mount --bind /tmp/nft.wrap /usr/sbin/nft
}
real_nft() { umount /usr/sbin/nft; rm -f /tmp/nft.fail /tmp/nft.slow /tmp/nft.started /tmp/nft.done; }
state() { find /run/rkt-cni/net -mindepth 1 2>/dev/null | wc -l; }
"#;

/// Network names that clashed with the old state files (`lock`, `x` beside
/// `x.subnets`) or are long (60 and 253 characters) each get their own
/// state and chains, and leave nothing behind.
#[test]
fn odd_network_names_get_their_own_state() {
    let long60 = "n".repeat(60);
    let long253 = "l".repeat(253);
    let o = Host::new()
        .run(&format!(
            r#"{CNI}
i=0
for name in lock x x.subnets {long60} {long253}; do
  i=$((i+1)); ip netns add p$i
  cni ADD p$i "$(masq $name 10.90.$i.0/24)" >/dev/null || fail "ADD on network $name"
done
echo "MASQ_CHAINS=$(nft list table inet rkt-cni | grep -c 'chain masq-')"
echo "LOCK_RULE=$(nft list chain inet rkt-cni masq-lock | grep -c 'saddr 10.90.1.0/24')"
echo "X_RULE=$(nft list chain inet rkt-cni masq-x | grep -c 'saddr 10.90.2.0/24')"
echo "LONG_CHAIN=$(nft list table inet rkt-cni | grep -o 'chain masq-l*-[0-9a-f]*' | wc -c)"
echo "DIRS=$(ls /run/rkt-cni/net | wc -l)"
i=0
for name in lock x x.subnets {long60} {long253}; do
  i=$((i+1))
  cni DEL p$i "$(masq $name 10.90.$i.0/24)" || fail "DEL on network $name"
  ip netns del p$i
done
echo "TABLE_AFTER=$(masq_tables)"
echo "STATE_AFTER=$(state)"
# A name that is unsafe in a file or chain name: refused before anything.
ip netns add p9
if out=$(cni ADD p9 "$(masq 'bad/name;x' 10.90.9.0/24)"); then fail "ADD should fail"; fi
echo "BAD_ERR=$(jq -r .msg <<<"$out")"
echo "BAD_LEFT=$(state) $(ip -o link show type veth | wc -l) $(ls /var/lib/cni/networks | grep -c bad || true) $(nft list tables | grep -c rkt-cni || true)"
ip netns del p9
"#
        ))
        .ok();
    let v = |k: &str| o.value(k).unwrap_or_else(|| panic!("no {k}: {}", o.stdout));
    assert_eq!(v("MASQ_CHAINS"), "5", "{}", o.stdout);
    assert_eq!(v("LOCK_RULE"), "1", "{}", o.stdout);
    assert_eq!(v("X_RULE"), "1", "{}", o.stdout);
    // masq- + 48 characters + - + 16 hex digits (+ newline).
    assert_eq!(v("LONG_CHAIN"), "77", "{}", o.stdout);
    assert_eq!(v("DIRS"), "5", "{}", o.stdout);
    assert_eq!(v("TABLE_AFTER"), "0", "{}", o.stdout);
    assert_eq!(v("STATE_AFTER"), "0", "{}", o.stdout);
    assert!(
        v("BAD_ERR").starts_with("network name \"bad/name;x\" is missing or invalid (letters"),
        "{}",
        o.stdout
    );
    assert_eq!(v("BAD_LEFT"), "0 0 0 0", "{}", o.stdout);
}

/// A failing ADD rolls its nftables state back; an ADD SIGKILLed while nft
/// installs its chain leaves state that `rkt gc` sees, and gc removes the
/// chain with it.
#[test]
fn failing_and_killed_adds_leave_no_chain() {
    let o = Host::new()
        .run(&format!(
            r#"{CNI}
# 1. ADD fails after the nftables step (the pod already routes the gateway).
ip netns add f1
ip -n f1 link add d0 type bridge; ip -n f1 link set d0 up
ip -n f1 route add 10.91.0.1/32 dev d0
if out=$(cni ADD f1 "$(masq lock 10.91.0.0/24)"); then fail "ADD should fail"; fi
echo "ERR1=$(jq -r .msg <<<"$out")"
echo "TABLE1=$(masq_tables)"
echo "STATE1=$(state)"
ip netns del f1
# 2. nft itself fails: a clear error, no state.
fake_nft; touch /tmp/nft.fail
ip netns add f2
if out=$(cni ADD f2 "$(masq failing 10.92.0.0/24)"); then fail "ADD should fail"; fi
echo "ERR2=$(jq -r .msg <<<"$out")"
echo "STATE2=$(state)"
real_nft
ip netns del f2
# 3. The plugin is killed while nft installs the chain; nft goes on.
cat > /etc/rkt/net.d/killme.conf <<CONF
$(masq killme 10.93.0.0/24)
CONF
fake_nft; touch /tmp/nft.slow
ip netns add k1
( exec env CNI_COMMAND=ADD CNI_CONTAINERID=c-k1 CNI_NETNS=/run/netns/k1 CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni "$BIN_DIR/ptp" <<<"$(masq killme 10.93.0.0/24)" >/dev/null ) &
pid=$!
for _ in $(seq 100); do [ -e /tmp/nft.started ] && break; sleep 0.02; done
kill -9 $pid; wait $pid 2>/dev/null || true
for _ in $(seq 100); do [ -e /tmp/nft.done ] && break; sleep 0.05; done
real_nft
echo "CHAIN_AFTER_KILL=$(nft list table inet rkt-cni 2>/dev/null | grep -c 'chain masq-killme' || true)"
rkt gc --grace-period=0s >/dev/null
echo "CHAIN_AFTER_GC=$(nft list ruleset | grep -c 'chain masq-killme' || true)"
echo "TABLE3=$(masq_tables)"
echo "STATE3=$(state)"
ip netns del k1
"#
        ))
        .ok();
    let v = |k: &str| o.value(k).unwrap_or_else(|| panic!("no {k}: {}", o.stdout));
    assert!(v("ERR1").contains("route to the gateway"), "{}", o.stdout);
    assert_eq!(v("TABLE1"), "0", "{}", o.stdout);
    assert_eq!(v("STATE1"), "0", "{}", o.stdout);
    let e2 = v("ERR2");
    assert!(
        e2.contains("network \"failing\"") && e2.contains("simulated failure"),
        "{}",
        o.stdout
    );
    assert_eq!(v("STATE2"), "0", "{}", o.stdout);
    assert_eq!(v("CHAIN_AFTER_KILL"), "1", "{}", o.stdout);
    assert_eq!(v("CHAIN_AFTER_GC"), "0", "{}", o.stdout);
    assert_eq!(v("TABLE3"), "0", "{}", o.stdout);
    assert_eq!(v("STATE3"), "0", "{}", o.stdout);
}

/// After `nft flush ruleset` a running pod is no longer masqueraded;
/// `rkt gc` brings its masquerade back and removes a chain no state names.
#[test]
fn gc_reinstalls_flushed_chains_and_removes_orphans() {
    let o = Host::new()
        .run(&format!(
            r#"{PRELUDE}
lan_up
start D default
# peer TAG: the address the LAN saw a TCP connection from D come from.
peer() {{
  listen lan lan
  send rkt-$D 10.200.0.2 $1 tcp
  stop_listeners
  grep "^$1 from" /tmp/got.lan | cut -d' ' -f3
}}
echo "BEFORE=$(peer before)"
nft flush ruleset
echo "FLUSHED=$(peer flushed)"
nft add table inet rkt-cni
nft add chain inet rkt-cni masq-ghost '{{ type nat hook postrouting priority srcnat; }}'
rkt gc --grace-period=0s >/dev/null
echo "AFTER_GC=$(peer after)"
echo "CHAINS=$(nft list table inet rkt-cni | grep -o 'chain [a-z-]*' | sort | tr '\n' ' ')"
stop_all
echo "TABLE_AFTER=$(masq_tables)"
lan_down
"#
        ))
        .ok();
    let v = |k: &str| o.value(k).unwrap_or_else(|| panic!("no {k}: {}", o.stdout));
    assert_eq!(v("BEFORE"), "10.200.0.1", "{}", o.stdout);
    // Without masquerade the LAN sees the pod's own address (it routes
    // back through the host).
    assert!(v("FLUSHED").starts_with("172.16.28."), "{}", o.stdout);
    assert_eq!(v("AFTER_GC"), "10.200.0.1", "{}", o.stdout);
    assert_eq!(
        v("CHAINS"),
        "chain masq-default chain src-default ",
        "{}",
        o.stdout
    );
    assert_eq!(v("TABLE_AFTER"), "0", "{}", o.stdout);
}

/// Host veth names never clobber a link someone else made: a link with the
/// name earlier versions derived for the attachment survives ADD and DEL,
/// random picks that collide with existing links are retried, and a
/// CNI_IFNAME taken in the pod is an error that leaves the link alone.
#[test]
fn host_veth_names_never_clobber_other_links() {
    let o = Host::new()
        .run(&format!(
            r#"{CNI}
C='{{"cniVersion":"1.0.0","name":"vn","type":"ptp","ipam":{{"type":"host-local","subnet":"10.94.0.0/24"}}}}'
kind() {{ ip -d -j link show "$1" 2>/dev/null | jq -r '.[0].linkinfo.info_kind // "gone"'; }}
legacy=veth$(printf 'c-p1\0eth0' | sha256sum | cut -c1-8)
ip link add $legacy type bridge
ip netns add p1
out=$(cni ADD p1 "$C") || fail "ADD p1: $out"
echo "P1_NAME_IS_LEGACY=$([ "$(jq -r '.interfaces[0].name' <<<"$out")" = $legacy ] && echo yes || echo no)"
echo "LEGACY_AFTER_ADD=$(kind $legacy)"
cni DEL p1 "$C"
echo "LEGACY_AFTER_DEL=$(kind $legacy)"
# Random picks that collide: the plugin's first two picks are taken.
ip link add vethtaken0 type bridge; ip link add vethtaken1 type bridge
ip netns add p2
out=$(RKT_TEST_VETH_NAMES=vethtaken0,vethtaken1 cni ADD p2 "$C") || fail "ADD p2: $out"
name=$(jq -r '.interfaces[0].name' <<<"$out")
echo "P2_NAME=$(echo $name | sed 's/veth[0-9a-f]\{{8\}}/veth<8 hex>/')"
echo "P2_KIND=$(kind $name)"
echo "TAKEN=$(kind vethtaken0) $(kind vethtaken1)"
# DEL finds the host end without prevResult (through the pod end's peer).
cni DEL p2 "$C"
echo "P2_HOST_END=$(ip -o link show $name 2>/dev/null | grep -o 'state [A-Z]*' || echo gone)"
# DEL with prevResult finds the host end by its name (and checks its alias).
ip netns add p4
out=$(cni ADD p4 "$C") || fail "ADD p4: $out"
name4=$(jq -r '.interfaces[0].name' <<<"$out")
full=$(jq -c --argjson p "$out" '. + {{prevResult: $p}}' <<<"$C")
CNI_COMMAND=DEL CNI_CONTAINERID=c-p4 CNI_NETNS=/run/netns/p4 CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni CNI_ARGS="IgnoreUnknown=1;RKT_NETNS_TEARDOWN=true" "$BIN_DIR/ptp" <<<"$full"
echo "P4_HOST_END=$(ip -o link show $name4 | grep -o 'state [A-Z]*')"
echo "P4_ROUTES=$(ip route | grep -c "dev $name4" || true)"
# CNI_IFNAME taken in the pod by something else: an error, nothing removed.
ip netns add p3
ip -n p3 link add eth0 type bridge
if out=$(cni ADD p3 "$C"); then fail "ADD p3 should fail"; fi
echo "P3_ERR=$(jq -r .msg <<<"$out")"
echo "P3_ETH0=$(ip -n p3 -d -j link show eth0 | jq -r '.[0].linkinfo.info_kind')"
echo "P3_VETHS=$(ip -o link show type veth | grep -c 'link-netns p3' || true)"
ip link del $legacy; ip link del vethtaken0; ip link del vethtaken1
ip netns del p1; ip netns del p2; ip netns del p3; ip netns del p4
"#
        ))
        .ok();
    let v = |k: &str| o.value(k).unwrap_or_else(|| panic!("no {k}: {}", o.stdout));
    assert_eq!(v("P1_NAME_IS_LEGACY"), "no", "{}", o.stdout);
    assert_eq!(v("LEGACY_AFTER_ADD"), "bridge", "{}", o.stdout);
    assert_eq!(v("LEGACY_AFTER_DEL"), "bridge", "{}", o.stdout);
    assert_eq!(v("P2_NAME"), "veth<8 hex>", "{}", o.stdout);
    assert_eq!(v("P2_KIND"), "veth", "{}", o.stdout);
    assert_eq!(v("TAKEN"), "bridge bridge", "{}", o.stdout);
    assert_ne!(v("P2_HOST_END"), "state UP", "{}", o.stdout);
    assert_eq!(v("P4_HOST_END"), "state DOWN", "{}", o.stdout);
    assert_eq!(v("P4_ROUTES"), "0", "{}", o.stdout);
    assert!(
        v("P3_ERR").contains("container veth name provided (eth0) already exists"),
        "{}",
        o.stdout
    );
    assert_eq!(v("P3_ETH0"), "bridge", "{}", o.stdout);
    assert_eq!(v("P3_VETHS"), "0", "{}", o.stdout);
}

/// Masquerade state written by earlier versions (`/run/rkt-cni/masq`, the
/// chain `masq-<network>`) is adopted: a pod added and removed by this
/// version leaves the old pod's chain in place, and gc removes it once the
/// old pod is gone.
#[test]
fn old_masquerade_state_is_adopted() {
    let o = Host::new()
        .run(&format!(
            r#"{CNI}
M=$(masq default 172.16.28.0/24)
# What an earlier version left for a running pod c-old.
mkdir -p /run/rkt-cni/masq/default
touch /run/rkt-cni/masq/lock /run/rkt-cni/masq/default/c-old-eth0
echo 172.16.28.0/24 > /run/rkt-cni/masq/default.subnets
nft -f - <<'NFT'
add table inet rkt-cni
add chain inet rkt-cni masq-default {{ type nat hook postrouting priority srcnat; policy accept; }}
add rule inet rkt-cni masq-default ip saddr {{ 172.16.28.0/24 }} ip daddr != {{ 172.16.28.0/24 }} ip daddr != 224.0.0.0/4 masquerade
NFT
ip netns add p1
cni ADD p1 "$M" >/dev/null
echo "OLD_DIR=$(ls -d /run/rkt-cni/masq 2>/dev/null | wc -l)"
echo "PODS=$(ls /run/rkt-cni/net/default/pods | sort | tr '\n' ' ')"
cni DEL p1 "$M"
sleep 1
echo "CHAIN_AFTER_NEW_POD=$(nft list ruleset | grep -c 'chain masq-default' || true)"
gc() {{ CNI_COMMAND=GC CNI_PATH=/usr/lib/cni "$BIN_DIR/ptp" <<<"$(jq -c ". + {{\"cni.dev/valid-attachments\": $1}}" <<<"$M")"; }}
gc '[{{"containerID": "c-old", "ifname": "eth0"}}]'
echo "CHAIN_OLD_VALID=$(nft list ruleset | grep -c 'chain masq-default' || true)"
gc '[]'
echo "TABLE_OLD_GONE=$(masq_tables)"
echo "STATE=$(state)"
ip netns del p1
"#
        ))
        .ok();
    let v = |k: &str| o.value(k).unwrap_or_else(|| panic!("no {k}: {}", o.stdout));
    assert_eq!(v("OLD_DIR"), "0", "{}", o.stdout);
    assert_eq!(v("PODS"), "c-old-eth0 c-p1-eth0 ", "{}", o.stdout);
    assert_eq!(v("CHAIN_AFTER_NEW_POD"), "1", "{}", o.stdout);
    assert_eq!(v("CHAIN_OLD_VALID"), "1", "{}", o.stdout);
    assert_eq!(v("TABLE_OLD_GONE"), "0", "{}", o.stdout);
    assert_eq!(v("STATE"), "0", "{}", o.stdout);
}
