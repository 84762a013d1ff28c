//! host-local and loopback against the reference plugins: the same results
//! and files in every spec version, leases shared in both directions,
//! concurrency, and GC of leaked leases through `rkt gc`.

mod common;

use common::{ours, reference, Cni, Host, Session};
use serde_json::Value;

const VERSIONS: [&str; 5] = ["0.1.0", "0.2.0", "0.3.1", "0.4.0", "1.0.0"];

fn conf(version: &str, dir: &str) -> String {
    format!(
        r#"{{"cniVersion":"{version}","name":"hl","ipam":{{"type":"host-local","dataDir":"{dir}","ranges":[[{{"subnet":"10.90.0.0/24","rangeStart":"10.90.0.10","rangeEnd":"10.90.0.12"}}],[{{"subnet":"fd00:90::/120"}}]],"routes":[{{"dst":"0.0.0.0/0"}},{{"dst":"10.91.0.0/16","gw":"10.90.0.1"}}]}}}}"#
    )
}

fn json(o: &common::Outcome) -> Value {
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}: {o:?}"))
}

/// ADD of `container` with `bin`; the result.
fn add(host: &Session, bin: &str, container: &str, config: &str) -> Value {
    json(&host.cni(&Cni::new(bin, "ADD", container), config).ok())
}

fn del(host: &Session, bin: &str, container: &str, config: &str) {
    host.cni(&Cni::new(bin, "DEL", container), config).ok();
}

/// The IPv4 addresses a result gives.
fn v4(result: &Value) -> Vec<String> {
    result["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["address"].as_str())
        .filter(|a| a.starts_with("10."))
        .map(str::to_string)
        .collect()
}

/// Lease files (named as addresses) in a network's directory.
fn leases(host: &Session, dir: &str) -> Vec<String> {
    host.ls(dir)
        .into_iter()
        .filter(|f| f.starts_with("10.") || f.starts_with("fd00"))
        .collect()
}

/// What one plugin did in [`same_as_the_reference`].
struct Run {
    first: Value,
    asked: Value,
    exhausted: String,
    /// (name, content) of every file in the network's directory.
    files: Vec<(String, String)>,
}

/// Same results and the same files from ours and the reference, in every
/// spec version the reference speaks; requested addresses; exhaustion.
#[test]
fn same_as_the_reference() {
    let host = Host::new().start();
    for v in VERSIONS {
        let mut seen: Vec<Run> = Vec::new();
        for (who, bin) in [
            ("ours", ours("host-local")),
            ("ref", reference("host-local")),
        ] {
            let dir = format!("/tmp/{who}-{v}");
            let c = conf(v, &dir);
            let first = add(&host, &bin, "c1", &c);
            let asked = json(
                &host
                    .cni(
                        &Cni::new(&bin, "ADD", "c2").args("IgnoreUnknown=1;IP=10.90.0.12"),
                        &c,
                    )
                    .ok(),
            );
            add(&host, &bin, "c3", &c);
            let exhausted = host.cni(&Cni::new(&bin, "ADD", "c4"), &c);
            let files: Vec<(String, String)> = host
                .ls(&format!("{dir}/hl"))
                .into_iter()
                .map(|f| {
                    let content = host.read(&format!("{dir}/hl/{f}"));
                    (f, content)
                })
                .collect();
            for c_id in ["c1", "c2", "c3"] {
                del(&host, &bin, c_id, &c);
            }
            assert!(leases(&host, &format!("{dir}/hl")).is_empty(), "{who} {v}");
            seen.push(Run {
                first,
                asked,
                exhausted: exhausted.stdout,
                files,
            });
        }
        let (o, r) = (&seen[0], &seen[1]);
        assert_eq!(o.first, r.first, "first ADD, {v}");
        assert_eq!(o.asked, r.asked, "requested address, {v}");
        for run in [o, r] {
            assert!(
                run.exhausted.contains("no IP addresses available"),
                "exhausted in {v}: {}",
                run.exhausted
            );
        }
        assert_eq!(o.files, r.files, "lease files, {v}");
    }
    host.finish();
}

/// One shared directory: leases written by either are honoured by the
/// other, no address is given twice, either one's DEL frees.
#[test]
fn shares_a_directory_with_the_reference() {
    let c = conf("1.0.0", "/tmp/shared")
        .replace("\"rangeEnd\":\"10.90.0.12\"", "\"rangeEnd\":\"10.90.0.40\"");
    let host = Host::new().start();
    let bins = [reference("host-local"), ours("host-local")];
    let mut addrs = Vec::new();
    for i in 0..8 {
        addrs.extend(v4(&add(&host, &bins[i % 2], &format!("c{i}"), &c)));
    }
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 8, "{addrs:?}");
    // Each frees what the other allocated.
    del(&host, &bins[1], "c0", &c);
    del(&host, &bins[0], "c1", &c);
    let left = leases(&host, "/tmp/shared/hl");
    assert_eq!(left.iter().filter(|f| f.starts_with("10.")).count(), 6);
    for i in 2..8 {
        del(&host, &bins[(i + 1) % 2], &format!("c{i}"), &c);
    }
    assert!(leases(&host, "/tmp/shared/hl")
        .iter()
        .all(|f| !f.starts_with("10.")));
    host.finish();
}

