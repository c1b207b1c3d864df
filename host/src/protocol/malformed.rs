//! The answer to a malformed frame.
//!
//! A frame that is not a message gets an error `phx_reply` to its
//! reference when the reference can be read, as Phoenix answers a push it
//! cannot handle, so the client's push fails instead of waiting for its
//! timeout. A frame whose reference cannot be read gets no answer. Either
//! way the socket and its channels are untouched.

use serde_json::value::RawValue;

use super::{NULL, Outbound, Payload};

/// The reply's response: `{"reason": "malformed message: <reason>"}`.
pub fn response(reason: &str) -> String {
    serde_json::json!({ "reason": format!("malformed message: {reason}") }).to_string()
}

/// The error reply to a malformed frame whose `reference` could be read,
/// with `response` from [`response`]. A topic that could not be read is
/// answered on `phoenix`.
pub fn reply<'a>(
    reference: &'a RawValue,
    join_ref: Option<&'a RawValue>,
    topic: Option<&'a RawValue>,
    response: &'a str,
) -> Outbound<'a> {
    Outbound {
        join_ref: join_ref.map_or(NULL, RawValue::get),
        reference: reference.get(),
        topic: topic.map_or("\"phoenix\"", RawValue::get),
        event: "phx_reply",
        payload: Payload::Reply {
            status: "error",
            response,
        },
    }
}
