//! The `host-local` IPAM plugin.
fn main() {
    rkt::cni::skeleton::main(&rkt::plugins::ipam::host_local::HostLocal)
}
