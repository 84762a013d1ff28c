//! The project's own CNI plugins: one file each (ptp, bridge, macvlan,
//! loopback, portmap; host-local and dhcp under `ipam/`, with IPAM delegation), the
//! layer they build on in [`pkg`], and the `main` of their binaries.

pub mod bridge;
pub mod ipam;
pub mod loopback;
pub mod macvlan;
pub mod pkg;
pub mod portmap;
pub mod ptp;

use pkg::{firewall, teardown};

/// When this process is a plugin's detached copy ([`pkg::detached`]): does
/// its background work (the removal of a network's nftables state or of a
/// link) and returns the exit code. `None` for an ordinary start.
pub fn detached_work() -> Option<i32> {
    if let Some(network) = std::env::var_os(firewall::CLEANUP_ENV) {
        let ok = firewall::cleanup(&network.to_string_lossy()).is_ok();
        return Some(if ok { 0 } else { 1 });
    }
    if std::env::var_os(portmap::FLUSH_ENV).is_some() {
        return Some(if portmap::flush_later().is_ok() { 0 } else { 1 });
    }
    if let Some(link) = std::env::var_os(teardown::DELETE_ENV) {
        let ok = teardown::finish_delete(&link.to_string_lossy()).is_ok();
        return Some(if ok { 0 } else { 1 });
    }
    None
}

/// A bundled plugin binary's `main`: the CNI skeleton, or the work of a
/// detached copy ([`detached_work`]).
pub fn main(plugin: &dyn crate::cni::skeleton::Plugin) -> ! {
    if let Some(code) = detached_work() {
        std::process::exit(code);
    }
    crate::cni::skeleton::main(plugin)
}