/// 32 parallel ADDs into one network: 32 distinct addresses.
#[test]
fn concurrent_allocations() {
    let c = conf("1.0.0", "/tmp/conc").replace(
        "\"rangeEnd\":\"10.90.0.12\"",
        "\"rangeEnd\":\"10.90.0.200\"",
    );
    let host = Host::new().start();
    let bin = ours("host-local");
    let mut addrs: Vec<String> = std::thread::scope(|s| {
        let calls: Vec<_> = (0..32)
            .map(|i| {
                let (host, bin, c) = (&host, &bin, &c);
                s.spawn(move || v4(&add(host, bin, &format!("c{i}"), c)))
            })
            .collect();
        calls.into_iter().flat_map(|t| t.join().unwrap()).collect()
    });
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 32, "{addrs:?}");
    for i in 0..32 {
        del(&host, &bin, &format!("c{i}"), &c);
    }
    host.finish();
}

/// `rkt gc` releases, through the CNI GC verb, a lease whose container no
/// longer exists, and keeps those of running pods.
#[test]
fn gc_releases_leaked_leases() {
    let host = Host::new().start();
    let (pod, uuid) = host.pod_in_background("default", &[], &["/bin/sleep", "30"]);
    host.write(
        "/var/lib/cni/networks/default/172.16.28.200",
        "deadbeef-dead\r\neth0",
    );
    let gc = host.rkt(&["gc"]).ok();
    assert!(
        gc.stdout
            .contains("Released 1 leaked lease(s) of network \"default\""),
        "{gc:?}"
    );
    let left: Vec<String> = host
        .ls("/var/lib/cni/networks/default")
        .into_iter()
        .filter(|f| f.starts_with("172"))
        .collect();
    assert_eq!(left.len(), 1, "the running pod keeps its lease: {left:?}");
    assert_ne!(left[0], "172.16.28.200");
    host.rkt(&["stop", &uuid]).ok();
    pod.wait_with_output().expect("rkt run");
    host.rkt(&["gc", "--grace-period=0s"]).ok();
    host.finish();
}

