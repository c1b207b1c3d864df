//! Decoding client frames into [`Inbound`] messages.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::Serializer;

/// A message from a client, borrowed from its frame.
///
/// Every field is raw JSON. Phoenix clients send references as strings, but
/// some send numbers, and the server must echo them back exactly as sent.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    pub join_ref: &'a RawValue,
    pub reference: &'a RawValue,
    pub topic: &'a RawValue,
    pub event: &'a RawValue,
    pub payload: InPayload<'a>,
}

/// The payload of a client message: raw JSON from a text frame, or the
/// bytes of a binary frame.
#[derive(Debug, Clone, Copy)]
pub enum InPayload<'a> {
    Json(&'a RawValue),
    Binary(&'a [u8]),
}

/// An [`Inbound`] that owns its fields: a message set aside to be handled
/// later (a join waiting for its topic to go live across the cluster).
#[derive(Debug)]
pub struct OwnedInbound {
    join_ref: Box<RawValue>,
    reference: Box<RawValue>,
    topic: Box<RawValue>,
    event: Box<RawValue>,
    payload: OwnedPayload,
}

#[derive(Debug)]
enum OwnedPayload {
    Json(Box<RawValue>),
    Binary(Vec<u8>),
}

impl OwnedInbound {
    pub fn new(message: &Inbound<'_>) -> Self {
        OwnedInbound {
            join_ref: message.join_ref.to_owned(),
            reference: message.reference.to_owned(),
            topic: message.topic.to_owned(),
            event: message.event.to_owned(),
            payload: match message.payload {
                InPayload::Json(raw) => OwnedPayload::Json(raw.to_owned()),
                InPayload::Binary(bytes) => OwnedPayload::Binary(bytes.to_vec()),
            },
        }
    }

    /// The same message with another JSON payload; `None` when `json` is
    /// not JSON.
    pub fn with_json_payload(self, json: &str) -> Option<Self> {
        Some(OwnedInbound {
            payload: OwnedPayload::Json(RawValue::from_string(json.to_owned()).ok()?),
            ..self
        })
    }

    /// The message, borrowed.
    pub fn inbound(&self) -> Inbound<'_> {
        Inbound {
            join_ref: &self.join_ref,
            reference: &self.reference,
            topic: &self.topic,
            event: &self.event,
            payload: match &self.payload {
                OwnedPayload::Json(raw) => InPayload::Json(raw),
                OwnedPayload::Binary(bytes) => InPayload::Binary(bytes),
            },
        }
    }
}

impl<'a> Inbound<'a> {
    /// The topic, when it is a JSON string.
    pub fn topic(&self) -> Option<Cow<'a, str>> {
        json_str(self.topic)
    }

    /// The event name, when it is a JSON string.
    pub fn event(&self) -> Option<Cow<'a, str>> {
        json_str(self.event)
    }
}

/// The text of a JSON string value, borrowed when it has no escapes.
pub fn json_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    if !text.starts_with('"') {
        return None;
    }
    match serde_json::from_str::<&str>(text) {
        Ok(s) => Some(Cow::Borrowed(s)),
        Err(_) => serde_json::from_str::<String>(text).ok().map(Cow::Owned),
    }
}

/// Why a frame is not a message. Carries the fields that could be read, so
/// the socket can answer the one push that was malformed.
#[derive(Debug)]
pub struct DecodeError<'a> {
    pub reason: &'static str,
    pub join_ref: Option<&'a RawValue>,
    pub reference: Option<&'a RawValue>,
    pub topic: Option<&'a RawValue>,
}

impl DecodeError<'_> {
    fn bare(reason: &'static str) -> Self {
        DecodeError {
            reason,
            join_ref: None,
            reference: None,
            topic: None,
        }
    }
}

/// The V1 serializer's object form. Missing keys read as `null`.
#[derive(Deserialize)]
struct V1Message<'a> {
    #[serde(borrow, default)]
    join_ref: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "ref")]
    reference: Option<&'a RawValue>,
    #[serde(borrow, default)]
    topic: Option<&'a RawValue>,
    #[serde(borrow, default)]
    event: Option<&'a RawValue>,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
}

/// Decode one text frame.
///
/// V2 frames are arrays of at least five elements (extra elements are
/// ignored, as Phoenix does); V1 frames are objects.
pub fn decode(serializer: Serializer, frame: &str) -> Result<Inbound<'_>, DecodeError<'_>> {
    match serializer {
        Serializer::V2 => decode_v2(frame),
        Serializer::V1 => decode_v1(frame),
    }
}

