//! The Phoenix Channels wire protocol: messages and their serializers.
//!
//! A message has five fields: join reference, reference, topic, event and
//! payload. The V2 serializer (`vsn=2.0.0`, what phoenix.js speaks by default)
//! sends them as a JSON array; V1 (`vsn=1.0.0`) as a JSON object.
//!
//! Decoding borrows from the frame: references, topic, event and payload stay
//! raw JSON text ([`RawValue`]), so a reference sent as a number comes back as
//! a number, and a payload that only passes through (an echo, a broadcast) is
//! never parsed into a tree. Encoding writes raw pieces next to each other,
//! so a plugin's JSON reaches the client without being parsed again.
//!
//! V2 sockets also carry binary frames ([`binary`]): a payload of raw bytes,
//! as phoenix.js sends for an `ArrayBuffer`.

pub mod binary;
mod decode;
mod encode;
pub mod malformed;
#[cfg(test)]
mod properties;

pub use decode::{DecodeError, InPayload, Inbound, OwnedInbound, decode, json_str};
pub use encode::{Outbound, Payload, Unencodable, encode, encode_frame, json_string};

/// A message payload as the host carries it: JSON text or bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// JSON text, checked where it entered the host.
    Json(String),
    /// The bytes of a binary payload.
    Binary(Vec<u8>),
}

impl Body {
    /// The payload for an outbound message.
    pub fn outbound(&self) -> Payload<'_> {
        match self {
            Body::Json(json) => Payload::Raw(json),
            Body::Binary(bytes) => Payload::Binary(bytes),
        }
    }

    /// The payload of a reply with `status`.
    pub fn reply<'a>(&'a self, status: &'a str) -> Payload<'a> {
        match self {
            Body::Json(json) => Payload::Reply { status, response: json },
            Body::Binary(bytes) => Payload::BinaryReply { status, response: bytes },
        }
    }

    /// The size in bytes, for limits.
    pub fn len(&self) -> usize {
        match self {
            Body::Json(json) => json.len(),
            Body::Binary(bytes) => bytes.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Which serializer a socket speaks, chosen by the `vsn` connect parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Serializer {
    /// `vsn=1.0.0`: messages are JSON objects. Phoenix's default when the
    /// client sends no `vsn`.
    V1,
    /// `vsn=2.0.0`: messages are JSON arrays.
    V2,
}

impl Serializer {
    /// The serializer for a `vsn` parameter; `None` when the version is one
    /// plume does not speak (the connection is refused, as Phoenix does).
    pub fn from_vsn(vsn: Option<&str>) -> Option<Serializer> {
        match vsn {
            None => Some(Serializer::V1),
            Some(v) if v.starts_with("1.") => Some(Serializer::V1),
            Some(v) if v.starts_with("2.") => Some(Serializer::V2),
            Some(_) => None,
        }
    }

    /// A small index, for per-serializer caches (encode once per serializer).
    pub fn index(self) -> usize {
        match self {
            Serializer::V1 => 0,
            Serializer::V2 => 1,
        }
    }
}

/// Raw JSON for `null`, used for absent references.
pub const NULL: &str = "null";
