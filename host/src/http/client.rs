//! The network client behind an app's requests: reqwest over rustls (the
//! ring provider, the webpki roots: certificates are checked for real),
//! with plume's own resolver (a host name must resolve to public
//! addresses) and redirect policy (only within the allowed origins, at
//! most [`MAX_REDIRECTS`]). No proxy from the environment is used: it
//! would bypass both checks.

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::allow::{Allowlist, is_public};
use super::outcome::{Failure, FailureKind, Response};
use super::{Fetch, Fetching, Request};

/// Redirects followed before a request fails.
pub const MAX_REDIRECTS: usize = 5;

/// A refusal by the resolver or the redirect policy, found again in the
/// error chain to report `not-allowed`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Blocked(String);

/// Resolves with the system resolver (off the async workers), keeping only
/// public addresses.
struct PublicOnly;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(public_addresses(name.as_str().to_owned()))
    }
}

async fn public_addresses(host: String) -> Result<Addrs, BoxError> {
    let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
    let public: Vec<SocketAddr> = found.iter().copied().filter(|a| is_public(a.ip())).collect();
    if public.is_empty() && !found.is_empty() {
        let addresses: Vec<String> = found.iter().map(|a| a.ip().to_string()).collect();
        return Err(Box::new(Blocked(format!(
            "{host} resolves to {}, not a public address; to reach a backend on this machine or a private network, allow it by address in http_allow (e.g. http://{}:PORT)",
            addresses.join(", "),
            addresses[0]
        ))));
    }
    Ok(Box::new(public.into_iter()))
}

/// One app's client: its connection pool, resolver and redirect policy.
pub struct Client {
    inner: reqwest::Client,
}

impl Client {
    pub fn new(allow: Arc<Allowlist>) -> Result<Client, String> {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        // rustls deprecates ring's provider for lacking post-quantum key
        // exchange; the alternative, aws-lc-rs, builds AWS-LC from C
        // sources. X25519 and the classical suites are what the app's
        // backends speak today; revisit when aws-lc-rs is in the tree.
        #[allow(deprecated)]
        let provider = rustls::crypto::ring::default_provider();
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot set up TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error(Blocked(format!("more than {MAX_REDIRECTS} redirects")))
            } else if allow.allows(attempt.url()) {
                attempt.follow()
            } else {
                let to = attempt.url().to_string();
                attempt.error(Blocked(format!("redirected to {to}, whose origin is not in http_allow")))
            }
        });
        let inner = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .dns_resolver(Arc::new(PublicOnly))
            .redirect(redirects)
            .retry(reqwest::retry::never())
            .no_proxy()
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Client { inner })
    }
}

impl Fetch for Client {
    fn fetch(&self, request: Request) -> Fetching {
        let max = request.max_response_bytes;
        let mut builder = self.inner.request(request.method, request.url).headers(request.headers);
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        Box::pin(async move {
            let mut response = builder.send().await.map_err(failure)?;
            if response.content_length().is_some_and(|len| len > max as u64) {
                return Err(Failure::too_large(max));
            }
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
                .collect();
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(failure)? {
                if body.len() + chunk.len() > max {
                    return Err(Failure::too_large(max));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Response { status, headers, body })
        })
    }
}

/// What went wrong, as a plugin can act on it: the first refusal of ours,
/// a TLS error, or how far the request got.
fn failure(error: reqwest::Error) -> Failure {
    let root = root_cause(&error);
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(e) = cause {
        if let Some(blocked) = e.downcast_ref::<Blocked>() {
            return Failure::new(FailureKind::NotAllowed, blocked.0.clone());
        }
        if let Some(tls) = tls_error(e) {
            return Failure::new(FailureKind::Tls, format!("the TLS handshake failed: {tls}"));
        }
        cause = e.source();
    }
    let url = error.url().map(|url| url.to_string()).unwrap_or_default();
    if error.is_timeout() {
        Failure::new(FailureKind::Timeout, format!("{url}: {root}"))
    } else if error.is_connect() {
        Failure::new(FailureKind::Refused, format!("cannot connect to {url}: {root}"))
    } else {
        Failure::new(FailureKind::Failed, format!("{url}: {root}"))
    }
}

/// The TLS error in `error`, looking inside I/O errors too: an
/// `io::Error` hides what it wraps from `source()` (it answers with the
/// wrapped error's own source), and connectors wrap the handshake's
/// `io::Error` in another one.
fn tls_error<'e>(error: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let inner = error.downcast_ref::<std::io::Error>()?.get_ref()?;
    tls_error(inner)
}

/// The innermost error's text: what actually happened.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut last = error;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}
