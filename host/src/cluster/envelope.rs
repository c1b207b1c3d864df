//! What one node publishes for the others: a broadcast, as bytes.
//!
//! The envelope is a JSON object, so `redis-cli SUBSCRIBE` and `MONITOR`
//! show it readably: `{"v":1,"n":"<origin node>","e":"<event>","j":<payload>}`
//! for a JSON payload, `"b":"<base64>"` in place of `j` for bytes,
//! `"k":"p"` on a presence diff, and `"h":"<epoch>:<offset>"` on a topic with
//! history (Redis writes it: the position is assigned there). The topic is
//! the channel's. The version is checked so a later format can be told
//! apart; a receiver skips what it cannot read, and counts it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::protocol::Body;
use crate::pubsub::{Kind, Position};

/// The envelope format this build writes and reads.
const VERSION: u8 = 1;

#[derive(Serialize, Deserialize)]
struct Wire<'a> {
    v: u8,
    /// The node that published it: a node skips its own.
    #[serde(borrow)]
    n: &'a str,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<&'a str>,
    #[serde(borrow)]
    e: std::borrow::Cow<'a, str>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    j: Option<&'a RawValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    b: Option<String>,
    #[serde(default, skip_serializing)]
    h: Option<&'a str>,
    /// An announcement's identity ([`Kind::Announcement`]).
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    x: Option<std::borrow::Cow<'a, str>>,
}

/// A broadcast read from another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub origin: String,
    pub event: String,
    pub payload: Body,
    pub kind: Kind,
    /// An announcement's identity.
    pub except: Option<String>,
    /// Its place in the topic's history, on a topic that keeps one.
    pub position: Option<Position>,
}

/// Why an envelope could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("not an envelope: {0}")]
    Malformed(String),
    #[error("envelope version {0}, this node reads {VERSION}: upgrade every node")]
    Version(u8),
}

/// The envelope of a broadcast published by `origin`.
pub fn encode(origin: &str, event: &str, payload: &Body, kind: Kind, except: Option<&str>) -> Vec<u8> {
    let (json, bytes) = match payload {
        Body::Json(text) => (RawValue::from_string(text.clone()).ok(), None),
        Body::Binary(data) => (None, Some(STANDARD.encode(data))),
    };
    let wire = Wire {
        v: VERSION,
        n: origin,
        k: match kind {
            Kind::Message => None,
            Kind::PresenceDiff => Some("p"),
            Kind::Announcement => Some("a"),
        },
        e: event.into(),
        j: json.as_deref(),
        b: bytes,
        h: None,
        x: except.map(Into::into),
    };
    // Serializing a struct of strings and checked JSON cannot fail.
    serde_json::to_vec(&wire).unwrap_or_default()
}

/// Read an envelope.
pub fn decode(bytes: &[u8]) -> Result<Received, EnvelopeError> {
    let wire: Wire<'_> = serde_json::from_slice(bytes).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
    if wire.v != VERSION {
        return Err(EnvelopeError::Version(wire.v));
    }
    let payload = match (wire.j, wire.b) {
        (Some(json), None) => Body::Json(json.get().to_owned()),
        (None, Some(base64)) => Body::Binary(
            STANDARD
                .decode(base64)
                .map_err(|e| EnvelopeError::Malformed(format!("bytes that are not base64: {e}")))?,
        ),
        _ => return Err(EnvelopeError::Malformed("needs one of `j` and `b`".into())),
    };
    let kind = match wire.k {
        None => Kind::Message,
        Some("p") => Kind::PresenceDiff,
        Some("a") => Kind::Announcement,
        Some(other) => return Err(EnvelopeError::Malformed(format!("unknown kind `{other}`"))),
    };
    let position = match wire.h {
        None => None,
        Some(text) => Some(
            text.parse::<Position>()
                .map_err(|()| EnvelopeError::Malformed(format!("a position that is not one: `{text}`")))?,
        ),
    };
    Ok(Received {
        origin: wire.n.to_owned(),
        event: wire.e.into_owned(),
        payload,
        kind,
        except: wire.x.map(std::borrow::Cow::into_owned),
        position,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_bytes_and_presence_diffs_round_trip() {
        for (payload, kind) in [
            (Body::Json(r#"{"body":"hi","n":[1,2]}"#.into()), Kind::Message),
            (Body::Json(r#""just a string""#.into()), Kind::Message),
            (Body::Binary(vec![0, 159, 255, 10]), Kind::Message),
            (Body::Json(r#"{"joins":{},"leaves":{}}"#.into()), Kind::PresenceDiff),
            (Body::Json(r#"{"user_id":7}"#.into()), Kind::Announcement),
        ] {
            let except = (kind == Kind::Announcement).then_some("7");
            let bytes = encode("node-1", "ev\"ent", &payload, kind, except);
            let received = decode(&bytes).expect("decodes");
            assert_eq!(
                received,
                Received {
                    origin: "node-1".into(),
                    event: "ev\"ent".into(),
                    payload,
                    kind,
                    except: except.map(str::to_owned),
                    position: None,
                }
            );
        }
    }

    #[test]
    fn a_position_written_in_by_redis_is_read() {
        let bytes = encode("n", "e", &Body::Json("1".into()), Kind::Message, None);
        let text = String::from_utf8(bytes).expect("utf-8");
        let with_position = format!("{{\"h\":\"00000000000000ff:12\",{}", &text[1..]);
        let received = decode(with_position.as_bytes()).expect("decodes");
        assert_eq!(received.position, Some(Position { epoch: 255, offset: 12 }));
        let forged = format!("{{\"h\":\"nope\",{}", &text[1..]);
        assert!(decode(forged.as_bytes()).is_err());
    }

    #[test]
    fn garbage_and_other_versions_are_refused() {
        assert!(matches!(decode(b"hello"), Err(EnvelopeError::Malformed(_))));
        assert!(matches!(decode(br#"{"v":2,"n":"x","e":"y","j":1}"#), Err(EnvelopeError::Version(2))));
        assert!(matches!(decode(br#"{"v":1,"n":"x","e":"y"}"#), Err(EnvelopeError::Malformed(_))));
        assert!(matches!(decode(br#"{"v":1,"n":"x","e":"y","b":"%%"}"#), Err(EnvelopeError::Malformed(_))));
    }
}
