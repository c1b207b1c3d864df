//! The Phoenix V2 JSON frames the load generator sends, and the cheap reads
//! it makes of the frames it receives.
//!
//! Frames are `[join_ref, ref, topic, event, payload]`. Every ref the tool
//! sends is a decimal number in a JSON string, so replies are matched by
//! number. Replies are read with a borrowed parse (no allocation unless the
//! reply is an error). Fan-out broadcasts arrive by the million, so their
//! body is found by scanning instead: the scan accepts only the compact form
//! both servers send, and a frame it does not recognize is counted as such by
//! the caller, never guessed at.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

/// The join_ref (and the ref of the join itself) of every channel the tool
/// joins: each socket joins exactly one topic.
pub const JOIN_REF: u64 = 1;

/// A push on a joined channel, or with `join_ref` `None` a socket-level one.
pub fn push(
    join_ref: Option<u64>,
    reference: u64,
    topic: &str,
    event: &str,
    payload: &str,
) -> String {
    let mut frame = String::with_capacity(40 + topic.len() + event.len() + payload.len());
    frame.push('[');
    match join_ref {
        Some(join_ref) => {
            let _ = write!(frame, "\"{join_ref}\"");
        }
        None => frame.push_str("null"),
    }
    let _ = write!(frame, ",\"{reference}\",");
    push_json_string(&mut frame, topic);
    frame.push(',');
    push_json_string(&mut frame, event);
    frame.push(',');
    frame.push_str(payload);
    frame.push(']');
    frame
}

/// `phx_join` of `topic` with an empty payload, ref and join_ref [`JOIN_REF`].
pub fn join(topic: &str) -> String {
    push(Some(JOIN_REF), JOIN_REF, topic, "phx_join", "{}")
}

/// A socket heartbeat: `[null,ref,"phoenix","heartbeat",{}]`.
pub fn heartbeat(reference: u64) -> String {
    push(None, reference, "phoenix", "heartbeat", "{}")
}

/// Appends `text` as a JSON string literal.
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// How the server answered a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// Any other status, with the raw response for the error message.
    Error(String),
}

/// A `phx_reply` frame, reduced to what the tool checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub reference: u64,
    pub status: Status,
}

/// A frame as far as a reply check needs it: ref, event and payload.
#[derive(Deserialize)]
struct Frame<'a>(
    IgnoredAny,
    #[serde(borrow)] Option<Cow<'a, str>>,
    IgnoredAny,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] &'a RawValue,
);

#[derive(Deserialize)]
struct ReplyPayload<'a> {
    #[serde(borrow)]
    status: Cow<'a, str>,
    #[serde(borrow)]
    response: &'a RawValue,
}

/// The reply in `text`, when it is a `phx_reply` to one of the tool's
/// numbered pushes; `None` for anything else (broadcasts, pushes, garbage).
pub fn reply(text: &str) -> Option<Reply> {
    let Frame(_, reference, _, event, payload) = serde_json::from_str(text).ok()?;
    if event != "phx_reply" {
        return None;
    }
    let reference = reference?.parse().ok()?;
    let payload: ReplyPayload = serde_json::from_str(payload.get()).ok()?;
    let status = if payload.status == "ok" {
        Status::Ok
    } else {
        Status::Error(format!("{} {}", payload.status, payload.response.get()))
    };
    Some(Reply { reference, status })
}

/// The `body` of a `new_msg` broadcast, `[null,null,topic,"new_msg",{.."body":"B"..}]`
/// (or with a history position in the ref slot, `[null,"<epoch>:<offset>",...]`),
/// when B needs no unescaping (the fan-out scenario's bodies never do).
pub fn new_msg_body(text: &str) -> Option<&str> {
    const EVENT: &str = "\"new_msg\",{";
    const KEY: &str = "\"body\":\"";
    let rest = match text.strip_prefix("[null,null,") {
        Some(rest) => rest,
        None => {
            // A position: 16 hex digits, a colon, an offset, quoted.
            let positioned = text.strip_prefix("[null,\"")?;
            let end = positioned.find('"')?;
            let (epoch, offset) = positioned[..end].split_once(':')?;
            if epoch.len() != 16 || !epoch.bytes().all(|b| b.is_ascii_hexdigit()) || !offset.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            positioned[end + 1..].strip_prefix(',')?
        }
    };
    let payload = &rest[rest.find(EVENT)? + EVENT.len()..];
    let body = &payload[payload.find(KEY)? + KEY.len()..];
    let body = &body[..body.find('"')?];
    if body.contains('\\') {
        None
    } else {
        Some(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_are_v2_arrays_with_escaped_strings() {
        assert_eq!(
            push(Some(1), 7, "room:lobby", "ping", "{\"p\":1}"),
            r#"["1","7","room:lobby","ping",{"p":1}]"#
        );
        assert_eq!(heartbeat(3), r#"[null,"3","phoenix","heartbeat",{}]"#);
        assert_eq!(
            join("room:\"x\""),
            r#"["1","1","room:\"x\"","phx_join",{}]"#
        );
    }

    #[test]
    fn replies_are_matched_by_number_and_status() {
        let ok = r#"["1","42","room:lobby","phx_reply",{"response":{"p":1},"status":"ok"}]"#;
        assert_eq!(
            reply(ok),
            Some(Reply {
                reference: 42,
                status: Status::Ok
            })
        );
        let error = r#"[null,"5","room:x","phx_reply",{"response":{"reason":"unmatched topic"},"status":"error"}]"#;
        assert_eq!(
            reply(error),
            Some(Reply {
                reference: 5,
                status: Status::Error(r#"error {"reason":"unmatched topic"}"#.into())
            })
        );
        assert_eq!(
            reply(r#"[null,null,"room:x","new_msg",{"body":"b"}]"#),
            None
        );
        assert_eq!(reply("not json"), None);
    }

    #[test]
    fn broadcast_bodies_are_found_in_either_key_order() {
        assert_eq!(
            new_msg_body(r#"[null,null,"room:f","new_msg",{"body":"0:17","user_id":3}]"#),
            Some("0:17")
        );
        assert_eq!(
            new_msg_body(r#"[null,null,"room:f","new_msg",{"user_id":3,"body":"1:9"}]"#),
            Some("1:9")
        );
        assert_eq!(
            new_msg_body(r#"[null,null,"room:f","other",{"body":"1:9"}]"#),
            None
        );
        assert_eq!(
            new_msg_body(r#"[null,"00000000000000ff:42","room:f","new_msg",{"body":"2:5"}]"#),
            Some("2:5"),
            "a broadcast with its history position"
        );
        assert_eq!(
            new_msg_body(r#"[null,"7","room:f","new_msg",{"body":"2:5"}]"#),
            None,
            "a reply's ref is no position"
        );
        assert_eq!(
            new_msg_body(r#"["1",null,"room:f","new_msg",{"body":"1:9"}]"#),
            None
        );
    }
}
