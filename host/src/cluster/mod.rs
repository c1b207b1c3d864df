//! A cluster: several plume nodes that act as one server, over Redis.
//!
//! A node joins a cluster by connecting to its Redis (`[cluster] redis_url`
//! or `PLUME_REDIS_URL`). Redis is the only thing nodes share; they never
//! talk to each other directly, so there is no membership protocol to get
//! wrong, only Redis's own (see `docs/cluster.md` for the design and its
//! failure cases):
//!
//! - **Broadcasts** go over one Redis channel per topic, which a node
//!   listens to only while its own sockets are subscribed
//!   ([`crate::pubsub::ClusterBroker`]); on a Redis Cluster they are sharded
//!   ([`names`]).
//! - **Presences** live in Redis hashes, each entry owned by the node that
//!   tracks it; every node keeps a copy of the topics its sockets joined
//!   ([`crate::presence`]).
//! - **Liveness**: every node writes a heartbeat every [`HEARTBEAT`]; a node
//!   silent for `down_after` (10 s by default) is down, and the first live
//!   node to claim it removes what it owned ([`Member::sweep`]): its
//!   presences leave, with a `leaves` diff, on every node.
//!
//! This module is the floor under the broker: it knows Redis, topics and
//! node ids, and nothing of sockets, channels or plugins. What the layers
//! above need to hear (messages, reconnects, dead nodes) they register as a
//! [`Member`].

pub mod envelope;
mod link;
pub mod names;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::RwLock;
use redis::Cmd;

pub use link::{Incoming, LinkError, LinkFigures};
pub use names::{Layout, Names};

use link::{Connector, Link, LinkEvents};

/// What a node does with a message sent to it alone (long-poll forwarding).
pub type NodeMessageHandler = Arc<dyn Fn(Vec<u8>) + Send + Sync>;

/// How often a node says it is alive (and probes its own subscriber
/// connection). Centrifugo's presence refresh and Phoenix.Tracker's
/// broadcast period are of this order.
pub const HEARTBEAT: Duration = Duration::from_secs(2);

/// A node silent this long is down, by default: five missed heartbeats.
/// Phoenix.Tracker waits 30 s, which suits BEAM pauses; a plume node does
/// not pause, and users notice ghosts sooner than 30 s.
pub const DOWN_AFTER: Duration = Duration::from_secs(10);

/// What a cluster is: where its Redis is, and when a silent node counts as
/// down.
#[derive(Debug, Clone)]

pub struct Settings {
    pub redis_url: String,
    pub down_after: Duration,
}

/// Why a node could not join its cluster. Each says what to check.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("`{url}` is not a Redis URL ({reason}); write it as redis://HOST:PORT")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot reach Redis at {url}: {reason}. Is redis-server running there? (set [cluster] redis_url or PLUME_REDIS_URL)")]
    Unreachable { url: String, reason: String },
}

/// A future the cluster waits on.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A part of a node that takes part in the cluster: a tenant's broker or
/// presence. Every method has a default that does nothing.
pub trait Member: Send + Sync {
    /// A message arrived on one of this member's tenant's topics.
    fn receive(&self, _topic: &str, _message: envelope::Received) {}

    /// The node's subscriptions are back after its subscriber connection
    /// was lost: whatever was published meanwhile was missed.
    fn resubscribed(&self) {}

    /// The node can send again after its command connection was lost:
    /// whatever it wrote meanwhile did not reach Redis.
    fn reconnected(&self) {}

    /// Node `dead` is down and this node claimed it: remove what it owned.
    fn sweep(&self, _dead: &str) -> Option<Task> {
        None
    }
}

/// What arrives for a node and who gets it.
struct Hub {
    node_channel: String,
    /// Members by tenant. Weak: a member holds the cluster, not the other
    /// way round.
    members: RwLock<HashMap<String, Vec<Weak<dyn Member>>>>,
    /// Whoever handles messages addressed to this node.
    node_messages: RwLock<Option<NodeMessageHandler>>,
    undecodable: AtomicU64,
}

impl Hub {
    fn members(&self) -> Vec<Arc<dyn Member>> {
        self.members.read().values().flatten().filter_map(Weak::upgrade).collect()
    }

    fn members_of(&self, tenant: &str) -> Vec<Arc<dyn Member>> {
        self.members
            .read()
            .get(tenant)
            .map(|members| members.iter().filter_map(Weak::upgrade).collect())
            .unwrap_or_default()
    }
}

