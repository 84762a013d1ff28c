//! A `docker save` archive (or the directory it unpacks to): manifest.json
//! names the config and the layer tars by path; those paths must stay
//! inside the image. The config is checked against its file name when that
//! is a digest (`<hex>.json`, `blobs/sha256/<hex>`), every layer against
//! the config's diff ids.

use serde_json::Value;

use super::digest::Sha256Digest;
use super::fetch::{self, Ctx, LayerSpec};
use super::source::{image_path, Source};
use super::{
    diff_ids, err, parse_config, parse_json, read_json, strings, Image, ImageError, ImageProblem,
    Mismatch, MAX_JSON,
};

/// The digest a config's file name claims, if it is named by one.
fn named_digest(path: &str) -> Option<Sha256Digest> {
    let file = path.rsplit('/').next()?;
    let hex = file.strip_suffix(".json").unwrap_or(file);
    Sha256Digest::parse(&format!("sha256:{hex}"))
}

pub fn load(ctx: &Ctx, src: &Source, default_name: String) -> Result<Image, ImageError> {
    let manifest = read_json(ctx.image, src, "manifest.json")?;
    let entry = manifest
        .as_array()
        .and_then(|a| a.first())
        .ok_or_else(|| err(ctx.image, ImageProblem::NoImage))?;
    let config_file = entry.get("Config").and_then(Value::as_str).unwrap_or("");
    let bad_path = |what: String, source| err(ctx.image, ImageProblem::BadPath { what, source });
    let config_path = image_path(config_file).map_err(|e| bad_path("Config".into(), e))?;
    let config_bytes = src.read_small(&config_path, MAX_JSON).map_err(|source| {
        err(
            ctx.image,
            ImageProblem::ReadConfig {
                file: config_file.into(),
                source,
            },
        )
    })?;
    let id = Sha256Digest::of(&config_bytes);
    if let Some(want) = named_digest(config_file) {
        if want != id {
            ctx.mismatch(Mismatch::ConfigName {
                file: config_file.into(),
                got: id.clone(),
            })?;
        }
    }
    let config = parse_json(ctx.image, &config_path, &config_bytes)?;
    let layers = strings(entry.get("Layers"));
    let diffs = diff_ids(ctx, &config, layers.len())?;
    let mut lowers = Vec::new();
    for (i, (l, diff_id)) in layers.iter().zip(diffs).enumerate() {
        let path = image_path(l).map_err(|e| bad_path(format!("layer {}", i + 1), e))?;
        let spec = LayerSpec {
            what: format!("layer {} of {} ({l})", i + 1, layers.len()),
            blob_digest: None,
            blob_size: None,
            diff_id,
        };
        lowers.push(fetch::layer(ctx, &spec, || src.open(&path))?);
    }
    lowers.reverse();
    let name = strings(entry.get("RepoTags")).into_iter().next();
    Ok(Image {
        name: name.unwrap_or(default_name),
        id: id.to_string(),
        lowers,
        config: parse_config(&config),
        lease: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names() {
        let hex = "a".repeat(64);
        assert!(named_digest(&format!("{hex}.json")).is_some());
        assert!(named_digest(&format!("blobs/sha256/{hex}")).is_some());
        assert!(named_digest("config.json").is_none());
        assert!(named_digest(&format!("{}.json", "A".repeat(64))).is_none());
    }
}
