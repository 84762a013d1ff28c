#!/usr/bin/env bash
# The main job: build rkt, then run a pod on the default network and show
# its interfaces, routes and resolv.conf, then `rkt list --full`.
#
# It runs inside a throwaway host (new mount, network and PID namespaces with
# tmpfs over rkt's state directories) so it does not change this machine's
# real network configuration; inside it rkt uses its real default paths.
set -euo pipefail
cd "$(dirname "$0")/.."
./vagrant/provision.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --bins
img=$(mktemp -d /tmp/rkt-demo-image.XXXXXX)
trap 'rm -rf "$img"' EXIT
mkdir -p "$img/bin" "$img/etc"
cp /bin/busybox "$img/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$img/bin/$a"; done
RKT="$PWD/target/$(rustc --print host-tuple)/release/rkt" IMG="$img" unshare --mount --net --pid --fork --mount-proc --propagation private bash -euc '
for d in /etc/rkt /var/lib/rkt /var/lib/cni /run; do mkdir -p $d; mount -t tmpfs tmpfs $d; done
ip link set lo up
mkdir -p /etc/rkt/net.d
# The built-in default network, with a dns block so resolv.conf is written.
cat > /etc/rkt/net.d/99-default.conf <<JSON
{ "cniVersion": "1.0.0", "name": "default", "type": "ptp", "ipMasq": true,
  "ipam": { "type": "host-local", "subnet": "172.16.28.0/24", "routes": [ { "dst": "0.0.0.0/0" } ] },
  "dns": { "nameservers": [ "172.16.28.1" ], "search": [ "pods.rkt.test" ] } }
JSON
echo "+ rkt run --net=default $IMG --exec=/bin/sh -- -c \"ip addr; ip route; cat /etc/resolv.conf\""
"$RKT" run --net=default "$IMG" --exec=/bin/sh -- -c "echo; echo \# ip addr; ip addr; echo; echo \# ip route; ip route; echo; echo \# cat /etc/resolv.conf; cat /etc/resolv.conf; echo"
echo "+ rkt list --full"
"$RKT" list --full
'
