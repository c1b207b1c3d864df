//! What a channel callback decides: [`Join`], [`HandleIn`] (with [`Reply`]
//! and [`Stop`]), [`HandleOut`] and [`HandleInfo`].
//!
//! Each holds its payloads as JSON text already encoded, object keys
//! sorted, so turning it into the host's record copies nothing.

use serde_json::Value;

use crate::Payload;

/// The outcome of [`Channel::join`](crate::Channel::join).
///
/// ```
/// use plume_sdk::{Join, json};
///
/// fn join(topic: &str) -> Join {
///     match topic {
///         "room:private" => Join::error(json!({"reason": "unauthorized"})),
///         _ => Join::ok(json!({})),
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Join {
    /// The client joins; it gets `phx_reply` with status `ok` and this
    /// response.
    Ok(Payload),
    /// The join is refused; the client gets `phx_reply` with status
    /// `error` and this response, conventionally `{"reason": ...}`.
    Error(Payload),
}

impl Join {
    /// Accept the join and reply with `response`.
    ///
    /// ```
    /// let join = plume_sdk::Join::ok(plume_sdk::json!({"messages": []}));
    /// ```
    pub fn ok(response: impl Into<Value>) -> Self {
        Self::Ok(Payload::from(response.into()))
    }

    /// Refuse the join with `response`.
    ///
    /// ```
    /// let join = plume_sdk::Join::error(plume_sdk::json!({"reason": "full"}));
    /// ```
    pub fn error(response: impl Into<Value>) -> Self {
        Self::Error(Payload::from(response.into()))
    }
}

/// Whether a [`Reply`] is a success or a failure, as the client sees it in
/// `phx_reply`'s `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyStatus {
    /// `"ok"`: phoenix.js calls the push's `receive("ok", ...)` callback.
    Ok,
    /// `"error"`: phoenix.js calls the push's `receive("error", ...)`.
    Error,
}

/// A reply to a client's push: `phx_reply` with a status and a response.
///
/// ```
/// use plume_sdk::{HandleIn, Reply, json};
///
/// let accepted: HandleIn = Reply::ok(json!({})).into();
/// let refused: HandleIn = Reply::error(json!({"reason": "invalid message"})).into();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    status: ReplyStatus,
    response: Payload,
}

impl Reply {
    /// An `ok` reply with `response` (any JSON value, not only objects).
    ///
    /// ```
    /// let reply = plume_sdk::Reply::ok(plume_sdk::json!({"count": 3}));
    /// ```
    pub fn ok(response: impl Into<Value>) -> Self {
        Self::ok_raw(Payload::from(response.into()))
    }

    /// An `error` reply with `response`, conventionally `{"reason": ...}`.
    ///
    /// ```
    /// let reply = plume_sdk::Reply::error(plume_sdk::json!({"reason": "not your turn"}));
    /// ```
    pub fn error(response: impl Into<Value>) -> Self {
        Self::error_raw(Payload::from(response.into()))
    }

    /// An `ok` reply whose response is `payload` as it is: echoing a
    /// client's payload this way neither parses nor re-encodes it.
    ///
    /// ```
    /// use plume_sdk::{HandleIn, Payload, Reply};
    ///
    /// fn ping(payload: Payload) -> HandleIn {
    ///     Reply::ok_raw(payload).into()
    /// }
    /// ```
    pub fn ok_raw(payload: Payload) -> Self {
        Self {
            status: ReplyStatus::Ok,
            response: payload,
        }
    }

    /// An `error` reply whose response is `payload` as it is.
    ///
    /// ```
    /// let reply = plume_sdk::Reply::error_raw(plume_sdk::Payload::from_raw(r#"{"reason":"x"}"#));
    /// ```
    pub fn error_raw(payload: Payload) -> Self {
        Self {
            status: ReplyStatus::Error,
            response: payload,
        }
    }

