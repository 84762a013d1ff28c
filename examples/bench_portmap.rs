//! Benchmark of our `portmap` against the reference `portmap` (iptables,
//! per-pod chains). Not a timed test: it prints medians and ratios and
//! never fails on noise.
//!
//!     cargo run --release --example bench_portmap [-- PODS REF_PODS]
//!
//! It re-executes itself in a throwaway namespace (`unshare --net
//! --mount`, tmpfs over /run), so it touches nothing on the machine. Each
//! pod forwards one host port (10000 + i) to port 80; the plugins are
//! called as a chained runtime calls them, with a `prevResult` naming the
//! pod's address and the host side of its link (one real veth, where both
//! set `route_localnet`). PODS attachments of ours (default 1000) on one
//! network: the ADD of the last 100 against the first 100; then REF_PODS
//! (default 200) of each, ADD and DEL medians side by side.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rkt::cni::exec::{self, Invocation};

#[path = "common/throwaway.rs"]
mod throwaway;

fn main() {
    if !throwaway::inside() {
        throwaway::reexec(
            "mkdir -p /run && mount -t tmpfs tmpfs /run\nip link add pmhost type veth peer name pmpeer\nip link set pmhost up",
        );
        return;
    }
    if let Err(e) = inner() {
        eprintln!("bench_portmap failed: {e}");
        std::process::exit(1);
    }
}

struct Portmap {
    label: &'static str,
    bin: PathBuf,
    path: Vec<PathBuf>,
}

impl Portmap {
    fn call(&self, verb: &str, i: usize) -> Result<Duration, String> {
        let id = format!("pod{i}");
        let inv = Invocation {
            command: verb,
            container_id: &id,
            netns: "/run/netns-none",
            ifname: "eth0",
            args: "",
            path: &self.path,
            timeout: Duration::from_secs(30),
        };
        let t = Instant::now();
        exec::run(&self.bin, &inv, conf(i).as_bytes())
            .map_err(|e| format!("{} {verb} of pod {i}: {e}", self.label))?;
        Ok(t.elapsed())
    }
}

/// The chained config of pod `i`: host port 10000+i to its port 80, at
/// 10.x.y.z/16.
fn conf(i: usize) -> String {
    let ip = format!("10.77.{}.{}", (i + 2) / 250, (i + 2) % 250 + 1);
    format!(
        r#"{{"cniVersion":"1.0.0","name":"benchnet","type":"portmap","capabilities":{{"portMappings":true}},
"runtimeConfig":{{"portMappings":[{{"hostPort":{},"containerPort":80,"protocol":"tcp"}}]}},
"prevResult":{{"cniVersion":"1.0.0","interfaces":[{{"name":"pmhost"}},{{"name":"eth0","sandbox":"/run/netns-none"}}],
"ips":[{{"address":"{ip}/16","interface":1}}]}}}}"#,
        10000 + i
    )
}

fn median(v: &[Duration]) -> f64 {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2)
        .map(|d| d.as_secs_f64() * 1e3)
        .unwrap_or(f64::NAN)
}

/// ADD of pods 0..n, then DEL of all: the durations.
fn run(p: &Portmap, n: usize) -> Result<(Vec<Duration>, Vec<Duration>), String> {
    let adds = (0..n)
        .map(|i| p.call("ADD", i))
        .collect::<Result<Vec<_>, _>>()?;
    let dels = (0..n)
        .map(|i| p.call("DEL", i))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((adds, dels))
}

fn inner() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let pods: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let ref_pods: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(200);
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = me
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let ours = Portmap {
        label: "ours (nftables, map elements)",
        bin: dir.join("portmap"),
        path: vec![dir.clone()],
    };
    let reference = Portmap {
        label: "reference (iptables, per-pod chains)",
        bin: PathBuf::from("/usr/lib/cni/portmap"),
        path: vec![PathBuf::from("/usr/lib/cni")],
    };
    if !ours.bin.is_file() {
        return Err(format!(
            "no {}: run `cargo build --release --bins --examples`",
            ours.bin.display()
        ));
    }
    println!("bench_portmap: one forwarded port per pod, medians in ms");
    let (adds, dels) = run(&ours, pods)?;
    let k = 100.min(pods / 2).max(1);
    let (first, last) = (median(&adds[..k]), median(&adds[pods - k..]));
    println!(
        "ours, {pods} pods on one network: ADD first {k} {first:.2}, last {k} {last:.2} ({:.2}x); DEL {:.2}",
        last / first,
        median(&dels)
    );
    std::thread::sleep(Duration::from_millis(800));
    let (oa, od) = run(&ours, ref_pods)?;
    let (ra, rd) = run(&reference, ref_pods)?;
    println!(
        "{:<40} {:>8} {:>8}",
        format!("{ref_pods} pods [implementation]"),
        "ADD",
        "DEL"
    );
    for (label, a, d) in [(ours.label, &oa, &od), (reference.label, &ra, &rd)] {
        println!("{label:<40} {:>8.2} {:>8.2}", median(a), median(d));
    }
    let rk = k.min(ref_pods / 2).max(1);
    println!(
        "ours vs reference: ADD {:.1}x faster, DEL {:.1}x faster; reference ADD of its last {rk} vs first {rk}: {:.2}x",
        median(&ra) / median(&oa),
        median(&rd) / median(&od),
        median(&ra[ref_pods - rk..]) / median(&ra[..rk])
    );
    Ok(())
}
