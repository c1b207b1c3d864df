//! ResilientAPIChannel, for topics `resilient:*`: calls to an external
//! service through a circuit breaker, so a failing service is left alone
//! instead of being hammered by every channel.
//!
//! `external_api_call` P POSTs P to `<backend_url>/external` and, when the
//! service answers, replies (late, with the push's socket ref) ok with the
//! service's JSON, or error `{"reason": <text>}` for a failure (an error
//! status, a body that is not JSON, a timeout, a refused connection).
//!
//! The breaker is shared by every channel of the route: its state lives in
//! the key-value store under `circuit:<backend_url>`, with a TTL, and is
//! changed by compare-and-swap. `failure_threshold` failures in a row (5)
//! open it for `open_ms` (60 000): meanwhile every call is answered error
//! `{"reason": "service temporarily unavailable"}` at once, without a
//! request. Then it is half-open: one trial call goes through (the others
//! are still refused); its success closes the breaker, its failure opens
//! it again.

use std::time::Duration;

use plume_sdk::{Channel, HandleIn, HandleInfo, Join, Payload, Reply, Socket, Value, channel, clock, config, http, json, kv, log};
use serde::{Deserialize, Serialize};

/// What an open breaker answers.
const UNAVAILABLE: &str = "service temporarily unavailable";

/// The resilient channel.
pub struct ResilientChannel;

/// The route's configuration.
#[derive(Deserialize)]
#[serde(default)]
struct Config {
    backend_url: String,
    /// Failures in a row that open the breaker.
    failure_threshold: u32,
    /// How long an open breaker refuses calls.
    open_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            backend_url: String::new(),
            failure_threshold: 5,
            open_ms: 60_000,
        }
    }
}

impl Config {
    fn key(&self) -> String {
        format!("circuit:{}", self.backend_url)
    }

    /// The breaker's state expires when left alone this long: a service
    /// that failed a few times long ago starts afresh.
    fn ttl(&self) -> Duration {
        Duration::from_millis(self.open_ms.saturating_mul(5).max(1000))
    }
}

/// The breaker, as kept in the key-value store.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum Breaker {
    Closed { failures: u32 },
    Open { until_ms: u64 },
    /// A trial call is out since `since_ms`.
    HalfOpen { since_ms: u64 },
}

/// A call in flight, kept in the assigns under its request's key.
#[derive(Serialize, Deserialize)]
struct Pending {
    socket_ref: channel::SocketRef,
}

impl Channel for ResilientChannel {
    fn join(_topic: &str, _payload: Payload, _socket: &mut Socket) -> Join {
        Join::ok(json!({}))
    }

    fn handle_in(event: &str, payload: Payload, socket: &mut Socket) -> HandleIn {
        match event {
            "external_api_call" => external_api_call(&payload, socket),
            _ => HandleIn::stop(format!("unknown event: {event}")),
        }
    }

    fn handle_info(message: Payload, socket: &mut Socket) -> HandleInfo {
        let Some(outcome) = http::Outcome::from_info(&message) else {
            return HandleInfo::NoReply;
        };
        let Some(Pending { socket_ref }) = socket.take(&outcome.id.key()) else {
            return HandleInfo::NoReply;
        };
        let answer = outcome.result.map_err(|failure| failure.to_string()).and_then(|response| {
            if !response.is_success() {
                return Err(format!("the service answered {}", response.status));
            }
            response.json::<Value>().map_err(|e| format!("the service's answer is not JSON: {e}"))
        });
        let config = config::get::<Config>().unwrap_or_default();
        let reply = match answer {
            Ok(body) => {
                record(&config, |_| Breaker::Closed { failures: 0 });
                Reply::ok(body)
            }
            Err(reason) => {
                record(&config, |breaker| failed(&config, breaker));
                Reply::error(json!({ "reason": reason }))
            }
        };
        if let Err(err) = channel::reply(&socket_ref, reply) {
            log::warn(&format!("the call's answer was not sent: {err}"));
        }
        HandleInfo::NoReply
    }
}

fn external_api_call(payload: &Payload, socket: &mut Socket) -> HandleIn {
    let config = match config::get::<Config>() {
        Ok(config) if !config.backend_url.is_empty() => config,
        _ => return Reply::error(json!({"reason": "the route has no backend_url"})).into(),
    };
    match admit(&config) {
        Ok(true) => {}
        Ok(false) => return Reply::error(json!({ "reason": UNAVAILABLE })).into(),
        Err(err) => return Reply::error(json!({ "reason": format!("the circuit breaker is unavailable: {err}") })).into(),
    }
    let url = format!("{}/external", config.backend_url.trim_end_matches('/'));
    let body = payload.value().unwrap_or(Value::Null);
    match (http::post(&url).json(&body).send(), channel::socket_ref()) {
        (Ok(id), Some(socket_ref)) => {
            socket.assign(id.key(), json!(Pending { socket_ref }));
            HandleIn::NoReply
        }
        (Err(err), _) => Reply::error(json!({ "reason": err.to_string() })).into(),
        (Ok(_), None) => Reply::error(json!({"reason": "no push to answer"})).into(),
    }
}

/// Whether a call may go out now: the breaker is closed, or this call is
/// the half-open breaker's one trial (an earlier trial that never came
/// back counts as lost after `open_ms`).
fn admit(config: &Config) -> Result<bool, kv::KvError> {
    let now = clock::now_ms();
    let mut admitted = false;
    kv::update_json(&config.key(), Some(config.ttl()), |breaker: Option<Breaker>| {
        let breaker = breaker.unwrap_or(Breaker::Closed { failures: 0 });
        admitted = match breaker {
            Breaker::Closed { .. } => true,
            Breaker::Open { until_ms } => now >= until_ms,
            Breaker::HalfOpen { since_ms } => now >= since_ms.saturating_add(config.open_ms),
        };
        match breaker {
            Breaker::Closed { .. } => None,
            _ if admitted => Some(Breaker::HalfOpen { since_ms: now }),
            _ => None,
        }
    })?;
    Ok(admitted)
}

/// The breaker after a failure.
fn failed(config: &Config, breaker: Breaker) -> Breaker {
    let open = Breaker::Open {
        until_ms: clock::now_ms().saturating_add(config.open_ms),
    };
    match breaker {
        Breaker::Closed { failures } if failures + 1 < config.failure_threshold => Breaker::Closed { failures: failures + 1 },
        Breaker::Open { .. } => breaker,
        _ => open,
    }
}

/// Apply `change` to the breaker (compare-and-swap, retried on races).
fn record(config: &Config, change: impl Fn(Breaker) -> Breaker) {
    let updated = kv::update_json(&config.key(), Some(config.ttl()), |breaker: Option<Breaker>| {
        let breaker = breaker.unwrap_or(Breaker::Closed { failures: 0 });
        let next = change(breaker);
        (next != breaker).then_some(next)
    });
    if let Err(err) = updated {
        log::warn(&format!("the circuit breaker was not updated: {err}"));
    }
}

plume_sdk::export_channel!(ResilientChannel);
