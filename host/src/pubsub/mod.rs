//! The pubsub broker: who is subscribed to which topic, and fan-out.
//!
//! [`Broker`] is the one interface the rest of plume sees. The in-process
//! [`LocalBroker`] is the embedded default; a broker that spans several nodes
//! implements the same trait. What crosses the broker ([`Broadcast`]: topic,
//! event, JSON payload, sender) is plain data, so it can cross a network.
//!
//! Fan-out encodes a broadcast at most once per serializer, however many
//! subscribers it has: the frame text is cached in the [`Broadcast`] and
//! shared (reference-counted bytes) by every socket that writes it. Only
//! channels that intercept the event run their plugin's `handle-out`.

mod local;

use std::sync::{Arc, OnceLock};

use tokio_tungstenite::tungstenite::Message;

use crate::protocol::{self, Body, Outbound, Serializer};
use crate::socket::Mailbox;

pub use local::LocalBroker;

/// Identifies a socket for as long as the process runs.
pub type SocketKey = u64;
/// Identifies one joined channel (one join) for as long as the process runs.
pub type ChannelKey = u64;

/// A message published on a topic.
#[derive(Debug)]
pub struct Broadcast {
    pub topic: String,
    pub event: String,
    /// Raw JSON (checked before publishing) or bytes.
    pub payload: Body,
    /// Set by `broadcast_from`: this channel does not receive it.
    pub from: Option<ChannelKey>,
    encoded: [OnceLock<Option<Message>>; 2],
    /// The payload as `handle-out` takes it, built once and lent to every
    /// intercepting channel.
    for_plugins: OnceLock<crate::runtime::WitPayload>,
}

impl Broadcast {
    pub fn new(topic: String, event: String, payload: Body, from: Option<ChannelKey>) -> Self {
        Broadcast {
            topic,
            event,
            payload,
            from,
            encoded: [OnceLock::new(), OnceLock::new()],
            for_plugins: OnceLock::new(),
        }
    }

    /// The payload in the plugin interface's type, for `handle-out`: copied
    /// out of the broadcast once, however many channels intercept it.
    pub fn plugin_payload(&self) -> &crate::runtime::WitPayload {
        self.for_plugins.get_or_init(|| self.payload.clone().into())
    }

    /// The frame `[null,null,topic,event,payload]` (a binary broadcast
    /// frame for bytes), encoded on first use and shared by every subscriber
    /// that speaks `serializer`. `None` when the serializer cannot carry the
    /// message (bytes to a V1 client, a topic over 255 bytes in a binary
    /// frame); that is logged once per broadcast.
    pub fn frame(&self, serializer: Serializer) -> Option<Message> {
        self.encoded[serializer.index()]
            .get_or_init(|| {
                let topic = protocol::json_string(&self.topic);
                let message = Outbound {
                    join_ref: protocol::NULL,
                    reference: protocol::NULL,
                    topic: &topic,
                    event: &self.event,
                    payload: self.payload.outbound(),
                };
                protocol::encode_frame(serializer, &message)
                    .inspect_err(|error| {
                        tracing::warn!(topic = %self.topic, event = %self.event, %error, "broadcast not sent to some clients");
                    })
                    .ok()
            })
            .clone()
    }
}

/// How a subscription's deliveries are handled by the subscribing socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscription {
    /// The topic a channel joined: pushed to the client (through
    /// `handle-out` when the event is intercepted).
    Joined,
    /// A topic a channel subscribed to with `channel.subscribe`: delivered
    /// to its `handle-info`.
    Extra,
    /// The socket's id topic: a `disconnect` event closes the socket.
    SocketId,
}

/// One subscription: where deliveries go.
#[derive(Debug, Clone)]
pub struct Subscriber {
    pub socket: SocketKey,
    pub channel: ChannelKey,
    pub kind: Subscription,
    pub mailbox: Mailbox,
}

/// A broadcast handed to one subscribing socket.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message: Arc<Broadcast>,
    pub channel: ChannelKey,
    pub kind: Subscription,
}

/// The broker interface. Implementations must keep `publish` cheap and free
/// of long-held locks: it runs inside plugin calls.
pub trait Broker: Send + Sync {
    fn subscribe(&self, topic: &str, subscriber: Subscriber);

    fn unsubscribe(&self, topic: &str, socket: SocketKey, channel: ChannelKey);

    /// Deliver `message` to every subscriber of its topic, except those of
    /// socket `skip` (a socket delivers its own broadcasts to itself, in
    /// order with its replies). Returns the number of deliveries queued.
    fn publish(&self, message: Arc<Broadcast>, skip: Option<SocketKey>) -> usize;

    /// The number of subscriptions to `topic` on this node.
    fn subscriber_count(&self, topic: &str) -> usize;

    /// Topics starting with `prefix` that have subscribers on this node,
    /// in order, at most `limit`, each with its subscription count (the
    /// server API's `/api/topics`).
    fn topics(&self, prefix: &str, limit: usize) -> Vec<(String, usize)>;
}
