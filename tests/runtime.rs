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
        let img = host.image();
        let pod = host.rkt_spawn(&[
            "run",
            "--net=default",
            &img,
            "--exec=/bin/sh",
            "--",
            "-c",
            "ip -o -4 addr show eth0; ip route; sleep 30",
        ]);
        let uuid = host.wait_running(1).remove(0);
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
        let img = host.image();
        let pod = host.rkt_spawn(&[
            "run",
            "--net=customrktbridge",
            &img,
            "--exec=/bin/sh",
            "--",
            "-c",
            "ip -o -4 addr; sleep 30",
        ]);
        let uuid = host.wait_running(1).remove(0);
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
        let mut script = String::new();
        // The reference plugins (1.1.1) stop at spec 1.0.0.
        let versions: &[&str] = if set == "reference" {
            &["0.1.0", "0.2.0", "0.3.1", "0.4.0", "1.0.0"]
        } else {
            &["0.1.0", "0.2.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
        };
        for (i, v) in versions.iter().enumerate() {
            script.push_str(&format!(
                r#"cat > /etc/rkt/net.d/v{i}.conf <<'JSON'
{{"cniVersion":"{v}","name":"v{i}","type":"ptp","ipam":{{"type":"host-local","subnet":"10.20.{i}.0/24"}}}}
JSON
rkt run --net=v{i} "$IMG" --exec=/bin/sh -- -c 'echo V{i}=$(ip -o -4 addr show eth0 | awk "{{print \$4}}")'
"#
            ));
        }
        script.push_str(
            r#"cat > /etc/rkt/net.d/chain.conflist <<'JSON'
{"cniVersion":"1.0.0","name":"chain","plugins":[
  {"type":"ptp","ipam":{"type":"host-local","subnet":"10.30.0.0/24"}},
  {"type":"tuning","sysctl":{"net.ipv4.conf.eth0.accept_redirects":"0"}}]}
JSON
rkt run --net=chain "$IMG" --exec=/bin/sh -- -c 'echo CHAIN=$(ip -o -4 addr show eth0 | awk "{print \$4}") SYSCTL=$(cat /proc/sys/net/ipv4/conf/eth0/accept_redirects)'
"#,
        );
        let o = Host::new().global(flags).run(&script).ok();
        for i in 0..versions.len() {
            assert_eq!(
                o.value(&format!("V{i}")),
                Some(format!("10.20.{i}.2/24")),
                "{set}: {}",
                o.stdout
            );
        }
        assert_eq!(
            o.value("CHAIN").as_deref(),
            Some("10.30.0.2/24 SYSCTL=0"),
            "{set}: {}",
            o.stdout
        );
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
    let o = Host::new()
        .run(
            r#"cat > /etc/rkt/net.d/dns.conf <<'JSON'
{"cniVersion":"1.0.0","name":"withdns","type":"ptp","ipam":{"type":"host-local","subnet":"10.50.0.0/24"},
 "dns":{"nameservers":["10.50.0.1"],"domain":"pod.test","search":["a.test","b.test"],"options":["ndots:2"]}}
JSON
rkt run --net=withdns --hostname=mypod "$IMG" --exec=/bin/sh -- -c 'cat /etc/resolv.conf; echo HOSTS=$(grep mypod /etc/hosts); echo HOSTNAME=$(hostname)'
rkt run --net=default "$IMG" --exec=/bin/sh -- -c 'echo IMAGE_RESOLV=$(grep -c "image.s own" /etc/resolv.conf)'
"#,
        )
        .ok();
    assert!(o.stdout.contains("nameserver 10.50.0.1\n"), "{}", o.stdout);
    assert!(o.stdout.contains("search a.test b.test\n"), "{}", o.stdout);
    assert!(o.stdout.contains("options ndots:2\n"), "{}", o.stdout);
    assert!(o.stdout.contains("domain pod.test\n"), "{}", o.stdout);
    assert!(
        o.stdout
            .contains("# Generated by rkt from network \"withdns\""),
        "{}",
        o.stdout
    );
    assert_eq!(
        o.value("HOSTS").as_deref(),
        Some("10.50.0.2 mypod"),
        "{}",
        o.stdout
    );
    assert_eq!(o.value("HOSTNAME").as_deref(), Some("mypod"));
    assert_eq!(
        o.value("IMAGE_RESOLV").as_deref(),
        Some("1"),
        "no DNS from the network: the image's own file stays"
    );
}

