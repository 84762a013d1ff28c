//! `loopback`: sets the pod's `lo` up (ADD) or down (DEL), as the reference
//! loopback plugin does; its result lists `lo` with 127.0.0.1/8 and ::1/128.

use std::path::Path;

use ipnet::IpNet;

use super::pkg::attachment::open_netns;
use super::pkg::error::nl_err;
use crate::cni::result::{Interface, IpConfig};
use crate::cni::skeleton::{Plugin, Request};
use crate::cni::{CniError, CniResult};
use crate::netlink::{Netlink, Netns};

pub struct Loopback;

impl Plugin for Loopback {
    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        let ns = open_netns(req)?;
        let pod = Netlink::in_netns(&ns).map_err(nl_err(req, "connect to the pod netns"))?;
        let lo = pod
            .link(&req.ifname)
            .map_err(nl_err(req, "look up the loopback interface"))?;
        pod.set_up(lo.index)
            .map_err(nl_err(req, "set the loopback up"))?;
        if let Some(prev) = &req.prev_result {
            return Ok(prev.clone());
        }
        let addrs = pod
            .addresses(lo.index)
            .map_err(nl_err(req, "read the loopback addresses"))?;
        let pick = |v4: bool| {
            addrs
                .iter()
                .find(|a: &&IpNet| a.addr().is_ipv4() == v4 && a.addr().is_loopback())
                .copied()
        };
        Ok(CniResult {
            interfaces: vec![Interface {
                name: req.ifname.clone(),
                mac: "00:00:00:00:00:00".into(),
                sandbox: req.netns.clone(),
                ..Default::default()
            }],
            ips: [pick(true), pick(false)]
                .into_iter()
                .flatten()
                .map(|address| IpConfig {
                    interface: Some(0),
                    address,
                    gateway: None,
                })
                .collect(),
            ..Default::default()
        })
    }

    fn del(&self, req: &Request) -> Result<(), CniError> {
        if req.netns.is_empty() || req.netns_goes_away() {
            return Ok(());
        }
        let ns = match Netns::open(Path::new(&req.netns)) {
            Ok(ns) => ns,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(nl_err(req, "open the pod netns")(e.into()).into()),
        };
        let pod = Netlink::in_netns(&ns).map_err(nl_err(req, "connect to the pod netns"))?;
        if let Some(lo) = pod
            .link_by_name(&req.ifname)
            .map_err(nl_err(req, "look up the loopback interface"))?
        {
            pod.set_down(lo.index)
                .map_err(nl_err(req, "set the loopback down"))?;
        }
        Ok(())
    }
}
