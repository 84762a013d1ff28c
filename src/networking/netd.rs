//! Network definitions: the built-ins compiled in from `net.d-defaults/`,
//! the user's `<local-config>/net.d/*.{conf,conflist,json}`, and the `--net`
//! selection.

use std::collections::BTreeMap;
use std::path::Path;

use crate::cni::args::{self, ArgsError};
use crate::cni::config::{valid_name, ConfigError};
use crate::cni::NetConf;

/// Why the networks cannot be loaded or selected.
#[derive(Debug, thiserror::Error)]
pub enum NetdError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("network \"{name}\" is defined twice: in {first} and in {second}; rename one")]
    Twice {
        name: String,
        first: String,
        second: String,
    },
    #[error("--net={flag}: {problem}")]
    Flag { flag: String, problem: FlagProblem },
    #[error("unknown network \"{name}\"; networks that exist: {known} (plus host, none, all); define it in a net.d file")]
    Unknown { name: String, known: String },
}

/// What is wrong with one `--net` flag.
#[derive(Debug, thiserror::Error)]
pub enum FlagProblem {
    #[error("empty network name")]
    EmptyName,
    #[error("\"{0}\" is not a valid network name")]
    BadName(String),
    #[error("network \"{name}\": {problem}")]
    Args { name: String, problem: ArgsError },
    #[error("network \"{0}\" is selected twice")]
    Twice(String),
    #[error("cannot be combined with other networks")]
    NotAlone,
    #[error("takes no arguments")]
    NoArgs,
}

const BUILTINS: &[(&str, &str)] = &[
    (
        "99-default.conflist",
        include_str!("../../net.d-defaults/99-default.conflist"),
    ),
    (
        "99-default-restricted.conf",
        include_str!("../../net.d-defaults/99-default-restricted.conf"),
    ),
];

pub const DEFAULT: &str = "default";
/// How a built-in network's `source` begins.
pub const BUILTIN_SOURCE: &str = "built-in ";
pub const DEFAULT_RESTRICTED: &str = "default-restricted";

/// All networks by name: built-ins, replaced by user networks of the same name.
#[derive(Debug, Default)]
pub struct Networks {
    pub by_name: BTreeMap<String, NetConf>,
    /// User networks in file-name order (what `--net=all` selects).
    pub user_order: Vec<String>,
}

/// Loads the built-ins and `<local_config>/net.d`.
pub fn load(local_config: &Path) -> Result<Networks, NetdError> {
    let mut nets = Networks::default();
    for (file, text) in BUILTINS {
        let conf = NetConf::parse(text.as_bytes(), &format!("{BUILTIN_SOURCE}{file}"), false)?;
        nets.by_name.insert(conf.name.clone(), conf);
    }
    let dir = local_config.join("net.d");
    let mut files: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => {
            return Err(NetdError::Read {
                path: dir.display().to_string(),
                source,
            })
        }
    };
    files.sort();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for path in files {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !matches!(ext, "conf" | "conflist" | "json") || !path.is_file() {
            continue;
        }
        let source = path.display().to_string();
        let bytes = std::fs::read(&path).map_err(|e| NetdError::Read {
            path: source.clone(),
            source: e,
        })?;
        let conf = NetConf::parse(&bytes, &source, ext == "conflist")?;
        if let Some(first) = seen.get(&conf.name) {
            return Err(NetdError::Twice {
                name: conf.name,
                first: first.clone(),
                second: source,
            });
        }
        seen.insert(conf.name.clone(), source);
        nets.user_order.push(conf.name.clone());
        nets.by_name.insert(conf.name.clone(), conf);
    }
    Ok(nets)
}

/// One selected network with its per-network CNI_ARGS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    pub name: String,
    pub args: Vec<(String, String)>,
}

/// A network to attach, with its CNI_ARGS pairs.
pub type Attach = (NetConf, Vec<(String, String)>);

/// What `--net` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    Host,
    None,
    Networks(Vec<Selected>),
}

