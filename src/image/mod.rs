//! Images, offline: an OCI image layout directory, an OCI or `docker save`
//! archive, or a plain root filesystem directory. Layers are unpacked once
//! into `<dir>/cas/layers/<diff id>` and shared by every pod (each pod gets
//! an overlayfs view of them), so `run` never copies an image.

pub mod layer;

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The runnable part of an image config.
#[derive(Debug, Clone, Default)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
}

#[derive(Debug, Clone)]
pub struct Image {
    pub name: String,
    pub id: String,
    /// overlayfs lower directories, top-most first.
    pub lowers: Vec<PathBuf>,
    pub config: ImageConfig,
}

#[derive(Debug, thiserror::Error)]
#[error("image {image}: {msg}")]
pub struct ImageError {
    pub image: String,
    pub msg: String,
}

fn err(image: &Path, msg: impl Into<String>) -> ImageError {
    ImageError {
        image: image.display().to_string(),
        msg: msg.into(),
    }
}

fn read_json(image: &Path, path: &Path) -> Result<Value, ImageError> {
    let data =
        fs::read(path).map_err(|e| err(image, format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_slice(&data).map_err(|e| {
        err(
            image,
            format!(
                "{} is not valid JSON ({e}); the image is corrupt",
                path.display()
            ),
        )
    })
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn parse_config(cfg: &Value) -> ImageConfig {
    let c = cfg.get("config").unwrap_or(&Value::Null);
    ImageConfig {
        entrypoint: strings(c.get("Entrypoint")),
        cmd: strings(c.get("Cmd")),
        env: strings(c.get("Env")),
        working_dir: c
            .get("WorkingDir")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    }
}

/// A content-addressed blob path inside an OCI layout.
fn blob_path(root: &Path, image: &Path, digest: &str) -> Result<PathBuf, ImageError> {
    let (algo, hex) = digest
        .split_once(':')
        .ok_or_else(|| err(image, format!("bad digest \"{digest}\"")))?;
    if !hex.chars().all(|c| c.is_ascii_hexdigit())
        || !algo.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(err(image, format!("bad digest \"{digest}\"")));
    }
    Ok(root.join("blobs").join(algo).join(hex))
}

/// The cache: unpacks a layer once under its diff id.
struct Cache<'a> {
    root: &'a Path,
}

impl Cache<'_> {
    fn layer(&self, image: &Path, key: &str, tarball: &Path) -> Result<PathBuf, ImageError> {
        let safe: String = key
            .chars()
            .map(|c| if c == ':' { '-' } else { c })
            .collect();
        let dest = self.root.join("layers").join(&safe);
        if dest.is_dir() {
            return Ok(dest);
        }
        let tmp = self
            .root
            .join("tmp")
            .join(format!("{safe}.{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp)
            .map_err(|e| err(image, format!("cannot create {}: {e}", tmp.display())))?;
        layer::unpack(tarball, &tmp).map_err(|e| {
            let _ = fs::remove_dir_all(&tmp);
            err(image, format!("layer {key} is corrupt: {e}"))
        })?;
        fs::create_dir_all(self.root.join("layers")).map_err(|e| err(image, e.to_string()))?;
        if fs::rename(&tmp, &dest).is_err() {
            // Another run unpacked it first.
            let _ = fs::remove_dir_all(&tmp);
        }
        Ok(dest)
    }
}

fn load_oci(root: &Path, image: &Path, cache: &Cache) -> Result<Image, ImageError> {
    let index = read_json(image, &root.join("index.json"))?;
    let mut desc = index
        .get("manifests")
        .and_then(Value::as_array)
        .and_then(|m| m.first())
        .cloned()
        .ok_or_else(|| err(image, "index.json lists no manifests"))?;
    let name = desc
        .pointer("/annotations/io.containerd.image.name")
        .or_else(|| desc.pointer("/annotations/org.opencontainers.image.ref.name"))
        .and_then(Value::as_str)
        .map(String::from);
    // Follow nested indexes down to a manifest.
    let manifest = loop {
        let digest = desc.get("digest").and_then(Value::as_str).unwrap_or("");
        let m = read_json(image, &blob_path(root, image, digest)?)?;
        if m.get("manifests").is_some() {
            desc = m["manifests"]
                .as_array()
                .and_then(|a| a.first())
                .cloned()
                .ok_or_else(|| err(image, "nested index lists no manifests"))?;
            continue;
        }
        break m;
    };
    let config_digest = manifest
        .pointer("/config/digest")
        .and_then(Value::as_str)
        .ok_or_else(|| err(image, "manifest has no config"))?
        .to_string();
    let config = read_json(image, &blob_path(root, image, &config_digest)?)?;
    let diff_ids = strings(config.pointer("/rootfs/diff_ids"));
    let mut lowers = Vec::new();
    for (i, l) in manifest
        .get("layers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let digest = l.get("digest").and_then(Value::as_str).unwrap_or("");
        let key = diff_ids
            .get(i)
            .cloned()
            .unwrap_or_else(|| digest.to_string());
        lowers.push(cache.layer(image, &key, &blob_path(root, image, digest)?)?);
    }
    lowers.reverse();
    Ok(Image {
        name: name.unwrap_or_else(|| default_name(image)),
        id: config_digest,
        lowers,
        config: parse_config(&config),
    })
}

fn load_docker(root: &Path, image: &Path, cache: &Cache) -> Result<Image, ImageError> {
    let manifest = read_json(image, &root.join("manifest.json"))?;
    let entry = manifest
        .as_array()
        .and_then(|a| a.first())
        .ok_or_else(|| err(image, "manifest.json lists no image"))?;
    let config_file = entry.get("Config").and_then(Value::as_str).unwrap_or("");
    let config_path = root.join(config_file);
    if config_file.contains("..") {
        return Err(err(image, "manifest.json: bad Config path"));
    }
    let config_bytes = fs::read(&config_path)
        .map_err(|e| err(image, format!("cannot read {config_file}: {e}")))?;
    let config: Value = serde_json::from_slice(&config_bytes).map_err(|e| {
        err(
            image,
            format!("{config_file} is not valid JSON ({e}); the image is corrupt"),
        )
    })?;
    let diff_ids = strings(config.pointer("/rootfs/diff_ids"));
    let mut lowers = Vec::new();
    for (i, l) in strings(entry.get("Layers")).iter().enumerate() {
        if l.contains("..") {
            return Err(err(image, format!("manifest.json: bad layer path {l}")));
        }
        let key = diff_ids
            .get(i)
            .cloned()
            .unwrap_or_else(|| l.replace('/', "_"));
        lowers.push(cache.layer(image, &key, &root.join(l))?);
    }
    lowers.reverse();
    let name = strings(entry.get("RepoTags")).into_iter().next();
    Ok(Image {
        name: name.unwrap_or_else(|| default_name(image)),
        id: format!("sha256:{:x}", Sha256::digest(&config_bytes)),
        lowers,
        config: parse_config(&config),
    })
}

fn default_name(image: &Path) -> String {
    image
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| image.display().to_string())
}

fn hash_file(path: &Path) -> io::Result<String> {
    let mut f = fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:x}", h.finalize()))
}

