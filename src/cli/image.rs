//! `rkt image list`, `rkt image rm` and `rkt image gc`: the images
//! imported into `<dir>/cas` (see `image::store`).

use clap::{Args, Subcommand};
use serde_json::json;

use super::Global;
use crate::error::{Error, FlagError};
use crate::image::store;
use crate::pod::{time, PodState};

#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List the imported images.
    List(ImageListArgs),
    /// Forget images (refused while a running pod uses one).
    Rm(ImageRmArgs),
    /// Remove the layers no image uses.
    Gc,
}

#[derive(Debug, Args)]
pub struct ImageListArgs {
    /// Output format: tabbed (default) or json.
    #[arg(long, default_value = "tabbed")]
    pub format: String,
    /// No header line.
    #[arg(long = "no-legend")]
    pub no_legend: bool,
}

#[derive(Debug, Args)]
pub struct ImageRmArgs {
    /// Image ids (or a prefix of 4 hex digits or more) or names.
    #[arg(required = true)]
    pub images: Vec<String>,
}

pub fn image(g: &Global, a: ImageArgs) -> Result<i32, Error> {
    let cas = g.dir.join("cas");
    match a.command {
        ImageCommand::List(l) => list(g, &cas, l),
        ImageCommand::Rm(r) => rm(g, &cas, r),
        ImageCommand::Gc => {
            let removed = store::gc(&cas).map_err(Error::state("remove unused layers in", &cas))?;
            for l in &removed {
                println!("removed layer sha256:{l}");
            }
            Ok(0)
        }
    }
}

/// (image id, pod UUID) of every pod, with whether it runs (or is being
/// started).
fn pod_images(g: &Global) -> Vec<(String, String, bool)> {
    g.store()
        .all()
        .into_iter()
        .filter_map(|p| {
            let m = p.manifest().ok()?;
            let in_use = matches!(p.state(), PodState::Running | PodState::Preparing);
            Some((m.image.id, p.uuid.clone(), in_use))
        })
        .collect()
}

fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

fn list(g: &Global, cas: &std::path::Path, a: ImageListArgs) -> Result<i32, Error> {
    let records = store::all(cas);
    let pods = pod_images(g);
    let using = |id: &str| pods.iter().filter(|(i, _, _)| i == id).count();
    match a.format.as_str() {
        "json" => {
            let all: Vec<_> = records
                .iter()
                .map(|r| {
                    json!({
                        "id": r.id, "name": r.name, "size": r.size,
                        "import_time": time::rfc3339(r.imported),
                        "layers": r.layers.len(), "pods": using(&r.id),
                    })
                })
                .collect();
            println!("{}", serde_json::to_string(&all)?);
            return Ok(0);
        }
        "tabbed" => {}
        f => return Err(FlagError::Format(f.into()).into()),
    }
    if !a.no_legend {
        println!("ID\tNAME\tSIZE\tIMPORT TIME\tPODS");
    }
    for r in &records {
        let short: String =
            r.id.trim_start_matches("sha256:")
                .chars()
                .take(12)
                .collect();
        println!(
            "sha256:{short}\t{}\t{}\t{}\t{}",
            r.name,
            human(r.size),
            time::rfc3339(r.imported),
            using(&r.id)
        );
    }
    Ok(0)
}

fn rm(g: &Global, cas: &std::path::Path, a: ImageRmArgs) -> Result<i32, Error> {
    // Imports in progress finish first: their pods then show up below.
    let _excl = store::exclusive(cas).map_err(Error::state("lock the image store", cas))?;
    let records = store::all(cas);
    let pods = pod_images(g);
    let mut failed = 0;
    for what in &a.images {
        let found = store::find(&records, what);
        let r = match found.as_slice() {
            [one] => *one,
            [] => {
                eprintln!("rkt: image {what}: no such image (see `rkt image list`)");
                failed += 1;
                continue;
            }
            many => {
                let ids: Vec<&str> = many.iter().map(|r| r.id.as_str()).collect();
                eprintln!(
                    "rkt: image {what}: names {} images ({}); give more of the id",
                    many.len(),
                    ids.join(", ")
                );
                failed += 1;
                continue;
            }
        };
        if let Some((_, uuid, _)) = pods.iter().find(|(i, _, in_use)| *i == r.id && *in_use) {
            eprintln!("rkt: image {what}: running pod {uuid} uses it; stop that pod first");
            failed += 1;
            continue;
        }
        store::remove(cas, &r.id)
            .map_err(Error::state("remove the record of", cas.join("images")))?;
        println!("removed image {} ({})", r.id, r.name);
    }
    Ok(if failed > 0 { 254 } else { 0 })
}
