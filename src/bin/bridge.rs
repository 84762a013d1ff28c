//! The bundled `bridge` CNI plugin.

fn main() {
    rkt::plugins::main(&rkt::plugins::bridge::Bridge)
}
