//! Issue 14: pods that serve. `rkt run --port` / `--publish` forward host
//! ports through our `portmap` plugin (nftables), on the built-in
//! `default` network, on a ptp conflist and on a bridge conflist; every
//! path a user tries answers (another host, the host to its own address,
//! the host to 127.0.0.1, another pod, the pod itself), TCP and UDP; the
//! reference portmap in the same chain gives the same answers; bad flags
//! are refused before anything exists; nothing is left after exit, stop,
//! or SIGKILL + gc; a pod cannot use the localhost routing this needs to
//! reach the host's own 127.0.0.1.

mod common;

use std::time::Duration;

use common::{kill_spawned, ours, Cni, Host, Session, REFERENCE_DIR};

/// The host's address on the link to the "other host" (netns `client`).
const HOST_IP: &str = "10.250.0.1";

const PTP: &str = r#"{"cniVersion":"1.0.0","name":"webptp","plugins":[
 {"type":"ptp","ipMasq":true,"ipam":{"type":"host-local","subnet":"10.91.0.0/24","routes":[{"dst":"0.0.0.0/0"}]}},
 {"type":"portmap","capabilities":{"portMappings":true}}]}"#;
const BRIDGE: &str = r#"{"cniVersion":"1.0.0","name":"webbr","plugins":[
 {"type":"bridge","bridge":"cniweb0","isGateway":true,"ipMasq":true,"hairpinMode":true,"ipam":{"type":"host-local","subnet":"10.92.0.0/24","routes":[{"dst":"0.0.0.0/0"}]}},
 {"type":"portmap","capabilities":{"portMappings":true}}]}"#;
const NO_PORTMAP: &str = r#"{"cniVersion":"1.0.0","name":"plain","type":"ptp","ipam":{"type":"host-local","subnet":"10.93.0.0/24"}}"#;

/// The app: busybox httpd on port 80 answering `served-by-<name>`.
fn web(name: &str) -> Vec<String> {
    [
        "/bin/sh",
        "-c",
        "mkdir -p /www && echo served-by-$0 > /www/index.html && exec httpd -f -p 80 -h /www",
        name,
    ]
    .map(String::from)
    .to_vec()
}

/// A UDP echo on port 53 of a pod's network namespace, answering
/// `udp-from-<sender>` (busybox has no UDP server).
const UDP_ECHO: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 53))
while True:
    d, a = s.recvfrom(100)
    s.sendto(b"udp-from-" + a[0].encode(), a)
"#;

const UDP_ASK: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
for _ in range(3):
    s.sendto(b"?", (sys.argv[1], int(sys.argv[2])))
    try:
        print(s.recv(100).decode()); break
    except socket.timeout:
        pass
"#;

/// Starts [`UDP_ECHO`] in the pod's network namespace (the caller ends it).
fn udp_echo(host: &Session, uuid: &str) -> std::process::Child {
    let ns = format!("rkt-{uuid}");
    let child = host.spawn(&["ip", "netns", "exec", &ns, "python3", "-c", UDP_ECHO]);
    std::thread::sleep(Duration::from_millis(300));
    child
}

