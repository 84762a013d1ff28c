//! Issue 11 (a pod boundary that holds), images: each test crafts a hostile
//! image and shows the attack failing, and the normal path still working.
//! Every host file an attack aims at is a canary the script creates on the
//! throwaway host's tmpfs (/etc/rkt/canary...), so a missing protection
//! harms nothing real.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{tmp_dir, Host};
use sha2::{Digest, Sha256};

// ---- building images ----------------------------------------------------

/// One tar entry, written with raw header names (the tar crate refuses
/// `..` and absolute names, which is what an attacker writes).
#[derive(Clone)]
struct E {
    name: String,
    kind: tar::EntryType,
    data: Vec<u8>,
    link: String,
    mode: u32,
}

fn file(name: &str, data: &[u8]) -> E {
    E {
        name: name.into(),
        kind: tar::EntryType::Regular,
        data: data.to_vec(),
        link: String::new(),
        mode: 0o644,
    }
}

fn dir(name: &str) -> E {
    E {
        kind: tar::EntryType::Directory,
        mode: 0o755,
        ..file(name, b"")
    }
}

fn symlink(name: &str, target: &str) -> E {
    E {
        kind: tar::EntryType::Symlink,
        link: target.into(),
        mode: 0o777,
        ..file(name, b"")
    }
}

fn hardlink(name: &str, target: &str) -> E {
    E {
        kind: tar::EntryType::Link,
        link: target.into(),
        ..file(name, b"")
    }
}

fn tar(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(e.kind);
        h.set_size(e.data.len() as u64);
        h.set_mode(e.mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        if matches!(e.kind, tar::EntryType::Char | tar::EntryType::Block) {
            // /dev/null's numbers: harmless were the node made.
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        }
        let old = h.as_old_mut();
        assert!(e.name.len() < 100 && e.link.len() < 100);
        old.name[..e.name.len()].copy_from_slice(e.name.as_bytes());
        old.linkname[..e.link.len()].copy_from_slice(e.link.as_bytes());
        h.set_cksum();
        b.append(&h, &e.data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// The busybox root filesystem as a layer tar.
fn busybox_tar() -> &'static [u8] {
    static ONCE: OnceLock<Vec<u8>> = OnceLock::new();
    ONCE.get_or_init(|| {
        let mut b = tar::Builder::new(Vec::new());
        b.follow_symlinks(false);
        b.append_dir_all(".", common::image::busybox_rootfs())
            .unwrap();
        b.into_inner().unwrap()
    })
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn sha(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

/// A layer: its tar, and whether the blob is gzip-compressed.
struct Layer(Vec<u8>, bool);

fn config(diff_ids: &[String], cmd: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/bin/sh", "-c"], "Cmd": [cmd], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids}
    }))
    .unwrap()
}

fn write_blob(root: &Path, data: &[u8]) -> String {
    let d = sha(data);
    fs::create_dir_all(root.join("blobs/sha256")).unwrap();
    fs::write(root.join("blobs/sha256").join(&d[7..]), data).unwrap();
    d
}

/// An OCI layout in `root` running `cmd`; `diff_ids` overrides the true ones.
fn oci(root: &Path, layers: &[Layer], diff_ids: Option<Vec<String>>, cmd: &str) -> PathBuf {
    let mut descs = Vec::new();
    let mut diffs = Vec::new();
    for Layer(t, gz) in layers {
        let blob = if *gz { gzip(t) } else { t.clone() };
        let d = write_blob(root, &blob);
        descs.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": blob.len()}));
        diffs.push(sha(t));
    }
    let cfg = config(&diff_ids.unwrap_or(diffs), cmd);
    let cfg_d = write_blob(root, &cfg);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_d, "size": cfg.len()},
        "layers": descs
    }))
    .unwrap();
    let m = write_blob(root, &manifest);
    index(root, &m, manifest.len());
    root.to_path_buf()
}

fn index(root: &Path, digest: &str, size: usize) {
    fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    fs::write(
        root.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size}]
        }))
        .unwrap(),
    )
    .unwrap();
}

