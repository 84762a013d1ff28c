//! `portmap`: a chained CNI plugin that forwards host ports to the pod
//! (`runtimeConfig.portMappings`, the CNI `portMappings` capability), on
//! nftables, at a flat cost per pod: one table whose chains never change,
//! each ADD and DEL adding or deleting map elements ([`rules`]), with its
//! state under `/run/rkt-portmap` ([`state`]).
//!
//! The config keys of the reference `portmap` are read where they overlap:
//! `snat` (default true: hairpin and localhost connections are
//! masqueraded, and `route_localnet` is set on the host side of the pod's
//! link for 127.0.0.1), `markMasqBit` (0-31, accepted: this plugin
//! masquerades by conntrack state and never touches the packet mark),
//! `backend` (`iptables` or `nftables`: this plugin is nftables whatever
//! it says). `externalSetMarkChain`, `conditionsV4` and `conditionsV6`
//! name iptables chains and match arguments, which an nftables table
//! cannot use: they are refused.
//!
//! UDP conntrack entries to a newly mapped host port are deleted at ADD
//! (as the reference does: a stale entry would keep the traffic from the
//! new mapping); every entry of the pod's addresses goes with its
//! elements, in the flush that follows DEL (see [`state`]).

pub mod rules;
mod state;

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;

use crate::cni::port_mapping::{PortMapping, Proto};
use crate::cni::skeleton::{attachment_file_name, Plugin, Request};
use crate::cni::{codes, CniError, CniResult};
use crate::plugins::pkg::conntrack;
use state::{Attachment, State, StateError};

pub use state::{flush_later, FLUSH_ENV};

pub struct Portmap;

fn config_err(req: &Request, msg: impl std::fmt::Display) -> CniError {
    CniError::new(
        codes::INVALID_CONFIG,
        format!("network \"{}\": portmap: {msg}", req.name),
    )
}

fn state_err(req: &Request) -> impl FnOnce(StateError) -> CniError + '_ {
    move |e| {
        let code = match e {
            StateError::Claimed { .. } => codes::INTERNAL,
            _ => codes::IO_FAILURE,
        };
        CniError::new(code, format!("network \"{}\": portmap: {e}", req.name))
    }
}

/// The plugin's config, checked.
struct Conf {
    mappings: Vec<PortMapping>,
    snat: bool,
}

impl Conf {
    fn parse(req: &Request) -> Result<Conf, CniError> {
        let snat = match req.field("snat") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(v) => {
                return Err(config_err(
                    req,
                    format!("\"snat\" must be true or false, not {v}"),
                ))
            }
        };
        if let Some(v) = req.field("markMasqBit") {
            if v.as_u64().is_none_or(|b| b > 31) {
                return Err(config_err(
                    req,
                    format!("\"markMasqBit\" must be a number from 0 to 31, not {v}"),
                ));
            }
        }
        if req
            .field("externalSetMarkChain")
            .is_some_and(|v| v.as_str() != Some(""))
        {
            return Err(config_err(
                req,
                "\"externalSetMarkChain\" names an iptables chain, which this nftables portmap cannot jump to (it masquerades in its own table); remove the key, or use the reference portmap",
            ));
        }
        for key in ["conditionsV4", "conditionsV6"] {
            if req
                .field(key)
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
            {
                return Err(config_err(
                    req,
                    format!("\"{key}\" holds iptables match arguments, which this nftables portmap cannot apply; remove them, or use the reference portmap"),
                ));
            }
        }
        match req.field("backend").map(|v| v.as_str()) {
            None | Some(Some("iptables" | "nftables")) => {}
            Some(_) => {
                return Err(config_err(
                    req,
                    "\"backend\" must be \"iptables\" or \"nftables\"",
                ))
            }
        }
        let mut mappings: Vec<PortMapping> = Vec::new();
        let list = req
            .config
            .get("runtimeConfig")
            .and_then(|rc| rc.get(crate::cni::port_mapping::CAPABILITY));
        for (i, m) in list
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let m = PortMapping::from_value(m)
                .map_err(|e| config_err(req, format!("portMappings[{i}]: {e}")))?;
            if let Some(same) = mappings.iter().find(|o| o.overlaps(&m)) {
                return Err(config_err(
                    req,
                    format!(
                        "host port {}/{} is mapped twice ({} and {})",
                        m.host_port,
                        m.proto.name(),
                        same.display(),
                        m.display()
                    ),
                ));
            }
            mappings.push(m);
        }
        if list.is_some_and(|l| !l.is_array()) {
            return Err(config_err(req, "runtimeConfig.portMappings must be a list"));
        }
        Ok(Conf { mappings, snat })
    }
}

/// The pod's first address of each family, from the interfaces in the pod
/// (all addresses when the result names no interface).
fn pod_addrs(prev: &CniResult) -> Vec<IpNet> {
    let in_pod = |i: Option<usize>| match i {
        Some(i) => prev
            .interfaces
            .get(i)
            .is_some_and(|f| !f.sandbox.is_empty()),
        None => true,
    };
    let mut out: Vec<IpNet> = Vec::new();
    for ip in prev.ips.iter().filter(|ip| in_pod(ip.interface)) {
        if !out
            .iter()
            .any(|o| o.addr().is_ipv4() == ip.address.addr().is_ipv4())
        {
            out.push(ip.address);
        }
    }
    out
}

/// The host-side interfaces of the attachment (the bridge, the host veth).
fn host_interfaces(prev: &CniResult) -> Vec<&str> {
    prev.interfaces
        .iter()
        .filter(|i| i.sandbox.is_empty() && crate::cni::skeleton::valid_ifname(&i.name))
        .map(|i| i.name.as_str())
        .collect()
}

