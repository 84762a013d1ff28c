//! An OCI image layout (a directory or its tar archive): index.json, then
//! content-addressed blobs, each checked against the digest that names it
//! (index -> nested indexes -> manifest -> config and layers). Nested
//! indexes are followed at most `MAX_NESTING` deep, and never in a cycle.

use std::collections::HashSet;

use serde_json::Value;

use super::digest::Sha256Digest;
use super::fetch::{self, Ctx, LayerSpec};
use super::in_root::RelPath;
use super::source::Source;
use super::{diff_ids, err, parse_config, parse_json, read_json, Image, ImageError, MAX_JSON};

/// Indexes below index.json an image may nest.
pub const MAX_NESTING: usize = 8;

/// A descriptor's digest, which names a blob file: it must be a sha256
/// digest whatever else is verified.
fn descriptor(
    ctx: &Ctx,
    desc: &Value,
    what: &str,
) -> Result<(Sha256Digest, Option<u64>), ImageError> {
    let raw = desc.get("digest").and_then(Value::as_str).unwrap_or("");
    let digest = Sha256Digest::parse(raw).ok_or_else(|| {
        err(
            ctx.image,
            format!("{what}: digest \"{raw}\" is not a sha256 digest (sha256: and 64 lower-case hex digits)"),
        )
    })?;
    Ok((digest, desc.get("size").and_then(Value::as_u64)))
}

fn blob_path(d: &Sha256Digest) -> RelPath {
    // A validated digest is `sha256:` and 64 hex digits: a safe path.
    RelPath::parse(format!("blobs/sha256/{}", d.hex()).as_bytes()).unwrap_or_default()
}

/// A small JSON blob, checked against its descriptor.
fn read_blob(
    ctx: &Ctx,
    src: &Source,
    digest: &Sha256Digest,
    size: Option<u64>,
    what: &str,
) -> Result<Value, ImageError> {
    let path = blob_path(digest);
    let data = src
        .read_small(&path, MAX_JSON)
        .map_err(|e| err(ctx.image, format!("{what} {digest}: {e}")))?;
    let got = Sha256Digest::of(&data);
    if got != *digest {
        ctx.mismatch(format!(
            "{what} {path}: its content's digest is {got}, not {digest}; the blob is corrupt or tampered with"
        ))?;
    }
    if let Some(size) = size {
        if size != data.len() as u64 {
            ctx.mismatch(format!(
                "{what} {path}: {} bytes, the descriptor says {size}",
                data.len()
            ))?;
        }
    }
    parse_json(ctx.image, &path, &data)
}

fn first_manifest(ctx: &Ctx, index: &Value, what: &str) -> Result<Value, ImageError> {
    index
        .get("manifests")
        .and_then(Value::as_array)
        .and_then(|m| m.first())
        .cloned()
        .ok_or_else(|| err(ctx.image, format!("{what} lists no manifests")))
}

pub fn load(ctx: &Ctx, src: &Source, default_name: String) -> Result<Image, ImageError> {
    let index = read_json(ctx.image, src, "index.json")?;
    let mut desc = first_manifest(ctx, &index, "index.json")?;
    let name = desc
        .pointer("/annotations/io.containerd.image.name")
        .or_else(|| desc.pointer("/annotations/org.opencontainers.image.ref.name"))
        .and_then(Value::as_str)
        .map(String::from);
    // Follow nested indexes down to a manifest.
    let mut seen = HashSet::new();
    let manifest = loop {
        let (digest, size) = descriptor(ctx, &desc, "manifest")?;
        if !seen.insert(digest.clone()) {
            return Err(err(
                ctx.image,
                format!("index {digest} lists itself (directly or through other indexes): a cycle"),
            ));
        }
        if seen.len() > MAX_NESTING + 1 {
            return Err(err(
                ctx.image,
                format!("indexes nested more than {MAX_NESTING} levels deep; refused"),
            ));
        }
        let m = read_blob(ctx, src, &digest, size, "manifest")?;
        if m.get("manifests").is_some() {
            desc = first_manifest(ctx, &m, &format!("nested index {digest}"))?;
            continue;
        }
        break m;
    };
    let config_desc = manifest
        .get("config")
        .ok_or_else(|| err(ctx.image, "manifest has no config"))?;
    let (config_digest, config_size) = descriptor(ctx, config_desc, "config")?;
    let config = read_blob(ctx, src, &config_digest, config_size, "config")?;
    let layers = manifest
        .get("layers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let diffs = diff_ids(ctx, &config, layers.len())?;
    let mut lowers = Vec::new();
    for (i, (l, diff_id)) in layers.iter().zip(diffs).enumerate() {
        let (digest, size) = descriptor(ctx, l, &format!("layer {} of {}", i + 1, layers.len()))?;
        let path = blob_path(&digest);
        let spec = LayerSpec {
            what: format!("layer {} of {} ({path})", i + 1, layers.len()),
            blob_digest: Some(digest),
            blob_size: size,
            diff_id,
        };
        lowers.push(fetch::layer(ctx, &spec, || src.open(&path))?);
    }
    lowers.reverse();
    Ok(Image {
        name: name.unwrap_or(default_name),
        id: config_digest.to_string(),
        lowers,
        config: parse_config(&config),
    })
}
