//! The bundled `macvlan` CNI plugin.

fn main() {
    rkt::cni::skeleton::main(&rkt::plugins::macvlan::Macvlan)
}
