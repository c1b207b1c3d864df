//! The long-poll transport at `<socket_path>/longpoll`, as Phoenix's.
//!
//! A session is a socket task like a WebSocket's, whose frames arrive in
//! POST bodies and leave through GET polls. Every answer is HTTP 200 with
//! the real status in the JSON body: the first GET connects through the
//! socket plugin and answers `410` with a session token (or `403`); a GET
//! with that token returns the queued frames at once (`200`), or `204`
//! after an empty window; a POST delivers one frame (`application/json`)
//! or several (`application/x-ndjson`, one per line). A session nobody polls
//! for two windows ends, and its channels terminate.
//!
//! In a cluster a session lives on the node that opened it, and its token
//! names that node: a request that lands on another node (no sticky
//! sessions at the load balancer) is forwarded there over Redis and
//! answered from there ([`forward`]), as Phoenix forwards it over PubSub.
//! When that node cannot be reached, a poll opens a new session and a post
//! gets `410`, as in Phoenix: phoenix.js then reconnects and rejoins.

mod forward;

pub use forward::Forwarder;


use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::{Body, Server, text};
use crate::app::App;
use crate::protocol::{Serializer, json_string};
use crate::runtime::ConnectInfo;
use crate::socket::{self, Accepted, Transport};

/// How long an empty poll waits for frames by default: Phoenix's
/// `window_ms` (`[server] longpoll_window_ms`).
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);

/// The salt session tokens are signed with.
const SALT: &str = "plume longpoll";

/// Frames POSTed but not yet taken by the socket task.
const INBOUND_QUEUE: usize = 1024;

/// The live long-poll sessions of a server.
pub struct Sessions {
    sessions: Mutex<HashMap<u64, Arc<Session>>>,
    /// How long an empty poll waits; a session nobody polls for two
    /// windows ends.
    window: Duration,
}

/// Where the session a request names is.
enum Found {
    /// On this node.
    Here(Arc<Session>, String),
    /// On another node of the cluster.
    There(forward::Target),
    /// Nowhere: no token, a forged or expired one, or a session that ended.
    Nowhere,
}

/// A session token's data: the node that holds the session (empty on a
/// server that is no cluster) and the session's key there.
#[derive(serde::Serialize, serde::Deserialize)]
struct SessionId(String, u64);

struct Session {
    /// Frames from POSTs, for the socket task.
    inbound: mpsc::Sender<Message>,
    /// Encoded frames for the next poll.
    outbox: Mutex<VecDeque<String>>,
    /// Wakes a waiting poll.
    ready: Notify,
    last_seen: Mutex<Instant>,
    closed: AtomicBool,
    /// Frames a session may hold for a client that stopped polling.
    capacity: usize,
}

impl Session {
    fn touch(&self) {
        *self.last_seen.lock() = Instant::now();
    }
}

/// The socket task's side of a session.
struct SessionTransport {
    session: Arc<Session>,
    inbound: mpsc::Receiver<Message>,
    expire_after: Duration,
}

impl Transport for SessionTransport {
    async fn recv(&mut self) -> Option<Result<Message, WsError>> {
        loop {
            let deadline = *self.session.last_seen.lock() + self.expire_after;
            tokio::select! {
                frame = self.inbound.recv() => return frame.map(Ok),
                () = tokio::time::sleep_until(deadline.into()) => {
                    if *self.session.last_seen.lock() + self.expire_after <= Instant::now() {
                        return None;
                    }
                }
            }
        }
    }

    async fn send(&mut self, messages: &mut Vec<Message>) -> Result<(), WsError> {
        {
            let mut outbox = self.session.outbox.lock();
            for message in messages.drain(..) {
                match message {
                    Message::Text(text) => outbox.push_back(text.to_string()),
                    // phoenix.js reads every polled message as JSON text.
                    Message::Binary(_) => tracing::debug!("a binary message is not sent over long-poll"),
                    _ => {}
                }
            }
            if outbox.len() > self.session.capacity {
                // The client stopped polling: end the session rather than
                // hold its frames without bound.
                return Err(WsError::Io(std::io::Error::other("the long-poll client is not polling")));
            }
        }
        self.session.ready.notify_one();
        Ok(())
    }

    async fn close(&mut self, _frame: CloseFrame) {
        self.session.closed.store(true, Ordering::Relaxed);
        self.session.ready.notify_one();
    }
}

