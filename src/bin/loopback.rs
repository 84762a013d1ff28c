//! The bundled `loopback` CNI plugin.
fn main() {
    rkt::cni::skeleton::main(&rkt::plugins::loopback::Loopback)
}
