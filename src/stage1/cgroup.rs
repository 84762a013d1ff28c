//! Resource limits (rkt's isolators `--memory`, `--cpu`) on a cgroup of
//! the pod's own: cgroup v2 where `/sys/fs/cgroup` is the unified
//! hierarchy, the v1 `memory` and `cpu` controllers otherwise. The pod's
//! cgroups are made under the runtime's own (what `/proc/self/cgroup`
//! names: a delegated subtree is enough), named `rkt-<uuid>`, listed in
//! the pod directory (`cgroups`), joined by the pod's first process before
//! anything else, and removed at teardown, `rkt stop`/`rm` and `rkt gc`.

use std::path::{Path, PathBuf};

use super::FlagError;

const ROOT: &str = "/sys/fs/cgroup";
/// CFS period: 100 ms, as runc and rkt use.
const PERIOD_US: u64 = 100_000;
/// Below this a pod cannot even start.
const MIN_MEMORY: u64 = 4 << 20;

/// What the pod is limited to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes.
    pub memory: Option<u64>,
    /// Thousandths of a CPU.
    pub cpu_millis: Option<u64>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self.memory.is_none() && self.cpu_millis.is_none()
    }

    /// `--memory=256M` (bytes, or K, M, G, T; powers of 1024).
    pub fn parse_memory(v: &str) -> Result<u64, FlagError> {
        let bad = |why: &str| FlagError::Limit {
            flag: "--memory",
            value: v.to_string(),
            why: why.to_string(),
        };
        let (num, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
        let shift = match unit {
            "" => 0,
            "K" | "k" | "Ki" => 10,
            "M" | "m" | "Mi" => 20,
            "G" | "g" | "Gi" => 30,
            "T" | "t" | "Ti" => 40,
            _ => return Err(bad("not a size (e.g. 256M, 1G, 1048576)")),
        };
        let n: u64 = num
            .parse()
            .map_err(|_| bad("not a size (e.g. 256M, 1G, 1048576)"))?;
        let bytes = n.checked_mul(1 << shift).ok_or_else(|| bad("too large"))?;
        if bytes < MIN_MEMORY {
            return Err(bad("below 4M, too little for any pod to start"));
        }
        Ok(bytes)
    }

    /// `--cpu=500m` (thousandths of a CPU) or `--cpu=2` (CPUs).
    pub fn parse_cpu(v: &str) -> Result<u64, FlagError> {
        let bad = |why: &str| FlagError::Limit {
            flag: "--cpu",
            value: v.to_string(),
            why: why.to_string(),
        };
        let millis = match v.strip_suffix('m') {
            Some(m) => m.parse::<u64>().ok(),
            None => v.parse::<u64>().ok().and_then(|c| c.checked_mul(1000)),
        }
        .ok_or_else(|| bad("not a CPU amount (e.g. 500m, 2)"))?;
        // The kernel's smallest quota is 1 ms per 100 ms period.
        if millis < 10 {
            return Err(bad("below 10m, the smallest share the kernel enforces"));
        }
        Ok(millis)
    }

    /// `memory=256M cpu=500m` style, for `rkt status`.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(m) = self.memory {
            out.push(format!("memory={m}"));
        }
        if let Some(c) = self.cpu_millis {
            out.push(format!("cpu={c}m"));
        }
        out
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cgroup {}: cannot {what}: {source}; is the cgroup filesystem mounted and writable?", path.display())]
pub struct CgroupError {
    path: PathBuf,
    what: &'static str,
    source: std::io::Error,
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CgroupError + 'a {
    move |source| CgroupError {
        path: path.to_path_buf(),
        what,
        source,
    }
}

fn unified() -> bool {
    nix::sys::statfs::statfs(ROOT)
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// Our own cgroup in the hierarchy of `controller` (`""` for v2).
fn own(controller: &str) -> String {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            let hit = if controller.is_empty() {
                ctrls.is_empty()
            } else {
                ctrls.split(',').any(|c| c == controller)
            };
            hit.then(|| path.to_string())
        })
        .next()
        .unwrap_or_else(|| "/".into())
}

/// The directories of a pod's cgroups (made by [`create`]).
#[derive(Debug, Clone, Default)]
pub struct PodCgroups {
    pub dirs: Vec<PathBuf>,
    unified: bool,
}

