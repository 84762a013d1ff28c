//! The kernel side of the DHCP client: entering a pod's network namespace
//! (per thread), interface flags and hardware address through ioctls, the
//! AF_PACKET socket used before the interface has an address, and the UDP
//! socket used for renewals and release.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::ifaddrs::getifaddrs;
use nix::net::if_::{if_nametoindex, InterfaceFlags};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{self, sockopt, AddressFamily, MsgFlags, SockFlag, SockType, SockaddrIn};

use crate::netns::{Netns, NetnsError};

/// Errors of the link layer; each names the interface or namespace.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("interface \"{ifname}\" does not exist in network namespace {netns}")]
    NoInterface { ifname: String, netns: String },
    #[error("interface \"{ifname}\": {what}: {source}")]
    Io {
        ifname: String,
        what: &'static str,
        source: io::Error,
    },
    #[error("interface \"{ifname}\" has no carrier after {secs:.1}s (is its master / peer up?)")]
    NoCarrier { ifname: String, secs: f64 },
}

/// Moves the calling thread into the network namespace at `path`; sockets
/// opened afterwards by this thread live in that namespace.
pub fn enter_netns(path: &str) -> Result<(), LinkError> {
    Ok(Netns::open(Path::new(path))?.enter_for_good()?)
}

/// True when the namespace file still exists.
pub fn netns_exists(path: &str) -> bool {
    Path::new(path).exists()
}

fn ifreq(ifname: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(ifname.bytes().take(15)) {
        *dst = src as libc::c_char;
    }
    req
}

/// A socket of `family`, close-on-exec, owned.
fn new_socket(
    family: AddressFamily,
    protocol: Option<socket::SockProtocol>,
) -> io::Result<OwnedFd> {
    Ok(socket::socket(
        family,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        protocol,
    )?)
}

/// An interface in the current thread's network namespace.
#[derive(Debug, Clone)]
pub struct Link {
    pub ifname: String,
    pub index: i32,
    pub mac: [u8; 6],
}

