//! Issue 12: networks that cannot be turned against each other, the
//! runtime's side. `rkt gc` cannot hurt a live pod (of its own store or of
//! another), two networks cannot hand out the same addresses, and DNS data
//! a network returns cannot add lines to a pod's resolv.conf.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use common::{plugin_sets, Host};

/// 20 pods started while two `rkt gc` loops run: gc never releases the
/// lease of a pod being created, so every pod keeps its own address and
/// its own lease (before, gc released leases of pods mid-ADD and the next
/// pod got the same address and took the first one's host route).
#[test]
fn gc_never_releases_the_lease_of_a_starting_pod() {
    let host = Host::new().start();
    let img = host.image();
    let stop = AtomicBool::new(false);
    let pods = std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    host.rkt(&["gc", "--grace-period=0s"]);
                }
            });
        }
        let pods: Vec<_> = (0..20)
            .map(|_| {
                host.rkt_spawn(&[
                    "run",
                    "--net=default",
                    &img,
                    "--exec=/bin/sh",
                    "--",
                    "-c",
                    "ip -o -4 addr show eth0 | awk '{print $4}' > /tmp/addr; sleep 30",
                ])
            })
            .collect();
        host.wait_running(20);
        stop.store(true, Ordering::Relaxed);
        pods
    });
    let uuids = host.pods("running");
    assert_eq!(uuids.len(), 20);
    let mut addrs = Vec::new();
    for uuid in &uuids {
        let mut addr = String::new();
        for _ in 0..50 {
            addr = host.rkt(&["enter", uuid, "cat", "/tmp/addr"]).stdout;
            if !addr.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let ip = addr.trim().split('/').next().unwrap().to_string();
        let lease = host.read(&format!("/var/lib/cni/networks/default/{ip}"));
        assert_eq!(
            lease.lines().next(),
            Some(uuid.as_str()),
            "pod {uuid} lost its lease"
        );
        addrs.push(ip);
    }
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 20, "two pods share an address: {addrs:?}");
    let leases = host.ls("/var/lib/cni/networks/default");
    assert_eq!(leases.iter().filter(|f| f.starts_with("172")).count(), 20);
    for uuid in &uuids {
        host.rkt(&["stop", uuid]).ok();
    }
    for pod in pods {
        pod.wait_with_output().expect("rkt run");
    }
    host.rkt(&["gc", "--grace-period=0s"]).ok();
    host.finish();
}

/// `rkt --dir=<another store> gc` leaves the pods of the default store
/// alone: their namespace, lease and connectivity survive it.
#[test]
fn another_stores_gc_touches_nothing() {
    for (set, flags) in plugin_sets() {
        let host = Host::new().global(flags).start();
        let (pod, uuid) = host.pod_in_background("default", &[], &["/bin/sleep", "30"]);
        host.exec(&["mkdir", "-p", "/var/lib/rkt/other"]).ok();
        host.rkt(&["--dir=/var/lib/rkt/other", "gc", "--grace-period=0s"])
            .ok();
        assert!(
            host.ls("/run/netns").contains(&format!("rkt-{uuid}")),
            "{set}: the pod's netns"
        );
        let held = host
            .ls("/var/lib/cni/networks/default")
            .into_iter()
            .filter(|f| f.starts_with("172."))
            .filter(|f| {
                host.read(&format!("/var/lib/cni/networks/default/{f}"))
                    .contains(&uuid)
            })
            .count();
        assert_eq!(held, 1, "{set}: the pod's lease");
        host.rkt(&["enter", &uuid, "ping", "-c1", "-W2", "172.16.28.1"])
            .ok();
        host.rkt(&["stop", &uuid]).ok();
        pod.wait_with_output().expect("rkt run");
        host.rkt(&["gc", "--grace-period=0s"]).ok();
        host.finish();
    }
}

