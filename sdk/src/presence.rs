//! Phoenix.Presence on the channel's topic: who is here, with what meta.
//!
//! As with Phoenix.Presence, the host broadcasts `presence_diff` to the
//! topic whenever a presence is tracked, updated or untracked, and untracks
//! a channel when it ends; the channel pushes `presence_state` to its own
//! client, usually right after the join (from `handle_info`, after a
//! [`timers::send_self`](crate::timers::send_self) in `join`, so the join
//! reply comes first).
//!
//! ```no_run
//! use plume_sdk::{HandleInfo, Payload, Socket, channel, json, presence};
//!
//! fn after_join(_message: Payload, socket: &mut Socket) -> HandleInfo {
//!     let Some(user) = socket.user() else {
//!         return HandleInfo::NoReply;
//!     };
//!     let meta = json!({"name": user.name, "online_at": plume_sdk::clock::now_ms() / 1000});
//!     let tracked = presence::track(&user.id.to_string(), &meta)
//!         .and_then(|_| presence::list(None));
//!     match tracked {
//!         Ok(state) => {
//!             channel::push("presence_state", &state).ok();
//!             HandleInfo::NoReply
//!         }
//!         Err(err) => HandleInfo::Stop(format!("presence failed: {err}")),
//!     }
//! }
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::imports::presence as wit;
use crate::payload::encode;

/// The presences of a topic: each key with its metas, as phoenix.js's
/// `Presence` expects them (`{"<key>": {"metas": [...]}}`).
pub type Presences = BTreeMap<String, Presence>;

/// One key's presence: a meta per channel tracking the key (a user with
/// two tabs open has two).
///
/// ```no_run
/// let here = plume_sdk::presence::list(None)?;
/// let tabs = here.get("ada").map_or(0, |presence| presence.metas.len());
/// # Ok::<(), plume_sdk::presence::PresenceError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Presence {
    /// The metas, each with the `phx_ref` the host gave it.
    pub metas: Vec<Value>,
}

/// Track this channel under `key` with `meta` (a JSON object); returns the
/// meta's `phx_ref`.
///
/// ```no_run
/// use plume_sdk::{json, presence};
///
/// let phx_ref = presence::track("ada", &json!({"status": "online"}))?;
/// # Ok::<(), presence::PresenceError>(())
/// ```
pub fn track<T: Serialize + ?Sized>(key: &str, meta: &T) -> Result<String, PresenceError> {
    Ok(wit::track(key, &encode(meta)?)?)
}

/// Replace this channel's meta under `key`; returns the new `phx_ref`.
///
/// ```no_run
/// use plume_sdk::{json, presence};
///
/// presence::update("ada", &json!({"status": "away"}))?;
/// # Ok::<(), presence::PresenceError>(())
/// ```
pub fn update<T: Serialize + ?Sized>(key: &str, meta: &T) -> Result<String, PresenceError> {
    Ok(wit::update(key, &encode(meta)?)?)
}

/// Stop tracking this channel under `key`.
///
/// ```no_run
/// plume_sdk::presence::untrack("ada")?;
/// # Ok::<(), plume_sdk::presence::PresenceError>(())
/// ```
pub fn untrack(key: &str) -> Result<(), PresenceError> {
    Ok(wit::untrack(key)?)
}

/// The presences of `topic`, or of this channel's topic when `None`.
///
/// ```no_run
/// use plume_sdk::{channel, presence};
///
/// channel::push("presence_state", &presence::list(None)?)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn list(topic: Option<&str>) -> Result<Presences, PresenceError> {
    let text = wit::list(topic)?;
    serde_json::from_str(&text).map_err(PresenceError::Decode)
}

/// The number of keys present on `topic`, or on this channel's topic when
/// `None`.
///
/// ```no_run
/// let online = plume_sdk::presence::count(Some("room:lobby"))?;
/// # Ok::<(), plume_sdk::presence::PresenceError>(())
/// ```
pub fn count(topic: Option<&str>) -> Result<u64, PresenceError> {
    Ok(wit::count(topic)?)
}

/// Push `presence_state` (this topic's presences) to this channel's client,
/// as a Phoenix channel does after joining. The host writes the list itself,
/// so it is never copied through the plugin: a join into a crowded topic
/// costs the plugin the same as one into an empty topic.
///
/// ```no_run
/// use plume_sdk::{json, presence};
///
/// presence::track("42", &json!({"name": "ada", "online_at": 1_700_000_000}))?;
/// presence::push_state()?;
/// # Ok::<(), presence::PresenceError>(())
/// ```
pub fn push_state() -> Result<(), PresenceError> {
    Ok(wit::push_state()?)
}