/// The other host: netns `client` at 10.250.0.2, routed through the
/// throwaway host's 10.250.0.1.
fn other_host(host: &Session) {
    host.sh("ip netns add client
         ip link add cli type veth peer name eth0 netns client
         ip addr add 10.250.0.1/24 dev cli && ip link set cli up
         ip -n client addr add 10.250.0.2/24 dev eth0
         ip -n client link set eth0 up && ip -n client link set lo up
         ip -n client route add default via 10.250.0.1")
        .ok();
}

fn remove_other_host(host: &Session) {
    host.sh("ip link del cli; ip netns del client").ok();
}

/// Where a request comes from.
#[derive(Clone, Copy, Debug)]
enum From<'a> {
    OtherHost,
    Host,
    /// A new pod on this network.
    PodOn(&'a str),
    /// The serving pod itself (`rkt enter`).
    Itself(&'a str),
}

/// `busybox wget` of `url` with a 5 s limit, in netns `netns` (the
/// host's when `None`).
fn wget(host: &Session, netns: Option<&str>, url: &str) -> common::Outcome {
    let mut argv = vec![];
    if let Some(ns) = netns {
        argv.extend(["ip", "netns", "exec", ns]);
    }
    argv.extend(["timeout", "5", "busybox", "wget", "-q", "-O", "-", url]);
    host.exec(&argv)
}

/// What `GET http://addr/` answers from `from` (empty when nothing).
fn get(host: &Session, from: From, addr: &str) -> String {
    let url = format!("http://{addr}/");
    let in_pod = ["timeout", "5", "wget", "-q", "-O", "-", url.as_str()];
    let out = match from {
        From::OtherHost => wget(host, Some("client"), &url),
        From::Host => wget(host, None, &url),
        From::PodOn(net) => host.in_pod(net, &in_pod),
        From::Itself(uuid) => {
            let mut argv = vec!["enter", uuid, "/bin/timeout"];
            argv.extend(&in_pod[1..]);
            host.rkt(&argv)
        }
    };
    out.stdout.trim().to_string()
}

/// What a UDP datagram to `ip:port` from the other host or the host gets.
fn ask_udp(host: &Session, from_other_host: bool, ip: &str, port: &str) -> String {
    let mut argv = vec![];
    if from_other_host {
        argv.extend(["ip", "netns", "exec", "client"]);
    }
    argv.extend(["python3", "-c", UDP_ASK, ip, port]);
    host.exec(&argv).stdout.trim().to_string()
}

/// Starts the web pod on `net` with `flags`; its `rkt run` and UUID, once
/// it answers on its own address.
fn serve(host: &Session, net: &str, flags: &[&str], name: &str) -> (std::process::Child, String) {
    let app = web(name);
    let app: Vec<&str> = app.iter().map(String::as_str).collect();
    let (child, uuid) = host.pod_in_background(net, flags, &app);
    let ip = pod_ip(host, &uuid);
    for _ in 0..100 {
        if get(host, From::Host, &format!("{ip}:80")).contains("served-by") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, uuid)
}

fn pod_ip(host: &Session, uuid: &str) -> String {
    let pods = host.list_json();
    let pod = pods
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == uuid)
        .expect("the pod in rkt list");
    pod["networks"][0]["ip"].as_str().unwrap().to_string()
}

fn stop(host: &Session, uuid: &str, child: std::process::Child) {
    host.rkt(&["stop", uuid]).ok();
    let _ = child.wait_with_output();
    host.rkt(&["rm", uuid]).ok();
}

/// What every path to host port 8080 (TCP) and 5353 (UDP) of a pod on
/// `net` published with `--publish=8080:80 --publish=5353:53/udp` gets.
type Answers = Vec<(String, String)>;

/// The [`Answers`], and the conntrack entries of the pod left once it
/// stopped.
fn matrix(host: &Session, net: &str) -> (Answers, Vec<String>) {
    let flags = ["--publish=8080:80", "--publish=5353:53/udp"];
    let (child, uuid) = serve(host, net, &flags, net);
    let udp = udp_echo(host, &uuid);
    let at = format!("{HOST_IP}:8080");
    let mut out = vec![];
    for (what, from, addr) in [
        ("other host", From::OtherHost, at.as_str()),
        ("host, own address", From::Host, at.as_str()),
        ("host, 127.0.0.1", From::Host, "127.0.0.1:8080"),
        ("another pod", From::PodOn(net), at.as_str()),
        ("the pod itself", From::Itself(&uuid), at.as_str()),
    ] {
        out.push((format!("tcp {what}"), get(host, from, addr)));
    }
    out.push((
        "udp other host".into(),
        ask_udp(host, true, HOST_IP, "5353"),
    ));
    out.push((
        "udp host, 127.0.0.1".into(),
        ask_udp(host, false, "127.0.0.1", "5353"),
    ));
    kill_spawned(udp);
    let ip = pod_ip(host, &uuid);
    assert!(
        !connections_of(host, &ip).is_empty(),
        "the paths left conntrack entries"
    );
    stop(host, &uuid, child);
    // They go with the flush of what DEL left (half a second later).
    let mut left = connections_of(host, &ip);
    for _ in 0..60 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        left = connections_of(host, &ip);
    }
    (out, left)
}

/// The host's conntrack entries from or to `ip`.
fn connections_of(host: &Session, ip: &str) -> Vec<String> {
    let (src, dst) = (format!("src={ip} "), format!("dst={ip} "));
    host.read("/proc/net/nf_conntrack")
        .lines()
        .filter(|l| l.contains(&src) || l.contains(&dst))
        .map(String::from)
        .collect()
}

