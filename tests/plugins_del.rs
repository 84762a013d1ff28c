//! DEL and CHECK of the bundled ptp beyond the differential tests: plain DEL
//! (detach at once, delete the pair in the background), the
//! netns-teardown mode (CNI_ARGS RKT_NETNS_TEARDOWN=true), DEL after the
//! netns is gone, and CHECK noticing a missing address.

mod common;

use std::time::Duration;

use common::{ours, Cni, Host, Session};
use serde_json::Value;

const CONF: &str = r#"{"cniVersion":"1.0.0","name":"deltest","type":"ptp","ipam":{"type":"host-local","subnet":"10.70.0.0/24"}}"#;
const TEARDOWN: &str = "IgnoreUnknown=1;RKT_NETNS_TEARDOWN=true";

/// `command` of our ptp for container `ctr` in netns `pod`.
fn call<'a>(bin: &'a str, command: &'a str) -> Cni<'a> {
    Cni::new(bin, command, "ctr").netns("/run/netns/pod")
}

/// The host's veths, by name.
fn veths(host: &Session) -> Vec<String> {
    host.exec(&["ip", "-o", "link", "show", "type", "veth"])
        .ok()
        .lines()
        .iter()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

/// Waits up to `tries` x 20 ms until `cond` holds.
fn eventually(tries: u32, cond: impl Fn() -> bool) -> bool {
    for _ in 0..tries {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

fn leases(host: &Session) -> usize {
    host.ls("/var/lib/cni/networks/deltest")
        .iter()
        .filter(|f| f.starts_with("10."))
        .count()
}

fn host_routes(host: &Session) -> usize {
    host.exec(&["ip", "route"])
        .ok()
        .lines()
        .iter()
        .filter(|l| l.contains("10.70.0"))
        .count()
}

#[test]
fn netns_teardown_mode_leaves_the_pair_to_the_kernel() {
    let host = Host::new().start();
    let ptp = ours("ptp");
    host.exec(&["ip", "netns", "add", "pod"]).ok();
    host.cni(&call(&ptp, "ADD"), CONF).ok();
    let veth = veths(&host).remove(0);
    host.cni(&call(&ptp, "DEL").args(TEARDOWN), CONF).ok();
    let state = host.exec(&["ip", "-o", "link", "show", &veth]).ok();
    assert!(state.stdout.contains("state DOWN"), "{state:?}");
    assert_eq!(host_routes(&host), 0);
    assert_eq!(leases(&host), 0);
    host.exec(&["ip", "netns", "del", "pod"]).ok();
    assert!(
        eventually(250, || !veths(&host).contains(&veth)),
        "the kernel reaps the pair with the netns"
    );
    // DEL after the netns is gone still succeeds.
    host.cni(&call(&ptp, "DEL"), CONF).ok();
    host.finish();
}

#[test]
fn check_notices_a_missing_address_and_readd_replaces_a_stale_pair() {
    let host = Host::new().start();
    let ptp = ours("ptp");
    host.exec(&["ip", "netns", "add", "pod"]).ok();
    let res: Value = serde_json::from_str(&host.cni(&call(&ptp, "ADD"), CONF).ok().stdout).unwrap();
    let mut full: Value = serde_json::from_str(CONF).unwrap();
    full["prevResult"] = res;
    let full = full.to_string();
    host.cni(&call(&ptp, "CHECK"), &full).ok();
    host.exec(&["ip", "-n", "pod", "addr", "flush", "dev", "eth0"])
        .ok();
    let check = host.cni(&call(&ptp, "CHECK"), &full);
    assert_ne!(check.code, 0);
    let msg: Value = serde_json::from_str(&check.stdout).unwrap();
    assert!(
        msg["msg"]
            .as_str()
            .unwrap()
            .contains("lacks address 10.70.0.2/24"),
        "{msg}"
    );
    // DEL in netns-teardown mode, then ADD again into the surviving netns.
    host.cni(&call(&ptp, "DEL").args(TEARDOWN), &full).ok();
    host.cni(&call(&ptp, "ADD"), CONF).ok();
    let addr = host
        .exec(&["ip", "-n", "pod", "-o", "-4", "addr", "show", "eth0"])
        .ok();
    assert!(
        common::ipv4_addrs(&addr.stdout)[0]
            .cidr
            .starts_with("10.70.0."),
        "{addr:?}"
    );
    host.cni(&call(&ptp, "DEL"), CONF).ok();
    host.exec(&["ip", "netns", "del", "pod"]).ok();
    host.finish();
}

/// A plain DEL detaches at once and leaves the kernel's slow veth delete to
/// a detached copy of the plugin: the host end is down without routes when
/// DEL returns, CNI_IFNAME is free in the pod at once, the pair is gone
/// soon after, and an attachment added again meanwhile is left alone.
#[test]
fn plain_del_detaches_at_once_and_deletes_in_the_background() {
    let host = Host::new().start();
    let ptp = ours("ptp");
    host.exec(&["ip", "netns", "add", "pod"]).ok();
    host.cni(&call(&ptp, "ADD"), CONF).ok();
    let veth = veths(&host).remove(0);
    host.cni(&call(&ptp, "DEL"), CONF).ok();
    assert_eq!(host_routes(&host), 0);
    assert_eq!(leases(&host), 0);
    // Another attachment takes eth0 in the same netns right away.
    let other = Cni::new(&ptp, "ADD", "other").netns("/run/netns/pod");
    host.cni(&other, CONF).ok();
    assert!(
        eventually(100, || !veths(&host).contains(&veth)),
        "{veth} stays"
    );
    let pod_links = host
        .exec(&["ip", "-n", "pod", "-o", "link", "show", "type", "veth"])
        .ok();
    assert_eq!(
        pod_links.lines().len(),
        1,
        "only the other attachment's eth0"
    );
    host.cni(
        &Cni {
            command: "DEL",
            ..other
        },
        CONF,
    )
    .ok();
    // The same attachment added again before the background delete ran.
    for _ in 0..5 {
        host.cni(&call(&ptp, "ADD"), CONF).ok();
        host.cni(&call(&ptp, "DEL"), CONF).ok();
    }
    host.cni(&call(&ptp, "ADD"), CONF).ok();
    std::thread::sleep(Duration::from_millis(500));
    let eth0 = host
        .exec(&["ip", "-n", "pod", "-o", "link", "show", "eth0"])
        .ok();
    assert!(
        eth0.stdout.contains("state UP"),
        "the background delete took a new pair"
    );
    // The host end has a new random name: the one veth up on the host.
    let up = host
        .exec(&["ip", "-o", "link", "show", "type", "veth"])
        .ok();
    assert_eq!(up.stdout.matches("state UP").count(), 1, "{up:?}");
    host.cni(&call(&ptp, "DEL"), CONF).ok();
    host.exec(&["ip", "netns", "del", "pod"]).ok();
    host.finish();
}