fn json_response(body: String) -> Response<Body> {
    let mut response = text(StatusCode::OK, body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    response
}

fn status_body(status: u16) -> String {
    json!({ "status": status }).to_string()
}

fn status_only(status: u16) -> Response<Body> {
    json_response(status_body(status))
}

fn poll_body(status: u16, token: &str, messages: &[String]) -> String {
    let frames: Vec<String> = messages.iter().map(|m| json_string(m)).collect();
    format!(
        r#"{{"messages":[{}],"status":{status},"token":{}}}"#,
        frames.join(","),
        json_string(token)
    )
}

impl Sessions {
    /// No sessions yet; an empty poll waits `window`.
    pub fn new(window: Duration) -> Sessions {
        Sessions {
            sessions: Mutex::default(),
            window,
        }
    }

    /// The session key `session` names here, if it is live.
    fn local(&self, key: u64) -> Option<Arc<Session>> {
        let session = self.sessions.lock().get(&key).cloned()?;
        (!session.closed.load(Ordering::Relaxed)).then_some(session)
    }
}

/// This node's name in session tokens: its cluster id, or empty.
fn this_node(server: &Server) -> &str {
    server.cluster.as_ref().map_or("", |cluster| cluster.node())
}

/// The session a request's last `token` param names.
fn find(server: &Server, app: &App, request: &Request<Incoming>) -> Found {
    let Some(token) = form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
        .filter(|(name, _)| name == "token")
        .last()
        .map(|(_, value)| value.into_owned())
    else {
        return Found::Nowhere;
    };
    let Some(SessionId(node, key)) = app
        .tokens
        .verify(SALT, &token, Some(86_400), crate::clock::unix_ms())
        .ok()
        .and_then(|data| serde_json::from_value(data).ok())
    else {
        return Found::Nowhere;
    };
    if node == this_node(server) {
        return match server.longpoll.local(key) {
            Some(session) => Found::Here(session, token),
            None => Found::Nowhere,
        };
    }
    match &server.forwarder {
        Some(_) => Found::There(forward::Target { node, session: key, token }),
        None => Found::Nowhere,
    }
}

pub(super) async fn handle(server: &Arc<Server>, app: &Arc<App>, request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let found = find(server, app, &request);
    let method = request.method().clone();
    match (method, found) {
        (Method::GET, Found::Here(session, token)) => json_response(poll(&session, &token, server.longpoll.window).await),
        (Method::GET, Found::There(target)) => match forward::poll_elsewhere(server, app, target).await {
            Some(body) => json_response(body),
            None => open(server, app, &request, peer),
        },
        (Method::GET, Found::Nowhere) => open(server, app, &request, peer),
        (Method::POST, Found::Here(session, _)) => match read_post(app, request).await {
            Ok((body, ndjson)) => json_response(post(app, &session, &body, ndjson).await),
            Err(status) => status_only(status),
        },
        (Method::POST, Found::There(target)) => match read_post(app, request).await {
            Ok((body, ndjson)) => json_response(forward::post_elsewhere(server, app, target, body, ndjson).await.unwrap_or_else(|| status_body(410))),
            Err(status) => status_only(status),
        },
        (Method::POST, Found::Nowhere) => status_only(410),
        _ => text(StatusCode::METHOD_NOT_ALLOWED, "long-poll takes GET and POST\n"),
    }
}

/// A new session: connect through the socket plugin, start its socket task.
fn open(server: &Arc<Server>, app: &Arc<App>, request: &Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    if !super::connect::origin_allowed(app, request.headers(), peer) {
        return status_only(403);
    }
    let admission = match super::connect::admit(app, peer) {
        Ok(admission) => admission,
        Err(refused) => return *refused,
    };
    let query = socket_query(request.uri().query().unwrap_or(""));
    let (params, vsn) = super::connect::query_params(Some(&query));
    let Some(serializer) = Serializer::from_vsn(vsn.as_deref()) else {
        return status_only(403);
    };
    let headers = request.headers();
    let info = ConnectInfo {
        peer_address: Some(peer.to_string()),
        origin: headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_owned),
        user_agent: headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned),
        auth_token: None,
        x_headers: Vec::new(),
        uri: request.uri().to_string(),
    };
    let Some((assigns, socket_id)) = super::connect::connect(app, &params, &info, peer) else {
        return status_only(403);
    };
    let key = socket::next_socket_key();
    let id = SessionId(this_node(server).to_owned(), key);
    let Ok(token) = app.tokens.sign(SALT, &json!(id), crate::clock::unix_ms(), 86_400) else {
        return status_only(500);
    };
    let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
    let session = Arc::new(Session {
        inbound: tx,
        outbox: Mutex::new(VecDeque::new()),
        ready: Notify::new(),
        last_seen: Mutex::new(Instant::now()),
        closed: AtomicBool::new(false),
        capacity: app.limits.outbound_queue,
    });
    server.longpoll.sessions.lock().insert(key, session.clone());
    let transport = SessionTransport {
        session,
        inbound: rx,
        expire_after: 2 * server.longpoll.window,
    };
    let accepted = Accepted {
        app: app.clone(),
        key,
        serializer,
        assigns,
        counted: crate::socket::Counted::new(app, key, socket_id.as_deref()),
        socket_id,
        admission,
    };
    let shutdown = server.shutdown.clone();
    let alive = server.sockets_alive.clone();
    let server = server.clone();
    tokio::spawn(async move {
        let _alive = alive;
        socket::serve(transport, accepted, shutdown).await;
        if let Some(session) = server.longpoll.sessions.lock().remove(&key) {
            session.closed.store(true, Ordering::Relaxed);
            session.ready.notify_one();
        }
    });
    json_response(poll_body(410, &token, &[]))
}

