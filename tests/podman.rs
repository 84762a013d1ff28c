//! Podman's CNI backend (Podman 4 with runc: crun refuses this machine's
//! hybrid cgroup layout) on our plugins, the README's recipes: a bridge +
//! portmap conflist publishing `-p 8080:80` that answers from another host
//! (issue 14, acceptance 4); ptp + host-local; macvlan with addresses from
//! a real DHCP server through our dhcp daemon (issue 16).

mod common;

use std::time::Duration;

use common::{remove_cgroups, rkt_bin, Host, Session};

const CONFLIST: &str = include_str!("../dist/podman/rktweb.conflist");
/// The recipe's containers.conf (plugin and config directories are this
/// host's in the test).
const CONTAINERS_CONF: &str = include_str!("../dist/podman/containers.conf");

/// A throwaway host whose Podman uses the CNI backend with our plugins
/// and one network, `name`; its own storage under /tmp/pm.
struct Podman {
    host: Session,
    /// Podman's cgroups are the machine's: under a parent of this test's
    /// own, removed by [`Podman::finish`].
    cgroup_parent: String,
}

impl Podman {
    fn new(name: &str, conflist: &str) -> Podman {
        let host = Host::new()
            .env("CONTAINERS_CONF", "/tmp/pm/containers.conf")
            .start();
        let plugins = rkt_bin().parent().expect("bin dir").display().to_string();
        host.write(&format!("/tmp/pm/net.d/{name}.conflist"), conflist);
        let conf = CONTAINERS_CONF
            .replace("/usr/lib/rkt/plugins/net", &plugins)
            .replace("/etc/cni/net.d", "/tmp/pm/net.d");
        assert_ne!(conf, CONTAINERS_CONF, "the recipe names both directories");
        // The machine's cgroups are v1 and systemd-free here; no events log.
        host.write(
            "/tmp/pm/containers.conf",
            format!("{conf}[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"none\"\n"),
        );
        // A copy: the checkout, where the test image lives, is read-only here.
        host.exec(&["cp", "-a", &host.image(), "/tmp/pm/rootfs"])
            .ok();
        Podman {
            host,
            cgroup_parent: format!("/rkt-podman-{name}-{}", std::process::id()),
        }
    }

    /// `podman` with this host's storage and runtime, then `args`.
    fn run(&self, args: &[&str]) -> common::Outcome {
        let mut argv = vec![
            "podman",
            "--root",
            "/tmp/pm/root",
            "--runroot",
            "/tmp/pm/run",
            "--storage-driver",
            "vfs",
            "--runtime",
            "runc",
        ];
        argv.extend(args);
        self.host.exec(&argv)
    }

    /// `podman run --rm` of the test image on `network`: what `script`
    /// printed.
    fn container(&self, network: &str, script: &str) -> common::Outcome {
        self.run(&[
            "run",
            "--rm",
            "--cgroup-parent",
            &self.cgroup_parent,
            "--network",
            network,
            "--rootfs",
            "/tmp/pm/rootfs",
            "/bin/sh",
            "-c",
            script,
        ])
    }

    fn finish(self) {
        let left = remove_cgroups(&self.host, &self.cgroup_parent);
        assert!(left.trim().is_empty(), "cgroups left: {left}");
        self.host.finish();
    }
}

