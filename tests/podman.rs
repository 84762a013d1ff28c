//! Issue 14, acceptance 4: Podman's CNI backend runs a container with
//! `-p 8080:80` through a conflist of our `bridge` and `portmap`, and the
//! port answers from another host. (Podman 4 with runc: crun refuses this
//! machine's hybrid cgroup layout.)

mod common;

use std::time::Duration;

use common::{remove_cgroups, rkt_bin, Host};

const CONFLIST: &str = r#"{"cniVersion":"1.0.0","name":"rktweb","plugins":[
 {"type":"bridge","bridge":"cnipod0","isGateway":true,"ipMasq":true,"hairpinMode":true,
  "ipam":{"type":"host-local","subnet":"10.98.0.0/24","routes":[{"dst":"0.0.0.0/0"}]}},
 {"type":"portmap","capabilities":{"portMappings":true}}]}"#;

#[test]
fn podman_publishes_a_port_through_our_bridge_and_portmap() {
    let host = Host::new()
        .env("CONTAINERS_CONF", "/tmp/pm/containers.conf")
        .start();
    let plugins = rkt_bin().parent().expect("bin dir").display().to_string();
    host.write("/tmp/pm/net.d/rktweb.conflist", CONFLIST);
    host.write(
        "/tmp/pm/containers.conf",
        format!(
            "[network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [\"{plugins}\"]\nnetwork_config_dir = \"/tmp/pm/net.d\"\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"none\"\n"
        ),
    );
    let podman = |args: &[&str]| {
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
        host.exec(&argv)
    };
    // A copy: the checkout, where the test image lives, is read-only here.
    host.exec(&["cp", "-a", &host.image(), "/tmp/pm/rootfs"])
        .ok();
    // Podman's cgroups are the machine's: under a parent of this test's
    // own, removed at the end.
    let parent = format!("/rkt-podman-test-{}", std::process::id());
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
    let left = remove_cgroups(&host, &parent);
    assert!(left.trim().is_empty(), "cgroups left: {left}");
    host.finish();
}
