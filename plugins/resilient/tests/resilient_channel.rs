//! ResilientAPIChannel through plume-test: the circuit breaker on the
//! virtual clock, with the harness playing the external service.

use std::time::Duration;

use plume_test::{Harness, HttpFailure, json};

const BACKEND: &str = "http://service.test";
const EXTERNAL: &str = "http://service.test/external";

fn harness() -> Harness {
    Harness::builder()
        .route("resilient:*", "resilient", json!({"backend_url": BACKEND}))
        .http_allow(&[BACKEND])
        .build()
}

#[test]
fn a_call_is_answered_with_the_services_json() {
    let harness = harness();
    let socket = harness.connect(json!({})).unwrap();
    let (_, api) = socket.subscribe_and_join("resilient:1", json!({})).unwrap();
    let call = api.push("external_api_call", json!({"q": "rates"}));
    api.refute_reply(call, "ok", json!({}));
    let request = harness.expect_http("POST", EXTERNAL);
    assert_eq!(request.json(), json!({"q": "rates"}));
    harness.respond(&request, 200, json!({"usd": 1.0}));
    api.assert_reply(call, "ok", json!({"usd": 1.0}));
}

#[test]
fn a_failure_is_answered_with_its_reason() {
    let harness = harness();
    let socket = harness.connect(json!({})).unwrap();
    let (_, api) = socket.subscribe_and_join("resilient:1", json!({})).unwrap();
    let call = api.push("external_api_call", json!({}));
    harness.respond(&harness.expect_http("POST", EXTERNAL), 503, json!({}));
    let reply = api.assert_reply(call, "error", json!({}));
    assert!(reply["reason"].as_str().unwrap().contains("503"), "{reply}");
    let call = api.push("external_api_call", json!({}));
    harness.advance(Duration::from_secs(5));
    let reply = api.assert_reply(call, "error", json!({}));
    assert!(reply["reason"].as_str().unwrap().starts_with("timeout"), "{reply}");
}

/// Five failures open the breaker for 60 s; then one trial goes through.
#[test]
fn five_failures_open_the_breaker_for_a_minute_then_one_trial_call_is_let_through() {
    let harness = harness();
    let socket = harness.connect(json!({})).unwrap();
    let (_, api) = socket.subscribe_and_join("resilient:1", json!({})).unwrap();
    for _ in 0..5 {
        let call = api.push("external_api_call", json!({}));
        harness.fail_http(&harness.expect_http("POST", EXTERNAL), HttpFailure::Refused, "connection refused");
        api.assert_reply(call, "error", json!({"reason": "refused: connection refused"}));
    }
    // Open: refused at once, with no request.
    let call = api.push("external_api_call", json!({}));
    api.assert_reply(call, "error", json!({"reason": "service temporarily unavailable"}));
    assert!(harness.http_requests().is_empty());
    // Another channel shares the breaker (it lives in the key-value store).
    let (_, other) = socket.subscribe_and_join("resilient:2", json!({})).unwrap();
    let call = other.push("external_api_call", json!({}));
    other.assert_reply(call, "error", json!({"reason": "service temporarily unavailable"}));

    harness.advance(Duration::from_secs(59));
    let call = api.push("external_api_call", json!({}));
    api.assert_reply(call, "error", json!({"reason": "service temporarily unavailable"}));

    // Half-open: one trial goes out, the others are still refused.
    harness.advance(Duration::from_secs(1));
    let trial = api.push("external_api_call", json!({"trial": true}));
    let request = harness.expect_http("POST", EXTERNAL);
    let meanwhile = other.push("external_api_call", json!({}));
    other.assert_reply(meanwhile, "error", json!({"reason": "service temporarily unavailable"}));
    harness.respond(&request, 200, json!({"ok": true}));
    api.assert_reply(trial, "ok", json!({"ok": true}));

    // Closed again.
    let call = other.push("external_api_call", json!({}));
    harness.respond(&harness.expect_http("POST", EXTERNAL), 200, json!({"again": true}));
    other.assert_reply(call, "ok", json!({"again": true}));
}

#[test]
fn a_failed_trial_opens_the_breaker_again() {
    let harness = harness();
    let socket = harness.connect(json!({})).unwrap();
    let (_, api) = socket.subscribe_and_join("resilient:1", json!({})).unwrap();
    for _ in 0..5 {
        api.push("external_api_call", json!({}));
        harness.respond(&harness.expect_http("POST", EXTERNAL), 500, json!({}));
    }
    harness.advance(Duration::from_secs(60));
    let trial = api.push("external_api_call", json!({}));
    harness.respond(&harness.expect_http("POST", EXTERNAL), 500, json!({}));
    api.assert_reply(trial, "error", json!({"reason": "the service answered 500"}));
    let call = api.push("external_api_call", json!({}));
    api.assert_reply(call, "error", json!({"reason": "service temporarily unavailable"}));
    let state = harness.app().kv.get("circuit:http://service.test").unwrap().expect("the breaker is in the key-value store");
    assert!(state.value.contains("\"open\""), "{}", state.value);
}
