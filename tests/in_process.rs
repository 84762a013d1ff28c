//! In-process tests of the library against the real kernel: `netlink/`
//! and the plugins' ADD, CHECK and DEL paths called as functions, not as
//! binaries. This binary re-runs itself inside a throwaway host (a fresh
//! network namespace as "the host", tmpfs over the state directories),
//! where it runs each test; outside, it only starts that host and checks
//! that nothing leaked. Its own `main` (no libtest) also serves the
//! plugins' detached copies, which re-execute the current binary.

mod common;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use rkt::cni::skeleton::{Command, Plugin, Request};
use rkt::cni::CniResult;
use rkt::netlink::route::Route;
use rkt::netlink::Netlink;
use rkt::netns::Netns;
use serde_json::json;

/// Set inside the throwaway host.
const INSIDE: &str = "RKT_IN_PROCESS_HOST";

type Test = (&'static str, fn());

const TESTS: &[Test] = &[
    (
        "netlink_links_addresses_routes",
        netlink_links_addresses_routes,
    ),
    ("netlink_errors_name_what_is_missing", netlink_errors),
    ("ptp_add_check_del", ptp_add_check_del),
    ("bridge_add_check_del", bridge_add_check_del),
];

fn main() {
    if let Some(code) = rkt::plugins::detached_work() {
        std::process::exit(code);
    }
    if std::env::var_os(INSIDE).is_some() {
        run_all();
        return;
    }
    // Outside: run this binary in a throwaway host, which checks for leaks.
    let exe = std::env::current_exe().expect("this test binary");
    let o = common::Host::new()
        .env(INSIDE, "1")
        .run(&format!("\"{}\"", exe.display()))
        .ok();
    for (name, _) in TESTS {
        assert!(
            o.stdout.contains(&format!("test {name} ... ok")),
            "{name} did not pass:\n{}\n{}",
            o.stdout,
            o.stderr
        );
    }
    println!("{}", o.stdout);
}

fn run_all() {
    let mut failed = Vec::new();
    for (name, test) in TESTS {
        match std::panic::catch_unwind(test) {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(*name);
            }
        }
    }
    if !failed.is_empty() {
        eprintln!("failed: {failed:?}");
        std::process::exit(1);
    }
}

fn net(s: &str) -> IpNet {
    s.parse().expect("a CIDR")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("an address")
}

/// A named network namespace (on the throwaway host's tmpfs), removed at
/// the end of the test.
struct PodNs(PathBuf);

impl PodNs {
    fn new(name: &str) -> PodNs {
        PodNs(Netns::create(name).expect("create a netns"))
    }

    fn open(&self) -> Netns {
        Netns::open(&self.0).expect("open the netns")
    }

