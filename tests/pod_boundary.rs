//! Issue 11: what a pod's root cannot do to the host. Each test runs the
//! attack from inside a pod and shows it failing, shows the same pod's
//! normal path working, and (where a switch exists) that turning the
//! protection off with `--insecure-options` lets the attack through, so the
//! assertion is about the protection and not about something else.
//!
//! Host-wide kernel settings are only ever written with their current value:
//! should a protection regress, the test fails without changing the machine.

mod common;

use common::Host;

/// `/proc/sys`, `/proc/irq`, `/proc/bus`, `/proc/fs` are read-only for the
/// pod's root (kernel.core_pattern is host code execution, vm.* is the
/// host's memory policy); `/proc/timer_list`, `/proc/keys`,
/// `/proc/interrupts`, `/proc/acpi`, `/sys/firmware` and the other masked
/// paths this kernel has are empty. `--insecure-options=paths` shows them.
#[test]
fn kernel_settings_are_read_only_and_kernel_paths_masked() {
    let o = Host::new()
        .run(
            r#"cat > probe <<'SH'
for f in $1; do
  v=$(cat /proc/sys/$f)
  if echo "$v" > /proc/sys/$f; then echo "WROTE=$f"; fi
done
if [ "$2" = protected ]; then
  v=$(cat /proc/irq/default_smp_affinity)
  if echo "$v" > /proc/irq/default_smp_affinity; then echo "WROTE=irq"; fi
fi
for p in /proc/sysrq-trigger /proc/bus /proc/fs; do
  [ -e "$p" ] || continue
  grep -q " $p ro," /proc/self/mountinfo || echo "WRITABLE=$p"
done
for p in /proc/timer_list /proc/keys /proc/interrupts /proc/kcore /proc/latency_stats /proc/sched_debug /proc/timer_stats; do
  [ -e "$p" ] || continue
  echo "SEEN $p $(wc -c < $p)"
done
for d in /proc/acpi /proc/asound /proc/scsi /sys/firmware /sys/devices/virtual/powercap; do
  [ -e "$d" ] || continue
  echo "SEEN $d $(ls -A $d | wc -l)"
done
echo "NORMAL=$(cat /proc/sys/kernel/ostype)-$(head -c 5 /proc/uptime | wc -c)"
SH
# What exists on this host (the masked list is only checked where the kernel has it).
for p in /proc/timer_list /proc/keys /proc/interrupts /proc/acpi /sys/firmware; do
  [ -e "$p" ] && echo "HOST_HAS=$p"
done
# Host-wide settings are tried only where the protection is on (and only
# with their current value); with it off, a setting of the pod's own IPC
# namespace shows the write would go through.
rkt run --net=default "$IMG" --exec=/bin/sh -- -c "$(cat probe)" probe "kernel/core_pattern vm/overcommit_memory kernel/panic kernel/shmmni" protected > masked
rkt run --net=host "$IMG" --exec=/bin/sh -- -c 'v=$(cat /proc/sys/net/ipv4/ip_forward); echo "$v" > /proc/sys/net/ipv4/ip_forward && echo HOSTNET_WROTE' > hostnet 2>&1 || true
rkt gc --grace-period=0s > /dev/null
rkt run --net=default --insecure-options=paths "$IMG" --exec=/bin/sh -- -c "$(cat probe)" probe kernel/shmmni > open
uuid=$(rkt list --full --no-legend | awk '{print $1}')
echo "STATUS=$(rkt status $uuid | grep insecure-options | tr '\n' ' ')"
sed 's/^/MASKED: /' masked; sed 's/^/HOSTNET: /' hostnet; sed 's/^/OPEN: /' open
rkt gc --grace-period=0s > /dev/null
"#,
        )
        .ok();
    let lines = |prefix: &str| -> Vec<String> {
        o.stdout
            .lines()
            .filter_map(|l| l.strip_prefix(prefix).map(str::to_string))
            .collect()
    };
    let masked = lines("MASKED: ");
    let open = lines("OPEN: ");
    assert!(
        !masked
            .iter()
            .any(|l| l.starts_with("WROTE=") || l.starts_with("WRITABLE=")),
        "the pod's root wrote a host kernel setting: {}",
        o.stdout
    );
    assert!(masked.iter().any(|l| l == "NORMAL=Linux-5"), "{}", o.stdout);
    assert!(
        !lines("HOSTNET: ").iter().any(|l| l == "HOSTNET_WROTE"),
        "--net=host: the pod wrote the host's net.* settings: {}",
        o.stdout
    );
    // Every masked path the host has is empty in the pod, and is not with
    // the protection off (so the emptiness is the mask's doing).
    let host_has = lines("HOST_HAS=");
    assert!(
        host_has.len() >= 2,
        "too few maskable paths on this host: {}",
        o.stdout
    );
    for p in &host_has {
        let seen = |v: &[String]| -> Option<u64> {
            v.iter().find_map(|l| {
                l.strip_prefix(&format!("SEEN {p} "))
                    .and_then(|n| n.trim().parse().ok())
            })
        };
        assert_eq!(seen(&masked), Some(0), "{p} is not masked: {}", o.stdout);
        if p != "/proc/keys" && p != "/proc/acpi" {
            assert!(
                seen(&open).unwrap_or(0) > 0,
                "{p} should be visible with --insecure-options=paths: {}",
                o.stdout
            );
        }
    }
    // With paths open, the write goes through (the pod's own IPC setting).
    assert!(
        open.iter().any(|l| l == "WROTE=kernel/shmmni"),
        "{}",
        o.stdout
    );
    assert_eq!(
        o.value("STATUS").as_deref().map(str::trim),
        Some("insecure-options=paths"),
        "{}",
        o.stdout
    );
}