impl LinkEvents for Hub {
    fn message(&self, incoming: Incoming) {
        if incoming.channel == self.node_channel {
            if incoming.payload != PROBE
                && let Some(handler) = self.node_messages.read().clone()
            {
                handler(incoming.payload);
            }
            return;
        }
        let Some((tenant, topic)) = Names::parse_topic_channel(&incoming.channel) else {
            return;
        };
        let message = match envelope::decode(&incoming.payload) {
            Ok(message) => message,
            Err(error) => {
                if self.undecodable.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!(channel = %incoming.channel, %error, "cluster: a message no node of this version can read (logged once)");
                }
                return;
            }
        };
        let members = self.members_of(&tenant);
        match members.as_slice() {
            [] => {}
            [only] => only.receive(topic, message),
            [first, rest @ ..] => {
                for member in rest {
                    member.receive(topic, message.clone());
                }
                first.receive(topic, message);
            }
        }
    }

    fn writer_reconnected(&self) {
        for member in self.members() {
            member.reconnected();
        }
    }

    fn subscriber_reconnected(&self) {
        for member in self.members() {
            member.resubscribed();
        }
    }
}

/// `EVAL script numkeys keys...`: the arguments follow. The link pipelines
/// commands, and a pipeline cannot retry an `EVALSHA` that a restarted
/// Redis answers `NOSCRIPT`: plume's scripts are short, so they are sent
/// whole.
pub fn eval(script: &str, keys: &[&str]) -> Cmd {
    let mut cmd = Cmd::new();
    cmd.arg("EVAL").arg(script).arg(keys.len()).arg(keys);
    cmd
}

/// Redis's clock, in ms, inside a script: every node's heartbeat is stamped
/// and judged by the one clock, so skew between the nodes' own clocks
/// cannot make a live node look dead.
const NOW_MS: &str = "local now = redis.call('TIME')\nlocal now_ms = now[1] * 1000 + math.floor(now[2] / 1000)\n";

/// KEYS: the node registry. ARGV: the node.
const BEAT: &str = "redis.call('ZADD', KEYS[1], now_ms, ARGV[1])\nreturn now_ms";

/// KEYS: the node registry. ARGV: down_after in ms. The nodes that are down.
const DEAD: &str = "return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now_ms - tonumber(ARGV[1])))";

/// A script that knows `now_ms`, Redis's time.
pub fn timed(script: &str, keys: &[&str]) -> Cmd {
    eval(&format!("{NOW_MS}{script}"), keys)
}

/// What a node's own channel carries to show its subscriber connection
/// hears (see `link`).
const PROBE: &[u8] = b"probe";

/// This node's membership of a cluster.
pub struct Cluster {
    node: String,
    names: Names,
    link: Link,
    hub: Arc<Hub>,
    down_after: Duration,
    /// Dead nodes this node swept, for `/metrics`.
    swept: AtomicU64,
    left: AtomicBool,
}

/// A node id: the host's name, the process and a random part, so ids are
/// unique across restarts and readable in Redis.
fn node_id() -> String {
    let mut host = [0u8; 64];
    // SAFETY: gethostname writes at most `len` bytes into the buffer.
    let named = unsafe { libc::gethostname(host.as_mut_ptr().cast(), host.len()) } == 0;
    let host = if named {
        let end = host.iter().position(|&b| b == 0).unwrap_or(host.len());
        String::from_utf8_lossy(&host[..end]).replace(['|', ':', '{', '}', ' '], "-")
    } else {
        "node".to_owned()
    };
    format!("{host}-{}-{:08x}", std::process::id(), rand::random::<u32>())
}

