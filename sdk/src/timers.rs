//! Messages a channel sends itself, delivered to
//! [`Channel::handle_info`](crate::Channel::handle_info): Phoenix's
//! `Process.send_after` and `send(self(), ...)`.
//!
//! Timers belong to the channel: they die with it. To remember a timer
//! across calls (to cancel it later), keep its [`TimerId`] in the assigns.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::millis;
use crate::imports::timers as wit;
use crate::payload::encode;

/// Identifies a pending timer. It serializes as a number, so it can be kept
/// in the assigns.
///
/// ```no_run
/// use std::time::Duration;
/// use plume_sdk::{Socket, json, timers};
///
/// fn remind(socket: &mut Socket) -> Result<(), timers::TimerError> {
///     let timer = timers::send_after(Duration::from_secs(30), &json!("remind"))?;
///     socket.assign("reminder", timer.0);
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TimerId(pub u64);

/// Deliver `message` to this channel's `handle_info` after `delay`
/// (rounded down to milliseconds).
///
/// ```no_run
/// use std::time::Duration;
/// use plume_sdk::{json, timers};
///
/// let timer = timers::send_after(Duration::from_millis(500), &json!({"tick": 1}))?;
/// # Ok::<(), timers::TimerError>(())
/// ```
pub fn send_after<T: Serialize + ?Sized>(
    delay: Duration,
    message: &T,
) -> Result<TimerId, TimerError> {
    Ok(TimerId(wit::send_after(millis(delay), &encode(message)?)?))
}

/// Cancel a pending timer; `false` when it already fired or never existed.
///
/// ```no_run
/// # let socket = plume_sdk::Socket::default();
/// use plume_sdk::timers::{self, TimerId};
///
/// if let Some(timer) = socket.get::<TimerId>("reminder") {
///     timers::cancel(timer);
/// }
/// ```
pub fn cancel(id: TimerId) -> bool {
    wit::cancel(id.0)
}

/// Deliver `message` to this channel's `handle_info` once this call
/// returns: work deferred past the reply to the client.
///
/// ```no_run
/// use plume_sdk::{json, timers};
///
/// timers::send_self(&json!({"after_join": true}))?;
/// # Ok::<(), timers::TimerError>(())
/// ```
pub fn send_self<T: Serialize + ?Sized>(message: &T) -> Result<(), TimerError> {
    Ok(wit::send_self(&encode(message)?)?)
}

/// Why a timer could not be set.
#[derive(Debug, thiserror::Error)]
pub enum TimerError {
    /// Called outside a channel: only channels receive messages.
    #[error("not in a channel: timers work only in channel callbacks")]
    NotInChannel,
    /// The host refused the message as invalid JSON.
    #[error("the host refused the message as invalid JSON: {0}")]
    InvalidJson(String),
    /// A limit of the app was reached (pending timers per channel, ...).
    #[error("limit reached: {0}; cancel timers you no longer need")]
    Limit(String),
    /// The message could not be encoded as JSON.
    #[error("the message cannot be encoded as JSON: {0}")]
    Encode(#[from] serde_json::Error),
}

impl From<wit::TimerError> for TimerError {
    fn from(error: wit::TimerError) -> Self {
        match error {
            wit::TimerError::NotInChannel => Self::NotInChannel,
            wit::TimerError::InvalidJson(text) => Self::InvalidJson(text),
            wit::TimerError::Limit(text) => Self::Limit(text),
        }
    }
}
