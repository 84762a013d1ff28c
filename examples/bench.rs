//! The end-to-end benchmark (issue 7): `rkt run` latency with the bundled
//! and the reference plugins and without networking, a per-phase breakdown,
//! 1000 pods attached at once to one ptp network with ipMasq, and peak
//! memory. Prints a markdown table and writes `bench-results.json`.
//!
//! Run as root from the repository: `cargo run --release --example bench`
//! (`BENCH_N` runs per figure, default 30). It re-executes itself inside a
//! throwaway host (new mount, network and PID namespaces, tmpfs over rkt's
//! state directories), so it never touches the machine's real network.
//! It is not a timed test: it prints figures and never fails on noise.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::{json, Value};

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn sh(cmd: &str) {
    let _ = Command::new("sh").arg("-c").arg(cmd).status();
}

fn build_image(dir: &Path) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("image dir");
    std::fs::copy("/bin/busybox", bin.join("busybox")).expect("busybox-static is installed");
    for applet in ["sh", "true", "sleep"] {
        let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
    }
}

struct Bench {
    rkt: PathBuf,
    plugins: PathBuf,
    img: PathBuf,
    n: usize,
}

impl Bench {
    /// Wall time of one `rkt` call, in ms.
    fn time(&self, global: &[&str], args: &[&str]) -> f64 {
        let t = Instant::now();
        let ok = Command::new(&self.rkt)
            .args(global)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        let ms = t.elapsed().as_secs_f64() * 1e3;
        if !ok {
            eprintln!("bench: rkt {} {} failed", global.join(" "), args.join(" "));
        }
        ms
    }

    fn run_median(&self, global: &[&str], run_flags: &[&str]) -> f64 {
        self.run_median_each(global, |_| {
            run_flags.iter().map(|f| f.to_string()).collect()
        })
    }

    /// [`Bench::run_median`] with the flags of run `i` (warm-up runs
    /// included) from `run_flags(i)`.
    fn run_median_each(&self, global: &[&str], run_flags: impl Fn(usize) -> Vec<String>) -> f64 {
        let img = self.img.to_string_lossy().into_owned();
        let args = |i: usize| {
            let mut args = vec!["run".to_string()];
            args.extend(run_flags(i));
            args.extend([img.clone(), "--exec=/bin/true".to_string()]);
            args
        };
        let time = |i: usize| {
            let a = args(i);
            self.time(global, &a.iter().map(String::as_str).collect::<Vec<_>>())
        };
        for i in 0..3 {
            time(i);
        }
        let mut v: Vec<f64> = (3..3 + self.n).map(time).collect();
        median(&mut v)
    }

    /// Medians of the `--debug` phases (and peak memory) over `n` runs.
    fn phases(&self, global: &[&str]) -> BTreeMap<String, f64> {
        let mut all: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let img = self.img.to_string_lossy().into_owned();
        for _ in 0..self.n {
            let out = Command::new(&self.rkt)
                .args(global)
                .args([
                    "--debug",
                    "run",
                    "--net=default",
                    img.as_str(),
                    "--exec=/bin/true",
                ])
                .output()
                .expect("rkt");
            for line in String::from_utf8_lossy(&out.stderr).lines() {
                let field = |k: &str| -> Option<String> {
                    let i = line.find(&format!("{k}="))? + k.len() + 1;
                    let rest = &line[i..];
                    let (rest, stop) = match rest.strip_prefix('"') {
                        Some(r) => (r, &['"'][..]),
                        None => (rest, &[' '][..]),
                    };
                    let end = rest.find(stop).unwrap_or(rest.len());
                    Some(rest[..end].to_string())
                };
                let key = if let Some(p) = field("phase") {
                    Some(p)
                } else if line.contains(" plugin ") && !line.contains("peak memory") {
                    field("plugin")
                        .zip(field("command"))
                        .map(|(p, c)| format!("plugin {p} {c}"))
                } else if line.contains("rkt peak memory") {
                    Some("rkt peak RSS (KiB)".into())
                } else if line.contains("plugin peak memory") {
                    field("plugin").zip(field("command")).map(|(p, c)| {
                        format!(
                            "{} {c} peak RSS (KiB)",
                            Path::new(&p)
                                .file_name()
                                .map(|f| f.to_string_lossy().into_owned())
                                .unwrap_or(p)
                        )
                    })
                } else {
                    None
                };
                let val = field("elapsed_ms")
                    .or_else(|| field("maxrss_kb"))
                    .and_then(|v| v.parse::<f64>().ok());
                if let (Some(k), Some(v)) = (key, val) {
                    all.entry(k).or_default().push(v);
                }
            }
        }
        all.into_iter()
            .map(|(k, mut v)| (k, median(&mut v)))
            .collect()
    }

