//! Links: look-up by name, veth pairs whose peer is born inside another
//! netns, bridges and their ports, macvlans, up / mtu / mac / promisc,
//! deletion.

use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{
    BridgeVlanInfoFlags, InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags,
    LinkInfo as NlInfo, LinkMessage, MacVlanMode,
};
use rtnetlink::{
    LinkBridge, LinkBridgePort, LinkBridgeVlan, LinkMacVlan, LinkMessageBuilder, LinkUnspec,
    LinkVeth,
};

use super::{Netlink, NetlinkError, Netns, Result};

/// What the plugins need to know about a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `aa:bb:cc:dd:ee:ff`, empty when the link has none.
    pub mac: String,
    pub mtu: u32,
    /// `veth`, `bridge`, `macvlan`, ... (None for e.g. `lo`).
    pub kind: Option<String>,
    /// The index of the bridge it is enslaved to.
    pub master: Option<u32>,
    pub up: bool,
    pub promisc: bool,
    /// IFLA_LINK: a veth's peer index (in the peer's netns).
    pub peer: Option<u32>,
    /// The device group (0 unless set).
    pub group: u32,
    /// IFLA_IFALIAS, when set.
    pub alias: Option<String>,
}

/// Formats a hardware address as `aa:bb:..`.
pub fn format_mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn kind_name(kind: &InfoKind) -> String {
    match kind {
        InfoKind::Veth => "veth".into(),
        InfoKind::Bridge => "bridge".into(),
        InfoKind::MacVlan => "macvlan".into(),
        InfoKind::Dummy => "dummy".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn from_message(msg: &LinkMessage) -> Link {
    let mut link = Link {
        index: msg.header.index,
        name: String::new(),
        mac: String::new(),
        mtu: 0,
        kind: None,
        master: None,
        up: msg.header.flags.contains(LinkFlags::Up),
        promisc: msg.header.flags.contains(LinkFlags::Promisc),
        peer: None,
        group: 0,
        alias: None,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Address(a) => link.mac = format_mac(a),
            LinkAttribute::Mtu(m) => link.mtu = *m,
            LinkAttribute::Controller(c) => link.master = Some(*c),
            LinkAttribute::Link(p) => link.peer = Some(*p),
            LinkAttribute::Group(g) => link.group = *g,
            LinkAttribute::IfAlias(a) => link.alias = Some(a.clone()),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let NlInfo::Kind(k) = i {
                        link.kind = Some(kind_name(k));
                    }
                }
            }
            _ => {}
        }
    }
    link
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<Vec<u8>> {
    let bytes: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).ok())
        .collect::<Option<_>>()?;
    (bytes.len() == 6).then_some(bytes)
}