/// A `docker save` archive holding `members`, with a manifest.json naming
/// `config` and `layers` by path.
fn docker(path: &Path, members: &[E], config: &str, layers: &[&str]) -> PathBuf {
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": config, "RepoTags": ["docker.test/crafted:1"], "Layers": layers
    }]))
    .unwrap();
    let mut all = members.to_vec();
    all.push(file("manifest.json", &manifest));
    fs::write(path, tar(&all)).unwrap();
    path.to_path_buf()
}

/// A directory for one test's images, removed afterwards.
fn workdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("imgsec-")
        .tempdir_in(tmp_dir())
        .unwrap()
}

fn sub(t: &tempfile::TempDir, name: &str) -> PathBuf {
    let p = t.path().join(name);
    fs::create_dir_all(&p).unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

// ---- the attacks ----------------------------------------------------------

/// Whiteouts and opaque markers through symlinks the same layer planted
/// (absolute and `../..` ones) delete nothing and create nothing outside the
/// cache: they land inside the layer, as do hard links through them.
/// Ordinary whiteouts and opaque directories still hide lower files in the
/// pod.
#[test]
fn whiteouts_through_planted_symlinks_stay_in_the_layer() {
    let t = workdir();
    let files = tar(&[
        dir("etc/"),
        dir("etc/rkt/"),
        dir("etc/rkt/canary/"),
        file("etc/rkt/canary/file", b"image-file\n"),
        dir("etc/rkt/canary/tree1/"),
        file("etc/rkt/canary/tree1/inner", b"image-inner\n"),
        dir("etc/rkt/canary/tree2/"),
        file("etc/rkt/canary/tree2/inner", b"image-inner2\n"),
        dir("data/"),
        file("data/gone", b"x"),
        file("data/keep", b"x"),
        dir("opq/"),
        file("opq/old", b"x"),
    ]);
    let attack = tar(&[
        dir("etc/"),
        dir("etc/rkt/"),
        dir("etc/rkt/canary/"),
        dir("etc/rkt/canary/tree2/"),
        symlink("a", "/etc/rkt/canary"),
        file("a/.wh.file", b""),
        symlink("r", "../../../../../../../../../etc/rkt/canary"),
        file("r/.wh.tree1", b""),
        symlink("o", "/etc/rkt/canary/tree2"),
        file("o/.wh..wh..opq", b""),
        symlink("m", "/etc/rkt/canary"),
        file("m/made/.wh..wh..opq", b""),
        file("m/made2/.wh.x", b""),
        // Hard links resolve their target inside the layer too.
        file("etc/rkt/canary/linked", b"layer-own\n"),
        hardlink("h1", "/etc/rkt/canary/linked"),
        hardlink("h2", "a/linked"),
        hardlink("h3", "r/linked"),
        file("data/.wh.gone", b""),
        file("opq/.wh..wh..opq", b""),
        file("opq/new", b"x"),
    ]);
    let img = oci(
        &sub(&t, "wh"),
        &[
            Layer(busybox_tar().to_vec(), true),
            Layer(files, false),
            Layer(attack, false),
        ],
        None,
        r#"echo "POD_FILE=$(cat /etc/rkt/canary/file 2>/dev/null || echo none)"
echo "POD_TREE1=$(ls /etc/rkt/canary/tree1 2>/dev/null || echo none)"
echo "POD_TREE2=$(ls /etc/rkt/canary/tree2 | tr '\n' ' ')"
echo "POD_DATA=$(ls /data | tr '\n' ' ')"
echo "POD_OPQ=$(ls /opq | tr '\n' ' ')"
echo "POD_LINKS=$(cat /h1 /h2 /h3 | tr '\n' ' ')""#,
    );
    let host = Host::new().start();
    for (path, content) in [
        ("/etc/rkt/canary/file", "host-file\n"),
        ("/etc/rkt/canary/tree1/inner", "host-inner\n"),
        ("/etc/rkt/canary/tree2/inner", "host-inner2\n"),
    ] {
        host.write(path, content);
    }
    let o = host.rkt(&["run", "--net=none", s(&img)]).ok();
    // The host's canaries: untouched, nothing new beside them.
    assert_eq!(host.read("/etc/rkt/canary/file"), "host-file\n");
    assert_eq!(host.read("/etc/rkt/canary/tree1/inner"), "host-inner\n");
    assert_eq!(host.read("/etc/rkt/canary/tree2/inner"), "host-inner2\n");
    assert_eq!(host.ls("/etc/rkt/canary"), ["file", "tree1", "tree2"]);
    assert_eq!(host.ls("/etc/rkt"), ["canary", "net.d"]);
    let nlink = host
        .exec(&["stat", "-c", "%h", "/etc/rkt/canary/file"])
        .ok();
    assert_eq!(nlink.stdout.trim(), "1");
    // The image ran; its whiteouts worked on its own files.
    let v = |k: &str| o.value(k).unwrap_or_default();
    assert_eq!(v("POD_FILE"), "none", "{o:?}");
    assert_eq!(v("POD_TREE1"), "none", "{o:?}");
    assert_eq!(v("POD_TREE2"), "", "opaque inside the layer: {o:?}");
    assert_eq!(v("POD_DATA"), "keep ", "{o:?}");
    assert_eq!(v("POD_OPQ"), "new ", "{o:?}");
    assert_eq!(v("POD_LINKS"), "layer-own layer-own layer-own ", "{o:?}");
    host.rkt(&["gc", "--grace-period=0s"]).ok();
    host.finish();
}

/// A diff id is a file name only once it is `sha256:` + 64 lower-case hex:
/// traversal, non-hex and short ones are refused naming the field, no host
/// directory becomes the pod's root and nothing is unpacked outside the
/// cache.
#[test]
fn diff_id_path_traversal_refused() {
    let t = workdir();
    let bb = || Layer(busybox_tar().to_vec(), true);
    let small = || Layer(tar(&[file("small", b"x")]), false);
    let cmd = "cat /secret 2>/dev/null || echo no-secret";
    let cases: Vec<(&str, Vec<Layer>, Vec<String>)> = vec![
        (
            "up",
            vec![bb()],
            vec!["../../../../../etc/rkt/canaryroot".into()],
        ),
        (
            "prefixed",
            vec![bb(), small()],
            vec![
                "sha256:..".into(),
                "sha256:../../../../../../etc/rkt/canaryroot".into(),
            ],
        ),
        (
            "outside",
            vec![bb(), small()],
            vec![
                "sha256:..".into(),
                "sha256:../../../../../../etc/rkt/newlayer".into(),
            ],
        ),
        (
            "nonhex",
            vec![bb()],
            vec![format!("sha256:{}", "z".repeat(64))],
        ),
        ("short", vec![bb()], vec!["sha256:abcd".into()]),
        (
            "upper",
            vec![bb()],
            vec![sha(busybox_tar())
                .to_uppercase()
                .replace("SHA256", "sha256")],
        ),
    ];
    let host = Host::new().start();
    host.write("/etc/rkt/canaryroot/secret", "HOST-SECRET\n");
    // A shell in the canary, so that were it made a pod's root, it would show.
    let shell = format!("{}/bin", host.image());
    host.exec(&["cp", "-a", &shell, "/etc/rkt/canaryroot/"])
        .ok();
    let good = oci(&sub(&t, "good"), &[bb()], None, cmd);
    let ran = host.rkt(&["run", "--net=none", s(&good)]).ok();
    assert_eq!(ran.stdout.trim(), "no-secret");
    for (name, layers, diffs) in cases.into_iter() {
        let img = oci(&sub(&t, name), &layers, Some(diffs), cmd);
        let o = host.rkt(&["run", "--net=none", s(&img)]);
        assert!(!o.stdout.contains("HOST-SECRET"), "{name}: {o:?}");
        let err = o.fails_with(254, "rootfs.diff_ids");
        assert!(err.contains("not a sha256 digest"), "{name}: {err}");
    }
    assert_eq!(host.ls("/etc/rkt"), ["canaryroot", "net.d"]);
    assert_eq!(host.read("/etc/rkt/canaryroot/secret"), "HOST-SECRET\n");
    assert!(host.ls("/var/lib/rkt/cas/tmp").is_empty());
    host.rkt(&["gc", "--grace-period=0s"]).ok();
    host.finish();
}

/// A docker-save archive cannot name a host file as its config or a layer:
/// absolute paths in manifest.json and symlink members are refused, and the
/// host file's content never reaches a pod.
#[test]
fn docker_save_cannot_read_host_files() {
    let t = workdir();
    let bb = busybox_tar();
    let secret_layer = tar(&[file("secret", b"HOST-SECRET\n")]);
    let host_cfg = config(&[sha(bb)], "echo HOST-CONFIG");
    let cfg = config(&[sha(bb), sha(&secret_layer)], "cat /secret");
    let cfg_name = format!("{}.json", &sha(&cfg)[7..]);
    let cfg1 = config(&[sha(bb)], "echo image-config");
    let cfg1_name = format!("{}.json", &sha(&cfg1)[7..]);
    fs::write(t.path().join("secret.tar"), &secret_layer).unwrap();
    fs::write(t.path().join("config.json"), &host_cfg).unwrap();
    let base = vec![
        file("bb/layer.tar", bb),
        file(&cfg_name, &cfg),
        file(&cfg1_name, &cfg1),
    ];
    let with = |extra: E| {
        let mut v = base.clone();
        v.push(extra);
        v
    };
    let abs_layer = docker(
        &t.path().join("abs-layer.tar"),
        &base,
        &cfg_name,
        &["bb/layer.tar", "/etc/rkt/canary/secret.tar"],
    );
    let abs_config = docker(
        &t.path().join("abs-config.tar"),
        &base,
        "/etc/rkt/canary/config.json",
        &["bb/layer.tar"],
    );
    let link_layer = docker(
        &t.path().join("link-layer.tar"),
        &with(symlink("evil/layer.tar", "/etc/rkt/canary/secret.tar")),
        &cfg_name,
        &["bb/layer.tar", "evil/layer.tar"],
    );
    let link_config = docker(
        &t.path().join("link-config.tar"),
        &with(symlink("cfg.json", "/etc/rkt/canary/config.json")),
        "cfg.json",
        &["bb/layer.tar"],
    );
    let dotdot = docker(
        &t.path().join("dotdot.tar"),
        &base,
        &cfg_name,
        &["bb/layer.tar", "../../../../../etc/rkt/canary/secret.tar"],
    );
    let good = docker(
        &t.path().join("good.tar"),
        &base,
        &cfg1_name,
        &["bb/layer.tar"],
    );
    let host = Host::new().start();
    host.exec(&["mkdir", "-p", "/etc/rkt/canary"]).ok();
    for f in ["secret.tar", "config.json"] {
        let from = t.path().join(f);
        host.exec(&["cp", s(&from), &format!("/etc/rkt/canary/{f}")])
            .ok();
    }
    for (name, img, want) in [
        ("absolute layer", &abs_layer, "absolute path"),
        ("absolute config", &abs_config, "absolute path"),
        ("symlinked layer", &link_layer, "symbolic link"),
        ("symlinked config", &link_config, "symbolic link"),
        ("layer out of the image", &dotdot, "leaves the image"),
    ] {
        let o = host.rkt(&["run", "--net=none", s(img)]);
        assert!(
            !o.stdout.contains("HOST-SECRET") && !o.stdout.contains("HOST-CONFIG"),
            "{name}: {o:?}"
        );
        let err = o.fails_with(254, want);
        assert!(err.contains("refused"), "{name}: {err}");
    }
    let ran = host.rkt(&["run", "--net=none", s(&good)]).ok();
    assert_eq!(ran.stdout.trim(), "image-config");
    host.rkt(&["gc", "--grace-period=0s"]).ok();
    host.finish();
}

/// An index that lists itself is refused at once instead of looping.
#[test]
fn self_referencing_index_refused_quickly() {
    let t = workdir();
    let root = sub(&t, "loop");
    // The blob is stored under a digest that is not its own, and lists
    // that digest: index.json -> D -> D -> ...
    let d = sha(b"not the content");
    let blob = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": d, "size": 10}]
    }))
    .unwrap();
    fs::create_dir_all(root.join("blobs/sha256")).unwrap();
    fs::write(root.join("blobs/sha256").join(&d[7..]), &blob).unwrap();
    index(&root, &d, 10);
    let good = oci(
        &sub(&t, "good"),
        &[Layer(busybox_tar().to_vec(), true)],
        None,
        "echo ran",
    );
    let host = Host::new().start();
    let start = std::time::Instant::now();
    let bin = common::rkt_bin().display().to_string();
    // `timeout 10` only bounds the test, should the loop come back.
    let o = host.exec(&["timeout", "10", &bin, "run", "--net=none", s(&root)]);
    let took = start.elapsed();
    let err = o.fails_with(254, "digest");
    assert!(took.as_millis() < 2000, "took {took:?}");
    assert!(err.contains(&d[7..]), "{err}");
    let ran = host.rkt(&["run", "--net=none", s(&good)]).ok();
    assert_eq!(ran.stdout.trim(), "ran");
    host.rkt(&["gc", "--grace-period=0s"]).ok();
    host.finish();
}

