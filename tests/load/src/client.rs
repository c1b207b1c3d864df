//! Opening WebSockets to the server under test and joining topics on them.
//!
//! Sockets are spread over several loopback source addresses (127.0.0.1,
//! 127.0.0.2, ...; the whole 127/8 reaches `lo`), bound before connecting,
//! so that tens of thousands of connections and their TIME_WAIT leftovers
//! never exhaust one address's ephemeral ports. Only loopback targets are
//! accepted: a load test never leaves this machine.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use plume::token::{TokenError, Tokens};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::wire::{self, Status};

/// A client WebSocket.
pub type Ws = WebSocketStream<TcpStream>;

/// How long one TCP connect plus WebSocket handshake may take, unless a
/// scenario says otherwise ([`Target::with_connect_timeout`]).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long the tool waits for any one reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// The salt of UserSocket tokens.
const SOCKET_SALT: &str = "user socket";

/// Per-socket read buffer. tungstenite zero-fills the whole buffer before
/// every read, so its 128 KiB default would cost a 128 KiB memset per
/// received frame of a few dozen bytes (and 128 KiB of memory per socket).
const READ_BUFFER: usize = 4 * 1024;

/// Why a socket could not be opened or did not get its answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "{0:?} is not a ws:// URL of a loopback address: give e.g. ws://127.0.0.1:4000/socket/websocket (the load tool only targets this machine)"
    )]
    NotLoopback(String),
    #[error("cannot sign a socket token: {0}")]
    Token(#[from] TokenError),
    #[error("TCP connect from {from} to {to} failed: {error}")]
    Connect {
        from: IpAddr,
        to: SocketAddr,
        error: io::Error,
    },
    #[error("WebSocket handshake with {to} failed: {error}")]
    Handshake { to: SocketAddr, error: WsError },
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("the server refused to join {topic:?}: {response}")]
    JoinRefused { topic: String, response: String },
    #[error("the server closed the connection")]
    Closed,
    #[error("WebSocket error: {0}")]
    Ws(#[from] WsError),
}

/// The server under test: where its socket endpoint is, the source
/// addresses to connect from, and how to sign tokens for it.
pub struct Target {
    addr: SocketAddr,
    /// The endpoint's path, and query if the URL had one.
    path: String,
    sources: Vec<IpAddr>,
    tokens: Tokens,
    /// The server's process, for its CPU time and memory when known.
    pub server_pid: Option<u32>,
    connect_timeout: Duration,
}

/// The secret tokens are signed with unless a scenario sets one:
/// `SECRET_KEY_BASE` when set (the same variable the server reads, so a
/// server started with `--config` and its secret in the environment can be
/// measured), else the development secret the demo app accepts.
fn default_secret() -> String {
    std::env::var("SECRET_KEY_BASE")
        .ok()
        .filter(|secret| !secret.is_empty())
        .unwrap_or_else(|| plume::config::DEV_SECRET.to_owned())
}

