//! Phoenix's V2 binary frames: a payload of raw bytes.
//!
//! phoenix.js sends a push whose payload is an `ArrayBuffer` as a binary
//! frame, and reads binary frames from the server the same way. Each frame
//! starts with a kind byte and one length byte per header field, so every
//! field (join ref, ref, topic, event, status) is at most 255 bytes; the
//! payload is the rest of the frame.
//!
//! | kind | direction | layout |
//! |---|---|---|
//! | 0 push | client to server | `0, jr_len, ref_len, topic_len, event_len, join_ref, ref, topic, event, payload` |
//! | 0 push | server to client | `0, jr_len, topic_len, event_len, join_ref, topic, event, payload` |
//! | 1 reply | server to client | `1, jr_len, ref_len, topic_len, status_len, join_ref, ref, topic, status, payload` |
//! | 2 broadcast | server to client | `2, topic_len, event_len, topic, event, payload` |

use serde_json::value::RawValue;

use super::encode::json_string;

const PUSH: u8 = 0;
const REPLY: u8 = 1;
const BROADCAST: u8 = 2;

/// The longest header field a binary frame can carry.
pub const MAX_FIELD: usize = 255;

/// A client's binary push, its header fields turned into the raw JSON the
/// text decoder would have produced (strings, or `null` for an empty join
/// ref), so the rest of the socket treats both frame kinds alike.
#[derive(Debug)]
pub struct BinaryPush<'a> {
    pub join_ref: Box<RawValue>,
    pub reference: Box<RawValue>,
    pub topic: Box<RawValue>,
    pub event: Box<RawValue>,
    pub payload: &'a [u8],
}

/// Why a binary frame is not a push.
#[derive(Debug, PartialEq, Eq)]
pub enum BinaryError {
    /// The frame is shorter than its header says.
    Truncated,
    /// The kind byte is not 0 (a push): clients send nothing else.
    Kind(u8),
    /// A header field is not UTF-8 text.
    NotText(&'static str),
}

impl BinaryError {
    pub fn reason(&self) -> String {
        match self {
            BinaryError::Truncated => "a binary frame is shorter than its header says".to_owned(),
            BinaryError::Kind(kind) => format!("a binary frame from a client must be a push (kind 0), not kind {kind}"),
            BinaryError::NotText(field) => format!("the {field} of a binary frame is not UTF-8 text"),
        }
    }
}

fn text_field<'a>(bytes: &'a [u8], name: &'static str) -> Result<&'a str, BinaryError> {
    std::str::from_utf8(bytes).map_err(|_| BinaryError::NotText(name))
}

fn raw(json: String) -> Box<RawValue> {
    // `json_string` always produces valid JSON.
    RawValue::from_string(json).unwrap_or_else(|_| RawValue::NULL.to_owned())
}

/// Decode a client's binary frame.
pub fn decode(frame: &[u8]) -> Result<BinaryPush<'_>, BinaryError> {
    let (&kind, rest) = frame.split_first().ok_or(BinaryError::Truncated)?;
    if kind != PUSH {
        return Err(BinaryError::Kind(kind));
    }
    let [jr, rf, tp, ev] = match rest {
        [a, b, c, d, ..] => [*a, *b, *c, *d].map(usize::from),
        _ => return Err(BinaryError::Truncated),
    };
    let body = &rest[4..];
    if body.len() < jr + rf + tp + ev {
        return Err(BinaryError::Truncated);
    }
    let (join_ref, body) = body.split_at(jr);
    let (reference, body) = body.split_at(rf);
    let (topic, body) = body.split_at(tp);
    let (event, payload) = body.split_at(ev);
    let join_ref = text_field(join_ref, "join ref")?;
    Ok(BinaryPush {
        join_ref: if join_ref.is_empty() {
            RawValue::NULL.to_owned()
        } else {
            raw(json_string(join_ref))
        },
        reference: raw(json_string(text_field(reference, "ref")?)),
        topic: raw(json_string(text_field(topic, "topic")?)),
        event: raw(json_string(text_field(event, "event")?)),
        payload,
    })
}

/// A server message a binary frame cannot carry: a header field is over
/// [`MAX_FIELD`] bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct FieldTooLong(pub &'static str);