fn expected(net: &str) -> Answers {
    let tcp = format!("served-by-{net}");
    vec![
        ("tcp other host".into(), tcp.clone()),
        ("tcp host, own address".into(), tcp.clone()),
        ("tcp host, 127.0.0.1".into(), tcp.clone()),
        ("tcp another pod".into(), tcp.clone()),
        ("tcp the pod itself".into(), tcp),
        // The pod sees the other host's own address: no masquerade there.
        ("udp other host".into(), "udp-from-10.250.0.2".into()),
        ("udp host, 127.0.0.1".into(), "udp-from-".into()),
    ]
}

fn check(got: &Answers, net: &str) {
    for ((what, answer), (_, want)) in got.iter().zip(expected(net)) {
        assert!(
            answer.starts_with(&want),
            "{net}, {what}: got {answer:?}, want {want:?}\n{got:?}"
        );
    }
}

#[test]
fn every_path_answers_on_default_ptp_and_bridge() {
    let host = Host::new().start();
    other_host(&host);
    host.net_conf("10-webptp.conflist", PTP);
    host.net_conf("20-webbr.conflist", BRIDGE);
    for net in ["default", "webptp", "webbr"] {
        let (answers, left) = matrix(&host, net);
        check(&answers, net);
        assert!(
            left.is_empty(),
            "{net}: conntrack entries of the stopped pod: {left:?}"
        );
    }
    remove_other_host(&host);
    host.exec(&["ip", "link", "del", "cniweb0"]).ok();
    host.finish();
}

/// The same matrix with the reference plugins (their ptp and their
/// iptables portmap, the same conflist) gives the same answers.
#[test]
fn the_reference_portmap_gives_the_same_answers() {
    let run = |global: &str| {
        let host = Host::new().global(global).start();
        other_host(&host);
        host.net_conf("10-webptp.conflist", PTP);
        let answers = matrix(&host, "webptp");
        remove_other_host(&host);
        if !global.is_empty() {
            // The reference keeps its shared CNI-HOSTPORT-* chains (empty)
            // for good; nothing else may be left.
            host.sh("for t in iptables ip6tables; do $t -t nat -F; $t -t nat -X; done")
                .ok();
        }
        host.finish();
        answers
    };
    let (ours, _) = run("");
    // The reference leaves the pod's conntrack entries (ours does not:
    // see the test above).
    let (reference, _) = run(&format!("--net-plugin-path={REFERENCE_DIR}"));
    check(&ours, "webptp");
    assert_eq!(ours, reference, "ours, then the reference portmap");
}

/// Every refusal: exit 254, one line naming the flag, nothing created.
#[test]
fn bad_port_flags_are_refused_before_anything_exists() {
    let image = common::image::oci_layout();
    let image = image.to_str().unwrap();
    let host = Host::new().start();
    host.net_conf("30-plain.conf", NO_PORTMAP);
    let run = |net: &str, flags: &[&str]| {
        let net = format!("--net={net}");
        let mut args = vec!["run", net.as_str()];
        args.extend(flags);
        args.extend([image, "--exec=/bin/true"]);
        host.rkt(&args)
    };
    let cases: &[(&str, &[&str], &str)] = &[
        ("default", &["--port=http:8080"], "--port=http:8080: the image declares no port named \"http\" (it declares 53-udp, 80-tcp)"),
        ("default", &["--port=80-tcp"], "--port=80-tcp: not NAME:[HOSTIP:]HOSTPORT"),
        ("default", &["--port=80-tcp:0"], "\"0\" is not a port from 1 to 65535"),
        ("default", &["--publish=8080:70000"], "--publish=8080:70000: \"70000\" is not a port"),
        ("default", &["-p", "8080:80/icmp"], "--publish=8080:80/icmp: protocol \"icmp\" is not tcp, udp or sctp"),
        ("default", &["--publish=8080:80", "--port=80-tcp:8080"], "host port 8080/tcp is forwarded twice (0.0.0.0:8080->80/tcp and 0.0.0.0:8080->80/tcp)"),
        ("default", &["--publish=10.9.9.9:8080:80"], "10.9.9.9 is not an address of this host"),
        ("default-restricted", &["--publish=8080:80"], "none of the pod's networks (default-restricted) forwards ports; add {\"type\": \"portmap\""),
        ("plain", &["--publish=8080:80"], "none of the pod's networks (plain, default-restricted) forwards ports"),
        ("host", &["--publish=8080:80"], "--net=host: the app binds the host's ports itself"),
        ("none", &["--publish=8080:80"], "--net=none: the pod has no network"),
    ];
    for (net, flags, says) in cases {
        run(net, flags).fails_with(254, says);
    }
    assert!(
        host.pods("").is_empty() && host.ls("/run/netns").is_empty(),
        "nothing was created"
    );
    // A host port a running pod forwards is refused, naming that pod.
    let (child, uuid) = serve(&host, "default", &["--publish=8080:80"], "first");
    let e = run("default", &["--publish=127.0.0.1:8080:90"])
        .fails_with(254, "already forwarded by running pod");
    assert!(
        e.contains(&uuid) && e.contains("0.0.0.0:8080->80/tcp"),
        "{e}"
    );
    assert_eq!(host.ls("/run/netns").len(), 1, "only the first pod's netns");
    // Another protocol, or another host port, is fine.
    run("default", &["--publish=8080:80/udp", "--publish=8081:80"]).ok();
    stop(&host, &uuid, child);
    host.finish();
}

