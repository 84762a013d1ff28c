//! The bundled `bridge` CNI plugin.

fn main() {
    rkt::cni::skeleton::main(&rkt::plugins::bridge::Bridge)
}
