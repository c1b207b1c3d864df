//! CalculatorChannel, for topics `calculator:*`: quick answers computed in
//! the plugin, and slow work handed to the app's backend without holding
//! the channel.
//!
//! - `calculate_nisab` `{"currency", "gold_price"}` replies ok `{"nisab",
//!   "currency"}`: the nisab is 85 grams of gold at `gold_price` a gram. A
//!   missing or non-positive price, or a missing currency, replies error
//!   `{"reason"}`.
//! - `complex_calculation` P replies ok `{"status": "processing"}` at once
//!   and POSTs P to `<backend_url>/complex_calculation` (`backend_url` from
//!   the route's configuration). When the backend answers 2xx with JSON,
//!   the channel pushes `calculation_complete` `{"result": <that JSON>}`;
//!   on anything else (another status, a body that is not JSON, a timeout,
//!   no backend) it pushes `calculation_failed` `{"reason": "calculation
//!   error"}`. Phoenix's `Task.async` + `handle_info`: the request runs on
//!   the host, and the channel answers other pushes meanwhile.

use plume_sdk::{Channel, HandleIn, HandleInfo, Join, Payload, Reply, Socket, Value, channel, config, http, json, log, timers};
use serde::Deserialize;

/// Grams of gold in the nisab.
const NISAB_GRAMS: u64 = 85;

/// The calculator channel.
pub struct CalculatorChannel;

/// The route's configuration.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Config {
    /// The app's backend, e.g. `http://127.0.0.1:4001`.
    backend_url: String,
}

#[derive(Deserialize)]
struct NisabRequest {
    currency: Option<String>,
    gold_price: Option<serde_json::Number>,
}

/// A calculation that failed before its request went out, told to the
/// channel itself so the push follows the `processing` reply.
#[derive(serde::Serialize, Deserialize)]
struct NotSent {
    not_sent: String,
}

impl Channel for CalculatorChannel {
    fn join(_topic: &str, _payload: Payload, _socket: &mut Socket) -> Join {
        Join::ok(json!({}))
    }

    fn handle_in(event: &str, payload: Payload, _socket: &mut Socket) -> HandleIn {
        match event {
            "calculate_nisab" => calculate_nisab(&payload).into(),
            "complex_calculation" => complex_calculation(payload),
            _ => HandleIn::stop(format!("unknown event: {event}")),
        }
    }

    fn handle_info(message: Payload, _socket: &mut Socket) -> HandleInfo {
        let result = match http::Outcome::from_info(&message) {
            Some(outcome) => outcome.result.map_err(|failure| failure.to_string()).and_then(|response| {
                if !response.is_success() {
                    return Err(format!("the backend answered {}", response.status));
                }
                response.json::<Value>().map_err(|e| format!("the backend's answer is not JSON: {e}"))
            }),
            None => match message.parse::<NotSent>() {
                Ok(NotSent { not_sent }) => Err(not_sent),
                Err(_) => return HandleInfo::NoReply,
            },
        };
        let pushed = match result {
            Ok(result) => channel::push("calculation_complete", &json!({ "result": result })),
            Err(why) => {
                log::warn(&format!("complex_calculation failed: {why}"));
                channel::push("calculation_failed", &json!({"reason": "calculation error"}))
            }
        };
        if let Err(err) = pushed {
            log::warn(&format!("the calculation's outcome was not pushed: {err}"));
        }
        HandleInfo::NoReply
    }
}

/// `85 * gold_price`, in the price's currency: whole when the price is
/// whole, as Elixir's arithmetic gives it.
fn calculate_nisab(payload: &Payload) -> Reply {
    let Ok(request) = payload.parse::<NisabRequest>() else {
        return Reply::error(json!({"reason": "expected {\"currency\": ..., \"gold_price\": ...}"}));
    };
    let Some(currency) = request.currency.filter(|c| !c.is_empty()) else {
        return Reply::error(json!({"reason": "currency is required"}));
    };
    match request.gold_price.as_ref().and_then(nisab) {
        Some(nisab) => Reply::ok(json!({"nisab": nisab, "currency": currency})),
        None => Reply::error(json!({"reason": "gold_price must be a positive number"})),
    }
}

fn nisab(price: &serde_json::Number) -> Option<Value> {
    if let Some(whole) = price.as_u64() {
        return (whole > 0).then(|| whole.checked_mul(NISAB_GRAMS)).flatten().map(Value::from);
    }
    let price = price.as_f64().filter(|p| *p > 0.0 && p.is_finite())?;
    Some(json!(price * NISAB_GRAMS as f64))
}

/// Reply `processing`, and start the backend's work.
fn complex_calculation(payload: Payload) -> HandleIn {
    if let Err(why) = send(&payload) {
        // Told after the reply, as the request's own outcome would be.
        if let Err(err) = timers::send_self(&NotSent { not_sent: why }) {
            log::warn(&format!("complex_calculation cannot report its failure: {err}"));
        }
    }
    Reply::ok(json!({"status": "processing"})).into()
}

fn send(payload: &Payload) -> Result<http::RequestId, String> {
    let Config { backend_url } = config::get().map_err(|e| format!("the route's configuration is invalid: {e}"))?;
    if backend_url.is_empty() {
        return Err("the route has no backend_url".into());
    }
    let body = payload.value().map_err(|e| e.to_string())?;
    let url = format!("{}/complex_calculation", backend_url.trim_end_matches('/'));
    http::post(&url).json(&body).send().map_err(|e| e.to_string())
}

plume_sdk::export_channel!(CalculatorChannel);

#[cfg(test)]
mod tests {
    use super::*;

    fn nisab_of(raw: &str) -> Reply {
        calculate_nisab(&Payload::from_raw(raw))
    }

    #[test]
    fn the_nisab_is_85_grams_at_the_price() {
        assert_eq!(nisab_of(r#"{"currency":"USD","gold_price":60}"#), Reply::ok(json!({"nisab": 5100, "currency": "USD"})));
        assert_eq!(nisab_of(r#"{"currency":"EUR","gold_price":65.5}"#), Reply::ok(json!({"nisab": 5567.5, "currency": "EUR"})));
    }

    #[test]
    fn a_missing_or_non_positive_price_is_refused() {
        let refused = Reply::error(json!({"reason": "gold_price must be a positive number"}));
        for raw in [r#"{"currency":"USD"}"#, r#"{"currency":"USD","gold_price":0}"#, r#"{"currency":"USD","gold_price":-3.5}"#, r#"{"currency":"USD","gold_price":null}"#] {
            assert_eq!(nisab_of(raw), refused, "{raw}");
        }
        assert_eq!(nisab_of(r#"{"gold_price":60}"#), Reply::error(json!({"reason": "currency is required"})));
        assert!(nisab_of(r#"{"currency":"USD","gold_price":"60"}"#).status() == plume_sdk::ReplyStatus::Error);
    }
}
