//! Images, offline: an OCI image layout directory, an OCI or `docker save`
//! archive, or a plain root filesystem directory. An image is hostile until
//! checked: every blob is verified against its digest and every layer
//! against its diff id while it is unpacked (one pass), layer entries are
//! resolved inside the layer, paths the image names stay inside it, and one
//! image unpacks at most `LoadOptions::max_size` bytes. Layers are unpacked
//! once into the root-only cache `<dir>/cas/layers/sha256/<diff id hex>` and
//! shared by every pod (each pod gets an overlayfs view of them), so `run`
//! never copies an image.

mod archive;
mod cache;
mod digest;
mod docker;
mod error;
mod fetch;
pub mod in_root;
pub mod layer;
mod oci;
mod progress;
mod size;
mod source;
pub mod store;
pub mod users;

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use digest::Sha256Digest;
pub use error::{ImageError, ImageProblem, Mismatch};
pub use size::{format_size, parse_size, SizeError};

use cache::Cache;
use digest::Budget;
use fetch::Ctx;
use in_root::RelPath;
use source::Source;

/// The largest JSON document (index, manifest, config) an image may hold.
const MAX_JSON: u64 = 4 << 20;

/// The runnable part of an image config.
#[derive(Debug, Clone, Default)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    /// `ExposedPorts` keys (`8080/tcp`), as the image declares them.
    pub exposed_ports: Vec<String>,
    /// `Volumes` keys: the image's mount points (`/data`).
    pub volumes: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Image {
    pub name: String,
    pub id: String,
    /// overlayfs lower directories, top-most first.
    pub lowers: Vec<PathBuf>,
    pub config: ImageConfig,
    /// The store's lease ([`store::lease`]) for an image from the store:
    /// dropped once the pod's directory exists ([`Image::release_store`]).
    pub lease: Option<std::sync::Arc<crate::lock::FileLock>>,
}

impl Image {
    /// The pod that uses the image now names it: `rkt image gc` and `rm`
    /// may go on.
    pub fn release_store(&mut self) {
        self.lease = None;
    }
}

/// How an image is loaded.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The most uncompressed bytes the image's layers may hold together
    /// (`--max-image-size`).
    pub max_size: u64,
    /// Refuse an image whose blobs or layers do not match their digests.
    /// When false, a mismatch is a warning; layers are still stored under
    /// the digest computed, so the cache stays content-addressed.
    pub verify_digests: bool,
}

/// `--max-image-size`'s default.
pub const DEFAULT_MAX_SIZE: &str = "10G";

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            max_size: 10 << 30,
            verify_digests: true,
        }
    }
}

fn err(image: &Path, problem: impl Into<ImageProblem>) -> ImageError {
    ImageError {
        image: image.display().to_string(),
        problem: problem.into(),
    }
}

fn parse_json(image: &Path, path: &RelPath, data: &[u8]) -> Result<Value, ImageError> {
    serde_json::from_slice(data).map_err(|source| {
        err(
            image,
            ImageProblem::Json {
                path: path.clone(),
                source,
            },
        )
    })
}

/// A JSON file at the image's top (index.json, manifest.json).
fn read_json(image: &Path, src: &Source, name: &str) -> Result<Value, ImageError> {
    let path = RelPath::parse(name.as_bytes()).unwrap_or_default();
    let data = src.read_small(&path, MAX_JSON).map_err(|source| {
        err(
            image,
            ImageProblem::ReadTop {
                name: name.into(),
                source,
            },
        )
    })?;
    parse_json(image, &path, &data)
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

/// The keys of a JSON object (`{"80/tcp": {}}`), none for anything else.
fn keys(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_object)
        .map(|o| o.keys().cloned().collect())
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
        exposed_ports: keys(c.get("ExposedPorts")),
        volumes: keys(c.get("Volumes")),
    }
}

/// The config's `rootfs.diff_ids`, one per layer of the manifest; each
/// must be a sha256 digest (`None`: not one, and digests not verified).
fn diff_ids(
    ctx: &Ctx,
    config: &Value,
    layers: usize,
) -> Result<Vec<Option<Sha256Digest>>, ImageError> {
    let raw = config
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if raw.len() != layers {
        ctx.mismatch(Mismatch::LayerCount {
            layers,
            diff_ids: raw.len(),
        })?;
    }
    let mut out = Vec::with_capacity(layers);
    for i in 0..layers {
        let v = raw.get(i).cloned().unwrap_or(Value::Null);
        let s = v
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| v.to_string());
        let d = Sha256Digest::parse(&s);
        if d.is_none() {
            ctx.mismatch(Mismatch::BadDiffId { index: i, value: s })?;
        }
        out.push(d);
    }
    Ok(out)
}

fn default_name(image: &Path) -> String {
    image
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| image.display().to_string())
}

