//! Issue 2 acceptance: the runtime and its networking stage, against the
//! real kernel, each test in a throwaway host.

mod common;

use common::{plugin_sets, Host};

/// Acceptance 1, the default network: eth0 in 172.16.28.0/24, a default route via
/// the gateway, a lease holding the pod UUID while the pod runs, gone after.
#[test]
fn default_network() {
    for (set, flags) in plugin_sets() {
        let o = Host::new()
            .global(flags)
            .run(
                r#"
rkt run --net=default "$IMG" --exec=/bin/sh -- -c 'ip -o -4 addr show eth0; ip route; sleep 30' > out &
wait_running
uuid=$(rkt list --full --no-legend | awk '{print $1}')
echo "UUID=$uuid"
echo "LEASE=$(head -n1 /var/lib/cni/networks/default/172.16.28.* | tr -d '\r')"
rkt stop $uuid > /dev/null
wait $! || true
cat out
echo "AFTER=$(ls /var/lib/cni/networks/default | grep -c 172.16.28 || true)"
"#,
            )
            .ok();
        let uuid = o.value("UUID").unwrap();
        assert_eq!(uuid.len(), 36, "{set}: {o:?}");
        assert_eq!(
            o.value("LEASE").as_deref(),
            Some(uuid.as_str()),
            "{set}: {}",
            o.stdout
        );
        assert!(o.stdout.contains("inet 172.16.28."), "{set}: {}", o.stdout);
        assert!(
            o.stdout.contains("default via 172.16.28.1 dev eth0"),
            "{set}: {}",
            o.stdout
        );
        assert_eq!(
            o.value("AFTER").as_deref(),
            Some("0"),
            "{set}: {}",
            o.stdout
        );
    }
}