/// `rkt list --full`, `status` and the JSON show the forwarded ports.
#[test]
fn list_and_status_show_the_ports() {
    let image = common::image::oci_layout();
    let host = Host::new().start();
    let app = web("shown");
    let mut argv = vec![
        "run",
        "--net=default",
        "--port=80-tcp:8080",
        "-p",
        "127.0.0.1:5353:53/udp",
        image.to_str().unwrap(),
    ];
    let exec = format!("--exec={}", app[0]);
    argv.push(&exec);
    argv.push("--");
    argv.extend(app[1..].iter().map(String::as_str));
    let child = host.rkt_spawn(&argv);
    let uuid = host.wait_running(1).remove(0);
    let want = "0.0.0.0:8080->80/tcp, 127.0.0.1:5353->53/udp";
    let list = host.rkt(&["list", "--full"]).ok();
    assert!(
        list.stdout.lines().next().unwrap().ends_with("PORTS"),
        "{}",
        list.stdout
    );
    assert!(list.stdout.contains(want), "{}", list.stdout);
    let status = host.rkt(&["status", &uuid]).ok();
    assert!(
        status
            .lines()
            .contains(&"ports=0.0.0.0:8080->80/tcp,127.0.0.1:5353->53/udp"),
        "{}",
        status.stdout
    );
    let json = host.list_json();
    assert_eq!(
        json[0]["ports"],
        serde_json::json!(["0.0.0.0:8080->80/tcp", "127.0.0.1:5353->53/udp"])
    );
    // The saved runtimeConfig, which DEL gets again.
    let rec: serde_json::Value =
        serde_json::from_str(&host.read(&format!("/var/lib/rkt/pods/run/{uuid}/net/0.json")))
            .unwrap();
    assert_eq!(
        rec["runtimeConfig"]["portMappings"][0],
        serde_json::json!({"containerPort": 80, "hostPort": 8080, "protocol": "tcp"})
    );
    stop(&host, &uuid, child);
    host.finish();
}

/// The table, the attachments recorded and the elements of map `any4`.
fn portmap_state(host: &Session) -> (bool, Vec<String>, String) {
    let table = host.exec(&["nft", "list", "table", "inet", "rkt-portmap"]);
    let any4 = host
        .exec(&["nft", "list", "map", "inet", "rkt-portmap", "any4"])
        .stdout;
    let elements = any4
        .split("elements = ")
        .nth(1)
        .unwrap_or("")
        .split('}')
        .next()
        .unwrap_or("")
        .to_string();
    (table.code == 0, host.ls("/run/rkt-portmap/pods"), elements)
}

/// Waits (up to 3 s) until the table is gone: its removal is detached.
fn table_gone(host: &Session) -> bool {
    (0..60).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        !portmap_state(host).0
    })
}

