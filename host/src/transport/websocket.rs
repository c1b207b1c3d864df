//! The WebSocket transport: the upgrade handshake, `connect` through the
//! socket plugin, then a socket task per connection.
//!
//! The socket plugin decides before the upgrade: a refused connection gets
//! HTTP 403 and never becomes a WebSocket, as in Phoenix.
//!
//! The handshake checks, tungstenite's settings and the socket task's
//! start are functions of their own, so that the echo endpoint
//! (`echo.rs`, for conformance suites) runs on exactly this stack.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::peers::ClientStream;
use super::{Body, Server, text};
use crate::app::App;
use crate::protocol::Serializer;
use crate::runtime::ConnectInfo;
use crate::socket::{self, Accepted};

/// Bytes read from a socket at a time.
const READ_BUFFER: usize = 1024;

/// How many bytes of small frames tungstenite gathers before a write.
const WRITE_BUFFER: usize = 16 * 1024;

/// An upgraded connection, as every WebSocket endpoint serves it.
pub(super) type WebSocket = WebSocketStream<crate::socket::transport::Direct<UpgradedIo>>;

/// The connection under a WebSocket once the handshake is done.
///
/// hyper hands an upgraded connection over with the rest of its HTTP read
/// buffer, and that buffer (8 KiB) stays allocated for as long as the
/// connection lives, even when nothing is left in it: half of what an idle
/// socket cost. When the connection is a client's TCP stream with nothing
/// read ahead (the normal case: a client waits for the 101 before sending
/// frames), plume takes the stream back and lets the buffer go.
pub(super) enum UpgradedIo {
    Tcp(ClientStream),
    /// Bytes the client sent right behind its handshake, read ahead by
    /// hyper: they are read first.
    ReadAhead(bytes::Bytes, ClientStream),
    /// Another kind of connection: hyper's own wrapper.
    Upgraded(TokioIo<Upgraded>),
}

impl UpgradedIo {
    fn new(upgraded: Upgraded) -> UpgradedIo {
        match upgraded.downcast::<TokioIo<ClientStream>>() {
            Ok(parts) if parts.read_buf.is_empty() => UpgradedIo::Tcp(parts.io.into_inner()),
            // Keep only the bytes read ahead, not the whole buffer.
            Ok(parts) => UpgradedIo::ReadAhead(bytes::Bytes::copy_from_slice(&parts.read_buf), parts.io.into_inner()),
            Err(upgraded) => UpgradedIo::Upgraded(TokioIo::new(upgraded)),
        }
    }
}

impl AsyncRead for UpgradedIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpgradedIo::Tcp(io) => Pin::new(io).poll_read(cx, buf),
            UpgradedIo::ReadAhead(ahead, io) => {
                if ahead.is_empty() {
                    return Pin::new(io).poll_read(cx, buf);
                }
                let n = ahead.len().min(buf.remaining());
                buf.put_slice(&ahead.split_to(n));
                Poll::Ready(Ok(()))
            }
            UpgradedIo::Upgraded(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpgradedIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpgradedIo::Tcp(io) | UpgradedIo::ReadAhead(_, io) => Pin::new(io).poll_write(cx, buf),
            UpgradedIo::Upgraded(io) => Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpgradedIo::Tcp(io) | UpgradedIo::ReadAhead(_, io) => Pin::new(io).poll_write_vectored(cx, bufs),
            UpgradedIo::Upgraded(io) => Pin::new(io).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpgradedIo::Tcp(io) | UpgradedIo::ReadAhead(_, io) => io.is_write_vectored(),
            UpgradedIo::Upgraded(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpgradedIo::Tcp(io) | UpgradedIo::ReadAhead(_, io) => Pin::new(io).poll_flush(cx),
            UpgradedIo::Upgraded(io) => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpgradedIo::Tcp(io) | UpgradedIo::ReadAhead(_, io) => Pin::new(io).poll_shutdown(cx),
            UpgradedIo::Upgraded(io) => Pin::new(io).poll_shutdown(cx),
        }
    }
}

/// The prefix phoenix.js puts before the `authToken` in the subprotocol list.
const AUTH_TOKEN_PREFIX: &str = "base64url.bearer.phx.";

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The subprotocols the client offered.
fn subprotocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// The client's `Sec-WebSocket-Key` when `headers` ask for a WebSocket
/// (RFC 6455 §4.2.1), or the 400 response that says what was missing
/// (boxed: a response is large, and most handshakes are fine).
pub(super) fn handshake_key(headers: &HeaderMap) -> Result<String, Box<Response<Body>>> {
    match header_str(headers, header::SEC_WEBSOCKET_KEY) {
        Some(key)
            if has_token(headers, header::CONNECTION, "upgrade")
                && has_token(headers, header::UPGRADE, "websocket")
                && header_str(headers, header::SEC_WEBSOCKET_VERSION) == Some("13") =>
        {
            Ok(key.to_owned())
        }
        _ => Err(Box::new(text(
            StatusCode::BAD_REQUEST,
            "expected a WebSocket upgrade (GET with Upgrade: websocket, Sec-WebSocket-Version: 13)\n",
        ))),
    }
}