/// A layer that unpacks to more than --max-image-size is refused and
/// nothing of it stays in the cache; a larger limit lets the same image run.
#[test]
fn size_limit_refuses_a_decompression_bomb() {
    let t = workdir();
    // 64 MiB of zeros: about 64 KiB gzip-compressed.
    let bomb = tar(&[file("zeros", &vec![0u8; 64 << 20])]);
    let bomb_hex = sha(&bomb)[7..].to_string();
    let img = oci(
        &sub(&t, "bomb"),
        &[Layer(busybox_tar().to_vec(), true), Layer(bomb, true)],
        None,
        "wc -c < /zeros",
    );
    let host = Host::new().start();
    let run = |limit: Option<&str>| {
        let flag = limit.map(|l| format!("--max-image-size={l}"));
        let mut args: Vec<&str> = flag.iter().map(String::as_str).collect();
        args.extend(["run", "--net=none", s(&img)]);
        host.rkt(&args)
    };
    let cached = || {
        host.ls("/var/lib/rkt/cas/layers/sha256")
            .iter()
            .filter(|l| l.contains(&bomb_hex))
            .count()
    };
    let err = run(Some("32M")).fails_with(254, "--max-image-size=32M");
    assert!(
        err.contains("layer 2 of 2") && err.contains("refused"),
        "{err}"
    );
    assert!(
        host.ls("/var/lib/rkt/cas/tmp").is_empty(),
        "nothing of it kept"
    );
    assert_eq!(cached(), 0);
    run(Some("lots")).fails_with(254, "--max-image-size=lots");
    let big = run(Some("100M")).ok();
    assert_eq!(big.stdout.trim(), (64u64 << 20).to_string());
    assert_eq!(
        run(None).ok().stdout,
        big.stdout,
        "the default limit is larger"
    );
    assert_eq!(cached(), 1);
    host.rkt(&["gc", "--grace-period=0s"]).ok();
    host.finish();
}

