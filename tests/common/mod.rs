//! The integration-test harness: every test runs a bash script inside a
//! throwaway host of its own (new mount, network and PID namespaces, tmpfs
//! over /etc/rkt, /var/lib/rkt, /var/lib/cni and /run), then checks that
//! nothing was left behind. The binaries under test use their real default
//! paths, tests run in parallel, and nothing touches the machine's real
//! network configuration.

#![allow(dead_code)]

pub mod image;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};

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

/// Runs once when a throwaway host starts: its own filesystem and `lo`.
/// Everything outside the tmpfs state directories, the checkout included,
/// is read-only inside the host: a test cannot write anywhere else.
const SETUP: &str = r#"
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
mount -o remount,bind,ro / || { echo "cannot make / read-only in the test host" >&2; exit 1; }
case "$REPO/" in
  /tmp/*|/run/*|/var/lib/rkt/*|/var/lib/cni/*|/etc/rkt/*) mount -o remount,bind,ro "$REPO" ;;
esac
ip link set lo up
"#;

/// Helpers every script can use.
const HELPERS: &str = r#"
set -u
cd /tmp
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
  for f in /run/rkt-portmap/pods/* /run/rkt-portmap/claims/*; do
    [ -e "$f" ] && echo "LEAK: port mapping $f"
  done
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
    rkt: Option<PathBuf>,
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
            rkt: None,
            envs: Vec::new(),
            check_leaks: true,
        }
    }

    /// Global flags for every `rkt` call (e.g. `--net-plugin-path=/usr/lib/cni`).
    pub fn global(mut self, flags: &str) -> Self {
        self.global = flags.to_string();
        self
    }

    /// Another `rkt` for [`Session::rkt`] than the one under test (an
    /// installed package's).
    pub fn rkt_binary(mut self, path: PathBuf) -> Self {
        self.rkt = Some(path);
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.envs.push((k.into(), v.into()));
        self
    }

    /// What every command in the host sees.
    fn environment(&self, cmd: &mut Command, img: &std::path::Path) {
        cmd.env("RKT_BIN", rkt_bin())
            .env("REPO", env!("CARGO_MANIFEST_DIR"))
            .env("RKT_GLOBAL", &self.global)
            .env("IMG", img)
            .env("BIN_DIR", rkt_bin().parent().expect("bin dir"))
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            );
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
    }

    /// `bash -c script` as the init of a new throwaway host.
    fn unshare(&self, script: &str, img: &std::path::Path) -> Command {
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
            script,
        ]);
        self.environment(&mut cmd, img);
        cmd
    }

    /// Runs the script; asserts that nothing leaked.
    pub fn run(&self, script: &str) -> Outcome {
        let img = image::busybox_rootfs();
        let full = format!(
            "{SETUP}\n{HELPERS}\n{LEAK_CHECK}\n( set -e\n{script}\n)\nrc=$?\necho '--- leak check'\nleak_check\nexit $rc\n"
        );
        let mut cmd = self.unshare(&full, &img);
        let out = cmd
            .output()
            .expect("run unshare (tests need root and util-linux)");
        let o = Outcome::of(out);
        if self.check_leaks {
            o.assert_no_leaks();
        }
        o
    }

    /// Starts the host and keeps it for a test written in Rust: each
    /// [`Session`] call runs one command inside it.
    pub fn start(self) -> Session {
        let img = image::busybox_rootfs();
        let mut cmd = self.unshare(&format!("{SETUP}\necho READY\nread -r _ || true\n"), &img);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = cmd
            .spawn()
            .expect("run unshare (tests need root and util-linux)");
        let mut ready = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut ready)
            .expect("read the host's READY");
        assert_eq!(ready.trim(), "READY", "the throwaway host did not start");
        let unshare = child.id();
        let children = std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"))
            .expect("the host's init");
        let init: u32 = children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the host's init pid");
        Session {
            stdin: child.stdin.take(),
            child,
            init,
            host: self,
            img,
        }
    }
}

impl Outcome {
    fn of(out: std::process::Output) -> Outcome {
        Outcome {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn assert_no_leaks(&self) {
        let leaks: Vec<&str> = self
            .stdout
            .lines()
            .filter(|l| l.starts_with("LEAK:"))
            .collect();
        assert!(
            leaks.is_empty(),
            "leftovers after the test:\n{}\n--- stdout\n{}\n--- stderr\n{}",
            leaks.join("\n"),
            self.stdout,
            self.stderr
        );
    }

    /// Panics with the transcript unless the command failed with exit
    /// code `code` and its stderr's last line contains `msg`; returns
    /// that line.
    pub fn fails_with(&self, code: i32, msg: &str) -> String {
        let last = self.stderr.lines().last().unwrap_or("").to_string();
        assert!(
            self.code == code && last.contains(msg),
            "expected exit {code} and {msg:?}, got {}: {last}\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
            self.stdout,
            self.stderr
        );
        last
    }

    /// The lines of stdout.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

/// A running throwaway host (see [`Host::start`]). Dropping it ends it;
/// [`Session::finish`] also checks that nothing was left behind.
pub struct Session {
    host: Host,
    child: Child,
    stdin: Option<ChildStdin>,
    /// The host's init, in our PID namespace: what `nsenter` targets.
    init: u32,
    img: PathBuf,
}

/// An interface's address, as the pod or host sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub ifname: String,
    pub cidr: String,
}

impl Session {
    /// A command inside the host's namespaces.
    fn command(&self, argv: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args([
            "--target",
            &self.init.to_string(),
            "--mount",
            "--net",
            "--pid",
            "--ipc",
            "--uts",
            "--wd=/tmp",
            "--",
        ])
        .args(argv);
        self.host.environment(&mut cmd, &self.img);
        cmd
    }

    /// Joins this host to `other` by a veth pair named `ifname` at both
    /// ends (a link between two machines); the caller addresses it.
    pub fn link_to(&self, other: &Session, ifname: &str) {
        let out = Command::new("nsenter")
            .arg(format!("--net=/proc/{}/ns/net", self.init))
            .args([
                "ip", "link", "add", ifname, "type", "veth", "peer", "name", ifname, "netns",
            ])
            .arg(other.init.to_string())
            .output()
            .expect("run nsenter ip link add");
        assert!(out.status.success(), "link the hosts: {out:?}");
    }

    /// The busybox image's path (inside the host too).
    pub fn image(&self) -> String {
        self.img.display().to_string()
    }

    /// Runs `argv` in the host and waits for it.
    pub fn exec(&self, argv: &[&str]) -> Outcome {
        Outcome::of(self.command(argv).output().expect("run nsenter"))
    }

    /// Runs `argv` in the host with `input` on its stdin.
    pub fn exec_input(&self, argv: &[&str], input: &[u8]) -> Outcome {
        let mut child = self
            .command(argv)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run nsenter");
        let mut stdin = child.stdin.take().expect("stdin");
        // A program that exits without reading its input is not our error.
        let _ = stdin.write_all(input);
        drop(stdin);
        Outcome::of(child.wait_with_output().expect("wait"))
    }

    /// Calls a CNI plugin binary as a runtime would.
    pub fn cni(&self, call: &Cni, config: &str) -> Outcome {
        let env = [
            format!("CNI_COMMAND={}", call.command),
            format!("CNI_CONTAINERID={}", call.container),
            format!("CNI_NETNS={}", call.netns),
            format!("CNI_IFNAME={}", call.ifname),
            format!("CNI_ARGS={}", call.args),
            format!("CNI_PATH={REFERENCE_DIR}"),
        ];
        let mut argv: Vec<&str> = vec!["env"];
        argv.extend(env.iter().map(String::as_str));
        argv.push(call.plugin);
        self.exec_input(&argv, config.as_bytes())
    }

    /// `rkt`, the host's global flags, then `args`.
    fn rkt_argv(&self, args: &[&str]) -> Vec<String> {
        let bin = self.host.rkt.clone().unwrap_or_else(rkt_bin);
        let mut argv = vec![bin.display().to_string()];
        argv.extend(self.host.global.split_whitespace().map(String::from));
        argv.extend(args.iter().map(|a| a.to_string()));
        argv
    }

    /// Runs `rkt` (with the host's global flags) and waits for it.
    pub fn rkt(&self, args: &[&str]) -> Outcome {
        let argv = self.rkt_argv(args);
        self.exec(&argv.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Starts `argv` in the host in the background; the caller waits for
    /// it (or kills it: it is ours).
    pub fn spawn(&self, argv: &[&str]) -> Child {
        self.command(argv)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run nsenter")
    }

    /// Starts `rkt` in the background; the caller waits for it.
    pub fn rkt_spawn(&self, args: &[&str]) -> Child {
        let argv = self.rkt_argv(args);
        self.spawn(&argv.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Starts `rkt run --net=NET FLAGS... IMG --exec=ARGV0 -- ARGV...` in the
    /// background and waits until that pod runs: the `rkt run` process
    /// (the caller waits for it) and the pod's UUID.
    pub fn pod_in_background(&self, net: &str, flags: &[&str], argv: &[&str]) -> (Child, String) {
        let before = self.pods("running");
        let args = self.run_args(net, flags, argv);
        let mut child = self.rkt_spawn(&args.iter().map(String::as_str).collect::<Vec<_>>());
        for _ in 0..200 {
            let new = self
                .pods("running")
                .into_iter()
                .find(|u| !before.contains(u));
            if let Some(uuid) = new {
                return (child, uuid);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = child.kill();
        let out = child.wait_with_output();
        panic!("the pod did not run within 20 s: {out:?}");
    }

    /// `run --net=NET FLAGS... IMG --exec=ARGV0 -- ARGV...`
    fn run_args(&self, net: &str, flags: &[&str], argv: &[&str]) -> Vec<String> {
        let mut args = vec!["run".to_string(), format!("--net={net}")];
        args.extend(flags.iter().map(|f| f.to_string()));
        args.push(self.image());
        args.push(format!("--exec={}", argv[0]));
        args.push("--".into());
        args.extend(argv[1..].iter().map(|a| a.to_string()));
        args
    }

    /// A fake CNI plugin `name` (a shell script) in `/tmp/p`; the
    /// `--net-plugin-path` that finds it first, then ours and the reference.
    pub fn fake_plugin(&self, name: &str, script: &str) -> String {
        let path = format!("/tmp/p/{name}");
        self.write(&path, script);
        self.exec(&["chmod", "+x", &path]).ok();
        format!(
            "--net-plugin-path=/tmp/p:{}:{REFERENCE_DIR}",
            rkt_bin().parent().expect("bin dir").display()
        )
    }

    /// `rkt list --format=json`, parsed.
    pub fn list_json(&self) -> serde_json::Value {
        let o = self.rkt(&["list", "--format=json"]).ok();
        serde_json::from_str(&o.stdout).expect("rkt list --format=json is JSON")
    }

    /// Runs `argv` in a pod of the busybox image on `net`.
    pub fn in_pod(&self, net: &str, argv: &[&str]) -> Outcome {
        self.in_pod_with(net, &[], argv)
    }

    /// [`Session::in_pod`] with more `rkt run` flags.
    pub fn in_pod_with(&self, net: &str, flags: &[&str], argv: &[&str]) -> Outcome {
        let args = self.run_args(net, flags, argv);
        self.rkt(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// A shell script in the host, with the harness's helpers.
    pub fn sh(&self, script: &str) -> Outcome {
        self.exec(&["bash", "-c", &format!("{HELPERS}\nset -e\n{script}")])
    }

    /// Writes a file inside the host (its directory is made).
    pub fn write(&self, path: &str, content: impl AsRef<[u8]>) {
        self.exec_input(
            &[
                "sh",
                "-c",
                "mkdir -p \"$(dirname \"$1\")\" && cat > \"$1\"",
                "write",
                path,
            ],
            content.as_ref(),
        )
        .ok();
    }

    /// A network config in `/etc/rkt/net.d`.
    pub fn net_conf(&self, file: &str, json: &str) {
        self.write(&format!("/etc/rkt/net.d/{file}"), json);
    }

    /// `sh -c script` as the user nobody, with no capabilities: setpriv
    /// keeps its own until its exec, so the script's shell is what tries.
    pub fn as_nobody(&self, script: &str) -> Outcome {
        self.exec(&[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/bin/sh",
            "-c",
            script,
        ])
    }

    /// A file's content inside the host.
    pub fn read(&self, path: &str) -> String {
        self.exec(&["cat", path]).ok().stdout
    }

    /// File names in a directory of the host (none when it is missing).
    pub fn ls(&self, dir: &str) -> Vec<String> {
        let o = self.exec(&["ls", "-1", dir]);
        o.stdout.lines().map(str::to_string).collect()
    }

    /// The addresses host-local holds for `network` (its lease files).
    pub fn leases(&self, network: &str) -> Vec<String> {
        self.ls(&format!("/var/lib/cni/networks/{network}"))
            .into_iter()
            .filter(|f| f.parse::<std::net::IpAddr>().is_ok())
            .collect()
    }

    /// The UUIDs of the host's pods in `state` (running, exited, ...).
    pub fn pods(&self, state: &str) -> Vec<String> {
        self.rkt(&["list", "--full", "--no-legend"])
            .ok()
            .stdout
            .lines()
            .filter(|l| l.split_whitespace().any(|w| w == state))
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect()
    }

    /// Waits up to 20 s until `n` pods run; their UUIDs.
    pub fn wait_running(&self, n: usize) -> Vec<String> {
        for _ in 0..200 {
            let pods = self.pods("running");
            if pods.len() >= n {
                return pods;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("fewer than {n} running pods after 20 s");
    }

    /// Ends the host after checking that nothing was left behind.
    pub fn finish(mut self) {
        let o = self.exec(&["bash", "-c", &format!("{LEAK_CHECK}\nleak_check")]);
        o.assert_no_leaks();
        self.end();
    }

    fn end(&mut self) {
        // Closing its stdin ends the host's init, and with it everything
        // left in its PID namespace.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.end();
    }
}

/// A machine off the pods' networks: netns `up` at 10.200.0.2, routed
/// through the host's 10.200.0.1, with no route back to the pods' subnets.
pub fn upstream(host: &Session) {
    for cmd in [
        "ip netns add up",
        "ip link add uphost type veth peer name eth0 netns up",
        "ip addr add 10.200.0.1/24 dev uphost",
        "ip link set uphost up",
        "ip -n up addr add 10.200.0.2/24 dev eth0",
        "ip -n up link set eth0 up",
        "ip -n up link set lo up",
    ] {
        host.exec(&cmd.split(' ').collect::<Vec<_>>()).ok();
    }
}

pub fn remove_upstream(host: &Session) {
    host.exec(&["ip", "link", "del", "uphost"]).ok();
    host.exec(&["ip", "netns", "del", "up"]).ok();
}

/// Removes the cgroups another runtime (Podman, containerd) made under
/// `parent` for this test (cgroups are the machine's, not the host's),
/// giving its clean-up (Podman's runs after `run --rm` returns) up to 5 s;
/// returns those still there.
pub fn remove_cgroups(host: &Session, parent: &str) -> String {
    let mut left = String::new();
    for _ in 0..50 {
        left = host
            .sh(&format!(
                "for d in /sys/fs/cgroup/*{parent} /sys/fs/cgroup{parent}; do [ -d \"$d\" ] && find \"$d\" -depth -type d -exec rmdir {{}} \\; 2>/dev/null; done; ls -d /sys/fs/cgroup/*{parent} /sys/fs/cgroup{parent} 2>/dev/null || true"
            ))
            .stdout;
        if left.trim().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    left
}

/// SIGKILL to the process a [`Session::spawn`] started (not to its
/// `nsenter`, which would leave it running), then reaps both.
pub fn kill_spawned(nsenter: Child) {
    let id = nsenter.id();
    let children =
        std::fs::read_to_string(format!("/proc/{id}/task/{id}/children")).unwrap_or_default();
    for pid in children.split_whitespace() {
        // Our own child's child: started by this test, ended by its PID.
        // It may have exited already: nothing to say then.
        let _ = Command::new("kill")
            .args(["-9", pid])
            .stderr(Stdio::null())
            .status();
    }
    let _ = nsenter.wait_with_output();
}

/// Where Debian's containernetworking-plugins (the reference) live.
pub const REFERENCE_DIR: &str = "/usr/lib/cni";

/// Our plugin binary `name`.
pub fn ours(name: &str) -> String {
    rkt_bin()
        .parent()
        .expect("bin dir")
        .join(name)
        .display()
        .to_string()
}

/// The reference plugin binary `name`.
pub fn reference(name: &str) -> String {
    format!("{REFERENCE_DIR}/{name}")
}

/// One CNI call's environment (see [`Session::cni`]).
#[derive(Debug, Clone)]
pub struct Cni<'a> {
    pub plugin: &'a str,
    pub command: &'a str,
    pub container: &'a str,
    pub netns: &'a str,
    pub ifname: &'a str,
    pub args: &'a str,
}

impl<'a> Cni<'a> {
    /// `command` of `plugin` for `container`, interface eth0.
    pub fn new(plugin: &'a str, command: &'a str, container: &'a str) -> Self {
        Cni {
            plugin,
            command,
            container,
            netns: "/run/netns/x",
            ifname: "eth0",
            args: "",
        }
    }

    pub fn netns(mut self, netns: &'a str) -> Self {
        self.netns = netns;
        self
    }

    pub fn ifname(mut self, ifname: &'a str) -> Self {
        self.ifname = ifname;
        self
    }

    pub fn args(mut self, args: &'a str) -> Self {
        self.args = args;
        self
    }
}

/// IPv4 addresses in `ip -o -4 addr` output.
pub fn ipv4_addrs(ip_output: &str) -> Vec<Addr> {
    ip_output
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let at = w.iter().position(|x| *x == "inet")?;
            Some(Addr {
                ifname: w.get(1)?.to_string(),
                cidr: w.get(at + 1)?.to_string(),
            })
        })
        .collect()
}

/// Both plugin sets: the bundled plugins (found beside `rkt`) and the
/// reference plugins in /usr/lib/cni.
pub fn plugin_sets() -> Vec<(&'static str, &'static str)> {
    vec![
        ("bundled", ""),
        ("reference", "--net-plugin-path=/usr/lib/cni"),
    ]
}