/// The pod's root keeps CAP_MKNOD, yet no device node it makes can be
/// opened, wherever it puts it (every mount is nodev but the standard
/// nodes of /dev, which are bind mounts of the host's own null, zero...).
/// The host console, ttys and /dev/kvm are simply not there.
#[test]
fn no_host_device_can_be_opened() {
    let o = Host::new()
        .run(
            r#"rkt run --net=default "$IMG" --exec=/bin/sh -- -c '
for d in /dev /tmp /dev/shm; do
  mknod $d/mem c 1 1 && echo "MKNOD_OK=$d"
  mknod $d/console c 5 1
  mknod $d/loop b 7 0
  for n in mem console loop; do
    if true < $d/$n; then echo "OPENED=$d/$n"; else echo "DENIED=$d/$n"; fi
  done
done
echo x > /dev/null && echo NULL_OK
[ "$(head -c 4 /dev/zero | wc -c)" = 4 ] && echo ZERO_OK
[ "$(head -c 4 /dev/urandom | wc -c)" = 4 ] && echo URANDOM_OK
echo "DEV=$(ls /dev | tr "\n" " ")"
' 2> err
sed 's/^/ERR: /' err
rkt gc --grace-period=0s > /dev/null
"#,
        )
        .ok();
    assert!(
        !o.stdout.contains("OPENED="),
        "a device node made in the pod could be opened: {}",
        o.stdout
    );
    // mknod itself is allowed (rkt's and Docker's default set keep
    // CAP_MKNOD); opening is what nodev refuses, with EACCES before any
    // driver is looked up.
    assert_eq!(o.stdout.matches("MKNOD_OK=").count(), 3, "{}", o.stdout);
    assert_eq!(o.stdout.matches("DENIED=").count(), 9, "{}", o.stdout);
    assert_eq!(
        o.stdout.matches("Permission denied").count(),
        9,
        "{}",
        o.stdout
    );
    for ok in ["NULL_OK", "ZERO_OK", "URANDOM_OK"] {
        assert!(o.stdout.contains(ok), "{ok}: {}", o.stdout);
    }
    let dev: Vec<String> = o
        .value("DEV")
        .unwrap()
        .split_whitespace()
        .map(String::from)
        .filter(|n| !["mem", "console", "loop"].contains(&n.as_str()))
        .collect();
    assert_eq!(
        dev,
        [
            "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout",
            "tty", "urandom", "zero"
        ],
        "{}",
        o.stdout
    );
}

