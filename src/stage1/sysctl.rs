//! `--sysctl=KEY=VALUE`: kernel settings the runtime writes for the pod at
//! creation, as Podman's flag does. Only settings the kernel scopes to the
//! pod's own namespaces are accepted (network settings of its network
//! namespace, IPC limits of its IPC namespace, its UTS domain name); the app
//! itself never gets to write `/proc/sys`, which is read-only in the pod.

use std::path::PathBuf;

/// Why a `--sysctl` value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SysctlProblem {
    #[error("expected KEY=VALUE")]
    NotKeyValue,
    #[error("not a sysctl name (dot-separated letters, digits, '_' and '-')")]
    BadName,
    #[error("the value must be one line of at most 4096 bytes")]
    BadValue,
    #[error("with --net=host this would change the host's network settings; network sysctls need the pod's own network namespace")]
    HostNetwork,
    #[error("not scoped to the pod's namespaces, so it would change the host; allowed: net.* (not with --net=host), {}, fs.mqueue.*, kernel.domainname{}", IPC.join(", "), if *.0 { "; use --hostname" } else { "" })]
    NotScoped(bool),
}

/// One validated setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysctl {
    /// Dotted name, e.g. `net.ipv4.ip_unprivileged_port_start`.
    pub key: String,
    pub value: String,
}

/// Names scoped to the IPC namespace (exact, or `fs.mqueue.` prefix).
const IPC: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

impl Sysctl {
    /// Parses one `--sysctl` value. `own_netns` is false for `--net=host`,
    /// whose network settings are the host's.
    pub fn parse(arg: &str, own_netns: bool) -> Result<Sysctl, super::FlagError> {
        let refuse = |problem| super::FlagError::Sysctl {
            arg: arg.to_string(),
            problem,
        };
        let (key, value) = arg
            .split_once('=')
            .ok_or_else(|| refuse(SysctlProblem::NotKeyValue))?;
        let key = key.trim().replace('/', ".");
        let valid_name = !key.is_empty()
            && key.split('.').all(|s| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            });
        if !valid_name {
            return Err(refuse(SysctlProblem::BadName));
        }
        if value.len() > 4096 || value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(refuse(SysctlProblem::BadValue));
        }
        if key.starts_with("net.") {
            if !own_netns {
                return Err(refuse(SysctlProblem::HostNetwork));
            }
        } else if !(IPC.contains(&key.as_str())
            || key.starts_with("fs.mqueue.")
            || key == "kernel.domainname")
        {
            return Err(refuse(SysctlProblem::NotScoped(key == "kernel.hostname")));
        }
        Ok(Sysctl {
            key,
            value: value.to_string(),
        })
    }

    /// Where the setting lives under a `/proc` mount.
    pub fn path(&self, proc: &std::path::Path) -> PathBuf {
        let mut p = proc.join("sys");
        for seg in self.key.split('.') {
            p.push(seg);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_namespaced_settings_only() {
        let s = Sysctl::parse("net.ipv4.ip_unprivileged_port_start=80", true).unwrap();
        assert_eq!(
            s.path(std::path::Path::new("/proc")),
            PathBuf::from("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        );
        assert!(Sysctl::parse("net/ipv4/ping_group_range=0 0", true).is_ok());
        assert!(Sysctl::parse("kernel.shmmax=1000000", true).is_ok());
        assert!(Sysctl::parse("fs.mqueue.msg_max=20", false).is_ok());
        for bad in [
            "kernel.core_pattern=|/tmp/x",
            "vm.overcommit_memory=1",
            "kernel.hostname=x",
            "net..x=1",
            "net.ipv4/../../x=1",
            "net.ipv4.x",
            "net.ipv4.ip_forward=1\n2",
        ] {
            assert!(Sysctl::parse(bad, true).is_err(), "{bad}");
        }
        let e = Sysctl::parse("net.ipv4.ip_forward=1", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--net=host"), "{e}");
    }
}
