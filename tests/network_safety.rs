//! Issue 12: networks that cannot be turned against each other, the
//! runtime's side. `rkt gc` cannot hurt a live pod (of its own store or of
//! another), two networks cannot hand out the same addresses, and DNS data
//! a network returns cannot add lines to a pod's resolv.conf.

mod common;

use common::{plugin_sets, Host};

/// 20 pods started while two `rkt gc` loops run: gc never releases the
/// lease of a pod being created, so every pod keeps its own address and
/// its own lease (before, gc released leases of pods mid-ADD and the next
/// pod got the same address and took the first one's host route).
#[test]
fn gc_never_releases_the_lease_of_a_starting_pod() {
    let o = Host::new()
        .run(
            r#"( while [ ! -e stop ]; do rkt gc --grace-period=0s > /dev/null 2>&1; done ) &
g1=$!
( while [ ! -e stop ]; do rkt gc --grace-period=0s > /dev/null 2>&1; done ) &
g2=$!
for i in $(seq 20); do
  rkt run --net=default "$IMG" --exec=/bin/sh -- -c 'ip -o -4 addr show eth0 | awk "{print \$4}" > /tmp/addr; sleep 30' > /dev/null 2>&1 &
done
wait_running 20
touch stop
wait $g1 $g2
for u in $(rkt list --full --no-legend | awk '{print $1}'); do
  a=$(rkt enter $u cat /tmp/addr 2>/dev/null)
  for _ in $(seq 50); do [ -n "$a" ] && break; sleep 0.1; a=$(rkt enter $u cat /tmp/addr 2>/dev/null); done
  ip=${a%/*}
  echo "POD $u $ip LEASE=$(head -n1 /var/lib/cni/networks/default/$ip 2>/dev/null | tr -d '\r')"
done
echo "LEASES=$(ls /var/lib/cni/networks/default | grep -c '^172' || true)"
for u in $(rkt list --full --no-legend | awk '{print $1}'); do rkt stop $u > /dev/null; done
wait
rkt gc --grace-period=0s > /dev/null
"#,
        )
        .ok();
    let pods: Vec<Vec<&str>> = o
        .stdout
        .lines()
        .filter(|l| l.starts_with("POD "))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(pods.len(), 20, "{}", o.stdout);
    let mut addrs: Vec<&str> = pods.iter().map(|p| p[2]).collect();
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 20, "two pods share an address: {}", o.stdout);
    for p in &pods {
        assert_eq!(
            p[3].strip_prefix("LEASE="),
            Some(p[1]),
            "pod {} lost its lease: {}",
            p[1],
            o.stdout
        );
    }
    assert_eq!(o.value("LEASES").as_deref(), Some("20"), "{}", o.stdout);
}

/// `rkt --dir=<another store> gc` leaves the pods of the default store
/// alone: their namespace, lease and connectivity survive it.
#[test]
fn another_stores_gc_touches_nothing() {
    for (set, flags) in plugin_sets() {
        let o = Host::new()
            .global(flags)
            .run(
                r#"rkt run --net=default "$IMG" --exec=/bin/sleep -- 30 &
wait_running
uuid=$(rkt list --full --no-legend | awk '{print $1}')
mkdir -p /var/lib/rkt/other
rkt --dir=/var/lib/rkt/other gc --grace-period=0s
echo "NETNS=$(ls /run/netns | grep -c "rkt-$uuid")"
echo "LEASE=$(grep -l "$uuid" /var/lib/cni/networks/default/172.* | wc -l)"
rkt enter $uuid ping -c1 -W2 172.16.28.1 > /dev/null && echo "PING=ok"
rkt stop $uuid > /dev/null
wait
rkt gc --grace-period=0s > /dev/null
"#,
            )
            .ok();
        assert_eq!(
            o.value("NETNS").as_deref(),
            Some("1"),
            "{set}: {}",
            o.stdout
        );
        assert_eq!(
            o.value("LEASE").as_deref(),
            Some("1"),
            "{set}: {}",
            o.stdout
        );
        assert_eq!(
            o.value("PING").as_deref(),
            Some("ok"),
            "{set}: {}",
            o.stdout
        );
    }
}

/// Two host-routed networks (ptp, bridge) with overlapping subnets are
/// refused before anything is created, whichever of them a pod asks for,
/// the built-in default included; distinct subnets still work.
#[test]
fn networks_sharing_addresses_are_refused() {
    let o = Host::new()
        .run(
            r#"cat > /etc/rkt/net.d/10-a.conf <<'JSON'
{"cniVersion":"1.0.0","name":"a","type":"ptp","ipam":{"type":"host-local","subnet":"10.50.0.0/24"}}
JSON
cat > /etc/rkt/net.d/20-b.conf <<'JSON'
{"cniVersion":"1.0.0","name":"b","type":"bridge","bridge":"br-b","ipam":{"type":"host-local","subnet":"10.50.0.0/16"}}
JSON
cat > /etc/rkt/net.d/30-c.conf <<'JSON'
{"cniVersion":"1.0.0","name":"c","type":"ptp","ipam":{"type":"host-local","subnet":"172.16.28.128/25"}}
JSON
cat > /etc/rkt/net.d/40-d.conf <<'JSON'
{"cniVersion":"1.0.0","name":"d","type":"ptp","ipam":{"type":"host-local","subnet":"10.51.0.0/24"}}
JSON
for net in a b default; do
  set +e; rkt run --net=$net "$IMG" --exec=/bin/true 2> err; rc=$?; set -e
  echo "REFUSED_$net=$rc $(cat err)"
done
rkt run --net=d "$IMG" --exec=/bin/sh -- -c 'echo "D=$(ip -o -4 addr show eth0 | awk "{print \$4}")"'
echo "PODS=$(find /var/lib/rkt/pods -mindepth 2 -maxdepth 2 | wc -l)"
echo "LINKS=$(ip -o link | grep -c -v ' lo:')"
rkt gc --grace-period=0s > /dev/null
"#,
        )
        .ok();
    let a = o.value("REFUSED_a").unwrap();
    assert!(a.starts_with("254 rkt: network \"a\""), "{a}");
    assert!(
        a.contains("overlaps subnet 10.50.0.0/16 of network \"b\"")
            && a.contains("20-b.conf")
            && a.contains("same addresses"),
        "{a}"
    );
    let b = o.value("REFUSED_b").unwrap();
    assert!(b.starts_with("254 ") && b.contains("network \"a\""), "{b}");
    let d = o.value("REFUSED_default").unwrap();
    assert!(
        d.starts_with("254 ") && d.contains("network \"c\"") && d.contains("172.16.28.0/24"),
        "{d}"
    );
    assert_eq!(
        o.value("D").as_deref(),
        Some("10.51.0.2/24"),
        "{}",
        o.stdout
    );
    // Refused runs created nothing: no pod, no link (the one pod that ran
    // was collected, and the leak check covers its netns and lease).
    assert_eq!(o.value("PODS").as_deref(), Some("1"), "{}", o.stdout);
}

/// DNS values a network returns are checked before they reach the pod's
/// resolv.conf: a newline in a domain, a nameserver that is not an IP, a
/// search domain with a space, an option with a newline are dropped (and
/// reported), the valid values are kept. With the bundled and the
/// reference plugins (both pass a config's `dns` block through).
#[test]
fn dns_values_cannot_inject_resolv_conf_lines() {
    for (set, flags) in plugin_sets() {
        let o = Host::new()
            .global(flags)
            .run(
                r#"cat > /etc/rkt/net.d/evil.conf <<'JSON'
{"cniVersion":"1.0.0","name":"evil","type":"ptp","ipam":{"type":"host-local","subnet":"10.52.0.0/24"},
 "dns":{"nameservers":["10.52.0.53","10.52.0.54\nnameserver 6.6.6.6","dns.example"],
        "domain":"evil.test\nnameserver 6.6.6.6",
        "search":["ok.test","bad domain","x\noptions debug"],
        "options":["ndots:2","attempts:1\nnameserver 6.6.6.6"]}}
JSON
rkt run --net=evil "$IMG" --exec=/bin/cat -- /etc/resolv.conf > resolv 2> err
sed 's/^/RESOLV: /' resolv
echo "WARNED=$(grep -c 'cannot go in resolv.conf' err)"
rkt gc --grace-period=0s > /dev/null
"#,
            )
            .ok();
        let resolv: Vec<&str> = o
            .stdout
            .lines()
            .filter_map(|l| l.strip_prefix("RESOLV: "))
            .collect();
        assert_eq!(
            resolv,
            [
                "# Generated by rkt from network \"evil\"",
                "search ok.test",
                "nameserver 10.52.0.53",
                "options ndots:2",
            ],
            "{set}: {}",
            o.stdout
        );
        assert_eq!(
            o.value("WARNED").as_deref(),
            Some("1"),
            "{set}: {}",
            o.stdout
        );
    }
}
