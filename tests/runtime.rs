//! Issue 2 acceptance: the runtime and its networking stage, against the
//! real kernel, each test in a throwaway host.

mod common;

use common::{ipv4_addrs, plugin_sets, Addr, Host};

/// Acceptance 1, the default network: eth0 in 172.16.28.0/24, a default route via
/// the gateway, a lease holding the pod UUID while the pod runs, gone after.
#[test]
fn default_network() {
    for (set, flags) in plugin_sets() {
        let host = Host::new().global(flags).start();
        let (pod, uuid) = host.pod_in_background(
            "default",
            &[],
            &[
                "/bin/sh",
                "-c",
                "ip -o -4 addr show eth0; ip route; sleep 30",
            ],
        );
        assert_eq!(uuid.len(), 36, "{set}");
        let leases: Vec<String> = host
            .ls("/var/lib/cni/networks/default")
            .into_iter()
            .filter(|f| f.starts_with("172.16.28."))
            .collect();
        assert_eq!(leases.len(), 1, "{set}: {leases:?}");
        let lease = host.read(&format!("/var/lib/cni/networks/default/{}", leases[0]));
        assert_eq!(lease.lines().next(), Some(uuid.as_str()), "{set}");
        host.rkt(&["stop", &uuid]).ok();
        let out = pod.wait_with_output().expect("rkt run");
        let out = String::from_utf8_lossy(&out.stdout);
        let addrs = ipv4_addrs(&out);
        assert!(
            addrs.len() == 1
                && addrs[0].ifname == "eth0"
                && addrs[0].cidr.starts_with("172.16.28."),
            "{set}: {out}"
        );
        assert!(
            out.contains("default via 172.16.28.1 dev eth0"),
            "{set}: {out}"
        );
        let left = host.ls("/var/lib/cni/networks/default");
        assert!(
            !left.iter().any(|f| f.starts_with("172.16.28.")),
            "{set}: {left:?}"
        );
        host.finish();
    }
}

const SEED_BRIDGE: &str = r#"{
    "cniVersion": "0.2.0",
    "name": "customrktbridge",
    "type": "bridge",
    "bridge": "cni0",
    "isGateway": true,
    "ipMasq": true,
    "ipam": {
        "type": "host-local",
        "subnet": "10.11.0.0/16",
        "routes": [
            { "dst": "0.0.0.0/0" }
        ]
    }
}
"#;

/// Acceptance 2, the seed walkthrough: eth0 10.11.0.2/16 on the bridge,
/// eth1 172.17.0.2/16 on default-restricted, `list --full` shows both.
#[test]
fn seed_walkthrough() {
    for (set, flags) in plugin_sets() {
        let host = Host::new().global(flags).start();
        host.net_conf("custom_rkt_bridge.conf", SEED_BRIDGE);
        let (pod, uuid) = host.pod_in_background(
            "customrktbridge",
            &[],
            &["/bin/sh", "-c", "ip -o -4 addr; sleep 30"],
        );
        let list = host.rkt(&["list", "--full", "--no-legend"]).ok().stdout;
        let lease = |net: &str, ip: &str| {
            host.read(&format!("/var/lib/cni/networks/{net}/{ip}"))
                .lines()
                .next()
                .map(str::to_string)
        };
        assert_eq!(
            lease("customrktbridge", "10.11.0.2"),
            Some(uuid.clone()),
            "{set}"
        );
        assert_eq!(
            lease("default-restricted", "172.17.0.2"),
            Some(uuid.clone()),
            "{set}"
        );
        host.rkt(&["stop", &uuid]).ok();
        let out = pod.wait_with_output().expect("rkt run");
        let addrs = ipv4_addrs(&String::from_utf8_lossy(&out.stdout));
        let want = |ifname: &str, cidr: &str| Addr {
            ifname: ifname.into(),
            cidr: cidr.into(),
        };
        assert!(
            addrs.contains(&want("eth0", "10.11.0.2/16")),
            "{set}: {addrs:?}"
        );
        assert!(
            addrs.contains(&want("eth1", "172.17.0.2/16")),
            "{set}: {addrs:?}"
        );
        assert!(
            list.contains(&uuid)
                && list
                    .contains("customrktbridge:ip4=10.11.0.2, default-restricted:ip4=172.17.0.2"),
            "{set}: {list}"
        );
        host.finish();
    }
}

