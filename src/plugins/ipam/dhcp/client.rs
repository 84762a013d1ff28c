//! The DHCPv4 client state machine (RFC 2131) on `dhcproto` packets:
//! DISCOVER/OFFER/REQUEST/ACK with fast retransmission (50 ms, doubling,
//! capped at 2 s), RENEW (unicast) and REBIND (broadcast) requests, NAK
//! handling and RELEASE. The transport (raw or UDP socket) is given.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Encodable};
use ipnet::Ipv4Net;

use super::lease::{now_ms, Lease};
use super::link::Transport;
use crate::cni::result::Dns;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no DHCP server answered on \"{ifname}\" within {secs:.1}s ({what})")]
    Timeout {
        ifname: String,
        secs: f64,
        what: &'static str,
    },
    #[error("DHCP server {server} refused the address (NAK) on \"{ifname}\"")]
    Nak { ifname: String, server: Ipv4Addr },
    #[error("sending DHCP {what} on \"{ifname}\": {source}")]
    Send {
        ifname: String,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("receiving on \"{ifname}\": {source}")]
    Recv {
        ifname: String,
        source: std::io::Error,
    },
    #[error("cannot encode DHCP {what}: {msg}")]
    Encode { what: &'static str, msg: String },
    #[error("DHCP ACK from {server} on \"{ifname}\" lacks {what}")]
    Incomplete {
        ifname: String,
        server: Ipv4Addr,
        what: &'static str,
    },
}

/// Who we are on the wire.
#[derive(Debug, Clone)]
pub struct Identity {
    pub ifname: String,
    pub mac: [u8; 6],
    pub client_id: Vec<u8>,
}

fn xid() -> u32 {
    (uuid::Uuid::new_v4().as_u128() & 0xffff_ffff) as u32
}

const PARAMS: &[OptionCode] = &[
    OptionCode::SubnetMask,
    OptionCode::Router,
    OptionCode::DomainNameServer,
    OptionCode::DomainName,
    OptionCode::DomainSearch,
    OptionCode::ClasslessStaticRoute,
    OptionCode::StaticRoutingTable,
    OptionCode::AddressLeaseTime,
    OptionCode::Renewal,
    OptionCode::Rebinding,
];

fn base(id: &Identity, xid: u32, mtype: MessageType, ciaddr: Ipv4Addr) -> Message {
    let mut m = Message::new_with_id(
        xid,
        ciaddr,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &id.mac,
    );
    m.set_opcode(Opcode::BootRequest);
    let opts = m.opts_mut();
    opts.insert(DhcpOption::MessageType(mtype));
    opts.insert(DhcpOption::ClientIdentifier(id.client_id.clone()));
    if mtype != MessageType::Release {
        opts.insert(DhcpOption::ParameterRequestList(PARAMS.to_vec()));
        opts.insert(DhcpOption::MaxMessageSize(1500));
    }
    m
}

fn encode(m: &Message, what: &'static str) -> Result<Vec<u8>, ClientError> {
    m.to_vec().map_err(|e| ClientError::Encode {
        what,
        msg: e.to_string(),
    })
}

fn mtype(m: &Message) -> Option<MessageType> {
    match m.opts().get(OptionCode::MessageType) {
        Some(DhcpOption::MessageType(t)) => Some(*t),
        _ => None,
    }
}

fn server_id(m: &Message) -> Option<Ipv4Addr> {
    match m.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(s)) => Some(*s),
        _ => None,
    }
}

/// One request on the wire.
struct Outgoing<'a> {
    what: &'static str,
    payload: &'a [u8],
    dst: Ipv4Addr,
    xid: u32,
}

/// Sends the request and waits for a reply that `accept` takes, resending
/// at 50 ms, 100 ms, 200 ms, ... (capped at 2 s) until `deadline`.
fn exchange<T>(
    tr: &dyn Transport,
    id: &Identity,
    out: Outgoing,
    deadline: Instant,
    mut accept: impl FnMut(&Message) -> Option<T>,
) -> Result<Option<T>, ClientError> {
    let Outgoing {
        what,
        payload,
        dst,
        xid,
    } = out;
    let mut wait = Duration::from_millis(50);
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        tr.send(payload, dst).map_err(|source| ClientError::Send {
            ifname: id.ifname.clone(),
            what,
            source,
        })?;
        let resend = (now + wait).min(deadline);
        wait = (wait * 2).min(Duration::from_secs(2));
        while let Some(buf) = tr.recv(resend).map_err(|source| ClientError::Recv {
            ifname: id.ifname.clone(),
            source,
        })? {
            let Ok(m) = Message::from_bytes(&buf) else {
                continue;
            };
            if m.opcode() != Opcode::BootReply || m.xid() != xid || m.chaddr() != id.mac {
                continue;
            }
            if let Some(v) = accept(&m) {
                return Ok(Some(v));
            }
        }
    }
}

