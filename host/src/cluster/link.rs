//! The node's connections to Redis: one that sends commands, one that
//! listens to channels, each reconnecting on its own.
//!
//! **Sending.** Commands (publishes, presence writes, heartbeats) go into
//! one queue and out through one connection, in order, pipelined: the
//! writer takes everything queued (up to [`MAX_BATCH`]) and sends it as one
//! pipeline, so a burst of broadcasts costs one round trip, not one each.
//! One connection keeps per-node order: a presence write reaches Redis
//! before the diff that announces it, and a topic's broadcasts arrive in
//! the order they were made. While the connection is down nothing is
//! queued: [`Link::send`] fails at once, so a cross-node publish fails
//! visibly instead of vanishing or arriving twice later.
//!
//! **Listening.** The subscriber connection (RESP3, pushes) keeps the set
//! of channels the node wants, and reconciles the server's set with it:
//! after a reconnect it subscribes to everything again (in batches, per
//! slot on a Redis Cluster), and when Redis drops a subscription on its own
//! (a slot migration sends an unsolicited `sunsubscribe`, which neither
//! Rust client handles) it subscribes again. Neither redis-rs nor fred
//! resubscribes reliably by itself; this loop does. A subscription is
//! *confirmed* once Redis acknowledged it: a join waits for that.
//!
//! **Liveness.** A subscriber connection can look open and deliver nothing
//! (centrifugo#1189, after a failover). The node publishes a probe on its
//! own channel with every heartbeat; a subscriber that has not heard one
//! for three heartbeats reconnects.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, PushInfo, PushKind, RedisResult, Value};
use tokio::sync::{Notify, mpsc, oneshot};

use super::names::{Layout, slot};

/// Commands sent in one pipeline at most.
const MAX_BATCH: usize = 512;

/// Channels named in one `SUBSCRIBE` at most.
const SUBSCRIBE_BATCH: usize = 512;

/// Commands queued for the writer at most; past it, sends fail (the writer
/// is behind by this much: Redis is slow or gone).
const QUEUE: usize = 65_536;

/// Pushes waiting for the subscriber loop at most; past it, messages are
/// dropped and counted rather than held without bound.
const PUSH_QUEUE: usize = 65_536;

/// How long connecting, and each round trip, may take.
const TIMEOUT: Duration = Duration::from_secs(3);

/// Reconnect backoff: doubling from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_LAST: Duration = Duration::from_secs(5);

/// Why a command did not reach Redis.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("not connected to Redis at {0}")]
    Down(String),
    #[error("Redis at {0} is too far behind (the send queue is full)")]
    Behind(String),
    #[error("Redis at {url}: {reason}")]
    Failed { url: String, reason: String },
}

/// Counters of the link, for `/metrics`.
#[derive(Default)]
pub struct LinkFigures {
    pub commands_sent: AtomicU64,
    pub commands_failed: AtomicU64,
    pub pipelines: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub messages_received: AtomicU64,
    pub bytes_received: AtomicU64,
    pub messages_dropped: AtomicU64,
    pub reconnects: AtomicU64,
    pub resubscribes: AtomicU64,
    pub subscriptions: AtomicU64,
}

/// A message on a subscribed channel.
pub struct Incoming {
    pub channel: String,
    pub payload: Vec<u8>,
}

/// What the link tells the node about.
pub trait LinkEvents: Send + Sync {
    /// A message arrived on a subscribed channel.
    fn message(&self, incoming: Incoming);
    /// The writer connected again after it was down. Not called on the
    /// first connect.
    fn writer_reconnected(&self);
    /// The subscriber connected again after it was down, and is subscribed
    /// to everything again. Not called on the first connect.
    fn subscriber_reconnected(&self);
}

enum Command {
    Publish { channel: String, message: Vec<u8> },
    Query {
        cmd: Cmd,
        /// The key the command is routed by on a Redis Cluster.
        route: Option<Vec<u8>>,
        reply: Option<oneshot::Sender<Result<Value, LinkError>>>,
    },
}