impl Cluster {
    /// Join the cluster whose Redis is at `settings.redis_url`: connect,
    /// tell a Redis Cluster from a single Redis, and start the heartbeat.
    pub async fn join(settings: &Settings) -> Result<Arc<Cluster>, ClusterError> {
        let url = settings.redis_url.clone();
        let invalid = |e: redis::RedisError| ClusterError::InvalidUrl {
            url: url.clone(),
            reason: e.to_string(),
        };
        let unreachable = |e: &dyn std::fmt::Display| ClusterError::Unreachable {
            url: url.clone(),
            reason: e.to_string(),
        };
        let client = redis::Client::open(url.as_str()).map_err(invalid)?;
        let connector = Self::connector(client).await.map_err(|e| unreachable(&e))?;
        let names = Names { layout: connector.layout() };
        let node = node_id();
        let node_channel = names.node_channel(&node);
        let hub = Arc::new(Hub {
            node_channel: node_channel.clone(),
            members: RwLock::default(),
            node_messages: RwLock::default(),
            undecodable: AtomicU64::new(0),
        });
        let link = Link::connect(url.clone(), connector, node_channel, hub.clone())
            .await
            .map_err(|e| unreachable(&e))?;
        let cluster = Arc::new(Cluster {
            node,
            names,
            link,
            hub,
            down_after: settings.down_after,
            swept: AtomicU64::new(0),
            left: AtomicBool::new(false),
        });
        cluster.beat().await.map_err(|e| unreachable(&e))?;
        tokio::spawn(heartbeat(Arc::downgrade(&cluster)));
        Ok(cluster)
    }

