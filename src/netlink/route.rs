//! Routes in the main table: add, delete, list.

use std::net::IpAddr;

use futures_util::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::RouteMessageBuilder;

use super::{Netlink, NetlinkError, Result};

/// A route, as the plugins need them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: IpNet,
    pub gw: Option<IpAddr>,
    /// Output interface index.
    pub oif: Option<u32>,
    pub scope: Scope,
    /// Preferred source address.
    pub src: Option<IpAddr>,
}

/// Route scopes the plugins use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Universe,
    Link,
    Host,
    Other,
}

impl Route {
    /// A route to `dst` via `gw` (or on-link when None) out of `oif`.
    pub fn new(dst: IpNet, gw: Option<IpAddr>, oif: u32) -> Self {
        Route {
            dst,
            gw,
            oif: Some(oif),
            scope: Scope::Universe,
            src: None,
        }
    }

    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    pub fn src(mut self, src: IpAddr) -> Self {
        self.src = Some(src);
        self
    }

    fn message(&self) -> std::result::Result<RouteMessage, NetlinkError> {
        let invalid = |e: &dyn std::fmt::Display| NetlinkError::InvalidRoute {
            route: self.to_string(),
            source: e.to_string().into(),
        };
        let mut b = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(self.dst.addr(), self.dst.prefix_len())
            .map_err(|e| invalid(&e))?;
        if let Some(gw) = self.gw {
            b = b.gateway(gw).map_err(|e| invalid(&e))?;
        }
        if let Some(src) = self.src {
            b = b.pref_source(src).map_err(|e| invalid(&e))?;
        }
        if let Some(oif) = self.oif {
            b = b.output_interface(oif);
        }
        // What `ip route add` and the reference plugins' netlink use.
        b = b.protocol(RouteProtocol::Boot);
        b = b.scope(match self.scope {
            Scope::Universe => RouteScope::Universe,
            Scope::Link => RouteScope::Link,
            Scope::Host => RouteScope::Host,
            Scope::Other => RouteScope::NoWhere,
        });
        Ok(b.build())
    }
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.dst)?;
        if let Some(gw) = self.gw {
            write!(f, " via {gw}")?;
        }
        if let Some(oif) = self.oif {
            write!(f, " dev #{oif}")?;
        }
        Ok(())
    }
}

fn parse(msg: &RouteMessage) -> Option<Route> {
    let addr = |a: &RouteAddress| match a {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    };
    let mut dst = None;
    let mut gw = None;
    let mut oif = None;
    let mut src = None;
    for a in &msg.attributes {
        match a {
            RouteAttribute::Destination(d) => dst = addr(d),
            RouteAttribute::Gateway(g) => gw = addr(g),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::PrefSource(s) => src = addr(s),
            _ => {}
        }
    }
    let dst = dst.unwrap_or(match msg.header.address_family {
        AddressFamily::Inet6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        _ => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
    });
    Some(Route {
        dst: IpNet::new(dst, msg.header.destination_prefix_length).ok()?,
        gw,
        oif,
        scope: match msg.header.scope {
            RouteScope::Universe => Scope::Universe,
            RouteScope::Link => Scope::Link,
            RouteScope::Host => Scope::Host,
            _ => Scope::Other,
        },
        src,
    })
}

impl Netlink {
    /// Adds a route to the main table.
    pub fn add_route(&self, route: &Route) -> Result<()> {
        let msg = route.message()?;
        let req = self.handle().route().add(msg).execute();
        self.block_on(req)
            .map_err(self.fail(format!("add route {route}")))
    }

    /// Adds or replaces a route (NLM_F_REPLACE).
    pub fn replace_route(&self, route: &Route) -> Result<()> {
        let msg = route.message()?;
        let req = self.handle().route().add(msg).replace().execute();
        self.block_on(req)
            .map_err(self.fail(format!("replace route {route}")))
    }

    /// Deletes a route from the main table.
    pub fn delete_route(&self, route: &Route) -> Result<()> {
        let mut msg = route.message()?;
        // Any protocol: the kernel matches it on delete when it is set.
        msg.header.protocol = RouteProtocol::Unspec;
        let req = self.handle().route().del(msg).execute();
        self.block_on(req)
            .map_err(self.fail(format!("delete route {route}")))
    }

    /// The main table's routes of one family (`v6` false: IPv4).
    pub fn routes(&self, v6: bool) -> Result<Vec<Route>> {
        let msg = if v6 {
            RouteMessageBuilder::<std::net::Ipv6Addr>::new().build()
        } else {
            RouteMessageBuilder::<std::net::Ipv4Addr>::new().build()
        };
        let req = self.handle().route().get(msg).execute();
        let msgs: Vec<RouteMessage> = self
            .block_on(req.try_collect())
            .map_err(self.fail("list routes"))?;
        Ok(msgs
            .iter()
            .filter(|m| m.header.table == RouteHeader::RT_TABLE_MAIN)
            .filter_map(parse)
            .collect())
    }
}