impl Link {
    /// Looks the interface up by name in the current namespace.
    pub fn find(ifname: &str, netns: &str) -> Result<Link, LinkError> {
        let io_err = |what: &'static str, source: io::Error| LinkError::Io {
            ifname: ifname.to_string(),
            what,
            source,
        };
        let index = match if_nametoindex(ifname) {
            Ok(i) => i as i32,
            Err(Errno::ENODEV) => {
                return Err(LinkError::NoInterface {
                    ifname: ifname.into(),
                    netns: netns.into(),
                })
            }
            Err(e) => return Err(io_err("if_nametoindex", e.into())),
        };
        let mac = getifaddrs()
            .map_err(|e| io_err("getifaddrs", e.into()))?
            .filter(|a| a.interface_name == ifname)
            .find_map(|a| a.address?.as_link_addr()?.addr())
            .unwrap_or_default();
        Ok(Link {
            ifname: ifname.into(),
            index,
            mac,
        })
    }

    /// The interface's flags (IFF_UP, IFF_RUNNING, ...).
    fn flags(&self) -> Result<InterfaceFlags, LinkError> {
        getifaddrs()
            .map_err(|e| self.io("getifaddrs", e.into()))?
            .find(|a| a.interface_name == self.ifname)
            .map(|a| a.flags)
            .ok_or_else(|| self.io("getifaddrs", Errno::ENODEV.into()))
    }

    fn io(&self, what: &'static str, source: io::Error) -> LinkError {
        LinkError::Io {
            ifname: self.ifname.clone(),
            what,
            source,
        }
    }

    /// Sets the interface up if it is down, then waits (polling every
    /// millisecond) until it has a carrier, so the first DISCOVER is not lost.
    pub fn up_and_wait_carrier(&self, timeout: Duration) -> Result<(), LinkError> {
        let flags = self.flags()?;
        if !flags.contains(InterfaceFlags::IFF_UP) {
            let sock = new_socket(AddressFamily::Inet, None).map_err(|e| self.io("socket", e))?;
            let mut req = ifreq(&self.ifname);
            req.ifr_ifru.ifru_flags = (flags | InterfaceFlags::IFF_UP).bits() as libc::c_short;
            // SAFETY: SIOCSIFFLAGS with a valid ifreq (no wrapper in nix).
            if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } != 0 {
                return Err(self.io("set up (SIOCSIFFLAGS)", io::Error::last_os_error()));
            }
        }
        let start = Instant::now();
        loop {
            if self.flags()?.contains(InterfaceFlags::IFF_RUNNING) {
                return Ok(());
            }
            if start.elapsed() >= timeout {
                return Err(LinkError::NoCarrier {
                    ifname: self.ifname.clone(),
                    secs: timeout.as_secs_f64(),
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Waits until `fd` is readable or `deadline` passes; true when readable.
fn wait_readable(fd: BorrowedFd, deadline: Instant) -> io::Result<bool> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let ms = left.as_millis().clamp(1, u16::MAX as u128) as u16;
        match poll(
            &mut [PollFd::new(fd, PollFlags::POLLIN)],
            PollTimeout::from(ms),
        ) {
            Ok(0) => {}
            Ok(_) => return Ok(true),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Sending and receiving DHCP payloads (the UDP data, ports 68 -> 67).
pub trait Transport {
    /// Sends `payload` to `dst` port 67 (255.255.255.255 for broadcast).
    fn send(&self, payload: &[u8], dst: Ipv4Addr) -> io::Result<()>;
    /// Receives the next DHCP payload addressed to port 68, or None at the
    /// deadline.
    fn recv(&self, deadline: Instant) -> io::Result<Option<Vec<u8>>>;
}

/// AF_PACKET (cooked) socket on one interface: works without an address.
pub struct RawTransport {
    fd: OwnedFd,
    ifindex: i32,
    src: Ipv4Addr,
}

const ETH_P_IP: u16 = 0x0800;

fn sockaddr_ll(ifindex: i32, broadcast: bool) -> libc::sockaddr_ll {
    // SAFETY: plain old data; all-zero is valid.
    let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sa.sll_family = libc::AF_PACKET as u16;
    sa.sll_protocol = ETH_P_IP.to_be();
    sa.sll_ifindex = ifindex;
    if broadcast {
        sa.sll_halen = 6;
        sa.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    }
    sa
}

impl RawTransport {
    /// Opens the socket on `link`; `src` is the IP source (0.0.0.0 while
    /// the interface has no address).
    pub fn open(link: &Link, src: Ipv4Addr) -> Result<Self, LinkError> {
        // Protocol 0: no packets until bind() names protocol and interface
        // (a socket opened with a protocol would be re-hooked on bind,
        // which waits for an RCU grace period).
        let fd =
            new_socket(AddressFamily::Packet, None).map_err(|e| link.io("packet socket", e))?;
        let sa = sockaddr_ll(link.index, false);
        // SAFETY: bind with a valid sockaddr_ll and its size (nix cannot
        // build a link-layer address).
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sa as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc != 0 {
            return Err(link.io("bind packet socket", io::Error::last_os_error()));
        }
        Ok(RawTransport {
            fd,
            ifindex: link.index,
            src,
        })
    }
}

fn checksum(data: &[u8], initial: u32) -> u16 {
    let mut sum = initial;
    for chunk in data.chunks(2) {
        let word = if chunk.len() == 2 {
            u16::from_be_bytes([chunk[0], chunk[1]])
        } else {
            u16::from_be_bytes([chunk[0], 0])
        };
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 + UDP datagram from 68 to 67 around `payload`.
pub fn ip_udp_packet(src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let total = 20 + udp_len;
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&[0x45, 0x10]);
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let ip_sum = checksum(&p[..20], 0);
    p[10..12].copy_from_slice(&ip_sum.to_be_bytes());
    p.extend_from_slice(&68u16.to_be_bytes());
    p.extend_from_slice(&67u16.to_be_bytes());
    p.extend_from_slice(&(udp_len as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    // Pseudo header: src, dst, protocol, UDP length.
    let mut pseudo: u32 = 17 + udp_len as u32;
    for o in [src.octets(), dst.octets()] {
        pseudo += u32::from(u16::from_be_bytes([o[0], o[1]]));
        pseudo += u32::from(u16::from_be_bytes([o[2], o[3]]));
    }
    let mut udp_sum = checksum(&p[20..], pseudo);
    if udp_sum == 0 {
        udp_sum = 0xffff;
    }
    p[26..28].copy_from_slice(&udp_sum.to_be_bytes());
    p
}

/// The UDP payload of an IPv4 packet to port 68, if it is one.
pub fn dhcp_payload(packet: &[u8]) -> Option<&[u8]> {
    let first = *packet.first()?;
    if first >> 4 != 4 || packet.get(9) != Some(&17) {
        return None;
    }
    let ihl = usize::from(first & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]));
    let packet = packet.get(..total.min(packet.len()))?;
    let udp = packet.get(ihl..)?;
    let dport = u16::from_be_bytes([*udp.get(2)?, *udp.get(3)?]);
    if dport != 68 {
        return None;
    }
    udp.get(8..)
}

impl Transport for RawTransport {
    fn send(&self, payload: &[u8], dst: Ipv4Addr) -> io::Result<()> {
        let pkt = ip_udp_packet(self.src, dst, payload);
        let sa = sockaddr_ll(self.ifindex, true);
        // SAFETY: sendto with a valid buffer and sockaddr_ll (see `open`).
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                pkt.as_ptr().cast(),
                pkt.len(),
                0,
                &sa as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn recv(&self, deadline: Instant) -> io::Result<Option<Vec<u8>>> {
        let mut buf = vec![0u8; 2048];
        while wait_readable(self.fd.as_fd(), deadline)? {
            let n = match socket::recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(n) => n,
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            };
            if let Some(p) = dhcp_payload(&buf[..n]) {
                return Ok(Some(p.to_vec()));
            }
        }
        Ok(None)
    }
}

/// A UDP socket on port 68 bound to the interface (for RENEW, REBIND and
/// RELEASE, once the interface has its address).
pub struct UdpTransport {
    sock: UdpSocket,
}

impl UdpTransport {
    pub fn open(link: &Link) -> Result<Self, LinkError> {
        let fd = new_socket(AddressFamily::Inet, Some(socket::SockProtocol::Udp))
            .map_err(|e| link.io("udp socket", e))?;
        let set = |what, r: nix::Result<()>| r.map_err(|e| link.io(what, e.into()));
        set(
            "SO_REUSEADDR",
            socket::setsockopt(&fd, sockopt::ReuseAddr, &true),
        )?;
        set(
            "SO_BROADCAST",
            socket::setsockopt(&fd, sockopt::Broadcast, &true),
        )?;
        let dev = std::ffi::OsString::from(&link.ifname);
        set(
            "SO_BINDTODEVICE",
            socket::setsockopt(&fd, sockopt::BindToDevice, &dev),
        )?;
        let any = SockaddrIn::new(0, 0, 0, 0, 68);
        set("bind udp port 68", socket::bind(fd.as_raw_fd(), &any))?;
        let sock = UdpSocket::from(fd);
        sock.set_nonblocking(true)
            .map_err(|e| link.io("udp socket non-blocking", e))?;
        Ok(UdpTransport { sock })
    }
}

impl Transport for UdpTransport {
    fn send(&self, payload: &[u8], dst: Ipv4Addr) -> io::Result<()> {
        self.sock.send_to(payload, SocketAddrV4::new(dst, 67))?;
        Ok(())
    }

    fn recv(&self, deadline: Instant) -> io::Result<Option<Vec<u8>>> {
        let mut buf = vec![0u8; 2048];
        while wait_readable(self.sock.as_fd(), deadline)? {
            match self.sock.recv(&mut buf) {
                Ok(n) => return Ok(Some(buf[..n].to_vec())),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_round_trip() {
        let pkt = ip_udp_packet(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, b"hello");
        assert_eq!(pkt.len(), 33);
        assert_eq!(checksum(&pkt[..20], 0), 0, "IP header checksum verifies");
        // Same packet, but to port 68, parses back.
        let mut back = pkt.clone();
        back[22..24].copy_from_slice(&68u16.to_be_bytes());
        assert_eq!(dhcp_payload(&back), Some(&b"hello"[..]));
        assert_eq!(dhcp_payload(&pkt), None);
    }
}
