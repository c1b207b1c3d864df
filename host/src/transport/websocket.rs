//! The WebSocket transport: the upgrade handshake, `connect` through the
//! socket plugin, then a socket task per connection.
//!
//! The socket plugin decides before the upgrade: a refused connection gets
//! HTTP 403 and never becomes a WebSocket, as in Phoenix.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::{Body, Server, text};
use crate::app::App;
use crate::protocol::Serializer;
use crate::runtime::ConnectInfo;
use crate::socket::{self, Accepted};

/// Bytes read from a socket at a time.
const READ_BUFFER: usize = 1024;

/// The prefix phoenix.js puts before the `authToken` in the subprotocol list.
const AUTH_TOKEN_PREFIX: &str = "base64url.bearer.phx.";

fn header_str<'h>(headers: &'h HeaderMap, name: header::HeaderName) -> Option<&'h str> {
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

pub(super) fn upgrade(server: &Arc<Server>, app: &Arc<App>, mut request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let headers = request.headers();
    let key = match header_str(headers, header::SEC_WEBSOCKET_KEY) {
        Some(key)
            if has_token(headers, header::CONNECTION, "upgrade")
                && has_token(headers, header::UPGRADE, "websocket")
                && header_str(headers, header::SEC_WEBSOCKET_VERSION) == Some("13") =>
        {
            key.to_owned()
        }
        _ => {
            return text(
                StatusCode::BAD_REQUEST,
                "expected a WebSocket upgrade (GET with Upgrade: websocket, Sec-WebSocket-Version: 13)\n",
            );
        }
    };

    if !super::connect::origin_allowed(app, headers, peer) {
        return text(StatusCode::FORBIDDEN, "");
    }
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

    let mut response = text(StatusCode::SWITCHING_PROTOCOLS, "");
    let response_headers = response.headers_mut();
    response_headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    response_headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        response_headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    if offered.iter().any(|p| p == "phoenix") {
        response_headers.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("phoenix"));
    }

    let accepted = Accepted {
        app: app.clone(),
        key: socket::next_socket_key(),
        serializer,
        assigns,
        socket_id,
    };
    // tungstenite zero-fills its whole read buffer before each read: the
    // 128 KiB default costs a large memset per wake-up and per socket
    // memory. Client frames are small; the buffer grows for big ones.
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(app.limits.max_frame_bytes))
        .max_frame_size(Some(app.limits.max_frame_bytes));
    let shutdown = server.shutdown.clone();
    let alive = server.sockets_alive.clone();
    tokio::spawn(async move {
        let _alive = alive;
        match hyper::upgrade::on(&mut request).await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
                socket::serve(ws, accepted, shutdown).await;
            }
            Err(error) => tracing::debug!(%error, %peer, "WebSocket upgrade failed"),
        }
    });
    response
}
