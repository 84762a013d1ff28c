//! One layer into the cache, verified in one pass: the blob is read once,
//! hashed as it is read (its digest), decompressed, hashed again (the diff
//! id: the uncompressed tar stream, drained to its end) and counted against
//! the image's size budget while the tar is unpacked into a private
//! directory; only a layer whose digests match is renamed into place. A
//! layer already in the cache is used without reading its blob when the
//! cache has seen this very source hold it (see `cache`).

use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

use super::cache::{Cache, SourceKey};
use super::digest::{Budget, HashingReader, Sha256Digest};
use super::size::format_size;
use super::source::Blob;
use super::{err, layer, ImageError, ImageProblem, LoadOptions, Mismatch};

/// What loading one image shares across its layers.
pub struct Ctx<'a> {
    pub image: &'a Path,
    pub cache: &'a Cache,
    pub opts: &'a LoadOptions,
    pub budget: &'a Budget,
}

impl Ctx<'_> {
    /// A digest that does not match: refused, or (digests not verified) a
    /// warning.
    pub fn mismatch(&self, m: Mismatch) -> Result<(), ImageError> {
        if self.opts.verify_digests {
            return Err(err(self.image, m));
        }
        tracing::warn!("image {}: {m} (digests not verified)", self.image.display());
        Ok(())
    }

    fn over_budget(&self, what: &str) -> ImageError {
        err(
            self.image,
            ImageProblem::TooLarge {
                what: what.into(),
                limit: format_size(self.budget.limit()),
            },
        )
    }
}

/// One layer as the image describes it.
pub struct LayerSpec {
    /// "layer 2 of 3 (blobs/sha256/…)", for messages.
    pub what: String,
    /// The blob digest the manifest declares (OCI), if any.
    pub blob_digest: Option<Sha256Digest>,
    pub blob_size: Option<u64>,
    /// The diff id the config declares (`None`: invalid, digests not verified).
    pub diff_id: Option<Sha256Digest>,
}

/// What streaming a blob found.
struct Computed {
    blob: Sha256Digest,
    blob_size: u64,
    diff: Sha256Digest,
}

/// The layer's directory in the cache, unpacked and verified if need be.
pub fn layer<'s>(
    ctx: &Ctx,
    spec: &LayerSpec,
    open: impl Fn() -> io::Result<Blob<'s>>,
) -> Result<PathBuf, ImageError> {
    ctx.budget.step(&spec.what);
    let fail = |problem: fn(String, io::Error) -> ImageProblem| {
        move |e| err(ctx.image, problem(spec.what.clone(), e))
    };
    let open_blob = || open().map_err(fail(|what, source| ImageProblem::Layer { what, source }));
    let mut opened = None;
    let key = match &spec.blob_digest {
        Some(d) => SourceKey::Blob(d.clone()),
        None => {
            let b = open_blob()?;
            let key = SourceKey::Stamp(b.stamp.clone());
            opened = Some(b);
            key
        }
    };
    if let Some((diff, size)) = ctx.cache.lookup(&key) {
        if let Some(want) = &spec.diff_id {
            if *want != diff {
                ctx.mismatch(Mismatch::CachedDiffId {
                    what: spec.what.clone(),
                    want: want.clone(),
                    got: diff.clone(),
                })?;
            }
        }
        let dir = ctx.cache.layer_dir(&diff);
        if dir.is_dir() {
            ctx.budget
                .charge(size)
                .map_err(|_| ctx.over_budget(&spec.what))?;
            return Ok(dir);
        }
    }
    let blob = match opened {
        Some(b) => b,
        None => open_blob()?,
    };
    // With digests verified, a layer already cached under the diff id the
    // config declares only needs its blob checked, not unpacked again.
    let have = ctx.opts.verify_digests
        && spec
            .diff_id
            .as_ref()
            .is_some_and(|d| ctx.cache.layer_dir(d).is_dir());
    let dest = if have {
        None
    } else {
        Some(
            ctx.cache
                .unpack_dir()
                .map_err(fail(|what, source| ImageProblem::Unpack { what, source }))?,
        )
    };
    let before = ctx.budget.used();
    let stamp = blob.stamp.clone();
    let computed = stream(blob.reader, dest.as_ref().map(|d| d.fd()), ctx.budget).map_err(|e| {
        if ctx.budget.exceeded() {
            ctx.over_budget(&spec.what)
        } else {
            fail(|what, source| ImageProblem::Corrupt { what, source })(e)
        }
    })?;
    let size = ctx.budget.used() - before;
    // Record what this source holds whatever the image claims: it is true.
    let record_key = match &spec.blob_digest {
        Some(_) => SourceKey::Blob(computed.blob.clone()),
        None => SourceKey::Stamp(stamp),
    };
    if let Err(e) = ctx.cache.record(&record_key, &computed.diff, size) {
        tracing::warn!("cannot record the verified layer {}: {e}", computed.diff);
    }
    if let Some(want) = &spec.blob_digest {
        if *want != computed.blob {
            ctx.mismatch(Mismatch::LayerDigest {
                what: spec.what.clone(),
                want: want.clone(),
                got: computed.blob.clone(),
            })?;
        }
    }
    if let Some(want) = spec.blob_size {
        if want != computed.blob_size {
            ctx.mismatch(Mismatch::LayerSize {
                what: spec.what.clone(),
                want,
                got: computed.blob_size,
            })?;
        }
    }
    if let Some(want) = &spec.diff_id {
        if *want != computed.diff {
            ctx.mismatch(Mismatch::DiffId {
                what: spec.what.clone(),
                want: want.clone(),
                got: computed.diff.clone(),
            })?;
        }
    }
    // The directory is named by the digest computed, never by a claim.
    match dest {
        Some(d) => ctx
            .cache
            .commit(d, &computed.diff)
            .map_err(fail(|what, source| ImageProblem::Store { what, source })),
        None => Ok(ctx.cache.layer_dir(&computed.diff)),
    }
}

/// Reads a blob to its end: hashes it, decompresses it if it is gzip,
/// hashes and counts the tar stream, unpacking it into `dest` if given.
fn stream(
    reader: Box<dyn Read + '_>,
    dest: Option<BorrowedFd>,
    budget: &Budget,
) -> io::Result<Computed> {
    let mut raw = BufReader::with_capacity(1 << 17, reader);
    let head = raw.fill_buf()?;
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "zstd-compressed layers are not supported (gzip or plain tar are)",
        ));
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        let mut blob = HashingReader::new(&mut raw, None);
        let (diff, _) = {
            let gz = flate2::bufread::MultiGzDecoder::new(BufReader::new(&mut blob));
            let mut tar = HashingReader::new(gz, Some(budget));
            consume(&mut tar, dest, budget)?;
            tar.finish()
        };
        blob.drain()?;
        let (blob, blob_size) = blob.finish();
        Ok(Computed {
            blob,
            blob_size,
            diff,
        })
    } else {
        let mut tar = HashingReader::new(&mut raw, Some(budget));
        consume(&mut tar, dest, budget)?;
        let (diff, blob_size) = tar.finish();
        Ok(Computed {
            blob: diff.clone(),
            blob_size,
            diff,
        })
    }
}

fn consume<R: Read>(
    tar: &mut HashingReader<R>,
    dest: Option<BorrowedFd>,
    budget: &Budget,
) -> io::Result<()> {
    if let Some(dest) = dest {
        layer::unpack(&mut *tar, dest, budget)?;
    }
    // The diff id covers the whole stream, past the tar's end marker.
    tar.drain()
}