#[test]
fn podman_publishes_a_port_through_our_bridge_and_portmap() {
    let pm = Podman::new("rktweb", CONFLIST);
    let host = &pm.host;
    let podman = |args: &[&str]| pm.run(args);
    let parent = pm.cgroup_parent.clone();
    podman(&[
        "run",
        "-d",
        "--cgroup-parent",
        &parent,
        "--name",
        "web",
        "--network",
        "rktweb",
        "-p",
        "8080:80",
        "--rootfs",
        "/tmp/pm/rootfs",
        "/bin/sh",
        "-c",
        "mkdir -p /www && echo served-by-podman > /www/index.html && exec httpd -f -p 80 -h /www",
    ])
    .ok();
    host.sh("ip netns add client
         ip link add cli type veth peer name eth0 netns client
         ip addr add 10.250.0.1/24 dev cli && ip link set cli up
         ip -n client addr add 10.250.0.2/24 dev eth0
         ip -n client link set eth0 up && ip -n client route add default via 10.250.0.1")
        .ok();
    let mut answer = String::new();
    for _ in 0..100 {
        answer = host
            .exec(&[
                "ip",
                "netns",
                "exec",
                "client",
                "timeout",
                "5",
                "busybox",
                "wget",
                "-q",
                "-O",
                "-",
                "http://10.250.0.1:8080/",
            ])
            .stdout
            .trim()
            .to_string();
        if !answer.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        answer, "served-by-podman",
        "the published port, from another host"
    );
    let map = host
        .exec(&["nft", "list", "map", "inet", "rkt-portmap", "any4"])
        .ok()
        .stdout;
    assert!(
        map.contains("tcp . 8080 : 10.98.0."),
        "our portmap forwards it: {map}"
    );
    podman(&["rm", "-f", "-t", "0", "web"]).ok();
    // Podman's DEL went through our plugins: nothing of the pod is left.
    for _ in 0..60 {
        if host
            .exec(&["nft", "list", "table", "inet", "rkt-portmap"])
            .code
            != 0
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(host.ls("/run/rkt-portmap/pods").is_empty());
    host.sh("ip link del cli; ip netns del client; ip link del cnipod0")
        .ok();
    pm.finish();
}

const PTP: &str = include_str!("../dist/podman/rktptp.conflist");

#[test]
fn podman_runs_on_our_ptp_and_host_local() {
    let pm = Podman::new("rktptp", PTP);
    let host = &pm.host;
    // The host answers on the container's gateway (the host end of its
    // veth).
    host.write("/tmp/www/index.html", "served-by-the-host\n");
    let httpd = host.spawn(&[
        "busybox",
        "httpd",
        "-f",
        "-p",
        "0.0.0.0:8081",
        "-h",
        "/tmp/www",
    ]);
    // Listening before the container asks.
    for _ in 0..100 {
        let local = host.exec(&[
            "timeout",
            "5",
            "busybox",
            "wget",
            "-qO-",
            "http://127.0.0.1:8081/",
        ]);
        if local.stdout.contains("served-by-the-host") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = pm
        .container(
            "rktptp",
            "ip -4 -o addr show eth0; ip -4 route; timeout 5 wget -qO- http://10.97.0.1:8081/",
        )
        .ok();
    assert!(out.stdout.contains("inet 10.97.0."), "{}", out.stdout);
    assert!(
        out.stdout.contains("default via 10.97.0.1"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("served-by-the-host"), "{}", out.stdout);
    common::kill_spawned(httpd);
    // Podman's DEL released the address.
    let left = host.leases("rktptp");
    assert!(left.is_empty(), "{left:?}");
    pm.finish();
}

const MACVLAN_DHCP: &str = include_str!("../dist/podman/rktlan.conflist");

#[test]
fn podman_runs_on_our_macvlan_with_dhcp_addresses() {
    let pm = Podman::new("rktlan", MACVLAN_DHCP);
    let host = &pm.host;
    // The LAN: dnsmasq in netns `lan` behind lan0, the macvlan master.
    host.sh("ip netns add lan
         ip link add lan0 type veth peer name lanpeer netns lan
         ip -n lan addr add 10.77.0.1/24 dev lanpeer
         ip -n lan link set lanpeer up && ip link set lan0 up")
        .ok();
    let dnsmasq = host.spawn(&[
        "ip",
        "netns",
        "exec",
        "lan",
        "dnsmasq",
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--port=0",
        "--user=root",
        "--interface=lanpeer",
        "--bind-interfaces",
        "--no-ping",
        "--dhcp-range=10.77.0.50,10.77.0.150,255.255.255.0,2m",
        "--dhcp-option=3,10.77.0.1",
        "--dhcp-leasefile=/tmp/dnsmasq.leases",
        "--log-dhcp",
        "--log-facility=/tmp/dnsmasq.log",
    ]);
    // Our dhcp daemon, where the plugin (and the package's unit) finds it.
    let plugins = rkt_bin().parent().expect("bin dir").display().to_string();
    let daemon = host.spawn(&[&format!("{plugins}/dhcp"), "daemon"]);
    for _ in 0..100 {
        if host.exec(&["test", "-S", "/run/cni/dhcp.sock"]).code == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = pm
        .container("rktlan", "ip -4 -o addr show eth0; ip -4 route")
        .ok();
    let addr = out
        .stdout
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .unwrap_or_else(|| panic!("no address: {}", out.stdout))
        .to_string();
    let last: u8 = addr
        .strip_prefix("10.77.0.")
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("{addr} is not from dnsmasq's range"));
    assert!((50..=150).contains(&last), "{addr}");
    assert!(
        out.stdout.contains("default via 10.77.0.1"),
        "{}",
        out.stdout
    );
    // dnsmasq leased it, and Podman's DEL released it.
    let log = host.read("/tmp/dnsmasq.log");
    assert!(log.contains(&format!("DHCPACK(lanpeer) {addr}")), "{log}");
    assert!(
        log.contains(&format!("DHCPRELEASE(lanpeer) {addr}")),
        "{log}"
    );
    assert!(
        host.ls("/var/lib/cni/dhcp").is_empty(),
        "the daemon's lease files"
    );
    common::kill_spawned(daemon);
    common::kill_spawned(dnsmasq);
    host.sh("ip link del lan0; ip netns del lan").ok();
    pm.finish();
}
