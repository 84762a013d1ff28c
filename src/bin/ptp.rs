//! The bundled `ptp` CNI plugin.

fn main() {
    rkt::cni::skeleton::main(&rkt::plugins::ptp::Ptp)
}
