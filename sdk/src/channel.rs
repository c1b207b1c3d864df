//! Effects on the channel a call is made for, and on the app's topics:
//! pushes, broadcasts, subscriptions, disconnects, and late replies
//! ([`socket_ref`] and [`reply`], Phoenix's `socket_ref/1` and `reply/2`).
//!
//! Payloads are anything that serializes (build them with
//! [`json!`](crate::json)); they are encoded with object keys sorted.
//! Every function fails with [`ChannelError::NotInChannel`] when called from
//! a socket handler.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::__bindings::host::types::Payload as WitPayload;
use crate::imports::channel as wit;
use crate::payload::encode;
use crate::Reply;

fn json<T: Serialize + ?Sized>(payload: &T) -> Result<WitPayload, ChannelError> {
    Ok(WitPayload::Json(encode(payload)?))
}

/// Push `event` with `payload` to this channel's client only.
///
/// ```no_run
/// use plume_sdk::{channel, json};
///
/// channel::push("welcome", &json!({"motd": "be nice"}))?;
/// # Ok::<(), channel::ChannelError>(())
/// ```
pub fn push<T: Serialize + ?Sized>(event: &str, payload: &T) -> Result<(), ChannelError> {
    Ok(wit::push(event, &json(payload)?)?)
}

/// Broadcast `event` with `payload` on this channel's topic, to every
/// subscriber, this channel's client included.
///
/// ```no_run
/// use plume_sdk::{channel, json};
///
/// channel::broadcast("new_msg", &json!({"body": "hi", "user_id": 1}))?;
/// # Ok::<(), channel::ChannelError>(())
/// ```
pub fn broadcast<T: Serialize + ?Sized>(event: &str, payload: &T) -> Result<(), ChannelError> {
    Ok(wit::broadcast(event, &json(payload)?)?)
}

/// Broadcast on this channel's topic to every subscriber but this channel.
///
/// ```no_run
/// use plume_sdk::{channel, json};
///
/// channel::broadcast_from("typing", &json!({"user_id": 1}))?;
/// # Ok::<(), channel::ChannelError>(())
/// ```
pub fn broadcast_from<T: Serialize + ?Sized>(event: &str, payload: &T) -> Result<(), ChannelError> {
    Ok(wit::broadcast_from(event, &json(payload)?)?)
}

/// Broadcast on any `topic` of the app, joined by this channel or not.
///
/// ```no_run
/// use plume_sdk::{channel, json};
///
/// channel::broadcast_to("admin:audit", "joined", &json!({"topic": "room:1"}))?;
/// # Ok::<(), channel::ChannelError>(())
/// ```
pub fn broadcast_to<T: Serialize + ?Sized>(
    topic: &str,
    event: &str,
    payload: &T,
) -> Result<(), ChannelError> {
    Ok(wit::broadcast_to(topic, event, &json(payload)?)?)
}

/// Push `event` with a binary payload to this channel's client: a V2
/// binary frame. Clients of the V1 serializer or long-poll cannot receive
/// it (the host drops it for them and logs it).
///
/// ```no_run
/// plume_sdk::channel::push_binary("frame", &[0xca, 0xfe])?;
/// # Ok::<(), plume_sdk::channel::ChannelError>(())
/// ```
pub fn push_binary(event: &str, bytes: &[u8]) -> Result<(), ChannelError> {
    Ok(wit::push(event, &WitPayload::Binary(bytes.to_vec()))?)
}

/// Broadcast `event` with a binary payload on this channel's topic, to
/// every subscriber (a V2 binary frame, encoded once).
///
/// ```no_run
/// plume_sdk::channel::broadcast_binary("frame", &[0xca, 0xfe])?;
/// # Ok::<(), plume_sdk::channel::ChannelError>(())
/// ```
pub fn broadcast_binary(event: &str, bytes: &[u8]) -> Result<(), ChannelError> {
    Ok(wit::broadcast(event, &WitPayload::Binary(bytes.to_vec()))?)
}