/// A blob changed after it was named (a layer byte, the config's command)
/// is refused.
#[test]
fn tampered_blobs_refused() {
    let t = workdir();
    let payload = tar(&[file("payload", b"original-payload\n")]);
    let make = |name: &str| {
        oci(
            &sub(&t, name),
            &[
                Layer(busybox_tar().to_vec(), true),
                Layer(payload.clone(), false),
            ],
            None,
            "cat /payload",
        )
    };
    let good = make("good");
    // A byte of the (uncompressed) layer's file content.
    let layer_img = make("layer");
    let blob = layer_img.join("blobs/sha256").join(&sha(&payload)[7..]);
    let mut data = fs::read(&blob).unwrap();
    let at = data.windows(8).position(|w| w == b"original").unwrap();
    data[at..at + 8].copy_from_slice(b"TAMPERED");
    fs::write(&blob, &data).unwrap();
    // The config's command.
    let cfg_img = make("config");
    let mut changed = 0;
    for e in fs::read_dir(cfg_img.join("blobs/sha256")).unwrap() {
        let p = e.unwrap().path();
        let d = fs::read(&p).unwrap();
        if let Some(at) = d.windows(12).position(|w| w == b"cat /payload") {
            let mut d = d.clone();
            d[at..at + 12].copy_from_slice(b"echo TAMPERD");
            fs::write(&p, d).unwrap();
            changed += 1;
        }
    }
    assert_eq!(changed, 1);
    let host = Host::new().start();
    for (name, img) in [("layer", &layer_img), ("config", &cfg_img)] {
        let o = host.rkt(&["run", "--net=none", s(img)]);
        assert!(!o.stdout.contains("TAMPER"), "{name}: {o:?}");
        let err = o.fails_with(254, "digest");
        assert!(err.contains("tampered"), "{name}: {err}");
        if name == "layer" {
            assert!(err.contains("layer 2 of 2"), "{err}");
        }
    }
    assert!(host.ls("/var/lib/rkt/cas/tmp").is_empty());
    // Turned off explicitly, the check only warns; the layer is then stored
    // under the digest of what it holds, so the honest image is not poisoned.
    let insecure = host
        .rkt(&[
            "run",
            "--net=none",
            "--insecure-options=image",
            s(&layer_img),
        ])
        .ok();
    assert_eq!(insecure.stdout.trim(), "TAMPERED-payload");
    assert!(insecure.stderr.contains("digest"), "{insecure:?}");
    let uuid = host.pods("exited").remove(0);
    let status = host.rkt(&["status", &uuid]).ok();
    assert!(
        status.lines().contains(&"insecure-options=image"),
        "{status:?}"
    );
    let good = host.rkt(&["run", "--net=none", s(&good)]).ok();
    assert_eq!(good.stdout.trim(), "original-payload");
    host.rkt(&["gc", "--grace-period=0s"]).ok();
    host.finish();
}

