//! The WebSocket echo endpoint: every text and binary message comes back as
//! it arrived. It exists so that a WebSocket conformance suite (Autobahn,
//! run by `tests/autobahn.rs`) can exercise plume's own WebSocket stack.
//!
//! Why an endpoint in the server rather than a test-only binary: what the
//! suite must judge is the stack production sockets run on, the accept loop,
//! hyper's HTTP/1 connection and upgrade, the handshake checks, tungstenite's
//! settings (the small read buffer included) and the socket [`Transport`]
//! that reads, writes and fails connections. Here all of them are the very
//! functions `/socket/websocket` uses; only the Phoenix protocol on top is
//! left out, because the suite speaks plain WebSocket. The endpoint is off
//! unless `[server] websocket_echo_path` names a path, so no deployment
//! serves it by accident.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::websocket;
use super::{Body, Server};
use crate::socket::Transport;

/// The largest message (and frame) the echo endpoint takes: Autobahn's
/// biggest (section 9) is 16 MiB. Phoenix sockets keep their own, much
/// smaller, `[limits] max_frame_bytes`.
const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// How long closing at shutdown may wait for the close frame to be written.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Accept a WebSocket on the echo path and echo on it until it closes.
pub(super) fn upgrade(server: &Arc<Server>, request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let key = match websocket::handshake_key(request.headers()) {
        Ok(key) => key,
        Err(refused) => return *refused,
    };
    let response = websocket::switching_protocols(&key);
    websocket::spawn(server, request, peer, websocket::config(MAX_MESSAGE_BYTES), echo);
    response
}

/// Send every data message back; pings are answered by tungstenite, closes
/// and broken frames by the [`Transport`].
async fn echo<T: Transport>(mut ws: T, mut shutdown: watch::Receiver<bool>) {
    let mut outbox = Vec::with_capacity(1);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => {
                let frame = CloseFrame { code: CloseCode::Restart, reason: "server restarting".into() };
                let _ = tokio::time::timeout(CLOSE_GRACE, ws.close(frame)).await;
                return;
            }
            frame = ws.recv() => match frame {
                Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                    outbox.push(message);
                    if ws.send(&mut outbox).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
