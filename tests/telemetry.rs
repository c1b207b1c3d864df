//! What the host measures of every plugin, read back on `/metrics`: joins
//! by outcome, call durations, terminations by reason, faults by kind and
//! swaps, with bounded labels.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Client, Server};

/// Frames until the one matching `wanted`; panics after a while.
async fn until(c: &mut Client, wanted: impl Fn(&Value) -> bool) -> Value {
    loop {
        let frame = c.recv().await;
        if wanted(&frame) {
            return frame;
        }
    }
}

/// `/metrics` once every line of `expected` is in it (the figures of a
/// call are counted as it ends, which may be just after its reply).
fn metrics_with(server: &Server, expected: &[String]) -> String {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let body = server.admin_page("/metrics");
        let missing: Vec<&String> = expected.iter().filter(|line| !body.lines().any(|l| l == line.as_str())).collect();
        if missing.is_empty() {
            return body;
        }
        assert!(Instant::now() < until, "/metrics lacks {missing:?}:\n{body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn series(name: &str, labels: &str, value: u64) -> String {
    format!("{name}{{tenant=\"demo\",plugin=\"probe\"{labels}}} {value}")
}

#[tokio::test]
async fn joins_calls_faults_and_terminations_of_a_plugin_are_on_metrics_with_bounded_labels() {
    let server = Server::start_probe();
    let mut c = server.client(42).await;
    let mut joins_ok = 0;

    let (_, reply) = c.join("probe:refused", json!({"refuse": true})).await;
    assert_eq!(reply[4]["status"], "error", "{reply}");
    let (_, reply) = c.join("probe:crashed", json!({"crash": true})).await;
    assert_eq!(reply[4]["response"], json!({"reason": "join crashed"}), "{reply}");

    // handle_in, then handle_out for the intercepted broadcast, then
    // handle_info for the message to self.
    let a = c.join_ok_probe("probe:a").await;
    joins_ok += 1;
    let reference = c.push(&a, "probe:a", "broadcast", json!({"event": "secret", "payload": {"n": 1}})).await;
    until(&mut c, |f| f[1] == json!(reference) && f[3] == "phx_reply").await;
    until(&mut c, |f| f[3] == "secret").await;
    c.push(&a, "probe:a", "send_self", json!({"message": {"hello": 1}})).await;
    until(&mut c, |f| f[3] == "info").await;

    // A deadline, then a trap, each crashing the channel.
    c.push(&a, "probe:a", "spin", json!({})).await;
    until(&mut c, |f| f[2] == "probe:a" && f[3] == "phx_error").await;
    let a = c.join_ok_probe("probe:a").await;
    joins_ok += 1;
    c.push(&a, "probe:a", "panic", json!({})).await;
    until(&mut c, |f| f[2] == "probe:a" && f[3] == "phx_error").await;
    let a = c.join_ok_probe("probe:a").await;
    joins_ok += 1;
    let reference = c.next_ref();
    c.send(json!([a, reference, "probe:a", "phx_leave", {}])).await;
    until(&mut c, |f| f[3] == "phx_close").await;

    // 35 made-up events, each stopping the channel with a reason of its own:
    // 4 events and 2 reasons are known already, so e0..e27 get an event
    // label (32 in all) and e0..e13 a reason (16 in all); the rest are
    // "other".
    for i in 0..35 {
        let b = c.join_ok_probe("probe:b").await;
        joins_ok += 1;
        c.push(&b, "probe:b", &format!("e{i}"), json!({})).await;
        until(&mut c, |f| f[2] == "probe:b" && f[3] == "phx_error").await;
    }

    let h = "plume_plugin_handle_in_seconds_count";
    let t = "plume_plugin_terminations_total";
    let body = metrics_with(
        &server,
        &[
            series("plume_plugin_joins_total", ",outcome=\"ok\"", joins_ok),
            series("plume_plugin_joins_total", ",outcome=\"refused\"", 1),
            series("plume_plugin_joins_total", ",outcome=\"crashed\"", 1),
            series(h, ",event=\"broadcast\"", 1),
            series(h, ",event=\"send_self\"", 1),
            series(h, ",event=\"spin\"", 1),
            series(h, ",event=\"panic\"", 1),
            series(h, ",event=\"e27\"", 1),
            series(h, ",event=\"other\"", 7),
            series("plume_plugin_handle_out_seconds_count", "", 1),
            series("plume_plugin_handle_info_seconds_count", "", 1),
            series("plume_plugin_call_faults_total", ",kind=\"deadline\"", 1),
            series("plume_plugin_call_faults_total", ",kind=\"trap\"", 2),
            series("plume_plugin_call_faults_total", ",kind=\"memory\"", 0),
            series(t, ",reason=\"crash\"", 2),
            series(t, ",reason=\"leave\"", 1),
            series(t, ",reason=\"unknown event: e13\"", 1),
            series(t, ",reason=\"other\"", 21),
            series("plume_plugin_swaps_total", "", 0),
            // The spin ran to its deadline (300 ms): past the 0.25 s bound.
            series("plume_plugin_handle_in_seconds_bucket", ",event=\"spin\",le=\"0.25\"", 0),
            series("plume_plugin_handle_in_seconds_bucket", ",event=\"spin\",le=\"+Inf\"", 1),
        ],
    );
    let probe_events = body
        .lines()
        .filter(|l| l.starts_with(h) && l.contains("plugin=\"probe\""))
        .count();
    assert_eq!(probe_events, 33, "32 event labels and other:\n{body}");
    assert!(!body.contains("event=\"e28\""), "{body}");
    let probe_reasons = body
        .lines()
        .filter(|l| l.starts_with(&format!("{t}{{")) && l.contains("plugin=\"probe\""))
        .count();
    assert_eq!(probe_reasons, 17, "16 reasons and other:\n{body}");
    // Other plugins have their own series, untouched by the probe's.
    assert!(
        body.contains("plume_plugin_joins_total{tenant=\"demo\",plugin=\"room\",outcome=\"ok\"} 0\n"),
        "{body}"
    );
    // The figures that were there before keep their names and labels.
    assert!(body.contains("plume_plugin_faults_total{tenant=\"demo\"} 2\n"), "{body}");
}
