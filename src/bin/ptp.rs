//! The bundled `ptp` CNI plugin.

fn main() {
    rkt::plugins::main(&rkt::plugins::ptp::Ptp)
}