fn header(out: &mut Vec<u8>, fields: &[(&'static str, &[u8])]) -> Result<(), FieldTooLong> {
    for (name, field) in fields {
        let len = u8::try_from(field.len()).map_err(|_| FieldTooLong(name))?;
        out.push(len);
    }
    for (_, field) in fields {
        out.extend_from_slice(field);
    }
    Ok(())
}

/// A push from a channel to its client (`join_ref` empty for none).
pub fn encode_push(join_ref: &str, topic: &str, event: &str, payload: &[u8]) -> Result<Vec<u8>, FieldTooLong> {
    let mut out = Vec::with_capacity(4 + join_ref.len() + topic.len() + event.len() + payload.len());
    out.push(PUSH);
    header(&mut out, &[("join ref", join_ref.as_bytes()), ("topic", topic.as_bytes()), ("event", event.as_bytes())])?;
    out.extend_from_slice(payload);
    Ok(out)
}

/// A reply to a client's push.
pub fn encode_reply(join_ref: &str, reference: &str, topic: &str, status: &str, payload: &[u8]) -> Result<Vec<u8>, FieldTooLong> {
    let mut out = Vec::with_capacity(5 + join_ref.len() + reference.len() + topic.len() + status.len() + payload.len());
    out.push(REPLY);
    header(
        &mut out,
        &[
            ("join ref", join_ref.as_bytes()),
            ("ref", reference.as_bytes()),
            ("topic", topic.as_bytes()),
            ("status", status.as_bytes()),
        ],
    )?;
    out.extend_from_slice(payload);
    Ok(out)
}

/// A broadcast to every subscriber of a topic.
pub fn encode_broadcast(topic: &str, event: &str, payload: &[u8]) -> Result<Vec<u8>, FieldTooLong> {
    let mut out = Vec::with_capacity(3 + topic.len() + event.len() + payload.len());
    out.push(BROADCAST);
    header(&mut out, &[("topic", topic.as_bytes()), ("event", event.as_bytes())])?;
    out.extend_from_slice(payload);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes phoenix.js's serializer produces for
    /// `push("ping", new Uint8Array([1, 2, 3]).buffer)` with join ref "1" and ref "2".
    fn client_push() -> Vec<u8> {
        let mut frame = vec![0, 1, 1, 10, 4];
        frame.extend_from_slice(b"12room:lobbyping");
        frame.extend_from_slice(&[1, 2, 3]);
        frame
    }

    #[test]
    fn decodes_a_client_push() {
        let frame = client_push();
        let push = decode(&frame).expect("valid");
        assert_eq!(push.join_ref.get(), r#""1""#);
        assert_eq!(push.reference.get(), r#""2""#);
        assert_eq!(push.topic.get(), r#""room:lobby""#);
        assert_eq!(push.event.get(), r#""ping""#);
        assert_eq!(push.payload, &[1, 2, 3]);
    }

    #[test]
    fn an_empty_join_ref_reads_as_null_and_an_empty_payload_is_kept() {
        let mut frame = vec![0, 0, 1, 1, 1];
        frame.extend_from_slice(b"7te");
        let push = decode(&frame).expect("valid");
        assert_eq!(push.join_ref.get(), "null");
        assert!(push.payload.is_empty());
    }

    #[test]
    fn a_header_that_lies_about_its_sizes_is_refused() {
        let mut frame = client_push();
        frame[3] = 200;
        assert_eq!(decode(&frame).unwrap_err(), BinaryError::Truncated);
        assert_eq!(decode(&[0, 1, 2]).unwrap_err(), BinaryError::Truncated);
        assert_eq!(decode(&[]).unwrap_err(), BinaryError::Truncated);
        // The frame Phoenix's recorded session sends: kind 1 is not a push.
        assert_eq!(decode(&[1, 2, 3, 4, 5]).unwrap_err(), BinaryError::Kind(1));
    }

    #[test]
    fn header_fields_must_be_text() {
        let mut frame = vec![0, 0, 1, 1, 1, b'1', 0xff, b'e'];
        frame.push(9);
        assert_eq!(decode(&frame).unwrap_err(), BinaryError::NotText("topic"));
    }

    #[test]
    fn escapes_in_header_fields_become_valid_json() {
        let mut frame = vec![0, 0, 1, 3, 1];
        frame.extend_from_slice(b"1a\"be");
        assert_eq!(decode(&frame).expect("valid").topic.get(), r#""a\"b""#);
    }

    #[test]
    fn encodes_the_three_server_kinds() {
        assert_eq!(
            encode_push("1", "t", "ev", &[9]).expect("fits"),
            [&[0u8, 1, 1, 2][..], b"1tev", &[9]].concat()
        );
        assert_eq!(
            encode_reply("1", "2", "t", "ok", &[9, 8]).expect("fits"),
            [&[1u8, 1, 1, 1, 2][..], b"12tok", &[9, 8]].concat()
        );
        assert_eq!(
            encode_broadcast("t", "ev", &[]).expect("fits"),
            [&[2u8, 1, 2][..], b"tev"].concat()
        );
    }

    #[test]
    fn a_field_over_255_bytes_cannot_be_encoded() {
        let topic = "t".repeat(256);
        assert_eq!(encode_broadcast(&topic, "e", &[]), Err(FieldTooLong("topic")));
        assert!(encode_broadcast(&"t".repeat(255), "e", &[]).is_ok());
    }
}