/// Loads the image named on the command line; `cas` is `<dir>/cas`.
pub fn load(arg: &str, cas: &Path, opts: &LoadOptions) -> Result<Image, ImageError> {
    let image = Path::new(arg);
    let meta = fs::metadata(image).map_err(|e| err(image, ImageProblem::Missing(e)))?;
    let open_cache = || {
        Cache::open(cas).map_err(|source| {
            err(
                image,
                ImageProblem::Cache {
                    dir: cas.to_path_buf(),
                    source,
                },
            )
        })
    };
    let (src, cache) = if meta.is_dir() {
        let src = Source::dir(image).map_err(|e| err(image, ImageProblem::Open(e)))?;
        if !src.has("index.json") && !src.has("manifest.json") {
            return rootfs(image);
        }
        (src, open_cache()?)
    } else {
        let cache = open_cache()?;
        let src = Source::archive(image, &cache.tmp_dir())
            .map_err(|e| err(image, ImageProblem::NotArchive(e)))?;
        (src, cache)
    };
    let lease = store::lease(cas).map_err(|source| {
        err(
            image,
            ImageProblem::Cache {
                dir: cas.to_path_buf(),
                source,
            },
        )
    })?;
    let budget = Budget::with_progress(opts.max_size, &default_name(image));
    let ctx = Ctx {
        image,
        cache: &cache,
        opts,
        budget: &budget,
    };
    let mut img = if src.has("index.json") {
        oci::load(&ctx, &src, default_name(image))?
    } else if src.has("manifest.json") {
        docker::load(&ctx, &src, default_name(image))?
    } else {
        return Err(err(image, ImageProblem::NoIndex));
    };
    if img.lowers.is_empty() {
        img.lowers.push(
            cache
                .empty_dir()
                .map_err(|e| err(image, ImageProblem::Io(e)))?,
        );
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    store::record(cas, &img.id, &img.name, &img.lowers, now)
        .map_err(|e| err(image, ImageProblem::Io(e)))?;
    img.lease = Some(std::sync::Arc::new(lease));
    Ok(img)
}

/// A root filesystem directory: the user's own, used as it is.
fn rootfs(image: &Path) -> Result<Image, ImageError> {
    let canon = fs::canonicalize(image).map_err(|e| err(image, ImageProblem::Io(e)))?;
    Ok(Image {
        name: default_name(&canon),
        id: Sha256Digest::of(canon.as_os_str().as_encoded_bytes()).to_string(),
        lowers: vec![canon],
        config: ImageConfig::default(),
        lease: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(root: &Path, data: &[u8]) -> String {
        let d = Sha256Digest::of(data);
        fs::create_dir_all(root.join("blobs/sha256")).unwrap();
        fs::write(root.join("blobs/sha256").join(d.hex()), data).unwrap();
        d.to_string()
    }

    fn index(root: &Path, digest: &str) {
        let idx = serde_json::json!({"schemaVersion": 2, "manifests": [{"digest": digest}]});
        fs::write(root.join("index.json"), idx.to_string()).unwrap();
    }

    fn insecure() -> LoadOptions {
        LoadOptions {
            verify_digests: false,
            ..LoadOptions::default()
        }
    }

    fn load_err(root: &Path, cas: &Path, opts: &LoadOptions) -> String {
        load(root.to_str().unwrap(), cas, opts)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn index_cycles_and_deep_nesting_refused_even_unverified() {
        let t = tempfile::tempdir().unwrap();
        let cas = t.path().join("cas");
        // An index stored under a digest it lists: a cycle once digests
        // are not checked, a digest mismatch when they are.
        let cyc = t.path().join("cycle");
        let d = Sha256Digest::of(b"elsewhere");
        let body = serde_json::json!({"manifests": [{"digest": d.as_str()}]}).to_string();
        fs::create_dir_all(cyc.join("blobs/sha256")).unwrap();
        fs::write(cyc.join("blobs/sha256").join(d.hex()), body).unwrap();
        index(&cyc, d.as_str());
        assert!(load_err(&cyc, &cas, &insecure()).contains("a cycle"));
        assert!(load_err(&cyc, &cas, &LoadOptions::default()).contains("tampered"));
        // Nine nested indexes, each honestly addressed.
        let deep = t.path().join("deep");
        let mut next = blob(&deep, b"{\"layers\": []}");
        for _ in 0..9 {
            next = blob(
                &deep,
                serde_json::json!({"manifests": [{"digest": next}]})
                    .to_string()
                    .as_bytes(),
            );
        }
        index(&deep, &next);
        assert!(load_err(&deep, &cas, &LoadOptions::default()).contains("nested more than 8"));
    }

    /// A layer tar owned by whoever runs the test (so it needs no root).
    fn layer_tar(content: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_uid(nix::unistd::geteuid().as_raw().into());
        h.set_gid(nix::unistd::getegid().as_raw().into());
        h.set_cksum();
        b.append_data(&mut h, "f", content).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn unverified_layers_are_stored_under_the_digest_computed() {
        let t = tempfile::tempdir().unwrap();
        let cas = t.path().join("cas");
        let root = t.path().join("img");
        let layer = layer_tar(b"real");
        let lie = Sha256Digest::of(b"some other layer");
        let cfg = serde_json::json!({"rootfs": {"diff_ids": [lie.as_str()]}}).to_string();
        let manifest = serde_json::json!({
            "config": {"digest": blob(&root, cfg.as_bytes())},
            "layers": [{"digest": blob(&root, &layer)}]
        })
        .to_string();
        index(&root, &blob(&root, manifest.as_bytes()));
        let e = load_err(&root, &cas, &LoadOptions::default());
        assert!(
            e.contains("layer 1 of 1") && e.contains(lie.as_str()),
            "{e}"
        );
        assert!(!cas.join("layers/sha256").join(lie.hex()).exists());
        assert_eq!(fs::read_dir(cas.join("tmp")).unwrap().count(), 0);

        let img = load(root.to_str().unwrap(), &cas, &insecure()).unwrap();
        let real = Sha256Digest::of(&layer);
        assert_eq!(img.lowers, vec![cas.join("layers/sha256").join(real.hex())]);
        assert_eq!(fs::read(img.lowers[0].join("f")).unwrap(), b"real");
        assert!(!cas.join("layers/sha256").join(lie.hex()).exists());
        // Verified again: still refused, from the record, without reading.
        let e = load_err(&root, &cas, &LoadOptions::default());
        assert!(e.contains("verified earlier"), "{e}");
        // The size limit covers cached layers too.
        let small = LoadOptions {
            max_size: 100,
            verify_digests: false,
        };
        assert!(load_err(&root, &cas, &small).contains("--max-image-size=100"));
    }
}