const SEED_BRIDGE: &str = r#"cat > /etc/rkt/net.d/custom_rkt_bridge.conf <<'JSON'
{
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
JSON
"#;

/// Acceptance 2, the seed walkthrough: eth0 10.11.0.2/16 on the bridge,
/// eth1 172.17.0.2/16 on default-restricted, `list --full` shows both.
#[test]
fn seed_walkthrough() {
    for (set, flags) in plugin_sets() {
        let o = Host::new()
            .global(flags)
            .run(&format!(
                r#"{SEED_BRIDGE}
rkt run --net=customrktbridge "$IMG" --exec=/bin/sh -- -c 'ip -o -4 addr; sleep 30' > out &
wait_running
rkt list --full --no-legend > list
echo "LEASE=$(head -n1 /var/lib/cni/networks/customrktbridge/10.11.0.2 | tr -d '\r')"
echo "RLEASE=$(head -n1 /var/lib/cni/networks/default-restricted/172.17.0.2 | tr -d '\r')"
rkt stop $(awk '{{print $1}}' list) > /dev/null
wait $! || true
cat out list
echo "UUID=$(awk '{{print $1}}' list)"
"#
            ))
            .ok();
        let uuid = o.value("UUID").unwrap();
        assert_eq!(uuid.len(), 36, "{set}: {}", o.stdout);
        assert!(
            o.stdout.contains("eth0    inet 10.11.0.2/16"),
            "{set}: {}",
            o.stdout
        );
        assert!(
            o.stdout.contains("eth1    inet 172.17.0.2/16"),
            "{set}: {}",
            o.stdout
        );
        assert!(
            o.stdout
                .contains("customrktbridge:ip4=10.11.0.2, default-restricted:ip4=172.17.0.2"),
            "{set}: {}",
            o.stdout
        );
        assert_eq!(o.value("LEASE"), Some(uuid.clone()), "{set}");
        assert_eq!(o.value("RLEASE"), Some(uuid), "{set}");
    }
}

/// Acceptance 3: default-restricted has no route beyond its subnet but
/// reaches the host; none is loopback only; host sees the host's links;
/// `--net=name:IP=...` reaches host-local as CNI_ARGS.
#[test]
fn special_networks_and_args() {
    for (set, flags) in plugin_sets() {
        let o = Host::new()
            .global(flags)
            .run(&format!(
                r#"{SEED_BRIDGE}
rkt run --net=default-restricted "$IMG" --exec=/bin/sh -- -c 'echo ROUTES=$(ip route | tr "\n" "|"); ping -c1 -W2 172.17.0.1 >/dev/null && echo PING=ok'
rkt run --net=none "$IMG" --exec=/bin/sh -- -c 'echo LINKS=$(ls /sys/class/net | tr "\n" " ")'
ip link add hostside0 type veth peer name hostside1
rkt run --net=host "$IMG" --exec=/bin/sh -- -c 'echo HOSTLINKS=$(ls /sys/class/net | tr "\n" " ")'
ip link del hostside0
rkt run --net=customrktbridge:IP=10.11.0.77 "$IMG" --exec=/bin/sh -- -c 'echo ARGIP=$(ip -o -4 addr show eth0 | awk "{{print \$4}}")'
rkt gc --grace-period=0s >/dev/null
"#
            ))
            .ok();
        let routes = o.value("ROUTES").unwrap();
        assert!(!routes.contains("default"), "{set}: {routes}");
        for r in routes.split('|').filter(|r| !r.is_empty()) {
            assert!(
                r.starts_with("172.17."),
                "{set}: route beyond 172.17.0.0/16: {r}"
            );
        }
        assert_eq!(
            o.value("PING").as_deref(),
            Some("ok"),
            "{set}: {}",
            o.stdout
        );
        assert_eq!(
            o.value("LINKS").as_deref().map(str::trim),
            Some("lo"),
            "{set}"
        );
        assert!(o.value("HOSTLINKS").unwrap().contains("hostside1"), "{set}");
        assert_eq!(
            o.value("ARGIP").as_deref(),
            Some("10.11.0.77/16"),
            "{set}: {}",
            o.stdout
        );
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
        let o = Host::new()
            .global(flags)
            .run(
                r#"cat > /etc/rkt/net.d/10-good.conf <<'JSON'
{"cniVersion":"1.0.0","name":"good","type":"ptp","ipMasq":true,"ipam":{"type":"host-local","subnet":"10.40.0.0/24"}}
JSON
cat > /etc/rkt/net.d/20-missing.conf <<'JSON'
{"cniVersion":"1.0.0","name":"missing","type":"nosuchplugin"}
JSON
cat > /etc/rkt/net.d/30-failing.conf <<'JSON'
{"cniVersion":"1.0.0","name":"failing","type":"ptp","ipam":{"type":"host-local","subnet":"10.41.0.0/24","rangeStart":"10.41.0.10","rangeEnd":"10.41.0.20"}}
JSON
set +e
rkt run --net=good,missing "$IMG" --exec=/bin/true 2> err1; echo "RC1=$?"
rkt run --net=good,failing:IP=10.41.0.99 "$IMG" --exec=/bin/true 2> err2; echo "RC2=$?"
set -e
echo "LINES1=$(wc -l < err1)"; echo "ERR1=$(cat err1)"
echo "LINES2=$(wc -l < err2)"; echo "ERR2=$(cat err2)"
echo "PODS=$(rkt list --no-legend | wc -l)"
"#,
            )
            .ok();
        assert_ne!(o.value("RC1").as_deref(), Some("0"), "{set}");
        assert_ne!(o.value("RC2").as_deref(), Some("0"), "{set}");
        assert_eq!(
            o.value("LINES1").as_deref(),
            Some("1"),
            "{set}: {}",
            o.stdout
        );
        assert_eq!(
            o.value("LINES2").as_deref(),
            Some("1"),
            "{set}: {}",
            o.stdout
        );
        let e1 = o.value("ERR1").unwrap();
        assert!(
            e1.contains("network \"missing\"") && e1.contains("nosuchplugin"),
            "{set}: {e1}"
        );
        let e2 = o.value("ERR2").unwrap();
        assert!(
            e2.contains("network \"failing\"") && e2.contains("plugin ptp"),
            "{set}: {e2}"
        );
        assert_eq!(
            o.value("PODS").as_deref(),
            Some("0"),
            "{set}: a failed pod is not kept"
        );
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
