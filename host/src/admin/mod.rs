//! The admin listener: what operators and Prometheus read, on an address
//! of its own (`[server] admin_bind`, loopback by default), never on the
//! client port.
//!
//! Its pages reveal what clients must not see: file paths, plugin
//! versions, tenant ids and traffic figures. So the listener is on
//! loopback unless told otherwise, and when it is not, it wants a bearer
//! token (`[server] admin_token` or `PLUME_ADMIN_TOKEN`); a token, once
//! set, is asked of every request, on loopback too.
//!
//! Each page is one [`Endpoint`] in [`endpoints::ALL`]: a path and the
//! function that answers it, with the request in hand (so an endpoint may
//! upgrade it to a WebSocket). The token check runs before any of them.

mod dashboard;
mod endpoints;
mod token;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::Context;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use token::AdminToken;

use crate::app::App;
use crate::config::Loaded;
use crate::transport::listener::{self, Http};
use crate::transport::{Body, text};

/// What admin requests are answered from.
pub struct Admin {
    apps: Vec<Arc<App>>,
    /// The cluster this node is in, whose figures `/metrics` adds.
    cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Asked of every request when set (but of [`Endpoint::open`] pages).
    token: Option<AdminToken>,
    /// Recent figures, for the dashboard.
    sampler: Arc<dashboard::Sampler>,
}

/// What an endpoint returns: its response, once ready.
type Answer<'a> = Pin<Box<dyn Future<Output = Response<Body>> + Send + 'a>>;

/// One admin page.
pub struct Endpoint {
    pub path: &'static str,
    /// What it shows, for the index at `/`.
    pub about: &'static str,
    pub answer: for<'a> fn(&'a Admin, Request<Incoming>) -> Answer<'a>,
    /// Served without the token: a page that holds no data itself.
    pub open: bool,
}

impl Admin {
    /// The admin pages of `apps`, to be served on `address`, with the token
    /// `loaded` gives (`admin_token`, else `PLUME_ADMIN_TOKEN`). Without
    /// one, `address` must be loopback: refused otherwise, with what to do.
    pub fn new(
        apps: Vec<Arc<App>>,
        cluster: Option<Arc<crate::cluster::Cluster>>,
        loaded: &Loaded,
        address: SocketAddr,
    ) -> anyhow::Result<Admin> {
        let token = loaded.config.server.admin_token();
        if token.is_none() && !address.ip().is_loopback() {
            anyhow::bail!(
                "the admin listener would serve on {address}, which is not loopback, without a token: its pages show \
                 file paths, plugin versions, tenants and traffic figures. Set PLUME_ADMIN_TOKEN (or admin_token under \
                 [server] in {}; `plume secret` makes one), or keep it on loopback (admin_bind = \"127.0.0.1:4001\")",
                loaded.file
            );
        }
        Ok(Admin {
            sampler: Arc::new(dashboard::Sampler::new(apps.clone())),
            apps,
            cluster,
            token: token.as_deref().map(AdminToken::new),
        })
    }

    /// What the start-up line says of it.
    pub fn describe(&self) -> &'static str {
        match self.token {
            Some(_) => "/metrics, /_plume/plugins, /dashboard; bearer token required",
            None => "/metrics, /_plume/plugins, /dashboard; no token: loopback only",
        }
    }

    /// Serve the admin pages on `listener` until `shutdown` flips.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: watch::Receiver<bool>, http: Http) {
        tokio::spawn(self.sampler.clone().run(shutdown.clone()));
        listener::serve(listener, shutdown, http, move |request, peer| {
            let admin = self.clone();
            async move { admin.route(request, peer).await }
        })
        .await;
    }

    /// Answer one request: the token first, then the endpoint of its path.
    pub async fn route(&self, request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let path = request.uri().path().to_owned();
        let endpoint = endpoints::ALL.iter().find(|endpoint| endpoint.path == path);
        if let Some(token) = self.token.as_ref().filter(|_| !endpoint.is_some_and(|e| e.open)) {
            let authorization = request.headers().get(header::AUTHORIZATION).map(HeaderValue::as_bytes);
            if !token.accepts(authorization) {
                tracing::info!(%peer, path = request.uri().path(), "admin request refused: no valid bearer token");
                return unauthorized();
            }
        }
        if path == "/" {
            return index();
        }
        match endpoint {
            Some(endpoint) => (endpoint.answer)(self, request).await,
            None => text(StatusCode::NOT_FOUND, "not found: see / for the admin pages\n"),
        }
    }
}

fn unauthorized() -> Response<Body> {
    let mut response = text(
        StatusCode::UNAUTHORIZED,
        "unauthorized: send the admin token as `Authorization: Bearer <token>`\n",
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"plume admin\""));
    response
}

/// `/`: the admin pages, one a line.
fn index() -> Response<Body> {
    let mut body = String::from("plume admin\n\n");
    for endpoint in endpoints::ALL {
        body.push_str(&format!("{:<18} {}\n", endpoint.path, endpoint.about));
    }
    text(StatusCode::OK, body)
}

/// The admin listener's address: `configured` (`admin_bind` or
/// `--admin-bind`), else loopback on the client port plus one, or on a port
/// the OS picks when the client's is 0 (so that servers started on free
/// ports, as tests start them, do not fight over one admin port).
pub fn address(configured: Option<&str>, client_bind: &str) -> anyhow::Result<String> {
    if let Some(configured) = configured {
        return Ok(configured.to_owned());
    }
    let (host, port) = client_bind
        .rsplit_once(':')
        .with_context(|| format!("{client_bind} has no port"))?;
    let port: u16 = port.parse().with_context(|| format!("{client_bind}: `{port}` is not a port"))?;
    let loopback = if host.starts_with('[') { "[::1]" } else { "127.0.0.1" };
    match port {
        0 => Ok(format!("{loopback}:0")),
        u16::MAX => anyhow::bail!("the client port is {port}, so the admin pages have no next port: set [server] admin_bind"),
        port => Ok(format!("{loopback}:{}", port + 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::address;

    #[test]
    fn the_admin_pages_default_to_loopback_on_the_next_port() {
        assert_eq!(address(None, "127.0.0.1:4000").expect("valid"), "127.0.0.1:4001");
        assert_eq!(address(None, "0.0.0.0:8080").expect("valid"), "127.0.0.1:8081", "loopback, whatever the client bind");
        assert_eq!(address(None, "[::]:4000").expect("valid"), "[::1]:4001");
        assert_eq!(address(None, "127.0.0.1:0").expect("valid"), "127.0.0.1:0", "a free port for a free port");
        assert_eq!(address(Some("10.0.0.5:9100"), "127.0.0.1:4000").expect("valid"), "10.0.0.5:9100");
        assert!(address(None, "127.0.0.1:65535").is_err());
    }
}
