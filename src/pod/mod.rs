//! The pod store: UUIDs, state directories, locks, the pod manifest.
//!
//! Layout (rkt's): `<dir>/pods/run/<uuid>/` while the pod lives,
//! `<dir>/pods/exited-garbage/<uuid>/` after it exited and its networks were
//! torn down. The `rkt run` process holds an exclusive `flock` on
//! `<pod>/lock` for its whole life: a pod in `run/` whose lock is free has
//! lost its runtime, and `rkt gc` recovers it.

pub mod manifest;
pub mod store;
pub mod time;

pub use manifest::Manifest;
pub use store::{FindError, Pod, PodState, Store};