/// The socket's own params of a long-poll query: phoenix.js appends the
/// session token as one more `token` param after them, and a session that
/// could not be resumed (its node is gone) starts over with the socket's
/// params, not with the stale session token in place of the socket's
/// `token`.
fn socket_query(query: &str) -> String {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let tokens = pairs.iter().filter(|(name, _)| name == "token").count();
    let last_token = pairs.iter().rposition(|(name, _)| name == "token");
    let kept = pairs
        .iter()
        .enumerate()
        .filter(|(at, _)| tokens < 2 || Some(*at) != last_token)
        .map(|(_, pair)| pair);
    form_urlencoded::Serializer::new(String::new()).extend_pairs(kept).finish()
}

/// Frames queued for the session, at once, or 204 after an empty window:
/// the response's body.
async fn poll(session: &Session, token: &str, window: Duration) -> String {
    session.touch();
    let deadline = tokio::time::Instant::now() + window;
    loop {
        let notified = session.ready.notified();
        {
            let mut outbox = session.outbox.lock();
            if !outbox.is_empty() {
                let messages: Vec<String> = outbox.drain(..).collect();
                session.touch();
                return poll_body(200, token, &messages);
            }
        }
        if session.closed.load(Ordering::Relaxed) {
            return status_body(410);
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            session.touch();
            return poll_body(204, token, &[]);
        }
    }
}

/// One POSTed line as a frame. phoenix.js's long-poll sends a binary
/// message (an `ArrayBuffer` payload) as a base64 line; JSON messages start
/// with `[` or `{`. A line that is neither stays text, to be answered as
/// malformed.
fn line_frame(line: &str) -> Message {
    use base64::Engine as _;
    let json = line.trim_start().starts_with(['[', '{']);
    if !json && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(line.trim()) {
        return Message::Binary(bytes.into());
    }
    Message::Text(line.into())
}

/// A POST's body, and whether it holds one frame per line; or the status
/// that refuses it.
async fn read_post(app: &App, request: Request<Incoming>) -> Result<(String, bool), u16> {
    let ndjson = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-ndjson"));
    let limit = app.limits.max_frame_bytes.saturating_mul(16);
    let body: Bytes = match Limited::new(request.into_body(), limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Err(413),
    };
    let body = String::from_utf8(body.to_vec()).map_err(|_| 400u16)?;
    Ok((body, ndjson))
}

/// Deliver a POST's frames to the session's socket task: the response's
/// body.
async fn post(app: &App, session: &Session, body: &str, ndjson: bool) -> String {
    session.touch();
    let frames: Vec<&str> = if ndjson {
        body.lines().filter(|line| !line.trim().is_empty()).collect()
    } else {
        vec![body]
    };
    for frame in frames {
        if frame.len() > app.limits.max_frame_bytes {
            return status_body(413);
        }
        if session.inbound.send(line_frame(frame)).await.is_err() {
            return status_body(410);
        }
    }
    status_body(200)
}

#[cfg(test)]
mod tests {
    use super::socket_query;

    #[test]
    fn a_stale_session_token_is_left_out_of_the_socket_params() {
        assert_eq!(socket_query("token=app&vsn=2.0.0&token=session"), "token=app&vsn=2.0.0");
        assert_eq!(socket_query("token=app&vsn=2.0.0"), "token=app&vsn=2.0.0");
        assert_eq!(socket_query("vsn=2.0.0&user=a%20b"), "vsn=2.0.0&user=a+b");
    }
}
