//! Why an image is refused: always the image's path, then what is wrong
//! with it, as precisely as the user needs to find the file at fault.

use std::io;
use std::path::PathBuf;

use super::digest::Sha256Digest;
use super::in_root::RelPath;
use super::source::PathError;

#[derive(Debug, thiserror::Error)]
#[error("image {image}: {problem}")]
pub struct ImageError {
    pub image: String,
    pub problem: ImageProblem,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageProblem {
    #[error("{0}; give an OCI layout directory, an OCI or docker-save archive, or a root filesystem directory")]
    Missing(io::Error),
    #[error("cannot open the image cache {}: {source}", dir.display())]
    Cache { dir: PathBuf, source: io::Error },
    #[error("cannot open: {0}")]
    Open(io::Error),
    #[error("not a readable image archive: {0}")]
    NotArchive(io::Error),
    #[error("archive holds neither index.json nor manifest.json")]
    NoIndex,
    #[error("{0}")]
    Io(io::Error),
    #[error("cannot read {name}: {source}")]
    ReadTop { name: String, source: io::Error },
    #[error("{path} is not valid JSON ({source}); the image is corrupt")]
    Json {
        path: RelPath,
        source: serde_json::Error,
    },
    #[error(
        "{what}: digest \"{raw}\" is not a sha256 digest (sha256: and 64 lower-case hex digits)"
    )]
    BadDigest { what: String, raw: String },
    #[error("{what} {digest}: {source}")]
    ReadBlob {
        what: String,
        digest: Sha256Digest,
        source: io::Error,
    },
    #[error("{what} lists no manifests")]
    NoManifests { what: String },
    #[error("index {0} lists itself (directly or through other indexes): a cycle")]
    Cycle(Sha256Digest),
    #[error("indexes nested more than {0} levels deep; refused")]
    TooDeep(usize),
    #[error("manifest has no config")]
    NoConfig,
    #[error("manifest.json lists no image")]
    NoImage,
    #[error("manifest.json: {what} {source}; refused")]
    BadPath { what: String, source: PathError },
    #[error("config {file}: {source}")]
    ReadConfig { file: String, source: io::Error },
    #[error(transparent)]
    Mismatch(#[from] Mismatch),
    #[error("{what}: the image unpacks to more than --max-image-size={limit} allows; refused (nothing of it kept); raise --max-image-size if you trust this image")]
    TooLarge { what: String, limit: String },
    #[error("{what}: {source}")]
    Layer { what: String, source: io::Error },
    #[error("cannot unpack {what}: {source}")]
    Unpack { what: String, source: io::Error },
    #[error("{what} is corrupt: {source}")]
    Corrupt { what: String, source: io::Error },
    #[error("cannot store {what}: {source}")]
    Store { what: String, source: io::Error },
}

/// What an image claims about its content and what the content is: a
/// refusal, or a warning when digests are not verified.
#[derive(Debug, thiserror::Error)]
pub enum Mismatch {
    #[error("config {file}: its content's digest is {got}; the file is corrupt or tampered with")]
    ConfigName { file: String, got: Sha256Digest },
    #[error("{what} {path}: its content's digest is {got}, not {want}; the blob is corrupt or tampered with")]
    BlobDigest {
        what: String,
        path: RelPath,
        got: Sha256Digest,
        want: Sha256Digest,
    },
    #[error("{what} {path}: {got} bytes, the descriptor says {want}")]
    BlobSize {
        what: String,
        path: RelPath,
        got: u64,
        want: u64,
    },
    #[error("the manifest lists {layers} layer(s) but the config's rootfs.diff_ids has {diff_ids}; the image is corrupt")]
    LayerCount { layers: usize, diff_ids: usize },
    #[error("config rootfs.diff_ids[{index}] {value:?} is not a sha256 digest (sha256: and 64 lower-case hex digits); the image is corrupt or hostile")]
    BadDiffId { index: usize, value: String },
    #[error("{what}: the config's diff id is {want} but the layer's content is {got} (verified earlier); the image is corrupt or tampered with")]
    CachedDiffId {
        what: String,
        want: Sha256Digest,
        got: Sha256Digest,
    },
    #[error("{what}: the manifest says its digest is {want} but its content is {got}; the blob is corrupt or tampered with")]
    LayerDigest {
        what: String,
        want: Sha256Digest,
        got: Sha256Digest,
    },
    #[error("{what}: the manifest says it is {want} bytes but it is {got}")]
    LayerSize { what: String, want: u64, got: u64 },
    #[error("{what}: the config's diff id is {want} but the layer's content is {got}; the image is corrupt or tampered with")]
    DiffId {
        what: String,
        want: Sha256Digest,
        got: Sha256Digest,
    },
}