    /// A Redis Cluster answers `INFO cluster` with `cluster_enabled:1`; it
    /// is then reached through its cluster client, with the URL as seed.
    async fn connector(client: redis::Client) -> redis::RedisResult<Connector> {
        let mut conn = tokio::time::timeout(Duration::from_secs(3), client.get_multiplexed_async_connection())
            .await
            .map_err(|_| redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in 3 s")))??;
        let info: String = redis::cmd("INFO").arg("cluster").query_async(&mut conn).await?;
        if info.lines().any(|line| line.trim() == "cluster_enabled:1") {
            Ok(Connector::Cluster(vec![client.get_connection_info().clone()]))
        } else {
            Ok(Connector::Standalone(client))
        }
    }

    /// How long a silent node stays up.
    pub fn down_after(&self) -> Duration {
        self.down_after
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn names(&self) -> Names {
        self.names
    }

    pub fn link(&self) -> &Link {
        &self.link
    }

    /// Whether the node is connected to Redis (both ways).
    pub fn is_up(&self) -> bool {
        self.link.is_up()
    }

    /// Hear a tenant's topics and the cluster's events, for as long as
    /// `member` lives.
    pub fn register(&self, tenant: &str, member: Weak<dyn Member>) {
        self.hub.members.write().entry(tenant.to_owned()).or_default().push(member);
    }

    /// Handle messages addressed to this node.
    pub fn on_node_message(&self, handler: NodeMessageHandler) {
        *self.hub.node_messages.write() = Some(handler);
    }

    /// Send `message` to node `node`.
    pub fn send_to_node(&self, node: &str, message: Vec<u8>) -> Result<(), LinkError> {
        self.link.publish(self.names.node_channel(node), message)
    }

    /// Send `message` to node `node` and learn whether it was listening
    /// (Redis counts the receivers of a publish): a node that died stops
    /// listening at once, long before its heartbeat is missed.
    pub async fn ask_node(&self, node: &str, message: Vec<u8>) -> Result<bool, LinkError> {
        let channel = self.names.node_channel(node);
        let verb = match self.names.layout {
            Layout::Standalone => "PUBLISH",
            Layout::Sharded => "SPUBLISH",
        };
        let mut publish = Cmd::new();
        publish.arg(verb).arg(&channel).arg(message);
        let receivers: u64 = redis::from_redis_value(self.link.query(publish, Some(&channel)).await?).unwrap_or(0);
        Ok(receivers > 0)
    }

    fn nodes_key(&self) -> String {
        self.names.meta_key("nodes")
    }

    /// Say this node is alive; probe its subscriber connection.
    async fn beat(&self) -> Result<(), LinkError> {
        let nodes_key = self.nodes_key();
        let mut beat = timed(BEAT, &[&nodes_key]);
        beat.arg(&self.node);
        self.link.query(beat, Some(&nodes_key)).await?;
        self.link.publish(self.names.node_channel(&self.node), PROBE.to_vec())
    }

    /// The nodes whose heartbeat is older than `down_after`.
    async fn dead_nodes(&self) -> Result<Vec<String>, LinkError> {
        let nodes_key = self.nodes_key();
        let mut cmd = timed(DEAD, &[&nodes_key]);
        cmd.arg(self.down_after.as_millis() as u64);
        let value = self.link.query(cmd, Some(&nodes_key)).await?;
        let dead: Vec<String> = redis::from_redis_value(value).unwrap_or_default();
        Ok(dead.into_iter().filter(|n| *n != self.node).collect())
    }

    /// Claim a dead node (one live node sweeps it) and have every member
    /// remove what it owned.
    async fn sweep(&self, dead: &str) -> Result<(), LinkError> {
        let claim_key = self.names.meta_key(&format!("sweep:{dead}"));
        let mut claim = Cmd::new();
        claim.arg("SET").arg(&claim_key).arg(&self.node).arg("NX").arg("PX").arg(60_000);
        if self.link.query(claim, Some(&claim_key)).await? == redis::Value::Nil {
            return Ok(());
        }
        tracing::warn!(node = dead, "cluster: node {dead} is down (no heartbeat for {:?}); removing its presences", self.down_after);
        let sweeps: Vec<Task> = self.hub.members().iter().filter_map(|m| m.sweep(dead)).collect();
        for sweep in sweeps {
            sweep.await;
        }
        let mut forget = Cmd::new();
        forget.arg("ZREM").arg(self.nodes_key()).arg(dead);
        let nodes_key = self.nodes_key();
        self.link.query(forget, Some(&nodes_key)).await?;
        self.swept.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Leave the cluster on a clean stop, after the node's channels have
    /// ended (their presences left with them): wait until everything sent
    /// reached Redis, then take the node off the registry.
    pub async fn leave(&self) {
        self.left.store(true, Ordering::Release);
        let mut forget = Cmd::new();
        forget.arg("ZREM").arg(self.nodes_key()).arg(&self.node);
        let nodes_key = self.nodes_key();
        if let Err(error) = self.link.query(forget, Some(&nodes_key)).await {
            tracing::warn!(%error, "cluster: could not leave cleanly; the other nodes will sweep this one");
        }
    }

    /// The node's cluster figures in the Prometheus text format.
    pub fn prometheus(&self) -> String {
        let f = self.link.figures();
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let rows: [(&str, &str, &str, u64); 12] = [
            ("plume_cluster_up", "gauge", "1 while the node is connected to the cluster's Redis (both ways).", u64::from(self.is_up())),
            ("plume_cluster_commands_total", "counter", "Commands sent to Redis (publishes included).", load(&f.commands_sent)),
            ("plume_cluster_command_failures_total", "counter", "Commands that did not reach Redis or failed there.", load(&f.commands_failed)),
            ("plume_cluster_pipelines_total", "counter", "Round trips to Redis that carried commands.", load(&f.pipelines)),
            ("plume_cluster_publish_bytes_total", "counter", "Bytes of channels and messages published.", load(&f.bytes_sent)),
            ("plume_cluster_messages_received_total", "counter", "Messages received on subscribed channels.", load(&f.messages_received)),
            ("plume_cluster_received_bytes_total", "counter", "Bytes of messages received.", load(&f.bytes_received)),
            ("plume_cluster_messages_dropped_total", "counter", "Messages dropped because the node fell behind reading them.", load(&f.messages_dropped)),
            ("plume_cluster_reconnects_total", "counter", "Reconnections to Redis.", load(&f.reconnects)),
            ("plume_cluster_resubscribes_total", "counter", "Times every subscription was made again after a reconnect.", load(&f.resubscribes)),
            ("plume_cluster_subscriptions", "gauge", "Redis channels this node listens to.", load(&f.subscriptions)),
            ("plume_cluster_nodes_swept_total", "counter", "Dead nodes whose state this node removed.", load(&self.swept)),
        ];
        let node = self.node.replace('\\', "\\\\").replace('"', "\\\"");
        let mut out = String::new();
        for (name, kind, help, value) in rows {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{node=\"{node}\"}} {value}\n"));
        }
        out
    }
}

/// Every [`HEARTBEAT`]: say the node is alive, and sweep nodes that are not.
async fn heartbeat(cluster: std::sync::Weak<Cluster>) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(cluster) = cluster.upgrade() else { return };
        if cluster.left.load(Ordering::Acquire) {
            return;
        }
        if let Err(error) = cluster.beat().await {
            tracing::debug!(%error, "cluster: heartbeat not sent");
            continue;
        }
        match cluster.dead_nodes().await {
            Ok(dead) => {
                for node in dead {
                    if let Err(error) = cluster.sweep(&node).await {
                        tracing::warn!(node, %error, "cluster: sweeping a dead node failed; trying again at the next heartbeat");
                    }
                }
            }
            Err(error) => tracing::debug!(%error, "cluster: cannot list dead nodes"),
        }
    }
}
