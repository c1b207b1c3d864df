//! Outbound HTTP to the services the app allows: Phoenix's `Task.async`
//! plus `handle_info`, without a thread that waits.
//!
//! [`send`](RequestBuilder::send) checks the request and returns its
//! [`RequestId`] at once; the host runs the request, and its outcome
//! reaches the channel's [`Channel::handle_info`](crate::Channel::handle_info)
//! later, where [`Outcome::from_info`] reads it. A channel that needs to
//! answer the push that started the request keeps the push's
//! [`socket_ref`](crate::channel::socket_ref) and answers with
//! [`reply`](crate::channel::reply).
//!
//! ```no_run
//! use plume_sdk::{Channel, HandleIn, HandleInfo, Join, Payload, Reply, Socket, channel, http, json};
//!
//! struct Quotes;
//!
//! impl Channel for Quotes {
//!     fn join(_topic: &str, _payload: Payload, _socket: &mut Socket) -> Join {
//!         Join::ok(json!({}))
//!     }
//!
//!     fn handle_in(event: &str, payload: Payload, socket: &mut Socket) -> HandleIn {
//!         let request = http::post("https://api.example.com/quote").json(&payload.value().unwrap_or_default()).send();
//!         match (request, channel::socket_ref()) {
//!             (Ok(id), Some(socket_ref)) => {
//!                 socket.assign(&id.key(), socket_ref);
//!                 HandleIn::NoReply
//!             }
//!             (Err(error), _) => Reply::error(json!({"reason": error.to_string()})).into(),
//!             (Ok(_), None) => HandleIn::NoReply,
//!         }
//!     }
//!
//!     fn handle_info(message: Payload, socket: &mut Socket) -> HandleInfo {
//!         let Some(outcome) = http::Outcome::from_info(&message) else {
//!             return HandleInfo::NoReply;
//!         };
//!         let Some(socket_ref) = socket.take::<channel::SocketRef>(&outcome.id.key()) else {
//!             return HandleInfo::NoReply;
//!         };
//!         let reply = match outcome.result {
//!             Ok(response) if response.is_success() => Reply::ok(response.json::<plume_sdk::Value>().unwrap_or_default()),
//!             Ok(response) => Reply::error(json!({"reason": format!("the service answered {}", response.status)})),
//!             Err(failure) => Reply::error(json!({"reason": failure.to_string()})),
//!         };
//!         let _ = channel::reply(&socket_ref, reply);
//!         HandleInfo::NoReply
//!     }
//! }
//! ```
//!
//! The app's operator grants the capability by listing the origins its
//! plugins may call (`http_allow = ["https://api.example.com"]` in
//! `plume.toml`); requests to any other origin fail with
//! [`HttpError::NotAllowed`]. Limits (timeout, response size, requests in
//! flight per channel and per app) are the app's; see `sdk/GUIDE.md`.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::Payload;
use crate::clock::millis;
use crate::imports::http as wit;
use crate::payload::encode;

/// Identifies a request from [`RequestBuilder::send`] to its [`Outcome`].
/// It serializes as a number, so it can be kept in the assigns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(pub u64);

impl From<RequestId> for serde_json::Value {
    fn from(id: RequestId) -> Self {
        serde_json::Value::from(id.0)
    }
}

impl RequestId {
    /// A name for this request, `http:<id>`, handy as an assigns key for
    /// what to do when its outcome arrives.
    ///
    /// ```
    /// assert_eq!(plume_sdk::http::RequestId(7).key(), "http:7");
    /// ```
    pub fn key(&self) -> String {
        format!("http:{}", self.0)
    }
}

/// A `GET` request to `url`.
///
/// ```no_run
/// let id = plume_sdk::http::get("https://api.example.com/status").send()?;
/// # Ok::<(), plume_sdk::http::HttpError>(())
/// ```
pub fn get(url: &str) -> RequestBuilder {
    request("GET", url)
}