impl Command {
    fn route(&self) -> Option<&[u8]> {
        match self {
            Command::Publish { channel, .. } => Some(channel.as_bytes()),
            Command::Query { route, .. } => route.as_deref(),
        }
    }

    fn fail(self, error: &LinkError) {
        if let Command::Query { reply: Some(reply), .. } = self {
            let _ = reply.send(Err(error.clone()));
        }
    }
}

/// How to reach Redis.
#[derive(Clone)]
pub(super) enum Connector {
    Standalone(redis::Client),
    Cluster(Vec<redis::ConnectionInfo>),
}

enum CommandConnection {
    Standalone(MultiplexedConnection),
    Cluster(ClusterConnection),
}

enum SubscriberConnection {
    Standalone(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Connector {
    pub(super) fn layout(&self) -> Layout {
        match self {
            Connector::Standalone(_) => Layout::Standalone,
            Connector::Cluster(_) => Layout::Sharded,
        }
    }

    fn config() -> redis::AsyncConnectionConfig {
        redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
    }

    async fn commands(&self) -> RedisResult<CommandConnection> {
        match self {
            Connector::Standalone(client) => Ok(CommandConnection::Standalone(
                client.get_multiplexed_async_connection_with_config(&Self::config()).await?,
            )),
            Connector::Cluster(nodes) => {
                let client = redis::cluster::ClusterClientBuilder::new(nodes.clone())
                    .connection_timeout(TIMEOUT)
                    .response_timeout(TIMEOUT)
                    .build()?;
                Ok(CommandConnection::Cluster(client.get_async_connection().await?))
            }
        }
    }

    async fn subscriber(&self, pushes: mpsc::Sender<PushInfo>, dropped: Arc<LinkFigures>) -> RedisResult<SubscriberConnection> {
        // The connection hands pushes over without waiting: a full queue
        // drops the message (pub/sub is at-most-once anyway) and counts it.
        let sender = move |push: PushInfo| -> Result<(), ()> {
            if pushes.try_send(push).is_err() {
                dropped.messages_dropped.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        };
        match self {
            Connector::Standalone(client) => {
                let info = client.get_connection_info().clone();
                let resp3 = info.redis_settings().clone().set_protocol(redis::ProtocolVersion::RESP3);
                let client = redis::Client::open(info.set_redis_settings(resp3))?;
                let config = Self::config().set_push_sender(sender);
                Ok(SubscriberConnection::Standalone(
                    client.get_multiplexed_async_connection_with_config(&config).await?,
                ))
            }
            Connector::Cluster(nodes) => {
                let client = redis::cluster::ClusterClientBuilder::new(nodes.clone())
                    .use_protocol(redis::ProtocolVersion::RESP3)
                    .connection_timeout(TIMEOUT)
                    .response_timeout(TIMEOUT)
                    .push_sender(sender)
                    .build()?;
                Ok(SubscriberConnection::Cluster(client.get_async_connection().await?))
            }
        }
    }
}

impl CommandConnection {
    async fn run(&mut self, pipe: &Pipeline) -> RedisResult<Vec<Value>> {
        match self {
            CommandConnection::Standalone(conn) => pipe.query_async(conn).await,
            CommandConnection::Cluster(conn) => pipe.query_async(conn).await,
        }
    }
}

impl SubscriberConnection {
    async fn subscribe(&mut self, channels: &[String]) -> RedisResult<()> {
        match self {
            SubscriberConnection::Standalone(conn) => conn.subscribe(channels).await,
            SubscriberConnection::Cluster(conn) => conn.ssubscribe(channels).await,
        }
    }

    async fn unsubscribe(&mut self, channels: &[String]) -> RedisResult<()> {
        match self {
            SubscriberConnection::Standalone(conn) => conn.unsubscribe(channels).await,
            SubscriberConnection::Cluster(conn) => conn.sunsubscribe(channels).await,
        }
    }
}

/// What the node wants to hear, and what Redis confirmed.
#[derive(Default)]
struct Channels {
    wanted: HashSet<String>,
    confirmed: HashSet<String>,
    waiters: HashMap<String, Vec<oneshot::Sender<()>>>,
    /// Whether the subscriber connection is up: while it is down, nobody
    /// waits for a confirmation that cannot come.
    up: bool,
}

impl Channels {
    fn wake(&mut self, channel: &str) {
        for waiter in self.waiters.remove(channel).unwrap_or_default() {
            let _ = waiter.send(());
        }
    }

    fn wake_all(&mut self) {
        for (_, waiters) in self.waiters.drain() {
            for waiter in waiters {
                let _ = waiter.send(());
            }
        }
    }
}

/// The node's link to Redis.
pub struct Link {
    url: String,
    queue: mpsc::Sender<Command>,
    writer_up: Arc<AtomicBool>,
    channels: Arc<Mutex<Channels>>,
    reconcile: Arc<Notify>,
    figures: Arc<LinkFigures>,
    layout: Layout,
}

fn redis_error(url: &str, error: &redis::RedisError) -> LinkError {
    LinkError::Failed {
        url: url.to_owned(),
        reason: error.to_string(),
    }
}

impl Link {
    /// Connect both connections, or fail with why (the caller names the
    /// URL). Then keep them connected in the background; `events` hears
    /// what arrives. `probe_channel` is the node's own channel.
    pub(super) async fn connect(
        url: String,
        connector: Connector,
        probe_channel: String,
        events: Arc<dyn LinkEvents>,
    ) -> RedisResult<Link> {
        let figures = Arc::new(LinkFigures::default());
        let commands = connector.commands().await?;
        let (pushes_tx, pushes) = mpsc::channel(PUSH_QUEUE);
        let mut subscriber = connector.subscriber(pushes_tx.clone(), figures.clone()).await?;
        subscriber.subscribe(std::slice::from_ref(&probe_channel)).await?;

        let (queue, commands_rx) = mpsc::channel(QUEUE);
        let writer_up = Arc::new(AtomicBool::new(true));
        let channels = Arc::new(Mutex::new(Channels {
            up: true,
            ..Channels::default()
        }));
        let reconcile = Arc::new(Notify::new());
        let probe_heard = Arc::new(Mutex::new(Instant::now()));
        let layout = connector.layout();
        tokio::spawn(
            Writer {
                url: url.clone(),
                connector: connector.clone(),
                queue: commands_rx,
                up: writer_up.clone(),
                figures: figures.clone(),
                events: events.clone(),
                layout,
            }
            .run(commands),
        );
        tokio::spawn(
            Subscriber {
                url: url.clone(),
                connector,
                channels: channels.clone(),
                reconcile: reconcile.clone(),
                probe_channel,
                probe_heard,
                figures: figures.clone(),
                events,
                pushes_tx,
            }
            .run(subscriber, pushes),
        );
        Ok(Link {
            url,
            queue,
            writer_up,
            channels,
            reconcile,
            figures,
            layout,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    pub fn figures(&self) -> &LinkFigures {
        &self.figures
    }

    /// Whether both connections are up.
    pub fn is_up(&self) -> bool {
        self.writer_up.load(Ordering::Acquire) && self.channels.lock().up
    }

    fn enqueue(&self, command: Command) -> Result<(), LinkError> {
        if !self.writer_up.load(Ordering::Acquire) {
            return Err(LinkError::Down(self.url.clone()));
        }
        self.queue.try_send(command).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => LinkError::Behind(self.url.clone()),
            mpsc::error::TrySendError::Closed(_) => LinkError::Down(self.url.clone()),
        })
    }

    /// Publish `message` on `channel` (sharded on a Redis Cluster), after
    /// everything sent before it. Fails at once while Redis is unreachable.
    pub fn publish(&self, channel: String, message: Vec<u8>) -> Result<(), LinkError> {
        self.enqueue(Command::Publish { channel, message })
    }

    /// Send a command after everything sent before it, without waiting for
    /// its reply (a failure is logged and counted). `route` is a key it
    /// touches (its slot on a Redis Cluster).
    pub fn send(&self, cmd: Cmd, route: Option<&str>) -> Result<(), LinkError> {
        self.enqueue(Command::Query {
            cmd,
            route: route.map(|key| key.as_bytes().to_vec()),
            reply: None,
        })
    }

    /// Send a command and wait for its reply.
    pub async fn query(&self, cmd: Cmd, route: Option<&str>) -> Result<Value, LinkError> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Command::Query {
            cmd,
            route: route.map(|key| key.as_bytes().to_vec()),
            reply: Some(reply),
        })?;
        match tokio::time::timeout(TIMEOUT * 2, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(LinkError::Down(self.url.clone())),
            Err(_) => Err(LinkError::Failed {
                url: self.url.clone(),
                reason: "no reply in time".into(),
            }),
        }
    }

    /// [`Self::query`] from code that cannot wait asynchronously (a
    /// plugin's import, which runs on an async worker thread): the worker
    /// is handed to another thread for the round trip.
    pub fn query_blocking(&self, cmd: Cmd, route: Option<&str>) -> Result<Value, LinkError> {
        use tokio::runtime::{Handle, RuntimeFlavor};
        match Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| handle.block_on(self.query(cmd, route)))
            }
            _ => Err(LinkError::Failed {
                url: self.url.clone(),
                reason: "a blocking query needs the multi-threaded runtime".into(),
            }),
        }
    }

    /// Listen to `channel`. `Some` until Redis confirms the subscription;
    /// `None` when it is confirmed already, or the subscriber is down (the
    /// subscription is made when it is back; nobody should wait for that).
    pub fn subscribe(&self, channel: &str) -> Option<oneshot::Receiver<()>> {
        let mut channels = self.channels.lock();
        let fresh = channels.wanted.insert(channel.to_owned());
        if fresh {
            self.reconcile.notify_one();
        }
        if channels.confirmed.contains(channel) || !channels.up {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        channels.waiters.entry(channel.to_owned()).or_default().push(tx);
        Some(rx)
    }

    /// Stop listening to `channel`.
    pub fn unsubscribe(&self, channel: &str) {
        let mut channels = self.channels.lock();
        if channels.wanted.remove(channel) {
            channels.confirmed.remove(channel);
            channels.wake(channel);
            self.reconcile.notify_one();
        }
    }

    /// Whether `channel` is subscribed and confirmed.
    pub fn is_confirmed(&self, channel: &str) -> bool {
        self.channels.lock().confirmed.contains(channel)
    }

}