enum Answer {
    Ack(Box<Message>),
    Nak(Ipv4Addr),
}

fn ack_or_nak(m: &Message, server: Option<Ipv4Addr>) -> Option<Answer> {
    let sid = server_id(m);
    if server.is_some() && sid.is_some() && sid != server {
        return None;
    }
    match mtype(m)? {
        MessageType::Ack => Some(Answer::Ack(Box::new(m.clone()))),
        MessageType::Nak => Some(Answer::Nak(sid.unwrap_or(Ipv4Addr::UNSPECIFIED))),
        _ => None,
    }
}

/// One broadcast step of INIT: `m` with the broadcast flag (the client
/// has no address yet) to 255.255.255.255, and the answer `accept` takes.
fn broadcast<T>(
    tr: &dyn Transport,
    id: &Identity,
    mut m: Message,
    what: &'static str,
    deadline: Instant,
    start: Instant,
    accept: impl FnMut(&Message) -> Option<T>,
) -> Result<Option<T>, ClientError> {
    m.set_flags(Flags::default().set_broadcast());
    let payload = encode(&m, what)?;
    let out = Outgoing {
        what,
        payload: &payload,
        dst: Ipv4Addr::BROADCAST,
        xid: m.xid(),
    };
    let answer = exchange(tr, id, out, deadline, accept)?;
    tracing::debug!(
        "{}: answer to {what} after {:.1} ms",
        id.ifname,
        start.elapsed().as_secs_f64() * 1e3
    );
    Ok(answer)
}

/// INIT: DISCOVER, OFFER, REQUEST, ACK (restarting after a NAK), until
/// `deadline`. `tr` must work without an address (raw socket).
pub fn acquire(tr: &dyn Transport, id: &Identity, deadline: Instant) -> Result<Lease, ClientError> {
    let start = Instant::now();
    let timeout = |what| ClientError::Timeout {
        ifname: id.ifname.clone(),
        secs: deadline.saturating_duration_since(start).as_secs_f64(),
        what,
    };
    let mut last_nak = None;
    loop {
        let x = xid();
        let discover = base(id, x, MessageType::Discover, Ipv4Addr::UNSPECIFIED);
        let offer = broadcast(tr, id, discover, "DISCOVER", deadline, start, |m| {
            (mtype(m) == Some(MessageType::Offer) && !m.yiaddr().is_unspecified())
                .then(|| (m.yiaddr(), server_id(m).unwrap_or(m.siaddr())))
        })?;
        let Some((offered, server)) = offer else {
            return Err(match last_nak {
                Some(server) => ClientError::Nak {
                    ifname: id.ifname.clone(),
                    server,
                },
                None => timeout("no OFFER to DISCOVER"),
            });
        };
        let mut req = base(id, x, MessageType::Request, Ipv4Addr::UNSPECIFIED);
        req.opts_mut()
            .insert(DhcpOption::RequestedIpAddress(offered));
        req.opts_mut().insert(DhcpOption::ServerIdentifier(server));
        let answer = broadcast(tr, id, req, "REQUEST", deadline, start, |m| {
            ack_or_nak(m, Some(server))
        })?;
        match answer {
            Some(Answer::Ack(m)) => return lease_from_ack(&m, id, None),
            Some(Answer::Nak(s)) => last_nak = Some(s),
            None => return Err(timeout("no ACK to REQUEST")),
        }
    }
}