    /// `count` pods attached at once to one ptp + ipMasq network on a /16,
    /// at the plugin level (netns + ADD, then DEL + netns removal), `reps`
    /// times: this VM's noise comes in bursts longer than a window of 100
    /// ADDs, so each fill's figures are kept and their medians reported.
    fn scale(&self, plugin_dir: &Path, count: usize, reps: usize) -> Value {
        let conf = r#"{"cniVersion":"1.0.0","name":"scale","type":"ptp","ipMasq":true,"ipam":{"type":"host-local","subnet":"10.200.0.0/16"}}"#;
        let path = format!("{}:/usr/lib/cni", plugin_dir.display());
        // DEL as rkt sends it: the netns is deleted right after.
        let call = |cmd: &str, i: usize| -> f64 {
            let ns = format!("/run/netns/scale{i}");
            let args = if cmd == "DEL" {
                "IgnoreUnknown=1;RKT_NETNS_TEARDOWN=1"
            } else {
                ""
            };
            let t = Instant::now();
            let mut child = Command::new(plugin_dir.join("ptp"))
                .env("CNI_COMMAND", cmd)
                .env("CNI_ARGS", args)
                .env("CNI_CONTAINERID", format!("scale{i}"))
                .env("CNI_NETNS", &ns)
                .env("CNI_IFNAME", "eth0")
                .env("CNI_PATH", &path)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("ptp");
            use std::io::Write;
            let _ = child.stdin.take().map(|mut s| s.write_all(conf.as_bytes()));
            let _ = child.wait();
            t.elapsed().as_secs_f64() * 1e3
        };
        let k = count.min(100);
        let (mut firsts, mut lasts, mut ratios, mut dels) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..reps.max(1) {
            let mut add = Vec::new();
            for i in 0..count {
                sh(&format!("ip netns add scale{i}"));
                add.push(call("ADD", i));
            }
            let mut del = Vec::new();
            for i in 0..count {
                del.push(call("DEL", i));
                sh(&format!("ip netns del scale{i}"));
            }
            // Let the kernel reap the namespaces before the next fill.
            sh("for i in $(seq 300); do ip -o link show type veth | grep -q . || break; sleep 0.01; done");
            let first = median(&mut add[..k].to_vec());
            let last = median(&mut add[count - k..].to_vec());
            firsts.push(first);
            lasts.push(last);
            ratios.push(last / first);
            dels.push(median(&mut del));
        }
        json!({
            "pods": count,
            "fills": reps.max(1),
            "add_first_100_median_ms": median(&mut firsts),
            "add_last_100_median_ms": median(&mut lasts),
            "last_over_first": median(&mut ratios.clone()),
            "last_over_first_each_fill": ratios,
            "del_median_ms": median(&mut dels),
        })
    }
}

