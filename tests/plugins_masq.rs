//! IP masquerade of the bundled ptp: a pod with `ipMasq` reaches an
//! "upstream" netns (made by the test, routed through the throwaway host,
//! with no route back to the pod subnet) and arrives with the host's
//! address; our nftables table holds no per-pod chain and goes away with
//! the network's last pod; a pod without masquerade does not get through.

mod common;

use std::time::Duration;

use common::{ours, remove_upstream, upstream, Cni, Host, Session};
use serde_json::{json, Value};

const MASQ: &str = r#"{"cniVersion":"1.0.0","name":"default","type":"ptp","ipMasq":true,"ipam":{"type":"host-local","subnet":"172.16.28.0/24","routes":[{"dst":"0.0.0.0/0"}]}}"#;
const PLAIN: &str = r#"{"cniVersion":"1.0.0","name":"plain","type":"ptp","ipMasq":false,"ipam":{"type":"host-local","subnet":"172.18.0.0/24","routes":[{"dst":"0.0.0.0/0"}]}}"#;

/// Accepts one TCP connection on the upstream and writes the peer's address
/// to /tmp/peer (nothing when none came within `argv[1]` seconds).
const SERVER: &str = r#"
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.200.0.2", 8080)); s.listen(1); s.settimeout(float(sys.argv[1]))
try:
    c, a = s.accept(); open("/tmp/peer", "w").write(a[0]); c.close()
except Exception:
    pass
"#;

/// The address the upstream saw one TCP connection come from, made by
/// `connect` (empty when none arrived).
fn peer_of(host: &Session, wait_secs: &str, connect: impl FnOnce()) -> String {
    host.exec(&["rm", "-f", "/tmp/peer"]).ok();
    let server = host.spawn(&[
        "ip", "netns", "exec", "up", "python3", "-c", SERVER, wait_secs,
    ]);
    std::thread::sleep(Duration::from_millis(300));
    connect();
    server.wait_with_output().expect("the upstream's server");
    host.exec(&["cat", "/tmp/peer"]).stdout
}

/// One TCP connection from netns `from` to the upstream.
fn probe(host: &Session, from: &str) -> String {
    peer_of(host, "3", || {
        host.exec(&[
            "ip",
            "netns",
            "exec",
            from,
            "python3",
            "-c",
            "import socket; socket.create_connection(('10.200.0.2', 8080), timeout=2).close()",
        ]);
    })
}

/// CNI `command` of our ptp for the pod in netns `ns` (container `c-<ns>`).
fn cni(host: &Session, command: &str, ns: &str, config: &str) {
    let ptp = ours("ptp");
    let (container, netns) = (format!("c-{ns}"), format!("/run/netns/{ns}"));
    host.cni(&Cni::new(&ptp, command, &container).netns(&netns), config)
        .ok();
}

/// Our nftables table, listed.
fn table(host: &Session) -> String {
    host.exec(&["nft", "list", "table", "inet", "rkt-cni"])
        .stdout
}

/// How many of our tables exist once the background removal of the last
/// pod's state has had up to 3 s.
fn tables_left(host: &Session) -> usize {
    let count = || {
        host.exec(&["nft", "list", "tables"])
            .stdout
            .matches("rkt-cni")
            .count()
    };
    for _ in 0..60 {
        if count() == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    count()
}

fn netns(host: &Session, names: &[&str], verb: &str) {
    for n in names {
        host.exec(&["ip", "netns", verb, n]).ok();
    }
}

#[test]
fn masquerade_reaches_upstream_with_host_address() {
    let host = Host::new().start();
    upstream(&host);
    netns(&host, &["p1", "p2", "p3"], "add");
    cni(&host, "ADD", "p1", MASQ);
    cni(&host, "ADD", "p2", MASQ);
    cni(&host, "ADD", "p3", PLAIN);
    assert_eq!(probe(&host, "p1"), "10.200.0.1");
    // No masquerade: the upstream has no route back, the connection fails.
    assert_eq!(probe(&host, "p3"), "");
    // One masquerade chain for the network, whatever the number of pods
    // (beside it the source check, `src-default`: tests/netsec.rs).
    assert_eq!(table(&host).matches("chain masq-").count(), 1);
    let ruleset = host.exec(&["nft", "list", "ruleset"]).ok();
    assert!(!ruleset.stdout.contains("chain CNI-"), "no per-pod chain");
    cni(&host, "DEL", "p1", MASQ);
    assert!(
        !table(&host).is_empty(),
        "the table stays for the other pods"
    );
    assert_eq!(probe(&host, "p2"), "10.200.0.1");
    cni(&host, "DEL", "p2", MASQ);
    cni(&host, "DEL", "p3", PLAIN);
    assert_eq!(tables_left(&host), 0);
    netns(&host, &["p1", "p2", "p3"], "del");
    remove_upstream(&host);
    host.finish();
}

/// Pods of one network from two subnets are both masqueraded; the first
/// one leaving keeps the other's state.
#[test]
fn masquerade_several_subnets_of_one_network() {
    let host = Host::new().start();
    upstream(&host);
    let masq2 = MASQ.replace("172.16.28.0/24", "172.16.29.0/24");
    netns(&host, &["p1", "p2"], "add");
    cni(&host, "ADD", "p1", MASQ);
    cni(&host, "ADD", "p2", &masq2);
    // nft merges the two adjacent /24s into one interval.
    let t = table(&host);
    let mut masqueraded: Vec<&str> = t
        .lines()
        .filter(|l| l.contains("saddr"))
        .flat_map(|l| l.split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '/')))
        .filter(|w| w.starts_with("172.16.2") && w.contains('/'))
        .collect();
    masqueraded.sort();
    masqueraded.dedup();
    assert_eq!(masqueraded, ["172.16.28.0/23"], "{t}");
    cni(&host, "DEL", "p1", MASQ);
    assert_eq!(probe(&host, "p2"), "10.200.0.1");
    cni(&host, "DEL", "p2", &masq2);
    assert_eq!(tables_left(&host), 0);
    netns(&host, &["p1", "p2"], "del");
    remove_upstream(&host);
    host.finish();
}