#[test]
fn nothing_is_left_after_exit_stop_or_kill_and_gc() {
    let host = Host::new().start();
    // The app exits.
    host.in_pod_with("default", &["--publish=8080:80"], &["/bin/true"])
        .ok();
    assert!(
        table_gone(&host) && portmap_state(&host).1.is_empty(),
        "after exit"
    );
    // rkt stop.
    let (child, uuid) = serve(&host, "default", &["--publish=8080:80"], "stopped");
    let (table, pods, elements) = portmap_state(&host);
    assert!(
        table && pods.len() == 1 && elements.contains("tcp . 8080 : 172.16.28."),
        "{elements}"
    );
    stop(&host, &uuid, child);
    assert!(
        table_gone(&host) && portmap_state(&host).1.is_empty(),
        "after stop"
    );
    // SIGKILL of rkt run, then rkt gc.
    let (child, _) = serve(&host, "default", &["--publish=8080:80"], "killed");
    kill_spawned(child);
    for _ in 0..100 {
        if host.pods("running").is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        portmap_state(&host).2.contains("8080"),
        "the killed pod's element stays until gc"
    );
    host.rkt(&["gc", "--grace-period=0s"]).ok();
    assert!(
        table_gone(&host) && portmap_state(&host).1.is_empty(),
        "after gc"
    );
    host.finish();
}

/// A table of ours with no state behind it (the state directory lost):
/// the first mapping replaces it (its rules once, its elements gone), and
/// the port answers.
#[test]
fn a_stale_table_is_replaced_not_merged() {
    let host = Host::new().start();
    host.exec_input(
        &["nft", "-f", "-"],
        b"table inet rkt-portmap {
  map any4 { type inet_proto . inet_service : ipv4_addr . inet_service; elements = { tcp . 9999 : 10.9.9.9 . 80 } }
  chain mapped { meta nfproto ipv4 dnat ip to meta l4proto . th dport map @any4; }
  chain pre { type nat hook prerouting priority dstnat; policy accept; fib daddr type local jump mapped; }
}
",
    )
    .ok();
    other_host(&host);
    let (child, uuid) = serve(&host, "default", &["--publish=8080:80"], "fresh");
    assert_eq!(
        get(&host, From::OtherHost, "10.250.0.1:8080"),
        "served-by-fresh"
    );
    let table = host
        .exec(&["nft", "list", "table", "inet", "rkt-portmap"])
        .ok()
        .stdout;
    assert!(!table.contains("9999"), "the stale element went: {table}");
    assert_eq!(table.matches("map @any4").count(), 1, "{table}");
    stop(&host, &uuid, child);
    assert!(table_gone(&host));
    remove_other_host(&host);
    host.finish();
}

