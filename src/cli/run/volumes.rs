//! `--volume` and `--mount` (rkt's syntax) and the image's declared mount
//! points: checked before anything exists, empty volumes made in the pod
//! directory, then handed to the pod as bind mounts (made in its own mount
//! namespace, targets resolved inside its root: see `stage1::mounts`).
//!
//! ```text
//! --volume=NAME,kind=host,source=/path[,readOnly=true][,recursive=true]
//! --volume=NAME,kind=empty[,mode=0755][,uid=0][,gid=0][,readOnly=true]
//! --mount=volume=NAME,target=/path
//! ```

use std::path::PathBuf;

use crate::error::{Error, FlagError};
use crate::pod::Pod;
use crate::stage1::BindMount;

/// What a volume is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Host { source: PathBuf, recursive: bool },
    Empty { mode: u32, uid: u32, gid: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub name: String,
    pub kind: Kind,
    pub read_only: bool,
}

/// A volume at a target in the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub volume: Volume,
    pub target: String,
}

fn refuse(flag: &'static str, value: &str, problem: impl Into<String>) -> FlagError {
    FlagError::Volume {
        flag,
        value: value.to_string(),
        problem: problem.into(),
    }
}

/// rkt's volume names: lower-case letters, digits and `-`, not starting
/// or ending with `-`, at most 64 characters.
fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && !n.starts_with('-')
        && !n.ends_with('-')
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn boolean(flag: &'static str, value: &str, key: &str, v: &str) -> Result<bool, FlagError> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(refuse(
            flag,
            value,
            format!("{key} must be true or false, not \"{v}\""),
        )),
    }
}

/// A flag's leading name (if any) and its `key=value` options.
type Options<'a> = (Option<&'a str>, Vec<(&'a str, &'a str)>);

/// `NAME,key=value,...` split into the name and its options (each once).
fn options<'a>(flag: &'static str, value: &'a str) -> Result<Options<'a>, FlagError> {
    let mut name = None;
    let mut opts: Vec<(&str, &str)> = Vec::new();
    for (i, part) in value.split(',').enumerate() {
        match part.split_once('=') {
            Some((k, v)) => {
                if opts.iter().any(|(o, _)| *o == k) {
                    return Err(refuse(flag, value, format!("{k} is given twice")));
                }
                opts.push((k, v));
            }
            None if i == 0 => name = Some(part),
            None => return Err(refuse(flag, value, format!("\"{part}\" is not key=value"))),
        }
    }
    Ok((name, opts))
}

/// A path in the pod: absolute, no `..`, not `/` itself; normalised.
fn target_path(flag: &'static str, value: &str, t: &str) -> Result<String, FlagError> {
    if !t.starts_with('/') || t.split('/').any(|c| c == "..") || t.contains('\0') {
        return Err(refuse(
            flag,
            value,
            format!("target \"{t}\" is not an absolute path without \"..\""),
        ));
    }
    let parts: Vec<&str> = t
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if parts.is_empty() {
        return Err(refuse(
            flag,
            value,
            "a volume cannot be mounted on the pod's root",
        ));
    }
    Ok(format!("/{}", parts.join("/")))
}

