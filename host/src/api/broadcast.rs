//! `POST /api/broadcast` and `POST /api/disconnect`: the backend's way
//! into channels, delivered exactly as a plugin's broadcast is (the same
//! [`Broadcast`], the same broker call), so interceptors run `handle-out`
//! and fan-out encodes each message once.

use std::collections::BTreeMap;
use std::sync::Arc;

use hyper::{Response, StatusCode};
use serde_json::value::RawValue;
use serde_json::json;

use super::{ApiError, json_response, rate_limited};
use crate::app::App;
use crate::protocol::Body;
use crate::pubsub::Broadcast;
use crate::transport::Body as HttpBody;

/// Longest topic, event or socket id, in bytes (as for plugins).
const MAX_NAME: usize = 255;

/// A JSON object whose values stay raw, so a payload passes through
/// without being parsed into a tree and written again.
type Fields = BTreeMap<String, Box<RawValue>>;

/// One message to publish, checked.
struct Message {
    topic: String,
    event: String,
    payload: String,
}

fn object(body: &[u8]) -> Result<Fields, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("the body must be a JSON object: {e}")))
}

/// A non-empty string of at most [`MAX_NAME`] bytes.
fn name(fields: &Fields, field: &str, at: &str) -> Result<String, ApiError> {
    let path = format!("{at}{field}");
    let raw = fields.get(field).ok_or_else(|| ApiError::field(&path, "missing; it is a string such as \"room:lobby\""))?;
    let text: String = serde_json::from_str(raw.get()).map_err(|_| ApiError::field(&path, format!("must be a string, not {}", raw.get())))?;
    if text.is_empty() || text.len() > MAX_NAME {
        return Err(ApiError::field(&path, format!("must have 1 to {MAX_NAME} bytes, it has {}", text.len())));
    }
    Ok(text)
}

/// Refuse fields the endpoint does not know: a typo (`paylod`) must not
/// publish an empty payload in silence.
fn only(fields: &Fields, known: &[&str], at: &str) -> Result<(), ApiError> {
    match fields.keys().find(|key| !known.contains(&key.as_str())) {
        Some(unknown) => Err(ApiError::field(&format!("{at}{unknown}"), format!("unknown field; expected {}", known.join(", ")))),
        None => Ok(()),
    }
}

fn message(app: &App, fields: &Fields, at: &str) -> Result<Message, ApiError> {
    only(fields, &["topic", "event", "payload"], at)?;
    let topic = name(fields, "topic", at)?;
    let event = name(fields, "event", at)?;
    let payload = match fields.get("payload") {
        None => "{}".to_owned(),
        Some(raw) if raw.get().trim_start().starts_with('{') => raw.get().to_owned(),
        Some(raw) => return Err(ApiError::field(&format!("{at}payload"), format!("must be a JSON object, not {}", short(raw.get())))),
    };
    let max = app.limits.max_payload_bytes;
    if payload.len() > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{at}payload: {} bytes, over the limit of {max} (max_payload_bytes)", payload.len()),
        ));
    }
    Ok(Message { topic, event, payload })
}

/// At most 40 characters of a value, for an error message.
fn short(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_owned(),
    }
}

/// Every message of a body, checked before any is published: a bad one
/// refuses the whole request, so nothing is half done by a typo.
fn messages(app: &App, body: &[u8]) -> Result<Vec<Message>, ApiError> {
    let fields = object(body)?;
    let Some(list) = fields.get("messages") else {
        return Ok(vec![message(app, &fields, "")?]);
    };
    only(&fields, &["messages"], "")?;
    let list: Vec<Fields> = serde_json::from_str(list.get())
        .map_err(|_| ApiError::field("messages", "must be a list of {\"topic\", \"event\", \"payload\"} objects"))?;
    if list.is_empty() {
        return Err(ApiError::field("messages", "is empty; give at least one message"));
    }
    list.iter()
        .enumerate()
        .map(|(i, fields)| message(app, fields, &format!("messages[{i}].")))
        .collect()
}

/// `POST /api/broadcast`: publish, in order, within the tenant's rate.
pub fn broadcast(app: &Arc<App>, body: &[u8]) -> Result<Response<HttpBody>, ApiError> {
    let messages = messages(app, body)?;
    let total = messages.len();
    for (accepted, message) in messages.into_iter().enumerate() {
        if !app.rates.events.take() {
            return Err(rate_limited(app, accepted));
        }
        let broadcast = Broadcast::new(message.topic, message.event, Body::Json(message.payload), None);
        app.broadcast(broadcast, None).map_err(|error| unavailable(error).accepted(accepted))?;
        crate::app::Figures::count(&app.figures.api_broadcasts, 1);
    }
    Ok(json_response(StatusCode::OK, &json!({ "accepted": total })))
}

/// `POST /api/disconnect`: close every socket whose id is `socket_id`.
pub fn disconnect(app: &Arc<App>, body: &[u8]) -> Result<Response<HttpBody>, ApiError> {
    let fields = object(body)?;
    only(&fields, &["socket_id"], "")?;
    let socket_id = name(&fields, "socket_id", "")?;
    let message = Broadcast::new(socket_id, "disconnect".into(), Body::Json("{}".into()), None);
    let sockets = app.broker.publish(Arc::new(message), None).map_err(unavailable)?;
    Ok(json_response(StatusCode::OK, &json!({ "disconnected": sockets })))
}

/// 503: the cluster could not carry a message to the other nodes (it was
/// delivered on this one). Retrying later is the caller's choice: a
/// broadcast retried may arrive twice on this node.
fn unavailable(error: crate::pubsub::PublishError) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string()).with_header(hyper::header::RETRY_AFTER, "1")
}
