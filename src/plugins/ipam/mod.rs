//! IPAM plugins.

pub mod dhcp;