/// Two host-routed networks (ptp, bridge) with overlapping subnets are
/// refused before anything is created, whichever of them a pod asks for,
/// the built-in default included; distinct subnets still work.
#[test]
fn networks_sharing_addresses_are_refused() {
    let host = Host::new().start();
    for (file, json) in [
        (
            "10-a.conf",
            r#"{"cniVersion":"1.0.0","name":"a","type":"ptp","ipam":{"type":"host-local","subnet":"10.50.0.0/24"}}"#,
        ),
        (
            "20-b.conf",
            r#"{"cniVersion":"1.0.0","name":"b","type":"bridge","bridge":"br-b","ipam":{"type":"host-local","subnet":"10.50.0.0/16"}}"#,
        ),
        (
            "30-c.conf",
            r#"{"cniVersion":"1.0.0","name":"c","type":"ptp","ipam":{"type":"host-local","subnet":"172.16.28.128/25"}}"#,
        ),
        (
            "40-d.conf",
            r#"{"cniVersion":"1.0.0","name":"d","type":"ptp","ipam":{"type":"host-local","subnet":"10.51.0.0/24"}}"#,
        ),
    ] {
        host.net_conf(file, json);
    }
    let a = host
        .in_pod("a", &["/bin/true"])
        .fails_with(254, "rkt: network \"a\"");
    assert!(
        a.contains("overlaps subnet 10.50.0.0/16 of network \"b\"")
            && a.contains("20-b.conf")
            && a.contains("same addresses"),
        "{a}"
    );
    host.in_pod("b", &["/bin/true"])
        .fails_with(254, "network \"a\"");
    let d = host
        .in_pod("default", &["/bin/true"])
        .fails_with(254, "network \"c\"");
    assert!(d.contains("172.16.28.0/24"), "{d}");
    // Refused runs created nothing: no pod, no link.
    assert_eq!(host.list_json(), serde_json::json!([]));
    let links = host.exec(&["ip", "-o", "link"]).ok();
    assert_eq!(links.lines().len(), 1, "only lo: {links:?}");
    let ok = host
        .in_pod("d", &["/bin/ip", "-o", "-4", "addr", "show", "eth0"])
        .ok();
    assert_eq!(common::ipv4_addrs(&ok.stdout)[0].cidr, "10.51.0.2/24");
    host.rkt(&["gc", "--grace-period=0s"]).ok();
    host.finish();
}

/// DNS values a network returns are checked before they reach the pod's
/// resolv.conf: a newline in a domain, a nameserver that is not an IP, a
/// search domain with a space, an option with a newline are dropped (and
/// reported), the valid values are kept. With the bundled and the
/// reference plugins (both pass a config's `dns` block through).
#[test]
fn dns_values_cannot_inject_resolv_conf_lines() {
    for (set, flags) in plugin_sets() {
        let host = Host::new().global(flags).start();
        host.net_conf(
            "evil.conf",
            r#"{"cniVersion":"1.0.0","name":"evil","type":"ptp","ipam":{"type":"host-local","subnet":"10.52.0.0/24"},
 "dns":{"nameservers":["10.52.0.53","10.52.0.54\nnameserver 6.6.6.6","dns.example"],
        "domain":"evil.test\nnameserver 6.6.6.6",
        "search":["ok.test","bad domain","x\noptions debug"],
        "options":["ndots:2","attempts:1\nnameserver 6.6.6.6"]}}"#,
        );
        let o = host.in_pod("evil", &["/bin/cat", "/etc/resolv.conf"]).ok();
        assert_eq!(
            o.lines(),
            [
                "# Generated by rkt from network \"evil\"",
                "search ok.test",
                "nameserver 10.52.0.53",
                "options ndots:2",
            ],
            "{set}: {o:?}"
        );
        assert_eq!(
            o.stderr.matches("cannot go in resolv.conf").count(),
            1,
            "{set}: {o:?}"
        );
        host.rkt(&["gc", "--grace-period=0s"]).ok();
        host.finish();
    }
}