/// The 101 response that accepts the handshake for `key`.
pub(super) fn switching_protocols(key: &str) -> Response<Body> {
    let mut response = text(StatusCode::SWITCHING_PROTOCOLS, "");
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// tungstenite's settings for a socket whose frames and messages may be up
/// to `max_message_bytes`.
pub(super) fn config(max_message_bytes: usize) -> WebSocketConfig {
    // tungstenite zero-fills its whole read buffer before each read: the
    // 128 KiB default costs a large memset per wake-up and per socket
    // memory. Client frames are small; the buffer grows for big ones.
    // The write buffer keeps its largest size for the connection's life:
    // frames are batched up to WRITE_BUFFER, and bigger ones are written
    // from the message itself (socket::transport::LARGE_FRAME), so a
    // socket's buffer stays within twice that.
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(Some(max_message_bytes))
        .max_frame_size(Some(max_message_bytes))
}

/// Finish the upgrade of `request` on a task of its own (hyper completes it
/// only once the 101 response is written), then run `serve` on the
/// WebSocket. The task holds the server's `sockets_alive`, so shutdown waits
/// for it.
pub(super) fn spawn<F, Fut>(server: &Arc<Server>, mut request: Request<Incoming>, peer: SocketAddr, config: WebSocketConfig, serve: F)
where
    F: FnOnce(WebSocket, watch::Receiver<bool>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let shutdown = server.shutdown.clone();
    let alive = server.sockets_alive.clone();
    // The request (its headers, its URI) is not kept for the socket's life.
    let on_upgrade = hyper::upgrade::on(&mut request);
    drop(request);
    tokio::spawn(async move {
        let _alive = alive;
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(
                    crate::socket::transport::Direct::new(UpgradedIo::new(upgraded)),
                    Role::Server,
                    Some(config),
                ).await;
                serve(ws, shutdown).await;
            }
            Err(error) => tracing::debug!(%error, %peer, "WebSocket upgrade failed"),
        }
    });
}

pub(super) fn upgrade(server: &Arc<Server>, app: &Arc<App>, request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let headers = request.headers();
    let key = match handshake_key(headers) {
        Ok(key) => key,
        Err(refused) => return *refused,
    };

    if !super::connect::origin_allowed(app, headers, peer) {
        return text(StatusCode::FORBIDDEN, "");
    }
    let admission = match super::connect::admit(app, peer) {
        Ok(admission) => admission,
        Err(refused) => return *refused,
    };
    let (params, vsn) = super::connect::query_params(request.uri().query());
    let Some(serializer) = Serializer::from_vsn(vsn.as_deref()) else {
        tracing::info!(%peer, vsn = ?vsn, "refused: unknown serializer version");
        return text(StatusCode::FORBIDDEN, "");
    };

    let offered = subprotocols(headers);
    let auth_token = match offered.iter().find_map(|p| p.strip_prefix(AUTH_TOKEN_PREFIX)) {
        None => None,
        // phoenix.js encodes with btoa (the standard alphabet, padding
        // dropped); accept the URL-safe alphabet too.
        Some(encoded) => match STANDARD_NO_PAD
            .decode(encoded.trim_end_matches('='))
            .or_else(|_| URL_SAFE_NO_PAD.decode(encoded.trim_end_matches('=')))
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
        {
            Some(token) => Some(token),
            None => {
                return text(
                    StatusCode::BAD_REQUEST,
                    "the authToken subprotocol (base64url.bearer.phx.<token>) is not valid base64 text\n",
                );
            }
        },
    };
    let info = ConnectInfo {
        peer_address: Some(peer.to_string()),
        origin: header_str(headers, header::ORIGIN).map(str::to_owned),
        user_agent: header_str(headers, header::USER_AGENT).map(str::to_owned),
        auth_token,
        x_headers: headers
            .iter()
            .filter(|(name, _)| name.as_str().starts_with("x-"))
            .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
            .collect(),
        uri: request.uri().to_string(),
    };

    let Some((assigns, socket_id)) = super::connect::connect(app, &params, &info, peer) else {
        return text(StatusCode::FORBIDDEN, "");
    };

    let mut response = switching_protocols(&key);
    if offered.iter().any(|p| p == "phoenix") {
        response.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("phoenix"));
    }

    let key = socket::next_socket_key();
    let accepted = Accepted {
        app: app.clone(),
        key,
        serializer,
        assigns,
        counted: socket::Counted::new(app, key, socket_id.as_deref()),
        socket_id,
        admission,
    };
    let config = config(app.limits.max_frame_bytes);
    spawn(server, request, peer, config, |ws, shutdown| socket::serve(ws, accepted, shutdown));
    response
}
