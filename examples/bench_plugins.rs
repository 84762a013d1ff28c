//! Benchmark of the bundled plugins against the reference plugins
//! (/usr/lib/cni). Not a timed test: it prints medians and ratios and never
//! fails on noise.
//!
//!     cargo run --release --example bench_plugins [-- ROUNDS]
//!
//! It re-executes itself in a throwaway namespace (`unshare --net --mount`,
//! tmpfs over /var/lib/cni and /run), so it touches nothing on the
//! machine. The bundled plugins are the binaries cargo built beside this
//! example's directory (`cargo build --release --bins --examples`), called
//! exactly as a runtime calls them, so their IPAM (`host-local`, beside
//! them) runs in-process as it does in production.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rkt::cni::exec::{self, Invocation};

#[path = "common/throwaway.rs"]
mod throwaway;

fn main() {
    if !throwaway::inside() {
        throwaway::reexec(
            "for d in /var/lib/cni /run; do mkdir -p $d; mount -t tmpfs tmpfs $d; done\nmkdir -p /run/netns",
        );
        return;
    }
    if let Err(e) = inner() {
        eprintln!("bench failed: {e}");
        std::process::exit(1);
    }
}

/// A netns at /run/netns/<name>, made in-process (a thread unshares and
/// bind-mounts its namespace).
fn netns_add(name: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(format!("/run/netns/{name}"));
    std::fs::write(&path, b"").map_err(|e| format!("create {}: {e}", path.display()))?;
    let p = path.clone();
    std::thread::spawn(move || -> Result<(), String> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("unshare: {e}"))?;
        nix::mount::mount(
            Some("/proc/thread-self/ns/net"),
            &p,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| format!("bind netns: {e}"))
    })
    .join()
    .map_err(|_| "netns thread panicked".to_string())??;
    Ok(path)
}

fn netns_del(path: &Path) {
    let _ = nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH);
    let _ = std::fs::remove_file(path);
}

struct Plugin {
    label: String,
    bin: PathBuf,
    path: Vec<PathBuf>,
    del_args: &'static str,
}

/// CNI_ARGS of a runtime that deletes the netns right after DEL.
const TEARDOWN_ARGS: &str = "IgnoreUnknown=1;RKT_NETNS_TEARDOWN=true";

impl Plugin {
    fn call(&self, verb: &str, id: &str, netns: &Path, conf: &str) -> Result<Duration, String> {
        let args = if verb == "DEL" { self.del_args } else { "" };
        let inv = Invocation {
            command: verb,
            container_id: id,
            netns: netns.to_str().unwrap_or(""),
            ifname: "eth0",
            args,
            path: &self.path,
            timeout: Duration::from_secs(30),
        };
        let t = Instant::now();
        let r = exec::run(&self.bin, &inv, conf.as_bytes());
        let d = t.elapsed();
        r.map(|_| d)
            .map_err(|e| format!("{} {verb}: {e}", self.label))
    }
}

fn median(v: &mut [Duration]) -> f64 {
    v.sort();
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2].as_secs_f64() * 1000.0
}

fn conf(ty: &str, name: &str, masq: bool, subnet: &str) -> String {
    let extra = if ty == "bridge" {
        r#""bridge":"cnibench0","isGateway":true,"#
    } else if name == "default-restricted" {
        // As the built-in network: host-only (the reference ignores it).
        r#""isolation":"host-only","#
    } else {
        ""
    };
    format!(
        r#"{{"cniVersion":"1.0.0","name":"{name}","type":"{ty}",{extra}"ipMasq":{masq},"ipam":{{"type":"host-local","subnet":"{subnet}","routes":[{{"dst":"0.0.0.0/0"}}]}}}}"#
    )
}

/// Waits until the kernel has reaped the veths of deleted namespaces (their
/// cleanup holds the RTNL lock and would slow down the next case).
fn settle() {
    for _ in 0..200 {
        let out = std::process::Command::new("ip")
            .args(["-o", "link", "show", "type", "veth"])
            .output();
        match out {
            Ok(o) if o.stdout.is_empty() => break,
            Ok(_) => std::thread::sleep(Duration::from_millis(100)),
            Err(_) => break,
        }
    }
    std::thread::sleep(Duration::from_millis(200));
}