/// A `POST` request to `url`.
///
/// ```no_run
/// use plume_sdk::{http, json};
///
/// let id = http::post("https://api.example.com/orders").json(&json!({"sku": 42})).send()?;
/// # Ok::<(), http::HttpError>(())
/// ```
pub fn post(url: &str) -> RequestBuilder {
    request("POST", url)
}

/// A `PUT` request to `url`.
pub fn put(url: &str) -> RequestBuilder {
    request("PUT", url)
}

/// A `PATCH` request to `url`.
pub fn patch(url: &str) -> RequestBuilder {
    request("PATCH", url)
}

/// A `DELETE` request to `url`.
pub fn delete(url: &str) -> RequestBuilder {
    request("DELETE", url)
}

/// A request with any method token (`OPTIONS`, `REPORT`, ...).
///
/// ```no_run
/// let id = plume_sdk::http::request("OPTIONS", "https://api.example.com/").send()?;
/// # Ok::<(), plume_sdk::http::HttpError>(())
/// ```
pub fn request(method: &str, url: &str) -> RequestBuilder {
    RequestBuilder {
        request: wit::Request {
            method: method.to_owned(),
            url: url.to_owned(),
            headers: Vec::new(),
            body: None,
            timeout_ms: None,
        },
        encode_error: None,
    }
}

/// A request being put together; [`send`](Self::send) starts it.
#[derive(Debug)]
#[must_use = "a request does nothing until send() is called"]
pub struct RequestBuilder {
    request: wit::Request,
    /// A [`json`](Self::json) body that could not be encoded, reported by
    /// `send`.
    encode_error: Option<serde_json::Error>,
}

impl RequestBuilder {
    /// Add a header (names are case-insensitive; repeat a name to send it
    /// several times).
    ///
    /// ```no_run
    /// let id = plume_sdk::http::get("https://api.example.com/me").header("authorization", "Bearer abc").send()?;
    /// # Ok::<(), plume_sdk::http::HttpError>(())
    /// ```
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.request.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Send `body` as JSON, with `content-type: application/json`.
    ///
    /// ```no_run
    /// use plume_sdk::{http, json};
    ///
    /// let id = http::post("https://api.example.com/jobs").json(&json!({"n": 1})).send()?;
    /// # Ok::<(), http::HttpError>(())
    /// ```
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        match encode(body) {
            Ok(text) => {
                self.request.body = Some(text.into_bytes());
                if !self.request.headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-type")) {
                    self.request.headers.push(("content-type".into(), "application/json".into()));
                }
            }
            Err(error) => self.encode_error = Some(error),
        }
        self
    }

    /// Send these bytes as the body, as they are.
    ///
    /// ```no_run
    /// let id = plume_sdk::http::put("https://files.example.com/a.txt").body("hello").send()?;
    /// # Ok::<(), plume_sdk::http::HttpError>(())
    /// ```
    pub fn body(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.request.body = Some(bytes.into());
        self
    }

    /// Give up after `timeout` (rounded down to milliseconds), reported as
    /// a [`FailureKind::Timeout`]. The app's `http_timeout_ms` is both the
    /// default and the most a request may ask for.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let id = plume_sdk::http::get("https://api.example.com/slow").timeout(Duration::from_secs(2)).send()?;
    /// # Ok::<(), plume_sdk::http::HttpError>(())
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.request.timeout_ms = Some(millis(timeout));
        self
    }

    /// Start the request. Returns at once with its id; the [`Outcome`]
    /// arrives in `handle_info`. Fails at once when the app may not make
    /// it: see [`HttpError`].
    pub fn send(self) -> Result<RequestId, HttpError> {
        if let Some(error) = self.encode_error {
            return Err(HttpError::Encode(error));
        }
        Ok(RequestId(wit::send(&self.request)?))
    }
}

