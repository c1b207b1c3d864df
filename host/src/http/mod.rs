//! Outbound HTTP for plugins (the `http` capability): Phoenix's
//! `Task.async` plus `handle_info`, without a thread that waits.
//!
//! A plugin's `http.send` is checked here at once ([`Outbound::prepare`]:
//! the origin is in `http_allow`, the method, URL and headers are sound,
//! the app has room in flight) and handed back as a [`Request`] with a
//! [`Permit`]. The calling socket starts it on its own tokio task when the
//! call returns ([`Outbound::run`]); the outcome (a [`Response`] of any
//! status, or a [`Failure`]) comes back through the socket's mailbox as a
//! `handle-info` message ([`outcome::message`]). No host thread waits on
//! the network: name resolution runs on tokio's blocking pool, the rest is
//! async.
//!
//! The network side is behind [`Fetch`], so the test harness can answer
//! requests itself; the real one is [`client::Client`].

mod allow;
mod client;
pub mod outcome;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};

pub use allow::{Allowlist, Origin, is_public};
pub use client::MAX_REDIRECTS;
pub use outcome::{Failure, FailureKind, Response};

/// A request in progress: resolves with its response or failure.
pub type Fetching = Pin<Box<dyn Future<Output = Result<Response, Failure>> + Send>>;

/// What performs requests: the network ([`client::Client`]), or a test
/// harness that answers them itself.
pub trait Fetch: Send + Sync {
    /// Start `request`. Timeouts are applied by the caller.
    fn fetch(&self, request: Request) -> Fetching;
}

/// The limits of an app's requests (`[limits]` keys in plume.toml).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `http_timeout_ms`: the default timeout, and the longest a request
    /// may ask for.
    pub timeout: Duration,
    /// `max_http_response_bytes`: a longer body fails as `too-large`.
    pub max_response_bytes: usize,
    /// `max_http_in_flight`: requests of the whole app at once.
    pub max_in_flight: usize,
    /// `max_http_in_flight_per_channel`: requests of one channel at once.
    pub max_in_flight_per_channel: usize,
    /// `max_payload_bytes`: the largest request body.
    pub max_request_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(5),
            max_response_bytes: 1024 * 1024,
            max_in_flight: 1000,
            max_in_flight_per_channel: 16,
            max_request_bytes: 1024 * 1024,
        }
    }
}

/// A request as the plugin asked for it, before any check.
#[derive(Debug)]
pub struct Draft {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub timeout_ms: Option<u64>,
}

/// A checked request, ready to run.
#[derive(Debug)]
pub struct Request {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Option<Vec<u8>>,
    pub timeout: Duration,
    pub max_response_bytes: usize,
}

/// Why a request was refused before it started.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The app has no `http_allow`.
    #[error("{0}")]
    NotGranted(String),
    /// The URL's origin is not in `http_allow`.
    #[error("{0}")]
    NotAllowed(String),
    /// Too many in flight, or a body too big.
    #[error("{0}")]
    Limit(String),
    /// A malformed URL, method or header.
    #[error("{0}")]
    Invalid(String),
}

/// Headers the host sets itself: a plugin may not forge the framing of
/// the request or the host it goes to.
const RESERVED_HEADERS: [&str; 8] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
];