/// Waits (up to 2 s) until at most `n` veths are left on the host.
fn wait_for_veths(n: usize) {
    for _ in 0..200 {
        let count = std::fs::read_dir("/sys/class/net")
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("veth"))
                    .count()
            })
            .unwrap_or(0);
        if count <= n {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// ADD then DEL (netns still there, as a runtime does), `rounds` times,
/// beside a resident pod of the same network (steady state: the network's
/// firewall state exists). Returns the medians and the resident pod's ADD.
fn measure(p: &Plugin, conf: &str, rounds: usize, tag: &str) -> Result<(f64, f64, f64), String> {
    let anchor = format!("{tag}-anchor");
    let anchor_ns = netns_add(&anchor)?;
    let first = p.call("ADD", &anchor, &anchor_ns, conf)?;
    let (mut adds, mut dels) = (Vec::new(), Vec::new());
    for i in 0..rounds + 2 {
        let id = format!("{tag}-{i}");
        let ns = netns_add(&id)?;
        let a = p.call("ADD", &id, &ns, conf)?;
        let d = p.call("DEL", &id, &ns, conf)?;
        netns_del(&ns);
        // Ours deletes the pair in the background (and the kernel reaps a
        // deleted netns): let that finish so the next ADD is timed alone.
        wait_for_veths(1);
        if i >= 2 {
            // The first two rounds warm caches (page cache, first-pod nft).
            adds.push(a);
            dels.push(d);
        }
    }
    p.call("DEL", &anchor, &anchor_ns, conf)?;
    netns_del(&anchor_ns);
    Ok((
        median(&mut adds),
        median(&mut dels),
        first.as_secs_f64() * 1e3,
    ))
}

/// The directory of the bundled plugins: cargo puts the binaries one level
/// above its examples.
fn bundled_dir(me: &Path) -> Result<PathBuf, String> {
    let dir = me
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    if ["ptp", "bridge", "host-local"]
        .iter()
        .all(|b| dir.join(b).is_file())
    {
        Ok(dir)
    } else {
        Err(format!(
            "no bundled plugins (ptp, bridge, host-local) in {}: run `cargo build --release --bins --examples` first",
            dir.display()
        ))
    }
}

fn inner() -> Result<(), String> {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = bundled_dir(&me)?;
    let ours = |ty: &'static str| Plugin {
        label: format!("ours {ty}"),
        bin: dir.join(ty),
        path: vec![dir.clone()],
        del_args: "",
    };
    let ours_td = |ty: &'static str| Plugin {
        label: format!("ours {ty}, DEL in netns-teardown mode"),
        del_args: TEARDOWN_ARGS,
        ..ours(ty)
    };
    let reference = |ty: &str| Plugin {
        label: format!("reference {ty}"),
        bin: PathBuf::from(format!("/usr/lib/cni/{ty}")),
        path: vec![PathBuf::from("/usr/lib/cni")],
        del_args: "",
    };
    println!(
        "bench_plugins: {rounds} rounds per case, medians in ms; ours from {}",
        dir.display()
    );
    println!(
        "{:<72} {:>8} {:>8} {:>9}",
        "case [implementation]", "ADD", "DEL", "1st ADD"
    );
    let dflt = conf("ptp", "default", true, "172.16.28.0/24");
    let restricted = conf("ptp", "default-restricted", false, "172.17.0.0/16");
    let br = conf("bridge", "bench-bridge", true, "10.11.0.0/16");
    let cases: Vec<(&str, Plugin, &String)> = vec![
        ("ptp + ipMasq (default)", reference("ptp"), &dflt),
        ("ptp + ipMasq (default)", ours("ptp"), &dflt),
        ("ptp + ipMasq (default)", ours_td("ptp"), &dflt),
        (
            "ptp, host-only (default-restricted)",
            reference("ptp"),
            &restricted,
        ),
        (
            "ptp, host-only (default-restricted)",
            ours("ptp"),
            &restricted,
        ),
        (
            "ptp, host-only (default-restricted)",
            ours_td("ptp"),
            &restricted,
        ),
        ("bridge + isGateway + ipMasq", reference("bridge"), &br),
        ("bridge + isGateway + ipMasq", ours("bridge"), &br),
        ("bridge + isGateway + ipMasq", ours_td("bridge"), &br),
    ];
    let mut figures = Vec::new();
    for (i, (name, p, c)) in cases.iter().enumerate() {
        settle();
        let (a, d, f) = measure(p, c, rounds, &format!("c{i}"))?;
        println!(
            "{:<72} {:>8.2} {:>8.2} {:>9.2}",
            format!("{} [{}]", name, p.label),
            a,
            d,
            f
        );
        figures.push((a, d));
    }
    for (k, name) in [(0, "ptp + ipMasq"), (3, "ptp, host-only"), (6, "bridge")] {
        let (ra, rd) = figures[k];
        let (oa, od) = figures[k + 1];
        let (_, td) = figures[k + 2];
        println!(
            "{name:<16} ours vs reference: ADD {:.1}x faster; DEL {:.1}x faster (plain DEL), {:.1}x (netns-teardown mode)",
            ra / oa,
            rd / od,
            rd / td
        );
    }

    // The floor: starting and ending a plugin process (VERSION), ours and
    // the reference IPAM used above.
    let dummy = PathBuf::from("/nonexistent");
    for p in [ours("ptp"), reference("host-local")] {
        let mut v = Vec::new();
        for _ in 0..rounds {
            v.push(p.call("VERSION", "v", &dummy, "{}")?);
        }
        println!(
            "process start+exit (VERSION) [{}]: {:.2} ms",
            p.label,
            median(&mut v)
        );
    }

    // ADD at the 1st vs the 1000th pod of a network: examples/bench (the
    // same command, vagrant/bench.sh, runs both).
    Ok(())
}