fn chained(req: &Request) -> Result<CniResult, CniError> {
    req.prev_result.clone().ok_or_else(|| {
        config_err(req, "no prevResult: portmap is a chained plugin; list it after the plugin that creates the interface (e.g. ptp or bridge) in a conflist")
    })
}

impl Plugin for Portmap {
    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        let conf = Conf::parse(req)?;
        let prev = chained(req)?;
        if conf.mappings.is_empty() {
            return Ok(prev);
        }
        let addrs = pod_addrs(&prev);
        let mut elements = Vec::new();
        for m in &conf.mappings {
            let mine = rules::elements(m, &addrs, conf.snat);
            if mine.is_empty() {
                let fam = match m.host_ip {
                    Some(IpAddr::V6(_)) => "IPv6",
                    Some(IpAddr::V4(_)) => "IPv4",
                    None => "IP",
                };
                return Err(config_err(
                    req,
                    format!(
                        "cannot forward {}: the pod has no {fam} address on this network",
                        m.display()
                    ),
                ));
            }
            elements.extend(mine);
        }
        // 127.0.0.1 reaches the pod only if the host routes loopback
        // sources out of the pod's link (and masquerades them: snat).
        let localhost = conf.snat
            && conf.mappings.iter().any(|m| match m.host_ip {
                None => true,
                Some(ip) => ip.is_ipv4() && (ip.is_unspecified() || ip.is_loopback()),
            });
        let att = Attachment {
            container_id: req.container_id.clone(),
            ifname: req.ifname.clone(),
            elements,
            addrs: addrs.iter().map(IpNet::addr).collect(),
            localnet: if localhost && addrs.iter().any(|a| a.addr().is_ipv4()) {
                host_interfaces(&prev)
                    .into_iter()
                    .map(String::from)
                    .collect()
            } else {
                Vec::new()
            },
        };
        State::lock()
            .and_then(|s| s.add(&att))
            .map_err(state_err(req))?;
        // A UDP "connection" to the host port from before the mapping
        // would keep its packets from being forwarded. One walk of the
        // conntrack table per family a UDP mapping forwards (~14 ms here,
        // whatever the table holds; TCP mappings cost nothing).
        for v4 in [true, false] {
            let udp: Vec<&PortMapping> = conf
                .mappings
                .iter()
                .filter(|m| m.proto == Proto::Udp && m.applies(v4))
                .collect();
            if udp.is_empty() || !addrs.iter().any(|a| a.addr().is_ipv4() == v4) {
                continue;
            }
            let _ = conntrack::delete_where(!v4, |e| {
                e.orig.proto == conntrack::UDP
                    && udp.iter().any(|m| {
                        e.orig.dport == Some(m.host_port)
                            && m.host_ip
                                .filter(|ip| !ip.is_unspecified())
                                .is_none_or(|ip| e.orig.dst == Some(ip))
                    })
            });
        }
        Ok(prev)
    }

    fn del(&self, req: &Request) -> Result<(), CniError> {
        // A config DEL cannot act on must not block the pod's teardown:
        // the state says what to remove. The elements and the pod's
        // conntrack entries go with the flush DEL schedules.
        let member = attachment_file_name(&req.container_id, &req.ifname);
        State::lock()
            .and_then(|s| s.remove(&member))
            .map_err(state_err(req))?;
        Ok(())
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        let conf = Conf::parse(req)?;
        chained(req)?;
        if conf.mappings.is_empty() {
            return Ok(());
        }
        let member = attachment_file_name(&req.container_id, &req.ifname);
        let att = State::lock()
            .map_err(state_err(req))?
            .get(&member)
            .ok_or_else(|| CniError::new(codes::INTERNAL, format!("network \"{}\": portmap: no port mappings recorded for container {} (interface {})", req.name, req.container_id, req.ifname)))?;
        for e in &att.elements {
            let args = e.get_args();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let found = crate::plugins::pkg::nft::run(&args, "").ok();
            let ok = found.is_some_and(|out| e.value().is_none_or(|v| out.contains(v.as_str())));
            if !ok {
                return Err(CniError::new(
                    codes::INTERNAL,
                    format!(
                        "network \"{}\": portmap: element {} of {} is missing from table inet {}",
                        req.name,
                        e.key(),
                        e.set(),
                        rules::TABLE
                    ),
                ));
            }
        }
        Ok(())
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        let valid: Vec<String> = req
            .valid_attachments()
            .iter()
            .map(|(c, i)| attachment_file_name(c, i))
            .collect();
        let gone = State::lock()
            .and_then(|s| {
                for a in s.all() {
                    if !valid.contains(&a.member()) {
                        s.remove(&a.member())?;
                    }
                }
                s.flush()
            })
            .map_err(state_err(req))?;
        for a in gone {
            forget_connections(&a.addrs);
        }
        Ok(())
    }

    fn status(&self, req: &Request) -> Result<(), CniError> {
        match crate::plugins::pkg::nft::bin() {
            Some(_) => Ok(()),
            None => Err(CniError::new(
                codes::IO_FAILURE,
                format!(
                    "network \"{}\": portmap: nft is not installed; install nftables",
                    req.name
                ),
            )),
        }
    }
}

/// Deletes the conntrack entries from or to the pod's addresses: they
/// would misroute traffic for a pod that reuses them.
fn forget_connections(addrs: &[IpAddr]) {
    for v6 in [false, true] {
        let mine: Vec<IpAddr> = addrs
            .iter()
            .copied()
            .filter(|a| a.is_ipv6() == v6)
            .collect();
        if mine.is_empty() {
            continue;
        }
        let _ = conntrack::delete_where(v6, |e| {
            [e.orig.src, e.reply.src]
                .iter()
                .flatten()
                .any(|a| mine.contains(a))
        });
    }
}
