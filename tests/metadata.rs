//! Issue 8 acceptance: the metadata service that `default-restricted` pods
//! exist for, each test in a throwaway host with the service started by the
//! script (and stopped by its PID).

mod common;

use common::Host;

/// Shell helpers: start the service and wait for its socket; stop it by PID;
/// the HTTP status of a busybox `wget` (200 when it succeeded).
const MDS: &str = r#"
start_mds() {
  "$RKT_BIN" $RKT_GLOBAL metadata-service "$@" 2>>/tmp/mds.log & mds=$!
  for i in $(seq 100); do [ -S /run/rkt/metadata-svc.sock ] && return 0; sleep 0.05; done
  cat /tmp/mds.log; fail "the metadata service did not start"
}
stop_mds() { kill "$mds"; wait "$mds" || true; }
wait_for() { for i in $(seq 100); do grep -q "$1" "$2" 2>/dev/null && return 0; sleep 0.05; done; fail "no $1 in $2"; }
"#;

/// Inside pods: `st URL [POST-DATA]` prints the HTTP status of a request.
const POD_ST: &str = r#"st() {
  if [ $# -gt 1 ]; then e=$(wget -qO- --post-data "$2" "$1" 2>&1 >/dev/null); else e=$(wget -qO- "$1" 2>&1 >/dev/null); fi
  s=$(echo "$e" | grep -o "HTTP/1.[01] [0-9]*" | cut -d" " -f2); echo "${s:-200}"
}
"#;

fn host() -> Host {
    Host::new()
}