/// CNI GC (1.1.0) forgets the masquerade membership of attachments the
/// runtime no longer has, and removes the table with the last.
#[test]
fn masquerade_gc_forgets_stale_attachments() {
    let host = Host::new().start();
    upstream(&host);
    let m11 = MASQ.replace("\"1.0.0\"", "\"1.1.0\"");
    netns(&host, &["p1", "p2"], "add");
    cni(&host, "ADD", "p1", &m11);
    cni(&host, "ADD", "p2", &m11);
    let ptp = ours("ptp");
    let gc = |valid: Value| {
        let mut conf: Value = serde_json::from_str(&m11).unwrap();
        conf["cni.dev/valid-attachments"] = valid;
        host.cni(&Cni::new(&ptp, "GC", ""), &conf.to_string()).ok();
    };
    gc(json!([{"containerID": "c-p2", "ifname": "eth0"}]));
    assert_eq!(host.ls("/run/rkt-cni/net/default/pods"), ["c-p2-eth0"]);
    assert_eq!(probe(&host, "p2"), "10.200.0.1");
    gc(json!([]));
    assert_eq!(tables_left(&host), 0);
    cni(&host, "DEL", "p1", &m11);
    cni(&host, "DEL", "p2", &m11);
    netns(&host, &["p1", "p2"], "del");
    remove_upstream(&host);
    host.finish();
}

/// Concurrent ADD and DEL on one network keep the state consistent: all
/// pods masqueraded while up, the table gone after the last.
#[test]
fn masquerade_concurrent_add_del() {
    let host = Host::new().start();
    upstream(&host);
    let names: Vec<String> = (1..=8).map(|i| format!("n{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    netns(&host, &names, "add");
    let all = |verb: &str| {
        std::thread::scope(|s| {
            for n in &names {
                let host = &host;
                s.spawn(move || cni(host, verb, n, MASQ));
            }
        })
    };
    all("ADD");
    assert_eq!(host.ls("/run/rkt-cni/net/default/pods").len(), 8);
    assert_eq!(table(&host).matches("masquerade").count(), 1);
    all("DEL");
    assert_eq!(tables_left(&host), 0);
    netns(&host, &names, "del");
    remove_upstream(&host);
    host.finish();
}

/// Acceptance 4 through the runtime with the bundled plugins: a pod on the
/// `default` network reaches the upstream with the host's address; a pod on
/// `default-restricted` (no default route, no masquerade) does not.
#[test]
fn rkt_pods_default_masqueraded_restricted_not() {
    let host = Host::new().start();
    upstream(&host);
    let from_pod = |net: &str| {
        peer_of(&host, "6", || {
            host.in_pod(
                net,
                &["/bin/sh", "-c", "echo hi | nc -w 2 10.200.0.2 8080; true"],
            )
            .ok();
        })
    };
    assert_eq!(from_pod("default"), "10.200.0.1");
    assert_eq!(from_pod("default-restricted"), "");
    assert_eq!(tables_left(&host), 0);
    // The reference ptp would have left iptables-nft's `ip nat` table
    // behind: none proves the bundled ptp served these pods.
    let tables = host.exec(&["nft", "list", "tables"]).ok();
    assert!(!tables.stdout.contains("ip nat"), "{tables:?}");
    host.rkt(&["gc", "--grace-period=0s"]).ok();
    remove_upstream(&host);
    host.finish();
}