    /// Whether the reply is `ok` or `error`.
    ///
    /// ```
    /// use plume_sdk::{Reply, ReplyStatus, json};
    ///
    /// assert_eq!(Reply::ok(json!({})).status(), ReplyStatus::Ok);
    /// ```
    pub fn status(&self) -> ReplyStatus {
        self.status
    }

    /// The reply's response.
    ///
    /// ```
    /// use plume_sdk::{Reply, json};
    ///
    /// assert_eq!(Reply::ok(json!({"b": 1, "a": 2})).response().raw(), r#"{"a":2,"b":1}"#);
    /// ```
    pub fn response(&self) -> &Payload {
        &self.response
    }

    /// The status and the response, for the host's `reply` record.
    pub(crate) fn into_parts(self) -> (ReplyStatus, Payload) {
        (self.status, self.response)
    }
}

/// Stop a channel from [`Channel::handle_in`](crate::Channel::handle_in),
/// optionally replying to the push first.
///
/// A reason of `normal` or `shutdown` (or one starting with `shutdown:`)
/// closes the channel cleanly with `phx_close`. Any other reason is a crash:
/// the client gets `phx_error` and phoenix.js rejoins.
///
/// ```
/// use plume_sdk::{HandleIn, Reply, Stop, json};
///
/// let leave: HandleIn = Stop::normal().with_reply(Reply::ok(json!({}))).into();
/// let crash: HandleIn = Stop::new("unknown event: dance").into();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    reason: String,
    reply: Option<Reply>,
}

impl Stop {
    /// Stop with `reason`.
    ///
    /// ```
    /// let stop = plume_sdk::Stop::new("shutdown: room closed");
    /// ```
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            reply: None,
        }
    }

    /// Stop with reason `normal`: the channel closes with `phx_close`.
    ///
    /// ```
    /// assert_eq!(plume_sdk::Stop::normal().reason(), "normal");
    /// ```
    pub fn normal() -> Self {
        Self::new("normal")
    }

    /// Send `reply` to the push before stopping.
    ///
    /// ```
    /// use plume_sdk::{Reply, Stop, json};
    ///
    /// let stop = Stop::normal().with_reply(Reply::ok(json!({"bye": true})));
    /// ```
    pub fn with_reply(mut self, reply: Reply) -> Self {
        self.reply = Some(reply);
        self
    }

    /// The stop's reason.
    ///
    /// ```
    /// assert_eq!(plume_sdk::Stop::new("kicked").reason(), "kicked");
    /// ```
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The reply sent before stopping, if any.
    ///
    /// ```
    /// assert!(plume_sdk::Stop::normal().reply().is_none());
    /// ```
    pub fn reply(&self) -> Option<&Reply> {
        self.reply.as_ref()
    }

    /// The reason and the reply, for the host's `stop` record.
    pub(crate) fn into_parts(self) -> (String, Option<Reply>) {
        (self.reason, self.reply)
    }
}

/// The outcome of [`Channel::handle_in`](crate::Channel::handle_in).
///
/// Build it from a [`Reply`] or a [`Stop`] with `.into()`.
///
/// ```
/// use plume_sdk::{HandleIn, Payload, Reply, json};
///
/// fn handle_in(event: &str, payload: Payload) -> HandleIn {
///     match event {
///         "ping" => Reply::ok_raw(payload).into(),
///         "typing" => HandleIn::NoReply,
///         _ => HandleIn::stop(format!("unknown event: {event}")),
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandleIn {
    /// Reply to the push.
    Reply(Reply),
    /// Send no reply: the client's push times out unless the channel
    /// answers some other way.
    NoReply,
    /// Stop the channel.
    Stop(Stop),
}

impl HandleIn {
    /// Stop the channel with `reason` and no reply; see [`Stop`].
    ///
    /// ```
    /// let outcome = plume_sdk::HandleIn::stop("unknown event: dance");
    /// ```
    pub fn stop(reason: impl Into<String>) -> Self {
        Self::Stop(Stop::new(reason))
    }
}

impl From<Reply> for HandleIn {
    fn from(reply: Reply) -> Self {
        Self::Reply(reply)
    }
}

