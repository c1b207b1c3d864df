//! JSON as it crosses the boundary: [`Payload`] for what the host sends,
//! [`encode`] for what a plugin sends back.

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
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Payload {
    raw: String,
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
        Self { raw: raw.into() }
    }

    /// The JSON text, exactly as the client or the host sent it.
    ///
    /// ```
    /// let payload = plume_sdk::Payload::from_raw(r#"{"b":1,"a":2}"#);
    /// assert_eq!(payload.raw(), r#"{"b":1,"a":2}"#);
    /// ```
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The JSON text, owned.
    ///
    /// ```
    /// let text: String = plume_sdk::Payload::from_raw("[1]").into_raw();
    /// assert_eq!(text, "[1]");
    /// ```
    pub fn into_raw(self) -> String {
        self.raw
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
        serde_json::from_str(&self.raw).map_err(PayloadError)
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
        f.debug_tuple("Payload").field(&self.raw).finish()
    }
}

impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
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