/// Makes the pod's cgroups with `limits` written.
pub fn create(uuid: &str, limits: &Limits) -> Result<PodCgroups, CgroupError> {
    let name = format!("rkt-{uuid}");
    let mut out = PodCgroups {
        dirs: Vec::new(),
        unified: unified(),
    };
    let write = |dir: &Path, file: &str, value: String| -> Result<(), CgroupError> {
        let p = dir.join(file);
        std::fs::write(&p, value).map_err(io("write a limit to", &p))
    };
    let mut made = |dir: PathBuf| -> Result<PathBuf, CgroupError> {
        std::fs::create_dir(&dir).map_err(io("create", &dir))?;
        out.dirs.push(dir.clone());
        Ok(dir)
    };
    let result = (|| {
        if out.unified {
            let parent = Path::new(ROOT).join(own("").trim_start_matches('/'));
            let sub = parent.join("cgroup.subtree_control");
            let _ = std::fs::write(&sub, "+memory +cpu");
            let dir = made(parent.join(&name))?;
            if let Some(m) = limits.memory {
                write(&dir, "memory.max", m.to_string())?;
                write(&dir, "memory.swap.max", "0".into()).ok();
            }
            if let Some(c) = limits.cpu_millis {
                write(
                    &dir,
                    "cpu.max",
                    format!("{} {PERIOD_US}", c * PERIOD_US / 1000),
                )?;
            }
        } else {
            if let Some(m) = limits.memory {
                let base = Path::new(ROOT).join("memory");
                let dir = made(base.join(own("memory").trim_start_matches('/')).join(&name))?;
                write(&dir, "memory.limit_in_bytes", m.to_string())?;
            }
            if let Some(c) = limits.cpu_millis {
                let base = Path::new(ROOT).join("cpu");
                let dir = made(base.join(own("cpu").trim_start_matches('/')).join(&name))?;
                write(&dir, "cpu.cfs_period_us", PERIOD_US.to_string())?;
                write(&dir, "cpu.cfs_quota_us", (c * PERIOD_US / 1000).to_string())?;
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        out.remove();
        return Err(e);
    }
    Ok(out)
}

impl PodCgroups {
    /// From the list the pod directory keeps.
    pub fn from_list(text: &str) -> PodCgroups {
        PodCgroups {
            dirs: text
                .lines()
                .filter(|l| l.starts_with(ROOT))
                .map(PathBuf::from)
                .collect(),
            unified: unified(),
        }
    }

    pub fn list(&self) -> String {
        self.dirs
            .iter()
            .map(|d| format!("{}\n", d.display()))
            .collect()
    }

    /// The `cgroup.procs` files the pod's first process writes itself to.
    pub fn procs(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// Whether the kernel killed a process of the pod for memory.
    pub fn oom_killed(&self) -> bool {
        let count = |file: &str| {
            self.dirs.iter().any(|d| {
                std::fs::read_to_string(d.join(file))
                    .unwrap_or_default()
                    .lines()
                    .any(|l| l.strip_prefix("oom_kill ").is_some_and(|n| n.trim() != "0"))
            })
        };
        if self.unified {
            count("memory.events")
        } else {
            count("memory.oom_control")
        }
    }

    /// Removes the cgroups (their processes are gone or going: a busy one
    /// is retried for up to a second). Whatever could not be removed.
    pub fn remove(&self) -> Vec<PathBuf> {
        let mut left = Vec::new();
        for d in &self.dirs {
            let mut ok = false;
            for _ in 0..100 {
                match std::fs::remove_dir(d) {
                    Ok(()) => ok = true,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => ok = true,
                    Err(_) => {}
                }
                if ok {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            if !ok {
                left.push(d.clone());
            }
        }
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_and_refuse() {
        assert_eq!(Limits::parse_memory("256M").unwrap(), 256 << 20);
        assert_eq!(Limits::parse_memory("1G").unwrap(), 1 << 30);
        assert_eq!(Limits::parse_memory("8388608").unwrap(), 8 << 20);
        assert_eq!(Limits::parse_cpu("500m").unwrap(), 500);
        assert_eq!(Limits::parse_cpu("2").unwrap(), 2000);
        for (v, says) in [
            ("1M", "below 4M"),
            ("12X", "not a size"),
            ("", "not a size"),
            ("99999999999T", "too large"),
        ] {
            let e = Limits::parse_memory(v).unwrap_err().to_string();
            assert!(e.contains(says) && e.starts_with("--memory="), "{e}");
        }
        for (v, says) in [
            ("5m", "below 10m"),
            ("half", "not a CPU amount"),
            ("1.5", "not a CPU amount"),
        ] {
            let e = Limits::parse_cpu(v).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
    }
}