/// A place among the app's requests in flight, held until the request
/// ends (and given back if it never starts).
#[derive(Debug)]
pub struct Permit(Arc<AtomicUsize>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One app's outbound HTTP: its allowlist, limits, client and requests in
/// flight.
pub struct Outbound {
    allow: Arc<Allowlist>,
    limits: Limits,
    fetcher: Arc<dyn Fetch>,
    in_flight: Arc<AtomicUsize>,
}

impl Outbound {
    /// An app's outbound HTTP over the network. With an empty allowlist
    /// the capability is not granted and no client is built.
    pub fn new(allow: Allowlist, limits: Limits) -> Result<Outbound, String> {
        let allow = Arc::new(allow);
        let fetcher: Arc<dyn Fetch> = if allow.is_empty() {
            Arc::new(Nowhere)
        } else {
            Arc::new(client::Client::new(allow.clone())?)
        };
        Ok(Outbound {
            allow,
            limits,
            fetcher,
            in_flight: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The same allowlist and limits, with requests performed by `fetcher`
    /// (the test harness answers them itself).
    pub fn with_fetcher(self, fetcher: Arc<dyn Fetch>) -> Outbound {
        Outbound { fetcher, ..self }
    }

    /// Whether the app may make requests at all (`http_allow` is set).
    pub fn granted(&self) -> bool {
        !self.allow.is_empty()
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Requests of the app in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Check a plugin's request and take a place for it among the app's
    /// requests in flight.
    pub fn prepare(&self, draft: Draft) -> Result<(Request, Permit), Refused> {
        if !self.granted() {
            return Err(Refused::NotGranted(crate::app::not_granted(crate::app::Capability::Http)));
        }
        let request = self.check(draft)?;
        let permit = self.reserve()?;
        Ok((request, permit))
    }

    fn check(&self, draft: Draft) -> Result<Request, Refused> {
        let url = Url::parse(&draft.url).map_err(|e| Refused::Invalid(format!("`{}` is not an absolute URL: {e}", draft.url)))?;
        let Some(origin) = Origin::of(&url) else {
            return Err(Refused::Invalid(format!("`{}`: only http:// and https:// URLs can be requested", draft.url)));
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refused::Invalid("credentials in the URL are not sent; use an authorization header".into()));
        }
        if !self.allow.allows(&url) {
            return Err(Refused::NotAllowed(format!("{origin} is not in this app's http_allow")));
        }
        let method = Method::from_bytes(draft.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| Refused::Invalid(format!("`{}` is not an HTTP method", draft.method)))?;
        if method == Method::CONNECT || method == Method::TRACE {
            return Err(Refused::Invalid(format!("{method} requests are not allowed")));
        }
        let mut headers = HeaderMap::new();
        for (name, value) in draft.headers {
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| Refused::Invalid(format!("`{name}` is not a header name")))?;
            if RESERVED_HEADERS.contains(&header.as_str()) || header.as_str().starts_with("proxy-") {
                return Err(Refused::Invalid(format!("the `{header}` header is set by the host")));
            }
            let value = HeaderValue::from_str(&value).map_err(|_| Refused::Invalid(format!("the value of `{name}` is not a valid header value")))?;
            headers.append(header, value);
        }
        let max = self.limits.max_request_bytes;
        if let Some(body) = &draft.body
            && body.len() > max
        {
            return Err(Refused::Limit(format!("a request body is at most {max} bytes (max_payload_bytes), this one has {}", body.len())));
        }
        let timeout = draft.timeout_ms.map_or(self.limits.timeout, |ms| Duration::from_millis(ms).min(self.limits.timeout));
        Ok(Request {
            method,
            url,
            headers,
            body: draft.body,
            timeout,
            max_response_bytes: self.limits.max_response_bytes,
        })
    }

    fn reserve(&self) -> Result<Permit, Refused> {
        let max = self.limits.max_in_flight;
        let before = self.in_flight.fetch_add(1, Ordering::Relaxed);
        let permit = Permit(self.in_flight.clone());
        if before >= max {
            return Err(Refused::Limit(format!(
                "this app has {max} requests in flight already (max_http_in_flight); retry when one ends"
            )));
        }
        Ok(permit)
    }

    /// Perform request `id` within its timeout; resolves with the
    /// `handle-info` message of its outcome, and whether it was a failure.
    pub fn run(&self, id: u64, request: Request) -> impl Future<Output = (String, bool)> + Send + 'static {
        let timeout = request.timeout;
        let max = request.max_response_bytes;
        let url = request.url.to_string();
        let fetching = self.fetcher.fetch(request);
        async move {
            let result = match tokio::time::timeout(timeout, fetching).await {
                Ok(Ok(response)) if response.body.len() > max => Err(Failure::too_large(max)),
                Ok(result) => result,
                Err(_) => Err(Failure::new(
                    FailureKind::Timeout,
                    format!("no response from {url} within {} ms", timeout.as_millis()),
                )),
            };
            (outcome::message(id, &result), result.is_err())
        }
    }
}

/// The fetcher of an app without `http_allow`: never reached, as
/// [`Outbound::prepare`] refuses every request first.
struct Nowhere;

impl Fetch for Nowhere {
    fn fetch(&self, _request: Request) -> Fetching {
        Box::pin(async { Err(Failure::new(FailureKind::NotAllowed, "this app has no http_allow")) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbound(limits: Limits) -> Outbound {
        let allow = Allowlist::parse(&["https://api.example.com".into()]).unwrap();
        Outbound::new(allow, limits).unwrap()
    }

    fn draft(url: &str) -> Draft {
        Draft {
            method: "post".into(),
            url: url.into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: Some(b"{}".to_vec()),
            timeout_ms: Some(60_000),
        }
    }

    #[test]
    fn a_request_to_an_allowed_origin_is_prepared_with_its_limits() {
        let outbound = outbound(Limits::default());
        let (request, _permit) = outbound.prepare(draft("https://api.example.com/x")).unwrap();
        assert_eq!(request.method, Method::POST);
        assert_eq!(request.timeout, Duration::from_secs(5), "capped at http_timeout_ms");
        assert_eq!(outbound.in_flight(), 1);
    }

    #[test]
    fn refusals_say_why() {
        let outbound = outbound(Limits::default());
        let refused = |d: Draft| outbound.prepare(d).map(drop).unwrap_err();
        assert!(matches!(refused(draft("https://evil.example.com/")), Refused::NotAllowed(text) if text.contains("evil.example.com")));
        assert!(matches!(refused(draft("not a url")), Refused::Invalid(_)));
        assert!(matches!(refused(draft("ftp://api.example.com/")), Refused::Invalid(_)));
        let mut bad_header = draft("https://api.example.com/");
        bad_header.headers.push(("host".into(), "elsewhere".into()));
        assert!(matches!(refused(bad_header), Refused::Invalid(text) if text.contains("host")));
        let mut big = draft("https://api.example.com/");
        big.body = Some(vec![0; 2 * 1024 * 1024]);
        assert!(matches!(refused(big), Refused::Limit(text) if text.contains("max_payload_bytes")));
        let none = Outbound::new(Allowlist::default(), Limits::default()).unwrap();
        assert!(matches!(none.prepare(draft("https://api.example.com/")).map(drop), Err(Refused::NotGranted(text)) if text.contains("http_allow")));
    }

    #[test]
    fn the_apps_requests_in_flight_are_bounded_and_given_back() {
        let outbound = outbound(Limits { max_in_flight: 2, ..Limits::default() });
        let first = outbound.prepare(draft("https://api.example.com/")).unwrap();
        let _second = outbound.prepare(draft("https://api.example.com/")).unwrap();
        let third = outbound.prepare(draft("https://api.example.com/")).map(drop);
        assert!(matches!(third, Err(Refused::Limit(text)) if text.contains("max_http_in_flight")));
        drop(first);
        assert_eq!(outbound.in_flight(), 1);
        assert!(outbound.prepare(draft("https://api.example.com/")).is_ok());
    }
}
