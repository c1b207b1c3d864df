//! `check_origin`: which web pages may open a socket, as in Phoenix.
//!
//! Browsers send an `Origin` header; other clients usually do not, and a
//! request without one is allowed, as Phoenix allows it. An origin is
//! checked against a list of patterns: `https://example.com` (scheme, host
//! and optional port must match), `//example.com` (any scheme), and a
//! leading `*.` for any subdomain (`//*.example.com`). `same-host` means the
//! origin's host must be the request's own `Host`.

/// One allowed origin pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    scheme: Option<String>,
    host: String,
    port: Option<u16>,
}

/// The origin policy of an app.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum OriginPolicy {
    /// Any origin may connect.
    #[default]
    Any,
    /// The origin's host must be the request's `Host`.
    SameHost,
    /// The origin must match one of these.
    List(Vec<String>),
}

/// `scheme://host:port` split into its parts; `None` if it has no host.
fn split(origin: &str) -> Option<(Option<&str>, &str, Option<u16>)> {
    let (scheme, rest) = match origin.split_once("//") {
        Some(("", rest)) => (None, rest),
        Some((scheme, rest)) => (Some(scheme.trim_end_matches(':')), rest),
        None => (None, origin),
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => match port.parse() {
            Ok(port) => (host, Some(port)),
            Err(_) => (authority, None),
        },
        _ => (authority, None),
    };
    (!host.is_empty()).then_some((scheme, host, port))
}

fn parse(pattern: &str) -> Option<Pattern> {
    let (scheme, host, port) = split(pattern)?;
    Some(Pattern {
        scheme: scheme.map(str::to_ascii_lowercase),
        host: host.to_ascii_lowercase(),
        port,
    })
}

fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(domain) => host == domain || host.ends_with(&format!(".{domain}")),
        None => pattern == host,
    }
}

impl OriginPolicy {
    /// Whether a request with `origin` (its `Origin` header, if any) and
    /// `host` (its `Host` header) may connect.
    pub fn allows(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        let Some((scheme, origin_host, origin_port)) = split(origin) else {
            return false;
        };
        let origin_host = origin_host.to_ascii_lowercase();
        match self {
            OriginPolicy::Any => true,
            OriginPolicy::SameHost => host
                .and_then(|h| split(h).map(|(_, host, _)| host.to_ascii_lowercase()))
                .is_some_and(|h| h == origin_host),
            OriginPolicy::List(patterns) => patterns.iter().filter_map(|p| parse(p)).any(|p| {
                p.scheme.as_deref().is_none_or(|s| Some(s) == scheme.map(str::to_ascii_lowercase).as_deref())
                    && host_matches(&p.host, &origin_host)
                    && p.port.is_none_or(|port| Some(port) == origin_port)
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(patterns: &[&str]) -> OriginPolicy {
        OriginPolicy::List(patterns.iter().map(|p| (*p).to_owned()).collect())
    }

    #[test]
    fn a_missing_origin_is_allowed_as_in_phoenix() {
        assert!(list(&["https://example.com"]).allows(None, Some("x")));
        assert!(OriginPolicy::SameHost.allows(None, None));
    }

    #[test]
    fn scheme_host_and_port_must_match_where_given() {
        let policy = list(&["https://example.com", "//other.org", "http://local.test:4000"]);
        assert!(policy.allows(Some("https://example.com"), None));
        assert!(!policy.allows(Some("http://example.com"), None));
        assert!(policy.allows(Some("http://other.org"), None));
        assert!(policy.allows(Some("https://other.org:8443"), None));
        assert!(policy.allows(Some("http://local.test:4000"), None));
        assert!(!policy.allows(Some("http://local.test:4001"), None));
        assert!(!policy.allows(Some("https://evil.com"), None));
        assert!(!policy.allows(Some("null"), None));
    }

    #[test]
    fn wildcards_match_subdomains_and_the_domain() {
        let policy = list(&["//*.example.com"]);
        assert!(policy.allows(Some("https://app.example.com"), None));
        assert!(policy.allows(Some("https://a.b.example.com"), None));
        assert!(policy.allows(Some("https://example.com"), None));
        assert!(!policy.allows(Some("https://badexample.com"), None));
    }

    #[test]
    fn same_host_compares_with_the_host_header() {
        assert!(OriginPolicy::SameHost.allows(Some("http://127.0.0.1:4000"), Some("127.0.0.1:4000")));
        assert!(OriginPolicy::SameHost.allows(Some("http://LOCALHOST:1"), Some("localhost:2")));
        assert!(!OriginPolicy::SameHost.allows(Some("http://evil.com"), Some("127.0.0.1:4000")));
    }
}