/// Acceptance 1: a metadata-only pod learns its UUID and annotations and
/// reaches nothing beyond the host, while a `default` pod reaches the same
/// upstream (so the upstream is really there).
#[test]
fn restricted_pod_gets_metadata_and_nothing_else() {
    let o = host()
        .run(&format!(
            r#"{MDS}
start_mds
ip netns add upstream
ip link add up0 type veth peer name up1 netns upstream
ip addr add 10.199.0.1/24 dev up0
ip link set up0 up
ip netns exec upstream ip link set lo up
ip netns exec upstream ip addr add 10.199.0.2/24 dev up1
ip netns exec upstream ip link set up1 up
ip netns exec upstream ip route add default via 10.199.0.1
sysctl -qw net.ipv4.ip_forward=1
mkdir -p /tmp/www && echo upstream-ok > /tmp/www/index.html
ip netns exec upstream "$IMG/bin/busybox" httpd -f -p 8080 -h /tmp/www & up=$!
for i in $(seq 50); do "$IMG/bin/busybox" wget -qO- http://10.199.0.2:8080/ >/dev/null 2>&1 && break; sleep 0.1; done

rkt run --net=default-restricted --annotation=team=net --annotation=tier=metadata-only "$IMG" --exec=/bin/sh -- -c '
U=$AC_METADATA_URL/acMetadata/v1
echo "URL=$AC_METADATA_URL"
echo "MDUUID=$(wget -qO- $U/pod/uuid)"
echo "ANNOTATIONS=$(wget -qO- $U/pod/annotations | tr "\n" ,)"
echo "TEAM=$(wget -qO- $U/pod/annotations/team)"
echo "IMAGEID=$(wget -qO- $U/apps/busybox-rootfs/image/id)"
echo "MANIFEST=$(wget -qO- $U/pod/manifest | tr -d " \n")"
echo "IMAGEMANIFEST=$(wget -qO- $U/apps/busybox-rootfs/image/manifest | tr -d " \n")"
# (busybox 1.35 wget -T crashes: bound the time with timeout instead)
if e=$(timeout 3 wget -qO- http://10.199.0.2:8080/ 2>&1); then echo UPSTREAM=reached; else echo UPSTREAM=unreachable; echo "UPSTREAMERR=$e"; fi
if echo x | nc -w 2 10.199.0.2 8080 >/dev/null 2>&1; then echo NC=reached; else echo NC=unreachable; fi
' > restricted.out
cat restricted.out
echo "PODS=$(ls /var/lib/rkt/pods/exited-garbage | tr "\n" " ")"
rkt run --net=default "$IMG" --exec=/bin/sh -- -c 'echo "DEFAULTPOD=$(timeout 3 wget -qO- http://10.199.0.2:8080/)"; echo "DEFAULTURL=$AC_METADATA_URL"'
rkt run --mds-register=false --net=default-restricted "$IMG" --exec=/bin/sh -- -c 'echo "OPTOUT=${{AC_METADATA_URL:-none}}"'
echo "LEFT=$(ls /run/rkt/metadata/pods | wc -l)"
kill $up; wait $up || true
ip link del up0
ip netns del upstream
stop_mds
"#
        ))
        .ok();
    let v = |k: &str| o.value(k).unwrap_or_else(|| panic!("no {k}: {}", o.stdout));
    let url = v("URL");
    assert!(
        url.starts_with("http://172.17.0.1:18112/")
            && url.len() == "http://172.17.0.1:18112/".len() + 64,
        "{url}"
    );
    let uuid = v("MDUUID");
    assert_eq!(uuid.len(), 36, "{}", o.stdout);
    assert!(v("PODS").contains(&uuid), "{}", o.stdout);
    assert_eq!(v("ANNOTATIONS"), "team,tier,");
    assert_eq!(v("TEAM"), "net");
    assert!(v("IMAGEID").starts_with("sha256:"), "{}", o.stdout);
    let manifest = v("MANIFEST");
    for want in [
        r#""acKind":"PodManifest""#,
        r#"{"name":"team","value":"net"}"#,
        r#""name":"busybox-rootfs""#,
        r#""ip":"172.17.0.2""#,
        r#""name":"default-restricted""#,
    ] {
        assert!(manifest.contains(want), "{want} not in {manifest}");
    }
    assert!(v("IMAGEMANIFEST").contains(r#""acKind":"ImageManifest""#));
    assert_eq!(v("UPSTREAM"), "unreachable", "{}", o.stdout);
    assert!(v("UPSTREAMERR").contains("unreachable"), "{}", o.stdout);
    assert_eq!(v("NC"), "unreachable", "{}", o.stdout);
    assert_eq!(v("DEFAULTPOD"), "upstream-ok", "{}", o.stdout);
    assert!(v("DEFAULTURL").starts_with("http://172.16.28.1:18112/"));
    assert_eq!(v("OPTOUT"), "none");
    assert_eq!(v("LEFT"), "0");
}

/// Acceptance 2: pod A signs, pod B verifies it as A's; tampered content or
/// another pod's UUID fail; bad bodies get 400.
#[test]
fn pods_prove_their_identity() {
    let o = host()
        .run(&format!(
            r#"{MDS}
start_mds
rkt run --net=default-restricted "$IMG" --exec=/bin/sh -- -c '
U=$AC_METADATA_URL/acMetadata/v1
echo "AUUID=$(wget -qO- $U/pod/uuid)"
echo "SIG=$(wget -qO- --post-data "content=hello+pod+B%21" $U/pod/hmac/sign)"
' > a.out
cat a.out
auuid=$(sed -n 's/^AUUID=//p' a.out)
sig=$(sed -n 's/^SIG=//p' a.out)
[ -n "$sig" ] || fail "pod A got no signature"
enc=$(printf %s "$sig" | sed 's/+/%2B/g; s#/#%2F#g; s/=/%3D/g')
rkt run --net=default-restricted "$IMG" --exec=/bin/sh -- -c '{POD_ST}
V=$AC_METADATA_URL/acMetadata/v1/pod/hmac/verify
me=$(wget -qO- $AC_METADATA_URL/acMetadata/v1/pod/uuid)
echo "GOOD=$(st $V "uid=$1&content=hello+pod+B%21&signature=$2")"
echo "TAMPERED=$(st $V "uid=$1&content=hello+pod+C%21&signature=$2")"
echo "WRONGUID=$(st $V "uid=$me&content=hello+pod+B%21&signature=$2")"
echo "BADSIG=$(st $V "uid=$1&content=hello+pod+B%21&signature=AAAA")"
echo "MISSING=$(st $V "uid=$1&content=hello")"
echo "NOTFORM=$(st $V "%zz")"
echo "SIGNGET=$(st $AC_METADATA_URL/acMetadata/v1/pod/hmac/sign)"
' sh "$auuid" "$enc"
stop_mds
"#
        ))
        .ok();
    let v = |k: &str| o.value(k).unwrap_or_else(|| panic!("no {k}: {}", o.stdout));
    assert_eq!(v("GOOD"), "200", "{}", o.stdout);
    assert_eq!(v("TAMPERED"), "403");
    assert_eq!(v("WRONGUID"), "403");
    assert_eq!(v("BADSIG"), "403");
    assert_eq!(v("MISSING"), "400");
    assert_eq!(v("NOTFORM"), "400");
    assert_eq!(v("SIGNGET"), "405");
}

/// Acceptance 3: a token works only for its own pod, from its own address,
/// while that pod runs.
#[test]
fn tokens_are_bound_to_their_running_pod() {
    let o = host()
        .run(&format!(
            r#"{MDS}
start_mds
rkt run --net=default-restricted "$IMG" --exec=/bin/sh -- -c 'echo "AURL=$AC_METADATA_URL"; sleep 3' > a.out & a=$!
wait_for AURL= a.out
atoken=$(sed -n 's/^AURL=.*\///p' a.out)
raw='printf "GET /%s/acMetadata/v1/pod/uuid HTTP/1.0\r\n\r\n" "$1" | nc 172.17.0.1 18112 | tail -n 1'
rkt run --net=default-restricted "$IMG" --exec=/bin/sh -- -c '{POD_ST}
base=${{AC_METADATA_URL%/*}}
echo "OWN=$(st $AC_METADATA_URL/acMetadata/v1/pod/uuid)"
echo "STOLEN=$(st $base/$1/acMetadata/v1/pod/uuid)"
echo "UNREGISTERED=$(st $base/0000000000000000000000000000000000000000000000000000000000000000/acMetadata/v1/pod/uuid)"
echo "UNKNOWNPATH=$(st $AC_METADATA_URL/acMetadata/v1/pod/nothing)"
echo "NOTOKEN=$(st $base/acMetadata/v1/pod/uuid)"
echo "STOLENBODY=$(sh -c "$2" sh "$1")"
' sh "$atoken" "$raw"
wait $a
rkt run --net=default-restricted "$IMG" --exec=/bin/sh -- -c '{POD_ST}
echo "AFTEREXIT=$(st ${{AC_METADATA_URL%/*}}/$1/acMetadata/v1/pod/uuid)"
echo "AFTEREXITBODY=$(sh -c "$2" sh "$1")"
' sh "$atoken" "$raw"
echo "LEFT=$(ls /run/rkt/metadata/pods | wc -l)"
# From the host itself (not a pod address), and malformed requests.
code() {{ curl -s -o /dev/null -w '%{{http_code}}' "$@"; }}
echo "HOSTSTOLEN=$(code http://127.0.0.1:18112/$atoken/acMetadata/v1/pod/uuid)"
echo "HOSTROOT=$(code http://127.0.0.1:18112/)"
head -c 100000 /dev/zero | tr '\0' a > big
echo "HOSTBIG=$(code --data-binary @big http://127.0.0.1:18112/$atoken/acMetadata/v1/pod/hmac/sign)"
echo "GARBAGE=$(printf 'NONSENSE\r\n\r\n' | "$IMG/bin/busybox" nc 127.0.0.1 18112 | head -n 1 | tr -d '\r')"
stop_mds
"#
        ))
        .ok();
    let v = |k: &str| o.value(k).unwrap_or_else(|| panic!("no {k}: {}", o.stdout));
    assert_eq!(v("OWN"), "200", "{}", o.stdout);
    assert_eq!(v("STOLEN"), "403");
    assert_eq!(v("UNREGISTERED"), "403");
    assert_eq!(v("UNKNOWNPATH"), "404");
    assert_eq!(v("NOTOKEN"), "404");
    // While A ran its token was known but refused to B; after A exited the
    // token is gone altogether.
    assert!(
        v("STOLENBODY").contains("belongs to another pod"),
        "{}",
        o.stdout
    );
    assert_eq!(v("AFTEREXIT"), "403");
    assert!(
        v("AFTEREXITBODY").contains("unknown or expired token"),
        "{}",
        o.stdout
    );
    assert_eq!(v("LEFT"), "0");
    assert_eq!(v("HOSTSTOLEN"), "403");
    assert_eq!(v("HOSTROOT"), "404");
    assert_eq!(v("HOSTBIG"), "413");
    assert_eq!(v("GARBAGE"), "HTTP/1.1 400 Bad Request");
}

/// Acceptance 4: the service killed and started again while a pod runs
/// keeps answering for it, and still verifies what it signed before.
#[test]
fn restarted_service_keeps_running_pods() {
    let o = host()
        .run(&format!(
            r#"{MDS}
start_mds
first=$mds
rkt run --net=default-restricted "$IMG" --exec=/bin/sh -- -c '{POD_ST}
U=$AC_METADATA_URL/acMetadata/v1
echo "BEFORE=$(st $U/pod/uuid)"
me=$(wget -qO- $U/pod/uuid)
sig=$(wget -qO- --post-data content=persist $U/pod/hmac/sign | sed "s/+/%2B/g; s#/#%2F#g; s/=/%3D/g")
echo "SIGNED=yes"
sleep 3
echo "AFTER=$(st $U/pod/uuid)"
echo "VERIFY=$(st $U/pod/hmac/verify "uid=$me&content=persist&signature=$sig")"
' > a.out & a=$!
wait_for SIGNED= a.out
# Pod B registers, then exits while the service is down: its unregistration
# is lost, and the restarted service must drop it (its runtime is gone).
rkt run --net=default-restricted "$IMG" --exec=/bin/sh -- -c 'echo "BURL=$AC_METADATA_URL"; sleep 0.5' > b.out & b=$!
wait_for BURL=http b.out
stop_mds
[ ! -e /run/rkt/metadata-svc.sock ] || fail "socket left after SIGTERM"
echo "PERSISTED=$(ls /run/rkt/metadata/pods | wc -l)"
wait $b
start_mds
[ "$mds" != "$first" ] || fail "same service process"
# The service binds its socket before it logs its start line: wait for the
# second start line, not just the socket.
for i in $(seq 100); do [ "$(grep -c 'pod(s) reloaded' /tmp/mds.log)" -ge 2 ] && break; sleep 0.05; done
echo "RELOADED=$(grep -o '[0-9]* pod(s) reloaded' /tmp/mds.log | tail -n 1)"
wait $a
cat a.out
echo "LEFT=$(ls /run/rkt/metadata/pods | wc -l)"
stop_mds
"#
        ))
        .ok();
    let v = |k: &str| o.value(k).unwrap_or_else(|| panic!("no {k}: {}", o.stdout));
    assert_eq!(v("BEFORE"), "200", "{}", o.stdout);
    assert_eq!(v("PERSISTED"), "2", "{}", o.stdout);
    assert_eq!(v("RELOADED"), "1 pod(s) reloaded");
    assert_eq!(v("AFTER"), "200", "{}", o.stdout);
    assert_eq!(v("VERIFY"), "200", "{}", o.stdout);
    assert_eq!(v("LEFT"), "0");
}

/// Many pods at once: each one gets its own answers.
#[test]
fn many_pods_at_once() {
    let o = host()
        .run(&format!(
            r#"{MDS}
start_mds
pids=""
for i in 1 2 3 4 5 6; do
  rkt run --net=default-restricted --annotation=n=$i "$IMG" --exec=/bin/sh -- -c '
U=$AC_METADATA_URL/acMetadata/v1
for j in 1 2 3 4 5; do echo "$(wget -qO- $U/pod/annotations/n)"; done | sort -u | tr "\n" " "
' > pod$i.out &
  pids="$pids $!"
done
for p in $pids; do wait $p; done
for i in 1 2 3 4 5 6; do echo "POD$i=$(cat pod$i.out)"; done
stop_mds
"#
        ))
        .ok();
    for i in 1..=6 {
        assert_eq!(
            o.value(&format!("POD{i}")).as_deref().map(str::trim),
            Some(i.to_string().as_str()),
            "{}",
            o.stdout
        );
    }
}

/// A client for the limit tests, run with python3 inside a pod's network
/// namespace (so it comes from the pod's address): `flood N SECS` holds N
/// idle connections (each reopened when the service closes it) and a
/// slowloris trickling one byte a second; `hold N SECS` opens N connections
/// at once; `refused TOKEN` sends refused requests. Prints KEY=value lines.
const MC_PY: &str = r#"# Test client for the metadata service's limits; prints KEY=value lines.
import select, socket, sys, time

ADDR = ("172.17.0.1", 18112)
now = time.monotonic


def conn():
    s = socket.create_connection(ADDR, timeout=2)
    s.setblocking(False)
    return s


def closed(s):
    """True once the service closed s (FIN or reset); reads what it sent."""
    try:
        while True:
            d = s.recv(4096)
            if not d:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def flood(n, secs):
    """n idle connections, each reopened 0.2 s after the service closes it,
    and a slowloris sending one byte a second; how long they were kept."""
    start = now()
    trick, trick_t0, trick_sent, trick_cut = conn(), now(), 0, None
    idle = {}
    for _ in range(n):
        s = conn()
        idle[s] = now()
    reopen = []
    lifetimes = []
    line = b"GET /x/acMetadata/v1/pod/uuid HTTP/1.1\r\nHost: a\r\nX-Slow: " + b"a" * 1000
    print("STARTED=1", flush=True)
    next_byte = now()
    while now() - start < secs:
        t = now()
        if trick_cut is None and t >= next_byte:
            try:
                trick.send(line[trick_sent:trick_sent + 1])
                trick_sent += 1
            except OSError:
                pass
            next_byte = t + 1.0
        socks = list(idle) + ([trick] if trick_cut is None else [])
        r, _, _ = select.select(socks, [], [], 0.05)
        t = now()
        for s in r:
            if s is trick:
                if closed(s):
                    trick_cut = t - trick_t0
                continue
            if closed(s):
                lifetimes.append(t - idle.pop(s))
                s.close()
                reopen.append(t + 0.2)
        # A few at a time, so that closings are seen when they happen.
        for _ in range(10):
            if not reopen or reopen[0] > t:
                break
            reopen.pop(0)
            try:
                s = conn()
                idle[s] = now()
            except OSError:
                reopen.append(now() + 0.2)
    t = now()
    ages = [t - t0 for t0 in idle.values()]
    print(f"IDLE_MAX={max(lifetimes + ages):.2f}")
    print(f"IDLE_CLOSED={len(lifetimes)}")
    print(f"TRICKLE_CUT={'never' if trick_cut is None else f'{trick_cut:.2f}'}")
    print(f"TRICKLE_SENT={trick_sent}")


def hold(n, secs):
    """Opens n connections at once; after 1 s, how many the service closed,
    and how many of those it told why (503)."""
    socks = [conn() for _ in range(n)]
    time.sleep(1)
    told = 0
    gone = 0
    for s in socks:
        try:
            d = s.recv(4096)
        except BlockingIOError:
            continue
        except OSError:
            d = b""
        gone += 1
        told += d.startswith(b"HTTP/1.1 503")
    print(f"OPEN={n - gone}", flush=True)
    print(f"REFUSED={gone}", flush=True)
    print(f"REFUSED503={told}", flush=True)
    print("HELD=1", flush=True)
    time.sleep(secs)
    for s in socks:
        s.close()


def answer(s, limit):
    """(status, seconds until the answer and the end of it arrived)."""
    t0, data = now(), b""
    s.setblocking(True)
    s.settimeout(limit)
    try:
        while True:
            d = s.recv(4096)
            if not d:
                break
            data += d
    except OSError:
        pass
    status = data.split(b" ")[1].decode() if data.startswith(b"HTTP/1.1 ") else "none"
    return status, now() - t0


def until_reset(s, limit):
    """Keeps sending a byte every 0.1 s; seconds until the service has
    closed the connection for good (sends fail)."""
    t0 = now()
    try:
        while now() - t0 < limit:
            s.send(b"a")
            time.sleep(0.1)
    except OSError:
        return f"{now() - t0:.2f}"
    return "never"


def refused(token):
    # A POST with a bad token announcing a body it does not send.
    s = conn()
    s.send(f"POST /{token}/acMetadata/v1/pod/hmac/sign HTTP/1.1\r\nContent-Length: 60000\r\n\r\n".encode())
    status, took = answer(s, 8)
    print(f"NOBODY_STATUS={status}\nNOBODY_ANSWERED={took:.2f}")
    print(f"NOBODY_CLOSED={until_reset(s, 6)}", flush=True)
    # A body too large, trickled on after the refusal.
    s = conn()
    s.send(b"POST /x HTTP/1.1\r\nContent-Length: 10000000\r\n\r\n")
    status, took = answer(s, 8)
    print(f"BIG_STATUS={status}\nBIG_ANSWERED={took:.2f}")
    print(f"BIG_CLOSED={until_reset(s, 6)}", flush=True)
    # A GET with a bad token, the client keeping its side open.
    s = conn()
    s.send(f"GET /{token}/acMetadata/v1/pod/uuid HTTP/1.1\r\n\r\n".encode())
    status, took = answer(s, 8)
    print(f"GET_STATUS={status}\nGET_ANSWERED={took:.2f}", flush=True)


cmd = sys.argv[1]
if cmd == "flood":
    flood(int(sys.argv[2]), float(sys.argv[3]))
elif cmd == "hold":
    hold(int(sys.argv[2]), float(sys.argv[3]))
elif cmd == "refused":
    refused(sys.argv[2])
"#;

/// Shell helpers for the limit tests: /tmp/mc.py; `sleeping_pod NAME`
/// starts a registered pod whose app sleeps, sets `$pod` (its `rkt run`),
/// `$ns` (its network namespace) and `$url` (its AC_METADATA_URL); `own NS
/// URL` prints the status of a request for the pod's UUID from NS.
fn limits() -> String {
    format!("cat > /tmp/mc.py <<'PY'\n{MC_PY}\nPY\n{LIMITS}")
}

const LIMITS: &str = r#"
sleeping_pod() {
  "$RKT_BIN" $RKT_GLOBAL run --net=default-restricted "$IMG" --exec=/bin/sh -- -c 'echo "URL=$AC_METADATA_URL"; echo "UUID=$(wget -qO- $AC_METADATA_URL/acMetadata/v1/pod/uuid)"; exec sleep 60' > "$1.out" & pod=$!
  wait_for UUID=. "$1.out"
  url=$(sed -n 's/^URL=//p' "$1.out")
  ns=rkt-$(sed -n 's/^UUID=//p' "$1.out")
  [ -e "/run/netns/$ns" ] || fail "no netns $ns for pod $1"
}
own() { ip netns exec "$1" curl -s -m 5 -o /dev/null -w '%{http_code}' "$2/acMetadata/v1/pod/uuid"; }
stop_pod() { kill "$1"; wait "$1" || true; }
"#;

/// A flood from one pod (300 idle connections kept reopened, plus a
/// slowloris trickling a byte a second) starves neither a registered pod's
/// metadata nor a new `rkt run`'s registration, and the flood's connections
/// are cut at the request deadline (3 s), not kept while bytes trickle in.
#[test]
fn a_flood_starves_neither_pods_nor_registration() {
    let o = host()
        .run(&format!(
            r#"{MDS}{limits}
start_mds
sleeping_pod a; a=$pod; ans=$ns; aurl=$url
sleeping_pod f; f=$pod; fns=$ns
ip netns exec "$fns" python3 /tmp/mc.py flood 300 9 > flood.out & fl=$!
wait_for STARTED= flood.out
sleep 1
echo "AOWN=$(own "$ans" "$aurl")"
rkt run --net=default-restricted "$IMG" --exec=/bin/sh -- -c 'echo "NEWURL=${{AC_METADATA_URL:-none}}"; echo "NEWUUID=$(wget -qO- $AC_METADATA_URL/acMetadata/v1/pod/uuid)"'
echo "AOWNLATE=$(own "$ans" "$aurl")"
kill -0 $fl || fail "the flood ended before the checks"
wait $fl
cat flood.out
stop_pod $a; stop_pod $f
stop_mds
"#,
            limits = limits()
        ))
        .ok();
    let v = |k: &str| o.value(k).unwrap_or_else(|| panic!("no {k}: {}", o.stdout));
    let secs = |k: &str| -> f64 {
        v(k).parse()
            .unwrap_or_else(|_| panic!("{k} is not a number: {}", o.stdout))
    };
    // Served while the flood went on.
    assert_eq!(v("AOWN"), "200", "{}", o.stdout);
    assert_eq!(v("AOWNLATE"), "200", "{}", o.stdout);
    assert!(
        v("NEWURL").starts_with("http://172.17.0.1:18112/"),
        "{}",
        o.stdout
    );
    assert_eq!(v("NEWUUID").len(), 36, "{}", o.stdout);
    // The flood's connections: each closed by the deadline (plus the
    // client's own polling slack), the slowloris too although it never
    // stopped sending.
    assert!(secs("IDLE_MAX") <= 4.5, "{}", o.stdout);
    assert!(secs("IDLE_CLOSED") > 300.0, "{}", o.stdout);
    let cut = secs("TRICKLE_CUT");
    assert!((2.5..=4.5).contains(&cut), "{}", o.stdout);
    assert!(secs("TRICKLE_SENT") >= 2.0, "{}", o.stdout);
}

/// One pod opening more connections than its share (8) has the rest
/// refused at once (closed with a 503), while another pod is served.
#[test]
fn one_client_is_held_to_its_share() {
    let o = host()
        .run(&format!(
            r#"{MDS}{limits}
start_mds
sleeping_pod a; a=$pod; ans=$ns; aurl=$url
sleeping_pod f; f=$pod; fns=$ns
ip netns exec "$fns" python3 /tmp/mc.py hold 12 2 > hold.out & h=$!
wait_for HELD= hold.out
echo "AOWN=$(own "$ans" "$aurl")"
wait $h
cat hold.out
stop_pod $a; stop_pod $f
stop_mds
"#,
            limits = limits()
        ))
        .ok();
    let v = |k: &str| o.value(k).unwrap_or_else(|| panic!("no {k}: {}", o.stdout));
    assert_eq!(v("OPEN"), "8", "{}", o.stdout);
    assert_eq!(v("REFUSED"), "4", "{}", o.stdout);
    assert_eq!(v("REFUSED503"), "4", "{}", o.stdout);
    assert_eq!(v("AOWN"), "200", "{}", o.stdout);
}

/// A refused request is answered from its head and its connection closed:
/// a bad token announcing a body it never sends gets 403 at once (not a
/// wait for the body), and neither it nor a body too large keeps its
/// connection while the client goes on sending.
#[test]
fn refused_requests_do_not_hold_their_connection() {
    let o = host()
        .run(&format!(
            r#"{MDS}{limits}
start_mds
sleeping_pod f; f=$pod; fns=$ns
ip netns exec "$fns" python3 /tmp/mc.py refused {zeros}
stop_pod $f
stop_mds
"#,
            zeros = "0".repeat(64),
            limits = limits()
        ))
        .ok();
    let v = |k: &str| o.value(k).unwrap_or_else(|| panic!("no {k}: {}", o.stdout));
    let secs = |k: &str| -> f64 {
        let s = v(k);
        s.parse()
            .unwrap_or_else(|_| panic!("{k}={s}: the connection stayed open\n{}", o.stdout))
    };
    assert_eq!(v("NOBODY_STATUS"), "403", "{}", o.stdout);
    assert!(secs("NOBODY_ANSWERED") < 1.0, "{}", o.stdout);
    assert!(secs("NOBODY_CLOSED") < 2.0, "{}", o.stdout);
    assert_eq!(v("BIG_STATUS"), "413", "{}", o.stdout);
    assert!(secs("BIG_ANSWERED") < 1.0, "{}", o.stdout);
    assert!(secs("BIG_CLOSED") < 2.0, "{}", o.stdout);
    assert_eq!(v("GET_STATUS"), "403", "{}", o.stdout);
    assert!(secs("GET_ANSWERED") < 1.0, "{}", o.stdout);
}

/// systemd socket activation: the service takes the registration socket it
/// is handed (LISTEN_FDS) instead of binding its own.
#[test]
fn socket_activation() {
    if !std::path::Path::new("/usr/bin/systemd-socket-activate").exists() {
        eprintln!("skipped: no systemd-socket-activate");
        return;
    }
    let o = host()
        .run(
            r#"
mkdir -p /run/rkt
systemd-socket-activate -l /run/rkt/metadata-svc.sock "$RKT_BIN" metadata-service 2>/tmp/mds.log & mds=$!
for i in $(seq 100); do [ -S /run/rkt/metadata-svc.sock ] && break; sleep 0.05; done
rkt run --net=default-restricted --annotation=via=activation "$IMG" --exec=/bin/sh -- -c 'echo "VIA=$(wget -qO- $AC_METADATA_URL/acMetadata/v1/pod/annotations/via)"'
echo "LOG=$(grep -c 'socket activation' /tmp/mds.log)"
kill $mds; wait $mds || true
"#,
        )
        .ok();
    assert_eq!(
        o.value("VIA").as_deref(),
        Some("activation"),
        "{}",
        o.stdout
    );
    assert_eq!(o.value("LOG").as_deref(), Some("1"), "{}", o.stdout);
}
