//! `rkt version`: the runtime's version, the CNI spec versions it speaks,
//! and what each bundled plugin it would run says of itself (CNI VERSION),
//! as rkt printed its stage1 and appc versions.

use std::time::Duration;

use super::Global;
use crate::cni::exec;
use crate::cni::version;
use crate::error::Error;
use crate::networking;

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
    let plugins = networking::Plugins {
        path: &path,
        timeout: Duration::from_secs(5),
    };
    for name in BUNDLED {
        let line = match exec::find_plugin(name, &path) {
            Err(_) => "not found on the plugin path".to_string(),
            Ok(bin) => match networking::plugin_versions(&plugins, &bin, version::LATEST) {
                Some(vs) => format!("{} (CNI {})", bin.display(), vs.join(", ")),
                None => format!("{} (does not answer VERSION)", bin.display()),
            },
        };
        println!("plugin {name}: {line}");
    }
    Ok(0)
}
