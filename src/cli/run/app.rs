//! The app's process settings from `rkt run`'s flags, over the image's:
//! its environment (`--set-env`, `--set-env-file`), its working
//! directory (`--working-dir`) and who it runs as (`--user`, `--group`,
//! names resolved in the image), as rkt sets them.

use std::path::{Path, PathBuf};

use crate::error::{EnvFileProblem, FlagError};
use crate::image::users;
use crate::stage1::security::Identity;

/// Largest `--set-env-file` read.
const MAX_ENV_FILE: u64 = 1 << 20;

/// The image's environment with a default PATH, then the file's variables,
/// then `--set-env`'s: a later one replaces an earlier one of its name.
pub fn environment(
    image: &[String],
    set_env: &[String],
    env_file: Option<&Path>,
) -> Result<Vec<String>, FlagError> {
    let mut env: Vec<String> = image.to_vec();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    if let Some(path) = env_file {
        for (n, line) in read_env_file(path)?.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let var = variable(line).ok_or_else(|| FlagError::SetEnvFile {
                path: path.to_path_buf(),
                problem: EnvFileProblem::Line {
                    number: n + 1,
                    text: line.to_string(),
                },
            })?;
            set(&mut env, var);
        }
    }
    for flag in set_env {
        let var = variable(flag).ok_or_else(|| FlagError::SetEnv(flag.clone()))?;
        set(&mut env, var);
    }
    Ok(env)
}

fn read_env_file(path: &Path) -> Result<String, FlagError> {
    use std::io::Read;
    let refuse = |problem| FlagError::SetEnvFile {
        path: path.to_path_buf(),
        problem,
    };
    let file = std::fs::File::open(path).map_err(|e| refuse(EnvFileProblem::Read(e)))?;
    let mut text = String::new();
    file.take(MAX_ENV_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| refuse(EnvFileProblem::Read(e)))?;
    if text.len() as u64 > MAX_ENV_FILE {
        return Err(refuse(EnvFileProblem::TooLarge(MAX_ENV_FILE)));
    }
    Ok(text)
}

/// `NAME=VALUE` with a name a program can be given: not empty, no `=`, no
/// NUL byte anywhere.
fn variable(s: &str) -> Option<&str> {
    let (name, _) = s.split_once('=')?;
    (!name.is_empty() && !s.contains('\0')).then_some(s)
}

fn set(env: &mut Vec<String>, var: &str) {
    let name = &var[..=var.find('=').unwrap_or(var.len() - 1)];
    env.retain(|e| !e.starts_with(name));
    env.push(var.to_string());
}

/// `--working-dir`: an absolute path in the pod, or the image's.
pub fn working_dir(flag: Option<&str>, image: &str) -> Result<String, FlagError> {
    match flag {
        None => Ok(image.to_string()),
        Some(d) if d.starts_with('/') && !d.contains('\0') => Ok(d.to_string()),
        Some(d) => Err(FlagError::WorkingDir(d.to_string())),
    }
}

/// A numeric id: `u32::MAX` is refused (to the kernel it means "unchanged").
fn numeric_id(v: &str) -> Option<u32> {
    v.parse::<u32>().ok().filter(|id| *id != u32::MAX)
}

/// `--user` and `--group`, resolved in the image's `/etc/passwd` and
/// `/etc/group` (numbers need no entry); the group defaults to the user's
/// in `/etc/passwd`, else 0; supplementary groups are the image's groups
/// that list the user. `None` without either flag: the app runs as root.
pub fn identity(
    user: Option<&str>,
    group: Option<&str>,
    lowers: &[PathBuf],
) -> Result<Option<Identity>, FlagError> {
    if user.is_none() && group.is_none() {
        return Ok(None);
    }
    let refuse = |flag: &'static str, value: &str, problem: String| FlagError::Identity {
        flag,
        value: value.to_string(),
        problem,
    };
    let names = |list: Vec<String>| -> String {
        if list.is_empty() {
            "none".into()
        } else {
            list.into_iter().take(12).collect::<Vec<_>>().join(", ")
        }
    };
    let passwd =
        users::users(lowers).map_err(|e| refuse("--user", user.unwrap_or(""), e.to_string()))?;
    let entry = match user {
        None => passwd.iter().find(|u| u.uid == 0).cloned(),
        Some(v) => match numeric_id(v) {
            Some(uid) => passwd
                .iter()
                .find(|u| u.uid == uid)
                .cloned()
                .or(Some(users::User {
                    name: String::new(),
                    uid,
                    gid: 0,
                })),
            None if v.is_empty() || v.contains([':', '\n', '\0']) => {
                return Err(refuse("--user", v, "not a uid or a user name".into()))
            }
            None => Some(
                passwd
                    .iter()
                    .find(|u| u.name == v)
                    .cloned()
                    .ok_or_else(|| {
                        refuse(
                            "--user",
                            v,
                            format!(
                        "no such user in the image's /etc/passwd (it has: {}); give a uid instead",
                        names(passwd.iter().map(|u| u.name.clone()).collect())
                    ),
                        )
                    })?,
            ),
        },
    };
    let uid = entry.as_ref().map_or(0, |u| u.uid);
    let groups =
        users::groups(lowers).map_err(|e| refuse("--group", group.unwrap_or(""), e.to_string()))?;
    let gid = match group {
        None => entry.as_ref().map_or(0, |u| u.gid),
        Some(v) => match numeric_id(v) {
            Some(gid) => gid,
            None => groups
                .iter()
                .find(|g| g.name == v)
                .map(|g| g.gid)
                .ok_or_else(|| {
                    refuse(
                        "--group",
                        v,
                        format!(
                        "no such group in the image's /etc/group (it has: {}); give a gid instead",
                        names(groups.iter().map(|g| g.name.clone()).collect())
                    ),
                    )
                })?,
        },
    };
    let name = entry.map(|u| u.name).unwrap_or_default();
    let mut supplementary: Vec<u32> = groups
        .iter()
        .filter(|g| !name.is_empty() && g.members.contains(&name))
        .map(|g| g.gid)
        .collect();
    supplementary.sort_unstable();
    supplementary.dedup();
    Ok(Some(Identity {
        uid,
        gid,
        groups: supplementary,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_which_overrides_the_image() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("env");
        std::fs::write(&file, "# comment\n\nA=file\nB=file=with=equals\n").unwrap();
        let env = environment(
            &["A=image".into(), "C=image".into()],
            &["A=flag".into(), "D=".into()],
            Some(&file),
        )
        .unwrap();
        assert_eq!(
            env,
            [
                "C=image",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "B=file=with=equals",
                "A=flag",
                "D="
            ]
        );
        for bad in ["NOEQUALS", "=value", "A=b\0c"] {
            let e = environment(&[], &[bad.into()], None).unwrap_err();
            assert!(e.to_string().starts_with("--set-env="), "{e}");
        }
        std::fs::write(&file, "A=1\nnot a variable\n").unwrap();
        let e = environment(&[], &[], Some(&file)).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("--set-env-file"), "{e}");
        let e = environment(&[], &[], Some(Path::new("/nonexistent"))).unwrap_err();
        assert!(e.to_string().contains("/nonexistent"), "{e}");
    }

    #[test]
    fn working_dir_is_absolute() {
        assert_eq!(working_dir(None, "/img").unwrap(), "/img");
        assert_eq!(working_dir(Some("/srv"), "/img").unwrap(), "/srv");
        assert!(working_dir(Some("srv"), "/img").is_err());
    }
}
