//! Benchmark: median ADD time of a macvlan network with `dhcp` IPAM against
//! a local dnsmasq started with `--no-ping`, for rkt's `dhcp` and for the
//! reference /usr/lib/cni/dhcp, measured in the same run.
//!
//! Everything happens in a throwaway host of its own (new mount, network
//! and PID namespaces; tmpfs over /run and /var/lib/cni; scratch files in /run/bench): a "lan"
//! netns runs dnsmasq behind a veth whose other end is the macvlan master;
//! each iteration makes a pod netns, times the reference macvlan's ADD
//! (which delegates to the `dhcp` first on CNI_PATH), then DEL.
//!
//! Run (as root): `cargo build --bin dhcp && cargo run --example bench_dhcp
//! -- [ITERATIONS]` (default 10). Prints
//! figures; never fails on noise.

use std::path::PathBuf;
use std::process::Command;

const LAN: &str = include_str!("../tests/dhcp_lan.sh");

const SCRIPT: &str = r#"
set -u
for d in /var/lib/cni /run; do mkdir -p "$d" && mount -t tmpfs tmpfs "$d"; done
mkdir -p /run/bench
mkdir -p /run/netns
ip link set lo up
fail() { echo "FAIL: $*"; exit 1; }
cd /run/bench
trap 'ip netns del pod 2>/dev/null; stop_all' EXIT
setup_lan
start_dnsmasq
CONF='{"cniVersion":"0.4.0","name":"lan","type":"macvlan","master":"lan0","ipam":{"type":"dhcp"}}'
bench() { # name cni_path daemon...
  local name=$1 path=$2; shift 2
  "$@" >/run/bench/daemon-$name.log 2>&1 &
  local dpid=$!
  for i in $(seq 500); do [ -S /run/cni/dhcp.sock ] && break; sleep 0.01; done
  sleep 0.2
  : > /run/bench/times-$name
  for i in $(seq "$ITER"); do
    ip netns add pod
    local s e
    s=$(date +%s%N)
    echo "$CONF" | CNI_COMMAND=ADD CNI_CONTAINERID="bench-$name-$i" CNI_NETNS=/run/netns/pod \
      CNI_IFNAME=eth0 CNI_PATH="$path" /usr/lib/cni/macvlan > /run/bench/add.json || { cat /run/bench/add.json; fail "$name ADD $i failed"; }
    e=$(date +%s%N)
    echo $(( (e - s) / 1000 )) >> /run/bench/times-$name
    echo "$CONF" | CNI_COMMAND=DEL CNI_CONTAINERID="bench-$name-$i" CNI_NETNS=/run/netns/pod \
      CNI_IFNAME=eth0 CNI_PATH="$path" /usr/lib/cni/macvlan >/dev/null || fail "$name DEL $i failed"
    ip netns del pod
  done
  kill "$dpid"; wait "$dpid" 2>/dev/null
  rm -f /run/cni/dhcp.sock
  sort -n /run/bench/times-$name | awk -v n="$name" '{ a[NR] = $1 } END {
    m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
    printf "%-9s median %8.1f ms   min %8.1f ms   max %8.1f ms   (n=%d)\n", n, m / 1000, a[1] / 1000, a[NR] / 1000, NR
    printf "MEDIAN_%s=%d\n", n, m
  }'
}
bench ours "$BIN_DIR" "$BIN_DIR/dhcp" daemon
bench reference /usr/lib/cni /usr/lib/cni/dhcp daemon
"#;

fn main() {
    let iterations: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10);
    // target/<host>/<profile>/examples/bench_dhcp -> target/<host>/<profile>
    let bin_dir = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent()?.parent().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("."));
    if !bin_dir.join("dhcp").exists() {
        eprintln!(
            "{} not found: run `cargo build --bin dhcp` first",
            bin_dir.join("dhcp").display()
        );
        std::process::exit(2);
    }
    for needed in [
        "/usr/lib/cni/macvlan",
        "/usr/lib/cni/dhcp",
        "/usr/sbin/dnsmasq",
    ] {
        if !std::path::Path::new(needed).exists() {
            eprintln!("{needed} is missing (containernetworking-plugins, dnsmasq-base)");
            std::process::exit(2);
        }
    }
    println!(
        "macvlan + dhcp ADD against dnsmasq --no-ping, {iterations} iterations each (throwaway namespaces)"
    );
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--net",
            "--pid",
            "--fork",
            "--mount-proc",
            "--propagation",
            "private",
            "bash",
            "-c",
            &format!("{LAN}\n{SCRIPT}"),
        ])
        .env("BIN_DIR", &bin_dir)
        .env("ITER", iterations.to_string())
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            eprintln!("cannot run unshare (needs root and util-linux): {e}");
            std::process::exit(2);
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut medians = Vec::new();
    for line in stdout.lines() {
        if let Some((k, v)) = line.split_once('=') {
            if let Some(name) = k.strip_prefix("MEDIAN_") {
                medians.push((name.to_string(), v.parse::<f64>().unwrap_or(0.0)));
                continue;
            }
        }
        println!("{line}");
    }
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        std::process::exit(1);
    }
    let get = |n: &str| medians.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
    if let (Some(ours), Some(reference)) = (get("ours"), get("reference")) {
        if ours > 0.0 {
            println!(
                "ours is {:.1}x faster than the reference (target: ours < 100 ms)",
                reference / ours
            );
        }
    }
}
