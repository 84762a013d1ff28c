//! What stands between an app and the host besides its namespaces, and the
//! one flag that turns parts of it off: `--insecure-options` (rkt's flag).
//! Every protection is on by default; what is off is recorded with the pod
//! and shown by `rkt status`.

use std::fmt;

use ::caps::Capability;

use super::{caps, seccomp, FlagError, Stage1Error};

/// Protections turned off with `--insecure-options=a,b`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Insecure {
    /// Image digests and diff_ids are not verified (mismatches are warnings;
    /// layers are still stored under the digest of what was unpacked).
    pub image: bool,
    /// `/proc` and `/sys` are not masked nor made read-only.
    pub paths: bool,
    /// No seccomp filter.
    pub seccomp: bool,
    /// No `no_new_privs`: set-uid and file-capability programs gain privileges.
    pub setuid: bool,
}

/// The values the flag takes, with what each turns off (for errors and help).
pub const VALUES: &[(&str, &str)] = &[
    ("none", "nothing (the default)"),
    ("image", "image digest and diff_id verification"),
    ("paths", "masked and read-only /proc and /sys paths"),
    ("seccomp", "the default seccomp filter"),
    ("setuid", "no_new_privs (set-uid programs gain privileges)"),
    ("all-run", "paths, seccomp and setuid"),
    ("all", "every protection above"),
];

impl Insecure {
    /// Parses the values of every `--insecure-options` flag (comma lists).
    pub fn parse(flags: &[String]) -> Result<Insecure, FlagError> {
        let mut o = Insecure::default();
        for v in flags.iter().flat_map(|f| f.split(',')) {
            match v.trim() {
                "" | "none" => {}
                "image" => o.image = true,
                "paths" => o.paths = true,
                "seccomp" => o.seccomp = true,
                "setuid" => o.setuid = true,
                "all-run" => {
                    o.paths = true;
                    o.seccomp = true;
                    o.setuid = true;
                }
                "all" => {
                    o = Insecure {
                        image: true,
                        paths: true,
                        seccomp: true,
                        setuid: true,
                    }
                }
                other => return Err(FlagError::Insecure(other.to_string())),
            }
        }
        Ok(o)
    }

    /// The protections turned off, by name (empty when none).
    pub fn names(&self) -> Vec<String> {
        [
            (self.image, "image"),
            (self.paths, "paths"),
            (self.seccomp, "seccomp"),
            (self.setuid, "setuid"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| n.to_string())
        .collect()
    }

    /// Back from the names recorded with a pod.
    pub fn from_names(names: &[String]) -> Insecure {
        Insecure::parse(names).unwrap_or_default()
    }
}

impl fmt::Display for Insecure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.names();
        if n.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&n.join(","))
        }
    }
}

/// What the app runs with: its capabilities, `no_new_privs` and its seccomp
/// filter. Built in `rkt run` (and `rkt enter`, from what the pod recorded),
/// applied in the app's process right before exec.
#[derive(Debug, Clone)]
pub struct AppSecurity {
    pub caps: Vec<Capability>,
    pub no_new_privs: bool,
    pub seccomp: Option<seccomp::Filter>,
}

impl AppSecurity {
    pub fn new(caps: Vec<Capability>, insecure: &Insecure) -> Result<AppSecurity, FlagError> {
        let seccomp = if insecure.seccomp {
            None
        } else {
            Some(seccomp::Filter::default_profile(&caps)?)
        };
        Ok(AppSecurity {
            caps,
            no_new_privs: !insecure.setuid,
            seccomp,
        })
    }

    /// Applies everything to the calling process, which is about to exec.
    /// The filter goes in while the process still has CAP_SYS_ADMIN (so it
    /// does not depend on `no_new_privs`), and before the capabilities are
    /// dropped: the calls that drop them are allowed by the filter. A
    /// non-root `identity` is taken after the bounding set is cut and
    /// leaves the app no capability, as Docker and Podman do.
    pub fn apply(&self, identity: Option<&Identity>) -> Result<(), Stage1Error> {
        if self.no_new_privs {
            nix::sys::prctl::set_no_new_privs().map_err(Stage1Error::NoNewPrivs)?;
        }
        if let Some(f) = &self.seccomp {
            f.install().map_err(Stage1Error::Seccomp)?;
        }
        caps::drop_bounding(&self.caps).map_err(Stage1Error::Caps)?;
        if let Some(id) = identity {
            id.take()?;
            if id.uid != 0 {
                return Ok(());
            }
        }
        caps::apply(&self.caps).map_err(Stage1Error::Caps)
    }
}

/// Who the app runs as: `--user` and `--group`, resolved in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (the image's groups listing the user).
    pub groups: Vec<u32>,
}

impl Identity {
    /// Becomes this user and group (real, effective and saved ids).
    fn take(&self) -> Result<(), Stage1Error> {
        use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
        let groups: Vec<Gid> = self.groups.iter().map(|g| Gid::from_raw(*g)).collect();
        let gid = Gid::from_raw(self.gid);
        let uid = Uid::from_raw(self.uid);
        setgroups(&groups)
            .and_then(|()| setresgid(gid, gid, gid))
            .and_then(|()| setresuid(uid, uid, uid))
            .map_err(|errno| Stage1Error::Identity {
                uid: self.uid,
                gid: self.gid,
                errno,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_groups_and_refuses_unknown_values() {
        let o = Insecure::parse(&["paths,seccomp".into(), "image".into()]).unwrap();
        assert!(o.paths && o.seccomp && o.image && !o.setuid);
        assert_eq!(o.to_string(), "image,paths,seccomp");
        let r = Insecure::parse(&["all-run".into()]).unwrap();
        assert!(r.paths && r.seccomp && r.setuid && !r.image);
        assert_eq!(Insecure::parse(&["all".into()]).unwrap().names().len(), 4);
        assert_eq!(Insecure::parse(&[]).unwrap().to_string(), "none");
        let e = Insecure::parse(&["sekomp".into()]).unwrap_err().to_string();
        assert!(e.contains("\"sekomp\"") && e.contains("seccomp"), "{e}");
        assert_eq!(Insecure::from_names(&o.names()), o);
    }
}
