//! The server API: the app's backend publishes into channels, closes
//! sockets and reads presence over HTTP, on the client port under `/api`.
//!
//! Each tenant has its own keys (`api_keys`, or `PLUME_API_KEY` for the
//! single-app form), sent as `Authorization: Bearer <key>`; the key selects
//! the tenant, so a request can reach nothing of another tenant. With no
//! key configured anywhere, `/api` does not exist (404).
//!
//! - `POST /api/broadcast`: `{"topic", "event", "payload"}`, or
//!   `{"messages": [...]}` of those; delivered exactly as a plugin's
//!   broadcast (interceptors run `handle-out`, fan-out encodes once, the
//!   tenant's `max_events_per_second` applies).
//! - `POST /api/disconnect`: `{"socket_id"}`; every socket with that id
//!   closes, as Phoenix's `Endpoint.broadcast(id, "disconnect", %{})`.
//! - `GET /api/presence?topic=...`: the topic's presences, phoenix.js format.
//! - `GET /api/topics?prefix=...&limit=...`: topics with subscriber counts.
//!
//! Every answer is JSON; an error is `{"error": <what to do>}` with 400
//! (naming the field), 401, 404, 405, 413 or 429.

mod broadcast;
mod keys;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{ALLOW, AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

pub use keys::Keys;

use crate::app::App;
use crate::transport::Body;

/// Topics listed by `/api/topics` unless `limit` says otherwise, and the
/// most it may ask for.
const DEFAULT_TOPICS: usize = 1000;
const MAX_TOPICS: usize = 10_000;

/// A failed request: its status, the error text, and headers to add.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    header: Option<(hyper::header::HeaderName, &'static str)>,
    /// For a batch cut short: how many of its messages were delivered.
    accepted: Option<usize>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), header: None, accepted: None }
    }

    /// 400, naming the field at fault.
    fn field(field: &str, problem: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, format!("{field}: {problem}"))
    }

    fn with_header(mut self, name: hyper::header::HeaderName, value: &'static str) -> ApiError {
        self.header = Some((name, value));
        self
    }

    fn response(self) -> Response<Body> {
        let mut body = json!({ "error": self.message });
        if let Some(accepted) = self.accepted {
            body["accepted"] = accepted.into();
        }
        let mut response = json_response(self.status, &body);
        if let Some((name, value)) = self.header {
            response.headers_mut().insert(name, HeaderValue::from_static(value));
        }
        response
    }
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Whether a path belongs to the API.
pub fn serves(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// Answer one API request.
pub async fn handle(apps: &[Arc<App>], request: Request<Incoming>) -> Response<Body> {
    if apps.iter().all(|app| app.api_keys.is_empty()) {
        return crate::transport::text(StatusCode::NOT_FOUND, "not found\n");
    }
    match respond(apps, request).await {
        Ok(response) => response,
        Err(error) => error.response(),
    }
}

async fn respond(apps: &[Arc<App>], request: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let app = authenticate(apps, request.headers())?;
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let (allowed, body) = match path.as_str() {
        "/api/broadcast" | "/api/disconnect" => ("POST", request.method() == Method::POST),
        "/api/presence" | "/api/topics" => ("GET", request.method() == Method::GET),
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no endpoint {path}; the API has POST /api/broadcast, POST /api/disconnect, GET /api/presence and GET /api/topics"),
            ));
        }
    };
    if !body {
        return Err(ApiError::new(StatusCode::METHOD_NOT_ALLOWED, format!("{path} takes {allowed}")).with_header(ALLOW, allowed));
    }
    match path.as_str() {
        "/api/broadcast" => {
            let body = read_body(&app, request).await?;
            broadcast::broadcast(&app, &body)
        }
        "/api/disconnect" => {
            let body = read_body(&app, request).await?;
            broadcast::disconnect(&app, &body)
        }
        "/api/presence" => {
            let topic = param(&query, "topic").ok_or_else(|| ApiError::field("topic", "give the topic, e.g. /api/presence?topic=room:lobby"))?;
            let list: serde_json::Value = serde_json::from_str(&app.presence.list(&topic)).unwrap_or_default();
            Ok(json_response(StatusCode::OK, &list))
        }
        _ => topics(&app, &query),
    }
}

/// The tenant whose key the request presents.
fn authenticate(apps: &[Arc<App>], headers: &hyper::HeaderMap) -> Result<Arc<App>, ApiError> {
    let unauthorized = |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, message).with_header(WWW_AUTHENTICATE, "Bearer");
    let Some(header) = headers.get(AUTHORIZATION) else {
        return Err(unauthorized("missing API key: send `Authorization: Bearer <key>` with a key from api_keys"));
    };
    let key = header
        .to_str()
        .ok()
        .and_then(keys::bearer)
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <key>`"))?;
    // Every tenant's keys are looked at, whichever matches, so the time
    // taken does not tell which tenant a key belongs to.
    let matched = apps.iter().fold(None, |found, app| {
        let accepts = app.api_keys.accepts(key);
        found.or(accepts.then(|| app.clone()))
    });
    matched.ok_or_else(|| unauthorized("invalid API key"))
}

/// The request body, refused with 413 past the tenant's
/// `max_output_bytes_per_call` (what one plugin call may publish too).
async fn read_body(app: &App, request: Request<Incoming>) -> Result<Bytes, ApiError> {
    let max = app.limits.max_output_bytes_per_call;
    match Limited::new(request.into_body(), max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over {max} bytes (max_output_bytes_per_call); send fewer messages per request"),
        )),
        Err(error) => Err(ApiError::new(StatusCode::BAD_REQUEST, format!("cannot read the body: {error}"))),
    }
}

/// The value of query parameter `name`, if given and not empty.
fn param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
        .filter(|value| !value.is_empty())
}

/// `GET /api/topics?prefix=...&limit=...`.
fn topics(app: &App, query: &str) -> Result<Response<Body>, ApiError> {
    let prefix = param(query, "prefix").unwrap_or_default();
    let limit = match param(query, "limit") {
        None => DEFAULT_TOPICS,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_TOPICS).contains(n))
            .ok_or_else(|| ApiError::field("limit", format!("`{text}` is not a number from 1 to {MAX_TOPICS}")))?,
    };
    let topics: Vec<serde_json::Value> = app
        .broker
        .topics(&prefix, limit)
        .into_iter()
        .map(|(topic, subscribers)| json!({"topic": topic, "subscribers": subscribers}))
        .collect();
    Ok(json_response(StatusCode::OK, &json!({ "topics": topics })))
}

/// 429 for a request over the tenant's rate; `accepted` messages of it
/// were delivered before the rate ran out.
fn rate_limited(app: &App, accepted: usize) -> ApiError {
    crate::app::Figures::count(&app.figures.limit_refusals, 1);
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!(
            "rate limited: this app allows {} events per second (max_events_per_second); {accepted} message(s) of this request were delivered, resend the rest later",
            app.rates.events.limit()
        ),
    )
    .with_header(RETRY_AFTER, "1")
    .accepted(accepted)
}

impl ApiError {
    fn accepted(mut self, accepted: usize) -> ApiError {
        self.accepted = Some(accepted);
        self
    }
}