/// `--volume=...`.
pub fn parse_volume(value: &str) -> Result<Volume, FlagError> {
    const F: &str = "--volume";
    let (name, opts) = options(F, value)?;
    let name = name.filter(|n| valid_name(n)).ok_or_else(|| {
        refuse(
            F,
            value,
            "starts with the volume's name (lower-case letters, digits and '-')",
        )
    })?;
    let get = |k: &str| opts.iter().find(|(o, _)| *o == k).map(|(_, v)| *v);
    let allowed: &[&str] = match get("kind") {
        Some("host") => &["kind", "source", "readOnly", "recursive"],
        Some("empty") => &["kind", "mode", "uid", "gid", "readOnly"],
        Some(k) => {
            return Err(refuse(
                F,
                value,
                format!("kind \"{k}\" is not host or empty"),
            ))
        }
        None => return Err(refuse(F, value, "kind=host or kind=empty is missing")),
    };
    if let Some((k, _)) = opts.iter().find(|(k, _)| !allowed.contains(k)) {
        return Err(refuse(
            F,
            value,
            format!(
                "unknown option \"{k}\" (this kind takes {})",
                allowed.join(", ")
            ),
        ));
    }
    let read_only = get("readOnly")
        .map(|v| boolean(F, value, "readOnly", v))
        .transpose()?
        .unwrap_or(false);
    let kind = if get("kind") == Some("host") {
        let source = get("source").ok_or_else(|| refuse(F, value, "source=/path is missing"))?;
        if !source.starts_with('/') {
            return Err(refuse(
                F,
                value,
                format!("source \"{source}\" is not an absolute path"),
            ));
        }
        if let Err(e) = std::fs::metadata(source) {
            return Err(refuse(F, value, format!("source {source}: {e}")));
        }
        Kind::Host {
            source: PathBuf::from(source),
            recursive: get("recursive")
                .map(|v| boolean(F, value, "recursive", v))
                .transpose()?
                .unwrap_or(false),
        }
    } else {
        let id = |k: &str| -> Result<u32, FlagError> {
            get(k)
                .map(|v| {
                    v.parse::<u32>()
                        .ok()
                        .filter(|n| *n != u32::MAX)
                        .ok_or_else(|| refuse(F, value, format!("{k} \"{v}\" is not a number")))
                })
                .transpose()
                .map(|n| n.unwrap_or(0))
        };
        let mode = match get("mode") {
            None => 0o755,
            Some(m) => u32::from_str_radix(m, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| {
                    refuse(
                        F,
                        value,
                        format!("mode \"{m}\" is not an octal mode (e.g. 0755)"),
                    )
                })?,
        };
        Kind::Empty {
            mode,
            uid: id("uid")?,
            gid: id("gid")?,
        }
    };
    Ok(Volume {
        name: name.to_string(),
        kind,
        read_only,
    })
}

/// `--mount=volume=NAME,target=/path`: (name, target).
pub fn parse_mount(value: &str) -> Result<(String, String), FlagError> {
    const F: &str = "--mount";
    let (name, opts) = options(F, value)?;
    if let Some(n) = name {
        return Err(refuse(F, value, format!("\"{n}\" is not key=value")));
    }
    if let Some((k, _)) = opts.iter().find(|(k, _)| !["volume", "target"].contains(k)) {
        return Err(refuse(
            F,
            value,
            format!("unknown option \"{k}\" (volume, target)"),
        ));
    }
    let get = |k: &str| opts.iter().find(|(o, _)| *o == k).map(|(_, v)| *v);
    let volume = get("volume").ok_or_else(|| refuse(F, value, "volume=NAME is missing"))?;
    let target = get("target").ok_or_else(|| refuse(F, value, "target=/path is missing"))?;
    Ok((volume.to_string(), target_path(F, value, target)?))
}

/// The flags and the image's mount points, checked: names once, every
/// `--mount` naming a volume, targets once; an image mount point no
/// `--mount` covers gets an empty volume of its own.
pub fn plan(
    volumes: &[String],
    mounts: &[String],
    image_points: &[String],
) -> Result<Vec<Planned>, FlagError> {
    let mut vols: Vec<Volume> = Vec::new();
    for v in volumes {
        let vol = parse_volume(v)?;
        if vols.iter().any(|o| o.name == vol.name) {
            return Err(refuse(
                "--volume",
                v,
                format!("volume \"{}\" is defined twice", vol.name),
            ));
        }
        vols.push(vol);
    }
    let mut out: Vec<Planned> = Vec::new();
    for m in mounts {
        let (name, target) = parse_mount(m)?;
        let volume = vols
            .iter()
            .find(|v| v.name == name)
            .cloned()
            .ok_or_else(|| {
                let known: Vec<&str> = vols.iter().map(|v| v.name.as_str()).collect();
                refuse(
                    "--mount",
                    m,
                    format!(
                        "no --volume named \"{name}\" (defined: {})",
                        if known.is_empty() {
                            "none".into()
                        } else {
                            known.join(", ")
                        }
                    ),
                )
            })?;
        if out.iter().any(|p| p.target == target) {
            return Err(refuse("--mount", m, format!("{target} is mounted twice")));
        }
        out.push(Planned { volume, target });
    }
    for (i, point) in image_points.iter().enumerate() {
        let Ok(target) = target_path("--mount", point, point) else {
            continue;
        };
        if out.iter().any(|p| p.target == target) {
            continue;
        }
        out.push(Planned {
            volume: Volume {
                name: format!("image-volume-{i}"),
                kind: Kind::Empty {
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                },
                read_only: false,
            },
            target,
        });
    }
    Ok(out)
}