/// A message the host pushes to the members of this channel's topic on the
/// channel's behalf ([`identify`], [`announce`]): no `handle_out` runs for
/// it, so it costs the plugin nothing per member.
#[derive(Debug, Clone)]
pub struct Announcement {
    event: String,
    payload: String,
    stamp: Option<String>,
}

impl Announcement {
    /// `event` with `payload`, which must encode as a JSON object.
    pub fn new<T: Serialize + ?Sized>(event: &str, payload: &T) -> Result<Self, PresenceError> {
        Ok(Announcement {
            event: event.to_owned(),
            payload: encode(payload)?,
            stamp: None,
        })
    }

    /// Have the host set `field` to the unix seconds at which the message
    /// is sent (a `user_left`'s `left_at`, say).
    pub fn stamped(mut self, field: &str) -> Self {
        self.stamp = Some(field.to_owned());
        self
    }

    fn wit(&self) -> wit::Announcement {
        wit::Announcement {
            event: self.event.clone(),
            payload: self.payload.clone(),
            stamp: self.stamp.clone(),
        }
    }
}

/// Say who this channel is, for [`announce`] (a user id, say: every tab
/// of a user is identified alike); and, with `left`, have the host push
/// `left` to every other channel of the topic when this channel ends
/// (leaves, crashes or its socket closes), after `terminate` and before
/// its presences' `leaves`. Usually called in `join`.
///
/// ```no_run
/// use plume_sdk::{json, presence::{self, Announcement}};
///
/// let left = Announcement::new("user_left", &json!({"user_id": 42}))?.stamped("left_at");
/// presence::identify("42", Some(&left))?;
/// # Ok::<(), presence::PresenceError>(())
/// ```
pub fn identify(identity: &str, left: Option<&Announcement>) -> Result<(), PresenceError> {
    let left = left.map(Announcement::wit);
    Ok(wit::identify(identity, left.as_ref())?)
}

/// Push `message` to every channel of this topic except those identified
/// as `except` ([`identify`]), after the presence diffs staged so far on
/// the topic. It replaces a broadcast intercepted to hide it from some
/// members: the host filters, so a join into a room of thousands costs no
/// plugin call per member.
///
/// ```no_run
/// use plume_sdk::{json, presence::{self, Announcement}};
///
/// presence::track("42", &json!({"name": "ada"}))?;
/// presence::push_state()?;
/// presence::announce("42", &Announcement::new("user_joined", &json!({"user_id": 42, "name": "ada"}))?)?;
/// # Ok::<(), presence::PresenceError>(())
/// ```
pub fn announce(except: &str, message: &Announcement) -> Result<(), PresenceError> {
    Ok(wit::announce(except, &message.wit())?)
}

/// Why a presence operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    /// The server runs without presence.
    #[error("presence is not enabled on this server; enable it to track presences")]
    NotEnabled,
    /// Called outside a channel.
    #[error("not in a channel: presence works only in channel callbacks")]
    NotInChannel,
    /// The host refused a meta as invalid JSON.
    #[error("the host refused the meta as invalid JSON: {0}")]
    InvalidJson(String),
    /// `update` or `untrack` of a key this channel does not track.
    #[error("this channel does not track that key; call presence::track first")]
    NotTracked,
    /// A limit of the app was reached; the text names it.
    #[error("limit reached: {0}")]
    Limit(String),
    /// The app was not granted the `presence` capability; the text says
    /// how the operator grants it.
    #[error("not granted: {0}")]
    NotGranted(String),
    /// The change could not reach every node of a cluster; the text says
    /// what was done.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A meta could not be encoded as JSON.
    #[error("the meta cannot be encoded as JSON: {0}")]
    Encode(#[from] serde_json::Error),
    /// The host's presence list was not in the phoenix.js format.
    #[error("the host sent a presence list in an unexpected format: {0}")]
    Decode(#[source] serde_json::Error),
}

impl From<wit::PresenceError> for PresenceError {
    fn from(error: wit::PresenceError) -> Self {
        match error {
            wit::PresenceError::NotEnabled => Self::NotEnabled,
            wit::PresenceError::NotInChannel => Self::NotInChannel,
            wit::PresenceError::InvalidJson(text) => Self::InvalidJson(text),
            wit::PresenceError::NotTracked => Self::NotTracked,
            wit::PresenceError::Limit(text) => Self::Limit(text),
            wit::PresenceError::NotGranted(text) => Self::NotGranted(text),
            wit::PresenceError::Unavailable(text) => Self::Unavailable(text),
        }
    }
}
