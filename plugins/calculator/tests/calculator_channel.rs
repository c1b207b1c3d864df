//! CalculatorChannel through plume-test: the real component and runtime,
//! with the harness answering the backend's requests.

use std::time::Duration;

use plume_test::{Harness, HttpFailure, json};

const BACKEND: &str = "http://backend.test";

fn harness() -> Harness {
    Harness::builder()
        .route("calculator:*", "calculator", json!({"backend_url": BACKEND}))
        .http_allow(&[BACKEND])
        .build()
}

#[test]
fn calculate_nisab_is_computed_in_the_plugin() {
    let harness = harness();
    let socket = harness.connect(json!({})).unwrap();
    let (_, calc) = socket.subscribe_and_join("calculator:zakat", json!({})).unwrap();
    let asked = calc.push("calculate_nisab", json!({"currency": "USD", "gold_price": 60}));
    calc.assert_reply(asked, "ok", json!({"nisab": 5100, "currency": "USD"}));
    let refused = calc.push("calculate_nisab", json!({"currency": "USD", "gold_price": -1}));
    calc.assert_reply(refused, "error", json!({"reason": "gold_price must be a positive number"}));
    assert!(harness.http_requests().is_empty(), "no backend call for the nisab");
}

#[test]
fn complex_calculation_replies_processing_then_pushes_the_backends_result() {
    let harness = harness();
    let socket = harness.connect(json!({})).unwrap();
    let (_, calc) = socket.subscribe_and_join("calculator:1", json!({})).unwrap();
    let asked = calc.push("complex_calculation", json!({"numbers": [1, 2, 3]}));
    calc.assert_reply(asked, "ok", json!({"status": "processing"}));
    calc.refute_push("calculation_complete", json!({}));

    let request = harness.expect_http("POST", "http://backend.test/complex_calculation");
    assert_eq!(request.json(), json!({"numbers": [1, 2, 3]}));
    assert_eq!(request.header("content-type"), Some("application/json"));
    // The channel answers meanwhile.
    let quick = calc.push("calculate_nisab", json!({"currency": "EUR", "gold_price": 2}));
    calc.assert_reply(quick, "ok", json!({"nisab": 170}));

    harness.respond(&request, 200, json!({"sum": 6}));
    calc.assert_push("calculation_complete", json!({"result": {"sum": 6}}));
}

#[test]
fn complex_calculation_fails_on_an_error_status_a_failure_or_a_timeout() {
    let harness = harness();
    let socket = harness.connect(json!({})).unwrap();
    let (_, calc) = socket.subscribe_and_join("calculator:1", json!({})).unwrap();

    calc.push("complex_calculation", json!({"n": 1}));
    let request = harness.expect_http("POST", "http://backend.test/complex_calculation");
    harness.respond(&request, 500, json!({"error": "boom"}));
    calc.assert_push("calculation_failed", json!({"reason": "calculation error"}));

    calc.push("complex_calculation", json!({"n": 2}));
    let request = harness.expect_http("POST", "http://backend.test/complex_calculation");
    harness.fail_http(&request, HttpFailure::Refused, "connection refused");
    calc.assert_push("calculation_failed", json!({"reason": "calculation error"}));

    calc.push("complex_calculation", json!({"n": 3}));
    harness.expect_http("POST", "http://backend.test/complex_calculation");
    harness.advance(Duration::from_secs(4));
    calc.refute_push("calculation_failed", json!({}));
    harness.advance(Duration::from_secs(1));
    calc.assert_push("calculation_failed", json!({"reason": "calculation error"}));
    assert!(harness.http_requests().is_empty(), "the timed-out request is gone");
}

#[test]
fn complex_calculation_without_a_backend_fails_after_its_reply() {
    let harness = Harness::new("calculator");
    let socket = harness.connect(json!({})).unwrap();
    let (_, calc) = socket.subscribe_and_join("calculator:1", json!({})).unwrap();
    let asked = calc.push("complex_calculation", json!({"n": 1}));
    calc.assert_reply(asked, "ok", json!({"status": "processing"}));
    calc.assert_push("calculation_failed", json!({"reason": "calculation error"}));
}