/// Unpacks an image archive once (keyed by its sha256) and returns its directory.
fn unpack_archive(image: &Path, cas: &Path) -> Result<PathBuf, ImageError> {
    let digest = hash_file(image).map_err(|e| err(image, format!("cannot read: {e}")))?;
    let dest = cas.join("archives").join(&digest);
    if dest.is_dir() {
        return Ok(dest);
    }
    let tmp = cas
        .join("tmp")
        .join(format!("archive-{digest}.{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(|e| err(image, e.to_string()))?;
    let unpacked = layer::open_maybe_gzip(image).and_then(|r| tar::Archive::new(r).unpack(&tmp));
    if let Err(e) = unpacked {
        let _ = fs::remove_dir_all(&tmp);
        return Err(err(image, format!("not a readable image archive: {e}")));
    }
    fs::create_dir_all(cas.join("archives")).map_err(|e| err(image, e.to_string()))?;
    if fs::rename(&tmp, &dest).is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    Ok(dest)
}

/// Loads the image named on the command line; `cas` is `<dir>/cas`.
pub fn load(arg: &str, cas: &Path) -> Result<Image, ImageError> {
    let image = Path::new(arg);
    let meta = fs::metadata(image).map_err(|e| {
        err(
            image,
            format!("{e}; give an OCI layout directory, an OCI or docker-save archive, or a root filesystem directory"),
        )
    })?;
    let cache = Cache { root: cas };
    let root = if meta.is_dir() {
        image.to_path_buf()
    } else {
        unpack_archive(image, cas)?
    };
    let mut img = if root.join("index.json").is_file() {
        load_oci(&root, image, &cache)?
    } else if root.join("manifest.json").is_file() {
        load_docker(&root, image, &cache)?
    } else if meta.is_dir() {
        let canon = fs::canonicalize(image).map_err(|e| err(image, e.to_string()))?;
        Image {
            name: default_name(&canon),
            id: format!(
                "sha256:{:x}",
                Sha256::digest(canon.as_os_str().as_encoded_bytes())
            ),
            lowers: vec![canon],
            config: ImageConfig::default(),
        }
    } else {
        return Err(err(
            image,
            "archive holds neither index.json nor manifest.json",
        ));
    };
    if img.lowers.is_empty() {
        let empty = cas.join("empty");
        fs::create_dir_all(&empty).map_err(|e| err(image, e.to_string()))?;
        img.lowers.push(empty);
    }
    Ok(img)
}
