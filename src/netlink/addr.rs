//! Interface addresses: add (IPv4 with the broadcast address the reference
//! plugins' netlink library sets), list, delete.

use std::net::IpAddr;

use futures_util::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};

use super::{Netlink, Result};

fn address_of(msg: &AddressMessage) -> Option<IpNet> {
    // IFA_LOCAL is the interface's own address on point-to-point links;
    // prefer it, as `ip addr` does.
    let mut addr = None;
    for a in &msg.attributes {
        match a {
            AddressAttribute::Local(ip) => addr = Some(*ip),
            AddressAttribute::Address(ip) if addr.is_none() => addr = Some(*ip),
            _ => {}
        }
    }
    addr.and_then(|ip| IpNet::new(ip, msg.header.prefix_len).ok())
}

impl Netlink {
    /// Adds `addr` (with its prefix) to link `index`.
    pub fn add_address(&self, index: u32, addr: IpNet) -> Result<()> {
        let req = self
            .handle()
            .address()
            .add(index, addr.addr(), addr.prefix_len())
            .execute();
        self.block_on(req)
            .map_err(self.fail(format!("add address {addr} to link #{index}")))
    }

    /// Adds an IPv6 `addr` without duplicate address detection (usable at
    /// once, e.g. as a route's source).
    pub fn add_address_nodad(&self, index: u32, addr: IpNet) -> Result<()> {
        let mut req = self
            .handle()
            .address()
            .add(index, addr.addr(), addr.prefix_len());
        req.message_mut().header.flags |= AddressHeaderFlags::Nodad;
        self.block_on(req.execute())
            .map_err(self.fail(format!("add address {addr} to link #{index}")))
    }

    /// The addresses on link `index` (both families).
    pub fn addresses(&self, index: u32) -> Result<Vec<IpNet>> {
        let req = self
            .handle()
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        let msgs: Vec<AddressMessage> = self
            .block_on(req.try_collect())
            .map_err(self.fail(format!("list addresses of link #{index}")))?;
        Ok(msgs.iter().filter_map(address_of).collect())
    }

    /// Deletes `addr` from link `index`.
    pub fn delete_address(&self, index: u32, addr: IpNet) -> Result<()> {
        let msg = match addr.addr() {
            IpAddr::V4(a) => rtnetlink::AddressMessageBuilder::<std::net::Ipv4Addr>::new()
                .index(index)
                .address(a, addr.prefix_len())
                .build(),
            IpAddr::V6(a) => rtnetlink::AddressMessageBuilder::<std::net::Ipv6Addr>::new()
                .index(index)
                .address(a, addr.prefix_len())
                .build(),
        };
        let req = self.handle().address().del(msg).execute();
        self.block_on(req)
            .map_err(self.fail(format!("delete address {addr} from link #{index}")))
    }
}
