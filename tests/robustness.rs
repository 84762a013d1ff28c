//! Issue 6 acceptance: crash safety, gc, concurrency, bad input, confinement.

mod common;

use std::time::Duration;

use common::{ours, plugin_sets, Cni, Host, Outcome, Session};

/// Kills `rkt run` with SIGKILL at a random moment during setup or while
/// the pod runs, then runs `rkt gc`; at the end nothing is left, every
/// address is free and a fresh pod starts. Bundled plugins only: the
/// reference ptp leaks its per-pod iptables chain when killed mid-ADD (its
/// DEL finds the chain through the pod's address, which may not exist yet).
#[test]
fn fault_injection_sigkill_then_gc() {
    for (set, flags) in plugin_sets().into_iter().filter(|(s, _)| *s == "bundled") {
        let host = Host::new().global(flags).start();
        let img = host.image();
        // A fixed pseudo-random sequence of kill moments, 0-79 ms.
        let mut seed: u32 = 42;
        let mut abandoned = 0;
        for i in 0..100 {
            let run = host.rkt_spawn(&[
                "run",
                "--net=default",
                &img,
                "--exec=/bin/sleep",
                "--",
                "0.05",
            ]);
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            std::thread::sleep(Duration::from_millis(u64::from(seed >> 16) % 80));
            common::kill_spawned(run);
            let gc = host.rkt(&["gc", "--grace-period=0s"]);
            assert_eq!(gc.code, 0, "{set}: gc after kill {i}: {gc:?}");
            // How many runs the kill caught with a pod set up (gc took them over).
            abandoned += gc.stdout.matches("its runtime had died").count();
        }
        eprintln!("{set}: the kills caught {abandoned} pods set up");
        assert!(
            abandoned >= 10,
            "{set}: the kills caught only {abandoned} pods"
        );
        // Pods whose first process was still dying during the last gc.
        for _ in 0..50 {
            host.rkt(&["gc", "--grace-period=0s"]);
            if host.ls("/var/lib/rkt/pods/run").is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(host.ls("/var/lib/rkt/pods/run").is_empty(), "{set}");
        let leases = host.ls("/var/lib/cni/networks/default");
        assert!(
            !leases.iter().any(|l| l.starts_with("172")),
            "{set}: every address is free again: {leases:?}"
        );
        let fresh = host
            .in_pod("default", &["/bin/ip", "-o", "-4", "addr", "show", "eth0"])
            .ok();
        assert!(
            common::ipv4_addrs(&fresh.stdout)[0]
                .cidr
                .starts_with("172.16.28."),
            "{set}: {fresh:?}"
        );
        host.rkt(&["gc", "--grace-period=0s"]).ok();
        host.finish();
    }
}

/// 32 concurrent `rkt run` on the default network: all succeed with 32
/// distinct addresses, nothing left after they exit.
#[test]
fn concurrent_runs() {
    for (set, flags) in plugin_sets() {
        let host = Host::new().global(flags).start();
        let img = host.image();
        let runs: Vec<_> = (0..32)
            .map(|_| {
                host.rkt_spawn(&[
                    "run",
                    "--net=default",
                    &img,
                    "--exec=/bin/ip",
                    "--",
                    "-o",
                    "-4",
                    "addr",
                    "show",
                    "eth0",
                ])
            })
            .collect();
        let mut addrs = Vec::new();
        for run in runs {
            let out = run.wait_with_output().expect("rkt run");
            assert!(
                out.status.success(),
                "{set}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            addrs.extend(common::ipv4_addrs(&String::from_utf8_lossy(&out.stdout)));
        }
        let mut cidrs: Vec<&str> = addrs.iter().map(|a| a.cidr.as_str()).collect();
        cidrs.sort();
        cidrs.dedup();
        assert_eq!(cidrs.len(), 32, "{set}: {cidrs:?}");
        assert!(cidrs.iter().all(|c| c.starts_with("172.16.28.")), "{set}");
        host.rkt(&["gc", "--grace-period=0s"]).ok();
        host.finish();
    }
}
/// One bad input: files and commands that set it up, a pod holding an
/// address when the case needs one, `rkt run`'s arguments (the busybox
/// image and `--exec=/bin/true` follow unless `own_image`), and what the
/// one error line must say.
struct Case {
    name: &'static str,
    confs: &'static [(&'static str, &'static str)],
    prep: &'static [&'static [&'static str]],
    holder: Option<(&'static str, &'static str)>,
    args: &'static [&'static str],
    own_image: bool,
    want: &'static [&'static str],
}

const fn case(
    name: &'static str,
    args: &'static [&'static str],
    want: &'static [&'static str],
) -> Case {
    Case {
        name,
        confs: &[],
        prep: &[],
        holder: None,
        args,
        own_image: false,
        want,
    }
}

const fn conf(mut c: Case, confs: &'static [(&'static str, &'static str)]) -> Case {
    c.confs = confs;
    c
}

