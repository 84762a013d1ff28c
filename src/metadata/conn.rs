//! What keeps one client from starving the others: connection limits (in
//! total and per client address) and deadlines that bound a whole request
//! or response rather than each read or write, so a client trickling a byte
//! a second is cut off at the deadline all the same.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Sockets whose read and write timeouts can be set.
pub trait Timeouts {
    fn read_timeout_to(&self, d: Duration) -> std::io::Result<()>;
    fn write_timeout_to(&self, d: Duration) -> std::io::Result<()>;
}

impl Timeouts for TcpStream {
    fn read_timeout_to(&self, d: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(d))
    }
    fn write_timeout_to(&self, d: Duration) -> std::io::Result<()> {
        self.set_write_timeout(Some(d))
    }
}

impl Timeouts for UnixStream {
    fn read_timeout_to(&self, d: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(d))
    }
    fn write_timeout_to(&self, d: Duration) -> std::io::Result<()> {
        self.set_write_timeout(Some(d))
    }
}

/// A socket read and written until one instant: each read or write may only
/// wait for what is left of the time, and fails with `TimedOut` once none is.
pub struct Deadline<'a, S> {
    stream: &'a S,
    at: Instant,
}

impl<'a, S: Timeouts> Deadline<'a, S> {
    pub fn new(stream: &'a S, at: Instant) -> Self {
        Deadline { stream, at }
    }

    fn left(&self) -> std::io::Result<Duration> {
        let left = self.at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ErrorKind::TimedOut.into());
        }
        Ok(left)
    }
}

/// A socket timeout that expired is the deadline passing: `TimedOut`,
/// whether the wait ran out inside the call (`WouldBlock`) or before it.
fn timed_out(e: std::io::Error) -> std::io::Error {
    if e.kind() == ErrorKind::WouldBlock {
        ErrorKind::TimedOut.into()
    } else {
        e
    }
}

impl<'a, S: Timeouts> Read for Deadline<'a, S>
where
    &'a S: Read,
{
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.stream.read_timeout_to(self.left()?)?;
        let mut s = self.stream;
        s.read(buf).map_err(timed_out)
    }
}

