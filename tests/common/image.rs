//! Test images built at test time from Debian's busybox-static: a root
//! filesystem directory, and from it an OCI layout, an OCI archive and a
//! docker-save archive.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use super::tmp_dir;

/// Builds `dest` once (across test processes) by building into a temp dir
/// and renaming it into place.
fn build_once(dest: &Path, build: impl FnOnce(&Path)) {
    if dest.exists() {
        return;
    }
    let tmp = dest.with_extension(format!("tmp{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    let _ = fs::remove_file(&tmp);
    build(&tmp);
    if fs::rename(&tmp, dest).is_err() {
        let _ = fs::remove_dir_all(&tmp);
        let _ = fs::remove_file(&tmp);
    }
}

/// A root filesystem with /bin/busybox and its applet links.
pub fn busybox_rootfs() -> PathBuf {
    static ONCE: OnceLock<PathBuf> = OnceLock::new();
    ONCE.get_or_init(|| {
        let dest = tmp_dir().join("busybox-rootfs");
        build_once(&dest, |tmp| {
            let bin = tmp.join("bin");
            fs::create_dir_all(&bin).unwrap();
            for d in [
                "etc", "tmp", "proc", "sys", "dev", "root", "var", "usr/bin", "sbin",
            ] {
                fs::create_dir_all(tmp.join(d)).unwrap();
            }
            fs::copy("/bin/busybox", bin.join("busybox"))
                .expect("busybox-static is installed (/bin/busybox)");
            let list = std::process::Command::new("/bin/busybox")
                .arg("--list")
                .output()
                .unwrap();
            for applet in String::from_utf8_lossy(&list.stdout).lines() {
                if applet != "busybox" {
                    std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
                }
            }
            fs::write(
                tmp.join("etc/resolv.conf"),
                "# the image's own resolv.conf (no nameserver: tests send nothing outside their namespaces)\noptions timeout:1 attempts:1\n",
            )
            .unwrap();
            fs::write(tmp.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        });
        dest
    })
    .clone()
}

fn tar_dir(src: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", src).unwrap();
    b.into_inner().unwrap()
}

fn write_blob(root: &Path, data: &[u8]) -> String {
    let hex = format!("{:x}", Sha256::digest(data));
    let dir = root.join("blobs/sha256");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(&hex), data).unwrap();
    format!("sha256:{hex}")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn config_json(layer: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {
            "Entrypoint": ["/bin/sh", "-c"],
            "Cmd": ["echo from-image-cmd $GREETING; pwd"],
            "Env": ["PATH=/bin", "GREETING=hello-oci"],
            "WorkingDir": "/tmp",
            "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
            "Volumes": {"/data": {}}
        },
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{:x}", Sha256::digest(layer))]}
    }))
    .unwrap()
}

/// An OCI image layout directory (one gzip layer, with an entrypoint, cmd,
/// env, working directory, two exposed ports, `80/tcp` and `53/udp`, and a
/// mount point, `/data`),
/// named `busybox-test:1`.
pub fn oci_layout() -> PathBuf {
    static ONCE: OnceLock<PathBuf> = OnceLock::new();
    ONCE.get_or_init(|| {
        let dest = tmp_dir().join("busybox-oci-3");
        build_once(&dest, |root| {
            let layer = tar_dir(&busybox_rootfs());
            let layer_gz = gzip(&layer);
            let layer_digest = write_blob(root, &layer_gz);
            let config = config_json(&layer);
            let config_digest = write_blob(root, &config);
            let manifest = serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer_gz.len()}]
            }))
            .unwrap();
            let manifest_digest = write_blob(root, &manifest);
            fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
            fs::write(
                root.join("index.json"),
                serde_json::to_vec(&serde_json::json!({
                    "schemaVersion": 2,
                    "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": manifest.len(),
                                   "annotations": {"org.opencontainers.image.ref.name": "busybox-test:1"}}]
                }))
                .unwrap(),
            )
            .unwrap();
        });
        dest
    })
    .clone()
}

/// The OCI layout as a tar archive.
pub fn oci_archive() -> PathBuf {
    let dest = tmp_dir().join("busybox-oci-3.tar");
    if !dest.exists() {
        let tmp = dest.with_extension(format!("tmp{}", std::process::id()));
        fs::write(&tmp, tar_dir(&oci_layout())).unwrap();
        fs::rename(tmp, &dest).unwrap();
    }
    dest
}

/// A `docker save` archive (manifest.json, config, layer.tar) named
/// `docker.test/busybox:2`.
pub fn docker_archive() -> PathBuf {
    let dest = tmp_dir().join("busybox-docker-3.tar");
    if !dest.exists() {
        let layer = tar_dir(&busybox_rootfs());
        let config = config_json(&layer);
        let config_name = format!("{:x}.json", Sha256::digest(&config));
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |name: &str, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, data).unwrap();
        };
        add(&config_name, &config);
        add("abc123/layer.tar", &layer);
        let manifest = serde_json::to_vec(&serde_json::json!([{
            "Config": config_name, "RepoTags": ["docker.test/busybox:2"], "Layers": ["abc123/layer.tar"]
        }]))
        .unwrap();
        add("manifest.json", &manifest);
        let tmp = dest.with_extension(format!("tmp{}", std::process::id()));
        fs::write(&tmp, b.into_inner().unwrap()).unwrap();
        fs::rename(tmp, &dest).unwrap();
    }
    dest
}
