//! Accepting connections and serving HTTP/1 on them, for both listeners
//! (the client port and the admin one).
//!
//! Two guards stand between an accepted connection and a request handler,
//! as Bandit's and Cowboy's stand in front of every Phoenix app:
//!
//! - a header read timeout: a connection that does not send a whole request
//!   head within it (slowly, or never: a half-open connection) is closed,
//!   and so is a keep-alive connection idle that long between requests;
//! - the per-address cap ([`PeerLimit`]), checked before anything is read.
//!
//! A WebSocket is past both once upgraded: its own idle timeout
//! (`[limits] idle_timeout_ms`) watches it from then on.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::Body;
use super::peers::{ClientStream, PeerLimit};

/// How a listener serves its connections.
#[derive(Debug, Clone)]
pub struct Http {
    /// How long a client may take to send a request head.
    pub header_read_timeout: Duration,
    /// The per-address cap; `None` counts nothing.
    pub peers: Option<Arc<PeerLimit>>,
}

/// What a connection over its address's cap reads before it is closed.
const OVER_LIMIT: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nRetry-After: 5\r\nConnection: close\r\nContent-Length: 80\r\n\r\ntoo many connections from your address (max_connections_per_ip); try again later";

/// Accept connections until `shutdown` flips, answering each request with
/// `handle(request, peer)`. Each connection is served on its own task;
/// upgraded ones (WebSockets) continue on the tasks their handlers spawn.
pub async fn serve<H, F>(listener: TcpListener, mut shutdown: watch::Receiver<bool>, http: Http, handle: H)
where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: keep serving the
                    // connections we have, try again shortly.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let slot = match http.peers.as_ref().map(|peers| peers.admit(peer.ip())) {
            None | Some(Ok(None)) => None,
            Some(Ok(Some(slot))) => Some(slot),
            Some(Err(over)) => {
                tracing::info!(%peer, limit = over.max_per_address, "refused: the address is at its connection limit (max_connections_per_ip)");
                // One try, never waiting: this connection gets no task.
                let _ = stream.try_write(OVER_LIMIT);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let handle = handle.clone();
        let header_read_timeout = http.header_read_timeout;
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let response = handle(request, peer);
                async move { Ok::<_, Infallible>(response.await) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .serve_connection(TokioIo::new(ClientStream::new(stream, slot)), service)
                .with_upgrades();
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "HTTP connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_over_limit_response_declares_its_length() {
        let text = std::str::from_utf8(super::OVER_LIMIT).expect("text");
        let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
        assert!(head.contains(&format!("Content-Length: {}", body.len())), "{head}");
    }
}
