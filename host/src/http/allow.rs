//! Where plugins may send requests: the app's `http_allow` origins, and
//! which addresses a request may reach.
//!
//! An origin is a scheme, a host and a port; a request is allowed when its
//! URL's origin is one of the list, exactly. Addresses are checked after
//! resolution, so a name cannot lead a plugin somewhere the operator did
//! not mean (SSRF): a host name must resolve to public addresses, and a
//! loopback, private or link-local address is reached only through an
//! entry that names that address itself (`http://127.0.0.1:8080`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use reqwest::Url;

/// `scheme://host:port`, as an allowlist entry or a request's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    https: bool,
    /// Lower-case; an IPv6 address without brackets.
    host: String,
    port: u16,
}

impl Origin {
    /// Parse an `http_allow` entry: `https://api.example.com`,
    /// `http://127.0.0.1:8080` (a trailing `/` is accepted, nothing else
    /// after the port).
    pub fn parse(entry: &str) -> Result<Origin, String> {
        let url = Url::parse(entry).map_err(|e| format!("`{entry}` is not an origin ({e}); write it as https://api.example.com or http://127.0.0.1:8080"))?;
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
            return Err(format!("`{entry}` has more than an origin: write only scheme://host[:port], e.g. https://api.example.com"));
        }
        Origin::of(&url).ok_or_else(|| format!("`{entry}`: only http:// and https:// origins can be allowed"))
    }

    /// The origin of a URL; `None` for schemes other than http and https.
    pub fn of(url: &Url) -> Option<Origin> {
        let https = match url.scheme() {
            "http" => false,
            "https" => true,
            _ => return None,
        };
        let host = match url.host()? {
            url::Host::Domain(name) => name.to_ascii_lowercase(),
            url::Host::Ipv4(ip) => ip.to_string(),
            url::Host::Ipv6(ip) => ip.to_string(),
        };
        Some(Origin {
            https,
            host,
            port: url.port_or_known_default()?,
        })
    }

    /// The address this origin names, when its host is an IP literal.
    pub fn address(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// An app's `http_allow`: the origins its plugins may call.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    origins: Vec<Origin>,
}

impl Allowlist {
    pub fn new(origins: Vec<Origin>) -> Allowlist {
        Allowlist { origins }
    }

    /// Parse every entry; the first bad one is the error.
    pub fn parse(entries: &[String]) -> Result<Allowlist, String> {
        entries.iter().map(|entry| Origin::parse(entry)).collect::<Result<_, _>>().map(Allowlist::new)
    }

    pub fn is_empty(&self) -> bool {
        self.origins.is_empty()
    }

    /// Whether a URL's origin is allowed.
    pub fn allows(&self, url: &Url) -> bool {
        Origin::of(url).is_some_and(|origin| self.origins.contains(&origin))
    }
}

/// Whether an address is on the public internet: not loopback, private,
/// link-local, shared (CGNAT), unspecified, multicast, broadcast, reserved
/// or documentation space, in IPv4 or IPv6 (IPv4 inside IPv6 is judged as
/// IPv4).
pub fn is_public(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let private = ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || a >= 240
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..20).contains(&b));
    !private
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let segments = ip.segments();
    // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., hi, lo] = segments;
        return is_public_v4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    }
    let private = ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00
        || (segments[0] & 0xffc0) == 0xfe80
        || (segments[0] == 0x2001 && segments[1] == 0x0db8)
        || segments[..6] == [0, 0, 0, 0, 0, 0];
    !private
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_origins_with_their_default_ports() {
        let origin = Origin::parse("https://API.example.com").unwrap();
        assert_eq!(origin.to_string(), "https://api.example.com:443");
        assert_eq!(Origin::parse("http://127.0.0.1:8080/").unwrap().address(), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(Origin::parse("http://[::1]:81").unwrap().to_string(), "http://[::1]:81");
        for bad in ["api.example.com", "ftp://x.org", "https://x.org/path", "https://u:p@x.org", "https://x.org?q=1"] {
            assert!(Origin::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_url_is_allowed_only_at_an_allowed_origin() {
        let list = Allowlist::parse(&["https://api.example.com".into(), "http://127.0.0.1:8080".into()]).unwrap();
        let allowed = |url: &str| list.allows(&Url::parse(url).unwrap());
        assert!(allowed("https://api.example.com/v1/x?y=1"));
        assert!(allowed("https://api.example.com:443/"));
        assert!(allowed("http://127.0.0.1:8080/complex_calculation"));
        assert!(!allowed("http://api.example.com/"), "another scheme");
        assert!(!allowed("https://api.example.com:8443/"), "another port");
        assert!(!allowed("https://evil.example.com/"));
        assert!(!allowed("http://127.0.0.1:8081/"));
        assert!(!allowed("http://localhost:8080/"), "a name for an allowed address is another origin");
    }

    #[test]
    fn loopback_private_link_local_and_reserved_addresses_are_not_public() {
        for private in [
            "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
            "255.255.255.255", "224.0.0.1", "192.0.2.1", "198.18.0.1", "::1", "::", "fc00::1", "fd12::1",
            "fe80::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a00:1", "2001:db8::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }
}