/// A second image declaring the first image's diff id for different
/// content is refused, in both orders and both formats; the first image's
/// pods keep seeing its own files.
#[test]
fn diff_id_collision_cannot_poison_the_cache() {
    let t = workdir();
    let bb = busybox_tar();
    let orig = tar(&[file("poison.txt", b"original\n")]);
    let evil = tar(&[file("poison.txt", b"evil\n")]);
    let diffs = vec![sha(bb), sha(&orig)];
    let cmd = "cat /poison.txt";
    let oci_a = oci(
        &sub(&t, "a"),
        &[Layer(bb.to_vec(), true), Layer(orig.clone(), true)],
        None,
        cmd,
    );
    let oci_b = oci(
        &sub(&t, "b"),
        &[Layer(bb.to_vec(), true), Layer(evil.clone(), true)],
        Some(diffs.clone()),
        cmd,
    );
    let cfg = config(&diffs, cmd);
    let cfg_name = format!("{}.json", &sha(&cfg)[7..]);
    let dk = |name: &str, top: &[u8]| {
        docker(
            &t.path().join(name),
            &[
                file("bb/layer.tar", bb),
                file("top/layer.tar", top),
                file(&cfg_name, &cfg),
            ],
            &cfg_name,
            &["bb/layer.tar", "top/layer.tar"],
        )
    };
    let docker_a = dk("a.tar", &orig);
    let docker_b = dk("b.tar", &evil);
    for (order, (first, second)) in [("a-then-b", (0, 1)), ("b-then-a", (1, 0))] {
        let host = Host::new().start();
        for pair in [[&oci_a, &oci_b], [&docker_a, &docker_b]] {
            for img in [pair[first], pair[second]] {
                let o = host.rkt(&["run", "--net=none", s(img)]);
                if *img == oci_a || *img == docker_a {
                    assert_eq!((o.code, o.stdout.trim()), (0, "original"), "{order}: {o:?}");
                    continue;
                }
                let err = o.fails_with(254, &format!("config's diff id is {}", sha(&orig)));
                assert!(
                    err.contains(&format!("content is {}", sha(&evil))),
                    "{order}: {err}"
                );
                assert!(!o.stdout.contains("evil"), "{order}: {o:?}");
            }
            // The first image of the pair run again: a's files, or b refused.
            let again = host.rkt(&["run", "--net=none", s(pair[first])]);
            assert!(!again.stdout.contains("evil"), "{order}: {again:?}");
        }
        assert!(host.ls("/var/lib/rkt/cas/tmp").is_empty(), "{order}");
        host.rkt(&["gc", "--grace-period=0s"]).ok();
        host.finish();
    }
}

