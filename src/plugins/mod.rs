//! The CNI plugins rkt ships.

pub mod ipam;
