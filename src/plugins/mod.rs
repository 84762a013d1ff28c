//! The project's own CNI plugins: one file each (ptp, bridge, macvlan,
//! loopback; host-local and dhcp under `ipam/`, with IPAM delegation), the
//! layer they build on in [`pkg`], and the `main` of their binaries.

pub mod bridge;
pub mod ipam;
pub mod loopback;
pub mod macvlan;
pub mod pkg;
pub mod ptp;

use pkg::{firewall, teardown};

/// A bundled plugin binary's `main`: the CNI skeleton, or, when started as
/// its own detached copy ([`pkg::detached`]), the background removal of a
/// network's nftables state or of a link.
pub fn main(plugin: &dyn crate::cni::skeleton::Plugin) -> ! {
    if let Some(network) = std::env::var_os(firewall::CLEANUP_ENV) {
        let ok = firewall::cleanup(&network.to_string_lossy()).is_ok();
        std::process::exit(if ok { 0 } else { 1 });
    }
    if let Some(link) = std::env::var_os(teardown::DELETE_ENV) {
        let ok = teardown::finish_delete(&link.to_string_lossy()).is_ok();
        std::process::exit(if ok { 0 } else { 1 });
    }
    crate::cni::skeleton::main(plugin)
}