/// CNI GC of the plugin drops the elements of attachments that are gone
/// and keeps the others.
#[test]
fn plugin_gc_drops_what_is_gone() {
    let host = Host::new().start();
    let (ptp, portmap) = (ours("ptp"), ours("portmap"));
    let conf = |runtime: &str, prev: &str| {
        format!(
            r#"{{"cniVersion":"1.1.0","name":"gcnet","type":"portmap","runtimeConfig":{{"portMappings":[{runtime}]}},"prevResult":{prev}}}"#
        )
    };
    let ptp_conf = r#"{"cniVersion":"1.1.0","name":"gcnet","type":"ptp","ipam":{"type":"host-local","subnet":"10.94.0.0/24"}}"#;
    let mut results = vec![];
    for (c, port) in [("c1", 8081), ("c2", 8082)] {
        host.exec(&["ip", "netns", "add", c]).ok();
        let ns = format!("/run/netns/{c}");
        let r = host
            .cni(&Cni::new(&ptp, "ADD", c).netns(&ns), ptp_conf)
            .ok()
            .stdout;
        let m = format!(r#"{{"hostPort":{port},"containerPort":80,"protocol":"tcp"}}"#);
        host.cni(
            &Cni::new(&portmap, "ADD", c).netns(&ns),
            &conf(&m, r.trim()),
        )
        .ok();
        results.push((c, ns, r));
    }
    let (_, pods, elements) = portmap_state(&host);
    assert_eq!(pods.len(), 2);
    assert!(
        elements.contains("8081") && elements.contains("8082"),
        "{elements}"
    );
    let gc = r#"{"cniVersion":"1.1.0","name":"gcnet","type":"portmap","cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}]}"#;
    host.cni(&Cni::new(&portmap, "GC", ""), gc).ok();
    let (_, pods, elements) = portmap_state(&host);
    assert_eq!(pods, ["c1-eth0"]);
    assert!(
        elements.contains("8081") && !elements.contains("8082"),
        "{elements}"
    );
    assert_eq!(host.ls("/run/rkt-portmap/claims"), ["any4-tcp-8081"]);
    // CHECK finds c1's elements, and says what is missing once they are not.
    let (c1, ns1, r1) = &results[0];
    let m1 = r#"{"hostPort":8081,"containerPort":80,"protocol":"tcp"}"#;
    host.cni(
        &Cni::new(&portmap, "CHECK", c1).netns(ns1),
        &conf(m1, r1.trim()),
    )
    .ok();
    host.exec(&[
        "nft",
        "delete",
        "element",
        "inet",
        "rkt-portmap",
        "any4",
        "{ tcp . 8081 }",
    ])
    .ok();
    let check = host.cni(
        &Cni::new(&portmap, "CHECK", c1).netns(ns1),
        &conf(m1, r1.trim()),
    );
    assert!(
        check.code != 0 && check.stdout.contains("tcp . 8081 of any4 is missing"),
        "{check:?}"
    );
    for (c, ns, r) in &results {
        host.cni(&Cni::new(&portmap, "DEL", c).netns(ns), &conf("", r.trim()))
            .ok();
        host.cni(&Cni::new(&ptp, "DEL", c).netns(ns), ptp_conf).ok();
        host.exec(&["ip", "netns", "del", c]).ok();
    }
    assert!(table_gone(&host));
    host.finish();
}

/// Localhost forwarding sets route_localnet on the host side of the pod's
/// link; a pod that routes packets to 127.0.0.0/8 through it must still
/// not reach the host's own localhost services (CVE-2020-8558).
#[test]
fn a_pod_cannot_reach_the_hosts_localhost() {
    let host = Host::new().start();
    // A service only the host should reach (on 127.0.0.2: a pod's own
    // 127.0.0.1 is local to it and cannot be routed).
    let secret = host.spawn(&["python3", "-c", "import http.server as h; h.HTTPServer(('127.0.0.2', 9999), h.SimpleHTTPRequestHandler).serve_forever()"]);
    let (child, uuid) = serve(&host, "default", &["--publish=8080:80"], "attacker");
    let veth_localnet = host
        .sh("cat /proc/sys/net/ipv4/conf/*/route_localnet | sort -u | tail -1")
        .stdout;
    assert_eq!(veth_localnet.trim(), "1", "localhost forwarding is on");
    // The attacker (root in the pod's netns, as a pod with NET_ADMIN
    // would be) routes 127.0.0.2 to the host.
    let ns = format!("rkt-{uuid}");
    host.exec(&[
        "ip",
        "-n",
        &ns,
        "route",
        "add",
        "127.0.0.2/32",
        "via",
        "172.16.28.1",
        "dev",
        "eth0",
        "onlink",
    ])
    .ok();
    host.exec(&[
        "ip",
        "netns",
        "exec",
        &ns,
        "sysctl",
        "-qw",
        "net.ipv4.conf.eth0.route_localnet=1",
    ])
    .ok();
    let steal = || wget(&host, Some(&ns), "http://127.0.0.2:9999/");
    let attack = steal();
    assert!(
        attack.stdout.is_empty() && attack.code != 0,
        "the pod reached the host's 127.0.0.1: {attack:?}"
    );
    // Without our guard the same packets would get through: drop the
    // guard chain and try again, to show the test can fail.
    host.exec(&["nft", "flush", "chain", "inet", "rkt-portmap", "guard"])
        .ok();
    let open = steal();
    assert!(
        open.code == 0,
        "without the guard the attack should work: {open:?}"
    );
    kill_spawned(secret);
    stop(&host, &uuid, child);
    host.finish();
}

const DUAL: &str = r#"{"cniVersion":"1.0.0","name":"dual","plugins":[
 {"type":"ptp","ipMasq":true,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.95.0.0/24"}],[{"subnet":"fd95::/64"}]],
  "routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0"}]}},
 {"type":"portmap","capabilities":{"portMappings":true}}]}"#;

