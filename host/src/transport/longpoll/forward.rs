//! Long-poll requests that land on a node other than their session's.
//!
//! The node that got the request publishes it on the session node's own
//! channel and waits for the answer on its own: a poll for as long as a
//! poll waits (the window) and a little more, a post for
//! [`POST_PATIENCE`]. The session's node serves it exactly as if the client
//! had asked it, and publishes the response body back. Nothing goes through
//! Redis per poll but these two messages; a node that never answers (dead,
//! or cut off) costs the client one new session, as in Phoenix.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::{DEFAULT_WINDOW, post, poll, status_body};
use crate::app::App;
use crate::cluster::Cluster;
use crate::transport::Server;

/// How long a forwarded post waits for the session's node.
const POST_PATIENCE: Duration = Duration::from_secs(2);

/// How much longer than the window a forwarded poll waits.
const POLL_GRACE: Duration = Duration::from_secs(2);

/// A session on another node.
pub(in crate::transport) struct Target {
    pub node: String,
    pub session: u64,
    pub token: String,
}

/// What nodes send each other about long-poll sessions, on their own
/// channels.
#[derive(Serialize, Deserialize)]
#[serde(tag = "t")]
enum Forwarded {
    #[serde(rename = "lp_poll")]
    Poll {
        id: u64,
        from: String,
        tenant: String,
        session: u64,
        token: String,
    },
    #[serde(rename = "lp_post")]
    Post {
        id: u64,
        from: String,
        tenant: String,
        session: u64,
        body: String,
        ndjson: bool,
    },
    #[serde(rename = "lp_reply")]
    Reply {
        id: u64,
        body: String,
    },
}

/// A node's side of forwarding: requests it sent and waits for, and the
/// server that answers the ones it receives.
pub struct Forwarder {
    cluster: Arc<Cluster>,
    server: OnceLock<Weak<Server>>,
    waiting: Mutex<HashMap<u64, oneshot::Sender<String>>>,
    next: AtomicU64,
}

impl Forwarder {
    pub fn new(cluster: Arc<Cluster>) -> Arc<Forwarder> {
        Arc::new(Forwarder {
            cluster,
            server: OnceLock::new(),
            waiting: Mutex::default(),
            next: AtomicU64::new(1),
        })
    }

    /// Answer the requests other nodes forward to `server`'s sessions.
    pub fn serve(self: &Arc<Self>, server: &Arc<Server>) {
        let _ = self.server.set(Arc::downgrade(server));
        let forwarder = Arc::downgrade(self);
        self.cluster.on_node_message(Arc::new(move |bytes| {
            if let Some(forwarder) = forwarder.upgrade() {
                forwarder.receive(&bytes);
            }
        }));
    }

    /// How long an empty poll waits on this node.
    fn window(&self) -> Duration {
        self.server
            .get()
            .and_then(Weak::upgrade)
            .map_or(DEFAULT_WINDOW, |server| server.longpoll.window)
    }

    fn receive(self: &Arc<Self>, bytes: &[u8]) {
        let message = match serde_json::from_slice::<Forwarded>(bytes) {
            Ok(message) => message,
            Err(error) => {
                tracing::debug!(%error, "a node message this node cannot read");
                return;
            }
        };
        match message {
            Forwarded::Reply { id, body } => {
                if let Some(waiter) = self.waiting.lock().remove(&id) {
                    let _ = waiter.send(body);
                }
            }
            Forwarded::Poll { id, from, tenant, session, token } => {
                let forwarder = self.clone();
                tokio::spawn(async move {
                    let window = forwarder.window();
                    let body = match forwarder.session(&tenant, session) {
                        Some((_, session)) => poll(&session, &token, window).await,
                        None => status_body(410),
                    };
                    forwarder.reply(&from, id, body);
                });
            }
            Forwarded::Post { id, from, tenant, session, body, ndjson } => {
                let forwarder = self.clone();
                tokio::spawn(async move {
                    let body = match forwarder.session(&tenant, session) {
                        Some((app, session)) => post(&app, &session, &body, ndjson).await,
                        None => status_body(410),
                    };
                    forwarder.reply(&from, id, body);
                });
            }
        }
    }

    /// A live session of this node, with its app.
    fn session(&self, tenant: &str, key: u64) -> Option<(Arc<App>, Arc<super::Session>)> {
        let server = self.server.get()?.upgrade()?;
        let app = server.apps.iter().find(|app| app.id == tenant)?.clone();
        Some((app, server.longpoll.local(key)?))
    }

    fn reply(&self, to: &str, id: u64, body: String) {
        let message = serde_json::to_vec(&Forwarded::Reply { id, body }).unwrap_or_default();
        if let Err(error) = self.cluster.send_to_node(to, message) {
            tracing::debug!(%error, node = to, "a long-poll answer could not be sent back");
        }
    }

    /// Send a request to `node` and wait up to `patience` for its answer.
    async fn ask(&self, node: &str, make: impl FnOnce(u64, String) -> Forwarded, patience: Duration) -> Option<String> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().insert(id, tx);
        let message = serde_json::to_vec(&make(id, self.cluster.node().to_owned())).unwrap_or_default();
        let answer = match self.cluster.ask_node(node, message).await {
            Ok(true) => tokio::time::timeout(patience, rx).await.ok().and_then(Result::ok),
            // Nobody listens on that node's channel: it is gone.
            Ok(false) | Err(_) => None,
        };
        self.waiting.lock().remove(&id);
        answer
    }
}

/// A poll of a session on another node: its response body, or `None`
/// when that node did not answer.
pub(super) async fn poll_elsewhere(server: &Server, app: &App, target: Target) -> Option<String> {
    let forwarder = server.forwarder.as_ref()?;
    let tenant = app.id.clone();
    forwarder
        .ask(
            &target.node,
            |id, from| Forwarded::Poll {
                id,
                from,
                tenant,
                session: target.session,
                token: target.token,
            },
            // Nodes of a cluster share their configuration: the other
            // node's window is this one's.
            server.longpoll.window + POLL_GRACE,
        )
        .await
}

/// A post to a session on another node: its response body, or `None` when
/// that node did not answer.
pub(super) async fn post_elsewhere(server: &Server, app: &App, target: Target, body: String, ndjson: bool) -> Option<String> {
    let forwarder = server.forwarder.as_ref()?;
    let tenant = app.id.clone();
    forwarder
        .ask(
            &target.node,
            |id, from| Forwarded::Post {
                id,
                from,
                tenant,
                session: target.session,
                body,
                ndjson,
            },
            POST_PATIENCE,
        )
        .await
}
