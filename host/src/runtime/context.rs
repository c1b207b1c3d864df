//! What a plugin call may touch, and what it asks the socket to do after.
//!
//! A call's host imports either act at once on shared state (broker,
//! key-value, tokens) or record an [`Effect`] that the calling socket applies
//! when the call returns, in the order the plugin made them. Effects keep
//! per-client ordering exact: a push made during `handle-in` reaches the
//! client before the reply, as in Phoenix.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::IgnoredAny;

use crate::app::App;
use crate::pubsub::{Broadcast, ChannelKey, SocketKey};

/// Identifies a pending timer of a channel.
pub type TimerId = u64;

static NEXT_TIMER: AtomicU64 = AtomicU64::new(1);

/// A fresh timer id, unique for the process.
pub fn next_timer_id() -> TimerId {
    NEXT_TIMER.fetch_add(1, Ordering::Relaxed)
}

/// The channel a call is made for, when it is made for one.
#[derive(Debug)]
pub struct ChannelScope {
    pub socket: SocketKey,
    pub channel: ChannelKey,
    pub topic: Arc<str>,
    /// The channel's pending timers, lent for the call so `cancel` can tell
    /// whether a timer is still pending.
    pub timers: HashSet<TimerId>,
    /// The reference of the push `handle-in` is handling (raw JSON, as the
    /// client sent it); `None` in every other call. `socket-ref` wraps it.
    pub push_ref: Option<String>,
    /// The channel's HTTP requests in flight, counted during the call
    /// against `max_http_in_flight_per_channel`.
    pub http_in_flight: usize,
}

impl ChannelScope {
    /// The scope of a call for channel `channel` of socket `socket`.
    pub fn new(socket: SocketKey, channel: ChannelKey, topic: Arc<str>) -> ChannelScope {
        ChannelScope {
            socket,
            channel,
            topic,
            timers: HashSet::new(),
            push_ref: None,
            http_in_flight: 0,
        }
    }
}

/// Something the calling socket does after the call returns.
#[derive(Debug)]
pub enum Effect {
    /// Push to this channel's client.
    Push { event: String, payload: crate::protocol::Body },
    /// Push `presence_state` of the channel's topic, a frame shared with
    /// the topic's other joiners ([`crate::presence::Presence::state_frame`]).
    PresenceState,
    /// Who this channel is to presence announcements, and what its topic
    /// is told when it ends (`presence.identify`).
    Identify { identity: String, left: Option<crate::presence::Announcement> },
    /// A broadcast this socket published: delivered to its own subscribed
    /// channels here, in order, rather than through its mailbox.
    Deliver(Arc<Broadcast>),
    SendAfter { id: TimerId, delay_ms: u64, message: String },
    Cancel(TimerId),
    SendSelf(String),
    Subscribe(String),
    Unsubscribe(String),
    /// A late reply (`channel.reply`) to the push with this reference (raw
    /// JSON) on this channel.
    Reply { reference: String, ok: bool, body: crate::protocol::Body },
    /// Start an HTTP request; its outcome goes to this channel's
    /// `handle-info`.
    Http { id: u64, request: Box<crate::http::Request>, permit: crate::http::Permit },
}

/// Everything one call may reach.
pub struct CallContext {
    pub app: Arc<App>,
    /// The plugin's name, for log lines.
    pub plugin: Arc<str>,
    /// The route's plugin configuration (JSON).
    pub config: Arc<str>,
    pub scope: Option<ChannelScope>,
    pub effects: Vec<Effect>,
    /// Bytes pushed and broadcast so far in this call, against the app's
    /// `max_output_bytes_per_call`.
    pub output_bytes: usize,
}

impl CallContext {
    pub fn new(app: Arc<App>, plugin: Arc<str>, config: Arc<str>, scope: Option<ChannelScope>) -> Self {
        CallContext {
            app,
            plugin,
            config,
            scope,
            effects: Vec::new(),
            output_bytes: 0,
        }
    }

    /// Count `bytes` of output against the call's budget. Every message
    /// counts a fixed overhead too, so a loop of empty pushes is bounded
    /// as well: the effects it queues live in host memory until the call
    /// returns.
    pub fn spend_output(&mut self, bytes: usize) -> Result<(), String> {
        const MESSAGE_OVERHEAD: usize = 64;
        let max = self.app.limits.max_output_bytes_per_call;
        let total = self.output_bytes + bytes + MESSAGE_OVERHEAD;
        if total > max {
            return Err(format!(
                "one call may push and broadcast at most {max} bytes (max_output_bytes_per_call)"
            ));
        }
        self.output_bytes = total;
        Ok(())
    }
}

/// Why a JSON value from a plugin was refused.
pub fn check_json(text: &str) -> Result<(), String> {
    serde_json::from_str::<IgnoredAny>(text)
        .map(drop)
        .map_err(|e| format!("not valid JSON: {e}"))
}
