//! BatchChannel, for topics `batch:*`: a batch import that reports its
//! progress with pushes while the app's backend does the work.
//!
//! `import_batch` `{"items": [...]}` (1 to 1000 items) replies ok
//! `{"status": "started", "total": N}` and sends the items to
//! `<backend_url>/import` (`backend_url` from the route's configuration),
//! `chunk_size` at a time (10 by default), one request after the other, as
//! `{"items": [...]}`. After each chunk the channel pushes `batch_progress`
//! `{"processed", "total", "percent"}`; a chunk the backend did not accept
//! (an error status, a failure) counts its items as failed and the import
//! goes on. At the end it pushes `batch_complete` `{"total", "imported",
//! "failed"}`. One batch at a time per channel: another `import_batch`
//! meanwhile replies error `{"reason": "a batch is already running"}`.
//! The channel answers other pushes (`ping` P replies ok P) meanwhile.

use plume_sdk::{Channel, HandleIn, HandleInfo, Join, Payload, Reply, Socket, Value, channel, config, http, json, log};
use serde::{Deserialize, Serialize};

/// Most items one batch may have.
const MAX_ITEMS: usize = 1000;

/// The batch channel.
pub struct BatchChannel;

/// The route's configuration.
#[derive(Deserialize)]
#[serde(default)]
struct Config {
    backend_url: String,
    chunk_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            backend_url: String::new(),
            chunk_size: 10,
        }
    }
}

/// The batch in progress, kept in the channel's assigns.
#[derive(Serialize, Deserialize)]
struct Batch {
    /// Items not sent yet.
    waiting: Vec<Value>,
    total: usize,
    processed: usize,
    failed: usize,
    /// The request in flight and how many items it carries.
    request: http::RequestId,
    sent: usize,
}

#[derive(Deserialize)]
struct Import {
    items: Vec<Value>,
}

impl Channel for BatchChannel {
    fn join(_topic: &str, _payload: Payload, _socket: &mut Socket) -> Join {
        Join::ok(json!({}))
    }

    fn handle_in(event: &str, payload: Payload, socket: &mut Socket) -> HandleIn {
        match event {
            "import_batch" => import_batch(&payload, socket).into(),
            "ping" => Reply::ok_raw(payload).into(),
            _ => HandleIn::stop(format!("unknown event: {event}")),
        }
    }

    fn handle_info(message: Payload, socket: &mut Socket) -> HandleInfo {
        let Some(outcome) = http::Outcome::from_info(&message) else {
            return HandleInfo::NoReply;
        };
        let Some(mut batch) = socket.take::<Batch>("batch") else {
            return HandleInfo::NoReply;
        };
        if batch.request != outcome.id {
            socket.assign("batch", json!(batch));
            return HandleInfo::NoReply;
        }
        let accepted = matches!(&outcome.result, Ok(response) if response.is_success());
        if !accepted {
            log::warn(&format!("a chunk of {} items was not imported: {:?}", batch.sent, outcome.result.map(|r| r.status)));
            batch.failed += batch.sent;
        }
        batch.processed += batch.sent;
        batch.sent = 0;
        push(
            "batch_progress",
            json!({"processed": batch.processed, "total": batch.total, "percent": batch.processed * 100 / batch.total}),
        );
        if let Some(batch) = next_chunk(batch) {
            socket.assign("batch", json!(batch));
        }
        HandleInfo::NoReply
    }
}

fn import_batch(payload: &Payload, socket: &mut Socket) -> Reply {
    if socket.get::<Value>("batch").is_some() {
        return Reply::error(json!({"reason": "a batch is already running"}));
    }
    let items = match payload.parse::<Import>() {
        Ok(Import { items }) if (1..=MAX_ITEMS).contains(&items.len()) => items,
        _ => return Reply::error(json!({ "reason": format!("expected {{\"items\": [...]}} with 1 to {MAX_ITEMS} items") })),
    };
    let total = items.len();
    let batch = Batch {
        waiting: items,
        total,
        processed: 0,
        failed: 0,
        request: http::RequestId(0),
        sent: 0,
    };
    match next_chunk(batch) {
        Some(batch) => {
            socket.assign("batch", json!(batch));
            Reply::ok(json!({"status": "started", "total": total}))
        }
        None => Reply::error(json!({"reason": "the backend cannot be reached"})),
    }
}

/// Send the next chunk, or push `batch_complete` when none is left (or
/// the rest cannot be sent: its items count as failed). The batch, if it
/// goes on.
fn next_chunk(mut batch: Batch) -> Option<Batch> {
    if !batch.waiting.is_empty() {
        let Config { backend_url, chunk_size } = config::get().unwrap_or_default();
        let take = chunk_size.clamp(1, MAX_ITEMS).min(batch.waiting.len());
        let chunk: Vec<Value> = batch.waiting.drain(..take).collect();
        let url = format!("{}/import", backend_url.trim_end_matches('/'));
        match http::post(&url).json(&json!({ "items": chunk })).send() {
            Ok(id) => {
                batch.request = id;
                batch.sent = take;
                return Some(batch);
            }
            Err(err) => {
                log::warn(&format!("the batch cannot go on: {err}"));
                if batch.processed == 0 {
                    return None;
                }
                batch.failed += take + batch.waiting.len();
                batch.processed = batch.total;
            }
        }
    }
    push(
        "batch_complete",
        json!({"total": batch.total, "imported": batch.total - batch.failed, "failed": batch.failed}),
    );
    None
}

fn push(event: &str, payload: Value) {
    if let Err(err) = channel::push(event, &payload) {
        log::warn(&format!("{event} was not pushed: {err}"));
    }
}

plume_sdk::export_channel!(BatchChannel);
