//! The app's capabilities: a default set without CAP_NET_ADMIN,
//! CAP_SYS_ADMIN or CAP_SYS_MODULE, changed with `--caps-retain` /
//! `--caps-remove`.

use std::collections::HashSet;

use caps::{CapSet, Capability};

/// rkt's (and Docker's) default set.
pub const DEFAULT: &[Capability] = &[
    Capability::CAP_AUDIT_WRITE,
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_KILL,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SETUID,
    Capability::CAP_SETGID,
    Capability::CAP_SETPCAP,
    Capability::CAP_SETFCAP,
    Capability::CAP_SYS_CHROOT,
];

/// Parses `CAP_NET_ADMIN,net_raw` lists; errors name the flag.
pub fn parse_list(flag: &str, value: &str) -> Result<Vec<Capability>, super::FlagError> {
    value
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let up = s.trim().to_ascii_uppercase();
            let name = if up.starts_with("CAP_") {
                up
            } else {
                format!("CAP_{up}")
            };
            name.parse::<Capability>()
                .map_err(|_| super::FlagError::Capability {
                    flag: flag.to_string(),
                    name: s.to_string(),
                })
        })
        .collect()
}

/// The app's set: `retain` replaces the default when given, `remove` is taken out.
pub fn effective_set(retain: Option<&[Capability]>, remove: &[Capability]) -> Vec<Capability> {
    let base: Vec<Capability> = retain
        .map(<[Capability]>::to_vec)
        .unwrap_or_else(|| DEFAULT.to_vec());
    base.into_iter().filter(|c| !remove.contains(c)).collect()
}

/// Drops every capability outside `keep` from the bounding set. Called
/// between fork and exec.
pub fn drop_bounding(keep: &[Capability]) -> Result<(), caps::errors::CapsError> {
    for c in caps::all() {
        if !keep.contains(&c) && caps::has_cap(None, CapSet::Bounding, c).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, c)?;
        }
    }
    Ok(())
}

/// Sets the inheritable, effective and permitted sets to `keep` (after
/// [`drop_bounding`]). Called between fork and exec.
pub fn apply(keep: &[Capability]) -> Result<(), caps::errors::CapsError> {
    let keep: HashSet<Capability> = keep.iter().copied().collect();
    caps::set(None, CapSet::Inheritable, &keep)?;
    caps::set(None, CapSet::Effective, &keep)?;
    caps::set(None, CapSet::Permitted, &keep)?;
    Ok(())
}
