//! Payloads as they cross the boundary: [`Payload`] for what the host sends
//! (JSON text, or bytes from a binary frame), [`encode`] for what a plugin
//! sends back.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A JSON payload from the host: an event's payload, a join's params, a
/// `handle_info` message, the query params of a connection.
///
/// It holds the JSON text as received and parses nothing until asked, so a
/// handler that only forwards a payload ([`Reply::ok_raw`](crate::Reply::ok_raw))
/// never pays for parsing it.
///
/// A client that pushes an `ArrayBuffer` (phoenix.js over the V2 serializer)
/// sends a binary frame: its payload is bytes ([`Payload::as_binary`]), and
/// a reply or push made of a binary payload goes back as a binary frame.
///
/// ```
/// use plume_sdk::Payload;
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct NewMsg {
///     body: String,
/// }
///
/// let payload = Payload::from_raw(r#"{"body":"hi"}"#);
/// let msg: NewMsg = payload.parse()?;
/// assert_eq!(msg.body, "hi");
/// # Ok::<(), plume_sdk::PayloadError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Payload {
    inner: Inner,
}

#[derive(Clone, PartialEq, Eq)]
enum Inner {
    Json(String),
    Binary(Vec<u8>),
}

/// JSON `null`.
impl Default for Payload {
    fn default() -> Self {
        Self::from_raw("null")
    }
}

impl Payload {
    /// Wraps JSON text without checking it. The host only ever passes valid
    /// JSON; this constructor is for tests of a handler.
    ///
    /// ```
    /// let payload = plume_sdk::Payload::from_raw("\"x\"");
    /// assert_eq!(payload.raw(), "\"x\"");
    /// ```
    pub fn from_raw(raw: impl Into<String>) -> Self {
        Self {
            inner: Inner::Json(raw.into()),
        }
    }

    /// A binary payload: sent to a client as a V2 binary frame.
    ///
    /// ```
    /// let payload = plume_sdk::Payload::binary(vec![1, 2, 3]);
    /// assert_eq!(payload.as_binary(), Some(&[1u8, 2, 3][..]));
    /// ```
    pub fn binary(bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            inner: Inner::Binary(bytes.into()),
        }
    }

    /// The bytes of a binary payload; `None` for JSON.
    ///
    /// ```
    /// assert_eq!(plume_sdk::Payload::from_raw("{}").as_binary(), None);
    /// ```
    pub fn as_binary(&self) -> Option<&[u8]> {
        match &self.inner {
            Inner::Binary(bytes) => Some(bytes),
            Inner::Json(_) => None,
        }
    }

    /// Whether the payload is bytes rather than JSON.
    pub fn is_binary(&self) -> bool {
        matches!(self.inner, Inner::Binary(_))
    }

    /// The JSON text, exactly as the client or the host sent it; empty for
    /// a binary payload.
    ///
    /// ```
    /// let payload = plume_sdk::Payload::from_raw(r#"{"b":1,"a":2}"#);
    /// assert_eq!(payload.raw(), r#"{"b":1,"a":2}"#);
    /// ```
    pub fn raw(&self) -> &str {
        match &self.inner {
            Inner::Json(raw) => raw,
            Inner::Binary(_) => "",
        }
    }

    /// The JSON text, owned; empty for a binary payload.
    ///
    /// ```
    /// let text: String = plume_sdk::Payload::from_raw("[1]").into_raw();
    /// assert_eq!(text, "[1]");
    /// ```
    pub fn into_raw(self) -> String {
        match self.inner {
            Inner::Json(raw) => raw,
            Inner::Binary(_) => String::new(),
        }
    }

    /// Deserializes the payload into `T`, which may borrow from it.
    ///
    /// A payload that is not the shape `T` expects (a missing field, a
    /// number where a string was expected) is an error: match on it to
    /// answer the client, rather than trusting its input.
    ///
    /// ```
    /// use plume_sdk::Payload;
    /// use serde::Deserialize;
    ///
    /// #[derive(Deserialize)]
    /// struct Move {
    ///     cell: u8,
    /// }
    ///
    /// let payload = Payload::from_raw(r#"{"cell":"four"}"#);
    /// assert!(payload.parse::<Move>().is_err());
    /// ```
    pub fn parse<'a, T: Deserialize<'a>>(&'a self) -> Result<T, PayloadError> {
        match &self.inner {
            Inner::Json(raw) => serde_json::from_str(raw).map_err(PayloadError),
            Inner::Binary(_) => Err(PayloadError(serde::de::Error::custom(
                "the payload is binary, not JSON",
            ))),
        }
    }

    /// Parses the payload into a [`Value`], for payloads of no fixed shape.
    ///
    /// ```
    /// let payload = plume_sdk::Payload::from_raw(r#"{"n":1}"#);
    /// assert_eq!(payload.value()?["n"], 1);
    /// # Ok::<(), plume_sdk::PayloadError>(())
    /// ```
    pub fn value(&self) -> Result<Value, PayloadError> {
        self.parse()
    }
}

