//! HTTP: the listeners, request routing on the client port, and the
//! WebSocket upgrade.
//!
//! The client port serves what clients need: sockets, long-poll and the
//! demo page. What operators read is on the admin listener ([`crate::admin`]).

pub mod connect;
mod echo;
pub mod listener;
pub mod longpoll;
pub mod origin;
pub mod peers;
mod websocket;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::app::App;

pub use longpoll::{DEFAULT_WINDOW as DEFAULT_LONGPOLL_WINDOW, Sessions};

/// What request handlers share.
pub struct Server {
    pub apps: Vec<Arc<App>>,
    /// Flips to `true` when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
    /// Held by every socket task; shutdown waits until all are dropped.
    pub sockets_alive: mpsc::Sender<()>,
    pub longpoll: longpoll::Sessions,
    /// Where the WebSocket echo endpoint listens, when it is on (for
    /// conformance suites; see `echo.rs`).
    pub websocket_echo_path: Option<String>,
    /// The demo chat page at `/`, served with the demo app only.
    pub demo_page: Option<crate::demo_page::DemoPage>,
    /// The cluster this node is part of, if any.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// In a cluster: long-poll requests for sessions of other nodes.
    pub forwarder: Option<Arc<longpoll::Forwarder>>,
}

pub type Body = Full<Bytes>;

pub(crate) fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

/// Accept client connections until shutdown (see [`listener::serve`]);
/// WebSocket upgrades continue as socket tasks.
pub async fn accept_loop(listener: TcpListener, server: Arc<Server>, http: listener::Http) {
    let shutdown = server.shutdown.clone();
    listener::serve(listener, shutdown, http, move |request, peer| {
        let server = server.clone();
        async move { route(&server, request, peer).await }
    })
    .await;
}

async fn route(server: &Arc<Server>, request: Request<Incoming>, peer: std::net::SocketAddr) -> Response<Body> {
    let path = request.uri().path().to_owned();
    for app in &server.apps {
        if let Some(rest) = app.mounted(&path) {
            if rest == "/websocket" {
                return websocket::upgrade(server, app, request, peer);
            }
            if rest == "/longpoll" {
                return longpoll::handle(server, app, request, peer).await;
            }
        }
    }
    if crate::api::serves(&path) {
        return crate::api::handle(&server.apps, request).await;
    }
    if server.websocket_echo_path.as_deref() == Some(path.as_str()) {
        return echo::upgrade(server, request, peer);
    }
    if let (Some(page), Some(app)) = (&server.demo_page, server.apps.first())
        && page.serves(&path)
    {
        return page.respond(app, request).await;
    }
    if path == "/" {
        return text(StatusCode::OK, "plume is running. Connect a Phoenix client to /socket.\n");
    }
    text(StatusCode::NOT_FOUND, "not found\n")
}