/// Doubling waits between reconnect attempts.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Backoff {
        Backoff(BACKOFF_FIRST)
    }

    async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(BACKOFF_LAST);
    }
}

struct Writer {
    url: String,
    connector: Connector,
    queue: mpsc::Receiver<Command>,
    up: Arc<AtomicBool>,
    figures: Arc<LinkFigures>,
    events: Arc<dyn LinkEvents>,
    layout: Layout,
}

impl Writer {
    async fn run(mut self, first: CommandConnection) {
        let mut connection = Some(first);
        let mut backoff = Backoff::new();
        loop {
            let Some(conn) = connection.as_mut() else {
                // Down: fail whatever was queued before it went down, and
                // try again.
                while let Ok(command) = self.queue.try_recv() {
                    self.figures.commands_failed.fetch_add(1, Ordering::Relaxed);
                    command.fail(&LinkError::Down(self.url.clone()));
                }
                backoff.wait().await;
                match self.connector.commands().await {
                    Ok(conn) => {
                        tracing::info!(url = %self.url, "cluster: reconnected to Redis (commands)");
                        self.figures.reconnects.fetch_add(1, Ordering::Relaxed);
                        connection = Some(conn);
                        backoff = Backoff::new();
                        self.up.store(true, Ordering::Release);
                        self.events.writer_reconnected();
                    }
                    Err(error) => tracing::debug!(url = %self.url, %error, "cluster: Redis still unreachable"),
                }
                continue;
            };
            let Some(first) = self.queue.recv().await else { return };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match self.queue.try_recv() {
                    Ok(command) => batch.push(command),
                    Err(_) => break,
                }
            }
            if let Err(error) = send_batch(conn, batch, self.layout, &self.url, &self.figures).await {
                tracing::warn!(url = %self.url, %error, "cluster: lost the connection to Redis (commands); cross-node messages fail until it is back");
                self.up.store(false, Ordering::Release);
                connection = None;
            }
        }
    }
}

