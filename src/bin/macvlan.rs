//! The bundled `macvlan` CNI plugin.

fn main() {
    rkt::plugins::main(&rkt::plugins::macvlan::Macvlan)
}
