//! ReportChannel, for topics `report:*`: long work that never blocks its
//! channel.
//!
//! `generate_report` `{"type": T, "year": Y}` replies `{"status":
//! "started"}` at once. The work then advances one step per message to
//! itself (`send_self` for the first, `send_after` every `step_ms` for the
//! rest, 250 by default in the route's configuration), pushing
//! `report_progress` `{"percent", "message"}` at 0, 25, 50, 75 and 100,
//! then `report_ready` `{"report": {...}}`. Between steps the channel is
//! free: `ping` P replies ok P at once. Each step's message carries the
//! whole request, so several reports may run side by side.

mod report;

use std::ops::RangeInclusive;
use std::time::Duration;

use plume_sdk::{Channel, HandleIn, HandleInfo, Join, Payload, Reply, Socket, channel, clock, config, json, log, timers};
use serde::{Deserialize, Serialize};

use report::STEPS;

/// The pause between steps when the route's configuration sets none.
const DEFAULT_STEP_MS: u64 = 250;

/// The pauses a configuration may set.
const STEP_MS: RangeInclusive<u64> = 1..=60_000;

/// The years a report may be asked for.
const YEARS: RangeInclusive<i64> = 1..=9999;

/// The report channel.
pub struct ReportChannel;

/// A request, as `generate_report` receives it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Request {
    #[serde(rename = "type")]
    kind: String,
    year: i64,
}

/// The message one step sends itself for the next.
#[derive(Serialize, Deserialize)]
struct Step {
    report: Request,
    step: usize,
}

/// The route's configuration.
#[derive(Deserialize)]
#[serde(default)]
struct Config {
    step_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            step_ms: DEFAULT_STEP_MS,
        }
    }
}

impl Channel for ReportChannel {
    fn join(_topic: &str, _payload: Payload, _socket: &mut Socket) -> Join {
        Join::ok(json!({}))
    }

    fn handle_in(event: &str, payload: Payload, _socket: &mut Socket) -> HandleIn {
        match event {
            "generate_report" => generate_report(&payload),
            "ping" => Reply::ok_raw(payload).into(),
            _ => HandleIn::stop(format!("unknown event: {event}")),
        }
    }

    fn handle_info(message: Payload, _socket: &mut Socket) -> HandleInfo {
        let Ok(Step { report, step }) = message.parse() else {
            return HandleInfo::NoReply;
        };
        let Some(&(percent, text)) = STEPS.get(step) else {
            return HandleInfo::NoReply;
        };
        let mut pushed = channel::push("report_progress", &json!({"percent": percent, "message": text}));
        if step + 1 < STEPS.len() {
            let next = Step { report, step: step + 1 };
            if let Err(err) = step_ms().and_then(|ms| timers::send_after(Duration::from_millis(ms), &next).map_err(|e| e.to_string())) {
                return HandleInfo::Stop(format!("the report cannot go on: {err}"));
            }
        } else {
            let body = report::body(&report.kind, report.year, clock::now_ms() / 1000);
            pushed = pushed.and(channel::push("report_ready", &json!({ "report": body })));
        }
        if let Err(err) = pushed {
            log::warn(&format!("report progress not pushed: {err}"));
        }
        HandleInfo::NoReply
    }
}

/// Starts a report: the reply goes out first, the first step right after.
fn generate_report(payload: &Payload) -> HandleIn {
    let request = match payload.parse::<Request>() {
        Ok(request) if YEARS.contains(&request.year) => request,
        _ => return Reply::error(json!({"reason": "invalid payload"})).into(),
    };
    if let Err(err) = step_ms() {
        log::error(&format!("the report route's configuration is invalid: {err}"));
        return Reply::error(json!({"reason": "invalid payload"})).into();
    }
    if let Err(err) = timers::send_self(&Step { report: request, step: 0 }) {
        log::warn(&format!("the report cannot start: {err}"));
        return Reply::error(json!({"reason": "unavailable"})).into();
    }
    Reply::ok(json!({"status": "started"})).into()
}

/// The pause between steps the route configures, if it is a valid one.
fn step_ms() -> Result<u64, String> {
    let Config { step_ms } = config::get().map_err(|err| format!("step_ms must be a whole number of milliseconds: {err}"))?;
    if STEP_MS.contains(&step_ms) {
        Ok(step_ms)
    } else {
        Err(format!(
            "step_ms = {step_ms} is out of range: give {} to {} milliseconds",
            STEP_MS.start(),
            STEP_MS.end()
        ))
    }
}

plume_sdk::export_channel!(ReportChannel);

#[cfg(test)]
mod tests {
    use super::*;
    use plume_sdk::Assigns;

    #[test]
    fn a_request_of_the_wrong_shape_is_an_invalid_payload() {
        for raw in [
            r#"{}"#,
            r#"{"type": "sales"}"#,
            r#"{"type": 1, "year": 2024}"#,
            r#"{"type": "sales", "year": "2024"}"#,
            r#"{"type": "sales", "year": 0}"#,
            r#"{"type": "sales", "year": 10000}"#,
            r#"{"type": "sales", "year": 2024.5}"#,
        ] {
            let mut socket = Socket::new("report:x", Assigns::new());
            let outcome = ReportChannel::handle_in("generate_report", Payload::from_raw(raw), &mut socket);
            assert_eq!(outcome, Reply::error(json!({"reason": "invalid payload"})).into(), "{raw}");
        }
    }

    #[test]
    fn ping_echoes_the_payload() {
        let mut socket = Socket::new("report:x", Assigns::new());
        let outcome = ReportChannel::handle_in("ping", Payload::from_raw(r#"{"during":"report"}"#), &mut socket);
        assert_eq!(outcome, Reply::ok_raw(Payload::from_raw(r#"{"during":"report"}"#)).into());
    }
}