/// Send one batch: as one pipeline, or on a Redis Cluster as one pipeline
/// per slot (a pipeline must stay within a slot), in order within each.
/// `Err` when the connection broke; the batch's commands have failed then.
async fn send_batch(
    conn: &mut CommandConnection,
    batch: Vec<Command>,
    layout: Layout,
    url: &str,
    figures: &LinkFigures,
) -> Result<(), LinkError> {
    let groups: Vec<Vec<Command>> = match layout {
        Layout::Standalone => vec![batch],
        Layout::Sharded => {
            let mut by_slot: Vec<(Option<u16>, Vec<Command>)> = Vec::new();
            for command in batch {
                let key = command.route().map(slot);
                match by_slot.iter_mut().find(|(s, _)| *s == key) {
                    Some((_, group)) => group.push(command),
                    None => by_slot.push((key, vec![command])),
                }
            }
            by_slot.into_iter().map(|(_, group)| group).collect()
        }
    };
    let mut broken = None;
    for group in groups {
        let mut replies = Vec::with_capacity(group.len());
        if let Some(error) = &broken {
            for command in group {
                figures.commands_failed.fetch_add(1, Ordering::Relaxed);
                command.fail(error);
            }
            continue;
        }
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        let mut bytes = 0u64;
        for command in group {
            match command {
                Command::Publish { channel, message } => {
                    bytes += (channel.len() + message.len()) as u64;
                    let verb = if layout == Layout::Sharded { "SPUBLISH" } else { "PUBLISH" };
                    pipe.cmd(verb).arg(channel).arg(message);
                    replies.push(None);
                }
                Command::Query { cmd, reply, .. } => {
                    pipe.add_command(cmd);
                    replies.push(reply);
                }
            }
        }
        figures.pipelines.fetch_add(1, Ordering::Relaxed);
        figures.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
        match conn.run(&pipe).await {
            Ok(values) => {
                figures.commands_sent.fetch_add(replies.len() as u64, Ordering::Relaxed);
                for (reply, value) in replies.into_iter().zip(values) {
                    let result = match value {
                        Value::ServerError(error) => {
                            figures.commands_failed.fetch_add(1, Ordering::Relaxed);
                            let error = redis::RedisError::from(error);
                            tracing::warn!(url, %error, "cluster: a Redis command failed");
                            Err(redis_error(url, &error))
                        }
                        value => Ok(value),
                    };
                    if let Some(reply) = reply {
                        let _ = reply.send(result);
                    }
                }
            }
            Err(error) => {
                let error = redis_error(url, &error);
                for reply in replies {
                    figures.commands_failed.fetch_add(1, Ordering::Relaxed);
                    if let Some(reply) = reply {
                        let _ = reply.send(Err(error.clone()));
                    }
                }
                broken = Some(error);
            }
        }
    }
    broken.map_or(Ok(()), Err)
}

