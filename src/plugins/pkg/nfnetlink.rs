//! The netfilter netlink socket (`NETLINK_NETFILTER`) that conntrack and
//! nf_tables requests go through: messages with their `nfgenmsg`,
//! attributes, and reading answers. Through nix's socket calls; no crate
//! covers ctnetlink deletes or nf_tables set elements without a C library.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    bind, recv, send, setsockopt, socket, sockopt, AddressFamily, MsgFlags, NetlinkAddr, SockFlag,
    SockProtocol, SockType,
};
use nix::sys::time::TimeVal;

pub const NLM_F_REQUEST: u16 = 1;
pub const NLM_F_ACK: u16 = 4;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_DUMP: u16 = 0x300;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLA_F_NESTED: u16 = 0x8000;
const HDR: usize = 16;

/// A netlink call that failed: what, and the kernel's errno.
#[derive(Debug, thiserror::Error)]
#[error("cannot {what}: {source}")]
pub struct NlError {
    pub what: &'static str,
    pub source: Errno,
}

pub fn err(what: &'static str) -> impl FnOnce(Errno) -> NlError {
    move |source| NlError { what, source }
}

/// A bound netfilter netlink socket whose reads give up after 5 s.
pub struct Socket(OwnedFd);

impl Socket {
    pub fn open() -> Result<Socket, NlError> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkNetFilter,
        )
        .map_err(err("open a netfilter netlink socket"))?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(err("bind the netlink socket"))?;
        let limit = TimeVal::from(libc::timeval {
            tv_sec: Duration::from_secs(5).as_secs() as libc::time_t,
            tv_usec: 0,
        });
        setsockopt(&fd, sockopt::ReceiveTimeout, &limit).map_err(err("set a read timeout"))?;
        Ok(Socket(fd))
    }

    pub fn send(&self, what: &'static str, msg: &[u8]) -> Result<(), NlError> {
        send(self.0.as_raw_fd(), msg, MsgFlags::empty()).map_err(err(what))?;
        Ok(())
    }

    /// One datagram's messages, as (type, body after the header) pairs,
    /// handed to `each`.
    pub fn recv(&self, what: &'static str, buf: &mut [u8]) -> Result<usize, NlError> {
        recv(self.0.as_raw_fd(), buf, MsgFlags::empty()).map_err(err(what))
    }
}

/// A message: header, `nfgenmsg` (family, version 0, `res_id`), payload.
pub fn message(
    kind: u16,
    flags: u16,
    seq: u32,
    family: u8,
    res_id: u16,
    payload: &[u8],
) -> Vec<u8> {
    let len = HDR + 4 + payload.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.push(family);
    m.push(0);
    m.extend_from_slice(&res_id.to_be_bytes());
    m.extend_from_slice(payload);
    m
}

/// Appends an attribute (padded to 4 bytes).
pub fn attr(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    out.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// Appends a nested attribute built by `inner`.
pub fn nested(out: &mut Vec<u8>, kind: u16, inner: impl FnOnce(&mut Vec<u8>)) {
    let mut body = Vec::new();
    inner(&mut body);
    attr(out, kind | NLA_F_NESTED, &body);
}

fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// The messages in a datagram: (type, sequence number, body after the
/// header).
pub fn messages(mut buf: &[u8]) -> Vec<(u16, u32, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= HDR {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < HDR || len > buf.len() {
            break;
        }
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        let seq = u32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]);
        out.push((kind, seq, &buf[HDR..len]));
        buf = &buf[align(len).min(buf.len())..];
    }
    out
}

/// The attributes in `buf`: (type without flags, whole attribute, payload).
pub fn attributes(mut buf: &[u8]) -> Vec<(u16, &[u8], &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        if len < 4 || len > buf.len() {
            break;
        }
        let ty = u16::from_ne_bytes([buf[2], buf[3]]) & 0x3fff;
        out.push((ty, &buf[..len], &buf[4..len]));
        buf = &buf[align(len).min(buf.len())..];
    }
    out
}

/// The errno of an NLMSG_ERROR body; `None` for an acknowledgement.
pub fn error_code(body: &[u8]) -> Option<Errno> {
    let code = i32::from_ne_bytes(body.get(..4)?.try_into().ok()?);
    (code != 0).then(|| Errno::from_raw(-code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_attributes_round_trip() {
        let mut attrs = Vec::new();
        attr(&mut attrs, 1, b"abc\0");
        nested(&mut attrs, 3, |n| attr(n, 1, &[7, 8]));
        let msg = message(0x0a0c, NLM_F_REQUEST, 9, 1, 0, &attrs);
        let got = messages(&msg);
        assert_eq!(got.len(), 1);
        let (kind, seq, body) = got[0];
        assert_eq!((kind, seq), (0x0a0c, 9));
        let a = attributes(&body[4..]);
        assert_eq!(a[0].0, 1);
        assert_eq!(a[0].2, b"abc\0");
        assert_eq!(a[1].0, 3, "flags are masked");
        assert_eq!(attributes(a[1].2)[0].2, [7, 8]);
        // Truncated input stops the walk without a panic.
        assert!(messages(&[0xff; 20]).is_empty());
        assert!(attributes(&[9, 0]).is_empty());
        assert_eq!(error_code(&(-2i32).to_ne_bytes()), Some(Errno::ENOENT));
        assert_eq!(error_code(&0i32.to_ne_bytes()), None);
    }
}