impl From<Stop> for HandleIn {
    fn from(stop: Stop) -> Self {
        Self::Stop(stop)
    }
}

/// The outcome of [`Channel::handle_out`](crate::Channel::handle_out) for
/// one intercepted broadcast.
///
/// ```
/// use plume_sdk::{HandleOut, json};
///
/// fn filter(blocked: bool) -> HandleOut {
///     if blocked { HandleOut::Drop } else { HandleOut::Push }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandleOut {
    /// Push the broadcast to this channel's client as it is.
    Push,
    /// Push the event to this channel's client with another payload.
    PushChanged(Payload),
    /// Do not push it to this client.
    Drop,
}

impl HandleOut {
    /// Push the event with `payload` instead of the broadcast's.
    ///
    /// ```
    /// let out = plume_sdk::HandleOut::push_changed(plume_sdk::json!({"body": "[redacted]"}));
    /// ```
    pub fn push_changed(payload: impl Into<Value>) -> Self {
        Self::PushChanged(Payload::from(payload.into()))
    }
}

/// The outcome of [`Channel::handle_info`](crate::Channel::handle_info).
///
/// ```
/// use plume_sdk::HandleInfo;
///
/// let keep_going = HandleInfo::NoReply;
/// let done = HandleInfo::Stop("normal".into());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandleInfo {
    /// Carry on.
    NoReply,
    /// Stop the channel with this reason (see [`Stop`] for what reasons
    /// mean).
    Stop(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_ok_reply_carries_its_response_with_sorted_keys() {
        let reply = Reply::ok(json!({"user_id": 1, "body": "hi"}));
        assert_eq!(reply.status(), ReplyStatus::Ok);
        assert_eq!(reply.response().raw(), r#"{"body":"hi","user_id":1}"#);
    }

    #[test]
    fn an_error_reply_carries_its_reason() {
        let reply = Reply::error(json!({"reason": "invalid message"}));
        assert_eq!(reply.status(), ReplyStatus::Error);
        assert_eq!(reply.response().raw(), r#"{"reason":"invalid message"}"#);
    }

    #[test]
    fn a_raw_reply_keeps_the_payload_byte_for_byte() {
        let raw = r#"{ "z": 1, "a": [1, 2] }"#;
        let (status, response) = Reply::ok_raw(Payload::from_raw(raw)).into_parts();
        let response = response.into_raw();
        assert_eq!(status, ReplyStatus::Ok);
        assert_eq!(response, raw);
    }

    #[test]
    fn a_reply_need_not_be_an_object() {
        assert_eq!(Reply::ok("x").response().raw(), r#""x""#);
    }

    #[test]
    fn a_reply_converts_into_handle_in() {
        let outcome: HandleIn = Reply::ok(json!({})).into();
        assert_eq!(outcome, HandleIn::Reply(Reply::ok(json!({}))));
    }

    #[test]
    fn a_stop_with_a_reply_keeps_both() {
        let stop = Stop::normal().with_reply(Reply::ok(json!({})));
        assert_eq!(stop.reason(), "normal");
        assert_eq!(stop.reply(), Some(&Reply::ok(json!({}))));
    }

    #[test]
    fn handle_in_stop_has_no_reply() {
        assert_eq!(HandleIn::stop("x"), HandleIn::Stop(Stop::new("x")));
    }

    #[test]
    fn join_ok_and_error_encode_their_response() {
        assert_eq!(Join::ok(json!({})), Join::Ok(Payload::from_raw("{}")));
        assert_eq!(
            Join::error(json!({"reason": "unauthorized"})),
            Join::Error(Payload::from_raw(r#"{"reason":"unauthorized"}"#))
        );
    }

    #[test]
    fn handle_out_push_changed_encodes_the_new_payload() {
        assert_eq!(
            HandleOut::push_changed(json!({"b": 1, "a": 0})),
            HandleOut::PushChanged(Payload::from_raw(r#"{"a":0,"b":1}"#))
        );
    }
}