struct Subscriber {
    url: String,
    connector: Connector,
    channels: Arc<Mutex<Channels>>,
    reconcile: Arc<Notify>,
    probe_channel: String,
    probe_heard: Arc<Mutex<Instant>>,
    figures: Arc<LinkFigures>,
    events: Arc<dyn LinkEvents>,
    pushes_tx: mpsc::Sender<PushInfo>,
}

/// Why the subscriber loop left a connection.
enum Lost {
    Disconnected,
    Deaf,
}

impl Subscriber {
    async fn run(self, first: SubscriberConnection, mut pushes: mpsc::Receiver<PushInfo>) {
        let mut connection = first;
        // Channels Redis has subscribed this connection to, as far as we
        // know.
        let mut subscribed: HashSet<String> = HashSet::new();
        loop {
            let lost = self.serve(&mut connection, &mut pushes, &mut subscribed).await;
            match lost {
                Lost::Disconnected => tracing::warn!(url = %self.url, "cluster: lost the subscriber connection to Redis; reconnecting"),
                Lost::Deaf => tracing::warn!(url = %self.url, "cluster: the subscriber connection stopped hearing the node's own probes; reconnecting"),
            }
            {
                let mut channels = self.channels.lock();
                channels.up = false;
                channels.confirmed.clear();
                channels.wake_all();
            }
            subscribed.clear();
            let mut backoff = Backoff::new();
            connection = loop {
                backoff.wait().await;
                // Pushes of the old connection mean nothing now.
                while pushes.try_recv().is_ok() {}
                match self.connector.subscriber(self.pushes_tx.clone(), self.figures.clone()).await {
                    Ok(mut conn) => match conn.subscribe(std::slice::from_ref(&self.probe_channel)).await {
                        Ok(()) => break conn,
                        Err(error) => tracing::debug!(url = %self.url, %error, "cluster: subscribing failed"),
                    },
                    Err(error) => tracing::debug!(url = %self.url, %error, "cluster: Redis still unreachable"),
                }
            };
            tracing::info!(url = %self.url, "cluster: reconnected to Redis (subscriber); subscribing again");
            self.figures.reconnects.fetch_add(1, Ordering::Relaxed);
            *self.probe_heard.lock() = Instant::now();
            self.channels.lock().up = true;
            if self.reconcile_now(&mut connection, &mut subscribed).await.is_ok() {
                self.figures.resubscribes.fetch_add(1, Ordering::Relaxed);
                self.events.subscriber_reconnected();
            }
        }
    }