fn decode_v2(frame: &str) -> Result<Inbound<'_>, DecodeError<'_>> {
    let trimmed = frame.trim_start();
    if !trimmed.starts_with('[') {
        return Err(DecodeError::bare(if serde_json::from_str::<&RawValue>(frame).is_ok() {
            "a V2 message must be a JSON array [join_ref, ref, topic, event, payload]"
        } else {
            "the frame is not valid JSON"
        }));
    }
    let fields: Vec<&RawValue> = serde_json::from_str(frame)
        .map_err(|_| DecodeError::bare("the frame is not valid JSON"))?;
    match fields.as_slice() {
        [join_ref, reference, topic, event, payload, ..] => Ok(Inbound {
            join_ref,
            reference,
            topic,
            event,
            payload: InPayload::Json(payload),
        }),
        short => Err(DecodeError {
            reason: "a V2 message must have five elements [join_ref, ref, topic, event, payload]",
            join_ref: short.first().copied(),
            reference: short.get(1).copied(),
            topic: short.get(2).copied(),
        }),
    }
}

fn decode_v1(frame: &str) -> Result<Inbound<'_>, DecodeError<'_>> {
    // serde would read an array into the struct too; V1 is objects only.
    if !frame.trim_start().starts_with('{') {
        return Err(DecodeError::bare(if serde_json::from_str::<&RawValue>(frame).is_ok() {
            "a V1 message must be a JSON object with topic, event, payload and ref"
        } else {
            "the frame is not valid JSON"
        }));
    }
    let message: V1Message<'_> = serde_json::from_str(frame).map_err(|_| {
        DecodeError::bare(if serde_json::from_str::<&RawValue>(frame).is_ok() {
            "a V1 message must be a JSON object with topic, event, payload and ref"
        } else {
            "the frame is not valid JSON"
        })
    })?;
    match (message.topic, message.event) {
        (Some(topic), Some(event)) => Ok(Inbound {
            join_ref: message.join_ref.unwrap_or(RawValue::NULL),
            reference: message.reference.unwrap_or(RawValue::NULL),
            topic,
            event,
            payload: InPayload::Json(message.payload.unwrap_or(RawValue::NULL)),
        }),
        _ => Err(DecodeError {
            reason: "a V1 message needs a topic and an event",
            join_ref: message.join_ref,
            reference: message.reference,
            topic: message.topic,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_reads_all_five_fields_raw() {
        let m = decode(Serializer::V2, r#"["2","3","room:lobby","ping",{"hello":"world","n":1}]"#)
            .expect("valid");
        assert_eq!(m.join_ref.get(), r#""2""#);
        assert_eq!(m.reference.get(), r#""3""#);
        assert_eq!(m.topic().as_deref(), Some("room:lobby"));
        assert_eq!(m.event().as_deref(), Some("ping"));
        assert!(matches!(m.payload, InPayload::Json(p) if p.get() == r#"{"hello":"world","n":1}"#));
    }

    #[test]
    fn v2_keeps_integer_and_null_references() {
        let m = decode(Serializer::V2, r#"[1,null,"room:lobby","ping",{}]"#).expect("valid");
        assert_eq!(m.join_ref.get(), "1");
        assert_eq!(m.reference.get(), "null");
    }

    #[test]
    fn v2_ignores_extra_elements_like_phoenix() {
        let m = decode(Serializer::V2, r#"["1","1","room:lobby","phx_join",{},"extra"]"#)
            .expect("valid");
        assert_eq!(m.event().as_deref(), Some("phx_join"));
    }

    #[test]
    fn v2_short_array_reports_the_readable_reference() {
        let e = decode(Serializer::V2, r#"["1","7","room:lobby","phx_join"]"#).unwrap_err();
        assert_eq!(e.reference.map(RawValue::get), Some(r#""7""#));
        assert_eq!(e.topic.map(RawValue::get), Some(r#""room:lobby""#));
    }

    #[test]
    fn v2_rejects_garbage_and_objects() {
        assert_eq!(
            decode(Serializer::V2, "this is not json").unwrap_err().reason,
            "the frame is not valid JSON"
        );
        assert!(decode(Serializer::V2, r#"{"topic":"x"}"#).unwrap_err().reason.contains("array"));
        assert!(decode(Serializer::V2, "[]").is_err());
    }

    #[test]
    fn non_string_topic_and_event_are_read_but_not_strings() {
        let m = decode(Serializer::V2, r#"[null,"12",123,5,{}]"#).expect("shape is valid");
        assert_eq!(m.topic(), None);
        assert_eq!(m.event(), None);
        assert_eq!(m.topic.get(), "123");
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let m = decode(Serializer::V2, r#"[null,"1","room:\u0041","ping",{}]"#).expect("valid");
        assert_eq!(m.topic().as_deref(), Some("room:A"));
    }

    #[test]
    fn v1_object_with_missing_join_ref() {
        let m = decode(
            Serializer::V1,
            r#"{"topic":"room:lobby","event":"phx_join","payload":{},"ref":"1"}"#,
        )
        .expect("valid");
        assert_eq!(m.join_ref.get(), "null");
        assert_eq!(m.reference.get(), r#""1""#);
        assert!(decode(Serializer::V1, r#"{"ref":"1"}"#).is_err());
        assert!(decode(Serializer::V1, r#"[null,"1","phoenix","heartbeat",{}]"#).is_err());
    }
}