/// [`broadcast_binary`] to every subscriber but this channel.
///
/// ```no_run
/// plume_sdk::channel::broadcast_from_binary("frame", &[0xca, 0xfe])?;
/// # Ok::<(), plume_sdk::channel::ChannelError>(())
/// ```
pub fn broadcast_from_binary(event: &str, bytes: &[u8]) -> Result<(), ChannelError> {
    Ok(wit::broadcast_from(event, &WitPayload::Binary(bytes.to_vec()))?)
}

/// [`broadcast_binary`] on any `topic` of the app.
///
/// ```no_run
/// plume_sdk::channel::broadcast_to_binary("feed:1", "frame", &[0xca, 0xfe])?;
/// # Ok::<(), plume_sdk::channel::ChannelError>(())
/// ```
pub fn broadcast_to_binary(topic: &str, event: &str, bytes: &[u8]) -> Result<(), ChannelError> {
    Ok(wit::broadcast_to(topic, event, &WitPayload::Binary(bytes.to_vec()))?)
}

/// Receive the broadcasts on `topic` in
/// [`Channel::handle_info`](crate::Channel::handle_info), as a
/// [`Broadcast`], until [`unsubscribe`] or the channel ends.
///
/// ```no_run
/// plume_sdk::channel::subscribe("announcements")?;
/// # Ok::<(), plume_sdk::channel::ChannelError>(())
/// ```
pub fn subscribe(topic: &str) -> Result<(), ChannelError> {
    Ok(wit::subscribe(topic)?)
}

/// Stop receiving a topic subscribed with [`subscribe`].
///
/// ```no_run
/// plume_sdk::channel::unsubscribe("announcements")?;
/// # Ok::<(), plume_sdk::channel::ChannelError>(())
/// ```
pub fn unsubscribe(topic: &str) -> Result<(), ChannelError> {
    Ok(wit::unsubscribe(topic)?)
}

/// Close every socket whose id is `socket_id` (see
/// [`SocketHandler::id`](crate::SocketHandler::id)), as a `disconnect`
/// broadcast to that id does in Phoenix.
///
/// ```no_run
/// plume_sdk::channel::disconnect("user_socket:42")?;
/// # Ok::<(), plume_sdk::channel::ChannelError>(())
/// ```
pub fn disconnect(socket_id: &str) -> Result<(), ChannelError> {
    Ok(wit::disconnect(socket_id)?)
}

/// The push [`Channel::handle_in`](crate::Channel::handle_in) is handling,
/// as a [`SocketRef`] to answer it later with [`reply`]; `None` outside
/// `handle_in`. Phoenix's `socket_ref(socket)`.
///
/// Return [`HandleIn::NoReply`](crate::HandleIn::NoReply), keep the ref in
/// the assigns, and reply from a later call of the same channel, typically
/// [`Channel::handle_info`](crate::Channel::handle_info) when the outcome
/// of an [`http`](crate::http) request arrives:
///
/// ```no_run
/// use plume_sdk::{HandleIn, Socket, channel, http, json};
///
/// fn handle_in(event: &str, socket: &mut Socket) -> HandleIn {
///     let request = http::get("https://api.example.com/quote").send();
///     if let (Ok(id), Some(socket_ref)) = (request, channel::socket_ref()) {
///         // Remember whom to answer when request `id` comes back.
///         socket.assign(&format!("waiting:{}", id.0), socket_ref);
///     }
///     HandleIn::NoReply
/// }
/// ```
pub fn socket_ref() -> Option<SocketRef> {
    wit::socket_ref().map(SocketRef)
}