/// Makes the empty volumes in the pod directory (`volumes/<name>`, with
/// their mode and owner) and returns the pod's bind mounts.
pub fn prepare(pod: &Pod, planned: &[Planned]) -> Result<Vec<BindMount>, Error> {
    let mut out = Vec::new();
    for p in planned {
        let (source, recursive) = match &p.volume.kind {
            Kind::Host { source, recursive } => (source.clone(), *recursive),
            Kind::Empty { mode, uid, gid } => {
                let dir = pod.path(&format!("volumes/{}", p.volume.name));
                if !dir.exists() {
                    std::fs::create_dir_all(&dir)
                        .map_err(Error::state("create the volume", &dir))?;
                    std::os::unix::fs::chown(&dir, Some(*uid), Some(*gid))
                        .map_err(Error::state("set the owner of", &dir))?;
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(*mode))
                        .map_err(Error::state("set the mode of", &dir))?;
                }
                (dir, false)
            }
        };
        out.push(BindMount {
            source,
            target: p.target.clone(),
            read_only: p.volume.read_only,
            recursive,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_and_mounts_are_checked() {
        let v = parse_volume("data,kind=empty,mode=0750,uid=1000,gid=1000,readOnly=true").unwrap();
        assert_eq!(
            v.kind,
            Kind::Empty {
                mode: 0o750,
                uid: 1000,
                gid: 1000
            }
        );
        assert!(v.read_only);
        let h = parse_volume("etc,kind=host,source=/tmp,recursive=true").unwrap();
        assert_eq!(
            h.kind,
            Kind::Host {
                source: "/tmp".into(),
                recursive: true
            }
        );
        assert_eq!(
            parse_mount("volume=etc,target=/a//b/./c").unwrap(),
            ("etc".into(), "/a/b/c".into())
        );
        for (bad, says) in [
            ("Data,kind=empty", "volume's name"),
            ("d,kind=nfs", "kind \"nfs\""),
            ("d", "kind=host or kind=empty is missing"),
            ("d,kind=host", "source=/path is missing"),
            ("d,kind=host,source=relative", "not an absolute path"),
            ("d,kind=host,source=/nonexistent/x", "source /nonexistent/x"),
            ("d,kind=empty,mode=999", "not an octal mode"),
            ("d,kind=empty,uid=x", "uid \"x\""),
            ("d,kind=empty,source=/tmp", "unknown option \"source\""),
            (
                "d,kind=empty,readOnly=yes",
                "readOnly must be true or false",
            ),
            ("d,kind=empty,kind=host", "kind is given twice"),
        ] {
            let e = parse_volume(bad).unwrap_err().to_string();
            assert!(
                e.contains(says) && e.starts_with(&format!("--volume={bad}: ")),
                "{e}"
            );
        }
        for (bad, says) in [
            ("volume=d,target=rel", "not an absolute path"),
            ("volume=d,target=/a/../b", "without \"..\""),
            ("volume=d,target=/", "on the pod's root"),
            ("volume=d", "target=/path is missing"),
            (
                "volume=d,target=/x,readOnly=true",
                "unknown option \"readOnly\"",
            ),
        ] {
            let e = parse_mount(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let e = plan(&s(&["a,kind=empty"]), &s(&["volume=b,target=/x"]), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("no --volume named \"b\" (defined: a)"), "{e}");
        let e = plan(&s(&["a,kind=empty", "a,kind=empty"]), &[], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("defined twice"), "{e}");
        let p = plan(
            &s(&["a,kind=empty"]),
            &s(&["volume=a,target=/x", "volume=a,target=/y"]),
            &s(&["/x", "/data"]),
        )
        .unwrap();
        let targets: Vec<&str> = p.iter().map(|p| p.target.as_str()).collect();
        assert_eq!(
            targets,
            ["/x", "/y", "/data"],
            "the image's /x is covered by --mount"
        );
        assert_eq!(p[2].volume.name, "image-volume-1");
    }
}