/// Peak resident memory (KiB) of one call of a plugin, from wait4.
fn plugin_rss(
    plugin: &Path,
    command: &str,
    netns: &str,
    conf: &str,
    cni_path: &str,
) -> Option<i64> {
    use std::io::Write;
    let mut child = Command::new(plugin)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", "rss")
        .env("CNI_NETNS", netns)
        .env(
            "CNI_IFNAME",
            if conf.contains("loopback") {
                "lo"
            } else {
                "eth0"
            },
        )
        .env("CNI_PATH", cni_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let _ = child.stdin.take().map(|mut s| s.write_all(conf.as_bytes()));
    let mut status = 0;
    // SAFETY: rusage is plain data; we reap our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    (rc > 0 && status == 0).then_some(usage.ru_maxrss)
}

/// Peak RSS of an ADD (VERSION for dhcp, which needs its daemon) of every
/// bundled plugin and of the reference one of the same type.
fn plugins_rss(bundled: &Path) -> BTreeMap<String, (Option<i64>, Option<i64>)> {
    sh("ip link add rsslan0 type veth peer name rsslan1; ip link set rsslan0 up");
    let cases = [
        (
            "loopback",
            r#"{"cniVersion":"1.0.0","name":"rsslo","type":"loopback"}"#,
        ),
        (
            "host-local",
            r#"{"cniVersion":"1.0.0","name":"rsshl","ipam":{"type":"host-local","subnet":"10.201.0.0/24"}}"#,
        ),
        (
            "ptp",
            r#"{"cniVersion":"1.0.0","name":"rssptp","type":"ptp","ipMasq":true,"ipam":{"type":"host-local","subnet":"10.202.0.0/24"}}"#,
        ),
        (
            "bridge",
            r#"{"cniVersion":"1.0.0","name":"rssbr","type":"bridge","bridge":"rssbr0","isGateway":true,"ipMasq":true,"ipam":{"type":"host-local","subnet":"10.203.0.0/24"}}"#,
        ),
        (
            "macvlan",
            r#"{"cniVersion":"1.0.0","name":"rssmv","type":"macvlan","master":"rsslan0","ipam":{"type":"host-local","subnet":"10.204.0.0/24"}}"#,
        ),
        (
            "dhcp",
            r#"{"cniVersion":"1.0.0","name":"rssdhcp","type":"dhcp"}"#,
        ),
    ];
    let mut out = BTreeMap::new();
    for (ty, conf) in cases {
        let mut pair = (None, None);
        for (k, dir) in [(0, bundled), (1, Path::new("/usr/lib/cni"))] {
            let ns = format!("rss-{ty}-{k}");
            sh(&format!("ip netns add {ns}"));
            let path = format!("{}", dir.display());
            let netns = format!("/run/netns/{ns}");
            let cmd = if ty == "dhcp" { "VERSION" } else { "ADD" };
            let rss = plugin_rss(&dir.join(ty), cmd, &netns, conf, &path);
            if cmd == "ADD" {
                let _ = plugin_rss(&dir.join(ty), "DEL", &netns, conf, &path);
            }
            sh(&format!("ip netns del {ns}"));
            if k == 0 {
                pair.0 = rss
            } else {
                pair.1 = rss
            }
        }
        out.insert(ty.to_string(), pair);
    }
    sh("ip link del rsslan0; ip link del rssbr0 2>/dev/null");
    out
}

fn inner() {
    // Not /tmp: the checkout (and its target/) may live there.
    for d in ["/etc/rkt", "/var/lib/rkt", "/var/lib/cni", "/run"] {
        sh(&format!("mkdir -p {d} && mount -t tmpfs tmpfs {d}"));
    }
    sh("ip link set lo up");
    let exe = std::env::current_exe().expect("exe");
    let release = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<host>/release")
        .to_path_buf();
    let img = PathBuf::from("/run/bench-image");
    build_image(&img);
    let b = Bench {
        rkt: release.join("rkt"),
        plugins: release.clone(),
        img,
        n: std::env::var("BENCH_N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(30),
    };
    let reference = ["--net-plugin-path=/usr/lib/cni"];
    let bundled_available = b.plugins.join("ptp").exists();
    let e2e_bundled = if bundled_available {
        b.run_median(&[], &["--net=default"])
    } else {
        f64::NAN
    };
    // Port forwarding (our portmap in the default network's chain): a new
    // host port each run (the table stays between runs, as on a host with
    // other pods), then the same port back to back (its element from the
    // run before, deleted lazily, is deleted in this run's ADD: an RCU
    // grace period of the kernel).
    let (e2e_publish, e2e_publish_same) = if bundled_available {
        let each = b.run_median_each(&[], |i| {
            vec![
                "--net=default".into(),
                format!("--publish={}:80", 20000 + i),
            ]
        });
        let same = b.run_median(&[], &["--net=default", "--publish=8080:80"]);
        (each, same)
    } else {
        (f64::NAN, f64::NAN)
    };
    let e2e_reference = b.run_median(&reference, &["--net=default"]);
    let e2e_none = b.run_median(&[], &["--net=none"]);
    // What the pod boundary costs: the same run with its run-time
    // protections off (seccomp filter, masked paths, no_new_privs).
    let e2e_unprotected = if bundled_available {
        b.run_median(&[], &["--net=default", "--insecure-options=all-run"])
    } else {
        f64::NAN
    };
    let phases_bundled = if bundled_available {
        b.phases(&[])
    } else {
        BTreeMap::new()
    };
    let phases_reference = b.phases(&reference);
    let scale_n: usize = std::env::var("BENCH_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let scale_bundled = if bundled_available {
        let reps = std::env::var("BENCH_SCALE_REPS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3);
        b.scale(&b.plugins, scale_n, reps)
    } else {
        json!(null)
    };
    let ref_n: usize = std::env::var("BENCH_REF_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let scale_reference = b.scale(Path::new("/usr/lib/cni"), ref_n, 1);
    let rss = if bundled_available {
        plugins_rss(&b.plugins)
    } else {
        BTreeMap::new()
    };

    println!("## rkt run, end to end (median of {} runs, ms)\n", b.n);
    println!("| what | median ms | vs podman (330 ms) |");
    println!("|---|---:|---:|");
    for (what, v) in [
        (
            "`rkt run --net=default ... /bin/true`, bundled plugins",
            e2e_bundled,
        ),
        (
            "same, `--net-plugin-path=/usr/lib/cni` (reference plugins)",
            e2e_reference,
        ),
        (
            "`rkt run --net=default --publish=PORT:80 ...`, a new PORT each run",
            e2e_publish,
        ),
        (
            "`rkt run --net=default --publish=8080:80 ...`, the same port back to back",
            e2e_publish_same,
        ),
        ("`rkt run --net=none ... /bin/true`", e2e_none),
        (
            "`rkt run --net=default --insecure-options=all-run ...` (no seccomp, masks, no_new_privs)",
            e2e_unprotected,
        ),
    ] {
        println!("| {what} | {v:.1} | {:.1}x faster |", 330.0 / v);
    }
    println!(
        "\nbundled vs reference end to end: {:.1}x faster; the run-time protections cost {:.2} ms; forwarding a port costs {:.2} ms ({:.2} ms for the port the run before released)\n",
        e2e_reference / e2e_bundled,
        e2e_bundled - e2e_unprotected,
        e2e_publish - e2e_bundled,
        e2e_publish_same - e2e_bundled
    );
    println!("## one run by phase (`rkt --debug run`, medians, ms / KiB)\n");
    println!("| phase | bundled | reference |");
    println!("|---|---:|---:|");
    let keys: std::collections::BTreeSet<&String> = phases_bundled
        .keys()
        .chain(phases_reference.keys())
        .collect();
    for k in keys {
        let f = |m: &BTreeMap<String, f64>| {
            m.get(k)
                .map(|v| format!("{v:.2}"))
                .unwrap_or_else(|| "-".into())
        };
        println!(
            "| {k} | {} | {} |",
            f(&phases_bundled),
            f(&phases_reference)
        );
    }
    println!("\n## pods attached at once to one ptp+ipMasq network (/16), plugin level\n");
    println!("| plugins | pods | fills | ADD first 100 (ms) | ADD last 100 (ms) | last/first (each fill) | DEL (ms) |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, s) in [("bundled", &scale_bundled), ("reference", &scale_reference)] {
        if s.is_null() {
            continue;
        }
        let each: Vec<String> = s["last_over_first_each_fill"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.as_f64())
                    .map(|r| format!("{r:.2}"))
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "| {name} | {} | {} | {:.2} | {:.2} | {:.2} ({}) | {:.2} |",
            s["pods"],
            s["fills"],
            s["add_first_100_median_ms"].as_f64().unwrap_or(f64::NAN),
            s["add_last_100_median_ms"].as_f64().unwrap_or(f64::NAN),
            s["last_over_first"].as_f64().unwrap_or(f64::NAN),
            each.join(", "),
            s["del_median_ms"].as_f64().unwrap_or(f64::NAN)
        );
    }
    println!("\n## peak resident memory of one plugin call (ADD; VERSION for dhcp), KiB\n");
    println!("| plugin | bundled | reference |");
    println!("|---|---:|---:|");
    let kib = |v: &Option<i64>| v.map(|k| k.to_string()).unwrap_or_else(|| "-".into());
    for (ty, (ours, theirs)) in &rss {
        println!("| {ty} | {} | {} |", kib(ours), kib(theirs));
    }
    let results = json!({
        "plugin_peak_rss_kib": rss.iter().map(|(k, (a, b))| (k.clone(), json!({"bundled": a, "reference": b}))).collect::<BTreeMap<_, _>>(),
        "runs": b.n,
        "e2e_ms": {"bundled": e2e_bundled, "reference": e2e_reference, "none": e2e_none, "bundled_insecure_all_run": e2e_unprotected, "publish_new_port": e2e_publish, "publish_same_port": e2e_publish_same},
        "phases_bundled": phases_bundled,
        "phases_reference": phases_reference,
        "scale": {"bundled": scale_bundled, "reference": scale_reference},
    });
    let out = std::env::var("BENCH_OUT").unwrap_or_else(|_| "bench-results.json".into());
    if std::fs::write(
        &out,
        serde_json::to_vec_pretty(&results).unwrap_or_default(),
    )
    .is_ok()
    {
        println!("\nwrote {out}");
    }
}

fn main() {
    if std::env::var_os("RKT_BENCH_INNER").is_some() {
        inner();
        return;
    }
    let exe = std::env::current_exe().expect("exe");
    let out = std::env::current_dir()
        .unwrap_or_default()
        .join("bench-results.json");
    let status = Command::new("unshare")
        .args([
            "--mount",
            "--net",
            "--pid",
            "--fork",
            "--mount-proc",
            "--propagation",
            "private",
        ])
        .arg(exe)
        .env("RKT_BENCH_INNER", "1")
        .env("BENCH_OUT", out)
        .status()
        .expect("unshare (run as root)");
    std::process::exit(status.code().unwrap_or(1));
}