/// A payload holding `value` as JSON text, object keys sorted.
///
/// ```
/// use plume_sdk::{json, Payload};
///
/// let payload = Payload::from(json!({"b": 1, "a": 2}));
/// assert_eq!(payload.raw(), r#"{"a":2,"b":1}"#);
/// ```
impl From<Value> for Payload {
    fn from(value: Value) -> Self {
        Self::from_raw(value.to_string())
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Json(raw) => f.debug_tuple("Payload").field(raw).finish(),
            Inner::Binary(bytes) => f.debug_tuple("Payload::binary").field(bytes).finish(),
        }
    }
}

impl From<crate::__bindings::host::types::Payload> for Payload {
    fn from(payload: crate::__bindings::host::types::Payload) -> Self {
        use crate::__bindings::host::types::Payload as Wit;
        match payload {
            Wit::Json(raw) => Self::from_raw(raw),
            Wit::Binary(bytes) => Self::binary(bytes),
        }
    }
}

impl From<Payload> for crate::__bindings::host::types::Payload {
    fn from(payload: Payload) -> Self {
        match payload.inner {
            Inner::Json(raw) => Self::Json(raw),
            Inner::Binary(bytes) => Self::Binary(bytes),
        }
    }
}

/// The JSON text; a binary payload shows as `<N bytes>`.
impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Json(raw) => f.write_str(raw),
            Inner::Binary(bytes) => write!(f, "<{} bytes>", bytes.len()),
        }
    }
}

/// A payload that did not deserialize into the type asked for.
///
/// ```
/// if let Err(err) = plume_sdk::Payload::from_raw("[]").parse::<String>() {
///     println!("{err}");
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[error("the payload does not have the expected shape: {0}")]
pub struct PayloadError(#[source] serde_json::Error);

/// Encodes `value` as JSON text with object keys sorted.
///
/// Going through [`Value`] makes every object a sorted map, whatever the
/// field order of a struct, so what a plugin emits is deterministic and
/// matches what a Phoenix server sends.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    serde_json::to_value(value).map(|value| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    struct NewMsg<'a> {
        body: &'a str,
    }

    #[derive(Serialize)]
    struct Unsorted {
        zebra: u8,
        apple: u8,
    }

    #[test]
    fn parse_reads_a_matching_payload() {
        let payload = Payload::from_raw(r#"{"body":"hi"}"#);
        assert_eq!(payload.parse::<NewMsg>().ok(), Some(NewMsg { body: "hi" }));
    }

    #[test]
    fn parse_refuses_a_payload_of_another_shape() {
        for raw in [r#"{}"#, r#"{"body":1}"#, r#""hi""#, "null"] {
            assert!(Payload::from_raw(raw).parse::<NewMsg>().is_err(), "{raw}");
        }
    }

    #[test]
    fn value_parses_any_json() {
        let payload = Payload::from_raw(r#"[1,"x",null]"#);
        assert_eq!(payload.value().ok(), Some(json!([1, "x", null])));
    }

    #[test]
    fn raw_is_the_text_as_received() {
        let raw = r#"{ "b" : 1, "a" : 2 }"#;
        assert_eq!(Payload::from_raw(raw).raw(), raw);
    }

    #[test]
    fn a_binary_payload_is_not_json() {
        let payload = Payload::binary(vec![0xff, 0]);
        assert!(payload.is_binary());
        assert_eq!(payload.raw(), "");
        assert!(payload.parse::<serde_json::Value>().is_err());
        assert_eq!(payload.to_string(), "<2 bytes>");
    }

    #[test]
    fn encode_sorts_the_keys_of_a_struct() {
        let text = encode(&Unsorted { zebra: 1, apple: 2 }).ok();
        assert_eq!(text.as_deref(), Some(r#"{"apple":2,"zebra":1}"#));
    }

    #[test]
    fn a_payload_from_a_value_has_sorted_keys() {
        let payload = Payload::from(json!({"b": 1, "a": {"d": 1, "c": 2}}));
        assert_eq!(payload.raw(), r#"{"a":{"c":2,"d":1},"b":1}"#);
    }
}