/// Answer a push later: the client gets `phx_reply` for the push
/// `socket_ref` was taken from, in order with this call's other output.
/// Phoenix's `reply(socket_ref, reply)`.
///
/// Only the channel that took the ref can answer it, and only while that
/// join lasts: a ref from a join that has ended (the client left or
/// rejoined) or from another channel fails with
/// [`ChannelError::StaleRef`], text that is not a ref with
/// [`ChannelError::InvalidRef`]. Nothing is sent then.
///
/// ```no_run
/// use plume_sdk::{HandleInfo, Reply, Socket, channel, json};
///
/// fn handle_info(socket: &mut Socket) -> HandleInfo {
///     if let Some(socket_ref) = socket.get::<channel::SocketRef>("waiting") {
///         let _ = channel::reply(&socket_ref, Reply::ok(json!({"done": true})));
///     }
///     HandleInfo::NoReply
/// }
/// ```
pub fn reply(socket_ref: &SocketRef, reply: Reply) -> Result<(), ChannelError> {
    Ok(wit::reply(&socket_ref.0, &reply.into())?)
}

/// A push to answer later with [`reply`]: opaque text, signed by the host,
/// that serializes as a string so it can be kept in the assigns or the
/// key-value store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SocketRef(pub String);

impl From<SocketRef> for Value {
    fn from(socket_ref: SocketRef) -> Self {
        Value::String(socket_ref.0)
    }
}

/// A broadcast on a topic subscribed with [`subscribe`], as
/// [`Channel::handle_info`](crate::Channel::handle_info) receives it.
///
/// ```no_run
/// use plume_sdk::{HandleInfo, Payload, channel};
///
/// fn handle_info(message: Payload) -> HandleInfo {
///     if let Ok(broadcast) = message.parse::<channel::Broadcast>() {
///         let _ = channel::push(&broadcast.event, &broadcast.payload);
///     }
///     HandleInfo::NoReply
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Broadcast {
    /// The topic it was broadcast on.
    pub topic: String,
    /// Its event.
    pub event: String,
    /// Its payload; `null` for a binary broadcast.
    #[serde(default)]
    pub payload: Value,
    /// A binary broadcast's bytes, base64-encoded (standard alphabet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<String>,
}

/// Why a channel effect failed.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// Called outside a channel: socket handlers have no channel to act on.
    #[error("not in a channel: channel effects work only in channel callbacks")]
    NotInChannel,
    /// The host refused a payload as invalid JSON.
    #[error("the host refused the payload as invalid JSON: {0}")]
    InvalidJson(String),
    /// A topic name is empty or too long.
    #[error("invalid topic: {0}")]
    InvalidTopic(String),
    /// A limit of the app was reached; the text names it.
    #[error("limit reached: {0}; send less or raise the app's limit")]
    Limit(String),
    /// The app was not granted the capability this needs (`broadcast_to`,
    /// `disconnect`); the text names it and how the operator grants it.
    #[error("not granted: {0}")]
    NotGranted(String),
    /// The host could not do all of it (e.g. a cluster node is
    /// unreachable); the text says what was done.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// [`reply`] was given text that is not a socket ref.
    #[error("not a socket ref: {0}")]
    InvalidRef(String),
    /// [`reply`] was given the ref of a push this channel's live join did
    /// not receive: the join it came from has ended, or it belongs to
    /// another channel. Nothing was sent.
    #[error("stale socket ref: {0}")]
    StaleRef(String),
    /// The payload could not be encoded as JSON.
    #[error("the payload cannot be encoded as JSON: {0}")]
    Encode(#[from] serde_json::Error),
}

impl From<wit::ChannelError> for ChannelError {
    fn from(error: wit::ChannelError) -> Self {
        match error {
            wit::ChannelError::NotInChannel => Self::NotInChannel,
            wit::ChannelError::InvalidJson(text) => Self::InvalidJson(text),
            wit::ChannelError::InvalidTopic(text) => Self::InvalidTopic(text),
            wit::ChannelError::Limit(text) => Self::Limit(text),
            wit::ChannelError::NotGranted(text) => Self::NotGranted(text),
            wit::ChannelError::Unavailable(text) => Self::Unavailable(text),
            wit::ChannelError::InvalidRef(text) => Self::InvalidRef(text),
            wit::ChannelError::StaleRef(text) => Self::StaleRef(text),
        }
    }
}
