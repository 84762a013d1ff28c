//! The `dhcp` CNI plugin binary and its `dhcp daemon` mode.

fn main() {
    rkt::plugins::ipam::dhcp::main()
}