/// loopback: lo up with the same result as the reference, in every version.
#[test]
fn loopback_like_the_reference() {
    let host = Host::new().start();
    let lo_up = |ns: &str| {
        host.exec(&["ip", "-n", ns, "-o", "link", "show", "lo"])
            .ok()
            .stdout
            .contains(",UP")
    };
    for v in VERSIONS {
        let config = format!(r#"{{"cniVersion":"{v}","name":"lo","type":"loopback"}}"#);
        let mut results = Vec::new();
        for (who, bin) in [("ours", ours("loopback")), ("ref", reference("loopback"))] {
            let ns = format!("lo-{who}");
            let path = format!("/run/netns/{ns}");
            host.exec(&["ip", "netns", "add", &ns]).ok();
            let call = |command| Cni::new(&bin, command, "c").netns(&path).ifname("lo");
            let added = host.cni(&call("ADD"), &config).ok();
            assert!(lo_up(&ns), "{who} {v}: lo up after ADD");
            host.cni(&call("DEL"), &config).ok();
            assert!(!lo_up(&ns), "{who} {v}: lo down after DEL");
            host.exec(&["ip", "netns", "del", &ns]).ok();
            results.push(added.stdout.replace(&ns, "NS"));
        }
        let a: Value = serde_json::from_str(&results[0]).unwrap();
        // The reference prints a 1.x-shaped result labelled 0.1.0 / 0.2.0;
        // ours answers in the 0.1.0 / 0.2.0 format the spec defines.
        if matches!(v, "0.1.0" | "0.2.0") {
            assert_eq!(a["ip4"]["ip"], "127.0.0.1/8", "{v}");
            continue;
        }
        // The reference also leaves out the ips' "version" that 0.3.x /
        // 0.4.0 results carry; compare without it.
        let mut a = a;
        for ip in a["ips"].as_array_mut().into_iter().flatten() {
            ip.as_object_mut().unwrap().remove("version");
        }
        let b: Value = serde_json::from_str(&results[1]).unwrap();
        assert_eq!(a, b, "{v}");
    }
    host.finish();
}

/// Symlinks in the lease directory are never followed: a symlinked
/// `last_reserved_ip.0`, lease, lock and `.attach` pointing at canaries
/// on the throwaway host's /tmp are replaced, and the canaries keep their
/// content (no file appears where a dangling one pointed). The directory
/// then works as usual, for ours and for the reference.
#[test]
fn symlinks_in_the_lease_directory_are_not_followed() {
    let c = conf("1.0.0", "/tmp/sym");
    let host = Host::new().start();
    host.write("/tmp/canary-last", "keep\n");
    host.write("/tmp/canary-lease", "keep\n");
    host.exec(&["mkdir", "-p", "/tmp/sym/hl", "/tmp/outside"])
        .ok();
    for (target, link) in [
        ("/tmp/canary-last", "last_reserved_ip.0"),
        ("/tmp/canary-lease", "10.90.0.10"),
        ("/tmp/created-by-lock", "lock"),
        ("/tmp/outside", ".attach"),
    ] {
        host.exec(&["ln", "-s", target, &format!("/tmp/sym/hl/{link}")])
            .ok();
    }
    let ours_bin = ours("host-local");
    let ref_bin = reference("host-local");
    assert_eq!(v4(&add(&host, &ours_bin, "c1", &c)), ["10.90.0.10/24"]);
    assert_eq!(
        host.read("/tmp/canary-last"),
        "keep\n",
        "written through the symlink"
    );
    assert_eq!(
        host.read("/tmp/canary-lease"),
        "keep\n",
        "written through the symlink"
    );
    assert!(
        host.ls("/tmp/created-by-lock").is_empty(),
        "the lock symlink was followed"
    );
    assert!(
        host.ls("/tmp/outside").is_empty(),
        "a hint was written through .attach"
    );
    let links = host.exec(&["find", "/tmp/sym/hl", "-type", "l"]).ok();
    assert!(links.stdout.is_empty(), "{links:?}");
    assert_eq!(host.read("/tmp/sym/hl/10.90.0.10"), "c1\r\neth0");
    assert_eq!(v4(&add(&host, &ref_bin, "c2", &c)), ["10.90.0.11/24"]);
    del(&host, &ours_bin, "c1", &c);
    del(&host, &ref_bin, "c2", &c);
    assert!(leases(&host, "/tmp/sym/hl")
        .iter()
        .all(|f| !f.starts_with("10.")));
    host.finish();
}

/// GC (CNI 1.1) releases leases it cannot attribute: content that is not
/// `<container id>\r\n<ifname>` nor an old-style `<container id>` (here
/// not UTF-8), a dangling symlink, a directory where a lease should be;
/// it keeps the valid attachments' leases in both formats, the reference
/// format's files and every file not named as an address.
#[test]
fn gc_releases_corrupt_leases() {
    let gc = r#"{"cniVersion":"1.1.0","name":"hl","ipam":{"type":"host-local","dataDir":"/tmp/gc","subnet":"10.90.0.0/24"},"cni.dev/valid-attachments":[{"containerID":"keep","ifname":"eth0"},{"containerID":"old","ifname":"eth0"}]}"#;
    let host = Host::new().start();
    let dir = "/tmp/gc/hl";
    host.exec(&["mkdir", "-p", &format!("{dir}/10.90.0.9")])
        .ok();
    for (name, content) in [
        ("10.90.0.2", &b"keep\r\neth0"[..]),
        ("10.90.0.3", b"old"),
        ("10.90.0.4", b"gone\r\neth0"),
        ("10.90.0.5", b"\xff\xfe\r\neth0"),
        ("last_reserved_ip.0", b"10.90.0.4"),
        ("lock", b""),
        ("notalease", b""),
    ] {
        host.write(&format!("{dir}/{name}"), content);
    }
    host.exec(&["ln", "-s", "/nonexistent", &format!("{dir}/10.90.0.6")])
        .ok();
    host.cni(&Cni::new(&ours("host-local"), "GC", ""), gc).ok();
    assert_eq!(
        host.exec(&["ls", "-A", dir]).ok().lines(),
        [
            "10.90.0.2",
            "10.90.0.3",
            "last_reserved_ip.0",
            "lock",
            "notalease"
        ]
    );
    host.finish();
}

/// DEL releases by container ID and interface whatever the rest of the
/// config says: an ADD made under a valid config is undone by a DEL whose
/// ranges this plugin rejects (a gateway outside the subnet), as the
/// runtime's rollback of a failed ADD needs.
#[test]
fn del_releases_whatever_the_ranges_say() {
    let good = r#"{"cniVersion":"1.0.0","name":"hl","ipam":{"type":"host-local","dataDir":"/tmp/d","subnet":"10.90.0.0/24"}}"#;
    let bad = r#"{"cniVersion":"1.0.0","name":"hl","ipam":{"type":"host-local","dataDir":"/tmp/d","subnet":"10.90.0.0/24","gateway":"10.99.0.1","rangeStart":"10.91.0.1"}}"#;
    let host = Host::new().start();
    let bin = ours("host-local");
    add(&host, &bin, "c1", good);
    assert_eq!(leases(&host, "/tmp/d/hl").len(), 1);
    let refused = host.cni(&Cni::new(&bin, "ADD", "c2"), bad);
    assert_eq!(
        json(&refused)["code"],
        7,
        "ADD still refuses the config: {refused:?}"
    );
    del(&host, &bin, "c1", bad);
    assert!(leases(&host, "/tmp/d/hl").is_empty());
    host.finish();
}