/// Why a request could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The app may not make HTTP requests: the operator lists allowed
    /// origins in `http_allow`. The text says how.
    #[error("not granted: {0}")]
    NotGranted(String),
    /// The URL's origin is not among the app's `http_allow`.
    #[error("origin not allowed: {0}")]
    NotAllowed(String),
    /// Too many requests in flight (for this channel or the app), or a
    /// body over the app's limit; the text names the limit.
    #[error("limit reached: {0}")]
    Limit(String),
    /// The URL, method or a header is malformed; the text says what.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Called outside a channel: the outcome needs a `handle_info` to go to.
    #[error("not in a channel: HTTP requests work only in channel callbacks")]
    NotInChannel,
    /// A [`json`](RequestBuilder::json) body could not be encoded.
    #[error("the body cannot be encoded as JSON: {0}")]
    Encode(#[from] serde_json::Error),
}

impl From<wit::HttpError> for HttpError {
    fn from(error: wit::HttpError) -> Self {
        match error {
            wit::HttpError::NotGranted(text) => Self::NotGranted(text),
            wit::HttpError::NotAllowed(text) => Self::NotAllowed(text),
            wit::HttpError::Limit(text) => Self::Limit(text),
            wit::HttpError::Invalid(text) => Self::Invalid(text),
            wit::HttpError::NotInChannel => Self::NotInChannel,
        }
    }
}

/// The end of a request, as `handle_info` receives it: a [`Response`] (of
/// any status) or a [`Failure`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The id [`RequestBuilder::send`] returned.
    pub id: RequestId,
    pub result: Result<Response, Failure>,
}

impl Outcome {
    /// The HTTP outcome in a `handle_info` message, or `None` when the
    /// message is something else (a timer, a broadcast, a message to self).
    ///
    /// ```
    /// use plume_sdk::{Payload, http};
    ///
    /// let message = Payload::from_raw(r#"{"http":{"id":3,"status":201,"headers":[["content-type","text/plain"]],"body":"made"}}"#);
    /// let outcome = http::Outcome::from_info(&message).expect("an HTTP outcome");
    /// assert_eq!(outcome.id, http::RequestId(3));
    /// let response = outcome.result.expect("a response");
    /// assert_eq!((response.status, response.text().ok()), (201, Some("made")));
    /// assert_eq!(response.header("Content-Type"), Some("text/plain"));
    ///
    /// let failed = Payload::from_raw(r#"{"http":{"id":4,"error":"timeout","reason":"no response within 5000 ms"}}"#);
    /// let failure = http::Outcome::from_info(&failed).unwrap().result.unwrap_err();
    /// assert_eq!(failure.kind, http::FailureKind::Timeout);
    ///
    /// assert!(http::Outcome::from_info(&Payload::from_raw(r#""tick""#)).is_none());
    /// ```
    pub fn from_info(message: &Payload) -> Option<Outcome> {
        let Envelope { http } = message.parse().ok()?;
        let id = RequestId(http.id);
        if let Some(kind) = http.error {
            return Some(Outcome {
                id,
                result: Err(Failure {
                    kind: FailureKind::from_name(&kind),
                    reason: http.reason.unwrap_or_default(),
                }),
            });
        }
        let text = http.body.unwrap_or_default();
        let body = if http.base64 { base64::decode(&text)? } else { text.into_bytes() };
        Some(Outcome {
            id,
            result: Ok(Response {
                status: http.status?,
                headers: http.headers,
                body,
            }),
        })
    }
}

/// The message format (see the WIT's `http` interface).
#[derive(Deserialize)]
struct Envelope {
    http: Message,
}

#[derive(Deserialize)]
struct Message {
    id: u64,
    status: Option<u16>,
    #[serde(default)]
    headers: Vec<(String, String)>,
    body: Option<String>,
    #[serde(default)]
    base64: bool,
    error: Option<String>,
    reason: Option<String>,
}

/// A response, whatever its status: 404 and 500 are responses too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Header names in lower case, in the order received; a repeated
    /// header appears once per value.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body as text, if it is UTF-8.
    pub fn text(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.body)
    }

    /// The body parsed as JSON into `T`.
    ///
    /// ```
    /// # use plume_sdk::http::Response;
    /// let response = Response { status: 200, headers: vec![], body: br#"{"n": 2}"#.to_vec() };
    /// let n: u64 = response.json::<plume_sdk::Value>().unwrap()["n"].as_u64().unwrap();
    /// assert_eq!(n, 2);
    /// ```
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {reason}")]
pub struct Failure {
    pub kind: FailureKind,
    /// What happened, for logs: names the host, the limit, the address.
    pub reason: String,
}

