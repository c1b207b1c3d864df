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

mod endpoints;
mod token;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};

pub use token::AdminToken;

use crate::app::App;
use crate::transport::{Body, text};

/// What admin requests are answered from.
pub struct Admin {
    pub apps: Vec<Arc<App>>,
    /// Asked of every request when set.
    pub token: Option<AdminToken>,
}

/// What an endpoint returns: its response, once ready.
type Answer<'a> = Pin<Box<dyn Future<Output = Response<Body>> + Send + 'a>>;

/// One admin page.
pub struct Endpoint {
    pub path: &'static str,
    /// What it shows, for the index at `/`.
    pub about: &'static str,
    pub answer: for<'a> fn(&'a Admin, Request<Incoming>) -> Answer<'a>,
}

impl Admin {
    /// Answer one request: the token first, then the endpoint of its path.
    pub async fn route(&self, request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        if let Some(token) = &self.token {
            let authorization = request.headers().get(header::AUTHORIZATION).map(HeaderValue::as_bytes);
            if !token.accepts(authorization) {
                tracing::info!(%peer, path = request.uri().path(), "admin request refused: no valid bearer token");
                return unauthorized();
            }
        }
        let path = request.uri().path().to_owned();
        if path == "/" {
            return index();
        }
        match endpoints::ALL.iter().find(|endpoint| endpoint.path == path) {
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
