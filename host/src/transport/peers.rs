//! The per-client-address connection cap (`[server] max_connections_per_ip`).
//!
//! Every open TCP connection is a file descriptor, and a client that opens
//! connections without end (or never finishes its request) would take them
//! all. Each client address may hold `max_connections_per_ip` connections
//! at once; the next is answered 503 and closed at once, before any of it
//! is read. IPv6 clients are counted by their /64: one host usually has a
//! whole /64 to pick addresses from.
//!
//! Addresses in `trusted_proxies` are not counted: a load balancer or a
//! reverse proxy carries many clients on its own address. By default that is
//! loopback, where a reverse proxy on the same host and load tests connect
//! from.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A network, `10.0.0.0/8` or `2001:db8::/32`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

/// Why a `trusted_proxies` entry is not a network.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not an address or a network (write \"10.0.0.1\", \"10.0.0.0/8\" or \"2001:db8::/32\")")]
pub struct BadNetwork(String);

impl std::str::FromStr for Network {
    type Err = BadNetwork;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadNetwork(text.to_owned());
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address.trim().parse().map_err(|_| bad())?;
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix.trim().parse::<u8>().ok().filter(|p| *p <= bits).ok_or_else(bad)?,
            None => bits,
        };
        Ok(Network { address: address.to_canonical(), prefix })
    }
}

impl Network {
    /// Whether `address` is inside this network.
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.address, address.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => same_prefix(u32::from(net).into(), u32::from(ip).into(), 32, self.prefix),
            (IpAddr::V6(net), IpAddr::V6(ip)) => same_prefix(u128::from(net), u128::from(ip), 128, self.prefix),
            _ => false,
        }
    }
}

/// Whether the first `prefix` of `bits` bits of `a` and `b` agree.
fn same_prefix(a: u128, b: u128, bits: u8, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = u32::from(bits - prefix);
    a >> shift == b >> shift
}

/// The default `trusted_proxies`: loopback, IPv4 and IPv6.
pub const LOOPBACK: &[&str] = &["127.0.0.0/8", "::1"];

/// The connections each client address holds, and the cap on them.
#[derive(Debug)]
pub struct PeerLimit {
    max_per_address: u32,
    trusted: Vec<Network>,
    open: Mutex<HashMap<IpAddr, u32>>,
}

/// A place among one address's connections, held as long as the
/// connection is open (see [`ClientStream`]).
#[derive(Debug)]
pub struct PeerSlot {
    limit: Arc<PeerLimit>,
    key: IpAddr,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = self.limit.open.lock();
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// A connection over its address's cap.
#[derive(Debug, Clone, Copy)]
pub struct OverLimit {
    pub max_per_address: u32,
}

impl PeerLimit {
    pub fn new(max_per_address: u32, trusted: Vec<Network>) -> Arc<PeerLimit> {
        Arc::new(PeerLimit {
            max_per_address,
            trusted,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Count a new connection from `address`: its slot (none for a trusted
    /// address, which is not counted), or why it is refused.
    pub fn admit(self: &Arc<Self>, address: IpAddr) -> Result<Option<PeerSlot>, OverLimit> {
        let address = address.to_canonical();
        if self.trusted.iter().any(|network| network.contains(address)) {
            return Ok(None);
        }
        let key = counted_as(address);
        let mut open = self.open.lock();
        let count = open.entry(key).or_insert(0);
        if *count >= self.max_per_address {
            return Err(OverLimit {
                max_per_address: self.max_per_address,
            });
        }
        *count += 1;
        Ok(Some(PeerSlot { limit: self.clone(), key }))
    }
}

/// What an address counts as: itself (IPv4), or its /64 (IPv6).
fn counted_as(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
    }
}

/// A client's TCP connection with its place among its address's
/// connections: the place is given back when the connection closes, also
/// after it became a WebSocket and left hyper's hands.
#[derive(Debug)]
pub struct ClientStream {
    tcp: TcpStream,
    _slot: Option<PeerSlot>,
}

impl ClientStream {
    pub fn new(tcp: TcpStream, slot: Option<PeerSlot>) -> ClientStream {
        ClientStream { tcp, _slot: slot }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    fn networks(list: &[&str]) -> Vec<Network> {
        list.iter().map(|n| n.parse().expect("a network")).collect()
    }

    #[test]
    fn networks_contain_their_addresses_only() {
        let net: Network = "10.0.0.0/8".parse().expect("valid");
        assert!(net.contains(ip("10.200.3.4")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(net.contains(ip("::ffff:10.1.2.3")), "an IPv4-mapped IPv6 address is its IPv4 address");
        let one: Network = "192.0.2.7".parse().expect("valid");
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6: Network = "2001:db8::/32".parse().expect("valid");
        assert!(v6.contains(ip("2001:db8:1::5")) && !v6.contains(ip("2001:db9::1")));
        assert!("0.0.0.0/0".parse::<Network>().expect("valid").contains(ip("8.8.8.8")));
        for bad in ["10.0.0.0/33", "example.com", "10.0.0/8", "::1/129", ""] {
            assert!(bad.parse::<Network>().is_err(), "{bad}");
        }
    }

    #[test]
    fn an_address_holds_at_most_its_cap_and_gets_places_back() {
        let limit = PeerLimit::new(2, Vec::new());
        let first = limit.admit(ip("192.0.2.1")).expect("admitted");
        let _second = limit.admit(ip("192.0.2.1")).expect("admitted");
        assert!(limit.admit(ip("192.0.2.1")).is_err(), "the third is over the cap");
        assert!(limit.admit(ip("192.0.2.2")).is_ok(), "another address has its own count");
        drop(first);
        assert!(limit.admit(ip("192.0.2.1")).is_ok(), "a closed connection gives its place back");
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let limit = PeerLimit::new(1, Vec::new());
        let _held = limit.admit(ip("2001:db8:0:1::1")).expect("admitted");
        assert!(limit.admit(ip("2001:db8:0:1::2")).is_err(), "same /64");
        assert!(limit.admit(ip("2001:db8:0:2::1")).is_ok(), "another /64");
    }

    #[test]
    fn trusted_addresses_are_not_counted() {
        let limit = PeerLimit::new(1, networks(LOOPBACK));
        let slots: Vec<_> = (0..100).map(|_| limit.admit(ip("127.0.0.5")).expect("admitted")).collect();
        assert!(slots.iter().all(Option::is_none), "loopback holds no place");
        assert!(limit.admit(ip("::1")).expect("admitted").is_none());
        assert!(limit.open.lock().is_empty());
    }
}