/// The kinds of [`Failure`]; the host may add kinds, which arrive as
/// [`FailureKind::Other`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// No whole response within the request's timeout.
    Timeout,
    /// No connection: refused, reset, or the host name is unknown.
    Refused,
    /// The HTTPS certificate is not valid for the host.
    Tls,
    /// The response body is over the app's `max_http_response_bytes`.
    TooLarge,
    /// The host resolved to an address the app may not reach (loopback,
    /// private, link-local), or a redirect left the allowed origins.
    NotAllowed,
    /// Anything else (a broken response).
    Failed,
    /// A kind this SDK does not know yet.
    Other(String),
}

impl FailureKind {
    fn from_name(name: &str) -> FailureKind {
        match name {
            "timeout" => FailureKind::Timeout,
            "refused" => FailureKind::Refused,
            "tls" => FailureKind::Tls,
            "too-large" => FailureKind::TooLarge,
            "not-allowed" => FailureKind::NotAllowed,
            "failed" => FailureKind::Failed,
            other => FailureKind::Other(other.to_owned()),
        }
    }

    /// The kind as the message names it (`timeout`, `too-large`, ...).
    pub fn name(&self) -> &str {
        match self {
            FailureKind::Timeout => "timeout",
            FailureKind::Refused => "refused",
            FailureKind::Tls => "tls",
            FailureKind::TooLarge => "too-large",
            FailureKind::NotAllowed => "not-allowed",
            FailureKind::Failed => "failed",
            FailureKind::Other(name) => name,
        }
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Standard base64 (with padding), the encoding of a binary body.
mod base64 {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }

    pub fn decode(text: &str) -> Option<Vec<u8>> {
        let text = text.trim_end_matches('=').as_bytes();
        let mut out = Vec::with_capacity(text.len() * 3 / 4);
        for chunk in text.chunks(4) {
            let mut bits = 0u32;
            for (i, &c) in chunk.iter().enumerate() {
                bits |= value(c)? << (18 - 6 * i);
            }
            let bytes = bits.to_be_bytes();
            match chunk.len() {
                4 => out.extend_from_slice(&bytes[1..4]),
                3 => out.extend_from_slice(&bytes[1..3]),
                2 => out.push(bytes[1]),
                _ => return None,
            }
        }
        Some(out)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn decodes_padded_and_unpadded_text() {
            assert_eq!(super::decode("aGVsbG8=").as_deref(), Some(&b"hello"[..]));
            assert_eq!(super::decode("AP8H").as_deref(), Some(&[0u8, 255, 7][..]));
            assert_eq!(super::decode("").as_deref(), Some(&[][..]));
            assert_eq!(super::decode("a").as_deref(), None);
            assert_eq!(super::decode("a*==").as_deref(), None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_body_arrives_decoded() {
        let message = Payload::from_raw(r#"{"http":{"id":9,"status":200,"headers":[],"body":"AP8H","base64":true}}"#);
        let response = Outcome::from_info(&message).unwrap().result.unwrap();
        assert_eq!(response.body, vec![0, 255, 7]);
        assert!(response.text().is_err());
    }

    #[test]
    fn an_unknown_failure_kind_is_kept() {
        let message = Payload::from_raw(r#"{"http":{"id":1,"error":"quantum","reason":"?"}}"#);
        let failure = Outcome::from_info(&message).unwrap().result.unwrap_err();
        assert_eq!(failure.kind, FailureKind::Other("quantum".into()));
        assert_eq!(failure.to_string(), "quantum: ?");
    }

    #[test]
    fn other_messages_are_not_outcomes() {
        for raw in [r#"{"topic":"a","event":"b","payload":{}}"#, r#"{"http":"yes"}"#, "42"] {
            assert!(Outcome::from_info(&Payload::from_raw(raw)).is_none(), "{raw}");
        }
    }
}