/// RENEWING (unicast to the server) or REBINDING (broadcast): a REQUEST
/// with ciaddr set. Ok(None) when nobody answered before `deadline`;
/// Err(Nak) when the server refused: the lease is gone.
pub fn extend(
    tr: &dyn Transport,
    id: &Identity,
    lease: &Lease,
    rebind: bool,
    deadline: Instant,
) -> Result<Option<Lease>, ClientError> {
    let x = xid();
    let ip = lease.address.addr();
    let req = base(id, x, MessageType::Request, ip);
    let payload = encode(&req, "REQUEST")?;
    let dst = if rebind {
        Ipv4Addr::BROADCAST
    } else {
        lease.server
    };
    let what = if rebind { "REBIND" } else { "RENEW" };
    let server = (!rebind).then_some(lease.server);
    let out = Outgoing {
        what,
        payload: &payload,
        dst,
        xid: x,
    };
    match exchange(tr, id, out, deadline, |m| ack_or_nak(m, server))? {
        Some(Answer::Ack(m)) => lease_from_ack(&m, id, Some(lease)).map(Some),
        Some(Answer::Nak(s)) => Err(ClientError::Nak {
            ifname: id.ifname.clone(),
            server: s,
        }),
        None => Ok(None),
    }
}

/// DHCPRELEASE to the server; there is no answer.
pub fn release(tr: &dyn Transport, id: &Identity, lease: &Lease) -> Result<(), ClientError> {
    let mut m = base(id, xid(), MessageType::Release, lease.address.addr());
    m.opts_mut()
        .insert(DhcpOption::ServerIdentifier(lease.server));
    let payload = encode(&m, "RELEASE")?;
    tr.send(&payload, lease.server)
        .map_err(|source| ClientError::Send {
            ifname: id.ifname.clone(),
            what: "RELEASE",
            source,
        })
}

fn name_str(n: &dhcproto::Name) -> String {
    n.to_utf8().trim_end_matches('.').to_string()
}

