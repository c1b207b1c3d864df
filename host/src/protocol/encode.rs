//! Encoding server messages. Output matches a Phoenix 1.7 server byte for
//! byte: replies are `{"response":...,"status":...}` (Jason sorts the keys of
//! small maps), V1 objects list their keys in sorted order too.

use std::borrow::Cow;

use tokio_tungstenite::tungstenite::Message;

use super::{Serializer, binary};

/// A message to a client, as raw JSON pieces.
#[derive(Debug, Clone, Copy)]
pub struct Outbound<'a> {
    /// Raw JSON (`"1"`, `1` or `null`).
    pub join_ref: &'a str,
    /// Raw JSON (`"1"`, `1` or `null`).
    pub reference: &'a str,
    /// Raw JSON: normally a quoted topic, but a reply to a push whose topic
    /// was not a string echoes that value back.
    pub topic: &'a str,
    /// The event name, unescaped.
    pub event: &'a str,
    pub payload: Payload<'a>,
}

/// The payload of an outbound message.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// Raw JSON, written as is.
    Raw(&'a str),
    /// A `phx_reply` payload: `{"response": <raw JSON>, "status": <status>}`.
    Reply { status: &'a str, response: &'a str },
    /// Bytes: a binary frame (a push, or a broadcast when both references
    /// are `null`). Only the V2 serializer has binary frames.
    Binary(&'a [u8]),
    /// A reply whose response is bytes: a binary frame of kind reply.
    BinaryReply { status: &'a str, response: &'a [u8] },
}

/// Why a message cannot be sent to a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unencodable {
    #[error("a binary payload cannot be sent to a client of the V1 serializer")]
    BinaryOnV1,
    #[error("the {0} of a binary frame is over 255 bytes")]
    FieldTooLong(&'static str),
}

/// Encode one message as a frame: text for JSON payloads, binary for bytes.
pub fn encode_frame(serializer: Serializer, message: &Outbound<'_>) -> Result<Message, Unencodable> {
    let binary = match message.payload {
        Payload::Raw(_) | Payload::Reply { .. } => return Ok(Message::Text(encode(serializer, message).into())),
        _ if serializer == Serializer::V1 => return Err(Unencodable::BinaryOnV1),
        Payload::Binary(bytes) if message.join_ref == "null" && message.reference == "null" => {
            binary::encode_broadcast(&field_text(message.topic), message.event, bytes)
        }
        Payload::Binary(bytes) => binary::encode_push(&field_text(message.join_ref), &field_text(message.topic), message.event, bytes),
        Payload::BinaryReply { status, response } => binary::encode_reply(
            &field_text(message.join_ref),
            &field_text(message.reference),
            &field_text(message.topic),
            status,
            response,
        ),
    };
    binary
        .map(|bytes| Message::Binary(bytes.into()))
        .map_err(|binary::FieldTooLong(field)| Unencodable::FieldTooLong(field))
}

/// A raw JSON header field as the text a binary frame carries: strings
/// unquoted, `null` empty, numbers as written.
fn field_text(raw: &str) -> Cow<'_, str> {
    if raw == "null" {
        return Cow::Borrowed("");
    }
    if raw.starts_with('"') {
        if let Ok(text) = serde_json::from_str::<&str>(raw) {
            return Cow::Borrowed(text);
        }
        if let Ok(text) = serde_json::from_str::<String>(raw) {
            return Cow::Owned(text);
        }
    }
    Cow::Borrowed(raw)
}

/// Encode one message as the text of a frame.
pub fn encode(serializer: Serializer, message: &Outbound<'_>) -> String {
    let payload_len = match message.payload {
        Payload::Raw(raw) => raw.len(),
        Payload::Reply { response, .. } => response.len() + 32,
        Payload::Binary(_) | Payload::BinaryReply { .. } => 4,
    };
    let mut out = String::with_capacity(
        64 + message.join_ref.len()
            + message.reference.len()
            + message.topic.len()
            + message.event.len()
            + payload_len,
    );
    match serializer {
        Serializer::V2 => {
            out.push('[');
            out.push_str(message.join_ref);
            out.push(',');
            out.push_str(message.reference);
            out.push(',');
            out.push_str(message.topic);
            out.push(',');
            push_json_string(&mut out, message.event);
            out.push(',');
            push_payload(&mut out, message.payload);
            out.push(']');
        }
        Serializer::V1 => {
            // Phoenix's V1 serializer sends only topic, event, payload and
            // ref (no join_ref), in sorted key order.
            out.push_str("{\"event\":");
            push_json_string(&mut out, message.event);
            out.push_str(",\"payload\":");
            push_payload(&mut out, message.payload);
            out.push_str(",\"ref\":");
            out.push_str(message.reference);
            out.push_str(",\"topic\":");
            out.push_str(message.topic);
            out.push('}');
        }
    }
    out
}

