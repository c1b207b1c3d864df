//! The pubsub broker: who is subscribed to which topic, and fan-out.
//!
//! This is the bottom floor of plume, as Phoenix.PubSub is of Phoenix: what
//! crosses it is plain data ([`Broadcast`]: topic, event, payload, sender),
//! and where a delivery goes is an [`Inbox`], so the broker knows nothing of
//! sockets, channels or plugins. [`Broker`] is the one interface the rest of
//! plume sees; [`LocalBroker`] is the embedded default, and
//! [`ClusterBroker`] spans several plume nodes over Redis (`cluster`).
//!
//! Fan-out encodes a broadcast at most once per serializer, however many
//! subscribers it has: the frame is cached in the [`Broadcast`] and shared
//! (reference-counted bytes) by every socket that writes it. Whatever else
//! the layers above derive from a broadcast once for all its subscribers
//! (a plugin's view of the payload) they keep in [`Broadcast::derived`].

mod cluster;
mod local;

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use tokio_tungstenite::tungstenite::Message;

use crate::protocol::{self, Body, Outbound, Serializer};

pub use cluster::{ClusterBroker, Replica};
pub use local::LocalBroker;

/// Identifies a socket for as long as the process runs.
pub type SocketKey = u64;
/// Identifies one joined channel (one join) for as long as the process runs.
pub type ChannelKey = u64;

/// A message published on a topic.
pub struct Broadcast {
    pub topic: String,
    pub event: String,
    /// Raw JSON (checked before publishing) or bytes.
    pub payload: Body,
    /// Set by `broadcast_from`: this channel does not receive it. Channel
    /// keys are local to a node, so a broadcast that arrives from another
    /// node has none.
    pub from: Option<ChannelKey>,
    /// What the message is to the nodes that replicate state from it.
    pub kind: Kind,
    /// An announcement's identity: channels identified as this one do not
    /// receive it.
    pub except: Option<String>,
    /// Where it stands in its topic's history, on a topic that keeps one.
    pub position: Option<Position>,
    encoded: [OnceLock<Option<Message>>; 2],
    /// Frames of it as a channel's own push (see [`Broadcast::pushed_frame`]).
    pushed: parking_lot::Mutex<Vec<(String, Serializer, Message)>>,
    derived: OnceLock<Box<dyn Any + Send + Sync>>,
}

/// How many join references a broadcast keeps a pushed frame for: joiners
/// normally share one ("1", a fresh phoenix.js socket's first join), and a
/// few others are kept; the rest are encoded per channel.
const SHARED_PUSHES: usize = 8;

/// A broadcast's place in its topic's history: an epoch, which changes when
/// the history is lost (a restart, an expiry, a Redis that forgot it), and
/// an offset that grows by one per broadcast within an epoch.
///
/// On the wire it is `"<epoch>:<offset>"`, the epoch as 16 hex digits, in
/// the `ref` slot of the broadcast's frame (null in Phoenix): phoenix.js
/// hands it to `Channel.onMessage(event, payload, ref)`, and the colon
/// keeps it from ever equalling a client's own (numeric) reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    pub epoch: u64,
    pub offset: u64,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}:{}", self.epoch, self.offset)
    }
}

impl std::str::FromStr for Position {
    type Err = ();

    /// Exactly what [`Display`](std::fmt::Display) writes; anything else is
    /// refused.
    fn from_str(text: &str) -> Result<Position, ()> {
        let (epoch, offset) = text.split_once(':').ok_or(())?;
        if epoch.len() != 16 || offset.is_empty() || offset.len() > 20 || !offset.bytes().all(|b| b.is_ascii_digit()) {
            return Err(());
        }
        Ok(Position {
            epoch: u64::from_str_radix(epoch, 16).map_err(|_| ())?,
            offset: offset.parse().map_err(|_| ())?,
        })
    }
}