/// Every bad input: a non-zero exit, one line naming the file, network,
/// flag or value, and no leftovers (the harness checks).
#[test]
fn bad_input_table() {
    let cases = [
        conf(
            case(
                "malformed JSON",
                &["--net=default"],
                &["/etc/rkt/net.d/bad.conf", "malformed JSON"],
            ),
            &[("bad.conf", "{")],
        ),
        conf(
            case(
                "missing name",
                &["--net=default"],
                &["noname.conf", "missing \"name\""],
            ),
            &[("noname.conf", r#"{"type":"ptp"}"#)],
        ),
        conf(
            case(
                "missing type",
                &["--net=x"],
                &["notype.conf", "missing \"type\""],
            ),
            &[("notype.conf", r#"{"name":"x"}"#)],
        ),
        conf(
            case(
                "unknown plugin type",
                &["--net=u"],
                &["network \"u\"", "plugin \"nosuch\" not found"],
            ),
            &[(
                "u.conf",
                r#"{"cniVersion":"1.0.0","name":"u","type":"nosuch"}"#,
            )],
        ),
        Case {
            prep: &[
                &["mkdir", "-p", "/tmp/p"],
                &["touch", "/tmp/p/notexec"],
                &["chmod", "644", "/tmp/p/notexec"],
            ],
            ..conf(
                case(
                    "plugin not executable",
                    &["--net-plugin-path=/tmp/p", "--net=ne"],
                    &["network \"ne\"", "/tmp/p/notexec is not executable"],
                ),
                &[(
                    "ne.conf",
                    r#"{"cniVersion":"1.0.0","name":"ne","type":"notexec"}"#,
                )],
            )
        },
        conf(
            case(
                "unsupported cniVersion",
                &["--net=default"],
                &["v.conf", "unsupported cniVersion \"9.9.9\""],
            ),
            &[(
                "v.conf",
                r#"{"cniVersion":"9.9.9","name":"v","type":"ptp"}"#,
            )],
        ),
        conf(
            case(
                "subnet host bits",
                &["--net=hb"],
                &["network \"hb\"", "host bits set", "10.70.0.0/24"],
            ),
            &[(
                "hb.conf",
                r#"{"cniVersion":"1.0.0","name":"hb","type":"ptp","ipam":{"type":"host-local","subnet":"10.70.0.1/24"}}"#,
            )],
        ),
        conf(
            case(
                "subnet too small",
                &["--net=ts"],
                &["network \"ts\"", "too small"],
            ),
            &[(
                "ts.conf",
                r#"{"cniVersion":"1.0.0","name":"ts","type":"ptp","ipam":{"type":"host-local","subnet":"10.71.0.0/31"}}"#,
            )],
        ),
        conf(
            case(
                "overlapping ranges",
                &["--net=ov"],
                &["network \"ov\"", "overlap"],
            ),
            &[(
                "ov.conf",
                r#"{"cniVersion":"1.0.0","name":"ov","type":"ptp","ipam":{"type":"host-local","ranges":[[{"subnet":"10.72.0.0/16"}],[{"subnet":"10.72.1.0/24"}]]}}"#,
            )],
        ),
        conf(
            case(
                "reversed range",
                &["--net=rs"],
                &[
                    "network \"rs\"",
                    "rangeStart 10.79.0.200 is after rangeEnd 10.79.0.100",
                ],
            ),
            &[(
                "rs.conf",
                r#"{"cniVersion":"1.0.0","name":"rs","type":"ptp","ipam":{"type":"host-local","subnet":"10.79.0.0/24","rangeStart":"10.79.0.200","rangeEnd":"10.79.0.100"}}"#,
            )],
        ),
        Case {
            holder: Some(("ex", "/var/lib/cni/networks/ex/10.73.0.5")),
            ..conf(
                case(
                    "exhausted range",
                    &["--net=ex"],
                    &["network \"ex\"", "plugin ptp", "10.73.0.5"],
                ),
                &[(
                    "ex.conf",
                    r#"{"cniVersion":"1.0.0","name":"ex","type":"ptp","ipam":{"type":"host-local","subnet":"10.73.0.0/24","rangeStart":"10.73.0.5","rangeEnd":"10.73.0.5"}}"#,
                )],
            )
        },
        conf(
            case(
                "requested IP outside the range",
                &["--net=ro:IP=10.75.0.9"],
                &["network \"ro\"", "plugin ptp", "10.75.0.9"],
            ),
            &[(
                "ro.conf",
                r#"{"cniVersion":"1.0.0","name":"ro","type":"ptp","ipam":{"type":"host-local","subnet":"10.74.0.0/24"}}"#,
            )],
        ),
        Case {
            holder: Some(("rt", "/var/lib/cni/networks/rt/10.76.0.2")),
            ..conf(
                case(
                    "requested IP taken",
                    &["--net=rt:IP=10.76.0.2"],
                    &["network \"rt\"", "plugin ptp", "10.76.0.2"],
                ),
                &[(
                    "rt.conf",
                    r#"{"cniVersion":"1.0.0","name":"rt","type":"ptp","ipam":{"type":"host-local","subnet":"10.76.0.0/24"}}"#,
                )],
            )
        },
        case(
            "malformed --net args",
            &["--net=default:IP"],
            &["--net=default:IP", "KEY=VALUE"],
        ),
        case(
            "--net args key twice",
            &["--net=default:IP=172.16.28.9;IP=172.16.28.10"],
            &[
                "--net=default:IP=172.16.28.9;IP=172.16.28.10",
                "key \"IP\" is given twice",
            ],
        ),
        conf(
            case(
                "duplicate network names",
                &["--net=dup"],
                &["\"dup\" is defined twice", "a.conf", "b.conf"],
            ),
            &[
                ("a.conf", r#"{"name":"dup","type":"ptp"}"#),
                ("b.conf", r#"{"name":"dup","type":"bridge"}"#),
            ],
        ),
        case(
            "unknown network name",
            &["--net=nosuchnet"],
            &["unknown network \"nosuchnet\"", "default-restricted"],
        ),
        conf(
            case(
                "network name escaping",
                &["--net=default"],
                &["esc.conf", "network name \"../../etc\" is invalid"],
            ),
            &[("esc.conf", r#"{"name":"../../etc","type":"ptp"}"#)],
        ),
        case(
            "network selected escaping",
            &["--net=../x"],
            &["--net=../x", "not a valid network name"],
        ),
        Case {
            prep: &[
                &[
                    "ip", "link", "add", "lan0", "type", "veth", "peer", "name", "lan1",
                ],
                &["ip", "addr", "add", "10.80.0.1/16", "dev", "lan0"],
                &["ip", "link", "set", "lan0", "up"],
            ],
            ..conf(
                case(
                    "subnet overlaps a host route",
                    &["--net=hr"],
                    &[
                        "network \"hr\"",
                        "10.80.1.0/24",
                        "overlaps the host route 10.80.0.0/16 dev lan0",
                    ],
                ),
                &[(
                    "hr.conf",
                    r#"{"cniVersion":"1.0.0","name":"hr","type":"ptp","ipam":{"type":"host-local","subnet":"10.80.1.0/24"}}"#,
                )],
            )
        },
        Case {
            own_image: true,
            ..case(
                "missing image",
                &["--net=default", "--exec=/bin/true", "/nonexistent/image"],
                &["/nonexistent/image"],
            )
        },
        Case {
            own_image: true,
            prep: &[
                &["mkdir", "-p", "/tmp/ci/blobs/sha256"],
                &[
                    "sh",
                    "-c",
                    "echo '{' > /tmp/ci/index.json && echo '{}' > /tmp/ci/oci-layout",
                ],
            ],
            ..case(
                "corrupt image",
                &["--net=default", "--exec=/bin/true", "/tmp/ci"],
                &["/tmp/ci", "index.json", "corrupt"],
            )
        },
    ];
    for (set, flags) in plugin_sets() {
        let host = Host::new().global(flags).start();
        let img = host.image();
        for c in &cases {
            for (file, json) in c.confs {
                host.net_conf(file, json);
            }
            for cmd in c.prep {
                host.exec(cmd).ok();
            }
            let holder = c.holder.map(|(net, lease)| {
                let net = format!("--net={net}");
                let pod = host.rkt_spawn(&["run", &net, &img, "--exec=/bin/sleep", "--", "1.5"]);
                for _ in 0..50 {
                    if host.exec(&["test", "-e", lease]).code == 0 {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                pod
            });
            let mut args = vec!["run"];
            args.extend(c.args);
            if !c.own_image {
                args.extend([img.as_str(), "--exec=/bin/true"]);
            }
            let o = host.rkt(&args);
            assert_ne!(o.code, 0, "{set}: {} must fail", c.name);
            assert_eq!(
                o.stderr.lines().count(),
                1,
                "{set}: {}: one line: {o:?}",
                c.name
            );
            for w in c.want {
                assert!(
                    o.stderr.contains(w),
                    "{set}: {}: {:?} should contain {w:?}",
                    c.name,
                    o.stderr
                );
            }
            assert!(!o.stderr.contains("panicked"), "{set}: {}: {o:?}", c.name);
            if let Some(pod) = holder {
                pod.wait_with_output().expect("the holding pod");
            }
            host.exec(&[
                "sh",
                "-c",
                "rm -f /etc/rkt/net.d/*; ip link del lan0 2>/dev/null || true",
            ])
            .ok();
        }
        host.rkt(&["gc", "--grace-period=0s"]).ok();
        assert_eq!(host.list_json(), serde_json::json!([]), "{set}");
        host.finish();
    }
}
/// A plugin that hangs is killed after the timeout and the pod rolled back.
#[test]
fn hanging_plugin_is_killed() {
    let host = Host::new().start();
    let path = host.fake_plugin(
        "hang",
        "#!/bin/sh\nif [ \"$CNI_COMMAND\" = ADD ]; then sleep 100 & wait; fi\nexit 0\n",
    );
    host.net_conf(
        "h.conf",
        r#"{"cniVersion":"1.0.0","name":"h","type":"hang"}"#,
    );
    let img = host.image();
    let start = std::time::Instant::now();
    let o = host.rkt(&[
        &path,
        "--net-plugin-timeout=1s",
        "run",
        "--net=default,h",
        &img,
        "--exec=/bin/true",
    ]);
    killed_at_the_timeout(&host, &o, start.elapsed(), "h");
    assert_eq!(host.list_json(), serde_json::json!([]));
    host.finish();
}

/// A run whose plugin for `network` hung: refused naming the network and
/// the 1 s timeout, soon after it, and the plugin's children are gone.
fn killed_at_the_timeout(host: &Session, o: &Outcome, took: Duration, network: &str) {
    let err = o.fails_with(254, &format!("network \"{network}\""));
    assert!(
        err.contains("did not answer within 1.0s"),
        "{network}: {err}"
    );
    assert!(
        took.as_millis() < 5000,
        "{network}: killed after the timeout, not after {took:?}"
    );
    assert_ne!(
        host.exec(&["pgrep", "sleep"]).code,
        0,
        "{network}: the plugin's children die with it"
    );
}

/// The plugin timeout covers the whole call: a plugin that never reads a
/// config larger than the pipe (the write used to block forever), and one
/// that closes its output and goes on running (the wait for its exit used
/// to block forever), are killed with their children after the timeout
/// and the pod rolled back. `timeout 30` only bounds the test itself.
#[test]
fn timeout_covers_writing_the_config_and_the_exit() {
    let host = Host::new().start();
    host.fake_plugin(
        "nostdin",
        "#!/bin/sh\nif [ \"$CNI_COMMAND\" = ADD ]; then sleep 100 & wait; fi\nexit 0\n",
    );
    let path = host.fake_plugin(
        "closes",
        "#!/bin/sh\nif [ \"$CNI_COMMAND\" = ADD ]; then exec </dev/null >/dev/null 2>&1; sleep 100 & wait; fi\nexit 0\n",
    );
    let pad = "x".repeat(300_000);
    let img = host.image();
    for t in ["nostdin", "closes"] {
        host.net_conf(
            &format!("{t}.conf"),
            &format!(r#"{{"cniVersion":"1.0.0","name":"{t}","type":"{t}","pad":"{pad}"}}"#),
        );
        let net = format!("--net={t}");
        let start = std::time::Instant::now();
        // `timeout 30` only bounds the test itself.
        let bin = common::rkt_bin().display().to_string();
        let o = host.exec(&[
            "timeout",
            "30",
            &bin,
            &path,
            "--net-plugin-timeout=1s",
            "run",
            &net,
            &img,
            "--exec=/bin/true",
        ]);
        killed_at_the_timeout(&host, &o, start.elapsed(), t);
    }
    assert_eq!(host.list_json(), serde_json::json!([]));
    host.finish();
}

/// `rkt gc` leaves alone a pod whose app has exited but whose `rkt run`
/// is still tearing it down (a slow DEL here): the runtime finishes and
/// files the pod under exited-garbage itself.
#[test]
fn gc_spares_a_pod_being_torn_down() {
    let host = Host::new().start();
    let path = host.fake_plugin(
        "slowdel",
        "#!/bin/sh\ncat >/dev/null\nif [ \"$CNI_COMMAND\" = DEL ]; then touch /tmp/in-del; sleep 1.5; fi\nif [ \"$CNI_COMMAND\" = ADD ]; then echo '{\"cniVersion\":\"1.0.0\"}'; fi\nexit 0\n",
    );
    host.net_conf(
        "s.conf",
        r#"{"cniVersion":"1.0.0","name":"s","type":"slowdel"}"#,
    );
    let img = host.image();
    let run = host.rkt_spawn(&[&path, "run", "--net=default,s", &img, "--exec=/bin/true"]);
    let in_del = || host.exec(&["test", "-e", "/tmp/in-del"]).code == 0;
    for _ in 0..100 {
        if in_del() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(in_del(), "the slow DEL never started");
    host.rkt(&["gc", "--grace-period=0s"]).ok();
    assert_eq!(
        host.ls("/var/lib/rkt/pods/run").len(),
        1,
        "gc took the pod from its runtime"
    );
    let out = run.wait_with_output().expect("rkt run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(host.ls("/var/lib/rkt/pods/exited-garbage").len(), 1);
    host.rkt(&["gc", "--grace-period=0s"]).ok();
    host.finish();
}

/// The app cannot reconfigure the pod's network (no CAP_NET_ADMIN by
/// default); `--caps-retain` gives it back.
#[test]
fn app_capabilities() {
    let host = Host::new().start();
    let o = host
        .in_pod(
            "default",
            &["/bin/sh", "-c", r#"ip addr add 10.9.9.9/32 dev lo 2>&1; echo "ADDR_RC=$?"; ip link set eth0 down 2>&1; echo "DOWN_RC=$?"; echo "CAPEFF=$(grep CapEff /proc/self/status | cut -f2)""#],
        )
        .ok();
    assert!(o.stdout.contains("Operation not permitted"), "{o:?}");
    assert_ne!(o.value("ADDR_RC").as_deref(), Some("0"));
    assert_ne!(o.value("DOWN_RC").as_deref(), Some("0"));
    let capeff = u64::from_str_radix(&o.value("CAPEFF").unwrap(), 16).unwrap();
    for (bit, name) in [(12, "NET_ADMIN"), (21, "SYS_ADMIN"), (16, "SYS_MODULE")] {
        assert_eq!(
            capeff & (1 << bit),
            0,
            "{name} must not be in the default set"
        );
    }
    host.in_pod_with(
        "default",
        &["--caps-retain=CAP_NET_ADMIN"],
        &["/bin/ip", "addr", "add", "10.9.9.9/32", "dev", "lo"],
    )
    .ok();
    let noraw = host.in_pod_with(
        "default",
        &["--caps-remove=CAP_NET_RAW"],
        &["/bin/ping", "-c1", "-W1", "172.16.28.1"],
    );
    assert_ne!(noraw.code, 0, "{noraw:?}");
    host.in_pod_with("default", &["--caps-retain=CAP_BOGUS"], &["/bin/true"])
        .fails_with(254, "--caps-retain: unknown capability \"CAP_BOGUS\"");
    let modes = host
        .exec(&["sh", "-c", "stat -c %A /var/lib/rkt/pods/exited-garbage/* | head -1; find /var/lib/rkt/pods -name pod.json -exec stat -c %A {} + | head -1"])
        .ok();
    assert_eq!(modes.lines(), ["drwx------", "-rw-------"]);
    host.rkt(&["gc", "--grace-period=0s"]).ok();
    host.finish();
}
/// A pod on a ptp network cannot send with a source address other than its
/// own: the host drops the forged packets before they reach it (bundled
/// ptp sets a strict reverse-path filter on its host veth).
#[test]
fn forged_source_does_not_reach_the_host() {
    let host = Host::new().start();
    // Counters on the host's input: a forged source and the pod's real one.
    host.exec_input(
        &["nft", "-f", "-"],
        b"table inet spoof {
  chain in {
    type filter hook input priority 0;
    ip saddr 10.123.0.9 icmp type echo-request counter
    ip saddr 172.16.28.0/24 icmp type echo-request counter
  }
}
",
    )
    .ok();
    host.in_pod_with(
        "default",
        &["--caps-retain=CAP_NET_ADMIN,CAP_NET_RAW"],
        &[
            "/bin/sh",
            "-c",
            "ip addr add 10.123.0.9/32 dev eth0; ping -c1 -W1 172.16.28.1 >/dev/null; ping -c2 -W1 -I 10.123.0.9 172.16.28.1 >/dev/null; true",
        ],
    )
    .ok();
    let counters = host
        .exec(&["nft", "list", "table", "inet", "spoof"])
        .ok()
        .stdout;
    host.exec(&["nft", "delete", "table", "inet", "spoof"]).ok();
    let packets = |saddr: &str| -> String {
        let line = counters
            .lines()
            .find(|l| l.contains(&format!("saddr {saddr}")))
            .unwrap_or_else(|| panic!("no counter for {saddr}: {counters}"));
        let after = line.split("packets ").nth(1).unwrap_or_default();
        after
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(
        packets("172.16.28.0/24"),
        "1",
        "the real source reaches the host: {counters}"
    );
    assert_eq!(
        packets("10.123.0.9"),
        "0",
        "forged packets are dropped: {counters}"
    );
    host.rkt(&["gc", "--grace-period=0s"]).ok();
    host.finish();
}

/// A soak: 1000 run/exit cycles on the default network leave nothing
/// behind (the harness checks), every address is free again, and the last
/// 100 cycles are not slower than the first 100 (bundled plugins).
#[test]
fn soak_thousand_cycles() {
    let host = Host::new().start();
    let cycles = |n: usize| {
        let start = std::time::Instant::now();
        for _ in 0..n {
            host.in_pod("default", &["/bin/true"]).ok();
        }
        start.elapsed()
    };
    let first = cycles(100);
    cycles(800);
    let last = cycles(100);
    assert_eq!(host.pods("exited").len(), 1000);
    let leases = host.ls("/var/lib/cni/networks/default");
    assert!(!leases.iter().any(|l| l.starts_with("172")), "{leases:?}");
    host.rkt(&["gc", "--grace-period=0s"]).ok();
    assert_eq!(host.list_json(), serde_json::json!([]));
    // Not slower: within noise of the first 100 (rkt list of 1000 pods etc.
    // is not in the timed loops).
    assert!(
        last.as_secs_f64() < first.as_secs_f64() * 1.5,
        "first 100 cycles {first:?}, last 100 {last:?}"
    );
    println!("soak: first 100 cycles {first:?}, last 100 {last:?}");
    host.finish();
}

/// The bundled plugins refuse a container ID, interface or network name
/// that would escape a directory, and CNI_ARGS giving a key twice, with the
/// spec's codes, and create nothing.
#[test]
fn plugins_refuse_escaping_names() {
    let host = Host::new().start();
    host.exec(&["ip", "netns", "add", "esc"]).ok();
    let c = r#"{"cniVersion":"1.0.0","name":"esc","type":"ptp","ipam":{"type":"host-local","subnet":"10.88.0.0/24"}}"#;
    let bad = r#"{"cniVersion":"1.0.0","name":"../../etc","type":"ptp","ipam":{"type":"host-local","subnet":"10.88.0.0/24"}}"#;
    for p in ["ptp", "host-local"] {
        let bin = ours(p);
        let answer = |call: Cni, config: &str| -> serde_json::Value {
            let o = host.cni(&call.netns("/run/netns/esc"), config);
            assert_ne!(o.code, 0, "{p}: {o:?}");
            serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{p}: {e}: {o:?}"))
        };
        let id = answer(Cni::new(&bin, "ADD", "../../tmp/x"), c);
        assert_eq!(id["code"], 4, "{p}: {id}");
        assert!(
            id["msg"].as_str().unwrap().contains("CNI_CONTAINERID"),
            "{p}: {id}"
        );
        let ifname = answer(Cni::new(&bin, "ADD", "ok").ifname("../x"), c);
        assert_eq!(ifname["code"], 4, "{p}: {ifname}");
        let net = answer(Cni::new(&bin, "ADD", "ok"), bad);
        assert_eq!(net["code"], 7, "{p}: {net}");
        let args = answer(
            Cni::new(&bin, "ADD", "ok").args("IgnoreUnknown=1;IP=10.88.0.5;IP=10.88.0.6"),
            c,
        );
        assert_eq!(args["code"], 4, "{p}: {args}");
        assert!(
            args["msg"]
                .as_str()
                .unwrap()
                .contains("CNI_ARGS: key \"IP\" is given twice"),
            "{p}: {args}"
        );
    }
    assert!(
        host.ls("/var/lib/cni/networks").is_empty(),
        "nothing created"
    );
    host.exec(&["ip", "netns", "del", "esc"]).ok();
    host.finish();
}

/// An `ipam.type` that is a path (absolute, or climbing out of CNI_PATH
/// with `..`) is never executed: `rkt run` refuses the config in one line
/// naming the file, and the bundled main plugins called directly refuse it
/// with code 7. The canary plugin at the path would leave /tmp/PWNED.
#[test]
fn ipam_type_path_is_never_executed() {
    let host = Host::new().start();
    host.write(
        "/tmp/evil",
        "#!/bin/sh\ntouch /tmp/PWNED\necho '{\"cniVersion\":\"1.0.0\",\"ips\":[{\"address\":\"10.5.0.2/24\",\"gateway\":\"10.5.0.1\"}]}'\n",
    );
    host.exec(&["chmod", "+x", "/tmp/evil"]).ok();
    host.exec(&["ip", "netns", "add", "x"]).ok();
    host.exec(&[
        "ip", "link", "add", "m0", "type", "veth", "peer", "name", "m1",
    ])
    .ok();
    for t in ["/tmp/evil", "../../../../../../../../../../../../tmp/evil"] {
        let c = format!(
            r#"{{"cniVersion":"1.0.0","name":"e","type":"ptp","master":"m0","ipam":{{"type":"{t}","subnet":"10.5.0.0/24"}}}}"#
        );
        for p in ["ptp", "bridge", "macvlan"] {
            let bin = ours(p);
            let o = host.cni(&Cni::new(&bin, "ADD", "abc"), &c);
            let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
            assert_eq!(v["code"], 7, "{p} {t}: {v}");
            assert!(
                v["msg"].as_str().unwrap().contains("IPAM type"),
                "{p} {t}: {v}"
            );
        }
        host.net_conf("e.conf", &c);
        let o = host.in_pod("e", &["/bin/true"]);
        let err = o.fails_with(254, "/etc/rkt/net.d/e.conf");
        assert_eq!(o.stderr.lines().count(), 1, "{o:?}");
        assert!(
            err.contains("IPAM type") && err.contains("is invalid"),
            "{err}"
        );
    }
    assert_ne!(
        host.exec(&["test", "-e", "/tmp/PWNED"]).code,
        0,
        "the canary ran"
    );
    host.exec(&["ip", "netns", "del", "x"]).ok();
    host.exec(&["ip", "link", "del", "m0"]).ok();
    assert_eq!(host.list_json(), serde_json::json!([]));
    host.finish();
}

/// What is in `pods/run/` but is not a pod (a file, a directory not named
/// as a UUID, a UUID-named directory without pod.json, a symlink to a real
/// pod) is not listed, not found by `status`, and never acted on by `gc`:
/// each stray names a canary network namespace in a `netns` file, as a pod
/// does, and gc used to tear those down and delete the strays. A real pod
/// next to them is listed and collected as before.
#[test]
fn stray_entries_are_not_pods() {
    let host = Host::new().start();
    host.in_pod("none", &["/bin/true"]).ok();
    let run = "/var/lib/rkt/pods/run";
    let u = "0b5e4c2e-1d8f-4d6a-9c1e-2f3a4b5c6d7e";
    for c in ["canary1", "canary2", "canary3"] {
        host.exec(&["ip", "netns", "add", c]).ok();
    }
    host.write(&format!("{run}/somefile"), "junk\n");
    host.write(&format!("{run}/notauuid/netns"), "/run/netns/canary1");
    host.write(&format!("{run}/{u}/netns"), "/run/netns/canary2");
    host.write("/tmp/elsewhere/pod/netns", "/run/netns/canary3");
    host.exec(&[
        "sh",
        "-c",
        "cp /var/lib/rkt/pods/exited-garbage/*/pod.json /tmp/elsewhere/pod/",
    ])
    .ok();
    host.exec(&[
        "ln",
        "-s",
        "/tmp/elsewhere/pod",
        &format!("{run}/9d1f2e3c-4b5a-4c6d-8e7f-0a1b2c3d4e5f"),
    ])
    .ok();
    let listed = host.rkt(&["list", "--no-legend"]).ok();
    assert_eq!(listed.lines().len(), 1, "{listed:?}");
    assert_eq!(host.list_json().as_array().unwrap().len(), 1);
    host.rkt(&["status", "0b5e4c2e"])
        .fails_with(254, "no pod with UUID 0b5e4c2e");
    assert_ne!(host.rkt(&["rm", "0b5e4c2e"]).code, 0);
    let gc = host.rkt(&["gc", "--grace-period=0s"]).ok();
    assert!(gc.stdout.contains("Garbage collected pod"), "{gc:?}");
    assert_eq!(gc.stderr.matches("not a pod").count(), 4, "{gc:?}");
    let canaries = host.ls("/run/netns");
    assert_eq!(
        canaries.iter().filter(|n| n.starts_with("canary")).count(),
        3,
        "gc tore down a stray's namespace: {canaries:?}"
    );
    assert_eq!(host.ls(run).len(), 4, "gc moved or removed a stray");
    assert_eq!(host.list_json(), serde_json::json!([]));
    for c in ["canary1", "canary2", "canary3"] {
        host.exec(&["ip", "netns", "del", c]).ok();
    }
    host.finish();
}

/// An IPAM error only the plugin detects (a gateway outside the subnet,
/// which the runtime's preflight does not check): `rkt run` fails in one
/// line, its rollback DEL succeeds (host-local releases by container ID
/// whatever the ranges say), no pod is left, and `rkt gc` succeeds while
/// the config stays. Both used to fail, and every later `rkt rm`/`gc` too.
#[test]
fn ipam_error_only_the_plugin_detects_rolls_back() {
    let host = Host::new().start();
    host.net_conf(
        "gw.conf",
        r#"{"cniVersion":"1.1.0","name":"gw","type":"ptp","ipam":{"type":"host-local","subnet":"10.77.0.0/24","gateway":"10.78.0.1"}}"#,
    );
    let o = host.in_pod("gw", &["/bin/true"]);
    let err = o.fails_with(254, "network \"gw\"");
    assert_eq!(o.stderr.lines().count(), 1, "{o:?}");
    assert!(err.contains("gateway 10.78.0.1 is not in subnet"), "{err}");
    assert!(!err.contains("rolling back"), "the rollback failed: {err}");
    assert_eq!(host.list_json(), serde_json::json!([]));
    for _ in 0..2 {
        host.rkt(&["gc", "--grace-period=0s"]).ok();
    }
    host.in_pod("default", &["/bin/true"]).ok();
    host.rkt(&["gc", "--grace-period=0s"]).ok();
    host.finish();
}
/// A plugin that rejects its config on DEL (CNI code 7) can never be
/// DEL'd with the config the pod was attached with; the runtime does not
/// wedge the pod on it: a failed ADD's rollback says so and leaves no pod,
/// a pod whose runtime died is torn down and collected by `rkt gc` with a
/// warning (gc used to keep it and exit 254 forever), and `rkt gc`'s GC
/// call rejected the same way is a warning, not a failure.
#[test]
fn del_rejecting_the_config_does_not_wedge_the_pod() {
    let host = Host::new().start();
    let path = host.fake_plugin(
        "rej",
        r#"#!/bin/sh
cat >/dev/null
case "$CNI_COMMAND" in
  VERSION) echo '{"cniVersion":"1.1.0","supportedVersions":["1.0.0","1.1.0"]}';;
  ADD) if [ -e /tmp/reject-add ]; then echo '{"cniVersion":"1.1.0","code":7,"msg":"rej: field \"x\" is invalid"}'; exit 1; fi
       echo '{"cniVersion":"1.1.0"}';;
  *) echo '{"cniVersion":"1.1.0","code":7,"msg":"rej: field \"x\" is invalid"}'; exit 1;;
esac
"#,
    );
    host.net_conf(
        "rej.conf",
        r#"{"cniVersion":"1.1.0","name":"rej","type":"rej"}"#,
    );
    let img = host.image();
    // A failed ADD: rolled back as far as it can be, no pod left.
    host.write("/tmp/reject-add", "");
    let o = host.rkt(&[&path, "run", "--net=default,rej", &img, "--exec=/bin/true"]);
    let err = o.fails_with(254, "network \"rej\" (plugin rej, ADD)");
    assert_eq!(o.stderr.lines().count(), 1, "{o:?}");
    assert!(
        err.contains("rolling back: network \"rej\" (plugin rej, DEL)")
            && err.contains("rejects this network's config"),
        "{err}"
    );
    assert!(!err.contains("also failed"), "{err}");
    assert_eq!(host.list_json(), serde_json::json!([]));
    host.exec(&["rm", "/tmp/reject-add"]).ok();
    // A pod whose runtime dies: gc tears it down and collects it.
    let run = host.rkt_spawn(&[
        &path,
        "run",
        "--net=default,rej",
        &img,
        "--exec=/bin/sleep",
        "--",
        "30",
    ]);
    host.wait_running(1);
    common::kill_spawned(run);
    // The pod's init dies with its runtime (PDEATHSIG), asynchronously.
    for _ in 0..100 {
        if host.pods("running").is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let gc = host.rkt(&[&path, "gc", "--grace-period=0s"]).ok();
    assert!(
        gc.stderr
            .contains("warning: network \"rej\" (plugin rej, DEL)")
            && gc.stderr.contains("may remain"),
        "{gc:?}"
    );
    assert!(
        gc.stderr
            .contains("warning: network \"rej\" (plugin rej, GC)"),
        "{gc:?}"
    );
    assert!(gc.stdout.contains("Garbage collected pod"), "{gc:?}");
    host.rkt(&[&path, "gc", "--grace-period=0s"]).ok();
    assert_eq!(host.list_json(), serde_json::json!([]));
    host.finish();
}

/// A DEL that keeps failing with an error that does not say the config is
/// invalid (the reference plugins answer 999 for a config they cannot read,
/// here a numeric `dataDir`, which the runtime does not check):
/// `rkt gc` keeps the pod for a retry instead of dropping it silently,
/// `rkt rm` says what failed and how to remove the pod anyway, and
/// `rkt rm --force` removes it with a warning.
#[test]
fn rm_force_removes_a_pod_whose_del_keeps_failing() {
    let host = Host::new().global("--net-plugin-path=/usr/lib/cni").start();
    host.net_conf(
        "rs.conf",
        r#"{"cniVersion":"1.0.0","name":"rs","type":"ptp","ipam":{"type":"host-local","subnet":"10.79.0.0/24","dataDir":5}}"#,
    );
    host.in_pod("rs", &["/bin/true"])
        .fails_with(254, "rolling back also failed");
    let kept = host.list_json();
    assert_eq!(kept.as_array().unwrap().len(), 1, "{kept}");
    let uuid = kept[0]["name"].as_str().unwrap().to_string();
    // gc does not drop a pod whose networks are not released: it retries
    // the DEL, keeps the pod and says how to remove it anyway.
    let gc = host.rkt(&["gc", "--grace-period=0s"]);
    assert_eq!(gc.code, 254, "{gc:?}");
    assert!(gc.stderr.contains("rkt rm --force"), "{gc:?}");
    assert_eq!(host.list_json().as_array().unwrap().len(), 1);
    let rm = host
        .rkt(&["rm", &uuid])
        .fails_with(254, "network \"rs\" (plugin ptp, DEL)");
    assert!(rm.contains("rkt rm --force"), "{rm}");
    let forced = host.rkt(&["rm", "--force", &uuid]).ok();
    assert!(forced.stdout.contains(&uuid), "{forced:?}");
    assert!(
        forced.stderr.contains("warning") && forced.stderr.contains("removed anyway (--force)"),
        "{forced:?}"
    );
    assert_eq!(host.list_json(), serde_json::json!([]));
    host.rkt(&["gc", "--grace-period=0s"]).ok();
    host.finish();
}