/// The cache is root-only: after a pod of an image holding a set-uid-root
/// binary ran, another user can neither list the cache nor execute the
/// binary from it. The pod still gets the binary with its set-uid bit.
#[test]
fn setuid_binary_unreachable_in_the_cache() {
    let t = workdir();
    let suid = tar(&[
        dir("bin/"),
        E {
            mode: 0o4755,
            ..file("bin/suid", &fs::read("/bin/busybox").unwrap())
        },
    ]);
    let img = oci(
        &sub(&t, "suid"),
        &[Layer(busybox_tar().to_vec(), true), Layer(suid, true)],
        None,
        "stat -c '%a %u' /bin/suid",
    );
    let host = Host::new().start();
    host.exec(&["mkdir", "-m", "0755", "-p", "/var/lib/rkt/cas"])
        .ok();
    let pod = host.rkt(&["run", "--net=none", s(&img)]).ok();
    assert_eq!(pod.stdout.trim(), "4755 0");
    let found = host
        .exec(&["find", "/var/lib/rkt/cas", "-name", "suid", "-type", "f"])
        .ok();
    let cached = found.lines()[0].to_string();
    let mode = |p: &str| {
        host.exec(&["stat", "-c", "%a", p])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    assert_eq!(mode(&cached), "4755");
    assert_eq!(mode("/var/lib/rkt/cas"), "700");
    // setpriv keeps its capabilities until its own exec (so it could reach
    // the file whatever the permissions): a shell already running as nobody
    // tries.
    for attempt in [
        format!("\"{cached}\" true"),
        "ls /var/lib/rkt/cas".to_string(),
    ] {
        let o = host.as_nobody(&attempt);
        assert!(
            o.code != 0 && o.stderr.contains("Permission denied"),
            "another user reached the cache: {o:?}"
        );
    }
    host.rkt(&["gc", "--grace-period=0s"]).ok();
    host.finish();
}

/// A layer left half-unpacked by a run that died is removed by `rkt gc`
/// (its directory in cas/tmp names the dead pid); a live run's is kept.
#[test]
fn gc_removes_half_unpacked_layers() {
    let host = Host::new().start();
    host.rkt(&["run", "--net=none", s(&common::image::oci_layout())])
        .ok();
    // A layer directory names the pid of the run unpacking it: 999999 does
    // not exist, 1 (the host's init, alive) does.
    host.exec(&[
        "mkdir",
        "-p",
        "/var/lib/rkt/cas/tmp/layer-1.999999/bin",
        "/var/lib/rkt/cas/tmp/layer-2.1",
    ])
    .ok();
    host.write("/var/lib/rkt/cas/tmp/layer-1.999999/bin/sh", "");
    host.rkt(&["gc", "--grace-period=0s"]).ok();
    assert_eq!(host.ls("/var/lib/rkt/cas/tmp"), ["layer-2.1"]);
    host.exec(&["rmdir", "/var/lib/rkt/cas/tmp/layer-2.1"]).ok();
    host.finish();
}

/// Device nodes in a layer are not made (a pod would reach a host device
/// through its root); FIFOs, modes and symlinks are.
#[test]
fn device_nodes_skipped_fifos_kept() {
    let t = workdir();
    let special = |name: &str, kind| E {
        kind,
        mode: 0o666,
        ..file(name, b"")
    };
    let img = oci(
        &sub(&t, "dev"),
        &[
            Layer(busybox_tar().to_vec(), true),
            Layer(
                tar(&[
                    special("chardev", tar::EntryType::Char),
                    special("blockdev", tar::EntryType::Block),
                    special("fifo", tar::EntryType::Fifo),
                    E {
                        mode: 0o2750,
                        ..file("sgid", b"x")
                    },
                    symlink("ln", "/sgid"),
                ]),
                false,
            ),
        ],
        None,
        r#"ls -d /chardev /blockdev 2>/dev/null; echo "FIFO=$(stat -c '%F %a' /fifo)"; echo "SGID=$(stat -c %a /sgid)"; echo "LN=$(readlink /ln)""#,
    );
    let host = Host::new().start();
    let o = host.rkt(&["run", "--net=none", s(&img)]).ok();
    host.rkt(&["gc", "--grace-period=0s"]).ok();
    host.finish();
    assert!(
        !o.stdout.contains("/chardev") && !o.stdout.contains("/blockdev"),
        "{}",
        o.stdout
    );
    assert_eq!(o.value("FIFO").as_deref(), Some("fifo 666"), "{}", o.stdout);
    assert_eq!(o.value("SGID").as_deref(), Some("2750"), "{}", o.stdout);
    assert_eq!(o.value("LN").as_deref(), Some("/sgid"), "{}", o.stdout);
}