impl Netlink {
    /// The link called `name`, or None when there is none.
    pub fn link_by_name(&self, name: &str) -> Result<Option<Link>> {
        let req = self
            .handle()
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        let res = self.block_on(async move {
            futures_util::pin_mut!(req);
            req.try_next().await
        });
        match res {
            Ok(msg) => Ok(msg.as_ref().map(from_message)),
            Err(e) => {
                let err = self.fail(format!("look up link {name}"))(e);
                if err.is_not_found() {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// The link called `name`; an error naming it when there is none.
    pub fn link(&self, name: &str) -> Result<Link> {
        self.link_by_name(name)?
            .ok_or_else(|| NetlinkError::NoLink {
                link: format!("named {name}"),
                netns: self.ns_name().to_string(),
            })
    }

    /// The link with index `index`.
    pub fn link_by_index(&self, index: u32) -> Result<Link> {
        let req = self.handle().link().get().match_index(index).execute();
        let res = self.block_on(async move {
            futures_util::pin_mut!(req);
            req.try_next().await
        });
        match res.map_err(self.fail(format!("look up link #{index}")))? {
            Some(m) => Ok(from_message(&m)),
            None => Err(NetlinkError::NoLink {
                link: format!("#{index}"),
                netns: self.ns_name().to_string(),
            }),
        }
    }

    fn add_link(&self, msg: LinkMessage, what: String) -> Result<()> {
        let req = self.handle().link().add(msg).execute();
        self.block_on(req).map_err(self.fail(what))
    }

    /// Creates a veth pair: `name` here, `peer_name` born directly inside
    /// `peer_ns` (IFLA_NET_NS_FD on the peer: no move between namespaces).
    /// Both ends get `mtu` when given; the end here is in device group
    /// `group` when given (set in the same request). Neither end is set up.
    pub fn create_veth(
        &self,
        name: &str,
        peer_name: &str,
        peer_ns: &Netns,
        mtu: Option<u32>,
        group: Option<u32>,
    ) -> Result<()> {
        let mut peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer_name.to_string())
            .setns_by_fd(peer_ns.fd())
            .txqueuelen(0);
        if let Some(m) = mtu {
            peer = peer.mtu(m);
        }
        let mut b = LinkVeth::new(name, peer_name)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
            .txqueuelen(0);
        if let Some(m) = mtu {
            b = b.mtu(m);
        }
        if let Some(g) = group {
            b = b.link_group(g);
        }
        self.add_link(
            b.build(),
            format!(
                "create veth {name} with peer {peer_name} in {}",
                peer_ns.path().display()
            ),
        )
    }

    /// Creates a bridge (down; call [`Netlink::set_up`]).
    pub fn create_bridge(&self, name: &str, mtu: Option<u32>, vlan_filtering: bool) -> Result<()> {
        let mut b = LinkBridge::new(name).down();
        if let Some(m) = mtu {
            b = b.mtu(m);
        }
        if vlan_filtering {
            b = b.append_info_data(rtnetlink::packet_route::link::InfoBridge::VlanFiltering(
                true,
            ));
        }
        self.add_link(b.build(), format!("create bridge {name}"))
    }

    /// Creates a macvlan on `master` (an index here) named `name`, born
    /// directly inside `ns`.
    pub fn create_macvlan(
        &self,
        name: &str,
        master: u32,
        mode: MacVlanMode,
        mtu: Option<u32>,
        ns: &Netns,
    ) -> Result<()> {
        // txqueuelen 0, as the reference plugins' netlink library sets it.
        let mut b = LinkMacVlan::new(name, master, mode)
            .setns_by_fd(ns.fd())
            .txqueuelen(0);
        if let Some(m) = mtu {
            b = b.mtu(m);
        }
        self.add_link(
            b.build(),
            format!(
                "create macvlan {name} on link #{master} in {}",
                ns.path().display()
            ),
        )
    }

    fn set(&self, msg: LinkMessage, what: String) -> Result<()> {
        let req = self.handle().link().set(msg).execute();
        self.block_on(req).map_err(self.fail(what))
    }

    pub fn set_up(&self, index: u32) -> Result<()> {
        self.set(
            LinkUnspec::new_with_index(index).up().build(),
            format!("set link #{index} up"),
        )
    }

    /// Sets link `index` up and its alias (IFLA_IFALIAS) to `alias`, in
    /// one request (the kernel ignores an alias given at creation).
    pub fn set_up_with_alias(&self, index: u32, alias: &str) -> Result<()> {
        self.set(
            LinkUnspec::new_with_index(index).up().alias(alias).build(),
            format!("set link #{index} up with alias {alias}"),
        )
    }

    pub fn set_down(&self, index: u32) -> Result<()> {
        self.set(
            LinkUnspec::new_with_index(index).down().build(),
            format!("set link #{index} down"),
        )
    }

    pub fn set_mtu(&self, index: u32, mtu: u32) -> Result<()> {
        self.set(
            LinkUnspec::new_with_index(index).mtu(mtu).build(),
            format!("set mtu {mtu} on link #{index}"),
        )
    }

    pub fn set_mac(&self, index: u32, mac: &[u8]) -> Result<()> {
        self.set(
            LinkUnspec::new_with_index(index)
                .address(mac.to_vec())
                .build(),
            format!("set mac {} on link #{index}", format_mac(mac)),
        )
    }

    pub fn set_promisc(&self, index: u32, on: bool) -> Result<()> {
        self.set(
            LinkUnspec::new_with_index(index).promiscuous(on).build(),
            format!("set promisc {on} on link #{index}"),
        )
    }

    pub fn rename(&self, index: u32, name: &str) -> Result<()> {
        self.set(
            LinkUnspec::new_with_index(index)
                .name(name.to_string())
                .build(),
            format!("rename link #{index} to {name}"),
        )
    }

    /// Enslaves link `index` to bridge `master`.
    pub fn set_master(&self, index: u32, master: u32) -> Result<()> {
        self.set(
            LinkUnspec::new_with_index(index).controller(master).build(),
            format!("attach link #{index} to bridge #{master}"),
        )
    }

    /// Sets hairpin mode on a bridge port.
    pub fn set_hairpin(&self, index: u32, on: bool) -> Result<()> {
        let msg = LinkBridgePort::new(index).hairpin(on).build();
        let req = self.handle().link().set_port(msg).execute();
        self.block_on(req)
            .map_err(self.fail(format!("set hairpin {on} on bridge port #{index}")))
    }

    /// `bridge vlan add dev <index> vid <vid> pvid untagged`.
    pub fn add_port_vlan(&self, index: u32, vid: u16) -> Result<()> {
        let msg = LinkBridgeVlan::new(index)
            .vlan(
                vid,
                BridgeVlanInfoFlags::Pvid | BridgeVlanInfoFlags::Untagged,
            )
            .build();
        self.set(msg, format!("add vlan {vid} to bridge port #{index}"))
    }

    /// Deletes link `index`.
    pub fn delete_link(&self, index: u32) -> Result<()> {
        let req = self.handle().link().del(index).execute();
        self.block_on(req)
            .map_err(self.fail(format!("delete link #{index}")))
    }

    /// Deletes the link called `name`; false when there was none.
    pub fn delete_link_by_name(&self, name: &str) -> Result<bool> {
        match self.link_by_name(name)? {
            None => Ok(false),
            Some(l) => match self.delete_link(l.index) {
                Ok(()) => Ok(true),
                Err(e) if e.is_not_found() => Ok(false),
                Err(e) => Err(e),
            },
        }
    }
}
