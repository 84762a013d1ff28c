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
use super::{
    diff_ids, err, parse_config, parse_json, read_json, Image, ImageError, ImageProblem, Mismatch,
    MAX_JSON,
};

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
            ImageProblem::BadDigest {
                what: what.into(),
                raw: raw.into(),
            },
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
    let data = src.read_small(&path, MAX_JSON).map_err(|source| {
        err(
            ctx.image,
            ImageProblem::ReadBlob {
                what: what.into(),
                digest: digest.clone(),
                source,
            },
        )
    })?;
    let got = Sha256Digest::of(&data);
    if got != *digest {
        ctx.mismatch(Mismatch::BlobDigest {
            what: what.into(),
            path: path.clone(),
            got,
            want: digest.clone(),
        })?;
    }
    if let Some(size) = size {
        if size != data.len() as u64 {
            ctx.mismatch(Mismatch::BlobSize {
                what: what.into(),
                path: path.clone(),
                got: data.len() as u64,
                want: size,
            })?;
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
        .ok_or_else(|| err(ctx.image, ImageProblem::NoManifests { what: what.into() }))
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
            return Err(err(ctx.image, ImageProblem::Cycle(digest)));
        }
        if seen.len() > MAX_NESTING + 1 {
            return Err(err(ctx.image, ImageProblem::TooDeep(MAX_NESTING)));
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
        .ok_or_else(|| err(ctx.image, ImageProblem::NoConfig))?;
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
        lease: None,
    })
}