impl<'a, S: Timeouts> Write for Deadline<'a, S>
where
    &'a S: Write,
{
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.stream.write_timeout_to(self.left()?)?;
        let mut s = self.stream;
        s.write(buf).map_err(timed_out)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let mut s = self.stream;
        s.flush()
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// This client already holds its share of connections.
    Client,
    /// The service serves as many connections as it will.
    Total,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

/// Connections served at once: at most `total` in all and `per_client`
/// from any one address (a pod is its address on the pod networks).
#[derive(Debug)]
pub struct Limits {
    counts: Mutex<Counts>,
    total: usize,
    per_client: usize,
}

/// One admitted connection; its place is given back when dropped.
#[derive(Debug)]
pub struct Permit {
    limits: Arc<Limits>,
    client: IpAddr,
}

impl Limits {
    pub fn new(total: usize, per_client: usize) -> Arc<Self> {
        Arc::new(Limits {
            counts: Mutex::new(Counts::default()),
            total: total.max(1),
            per_client: per_client.max(1),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        // Every update is a pair of counter changes done before any call
        // that could panic: a poisoned lock holds consistent counts.
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits one more connection from `client`, or says why not.
    pub fn admit(self: &Arc<Self>, client: IpAddr) -> Result<Permit, Refused> {
        let mut c = self.lock();
        let mine = c.by_client.get(&client).copied().unwrap_or(0);
        if mine >= self.per_client {
            return Err(Refused::Client);
        }
        if c.total >= self.total {
            return Err(Refused::Total);
        }
        c.total += 1;
        c.by_client.insert(client, mine + 1);
        Ok(Permit {
            limits: self.clone(),
            client,
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut c = self.limits.lock();
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                c.by_client.remove(&self.client);
            }
        }
    }
}

/// Sends `msg` only if the socket takes it at once (it does on a fresh
/// connection): for a connection refused or cut off, which must not cost a
/// wait. The caller closes the connection next.
pub fn send_now<S>(stream: &S, msg: &[u8])
where
    for<'a> &'a S: Write,
    S: AsNonblocking,
{
    if stream.nonblocking().is_ok() {
        let _ = (&*stream).write(msg);
    }
}

/// Sockets that can be made non-blocking.
pub trait AsNonblocking {
    fn nonblocking(&self) -> std::io::Result<()>;
}

impl AsNonblocking for TcpStream {
    fn nonblocking(&self) -> std::io::Result<()> {
        self.set_nonblocking(true)
    }
}

impl AsNonblocking for UnixStream {
    fn nonblocking(&self) -> std::io::Result<()> {
        self.set_nonblocking(true)
    }
}

/// After answering a request whose body was not read (it was refused):
/// stop writing, so the client sees the answer and the end of it at once,
/// then read and drop up to `pending` bytes it may still be sending, until
/// `until` at most, so that closing does not reset the connection before
/// the client has read the answer.
pub fn drain(s: &TcpStream, pending: usize, until: Instant) {
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut r = Deadline::new(s, until);
    let mut buf = [0u8; 4096];
    let mut left = pending;
    while left > 0 {
        match r.read(&mut buf[..left.min(4096)]) {
            Ok(0) | Err(_) => break,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_client_and_in_total() {
        let a: IpAddr = "172.17.0.2".parse().unwrap();
        let b: IpAddr = "172.17.0.3".parse().unwrap();
        let c: IpAddr = "172.17.0.4".parse().unwrap();
        let l = Limits::new(4, 2);
        let a1 = l.admit(a).unwrap();
        let _a2 = l.admit(a).unwrap();
        assert_eq!(l.admit(a).unwrap_err(), Refused::Client);
        let _b1 = l.admit(b).unwrap();
        let _b2 = l.admit(b).unwrap();
        assert_eq!(l.admit(c).unwrap_err(), Refused::Total);
        // The client over its share is told so even when the total is full.
        assert_eq!(l.admit(a).unwrap_err(), Refused::Client);
        drop(a1);
        let _c1 = l.admit(c).unwrap();
        assert_eq!(l.admit(a).unwrap_err(), Refused::Total);
        assert_eq!(l.lock().by_client.len(), 3);
    }

    #[test]
    fn forgets_clients_that_left() {
        let l = Limits::new(8, 1);
        for i in 0..100u8 {
            let ip = IpAddr::from([10, 0, 0, i]);
            drop(l.admit(ip).unwrap());
        }
        let c = l.lock();
        assert_eq!((c.total, c.by_client.len()), (0, 0));
    }

    /// A peer sending a byte every 20 ms never lets a read time out; the
    /// deadline cuts it off all the same.
    #[test]
    fn deadline_bounds_a_trickle() {
        let (a, b) = UnixStream::pair().unwrap();
        let writer = std::thread::spawn(move || {
            for _ in 0..100 {
                if (&a).write_all(b"x").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let t = Instant::now();
        let mut r = Deadline::new(&b, t + Duration::from_millis(300));
        let mut got = 0;
        let mut buf = [0u8; 16];
        let err = loop {
            match r.read(&mut buf) {
                Ok(n) => got += n,
                Err(e) => break e,
            }
        };
        let took = t.elapsed();
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
        assert!(got > 3, "the trickle arrived ({got} bytes)");
        assert!(took < Duration::from_secs(1), "{took:?}");
        drop(b);
        writer.join().unwrap();
    }

    #[test]
    fn deadline_bounds_a_wait() {
        let (_a, b) = UnixStream::pair().unwrap();
        let t = Instant::now();
        let mut r = Deadline::new(&b, t + Duration::from_millis(100));
        let e = r.read(&mut [0u8; 4]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut);
        assert!(t.elapsed() < Duration::from_millis(400));
    }
}
