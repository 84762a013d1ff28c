//! The bundled `portmap` CNI plugin.

fn main() {
    rkt::plugins::main(&rkt::plugins::portmap::Portmap)
}
