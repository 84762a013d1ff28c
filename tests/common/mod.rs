//! The integration-test harness: every test runs a bash script inside a
//! throwaway host of its own (new mount, network and PID namespaces, tmpfs
//! over /etc/rkt, /var/lib/rkt, /var/lib/cni and /run), then checks that
//! nothing was left behind. The binaries under test use their real default
//! paths, tests run in parallel, and nothing touches the machine's real
//! network configuration.

#![allow(dead_code)]

pub mod image;

use std::path::PathBuf;
use std::process::Command;

/// The `rkt` binary under test.
pub fn rkt_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rkt"))
}

/// Where this test binary keeps what it builds once (images).
pub fn tmp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

/// What a throwaway host printed.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// Panics with the whole transcript unless the script exited 0.
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "script failed\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// The value printed as `KEY=value` on its own line.
    pub fn value(&self, key: &str) -> Option<String> {
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
    }
}

/// Runs before every script: the throwaway host's own filesystem and `lo`,
/// and helpers scripts can use.
const PRELUDE: &str = r#"
set -u
# tmpfs over the state directories and /tmp. When the checkout itself lives
# under one of them (CI may clone into /tmp), it is bound back in place
# through a directory fd opened before it was covered.
for d in /etc/rkt /var/lib/rkt /var/lib/cni /run /tmp; do
  mkdir -p "$d"
  case "$REPO/" in
    "$d"/*)
      exec 8< "$REPO"
      mount -t tmpfs -o mode=0755 tmpfs "$d"
      mkdir -p "$REPO" && mount --no-canonicalize --bind "/proc/$$/fd/8" "$REPO"
      exec 8<&- ;;
    *) mount -t tmpfs -o mode=0755 tmpfs "$d" ;;
  esac
done
mkdir -p /etc/rkt/net.d /run/netns
cd /tmp
ip link set lo up
rkt() { "$RKT_BIN" $RKT_GLOBAL "$@"; }
fail() { echo "FAIL: $*"; exit 1; }
# How many rkt-cni nftables tables exist once the background removal of the
# last pod's masquerade state has had up to 3 s to finish.
masq_tables() {
  for _ in $(seq 60); do
    [ "$(nft list tables | grep -c rkt-cni)" = 0 ] && break
    sleep 0.05
  done
  nft list tables | grep -c rkt-cni || true
}
# Waits (up to 20 s) until N pods (default 1) are running.
wait_running() {
  for _ in $(seq 200); do
    [ "$(rkt list --no-legend | grep -c running)" -ge "${1:-1}" ] && return 0
    sleep 0.1
  done
  fail "no running pod after 20 s"
}
# Runs a command, expecting it to fail; prints its stderr as ERR=...
expect_fail() {
  local out
  if out=$("$@" 2>&1 >/dev/null); then fail "expected failure: $*"; fi
  echo "ERR=$(echo "$out" | tail -n 1)"
}
"#;

/// Runs after every script (whatever it returned): lists anything left over.
const LEAK_CHECK: &str = r#"
leaks() {
  for ns in $(ls /run/netns 2>/dev/null); do echo "LEAK: netns $ns"; done
  ip -o link show type veth 2>/dev/null | sed 's/^/LEAK: veth /'
  for d in /var/lib/cni/networks/*/; do
    [ -d "$d" ] || continue
    for f in "$d"*; do
      case "$(basename "$f")" in last_reserved_ip.*|lock|'*') ;; *) echo "LEAK: lease $f";; esac
    done
  done
  # iptables-nft's own base tables (the reference plugins use iptables) may
  # stay; any other table, or a CNI chain in them, is a leak.
  if command -v nft >/dev/null; then
    nft list tables 2>/dev/null | grep -vE '^table (ip|ip6) (nat|filter|mangle)$' | sed 's/^/LEAK: nft /'
    nft list ruleset 2>/dev/null | grep -E 'chain CNI-' | sed 's/^/LEAK: nft /'
  fi
  grep -E ' /(var/lib/rkt|run/netns)/' /proc/self/mountinfo | sed 's/^/LEAK: mount /'
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [ "$pid" = 1 ] || [ "$pid" = $$ ] || [ "$pid" = "$BASHPID" ] || [ "$pid" = "$LEAK_SELF" ] && continue
    comm=$(cat "$p/comm" 2>/dev/null) || continue
    case "$comm" in bash|ls|cat|sed|grep|ip|sleep|basename) ;; *) echo "LEAK: process $pid $comm";; esac
  done
}
# Some cleanup finishes in the background by design: the kernel reaps the
# veths of a deleted netns, and the last pod's nftables state is removed by
# a detached helper. Give them a few seconds before calling anything a leak.
leak_check() {
  local out
  for _ in $(seq 60); do
    LEAK_SELF=$BASHPID
    out=$(leaks)
    [ -z "$out" ] && return 0
    sleep 0.05
  done
  echo "$out"
  return 0
}
"#;

/// A throwaway host: runs `script` with `$RKT_BIN`, `$RKT_GLOBAL`, `$IMG`
/// (a busybox root filesystem) and the helpers of the prelude.
pub struct Host {
    global: String,
    envs: Vec<(String, String)>,
    check_leaks: bool,
}

impl Default for Host {
    fn default() -> Self {
        Self::new()
    }
}

impl Host {
    pub fn new() -> Self {
        Host {
            global: String::new(),
            envs: Vec::new(),
            check_leaks: true,
        }
    }

    /// Global flags for every `rkt` call (e.g. `--net-plugin-path=/usr/lib/cni`).
    pub fn global(mut self, flags: &str) -> Self {
        self.global = flags.to_string();
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.envs.push((k.into(), v.into()));
        self
    }

    /// Runs the script; asserts that nothing leaked.
    pub fn run(&self, script: &str) -> Outcome {
        let img = image::busybox_rootfs();
        let full = format!(
            "{PRELUDE}\n{LEAK_CHECK}\n( set -e\n{script}\n)\nrc=$?\necho '--- leak check'\nleak_check\nexit $rc\n"
        );
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "--net",
            "--pid",
            "--ipc",
            "--uts",
            "--fork",
            "--mount-proc",
            "--propagation",
            "private",
            "bash",
            "-c",
            &full,
        ])
        .env("RKT_BIN", rkt_bin())
        .env("REPO", env!("CARGO_MANIFEST_DIR"))
        .env("RKT_GLOBAL", &self.global)
        .env("IMG", &img)
        .env("BIN_DIR", rkt_bin().parent().expect("bin dir"))
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        );
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        let out = cmd
            .output()
            .expect("run unshare (tests need root and util-linux)");
        let o = Outcome {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        if self.check_leaks {
            let leaks: Vec<&str> = o
                .stdout
                .lines()
                .filter(|l| l.starts_with("LEAK:"))
                .collect();
            assert!(
                leaks.is_empty(),
                "leftovers after the test:\n{}\n--- stdout\n{}\n--- stderr\n{}",
                leaks.join("\n"),
                o.stdout,
                o.stderr
            );
        }
        o
    }
}

/// Both plugin sets: the bundled plugins (found beside `rkt`) and the
/// reference plugins in /usr/lib/cni.
pub fn plugin_sets() -> Vec<(&'static str, &'static str)> {
    vec![
        ("bundled", ""),
        ("reference", "--net-plugin-path=/usr/lib/cni"),
    ]
}
