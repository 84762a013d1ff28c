//! `rkt version`: the runtime's version, the CNI spec versions it speaks,
//! and what each bundled plugin it would run says of itself (CNI VERSION),
//! as rkt printed its stage1 and appc versions.

use std::time::Duration;

use super::Global;
use crate::cni::exec::{self, Invocation};
use crate::cni::version;
use crate::error::Error;

/// The plugins this project ships.
pub const BUNDLED: &[&str] = &[
    "ptp",
    "bridge",
    "macvlan",
    "loopback",
    "portmap",
    "host-local",
    "dhcp",
];

pub fn version(g: &Global) -> Result<i32, Error> {
    println!("rkt Version: {}", env!("CARGO_PKG_VERSION"));
    println!("CNI spec versions: {}", version::SUPPORTED.join(", "));
    let path = g.plugin_path();
    for name in BUNDLED {
        let line = match exec::find_plugin(name, &path) {
            Err(_) => "not found on the plugin path".to_string(),
            Ok(bin) => {
                let inv = Invocation::global("VERSION", &path, Duration::from_secs(5));
                let stdin = format!("{{\"cniVersion\":\"{}\"}}", version::LATEST);
                match exec::run(&bin, &inv, stdin.as_bytes())
                    .ok()
                    .and_then(|out| serde_json::from_slice::<serde_json::Value>(&out).ok())
                {
                    Some(v) => format!(
                        "{} (CNI {})",
                        bin.display(),
                        v["supportedVersions"]
                            .as_array()
                            .map(|a| a
                                .iter()
                                .filter_map(|s| s.as_str())
                                .collect::<Vec<_>>()
                                .join(", "))
                            .unwrap_or_default()
                    ),
                    None => format!("{} (does not answer VERSION)", bin.display()),
                }
            }
        };
        println!("plugin {name}: {line}");
    }
    Ok(0)
}