/// Acceptance 3: default-restricted has no route beyond its subnet but
/// reaches the host; none is loopback only; host sees the host's links;
/// `--net=name:IP=...` reaches host-local as CNI_ARGS.
#[test]
fn special_networks_and_args() {
    for (set, flags) in plugin_sets() {
        let host = Host::new().global(flags).start();
        host.net_conf("custom_rkt_bridge.conf", SEED_BRIDGE);
        let routes = host
            .in_pod("default-restricted", &["/bin/ip", "-4", "route"])
            .ok();
        assert!(!routes.stdout.is_empty(), "{set}");
        for r in routes.lines() {
            assert!(
                r.starts_with("172.17."),
                "{set}: route beyond 172.17.0.0/16: {r}"
            );
        }
        host.in_pod(
            "default-restricted",
            &["/bin/ping", "-c1", "-W2", "172.17.0.1"],
        )
        .ok();
        let links = host.in_pod("none", &["/bin/ls", "/sys/class/net"]).ok();
        assert_eq!(links.lines(), vec!["lo"], "{set}");
        host.exec(&[
            "ip",
            "link",
            "add",
            "hostside0",
            "type",
            "veth",
            "peer",
            "name",
            "hostside1",
        ])
        .ok();
        let links = host.in_pod("host", &["/bin/ls", "/sys/class/net"]).ok();
        assert!(links.lines().contains(&"hostside1"), "{set}: {links:?}");
        host.exec(&["ip", "link", "del", "hostside0"]).ok();
        let arg = host
            .in_pod(
                "customrktbridge:IP=10.11.0.77",
                &["/bin/ip", "-o", "-4", "addr", "show", "eth0"],
            )
            .ok();
        let addrs = ipv4_addrs(&arg.stdout);
        assert_eq!(
            addrs.first().map(|a| a.cidr.as_str()),
            Some("10.11.0.77/16"),
            "{set}: {arg:?}"
        );
        host.rkt(&["gc", "--grace-period=0s"]).ok();
        host.finish();
    }
}

/// Acceptance 4: a config in each spec version, and a conflist whose second
/// plugin gets the first one's result.
#[test]
fn every_spec_version() {
    for (set, flags) in plugin_sets() {
        // The reference plugins (1.1.1) stop at spec 1.0.0.
        let versions: &[&str] = if set == "reference" {
            &["0.1.0", "0.2.0", "0.3.1", "0.4.0", "1.0.0"]
        } else {
            &["0.1.0", "0.2.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
        };
        let host = Host::new().global(flags).start();
        let eth0 = ["/bin/ip", "-o", "-4", "addr", "show", "eth0"];
        for (i, v) in versions.iter().enumerate() {
            host.net_conf(
                &format!("v{i}.conf"),
                &format!(
                    r#"{{"cniVersion":"{v}","name":"v{i}","type":"ptp","ipam":{{"type":"host-local","subnet":"10.20.{i}.0/24"}}}}"#
                ),
            );
            let o = host.in_pod(&format!("v{i}"), &eth0).ok();
            assert_eq!(
                ipv4_addrs(&o.stdout).first().map(|a| a.cidr.clone()),
                Some(format!("10.20.{i}.2/24")),
                "{set} {v}: {o:?}"
            );
        }
        host.net_conf(
            "chain.conflist",
            r#"{"cniVersion":"1.0.0","name":"chain","plugins":[
  {"type":"ptp","ipam":{"type":"host-local","subnet":"10.30.0.0/24"}},
  {"type":"tuning","sysctl":{"net.ipv4.conf.eth0.accept_redirects":"0"}}]}"#,
        );
        let chained = host.in_pod("chain", &eth0).ok();
        assert_eq!(ipv4_addrs(&chained.stdout)[0].cidr, "10.30.0.2/24", "{set}");
        let sysctl = host
            .in_pod(
                "chain",
                &["/bin/cat", "/proc/sys/net/ipv4/conf/eth0/accept_redirects"],
            )
            .ok();
        assert_eq!(
            sysctl.stdout.trim(),
            "0",
            "{set}: the second plugin got the first one's result"
        );
        host.rkt(&["gc", "--grace-period=0s"]).ok();
        host.finish();
    }
}