impl Target {
    /// A target from a `ws://HOST:PORT/PATH` URL of a loopback address
    /// (`localhost` counts), reached from `sources` loopback addresses.
    pub fn new(url: &str, sources: usize, server_pid: Option<u32>) -> Result<Target, ClientError> {
        let not_loopback = || ClientError::NotLoopback(url.to_owned());
        let rest = url.strip_prefix("ws://").ok_or_else(not_loopback)?;
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, "/socket/websocket"),
        };
        let addr = match authority.strip_prefix("localhost:") {
            Some(port) => SocketAddr::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                port.parse().map_err(|_| not_loopback())?,
            ),
            None => authority.parse().map_err(|_| not_loopback())?,
        };
        if !addr.ip().is_loopback() {
            return Err(not_loopback());
        }
        let sources = match addr {
            SocketAddr::V4(_) => (1..=sources.clamp(1, 254) as u8)
                .map(|n| IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
                .collect(),
            SocketAddr::V6(_) => vec![IpAddr::V6(Ipv6Addr::LOCALHOST)],
        };
        Ok(Target {
            addr,
            path: path.to_owned(),
            sources,
            tokens: Tokens::new(default_secret().as_bytes()),
            server_pid,
            connect_timeout: CONNECT_TIMEOUT,
        })
    }

    /// Sign tokens with `secret`, the server's `secret_key_base`, instead
    /// of the development secret (which only the demo app accepts).
    pub fn with_secret(mut self, secret: &str) -> Target {
        self.tokens = Tokens::new(secret.as_bytes());
        self
    }

    /// Give each TCP connect plus WebSocket handshake `timeout` instead of
    /// [`CONNECT_TIMEOUT`]: a server busy with a quadratic fan-out (a
    /// 10,000-member presence storm) may take longer to answer one, and
    /// phoenix.js itself waits as long as the browser does.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Target {
        self.connect_timeout = timeout;
        self
    }

    /// Another server reached the same way as this one (as many source
    /// addresses, tokens signed with the same secret): a second node of a
    /// cluster, say.
    pub fn sibling(&self, url: &str, server_pid: Option<u32>) -> Result<Target, ClientError> {
        let mut sibling = Target::new(url, self.sources.len(), server_pid)?;
        sibling.tokens = self.tokens.clone();
        sibling.connect_timeout = self.connect_timeout;
        Ok(sibling)
    }

    /// The endpoint's URL, without credentials, for reports.
    pub fn url(&self) -> String {
        format!("ws://{}{}", self.addr, self.path)
    }

    /// The connect URL for user `user_id`: a UserSocket token signed with
    /// the development secret, and the V2 serializer.
    pub fn socket_url(&self, user_id: u64) -> Result<String, ClientError> {
        let token = self.user_token(user_id)?;
        let separator = if self.path.contains('?') { '&' } else { '?' };
        Ok(format!(
            "ws://{}{}{separator}token={token}&vsn=2.0.0",
            self.addr, self.path
        ))
    }

    /// A UserSocket token for `user_id`, signed with the development
    /// secret (also what ChatChannel's join payload carries).
    pub fn user_token(&self, user_id: u64) -> Result<String, ClientError> {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Ok(self
            .tokens
            .sign(SOCKET_SALT, &serde_json::json!(user_id), now_ms, 86_400)?)
    }

    /// Opens socket number `index` (which picks its source address) at
    /// `url`, a [`Target::socket_url`].
    pub async fn open(&self, index: usize, url: &str) -> Result<Ws, ClientError> {
        let from = self.sources[index % self.sources.len()];
        let to = self.addr;
        let connect_error = |error| ClientError::Connect { from, to, error };
        let socket = match to {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(connect_error)?;
        socket
            .bind(SocketAddr::new(from, 0))
            .map_err(connect_error)?;
        let handshake = async {
            let stream = socket.connect(to).await.map_err(connect_error)?;
            stream.set_nodelay(true).map_err(connect_error)?;
            let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
            let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config))
                .await
                .map_err(|error| ClientError::Handshake { to, error })?;
            Ok(ws)
        };
        tokio::time::timeout(self.connect_timeout, handshake)
            .await
            .map_err(|_| ClientError::Timeout("the TCP connect and WebSocket handshake"))?
    }
}

/// Joins `topic` on `ws` (join_ref [`wire::JOIN_REF`]) and waits for an ok.
pub async fn join(ws: &mut Ws, topic: &str) -> Result<(), ClientError> {
    ws.send(Message::text(wire::join(topic))).await?;
    match await_reply(ws, wire::JOIN_REF, Instant::now() + REPLY_TIMEOUT).await? {
        Status::Ok => Ok(()),
        Status::Error(response) => Err(ClientError::JoinRefused {
            topic: topic.to_owned(),
            response,
        }),
    }
}

