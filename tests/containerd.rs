//! Issue 16, the containerd recipes: `ctr run --cni` runs containers on the
//! shipped conflist (`dist/containerd/10-rkt-pods.conflist`: our bridge +
//! host-local + portmap) with our plugins linked into `/opt/cni/bin` (where
//! ctr looks); containers reach each other and the host, and their DEL
//! releases everything. The CRI snippet (`dist/containerd/config.toml`)
//! parses with the installed containerd, which reads our plugin directory
//! and the conf dir from it.

mod common;

use std::time::Duration;

use common::{kill_spawned, remove_cgroups, rkt_bin, Host, Session};

const CONFLIST: &str = include_str!("../dist/containerd/10-rkt-pods.conflist");
const CRI: &str = include_str!("../dist/containerd/config.toml");
const SOCK: &str = "/run/ctd/containerd.sock";

/// `ctr --address SOCK args...`
fn ctr(host: &Session, args: &[&str]) -> common::Outcome {
    let mut argv = vec!["ctr", "--address", SOCK];
    argv.extend(args);
    host.exec(&argv)
}

#[test]
fn ctr_run_cni_runs_containers_on_our_plugins() {
    let host = Host::new().start();
    // ctr reads /etc/cni/net.d and /opt/cni/bin: the machine's, so covered
    // by this host's own (the recipe links the package's plugins there).
    host.sh("mount -t tmpfs tmpfs /etc/cni && mount -t tmpfs tmpfs /opt && mkdir -p /etc/cni/net.d /opt/cni/bin")
        .ok();
    let bin = rkt_bin().parent().expect("bin dir").display().to_string();
    for p in ["loopback", "bridge", "host-local", "portmap"] {
        host.exec(&[
            "ln",
            "-s",
            &format!("{bin}/{p}"),
            &format!("/opt/cni/bin/{p}"),
        ])
        .ok();
    }
    host.write("/etc/cni/net.d/10-rkt-pods.conflist", CONFLIST);
    host.write(
        "/tmp/ctd/config.toml",
        format!(
            "version = 2\nroot = \"/tmp/ctd/root\"\nstate = \"/run/ctd/state\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\naddress = \"{SOCK}\"\n"
        ),
    );
    let containerd = host.spawn(&["containerd", "--config", "/tmp/ctd/config.toml"]);
    for _ in 0..100 {
        if ctr(&host, &["version"]).code == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // The checkout, where the test image lives, is read-only here: each
    // container gets a copy.
    for c in ["web", "client"] {
        host.exec(&["cp", "-a", &host.image(), &format!("/tmp/{c}")])
            .ok();
    }
    // Runc's cgroups are the machine's: under a parent of this test's own.
    let parent = format!("/rkt-ctr-test-{}", std::process::id());
    let web_cgroup = format!("{parent}/web");
    let web = host.spawn(&[
        "ctr", "--address", SOCK, "run", "--rm", "--cni", "--cgroup", &web_cgroup, "--rootfs",
        "/tmp/web", "web", "/bin/sh", "-c",
        "mkdir -p /www && echo served-by-ctr > /www/index.html && exec httpd -f -p 0.0.0.0:80 -h /www",
    ]);
    let mut ip = Vec::new();
    for _ in 0..100 {
        ip = host.leases("rkt-pods");
        if !ip.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(ip.len(), 1, "the web container's address: {ip:?}");
    let url = format!("http://{}/", ip[0]);
    // The host reaches it through the bridge (the gateway is ours).
    let mut answer = String::new();
    for _ in 0..50 {
        answer = host
            .exec(&["timeout", "5", "busybox", "wget", "-q", "-O", "-", &url])
            .stdout;
        if !answer.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(answer.trim(), "served-by-ctr");
    // A second container reaches it by address, from its own.
    let client_cgroup = format!("{parent}/client");
    let client = ctr(
        &host,
        &[
            "run",
            "--rm",
            "--cni",
            "--cgroup",
            &client_cgroup,
            "--rootfs",
            "/tmp/client",
            "client",
            "/bin/sh",
            "-c",
            &format!("ip -4 -o addr show eth0; timeout 5 wget -qO- {url}"),
        ],
    )
    .ok();
    assert!(
        client.stdout.contains("inet 10.244.1."),
        "{}",
        client.stdout
    );
    assert!(client.stdout.contains("served-by-ctr"), "{}", client.stdout);
    assert_eq!(
        host.leases("rkt-pods").len(),
        1,
        "the client's DEL released its address"
    );
    ctr(&host, &["task", "kill", "--signal", "SIGKILL", "web"]).ok();
    let out = web.wait_with_output().expect("ctr run web");
    assert!(
        host.leases("rkt-pods").is_empty(),
        "ctr's DEL released the web's: {out:?}"
    );
    kill_spawned(containerd);
    host.exec(&["ip", "link", "del", "cni0"]).ok();
    let left = remove_cgroups(&host, &parent);
    assert!(left.trim().is_empty(), "cgroups left: {left}");
    host.finish();
}

#[test]
fn the_cri_snippet_parses_with_the_installed_containerd() {
    let host = Host::new().start();
    host.write("/tmp/config.toml", CRI);
    let dump = host
        .exec(&[
            "containerd",
            "--config",
            "/tmp/config.toml",
            "config",
            "dump",
        ])
        .ok();
    // containerd read our values into its CRI plugin's CNI section.
    let cni = dump
        .stdout
        .split("[plugins.\"io.containerd.grpc.v1.cri\".cni]")
        .nth(1)
        .unwrap_or_else(|| panic!("no CRI cni section in:\n{}", dump.stdout));
    let cni = cni.split("\n\n").next().unwrap_or_default();
    for line in [
        "bin_dir = \"/usr/lib/rkt/plugins/net\"",
        "conf_dir = \"/etc/cni/net.d\"",
        "max_conf_num = 1",
    ] {
        assert!(cni.contains(line), "{line} in:\n{cni}");
    }
    // A snippet that is not TOML is refused: the check can fail.
    host.write("/tmp/broken.toml", CRI.replace("bin_dir =", "bin_dir"));
    let broken = host.exec(&[
        "containerd",
        "--config",
        "/tmp/broken.toml",
        "config",
        "dump",
    ]);
    assert_ne!(broken.code, 0, "{broken:?}");
    host.finish();
}