    fn path(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for PodNs {
    fn drop(&mut self) {
        let _ = Netns::remove(&self.0);
    }
}

fn netlink_links_addresses_routes() {
    let host = Netlink::current().unwrap();
    let pod = PodNs::new("nl-links");
    host.create_veth("h0", "p0", &pod.open(), Some(1400), None)
        .unwrap();
    let h = host.link("h0").unwrap();
    assert_eq!(
        (h.kind.as_deref(), h.mtu, h.up),
        (Some("veth"), 1400, false)
    );
    host.set_up(h.index).unwrap();
    assert!(host.link("h0").unwrap().up);
    // The peer was born in the pod's namespace, not here.
    assert!(host.link_by_name("p0").unwrap().is_none());
    let inside = Netlink::in_netns(&pod.open()).unwrap();
    let p = inside.link("p0").unwrap();
    assert_eq!((p.mtu, p.peer), (1400, Some(h.index)));

    host.add_address(h.index, net("10.9.0.1/24")).unwrap();
    assert!(host
        .addresses(h.index)
        .unwrap()
        .contains(&net("10.9.0.1/24")));
    let via = Route::new(net("10.99.0.0/24"), Some(ip("10.9.0.2")), h.index);
    host.add_route(&via).unwrap();
    let has_route = |nl: &Netlink| {
        nl.routes(false)
            .unwrap()
            .iter()
            .any(|r| r.dst == net("10.99.0.0/24") && r.gw == Some(ip("10.9.0.2")))
    };
    assert!(has_route(&host));
    assert!(!has_route(&inside), "routes are per namespace");
    host.delete_route(&via).unwrap();
    assert!(!has_route(&host));
    host.delete_address(h.index, net("10.9.0.1/24")).unwrap();
    assert!(host.addresses(h.index).unwrap().is_empty());

    // Deleting one end takes the pair.
    host.delete_link(h.index).unwrap();
    assert!(host.link_by_name("h0").unwrap().is_none());
    assert!(inside.link_by_name("p0").unwrap().is_none());
}

fn netlink_errors() {
    let host = Netlink::current().unwrap();
    let e = host.link("nope0").unwrap_err();
    assert!(
        e.to_string().contains("nope0") && e.to_string().contains("host"),
        "{e}"
    );
    let e = host.add_address(999_999, net("10.9.9.1/24")).unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert!(e.to_string().contains("10.9.9.1/24"), "{e}");
    assert!(!host.delete_link_by_name("nope0").unwrap());
}

/// A plugin call as a runtime would make it.
fn request(command: Command, pod: &PodNs, config: serde_json::Value) -> Request {
    Request {
        command,
        container_id: "inproc-1".into(),
        netns: pod.path(),
        ifname: "eth0".into(),
        args: String::new(),
        // The bundled host-local: the plugins find it there and run it in
        // process.
        path: vec![common::rkt_bin().parent().unwrap().to_path_buf()],
        name: config["name"].as_str().unwrap().to_string(),
        cni_version: config["cniVersion"].as_str().unwrap().to_string(),
        config,
        prev_result: None,
    }
}

/// The pod's eth0 has `addr`; host-local recorded the lease for the
/// container.
fn assert_attached(pod: &PodNs, network: &str, addr: &str) {
    let inside = Netlink::in_netns(&pod.open()).unwrap();
    let eth0 = inside.link("eth0").unwrap();
    assert!(eth0.up);
    let v4: Vec<IpNet> = inside
        .addresses(eth0.index)
        .unwrap()
        .into_iter()
        .filter(|a| a.addr().is_ipv4())
        .collect();
    assert_eq!(v4, vec![net(addr)]);
    let ip = addr.split('/').next().unwrap();
    let lease = std::fs::read_to_string(format!("/var/lib/cni/networks/{network}/{ip}")).unwrap();
    assert_eq!(lease.lines().next(), Some("inproc-1"));
}

/// CHECK passes on the attachment as ADD left it, and fails (naming what
/// is missing) once the pod's address is gone.
fn check_then_tamper(plugin: &dyn Plugin, req: &Request, pod: &PodNs, res: &CniResult) {
    let mut check = req.clone();
    check.command = Command::Check;
    check.prev_result = Some(res.clone());
    plugin.check(&check).unwrap();
    let inside = Netlink::in_netns(&pod.open()).unwrap();
    let eth0 = inside.link("eth0").unwrap();
    inside
        .delete_address(eth0.index, res.ips[0].address)
        .unwrap();
    let e = plugin.check(&check).unwrap_err();
    assert!(e.msg.contains("lacks address"), "{}", e.msg);
}

/// DEL removes the pod's interface, the host's end and the lease.
fn del_and_verify(plugin: &dyn Plugin, req: &Request, pod: &PodNs, res: &CniResult, host_if: &str) {
    let mut del = req.clone();
    del.command = Command::Del;
    del.prev_result = Some(res.clone());
    plugin.del(&del).unwrap();
    let host = Netlink::current().unwrap();
    // The host end goes at once or in the background (a detached copy).
    for _ in 0..100 {
        if host.link_by_name(host_if).unwrap().is_none() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(host.link_by_name(host_if).unwrap().is_none(), "{host_if}");
    let inside = Netlink::in_netns(&pod.open()).unwrap();
    assert!(inside.link_by_name("eth0").unwrap().is_none());
    let ip = res.ips[0].address.addr();
    assert!(!Path::new(&format!("/var/lib/cni/networks/{}/{ip}", req.name)).exists());
    // A second DEL finds nothing to do and succeeds (CNI requires it).
    plugin.del(&del).unwrap();
}

fn ptp_add_check_del() {
    let pod = PodNs::new("ptp-inproc");
    let req = request(
        Command::Add,
        &pod,
        json!({"cniVersion": "1.0.0", "name": "inproc", "type": "ptp",
               "ipam": {"type": "host-local", "subnet": "10.77.0.0/24"}}),
    );
    let plugin = rkt::plugins::ptp::Ptp;
    let res = plugin.add(&req).unwrap();
    assert_eq!(res.ips.len(), 1);
    assert_eq!(res.ips[0].address, net("10.77.0.2/24"));
    assert_eq!(res.ips[0].gateway, Some(ip("10.77.0.1")));
    assert_attached(&pod, "inproc", "10.77.0.2/24");
    // The reference ptp's routes: the gateway on the link, the subnet via it.
    let inside = Netlink::in_netns(&pod.open()).unwrap();
    let routes = inside.routes(false).unwrap();
    assert!(routes
        .iter()
        .any(|r| r.dst == net("10.77.0.1/32") && r.gw.is_none()));
    assert!(routes
        .iter()
        .any(|r| r.dst == net("10.77.0.0/24") && r.gw == Some(ip("10.77.0.1"))));
    // The host's end carries the gateway and routes the pod's address.
    let host_if = res
        .interfaces
        .iter()
        .find(|i| i.sandbox.is_empty())
        .map(|i| i.name.clone())
        .unwrap();
    let host = Netlink::current().unwrap();
    let hl = host.link(&host_if).unwrap();
    assert!(host
        .addresses(hl.index)
        .unwrap()
        .contains(&net("10.77.0.1/32")));
    assert!(host
        .routes(false)
        .unwrap()
        .iter()
        .any(|r| r.dst == net("10.77.0.2/32")));
    check_then_tamper(&plugin, &req, &pod, &res);
    del_and_verify(&plugin, &req, &pod, &res, &host_if);
}

fn bridge_add_check_del() {
    let pod = PodNs::new("br-inproc");
    let req = request(
        Command::Add,
        &pod,
        json!({"cniVersion": "1.0.0", "name": "inprocbr", "type": "bridge",
               "bridge": "inbr0", "isGateway": true,
               "ipam": {"type": "host-local", "subnet": "10.78.0.0/24"}}),
    );
    let plugin = rkt::plugins::bridge::Bridge;
    let res = plugin.add(&req).unwrap();
    assert_eq!(res.ips[0].address, net("10.78.0.2/24"));
    assert_attached(&pod, "inprocbr", "10.78.0.2/24");
    let host = Netlink::current().unwrap();
    let br = host.link("inbr0").unwrap();
    assert_eq!(br.kind.as_deref(), Some("bridge"));
    assert!(host
        .addresses(br.index)
        .unwrap()
        .contains(&net("10.78.0.1/24")));
    let port = res
        .interfaces
        .iter()
        .find(|i| i.sandbox.is_empty() && i.name != "inbr0")
        .map(|i| i.name.clone())
        .unwrap();
    assert_eq!(host.link(&port).unwrap().master, Some(br.index));
    check_then_tamper(&plugin, &req, &pod, &res);
    del_and_verify(&plugin, &req, &pod, &res, &port);
    // The bridge is the network's, not the pod's: it stays, as the
    // reference bridge leaves it. The test host takes it away.
    host.delete_link(br.index).unwrap();
}
