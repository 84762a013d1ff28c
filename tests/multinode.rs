//! A pod network across machines, the host-gw way (issue 16): two throwaway
//! hosts joined by a link, each with a bridge network whose host-local
//! subnet is its own slice of the cluster CIDR 10.244.0.0/16 (node A
//! 10.244.1.0/24, node B 10.244.2.0/24: Kubernetes' podCIDR per node) and a
//! route to the other's slice through it. A pod on A reaches a pod on B by
//! its address and the other way; the receiver sees the caller's own
//! address (`nonMasqueradeCIDRs` keeps the cluster CIDR unmasqueraded),
//! while traffic leaving the cluster is masqueraded.

mod common;

use common::{kill_spawned, remove_upstream, upstream, Host, Session};

/// Node `n`'s network: our bridge + host-local on its slice, masquerade
/// for everything but the cluster.
fn cluster_conf(n: u8) -> String {
    format!(
        r#"{{ "cniVersion": "1.0.0", "name": "cluster", "plugins": [
  {{ "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true,
    "nonMasqueradeCIDRs": ["10.244.0.0/16"],
    "ipam": {{ "type": "host-local", "ranges": [[{{ "subnet": "10.244.{n}.0/24" }}]],
              "routes": [{{ "dst": "0.0.0.0/0" }}] }} }} ] }}"#
    )
}

/// Brings node `n` up: its end of the link (192.168.50.n), the route to
/// the other node's slice, its network config.
fn node(host: &Session, n: u8, other: u8) {
    let addr = format!("192.168.50.{n}/24");
    let via = format!("192.168.50.{other}");
    let slice = format!("10.244.{other}.0/24");
    for argv in [
        vec!["ip", "addr", "add", &addr, "dev", "node0"],
        vec!["ip", "link", "set", "node0", "up"],
        vec!["ip", "route", "add", &slice, "via", &via],
    ] {
        host.exec(&argv).ok();
    }
    host.net_conf("10-cluster.conflist", &cluster_conf(n));
}

/// A pod on `cluster` answering HTTP on 8080 with the address each request
/// came from (busybox httpd's CGI REMOTE_ADDR); its address and `rkt run`.
fn echo_server(host: &Session) -> (std::process::Child, String) {
    let script = "mkdir -p /w/cgi-bin && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' >/w/cgi-bin/ip && chmod +x /w/cgi-bin/ip && exec httpd -f -p 0.0.0.0:8080 -h /w";
    let (child, uuid) = host.pod_in_background("cluster", &[], &["/bin/sh", "-c", script]);
    let status = host.rkt(&["status", &uuid]).ok();
    let ip = status
        .value("networks")
        .and_then(|n| {
            n.split(',')
                .find_map(|e| e.strip_prefix("cluster:ip4=").map(str::to_string))
        })
        .unwrap_or_else(|| panic!("no cluster address in {}", status.stdout));
    (child, ip)
}

/// From a new pod on `cluster`: its own address, and what the server at
/// `url` answered.
fn call(host: &Session, url: &str) -> (String, String) {
    let script = format!(
        "ip -4 -o addr show eth0 | awk '{{print $4}}' | cut -d/ -f1; timeout 5 wget -qO- {url}"
    );
    let out = host.in_pod("cluster", &["/bin/sh", "-c", &script]).ok();
    let lines = out.lines();
    assert_eq!(lines.len(), 2, "{out:?}");
    (lines[0].to_string(), lines[1].to_string())
}

/// Accepts one TCP connection in netns `up` (off-cluster) and prints the
/// peer's address.
const UPSTREAM: &str = r#"
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.200.0.2", 8080)); s.listen(1); s.settimeout(10)
c, a = s.accept(); print(a[0]); c.close()
"#;

#[test]
fn pods_reach_each_other_across_nodes_by_address_masquerade_only_off_cluster() {
    let a = Host::new().start();
    let b = Host::new().start();
    a.link_to(&b, "node0");
    node(&a, 1, 2);
    node(&b, 2, 1);
    // Off the cluster: netns `up` behind node A, with no route to the pods.
    upstream(&a);

    let (server_a, ip_a) = echo_server(&a);
    let (server_b, ip_b) = echo_server(&b);
    assert!(
        ip_a.starts_with("10.244.1.") && ip_b.starts_with("10.244.2."),
        "{ip_a} {ip_b}"
    );

    // A -> B and B -> A by address; each server sees the caller's own.
    let (me, seen) = call(&a, &format!("http://{ip_b}:8080/cgi-bin/ip"));
    assert!(me.starts_with("10.244.1."), "{me}");
    assert_eq!(seen, me, "B's pod sees A's pod's own address");
    let (me, seen) = call(&b, &format!("http://{ip_a}:8080/cgi-bin/ip"));
    assert!(me.starts_with("10.244.2."), "{me}");
    assert_eq!(seen, me, "A's pod sees B's pod's own address");

    // Off-cluster: masqueraded to node A's address on that side.
    let upstream = a.spawn(&["ip", "netns", "exec", "up", "python3", "-c", UPSTREAM]);
    // Until the server listens (it takes the first connection only).
    a.in_pod(
        "cluster",
        &[
            "/bin/sh",
            "-c",
            "for i in $(seq 50); do echo | timeout 5 nc 10.200.0.2 8080 && break; sleep 0.1; done",
        ],
    );
    let peer = upstream.wait_with_output().expect("the upstream's server");
    assert_eq!(String::from_utf8_lossy(&peer.stdout).trim(), "10.200.0.1");

    for (host, server) in [(&a, server_a), (&b, server_b)] {
        kill_spawned(server);
        host.rkt(&["gc", "--grace-period=0s"]).ok();
        let left = host.leases("cluster");
        assert!(left.is_empty(), "addresses left: {left:?}");
    }
    remove_upstream(&a);
    a.exec(&["ip", "link", "del", "node0"]).ok();
    a.finish();
    b.finish();
}