/// Acceptance 7: list, status, enter, stop, rm, gc, with JSON that parses.
#[test]
fn pod_lifecycle_commands() {
    let o = Host::new()
        .run(
            r#"rkt run "$IMG" --exec=/bin/sleep -- 30 > /dev/null 2>&1 &
runner=$!
wait_running
uuid=$(rkt list --full --no-legend | awk '{print $1}')
short=${uuid:0:8}
echo "UUID=$uuid"
echo "SHORT=$(rkt list --no-legend | awk '{print $1}')"
rkt list --format=json > list.json
rkt status $short > status
rkt status --format=json $short > status.json
cat status
echo "ENTER=$(rkt enter $short /bin/sh -c 'echo inside-$(hostname)')"
echo "ENTERCODE=$(rkt enter $short /bin/sh -c 'exit 7'; echo $?)"
set +e; rkt rm $short 2> rmerr; echo "RMRUNNING=$?"; set -e
rkt stop $short
wait $runner || true
rkt status $short > status2
echo "STATE2=$(grep state= status2)"
echo "APPCODE=$(grep app- status2)"
rkt gc > gc1
echo "GC1=$(rkt list --no-legend | wc -l)"
rkt gc --grace-period=0s > gc2
echo "GC2=$(rkt list --no-legend | wc -l)"
rkt run "$IMG" --exec=/bin/true
u2=$(rkt list --full --no-legend | awk '{print $1}')
echo "RM=$(rkt rm ${u2:0:6})"
echo "AFTERRM=$(rkt list --no-legend | wc -l)"
set +e; rkt status deadbeef 2>serr; echo "BADSTATUS=$?"; set -e
echo "SERR=$(cat serr)"
cat list.json > /dev/stderr
echo "JSON_LIST=$(cat list.json)"
echo "JSON_STATUS=$(cat status.json)"
"#,
        )
        .ok();
    let uuid = o.value("UUID").unwrap();
    assert_eq!(o.value("SHORT").unwrap(), &uuid[..8]);
    assert!(o.stdout.contains("state=running\n"), "{}", o.stdout);
    assert!(o.stdout.contains("exited=false\n"), "{}", o.stdout);
    assert!(
        o.stdout.contains("networks=default:ip4=172.16.28."),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout
            .lines()
            .any(|l| l.starts_with("pid=") && l != "pid=-1"),
        "{}",
        o.stdout
    );
    assert_eq!(o.value("ENTER"), Some(format!("inside-rkt-{uuid}")));
    assert_eq!(o.value("ENTERCODE").as_deref(), Some("7"));
    assert_ne!(
        o.value("RMRUNNING").as_deref(),
        Some("0"),
        "rm refuses a running pod"
    );
    assert_eq!(o.value("STATE2").as_deref(), Some("state=exited"));
    assert_eq!(
        o.value("APPCODE").as_deref(),
        Some("app-busybox-rootfs=143"),
        "SIGTERM: 128+15"
    );
    assert_eq!(
        o.value("GC1").as_deref(),
        Some("1"),
        "within the grace period the pod stays"
    );
    assert_eq!(o.value("GC2").as_deref(), Some("0"));
    assert!(o.value("RM").unwrap().contains('-'));
    assert_eq!(o.value("AFTERRM").as_deref(), Some("0"));
    assert_ne!(o.value("BADSTATUS").as_deref(), Some("0"));
    assert!(o
        .value("SERR")
        .unwrap()
        .contains("no pod with UUID deadbeef"));
    let list: serde_json::Value = serde_json::from_str(&o.value("JSON_LIST").unwrap()).unwrap();
    assert_eq!(list[0]["name"], uuid.as_str());
    assert_eq!(list[0]["state"], "running");
    assert_eq!(list[0]["networks"][0]["netName"], "default");
    let status: serde_json::Value = serde_json::from_str(&o.value("JSON_STATUS").unwrap()).unwrap();
    assert_eq!(status["name"], uuid.as_str());
}