/// Reads frames until the reply to `reference` arrives, skipping anything
/// else, until `deadline`.
pub async fn await_reply(
    ws: &mut Ws,
    reference: u64,
    deadline: Instant,
) -> Result<Status, ClientError> {
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| ClientError::Timeout("a reply"))?;
        match frame {
            Some(Ok(Message::Text(text))) => {
                if let Some(reply) = wire::reply(&text)
                    && reply.reference == reference
                {
                    return Ok(reply.status);
                }
            }
            Some(Ok(Message::Close(_))) | None => return Err(ClientError::Closed),
            Some(Ok(_)) => {}
            Some(Err(error)) => return Err(error.into()),
        }
    }
}

/// A socket the tool opened and joined, with its index in the run.
pub struct Opened {
    pub index: usize,
    pub ws: Ws,
}

/// Sockets opened at once, and the first failure if some were not.
pub struct Crowd {
    pub sockets: Vec<Opened>,
    pub failed: usize,
    pub first_error: Option<ClientError>,
}

impl Crowd {
    /// All the sockets, or an error that says how many failed and why.
    pub fn all(self) -> anyhow::Result<Vec<Opened>> {
        match self.first_error {
            None => Ok(self.sockets),
            Some(error) => Err(anyhow::anyhow!(
                "{} of {} sockets failed to connect or join; the first failure: {error}",
                self.failed,
                self.failed + self.sockets.len()
            )),
        }
    }
}

/// Opens `count` sockets, socket `i` as user `first_user + i` and joined to
/// `topic_of(i)` (or to nothing when that is `None`), at most `concurrency`
/// handshakes at a time. Tokens are signed before the first connect so that
/// signing is not timed.
pub async fn open_joined(
    target: &Arc<Target>,
    count: usize,
    first_user: u64,
    concurrency: usize,
    topic_of: impl Fn(usize) -> Option<String>,
) -> Result<Crowd, ClientError> {
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for index in 0..count {
        let url = target.socket_url(first_user + index as u64)?;
        let topic = topic_of(index);
        let target = target.clone();
        let gate = gate.clone();
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let mut ws = target.open(index, &url).await?;
            if let Some(topic) = topic {
                join(&mut ws, &topic).await?;
            }
            Ok::<_, ClientError>(Opened { index, ws })
        });
    }
    let mut crowd = Crowd {
        sockets: Vec::with_capacity(count),
        failed: 0,
        first_error: None,
    };
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(opened)) => crowd.sockets.push(opened),
            Ok(Err(error)) => {
                crowd.failed += 1;
                crowd.first_error.get_or_insert(error);
            }
            Err(panic) => {
                crowd.failed += 1;
                crowd
                    .first_error
                    .get_or_insert(ClientError::Ws(WsError::Io(io::Error::other(
                        panic.to_string(),
                    ))));
            }
        }
    }
    crowd.sockets.sort_by_key(|opened| opened.index);
    Ok(crowd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls_are_targets() {
        let target =
            Target::new("ws://127.0.0.1:4000/socket/websocket", 8, None).expect("loopback");
        assert_eq!(target.url(), "ws://127.0.0.1:4000/socket/websocket");
        assert_eq!(target.sources.len(), 8);
        assert!(Target::new("ws://localhost:4000", 8, None).is_ok());
        assert!(Target::new("ws://[::1]:4000/socket/websocket", 8, None).is_ok());
        assert!(matches!(
            Target::new("ws://10.0.0.1:4000/socket/websocket", 8, None),
            Err(ClientError::NotLoopback(_))
        ));
        assert!(matches!(
            Target::new("wss://127.0.0.1:4000/", 8, None),
            Err(ClientError::NotLoopback(_))
        ));
        assert!(matches!(
            Target::new("ws://example.com:80/", 8, None),
            Err(ClientError::NotLoopback(_))
        ));
    }

    #[test]
    fn socket_urls_carry_a_token_and_the_v2_serializer() {
        let target =
            Target::new("ws://127.0.0.1:4000/socket/websocket", 1, None).expect("loopback");
        let url = target.socket_url(7).expect("signed");
        assert!(
            url.starts_with("ws://127.0.0.1:4000/socket/websocket?token=SFMyNTY."),
            "{url}"
        );
        assert!(url.ends_with("&vsn=2.0.0"));
    }
}