/// Acceptance 5: the second network's plugin is missing or fails: non-zero
/// exit, one line naming network and plugin, nothing left (the harness
/// checks netns, veths, leases, processes).
#[test]
fn failure_in_the_middle_rolls_back() {
    for (set, flags) in plugin_sets() {
        let host = Host::new().global(flags).start();
        host.net_conf(
            "10-good.conf",
            r#"{"cniVersion":"1.0.0","name":"good","type":"ptp","ipMasq":true,"ipam":{"type":"host-local","subnet":"10.40.0.0/24"}}"#,
        );
        host.net_conf(
            "20-missing.conf",
            r#"{"cniVersion":"1.0.0","name":"missing","type":"nosuchplugin"}"#,
        );
        host.net_conf(
            "30-failing.conf",
            r#"{"cniVersion":"1.0.0","name":"failing","type":"ptp","ipam":{"type":"host-local","subnet":"10.41.0.0/24","rangeStart":"10.41.0.10","rangeEnd":"10.41.0.20"}}"#,
        );
        for (net, want) in [
            ("good,missing", ["network \"missing\"", "nosuchplugin"]),
            (
                "good,failing:IP=10.41.0.99",
                ["network \"failing\"", "plugin ptp"],
            ),
        ] {
            let o = host.in_pod(net, &["/bin/true"]);
            let line = o.fails_with(254, want[0]);
            assert!(line.contains(want[1]), "{set}: {line}");
            assert_eq!(o.stderr.lines().count(), 1, "{set}: one line: {}", o.stderr);
        }
        let list = host.rkt(&["list", "--no-legend"]).ok();
        assert!(
            list.stdout.trim().is_empty(),
            "{set}: a failed pod is not kept: {list:?}"
        );
        host.finish();
    }
}

/// Acceptance 6: a `dns` block reaches resolv.conf; /etc/hosts maps the
/// hostname to the pod's first address.
#[test]
fn dns_block_and_hosts() {
    let host = Host::new().start();
    host.net_conf(
        "dns.conf",
        r#"{"cniVersion":"1.0.0","name":"withdns","type":"ptp","ipam":{"type":"host-local","subnet":"10.50.0.0/24"},
 "dns":{"nameservers":["10.50.0.1"],"domain":"pod.test","search":["a.test","b.test"],"options":["ndots:2"]}}"#,
    );
    let o = host
        .in_pod_with(
            "withdns",
            &["--hostname=mypod"],
            &["/bin/sh", "-c", "cat /etc/resolv.conf; echo HOSTS=$(grep mypod /etc/hosts); echo HOSTNAME=$(hostname)"],
        )
        .ok();
    for line in [
        "nameserver 10.50.0.1\n",
        "search a.test b.test\n",
        "options ndots:2\n",
        "domain pod.test\n",
        "# Generated by rkt from network \"withdns\"",
    ] {
        assert!(o.stdout.contains(line), "{line}: {o:?}");
    }
    assert_eq!(
        o.value("HOSTS").as_deref(),
        Some("10.50.0.2 mypod"),
        "{o:?}"
    );
    assert_eq!(o.value("HOSTNAME").as_deref(), Some("mypod"));
    let image_resolv = host
        .in_pod(
            "default",
            &["/bin/grep", "-c", "image.s own", "/etc/resolv.conf"],
        )
        .ok();
    assert_eq!(
        image_resolv.stdout.trim(),
        "1",
        "no DNS from the network: the image's own file stays"
    );
    host.rkt(&["gc", "--grace-period=0s"]).ok();
    host.finish();
}

/// Acceptance 7: list, status, enter, stop, rm, gc, with JSON that parses.
#[test]
fn pod_lifecycle_commands() {
    let host = Host::new().start();
    let img = host.image();
    let runner = host.rkt_spawn(&["run", &img, "--exec=/bin/sleep", "--", "30"]);
    let uuid = host.wait_running(1).remove(0);
    let short = &uuid[..8];
    let listed = host.rkt(&["list", "--no-legend"]).ok();
    assert_eq!(listed.stdout.split_whitespace().next(), Some(short));
    let list = host.list_json();
    let status = host.rkt(&["status", short]).ok().stdout;
    let status_json: serde_json::Value =
        serde_json::from_str(&host.rkt(&["status", "--format=json", short]).ok().stdout).unwrap();
    assert!(status.contains("state=running\n"), "{status}");
    assert!(status.contains("exited=false\n"), "{status}");
    assert!(
        status.contains("networks=default:ip4=172.16.28."),
        "{status}"
    );
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("pid=") && l != "pid=-1"),
        "{status}"
    );
    let entered = host
        .rkt(&["enter", short, "/bin/sh", "-c", "echo inside-$(hostname)"])
        .ok();
    assert_eq!(entered.stdout.trim(), format!("inside-rkt-{uuid}"));
    assert_eq!(
        host.rkt(&["enter", short, "/bin/sh", "-c", "exit 7"]).code,
        7
    );
    assert_ne!(host.rkt(&["rm", short]).code, 0, "rm refuses a running pod");
    host.rkt(&["stop", short]).ok();
    runner.wait_with_output().expect("rkt run");
    let after = host.rkt(&["status", short]).ok().stdout;
    assert!(after.lines().any(|l| l == "state=exited"), "{after}");
    assert!(
        after.lines().any(|l| l == "app-busybox-rootfs=143"),
        "SIGTERM: 128+15: {after}"
    );
    host.rkt(&["gc"]).ok();
    assert_eq!(
        host.pods("exited").len(),
        1,
        "within the grace period the pod stays"
    );
    host.rkt(&["gc", "--grace-period=0s"]).ok();
    assert!(host.pods("exited").is_empty());
    host.in_pod("default", &["/bin/true"]).ok();
    let u2 = host.pods("exited").remove(0);
    assert!(host.rkt(&["rm", &u2[..6]]).ok().stdout.contains('-'));
    assert_eq!(host.list_json(), serde_json::json!([]));
    host.rkt(&["status", "deadbeef"])
        .fails_with(254, "no pod with UUID deadbeef");
    assert_eq!(list[0]["name"], uuid.as_str());
    assert_eq!(list[0]["state"], "running");
    assert_eq!(list[0]["networks"][0]["netName"], "default");
    assert_eq!(status_json["name"], uuid.as_str());
    host.finish();
}