    /// Serve one connection until it is lost.
    async fn serve(
        &self,
        connection: &mut SubscriberConnection,
        pushes: &mut mpsc::Receiver<PushInfo>,
        subscribed: &mut HashSet<String>,
    ) -> Lost {
        let mut liveness = tokio::time::interval(super::HEARTBEAT);
        loop {
            tokio::select! {
                push = pushes.recv() => {
                    let Some(push) = push else { return Lost::Disconnected };
                    if self.on_push(push, subscribed) {
                        return Lost::Disconnected;
                    }
                }
                () = self.reconcile.notified() => {
                    if self.reconcile_now(connection, subscribed).await.is_err() {
                        return Lost::Disconnected;
                    }
                }
                _ = liveness.tick() => {
                    if self.probe_heard.lock().elapsed() > super::HEARTBEAT * 3 {
                        return Lost::Deaf;
                    }
                }
            }
        }
    }

    /// Handle one push; `true` when the connection is gone.
    fn on_push(&self, push: PushInfo, subscribed: &mut HashSet<String>) -> bool {
        match push.kind {
            PushKind::Disconnection => return true,
            PushKind::Message | PushKind::SMessage => {
                let mut data = push.data.into_iter();
                let (Some(channel), Some(payload)) = (data.next(), data.next()) else {
                    return false;
                };
                let (Ok(channel), Ok(payload)) = (redis::from_redis_value::<String>(channel), redis::from_redis_value::<Vec<u8>>(payload)) else {
                    return false;
                };
                self.figures.messages_received.fetch_add(1, Ordering::Relaxed);
                self.figures.bytes_received.fetch_add(payload.len() as u64, Ordering::Relaxed);
                if channel == self.probe_channel {
                    // Whatever arrives on the node's own channel shows the
                    // connection hears; the probes exist for that.
                    *self.probe_heard.lock() = Instant::now();
                }
                self.events.message(Incoming { channel, payload });
            }
            PushKind::Unsubscribe | PushKind::SUnsubscribe => {
                // Ours (the channel is no longer wanted), or Redis dropped
                // it by itself (a slot moved): then subscribe again.
                let Some(channel) = push.data.into_iter().next().and_then(|v| redis::from_redis_value::<String>(v).ok()) else {
                    return false;
                };
                if subscribed.remove(&channel) {
                    let mut channels = self.channels.lock();
                    if channels.wanted.contains(&channel) {
                        tracing::info!(url = %self.url, channel, "cluster: Redis ended a subscription by itself; subscribing again");
                        channels.confirmed.remove(&channel);
                        self.reconcile.notify_one();
                    }
                }
            }
            _ => {}
        }
        false
    }

