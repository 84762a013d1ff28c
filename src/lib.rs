//! rkt: a pod runtime in the style of CoreOS rkt, whose heart is its
//! networking stage, and the CNI plugins it ships.

pub mod cli;
pub mod cni;
pub mod error;
pub mod image;
pub mod lock;
pub mod metadata;
pub mod netlink;
pub mod netns;
pub mod networking;
pub mod plugins;
pub mod pod;
pub mod stage1;