/// `no_new_privs` and the default seccomp filter: the app cannot make a
/// nested user namespace (where it would get every capability), nor other
/// namespaces, nor mount; threads still start (libc's clone3 falls back to
/// clone on ENOSYS). CAP_SYS_ADMIN given back with `--caps-retain` gives
/// the matching syscalls back, as Docker's profile does, and
/// `--insecure-options=seccomp` lets the nested namespace through.
#[test]
fn seccomp_and_no_new_privs_refuse_nested_namespaces() {
    let threads = common::tmp_dir().join(format!("threads-{}", std::process::id()));
    let src = threads.with_extension("c");
    std::fs::write(
        &src,
        "#include <pthread.h>\n#include <stdio.h>\nstatic void *f(void *a) { return a; }\n\
         int main(void) { pthread_t t; int rc = pthread_create(&t, 0, f, 0);\n\
         if (rc) { printf(\"THREAD_RC=%d\\n\", rc); return 1; }\n\
         pthread_join(t, 0); printf(\"THREAD_RC=0\\n\"); return 0; }\n",
    )
    .unwrap();
    let built = std::process::Command::new("gcc")
        .args(["-static", "-pthread", "-o"])
        .arg(&threads)
        .arg(&src)
        .status()
        .expect("gcc (provisioned with libc6-dev)");
    assert!(built.success());
    let o = Host::new()
        .env("THREADS", threads.to_str().unwrap())
        .run(
            r#"cp -a "$IMG" /tmp/img && cp "$THREADS" /tmp/img/bin/threads
probe='grep -E "^(NoNewPrivs|Seccomp):" /proc/self/status | tr -d "\t" | sed "s/:/=/"
unshare -U -r -n true 2>/dev/null && echo NESTED_USERNS
unshare -n true 2>/dev/null && echo NESTED_NETNS
mkdir -p /mnt && mount -t tmpfs t /mnt 2>/dev/null && echo MOUNTED
/bin/threads'
rkt run --net=default /tmp/img --exec=/bin/sh -- -c "$probe" | sed 's/^/DEFAULT: /'
rkt run --net=default --caps-retain=CAP_SYS_ADMIN,CAP_SETUID,CAP_SETGID /tmp/img --exec=/bin/sh -- -c "$probe" | sed 's/^/ADMIN: /'
rkt run --net=default --insecure-options=seccomp,setuid /tmp/img --exec=/bin/sh -- -c "$probe" | sed 's/^/OFF: /'
rkt gc --grace-period=0s > /dev/null
"#,
        )
        .ok();
    let _ = std::fs::remove_file(&threads);
    let _ = std::fs::remove_file(&src);
    let has = |l: &str| o.stdout.lines().any(|x| x == l);
    assert!(has("DEFAULT: NoNewPrivs=1"), "{}", o.stdout);
    assert!(has("DEFAULT: Seccomp=2"), "{}", o.stdout);
    for attack in ["NESTED_USERNS", "NESTED_NETNS", "MOUNTED"] {
        assert!(
            !has(&format!("DEFAULT: {attack}")),
            "{attack} went through: {}",
            o.stdout
        );
    }
    assert!(has("DEFAULT: THREAD_RC=0"), "threads: {}", o.stdout);
    assert!(has("ADMIN: MOUNTED"), "{}", o.stdout);
    assert!(has("ADMIN: THREAD_RC=0"), "{}", o.stdout);
    assert!(has("OFF: NoNewPrivs=0"), "{}", o.stdout);
    assert!(has("OFF: Seccomp=0"), "{}", o.stdout);
    assert!(has("OFF: NESTED_USERNS"), "{}", o.stdout);
    assert!(!has("OFF: MOUNTED"), "no CAP_SYS_ADMIN: {}", o.stdout);
}

/// `--sysctl` sets a setting of the pod's own namespaces, and only those:
/// the host's value is untouched, the app cannot change it afterwards, and
/// a host-wide setting (or a network one with --net=host) is refused
/// before anything is created.
#[test]
fn sysctls_touch_only_the_pods_namespaces() {
    let o = Host::new()
        .run(
            r#"host_before=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start)
rkt run --net=default --sysctl=net.ipv4.ip_unprivileged_port_start=80 --sysctl=kernel.shmmni=2048 "$IMG" --exec=/bin/sh -- -c '
echo "POD_PORT=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start)"
echo "POD_SHM=$(cat /proc/sys/kernel/shmmni)"
echo 1024 > /proc/sys/net/ipv4/ip_unprivileged_port_start 2>/dev/null && echo APP_WROTE
true'
echo "HOST_PORT=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start) (was $host_before)"
echo "HOST_SHM=$(cat /proc/sys/kernel/shmmni)"
rkt gc --grace-period=0s > /dev/null
for bad in kernel.core_pattern=x vm.overcommit_memory=1 kernel.hostname=x 'net.ipv4.x/../../y=1'; do
  set +e; rkt run --net=default --sysctl="$bad" "$IMG" --exec=/bin/true 2> err; rc=$?; set -e
  echo "REFUSED rc=$rc $(cat err)"
done
set +e; rkt run --net=host --sysctl=net.ipv4.ip_forward=1 "$IMG" --exec=/bin/true 2> err; rc=$?; set -e
echo "REFUSED rc=$rc $(cat err)"
set +e; rkt run --net=default --sysctl=net.ipv4.no_such_knob=1 "$IMG" --exec=/bin/true 2> err; rc=$?; set -e
echo "MISSING rc=$rc $(cat err)"
echo "PODS=$(find /var/lib/rkt/pods -mindepth 2 -maxdepth 2 | wc -l)"
"#,
        )
        .ok();
    assert_eq!(o.value("POD_PORT").as_deref(), Some("80"), "{}", o.stdout);
    assert_eq!(o.value("POD_SHM").as_deref(), Some("2048"), "{}", o.stdout);
    assert!(!o.stdout.contains("APP_WROTE"), "{}", o.stdout);
    let host = o.value("HOST_PORT").unwrap();
    assert!(host.starts_with("1024 (was 1024)"), "{}", o.stdout);
    assert_ne!(o.value("HOST_SHM").as_deref(), Some("2048"), "{}", o.stdout);
    let refused: Vec<&str> = o
        .stdout
        .lines()
        .filter(|l| l.starts_with("REFUSED"))
        .collect();
    assert_eq!(refused.len(), 5, "{}", o.stdout);
    for r in &refused {
        assert!(r.starts_with("REFUSED rc=254 rkt: --sysctl="), "{r}");
    }
    assert!(
        refused[0].contains("would change the host"),
        "{}",
        refused[0]
    );
    assert!(refused[2].contains("use --hostname"), "{}", refused[2]);
    assert!(refused[4].contains("--net=host"), "{}", refused[4]);
    let missing = o.stdout.lines().find(|l| l.starts_with("MISSING")).unwrap();
    assert!(
        missing.contains("rc=254")
            && missing.contains("/proc/sys/net/ipv4/no_such_knob")
            && missing.contains("no such setting"),
        "{missing}"
    );
    // The refused pods never existed; the one that failed at start was
    // rolled back (the leak check covers its netns and lease).
    assert_eq!(o.value("PODS").as_deref(), Some("0"), "{}", o.stdout);
}