/// Whether a broadcast is a plain message or carries replicated state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An event published by a plugin, a client or the server API.
    Message,
    /// A `presence_diff` made by the host's presence: nodes that keep the
    /// topic's presences apply it before delivering it (a plugin may well
    /// broadcast an event of that name itself; that one is a `Message`).
    PresenceDiff,
    /// A presence announcement ([`crate::presence::Announcement`]): pushed
    /// by the host to each joined channel of the topic, with the channel's
    /// join reference, except to the channels identified as its `except`;
    /// never through `handle-out`.
    Announcement,
}

impl std::fmt::Debug for Broadcast {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broadcast")
            .field("topic", &self.topic)
            .field("event", &self.event)
            .field("payload", &self.payload)
            .field("from", &self.from)
            .field("kind", &self.kind)
            .field("except", &self.except)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl Broadcast {
    pub fn new(topic: String, event: String, payload: Body, from: Option<ChannelKey>) -> Self {
        Broadcast::of_kind(topic, event, payload, from, Kind::Message)
    }

    pub fn of_kind(topic: String, event: String, payload: Body, from: Option<ChannelKey>, kind: Kind) -> Self {
        Broadcast {
            topic,
            event,
            payload,
            from,
            kind,
            except: None,
            position: None,
            encoded: [OnceLock::new(), OnceLock::new()],
            pushed: parking_lot::Mutex::new(Vec::new()),
            derived: OnceLock::new(),
        }
    }

    /// The same broadcast, not for the channels identified as `except`.
    pub fn except(mut self, except: Option<String>) -> Self {
        self.except = except;
        self
    }

    /// The same broadcast at `position` in its topic's history.
    pub fn at(mut self, position: Position) -> Self {
        self.position = Some(position);
        self
    }

    /// Something derived from this broadcast once for all its subscribers
    /// on this node, such as the payload in the plugin interface's type for
    /// `handle-out`: made by `make` on first use and lent after. A broadcast
    /// holds one derived value; `None` if it already holds one of another
    /// type.
    pub fn derived<T: Any + Send + Sync>(&self, make: impl FnOnce(&Broadcast) -> T) -> Option<&T> {
        self.derived.get_or_init(|| Box::new(make(self))).downcast_ref()
    }

    /// The frame `[join_ref,null,topic,event,payload]`: this message as a
    /// push of the channel joined as `join_ref` (raw JSON), which is how a
    /// presence announcement (`user_joined`) reaches each member. Encoded
    /// once per join reference and serializer and shared by the channels
    /// with the same, so a topic of 10,000 members encodes an announcement
    /// once, not 10,000 times. `None` when the serializer cannot carry it.
    pub fn pushed_frame(&self, join_ref: &str, serializer: Serializer) -> Option<Message> {
        let mut pushed = self.pushed.lock();
        if let Some((.., frame)) = pushed.iter().find(|(r, s, _)| r == join_ref && *s == serializer) {
            return Some(frame.clone());
        }
        let topic = protocol::json_string(&self.topic);
        let message = Outbound {
            join_ref,
            reference: protocol::NULL,
            topic: &topic,
            event: &self.event,
            payload: self.payload.outbound(),
        };
        let frame = protocol::encode_frame(serializer, &message)
            .inspect_err(|error| tracing::warn!(topic = %self.topic, event = %self.event, %error, "push not sent"))
            .ok()?;
        if pushed.len() < SHARED_PUSHES {
            pushed.push((join_ref.to_owned(), serializer, frame.clone()));
        }
        Some(frame)
    }

    /// The frame `[null,null,topic,event,payload]` (a binary broadcast
    /// frame for bytes), with its position in the `ref` slot on a topic
    /// with history, encoded on first use and shared by every subscriber
    /// that speaks `serializer`. `None` when the serializer cannot carry the
    /// message (bytes to a V1 client, a topic over 255 bytes in a binary
    /// frame); that is logged once per broadcast.
    pub fn frame(&self, serializer: Serializer) -> Option<Message> {
        self.encoded[serializer.index()]
            .get_or_init(|| {
                let topic = protocol::json_string(&self.topic);
                let position = self.position.map(|p| protocol::json_string(&p.to_string()));
                let message = Outbound {
                    join_ref: protocol::NULL,
                    reference: position.as_deref().unwrap_or(protocol::NULL),
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

/// How a subscription's deliveries are handled by the subscriber. The
/// broker only hands it back with each delivery.
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

/// Where a subscriber's deliveries go: a socket's mailbox, say. Delivering
/// must not wait: a full inbox refuses (and its owner decides what a
/// subscriber that does not keep up deserves).
pub trait Inbox: Send + Sync {
    /// Queue `delivery`; `false` when it was not queued.
    fn deliver(&self, delivery: Delivery) -> bool;
}

/// One subscription: where deliveries go.
#[derive(Clone)]
pub struct Subscriber {
    pub socket: SocketKey,
    pub channel: ChannelKey,
    pub kind: Subscription,
    pub inbox: Arc<dyn Inbox>,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("socket", &self.socket)
            .field("channel", &self.channel)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// A broadcast handed to one subscriber.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message: Arc<Broadcast>,
    pub channel: ChannelKey,
    pub kind: Subscription,
}

/// Resolves once a subscription receives what every node publishes on its
/// topic (and, in a cluster, once the topic's presences are known here).
/// A local subscription is live at once.
pub type Live = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Why a publish did not reach every node. Subscribers on this node got
/// it all the same.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("the cluster is unreachable ({0}): delivered on this node only")]
    Unavailable(String),
}

/// The broker interface. Implementations must keep `publish` cheap and free
/// of long-held locks and of waits: it runs inside plugin calls.
pub trait Broker: Send + Sync {
    /// Add a subscription. `Some` when the subscription is not live across
    /// the cluster yet: what a joining channel waits for before it joins.
    fn subscribe(&self, topic: &str, subscriber: Subscriber) -> Option<Live>;

    fn unsubscribe(&self, topic: &str, socket: SocketKey, channel: ChannelKey);

    /// Deliver `message` to every subscriber of its topic, on every node,
    /// except those of socket `skip` on this node (a socket delivers its own
    /// broadcasts to itself, in order with its replies). Returns the number
    /// of deliveries queued on this node.
    fn publish(&self, message: Arc<Broadcast>, skip: Option<SocketKey>) -> Result<usize, PublishError>;

    /// The number of subscriptions to `topic` on this node.
    fn subscriber_count(&self, topic: &str) -> usize;

    /// Topics starting with `prefix` that have subscribers on this node,
    /// in order, at most `limit`, each with its subscription count (the
    /// server API's `/api/topics`).
    fn topics(&self, prefix: &str, limit: usize) -> Vec<(String, usize)>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(frame: &Message) -> &str {
        frame.to_text().expect("a text frame")
    }

    #[test]
    fn an_announcement_is_encoded_once_per_join_reference_and_shared() {
        let message = Broadcast::of_kind(
            "chat:lobby".into(),
            "user_joined".into(),
            Body::Json(r#"{"user":{"id":7}}"#.into()),
            None,
            Kind::Announcement,
        );
        let first = message.pushed_frame(r#""1""#, Serializer::V2).expect("a frame");
        assert_eq!(text(&first), r#"["1",null,"chat:lobby","user_joined",{"user":{"id":7}}]"#);
        let again = message.pushed_frame(r#""1""#, Serializer::V2).expect("a frame");
        assert_eq!(text(&again).as_ptr(), text(&first).as_ptr(), "the same join reference shares the encoding");
        let other = message.pushed_frame(r#""12""#, Serializer::V2).expect("a frame");
        assert_eq!(text(&other), r#"["12",null,"chat:lobby","user_joined",{"user":{"id":7}}]"#);
        let v1 = message.pushed_frame(r#""1""#, Serializer::V1).expect("a frame");
        assert!(text(&v1).starts_with('{'), "V1 is an object: {}", text(&v1));
        // Past the shared few, frames are still right, just not kept.
        for n in 0..2 * SHARED_PUSHES {
            let join_ref = format!("\"{}\"", 100 + n);
            let frame = message.pushed_frame(&join_ref, Serializer::V2).expect("a frame");
            assert!(text(&frame).starts_with(&format!("[{join_ref},null,")), "{}", text(&frame));
        }
        assert_eq!(message.pushed.lock().len(), SHARED_PUSHES);
    }
}