/// Text frames only: [`encode_frame`] sends binary payloads as binary
/// frames, and a caller that encodes one as text gets `null`.
fn push_payload(out: &mut String, payload: Payload<'_>) {
    match payload {
        Payload::Raw(raw) => out.push_str(raw),
        Payload::Binary(_) | Payload::BinaryReply { .. } => out.push_str("null"),
        Payload::Reply { status, response } => {
            out.push_str("{\"response\":");
            out.push_str(response);
            out.push_str(",\"status\":");
            push_json_string(out, status);
            out.push('}');
        }
    }
}

/// `value` as a JSON string literal.
pub fn json_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    push_json_string(&mut out, value);
    out
}

fn push_json_string(out: &mut String, value: &str) {
    let needs_escape = value.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\');
    if needs_escape {
        // serde_json's escaping is the reference; the common case skips it.
        out.push_str(&serde_json::to_string(value).unwrap_or_else(|_| "\"\"".to_owned()));
    } else {
        out.push('"');
        out.push_str(value);
        out.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply<'a>(status: &'a str, response: &'a str) -> Outbound<'a> {
        Outbound {
            join_ref: r#""2""#,
            reference: r#""3""#,
            topic: r#""room:lobby""#,
            event: "phx_reply",
            payload: Payload::Reply { status, response },
        }
    }

    #[test]
    fn v2_reply_matches_phoenix_bytes() {
        assert_eq!(
            encode(Serializer::V2, &reply("ok", r#"{"hello":"world","n":1}"#)),
            r#"["2","3","room:lobby","phx_reply",{"response":{"hello":"world","n":1},"status":"ok"}]"#
        );
    }

    #[test]
    fn v2_broadcast_has_null_references() {
        let m = Outbound {
            join_ref: "null",
            reference: "null",
            topic: r#""room:lobby""#,
            event: "new_msg",
            payload: Payload::Raw(r#"{"body":"hi","user_id":42}"#),
        };
        assert_eq!(
            encode(Serializer::V2, &m),
            r#"[null,null,"room:lobby","new_msg",{"body":"hi","user_id":42}]"#
        );
    }

    #[test]
    fn v1_object_has_sorted_keys() {
        assert_eq!(
            encode(Serializer::V1, &reply("error", r#"{"reason":"x"}"#)),
            r#"{"event":"phx_reply","payload":{"response":{"reason":"x"},"status":"error"},"ref":"3","topic":"room:lobby"}"#
        );
    }

    #[test]
    fn binary_payloads_become_binary_frames_of_the_right_kind() {
        let push = Outbound {
            join_ref: r#""1""#,
            reference: "null",
            topic: r#""room:lobby""#,
            event: "blob",
            payload: Payload::Binary(&[7, 8]),
        };
        let frame = encode_frame(Serializer::V2, &push).expect("encodes");
        assert_eq!(frame, Message::Binary([&[0u8, 1, 10, 4][..], b"1room:lobbyblob", &[7, 8]].concat().into()));
        let broadcast = Outbound { join_ref: "null", ..push };
        let frame = encode_frame(Serializer::V2, &broadcast).expect("encodes");
        assert_eq!(frame, Message::Binary([&[2u8, 10, 4][..], b"room:lobbyblob", &[7, 8]].concat().into()));
        let reply = Outbound {
            reference: "3",
            event: "phx_reply",
            payload: Payload::BinaryReply { status: "ok", response: &[1] },
            ..push
        };
        let frame = encode_frame(Serializer::V2, &reply).expect("encodes");
        assert_eq!(frame, Message::Binary([&[1u8, 1, 1, 10, 2][..], b"13room:lobbyok", &[1]].concat().into()));
        assert_eq!(encode_frame(Serializer::V1, &push), Err(Unencodable::BinaryOnV1));
    }

    #[test]
    fn json_payloads_stay_text_frames() {
        let frame = encode_frame(Serializer::V2, &reply("ok", "{}")).expect("encodes");
        assert!(matches!(frame, Message::Text(_)));
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\n"), r#""a\"b\\c\n""#);
        assert_eq!(json_string("plain"), r#""plain""#);
    }
}