/// Reads an ACK into a lease; `prev` fills what a renewal ACK may omit.
pub fn lease_from_ack(
    m: &Message,
    id: &Identity,
    prev: Option<&Lease>,
) -> Result<Lease, ClientError> {
    let opts = m.opts();
    let server = server_id(m)
        .or(prev.map(|p| p.server))
        .unwrap_or(m.siaddr());
    let incomplete = |what| ClientError::Incomplete {
        ifname: id.ifname.clone(),
        server,
        what,
    };
    let ip = m.yiaddr();
    if ip.is_unspecified() {
        return Err(incomplete("an address (yiaddr)"));
    }
    let prefix = match opts.get(OptionCode::SubnetMask) {
        Some(DhcpOption::SubnetMask(mask)) => u32::from(*mask).leading_ones() as u8,
        _ => match prev {
            Some(p) => p.address.prefix_len(),
            None => return Err(incomplete("a subnet mask (option 1)")),
        },
    };
    let address = Ipv4Net::new(ip, prefix).map_err(|_| incomplete("a valid subnet mask"))?;
    let router = match opts.get(OptionCode::Router) {
        Some(DhcpOption::Router(r)) => r.first().copied(),
        _ => None,
    };
    let (routes, classless) = match opts.get(OptionCode::ClasslessStaticRoute) {
        Some(DhcpOption::ClasslessStaticRoute(r)) => (r.clone(), true),
        _ => match opts.get(OptionCode::StaticRoutingTable) {
            Some(DhcpOption::StaticRoutingTable(r)) => (
                r.iter()
                    .filter_map(|(dst, gw)| Ipv4Net::new(*dst, 32).ok().map(|n| (n, *gw)))
                    .collect(),
                false,
            ),
            _ => (Vec::new(), false),
        },
    };
    let mut dns = Dns::default();
    if let Some(DhcpOption::DomainNameServer(ns)) = opts.get(OptionCode::DomainNameServer) {
        dns.nameservers = ns.iter().map(|a| a.to_string()).collect();
    }
    if let Some(DhcpOption::DomainName(d)) = opts.get(OptionCode::DomainName) {
        dns.domain = d.trim_end_matches('.').to_string();
    }
    if let Some(DhcpOption::DomainSearch(list)) = opts.get(OptionCode::DomainSearch) {
        dns.search = list.iter().map(name_str).collect();
    }
    // A server's names are bytes: one with a newline or a space would add
    // lines to a resolv.conf written from our result. Keep what is valid.
    let (dns, dropped) = dns.checked();
    if !dropped.is_empty() {
        tracing::warn!(
            "DHCP server {server}: DNS values ignored (not valid in a resolv.conf): {dropped:?}"
        );
    }
    let lease_secs = match opts.get(OptionCode::AddressLeaseTime) {
        Some(DhcpOption::AddressLeaseTime(s)) => *s,
        _ => prev.map(|p| p.lease_secs).unwrap_or(3600),
    };
    let t1_secs = match opts.get(OptionCode::Renewal) {
        Some(DhcpOption::Renewal(s)) if *s < lease_secs => *s,
        _ => lease_secs / 2,
    };
    let t2_secs = match opts.get(OptionCode::Rebinding) {
        Some(DhcpOption::Rebinding(s)) if *s < lease_secs && *s >= t1_secs => *s,
        _ => (u64::from(lease_secs) * 7 / 8) as u32,
    };
    Ok(Lease {
        address,
        server,
        router,
        routes,
        dns,
        acquired_ms: now_ms(),
        lease_secs,
        t1_secs,
        t2_secs,
        classless,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> Identity {
        Identity {
            ifname: "eth0".into(),
            mac: [2, 0, 0, 0, 0, 1],
            client_id: b"\0c/n/eth0".to_vec(),
        }
    }

    fn ack() -> Message {
        let mut m = Message::new_with_id(
            7,
            Ipv4Addr::UNSPECIFIED,
            "10.77.0.50".parse().unwrap(),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &id().mac,
        );
        m.set_opcode(Opcode::BootReply);
        let o = m.opts_mut();
        o.insert(DhcpOption::MessageType(MessageType::Ack));
        o.insert(DhcpOption::ServerIdentifier("10.77.0.1".parse().unwrap()));
        o.insert(DhcpOption::SubnetMask("255.255.255.0".parse().unwrap()));
        o.insert(DhcpOption::Router(vec!["10.77.0.1".parse().unwrap()]));
        o.insert(DhcpOption::DomainNameServer(vec!["10.77.0.53"
            .parse()
            .unwrap()]));
        o.insert(DhcpOption::DomainName("lan.test".into()));
        o.insert(DhcpOption::DomainSearch(vec![
            "a.test".parse().unwrap(),
            "b.test".parse().unwrap(),
        ]));
        o.insert(DhcpOption::AddressLeaseTime(120));
        m
    }

    /// A scripted server: answers each request type from a queue of
    /// behaviours (`None` drops the packet).
    struct FakeServer {
        sent: std::cell::RefCell<Vec<MessageType>>,
        pending: std::cell::RefCell<Vec<Vec<u8>>>,
        offers: std::cell::RefCell<Vec<Option<MessageType>>>,
        requests: std::cell::RefCell<Vec<Option<MessageType>>>,
    }

    impl FakeServer {
        fn new(offers: Vec<Option<MessageType>>, requests: Vec<Option<MessageType>>) -> Self {
            FakeServer {
                sent: Default::default(),
                pending: Default::default(),
                offers: std::cell::RefCell::new(offers),
                requests: std::cell::RefCell::new(requests),
            }
        }
    }

    impl Transport for FakeServer {
        fn send(&self, payload: &[u8], _dst: Ipv4Addr) -> std::io::Result<()> {
            let m = Message::from_bytes(payload).unwrap();
            let t = mtype(&m).unwrap();
            self.sent.borrow_mut().push(t);
            let queue = match t {
                MessageType::Discover => &self.offers,
                MessageType::Request => &self.requests,
                _ => return Ok(()),
            };
            let behaviour = {
                let mut q = queue.borrow_mut();
                if q.is_empty() {
                    None
                } else {
                    q.remove(0)
                }
            };
            if let Some(reply) = behaviour {
                let mut r = ack();
                r.set_xid(m.xid());
                r.opts_mut().insert(DhcpOption::MessageType(reply));
                self.pending.borrow_mut().push(r.to_vec().unwrap());
            }
            Ok(())
        }

        fn recv(&self, deadline: Instant) -> std::io::Result<Option<Vec<u8>>> {
            if let Some(p) = self.pending.borrow_mut().pop() {
                return Ok(Some(p));
            }
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
            Ok(None)
        }
    }

    #[test]
    fn lost_discover_is_resent_within_milliseconds() {
        let srv = FakeServer::new(
            vec![None, Some(MessageType::Offer)],
            vec![Some(MessageType::Ack)],
        );
        let t = Instant::now();
        let l = acquire(&srv, &id(), t + Duration::from_secs(2)).unwrap();
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(l.address.to_string(), "10.77.0.50/24");
        use MessageType::*;
        assert_eq!(*srv.sent.borrow(), vec![Discover, Discover, Request]);
    }

    #[test]
    fn nak_restarts_from_discover() {
        let srv = FakeServer::new(
            vec![Some(MessageType::Offer), Some(MessageType::Offer)],
            vec![Some(MessageType::Nak), Some(MessageType::Ack)],
        );
        let l = acquire(&srv, &id(), Instant::now() + Duration::from_secs(2)).unwrap();
        assert_eq!(l.lease_secs, 120);
        use MessageType::*;
        assert_eq!(
            *srv.sent.borrow(),
            vec![Discover, Request, Discover, Request]
        );
    }

    #[test]
    fn silence_is_a_timeout_and_renew_nak_an_error() {
        let srv = FakeServer::new(vec![], vec![]);
        let e = acquire(&srv, &id(), Instant::now() + Duration::from_millis(200)).unwrap_err();
        assert!(matches!(e, ClientError::Timeout { .. }), "{e}");
        let lease = lease_from_ack(&ack(), &id(), None).unwrap();
        // The server answers with `reply` (or is silent) to a renew or rebind.
        let extend_with = |reply: Option<MessageType>, rebind: bool, ms: u64| {
            let srv = FakeServer::new(vec![], reply.into_iter().map(Some).collect());
            extend(
                &srv,
                &id(),
                &lease,
                rebind,
                Instant::now() + Duration::from_millis(ms),
            )
        };
        assert!(matches!(extend_with(None, false, 100), Ok(None)));
        assert!(matches!(
            extend_with(Some(MessageType::Nak), true, 1000),
            Err(ClientError::Nak { .. })
        ));
        let renewed = extend_with(Some(MessageType::Ack), false, 1000);
        assert_eq!(renewed.unwrap().unwrap().address, lease.address);
    }

    #[test]
    fn ack_to_lease() {
        let bytes = ack().to_vec().unwrap();
        let m = Message::from_bytes(&bytes).unwrap();
        let l = lease_from_ack(&m, &id(), None).unwrap();
        assert_eq!(l.address.to_string(), "10.77.0.50/24");
        assert_eq!(l.router, Some("10.77.0.1".parse().unwrap()));
        assert_eq!(l.dns.nameservers, vec!["10.77.0.53"]);
        assert_eq!(l.dns.domain, "lan.test");
        assert_eq!(l.dns.search, vec!["a.test", "b.test"]);
        assert_eq!((l.lease_secs, l.t1_secs, l.t2_secs), (120, 60, 105));
        assert!(!l.classless);
    }

    /// The test ACK with one more option.
    fn ack_with(opt: DhcpOption) -> Message {
        let mut m = ack();
        m.opts_mut().insert(opt);
        m
    }

    #[test]
    fn a_servers_domain_cannot_inject_resolv_conf_lines() {
        let m = ack_with(DhcpOption::DomainName(
            "lan.test\nnameserver 6.6.6.6".into(),
        ));
        let bytes = m.to_vec().unwrap();
        let l = lease_from_ack(&Message::from_bytes(&bytes).unwrap(), &id(), None).unwrap();
        assert_eq!(l.dns.domain, "");
        assert_eq!(l.dns.nameservers, vec!["10.77.0.53"]);
        assert_eq!(l.dns.search, vec!["a.test", "b.test"]);
    }

    #[test]
    fn classless_routes_win() {
        let m = ack_with(DhcpOption::ClasslessStaticRoute(vec![(
            "10.99.0.0/16".parse().unwrap(),
            "10.77.0.254".parse().unwrap(),
        )]));
        let l = lease_from_ack(&m, &id(), None).unwrap();
        assert!(l.classless);
        let r = l.to_result();
        assert_eq!(r.routes.len(), 1);
        assert_eq!(r.routes[0].dst.to_string(), "10.99.0.0/16");
    }

    #[test]
    fn static_routes_then_default_via_router() {
        let m = ack_with(DhcpOption::StaticRoutingTable(vec![(
            "10.99.1.1".parse().unwrap(),
            "10.77.0.254".parse().unwrap(),
        )]));
        let r = lease_from_ack(&m, &id(), None).unwrap().to_result();
        let routes: Vec<String> = r
            .routes
            .iter()
            .map(|r| format!("{} via {:?}", r.dst, r.gw))
            .collect();
        assert_eq!(
            routes,
            vec![
                "10.99.1.1/32 via Some(10.77.0.254)",
                "0.0.0.0/0 via Some(10.77.0.1)"
            ]
        );
    }

    #[test]
    fn missing_mask_is_an_error() {
        let mut m = ack();
        m.opts_mut().remove(OptionCode::SubnetMask);
        let e = lease_from_ack(&m, &id(), None).unwrap_err();
        assert!(e.to_string().contains("subnet mask"), "{e}");
    }
}
