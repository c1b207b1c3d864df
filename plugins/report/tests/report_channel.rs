//! ReportChannel (`report:*`) through the plume-test harness: progress
//! steps driven by timers on the virtual clock.

use std::time::Duration;

use plume_test::{Channel, Harness, json};

/// Reports advance one step every 250 ms (the default period).
fn join(harness: &Harness) -> Channel {
    let socket = harness.connect(json!({})).expect("no socket plugin: everyone connects");
    socket.subscribe_and_join("report:sales", json!({})).expect("joined").1
}

#[test]
fn a_report_replies_started_then_progresses_one_step_per_period() {
    let harness = Harness::new("report");
    let channel = join(&harness);
    let started = channel.push("generate_report", json!({"type": "sales", "year": 2024}));
    channel.assert_reply(started, "ok", json!({"status": "started"}));
    channel.assert_push("report_progress", json!({"percent": 0}));
    channel.refute_push("report_progress", json!({"percent": 25}));

    for percent in [25, 50, 75] {
        harness.advance(Duration::from_millis(249));
        channel.refute_push("report_progress", json!({"percent": percent}));
        harness.advance(Duration::from_millis(1));
        channel.assert_push("report_progress", json!({"percent": percent}));
    }
    channel.refute_push("report_ready", json!({}));
    harness.advance(Duration::from_millis(250));
    channel.assert_push("report_progress", json!({"percent": 100}));
    channel.assert_push("report_ready", json!({"report": {}}));
}

#[test]
fn the_channel_answers_pings_while_a_report_runs() {
    let harness = Harness::builder().route("report:*", "report", json!({"step_ms": 1000})).build();
    let channel = join(&harness);
    channel.push("generate_report", json!({"type": "sales", "year": 2024}));
    harness.advance(Duration::from_millis(1500));
    let ping = channel.push("ping", json!({"n": 1}));
    channel.assert_reply(ping, "ok", json!({"n": 1}));
    channel.assert_push("report_progress", json!({"percent": 25}));
    channel.refute_push("report_progress", json!({"percent": 50}));
}

#[test]
fn an_invalid_request_is_refused() {
    let harness = Harness::new("report");
    let channel = join(&harness);
    for payload in [json!({}), json!({"type": "sales", "year": 0}), json!({"type": "sales", "year": "2024"})] {
        let sent = channel.push("generate_report", payload);
        channel.assert_reply(sent, "error", json!({"reason": "invalid payload"}));
    }
    harness.advance(Duration::from_secs(5));
    channel.refute_push("report_progress", json!({}));
}
