//! The layer the plugins build on, as the reference plugins have `pkg/`:
//! nothing here is a plugin, and no plugin imports another.
//!
//! - [`conf`]: config fields every plugin reads, typed parsing
//! - [`error`]: the plugin error type and its CNI codes
//! - [`attachment`]: the per-attachment steps of link plugins (netns,
//!   forwarding, firewall record, undo of a failed ADD)
//! - [`veth`]: the host end of a veth pair (names, creation, look-up)
//! - [`iface`]: applying an IPAM result to a pod interface, and CHECK
//! - [`teardown`]: DEL of a link attachment, idempotent, detached delete
//! - [`firewall`]: per-network nftables state (masquerade, isolation)
//! - [`nft`]: running `nft` scripts
//! - [`conntrack`]: deleting conntrack entries (ctnetlink)
//! - [`nf_tables`]: adding and deleting set elements (nf_tables netlink)
//! - [`nfnetlink`]: the netfilter netlink socket both go through
//! - [`detached`]: detached copies of the plugin binary
//! - [`timing`]: step timings

pub mod attachment;
pub mod conf;
pub mod conntrack;
pub mod detached;
pub mod error;
pub mod firewall;
pub mod iface;
pub mod nf_tables;
pub mod nfnetlink;
pub mod nft;
pub mod teardown;
pub mod timing;
pub mod veth;
