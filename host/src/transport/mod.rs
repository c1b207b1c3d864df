//! HTTP: the listener, request routing, and the WebSocket upgrade.

pub mod connect;
mod echo;
mod longpoll;
pub mod origin;
mod websocket;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
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
}

pub type Body = Full<Bytes>;

pub(crate) fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

/// Accept connections until shutdown. Each connection is served on its own
/// task; WebSocket upgrades continue as socket tasks.
pub async fn accept_loop(listener: TcpListener, server: Arc<Server>) {
    let mut shutdown = server.shutdown.clone();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: keep serving the
                    // sockets we have, try again shortly.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let server = server.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let server = server.clone();
                async move { Ok::<_, Infallible>(route(&server, request, peer).await) }
            });
            let connection = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "HTTP connection ended with an error");
            }
        });
    }
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
    if server.websocket_echo_path.as_deref() == Some(path.as_str()) {
        return echo::upgrade(server, request, peer);
    }
    if path == "/_plume/plugins" {
        let status: Vec<serde_json::Value> = server.apps.iter().map(|app| app.plugin_status()).collect();
        let body = serde_json::to_string_pretty(&serde_json::json!({ "apps": status })).unwrap_or_default();
        let mut response = text(StatusCode::OK, body);
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        return response;
    }
    if path == "/metrics" {
        let body: String = server.apps.iter().map(|app| app.figures.prometheus(&app.id)).collect();
        let mut response = text(StatusCode::OK, body);
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        return response;
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