/// Images: OCI layout, OCI archive and docker-save archive give the
/// entrypoint, cmd, env and working directory; list shows the image name.
#[test]
fn image_formats() {
    let oci = common::image::oci_layout();
    let oci_tar = common::image::oci_archive();
    let docker = common::image::docker_archive();
    let host = Host::new().start();
    let run = |image: &std::path::Path, args: &[&str]| {
        let image = image.to_str().unwrap();
        let mut all = vec!["run", "--net=none", image];
        if !args.is_empty() {
            all.push("--");
            all.extend(args);
        }
        host.rkt(&all).ok().stdout
    };
    let a = run(&oci, &[]);
    assert_eq!(a.replace('\n', " "), "from-image-cmd hello-oci /tmp ");
    assert_eq!(run(&oci_tar, &[]), a);
    assert_eq!(
        run(&docker, &["echo args-replace-cmd"]).trim(),
        "args-replace-cmd"
    );
    assert_eq!(run(&oci, &[]), a);
    let list = host.list_json();
    let mut images: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["image_name"].as_str())
        .collect();
    images.sort();
    images.dedup();
    assert!(images.contains(&"busybox-test:1"), "{list}");
    assert!(images.contains(&"docker.test/busybox:2"), "{list}");
    assert_eq!(
        host.ls("/var/lib/rkt/cas/layers/sha256").len(),
        1,
        "one layer, unpacked once, shared by all pods"
    );
    host.rkt(&["run", "--net=none", "/nonexistent"])
        .fails_with(254, "/nonexistent");
    host.write("/tmp/bad.tar", "x\n");
    host.rkt(&["run", "--net=none", "/tmp/bad.tar"])
        .fails_with(254, "/tmp/bad.tar");
    host.rkt(&["gc", "--grace-period=0s"]).ok();
    host.finish();
}

/// `--interactive` hands the app the terminal (here: stdin); without it the
/// app's stdin is /dev/null. The exit code is the app's.
#[test]
fn interactive_and_exit_code() {
    let host = Host::new().start();
    let img = host.image();
    let cat = |flags: &[&str]| {
        let mut args = vec!["run", "--net=none"];
        args.extend(flags);
        args.extend([img.as_str(), "--exec=/bin/cat"]);
        let bin = common::rkt_bin().display().to_string();
        let mut argv = vec![bin.as_str()];
        argv.extend(args);
        host.exec_input(&argv, b"typed-in\n").ok().stdout
    };
    assert_eq!(cat(&["--interactive"]), "typed-in\n");
    assert_eq!(cat(&[]), "");
    assert_eq!(host.in_pod("none", &["/bin/sh", "-c", "exit 42"]).code, 42);
    host.in_pod("none", &["/nonexistent"])
        .fails_with(254, "cannot execute /nonexistent in the pod");
    let exited = host.pods("exited").remove(0);
    let status = host.rkt(&["status", &exited]).ok();
    assert!(
        status
            .lines()
            .iter()
            .any(|l| l.starts_with("app-busybox-rootfs=")),
        "{status:?}"
    );
    host.rkt(&["gc", "--grace-period=0s"]).ok();
    host.finish();
}