/// What `GET http://[addr]:port/` answers over IPv6, from netns `from`
/// (the host when `None`).
fn get6(host: &Session, from: Option<&str>, addr: &str, port: u16) -> String {
    let py = "import socket, sys\ns = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)\ns.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')\nd = b''\nwhile True:\n    c = s.recv(4096)\n    if not c: break\n    d += c\nprint(d.split(b'\\r\\n\\r\\n', 1)[-1].decode().strip())";
    let port = port.to_string();
    let mut argv = vec![];
    if let Some(ns) = from {
        argv.extend(["ip", "netns", "exec", ns]);
    }
    argv.extend(["python3", "-c", py, addr, &port]);
    host.exec(&argv).stdout.trim().to_string()
}

/// A dual-stack pod is reached over IPv6 too: from the other host, from
/// the host to its own address, and from itself; a mapping limited to an
/// IPv4 host address does not answer on IPv6.
#[test]
fn ipv6_paths_answer_on_a_dual_stack_network() {
    let host = Host::new().start();
    other_host(&host);
    host.sh("ip addr add fd50::1/64 dev cli nodad
         ip -n client addr add fd50::2/64 dev eth0 nodad
         ip -n client route add default via fd50::1")
        .ok();
    host.net_conf("10-dual.conflist", DUAL);
    let (child, uuid) = serve(
        &host,
        "dual",
        &["--publish=8080:80", "--publish=10.250.0.1:8081:80"],
        "dual",
    );
    assert_eq!(
        get6(&host, Some("client"), "fd50::1", 8080),
        "served-by-dual",
        "other host over IPv6"
    );
    assert_eq!(
        get6(&host, None, "fd50::1", 8080),
        "served-by-dual",
        "the host's own IPv6 address"
    );
    let ns = format!("rkt-{uuid}");
    assert_eq!(
        get6(&host, Some(&ns), "fd50::1", 8080),
        "served-by-dual",
        "the pod itself over IPv6"
    );
    assert_eq!(
        get(&host, From::OtherHost, &format!("{HOST_IP}:8081")),
        "served-by-dual"
    );
    assert_eq!(
        get6(&host, Some("client"), "fd50::1", 8081),
        "",
        "an IPv4 host address is IPv4 only"
    );
    stop(&host, &uuid, child);
    remove_other_host(&host);
    host.finish();
}

/// Our portmap and the reference portmap (iptables-nft) forward ports of
/// two pods on the same host at the same time, beside our masquerade
/// table; each answers.
#[test]
fn coexists_with_the_reference_portmap() {
    let host = Host::new().start();
    other_host(&host);
    let path = host.fake_plugin(
        "refportmap",
        "#!/bin/sh\nexec /usr/lib/cni/portmap \"$@\"\n",
    );
    host.net_conf("10-webptp.conflist", PTP);
    host.net_conf(
        "20-theirs.conflist",
        &PTP.replace("webptp", "theirs")
            .replace("10.91.0.0/24", "10.96.0.0/24")
            .replace(r#""type":"portmap""#, r#""type":"refportmap""#),
    );
    let flags = |port: &'static str| vec![path.as_str(), port];
    let (a, ua) = serve(&host, "webptp", &flags("--publish=8080:80"), "ours");
    let (b, ub) = serve(&host, "theirs", &flags("--publish=8090:80"), "theirs");
    assert_eq!(
        get(&host, From::OtherHost, &format!("{HOST_IP}:8080")),
        "served-by-ours"
    );
    assert_eq!(
        get(&host, From::OtherHost, &format!("{HOST_IP}:8090")),
        "served-by-theirs"
    );
    assert_eq!(get(&host, From::Host, "127.0.0.1:8090"), "served-by-theirs");
    assert_eq!(get(&host, From::Host, "127.0.0.1:8080"), "served-by-ours");
    stop(&host, &ua, a);
    stop(&host, &ub, b);
    remove_other_host(&host);
    host.sh("for t in iptables ip6tables; do $t -t nat -F; $t -t nat -X; done")
        .ok();
    host.finish();
}

/// Config keys of the reference that name iptables objects are refused
/// with a CNI error saying what to do; the others are accepted.
#[test]
fn reference_config_keys_are_honoured_or_refused() {
    let host = Host::new().start();
    host.exec(&["ip", "netns", "add", "x"]).ok();
    let portmap = ours("portmap");
    let prev = r#"{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/run/netns/x"}],"ips":[{"address":"10.97.0.2/24","interface":0}]}"#;
    let call = |extra: &str| {
        let conf = format!(
            r#"{{"cniVersion":"1.0.0","name":"keys","type":"portmap",{extra}"runtimeConfig":{{"portMappings":[{{"hostPort":8080,"containerPort":80}}]}},"prevResult":{prev}}}"#
        );
        host.cni(&Cni::new(&portmap, "ADD", "k").netns("/run/netns/x"), &conf)
    };
    for (extra, says) in [
        (
            r#""externalSetMarkChain":"KUBE-MARK-MASQ","#,
            "externalSetMarkChain",
        ),
        (r#""conditionsV4":["-s","1.2.3.4"],"#, "conditionsV4"),
        (r#""markMasqBit":40,"#, "markMasqBit"),
        (r#""snat":"yes","#, "\"snat\" must be true or false"),
        (r#""backend":"ebpf","#, "\"backend\""),
    ] {
        let out = call(extra);
        assert_ne!(out.code, 0, "{extra}: {out:?}");
        let err: serde_json::Value =
            serde_json::from_str(&out.stdout).expect("a CNI error on stdout");
        assert_eq!(err["code"], 7, "{extra}: {err}");
        assert!(
            err["msg"].as_str().unwrap().contains(says),
            "{extra}: {err}"
        );
    }
    assert!(
        host.ls("/run/rkt-portmap/pods").is_empty(),
        "nothing recorded"
    );
    // Accepted as the reference takes them (no mark is used here).
    let ok = call(r#""snat":false,"markMasqBit":13,"backend":"iptables","conditionsV4":[],"#).ok();
    assert!(
        ok.stdout.contains("10.97.0.2/24"),
        "the prevResult is passed on: {}",
        ok.stdout
    );
    let conf =
        format!(r#"{{"cniVersion":"1.0.0","name":"keys","type":"portmap","prevResult":{prev}}}"#);
    host.cni(&Cni::new(&portmap, "DEL", "k").netns("/run/netns/x"), &conf)
        .ok();
    host.exec(&["ip", "netns", "del", "x"]).ok();
    assert!(table_gone(&host));
    host.finish();
}

/// A UDP "connection" the other host opened to a host port before it was
/// forwarded (answered by nobody, kept by conntrack) would keep its next
/// datagrams from the new mapping: ADD deletes it. A HOSTIP of 127.0.0.1
/// forwards only there.
#[test]
fn stale_udp_entries_go_and_host_addresses_limit_mappings() {
    let host = Host::new().start();
    other_host(&host);
    let send_from_40000 = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.250.0.2", 40000)); s.settimeout(1)
for _ in range(3):
    s.sendto(b"?", ("10.250.0.1", 5353))
    try:
        print(s.recv(100).decode()); break
    except Exception:
        pass
"#;
    let from_40000 = || {
        host.exec(&[
            "ip",
            "netns",
            "exec",
            "client",
            "python3",
            "-c",
            send_from_40000,
        ])
        .stdout
        .trim()
        .to_string()
    };
    // Another pod's mapping: the nat hooks, and so conntrack, are active.
    let (other, other_uuid) = serve(&host, "default", &["--publish=9999:80"], "other");
    assert_eq!(from_40000(), "", "nothing listens yet");
    let stale = host
        .read("/proc/net/nf_conntrack")
        .lines()
        .any(|l| l.contains("udp") && l.contains("sport=40000 dport=5353"));
    assert!(stale, "the unanswered datagrams left a conntrack entry");
    let (child, uuid) = serve(
        &host,
        "default",
        &["--publish=5353:53/udp", "--publish=127.0.0.1:8082:80"],
        "limited",
    );
    let udp = udp_echo(&host, &uuid);
    assert_eq!(
        from_40000(),
        "udp-from-10.250.0.2",
        "the same source port is forwarded now"
    );
    assert_eq!(
        get(&host, From::Host, "127.0.0.1:8082"),
        "served-by-limited"
    );
    assert_eq!(
        get(&host, From::OtherHost, &format!("{HOST_IP}:8082")),
        "",
        "127.0.0.1 only"
    );
    kill_spawned(udp);
    stop(&host, &uuid, child);
    stop(&host, &other_uuid, other);
    remove_other_host(&host);
    host.finish();
}