    /// Subscribe to what is wanted and not subscribed, unsubscribe from
    /// what is subscribed and no longer wanted. `Err` when the connection
    /// broke.
    async fn reconcile_now(&self, connection: &mut SubscriberConnection, subscribed: &mut HashSet<String>) -> Result<(), ()> {
        let (add, remove): (Vec<String>, Vec<String>) = {
            let channels = self.channels.lock();
            (
                channels.wanted.difference(subscribed).cloned().collect(),
                subscribed.difference(&channels.wanted).filter(|c| **c != self.probe_channel).cloned().collect(),
            )
        };
        for batch in batches(&remove, self.connector.layout()) {
            match connection.unsubscribe(&batch).await {
                Ok(()) => {
                    for channel in &batch {
                        subscribed.remove(channel);
                    }
                }
                Err(error) if is_broken(&error) => return Err(()),
                Err(error) => tracing::warn!(url = %self.url, %error, "cluster: unsubscribing failed"),
            }
        }
        for batch in batches(&add, self.connector.layout()) {
            match connection.subscribe(&batch).await {
                Ok(()) => {
                    let mut channels = self.channels.lock();
                    for channel in batch {
                        if channels.wanted.contains(&channel) {
                            channels.confirmed.insert(channel.clone());
                        }
                        channels.wake(&channel);
                        subscribed.insert(channel);
                    }
                }
                Err(error) if is_broken(&error) => return Err(()),
                Err(error) => {
                    // A slot moving under us, say: try again shortly.
                    tracing::warn!(url = %self.url, %error, "cluster: subscribing failed; retrying");
                    let reconcile = self.reconcile.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(BACKOFF_FIRST).await;
                        reconcile.notify_one();
                    });
                }
            }
        }
        self.figures.subscriptions.store(subscribed.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

fn is_broken(error: &redis::RedisError) -> bool {
    error.is_io_error() || error.is_connection_dropped() || error.is_unrecoverable_error() || error.is_timeout()
}

/// Channels in batches one command may name: at most
/// [`SUBSCRIBE_BATCH`], and on a Redis Cluster all in one slot.
fn batches(channels: &[String], layout: Layout) -> Vec<Vec<String>> {
    let mut groups: Vec<(u16, Vec<String>)> = Vec::new();
    for channel in channels {
        let key = match layout {
            Layout::Standalone => 0,
            Layout::Sharded => slot(channel.as_bytes()),
        };
        match groups.iter_mut().find(|(s, group)| *s == key && group.len() < SUBSCRIBE_BATCH) {
            Some((_, group)) => group.push(channel.clone()),
            None => groups.push((key, vec![channel.clone()])),
        }
    }
    groups.into_iter().map(|(_, group)| group).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_hold_at_most_512_channels_and_one_slot_each_when_sharded() {
        let channels: Vec<String> = (0..1300).map(|i| format!("plume:t:demo:room:{i}")).collect();
        let standalone = batches(&channels, Layout::Standalone);
        assert_eq!(standalone.iter().map(Vec::len).collect::<Vec<_>>(), vec![512, 512, 276]);
        let sharded = batches(&channels, Layout::Sharded);
        assert_eq!(sharded.iter().map(Vec::len).sum::<usize>(), 1300);
        for batch in &sharded {
            assert!(batch.len() <= SUBSCRIBE_BATCH);
            let first = slot(batch[0].as_bytes());
            assert!(batch.iter().all(|c| slot(c.as_bytes()) == first));
        }
    }
}