/// Images: OCI layout, OCI archive and docker-save archive give the
/// entrypoint, cmd, env and working directory; list shows the image name.
#[test]
fn image_formats() {
    let oci = common::image::oci_layout();
    let oci_tar = common::image::oci_archive();
    let docker = common::image::docker_archive();
    let o = Host::new()
        .env("OCI", oci.to_str().unwrap())
        .env("OCI_TAR", oci_tar.to_str().unwrap())
        .env("DOCKER", docker.to_str().unwrap())
        .run(
            r#"rkt run --net=none "$OCI" > a
rkt run --net=none "$OCI_TAR" > b
rkt run --net=none "$DOCKER" -- 'echo args-replace-cmd' > c
rkt run --net=none "$OCI" > d
echo "A=$(tr '\n' ' ' < a)"; echo "B=$(tr '\n' ' ' < b)"; echo "C=$(cat c)"
rkt list --no-legend --full | awk '{print "IMG=" $3}' | sort -u
echo "LAYERS=$(ls /var/lib/rkt/cas/layers/sha256 | wc -l)"
set +e; rkt run --net=none /nonexistent 2>e1; echo "RCMISSING=$?"; echo x > /tmp/bad.tar; rkt run --net=none /tmp/bad.tar 2>e2; echo "RCBAD=$?"; set -e
echo "E1=$(cat e1)"; echo "E2=$(cat e2)"
rkt gc --grace-period=0s > /dev/null
"#,
        )
        .ok();
    assert_eq!(
        o.value("A").as_deref(),
        Some("from-image-cmd hello-oci /tmp "),
        "{}",
        o.stdout
    );
    assert_eq!(o.value("B"), o.value("A"));
    assert_eq!(o.value("C").as_deref(), Some("args-replace-cmd"));
    assert!(o.stdout.contains("IMG=busybox-test:1\n"), "{}", o.stdout);
    assert!(
        o.stdout.contains("IMG=docker.test/busybox:2\n"),
        "{}",
        o.stdout
    );
    assert_eq!(
        o.value("LAYERS").as_deref(),
        Some("1"),
        "one layer, unpacked once, shared by all pods"
    );
    assert_ne!(o.value("RCMISSING").as_deref(), Some("0"));
    assert_ne!(o.value("RCBAD").as_deref(), Some("0"));
    assert!(o.value("E1").unwrap().contains("/nonexistent"));
    assert!(o.value("E2").unwrap().contains("/tmp/bad.tar"));
}

/// `--interactive` hands the app the terminal (here: stdin); without it the
/// app's stdin is /dev/null. The exit code is the app's.
#[test]
fn interactive_and_exit_code() {
    let o = Host::new()
        .run(
            r#"echo "IN=$(echo typed-in | rkt run --net=none --interactive "$IMG" --exec=/bin/cat)"
echo "NOIN=$(echo typed-in | rkt run --net=none "$IMG" --exec=/bin/cat)"
set +e; rkt run --net=none "$IMG" --exec=/bin/sh -- -c 'exit 42'; echo "CODE=$?"; set -e
set +e; rkt run --net=none "$IMG" --exec=/nonexistent 2>err; echo "NOEXEC=$?"; set -e
echo "NOEXECERR=$(cat err)"
echo "STATUS=$(rkt status $(rkt list --full --no-legend | awk '/exited/ {print $1}' | head -1) | grep app-)"
rkt gc --grace-period=0s > /dev/null
"#,
        )
        .ok();
    assert_eq!(o.value("IN").as_deref(), Some("typed-in"));
    assert_eq!(o.value("NOIN").as_deref(), Some(""));
    assert_eq!(o.value("CODE").as_deref(), Some("42"));
    assert_ne!(o.value("NOEXEC").as_deref(), Some("0"));
    assert!(
        o.value("NOEXECERR")
            .unwrap()
            .contains("cannot execute /nonexistent in the pod"),
        "{}",
        o.stdout
    );
    assert!(o
        .value("STATUS")
        .unwrap()
        .starts_with("app-busybox-rootfs="));
}