/// Parses the `--net` flags (comma lists, repeated flags, `name:K=V;K2=V2`).
pub fn parse_selection(flags: &[String]) -> Result<Selection, NetdError> {
    let refuse = |flag: &str, problem| NetdError::Flag {
        flag: flag.to_string(),
        problem,
    };
    let mut items: Vec<Selected> = Vec::new();
    for flag in flags {
        for item in flag.split(',').map(str::trim) {
            if item.is_empty() {
                return Err(refuse(flag, FlagProblem::EmptyName));
            }
            let (name, raw_args) = match item.split_once(':') {
                Some((n, a)) => (n, Some(a)),
                None => (item, None),
            };
            if !valid_name(name) {
                return Err(refuse(flag, FlagProblem::BadName(name.into())));
            }
            let args = match raw_args {
                Some(a) => args::parse(a).map_err(|problem| {
                    refuse(
                        flag,
                        FlagProblem::Args {
                            name: name.into(),
                            problem,
                        },
                    )
                })?,
                None => Vec::new(),
            };
            if items.iter().any(|s| s.name == name) {
                return Err(refuse(flag, FlagProblem::Twice(name.into())));
            }
            items.push(Selected {
                name: name.to_string(),
                args,
            });
        }
    }
    if items.is_empty() {
        items.push(Selected {
            name: DEFAULT.into(),
            args: vec![],
        });
    }
    let special: Vec<&str> = items
        .iter()
        .map(|s| s.name.as_str())
        .filter(|n| matches!(*n, "host" | "none"))
        .collect();
    if let Some(s) = special.first() {
        if items.len() > 1 {
            return Err(refuse(s, FlagProblem::NotAlone));
        }
        if !items[0].args.is_empty() {
            return Err(refuse(s, FlagProblem::NoArgs));
        }
        return Ok(if *s == "host" {
            Selection::Host
        } else {
            Selection::None
        });
    }
    Ok(Selection::Networks(items))
}

/// Resolves a selection into configs in interface order, adding
/// `default-restricted` last when `default` is not selected.
pub fn resolve(sel: &[Selected], nets: &Networks) -> Result<Vec<Attach>, NetdError> {
    let mut out: Vec<Attach> = Vec::new();
    let push =
        |name: &str, args: &[(String, String)], out: &mut Vec<Attach>| -> Result<(), NetdError> {
            if out.iter().any(|(c, _)| c.name == name) {
                return Ok(());
            }
            let conf = nets.by_name.get(name).ok_or_else(|| NetdError::Unknown {
                name: name.to_string(),
                known: nets.by_name.keys().cloned().collect::<Vec<_>>().join(", "),
            })?;
            out.push((conf.clone(), args.to_vec()));
            Ok(())
        };
    for s in sel {
        if s.name == "all" {
            for n in &nets.user_order {
                push(n, &s.args, &mut out)?;
            }
        } else {
            push(&s.name, &s.args, &mut out)?;
        }
    }
    if !out.iter().any(|(c, _)| c.name == DEFAULT) {
        push(DEFAULT_RESTRICTED, &[], &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(flags: &[&str]) -> Result<Selection, NetdError> {
        parse_selection(&flags.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn selection_rules() {
        assert_eq!(
            names(&[]).unwrap(),
            Selection::Networks(vec![Selected {
                name: "default".into(),
                args: vec![]
            }])
        );
        assert_eq!(names(&["host"]).unwrap(), Selection::Host);
        assert_eq!(names(&["none"]).unwrap(), Selection::None);
        assert!(names(&["host,default"]).is_err());
        assert!(names(&["a", "a"])
            .unwrap_err()
            .to_string()
            .contains("twice"));
        assert!(names(&["a:IP"])
            .unwrap_err()
            .to_string()
            .contains("KEY=VALUE"));
        assert!(names(&["../x"])
            .unwrap_err()
            .to_string()
            .contains("not a valid"));
        let Selection::Networks(s) = names(&["a:IP=10.1.0.9;X=y,b", "c"]).unwrap() else {
            panic!("networks expected")
        };
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].args[0], ("IP".into(), "10.1.0.9".into()));
    }

    #[test]
    fn builtins_and_default_restricted() {
        let nets = load(Path::new("/nonexistent")).unwrap();
        let r = resolve(
            &[Selected {
                name: "default".into(),
                args: vec![],
            }],
            &nets,
        )
        .unwrap();
        assert_eq!(r.len(), 1);
        let r = resolve(
            &[Selected {
                name: "default-restricted".into(),
                args: vec![],
            }],
            &nets,
        )
        .unwrap();
        assert_eq!(r.len(), 1);
        let e = resolve(
            &[Selected {
                name: "nope".into(),
                args: vec![],
            }],
            &nets,
        )
        .unwrap_err();
        assert!(e.to_string().contains("default-restricted"), "{e}");
    }
}
