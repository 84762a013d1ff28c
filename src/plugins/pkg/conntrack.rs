//! Deleting conntrack entries over ctnetlink, as the reference plugins do
//! through their netlink library: a dump of one address family's table,
//! then a delete of each entry a predicate picks (by its original tuple).
//! The kernel's flush takes no tuple filter, and a dump is one round trip
//! for the whole table.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use nix::errno::Errno;

use super::nfnetlink::{
    attributes, error_code, message, messages, NlError, Socket, NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK,
    NLM_F_DUMP, NLM_F_REQUEST,
};

#[derive(Debug, thiserror::Error)]
#[error("conntrack: {0}")]
pub struct ConntrackError(#[from] NlError);

/// One direction of a connection as conntrack keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tuple {
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub proto: u8,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
}

/// A connection: the original direction and the reply (after NAT).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    pub orig: Tuple,
    pub reply: Tuple,
}

pub const UDP: u8 = 17;

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_NEW: u16 = 0;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_ZONE: u16 = 18;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;

/// Deletes the entries of one family (IPv6 when `v6`) that `pick`
/// chooses; how many were deleted. Entries that expire meanwhile are not
/// errors; a kernel without conntrack has nothing to delete.
pub fn delete_where(v6: bool, pick: impl Fn(&Entry) -> bool) -> Result<usize, ConntrackError> {
    let sock = Socket::open()?;
    let family = if v6 { libc::AF_INET6 } else { libc::AF_INET } as u8;
    let chosen = match dump(&sock, family, &pick) {
        Err(e)
            if matches!(
                e.source,
                Errno::ENOENT | Errno::EOPNOTSUPP | Errno::EPROTONOSUPPORT
            ) =>
        {
            return Ok(0)
        }
        other => other?,
    };
    let mut deleted = 0;
    for (seq, attrs) in chosen.iter().enumerate() {
        let kind = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;
        let msg = message(
            kind,
            NLM_F_REQUEST | NLM_F_ACK,
            seq as u32 + 2,
            family,
            0,
            attrs,
        );
        sock.send("send a delete", &msg)?;
        match ack(&sock) {
            Ok(()) => deleted += 1,
            Err(e) if e.source == Errno::ENOENT => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(deleted)
}

/// Dumps the table; for each chosen entry, the attributes that name it in
/// a delete (its original tuple and zone, as the kernel sent them).
fn dump(sock: &Socket, family: u8, pick: &dyn Fn(&Entry) -> bool) -> Result<Vec<Vec<u8>>, NlError> {
    let kind = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
    sock.send(
        "request a dump",
        &message(kind, NLM_F_REQUEST | NLM_F_DUMP, 1, family, 0, &[]),
    )?;
    let mut buf = vec![0u8; 1 << 16];
    let mut out = Vec::new();
    loop {
        let n = sock.recv("read the dump", &mut buf)?;
        for (kind, _, body) in messages(&buf[..n]) {
            match kind {
                NLMSG_DONE => return Ok(out),
                NLMSG_ERROR => {
                    if let Some(e) = error_code(body) {
                        return Err(NlError {
                            what: "dump the table",
                            source: e,
                        });
                    }
                }
                k if k == (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW && body.len() >= 4 => {
                    let mut entry = Entry::default();
                    let mut keep = Vec::new();
                    for (ty, raw, payload) in attributes(&body[4..]) {
                        match ty {
                            CTA_TUPLE_ORIG => {
                                entry.orig = tuple(payload);
                                keep.extend_from_slice(raw);
                            }
                            CTA_TUPLE_REPLY => entry.reply = tuple(payload),
                            CTA_ZONE => keep.extend_from_slice(raw),
                            _ => {}
                        }
                    }
                    if pick(&entry) {
                        out.push(keep);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Waits for the kernel's answer to one request.
fn ack(sock: &Socket) -> Result<(), NlError> {
    let mut buf = vec![0u8; 4096];
    let n = sock.recv("read an answer", &mut buf)?;
    for (kind, _, body) in messages(&buf[..n]) {
        if kind == NLMSG_ERROR {
            if let Some(e) = error_code(body) {
                return Err(NlError {
                    what: "delete an entry",
                    source: e,
                });
            }
        }
    }
    Ok(())
}

fn tuple(buf: &[u8]) -> Tuple {
    let mut t = Tuple::default();
    for (ty, _, payload) in attributes(buf) {
        match ty {
            CTA_TUPLE_IP => {
                for (a, _, p) in attributes(payload) {
                    let addr = match p.len() {
                        4 => <[u8; 4]>::try_from(p)
                            .ok()
                            .map(|b| IpAddr::V4(Ipv4Addr::from(b))),
                        16 => <[u8; 16]>::try_from(p)
                            .ok()
                            .map(|b| IpAddr::V6(Ipv6Addr::from(b))),
                        _ => None,
                    };
                    // CTA_IP_V4_SRC 1, V4_DST 2, V6_SRC 3, V6_DST 4.
                    match a {
                        1 | 3 => t.src = addr,
                        2 | 4 => t.dst = addr,
                        _ => {}
                    }
                }
            }
            CTA_TUPLE_PROTO => {
                for (a, _, p) in attributes(payload) {
                    match (a, p) {
                        (CTA_PROTO_NUM, [n, ..]) => t.proto = *n,
                        (CTA_PROTO_SRC_PORT, [h, l, ..]) => {
                            t.sport = Some(u16::from_be_bytes([*h, *l]))
                        }
                        (CTA_PROTO_DST_PORT, [h, l, ..]) => {
                            t.dport = Some(u16::from_be_bytes([*h, *l]))
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(ty: u16, payload: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        super::super::nfnetlink::attr(&mut a, ty, payload);
        a
    }

    #[test]
    fn tuples_parse_from_nested_attributes() {
        let ip = [attr(1, &[10, 0, 0, 1]), attr(2, &[10, 0, 0, 2])].concat();
        let proto = [
            attr(1, &[17]),
            attr(2, &1234u16.to_be_bytes()),
            attr(3, &53u16.to_be_bytes()),
        ]
        .concat();
        let t = tuple(
            &[
                attr(CTA_TUPLE_IP | 0x8000, &ip),
                attr(CTA_TUPLE_PROTO | 0x8000, &proto),
            ]
            .concat(),
        );
        assert_eq!(
            t,
            Tuple {
                src: Some("10.0.0.1".parse().unwrap()),
                dst: Some("10.0.0.2".parse().unwrap()),
                proto: UDP,
                sport: Some(1234),
                dport: Some(53),
            }
        );
        // Truncated input stops the walk without a panic.
        assert_eq!(tuple(&[5, 0]), Tuple::default());
    }
}
