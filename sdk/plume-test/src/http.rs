//! The harness's backend: plugins' HTTP requests are answered by the test,
//! not the network.
//!
//! The app's outbound HTTP keeps its real checks (the allowlist, the
//! limits, the timeout), but the requests that pass them land here, as
//! [`HttpRequest`]s the test answers ([`Harness::respond`](crate::Harness::respond)),
//! fails ([`Harness::fail_http`](crate::Harness::fail_http)) or leaves to
//! time out as virtual time passes ([`Harness::advance`](crate::Harness::advance)).

use std::fmt;
use std::sync::Mutex;

use plume::http::{Failure, FailureKind, Fetch, Fetching, Request, Response};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// A request a plugin made, waiting for the test to answer it.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    /// Its place among the harness's requests, from 1.
    seq: u64,
    /// `GET`, `POST`, ...
    pub method: String,
    /// The absolute URL.
    pub url: String,
    /// Headers as sent, lower-case names.
    pub headers: Vec<(String, String)>,
    /// The body (empty when none).
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// The body parsed as JSON (`Value::Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn summary(&self) -> Value {
        json!({"method": self.method, "url": self.url, "body": String::from_utf8_lossy(&self.body)})
    }
}

impl fmt::Display for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.url)
    }
}

struct Pending {
    request: HttpRequest,
    answer: oneshot::Sender<Result<Response, Failure>>,
}

/// The [`Fetch`] of a harness's app: holds each request until the test
/// answers it.
#[derive(Default)]
pub(crate) struct Backend {
    pending: Mutex<Vec<Pending>>,
    next: Mutex<u64>,
}

impl Backend {
    fn pending(&self) -> std::sync::MutexGuard<'_, Vec<Pending>> {
        self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Requests still waiting for an answer (not answered, not timed out),
    /// in the order they were made.
    pub fn waiting(&self) -> Vec<HttpRequest> {
        let mut pending = self.pending();
        pending.retain(|p| !p.answer.is_closed());
        pending.iter().map(|p| p.request.clone()).collect()
    }

    /// Answer `request`; `false` when it is no longer waiting.
    pub fn answer(&self, request: &HttpRequest, result: Result<Response, Failure>) -> bool {
        let mut pending = self.pending();
        let Some(at) = pending.iter().position(|p| p.request.seq == request.seq) else {
            return false;
        };
        pending.remove(at).answer.send(result).is_ok()
    }

    /// A report of what is waiting, for a failed expectation.
    pub fn report(&self) -> String {
        let list: Vec<Value> = self.waiting().iter().map(HttpRequest::summary).collect();
        crate::pattern::pretty(&Value::Array(list))
    }
}

impl Fetch for Backend {
    fn fetch(&self, request: Request) -> Fetching {
        let seq = {
            let mut next = self.next.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            *next += 1;
            *next
        };
        let request = HttpRequest {
            seq,
            method: request.method.as_str().to_owned(),
            url: request.url.as_str().to_owned(),
            headers: request
                .headers
                .iter()
                .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
                .collect(),
            body: request.body.unwrap_or_default(),
        };
        let (answer, answered) = oneshot::channel();
        self.pending().push(Pending { request, answer });
        Box::pin(async move {
            answered
                .await
                .unwrap_or_else(|_| Err(Failure::new(FailureKind::Failed, "the test harness dropped the request")))
        })
    }
}
