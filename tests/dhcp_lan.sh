# LAN helpers for the DHCP tests: a "lan" netns with dnsmasq behind a veth
# whose host end (lan0) is the macvlan master.
setup_lan() {
  ip netns add lan
  ip link add lan0 type veth peer name lanpeer
  ip link set lanpeer netns lan
  ip -n lan link set lo up
  ip -n lan addr add 10.77.0.1/24 dev lanpeer
  ip -n lan link set lanpeer up
  ip link set lan0 up
}
start_dnsmasq() {
  ip netns exec lan dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --port=0 \
    --user=root --interface=lanpeer --bind-interfaces --no-ping \
    --dhcp-range=10.77.0.50,10.77.0.150,255.255.255.0,2m \
    --dhcp-option=3,10.77.0.1 --dhcp-option=6,10.77.0.53 --dhcp-option=15,lan.test \
    --dhcp-option=119,a.test,b.test --dhcp-leasefile=/tmp/dnsmasq.leases \
    --log-dhcp --log-facility=/tmp/dnsmasq.log "$@" &
  DNSMASQ_PID=$!
}
start_daemon() {
  local before
  before=$(grep -c 'listening on' /tmp/dhcpd.log 2>/dev/null || true)
  "$BIN_DIR/dhcp" daemon "$@" 2>>/tmp/dhcpd.log &
  DHCPD_PID=$!
  for i in $(seq 300); do
    [ "$(grep -c 'listening on' /tmp/dhcpd.log 2>/dev/null || true)" -gt "${before:-0}" ] && return 0
    sleep 0.01
  done
  fail "dhcp daemon did not start: $(cat /tmp/dhcpd.log)"
}
# The expiry (first field) of dnsmasq's lease for an address.
lease_expiry() { awk -v ip="$1" '$3 == ip { print $1 }' /tmp/dnsmasq.leases; }
stop_all() {
  [ -n "${DHCPD_PID:-}" ] && kill "$DHCPD_PID" 2>/dev/null && wait "$DHCPD_PID" 2>/dev/null
  [ -n "${DNSMASQ_PID:-}" ] && kill "$DNSMASQ_PID" 2>/dev/null && wait "$DNSMASQ_PID" 2>/dev/null
  ip link del lan0 2>/dev/null
  ip netns del lan 2>/dev/null
  true
}