/// `rkt enter` runs its command with what the pod's app got: the same
/// capabilities (`--caps-remove` included), no_new_privs and the seccomp
/// filter, not the runtime's full set.
#[test]
fn enter_gets_the_pods_protections() {
    let o = Host::new()
        .run(
            r#"rkt run --net=default --caps-remove=CAP_NET_RAW,CAP_MKNOD "$IMG" --exec=/bin/sh -- -c 'grep CapEff /proc/self/status | cut -f2 > /tmp/app-caps; sleep 30' &
wait_running
uuid=$(rkt list --full --no-legend | awk '{print $1}')
for _ in $(seq 50); do rkt enter $uuid test -s /tmp/app-caps && break; sleep 0.1; done
echo "APP=$(rkt enter $uuid cat /tmp/app-caps)"
echo "ENTER=$(rkt enter $uuid grep CapEff /proc/self/status | cut -f2)"
echo "ENTER_$(rkt enter $uuid grep NoNewPrivs /proc/self/status | tr -d '\t' | tr : =)"
echo "ENTER_$(rkt enter $uuid grep Seccomp: /proc/self/status | tr -d '\t' | tr : =)"
rkt enter $uuid unshare -U -r true 2>/dev/null && echo ENTER_NESTED
rkt stop $uuid > /dev/null
wait
rkt gc --grace-period=0s > /dev/null
"#,
        )
        .ok();
    let app = o.value("APP").unwrap();
    assert_eq!(app.len(), 16, "{}", o.stdout);
    assert_eq!(o.value("ENTER"), Some(app), "{}", o.stdout);
    assert_eq!(o.value("ENTER_NoNewPrivs").as_deref(), Some("1"));
    assert_eq!(o.value("ENTER_Seccomp").as_deref(), Some("2"));
    assert!(!o.stdout.contains("ENTER_NESTED"), "{}", o.stdout);
}

/// A set-uid-root file the pod's root makes in its own filesystem stays
/// out of reach of the host's other users: the pod's upper layer lives in
/// the root-only pod directory.
#[test]
fn a_pods_setuid_files_are_out_of_other_users_reach() {
    let o = Host::new()
        .run(
            r#"rkt run --net=none "$IMG" --exec=/bin/sh -- -c 'cp /bin/busybox /tmp/id && chmod 4755 /tmp/id && sleep 30' &
wait_running
uuid=$(rkt list --full --no-legend | awk '{print $1}')
f=/var/lib/rkt/pods/run/$uuid/upper/tmp/id
for _ in $(seq 50); do [ -u "$f" ] && break; sleep 0.1; done
[ -u "$f" ] && echo "ROOT_SEES=setuid"
# setpriv keeps its capabilities until its own exec: the path is looked up
# by a shell already running as nobody.
setpriv --reuid=65534 --regid=65534 --clear-groups /bin/sh -c "\"$f\"" 2>&1 | sed 's/^/NOBODY: /'
setpriv --reuid=65534 --regid=65534 --clear-groups /bin/sh -c 'ls /var/lib/rkt/pods/run' 2>&1 | sed 's/^/NOBODY_LS: /'
rkt stop $uuid > /dev/null
wait
rkt gc --grace-period=0s > /dev/null
"#,
        )
        .ok();
    assert_eq!(
        o.value("ROOT_SEES").as_deref(),
        Some("setuid"),
        "{}",
        o.stdout
    );
    let nobody: Vec<&str> = o
        .stdout
        .lines()
        .filter(|l| l.starts_with("NOBODY"))
        .collect();
    assert_eq!(nobody.len(), 2, "{}", o.stdout);
    assert!(
        nobody.iter().all(|l| l.contains("Permission denied")),
        "another user reached the pod's files: {}",
        o.stdout
    );
}
