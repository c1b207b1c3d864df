//! BatchChannel through plume-test, the harness playing the backend.

use plume_test::{Harness, HttpFailure, json};

const BACKEND: &str = "http://backend.test";
const IMPORT: &str = "http://backend.test/import";

fn harness(chunk_size: u64) -> Harness {
    Harness::builder()
        .route("batch:*", "batch", json!({"backend_url": BACKEND, "chunk_size": chunk_size}))
        .http_allow(&[BACKEND])
        .build()
}

#[test]
fn an_import_reports_progress_after_each_chunk_then_completes() {
    let harness = harness(2);
    let socket = harness.connect(json!({})).unwrap();
    let (_, batch) = socket.subscribe_and_join("batch:1", json!({})).unwrap();
    let started = batch.push("import_batch", json!({"items": [1, 2, 3, 4, 5]}));
    batch.assert_reply(started, "ok", json!({"status": "started", "total": 5}));

    let first = harness.expect_http("POST", IMPORT);
    assert_eq!(first.json(), json!({"items": [1, 2]}));
    // One chunk at a time.
    assert_eq!(harness.http_requests().len(), 1);
    let ping = batch.push("ping", json!({"n": 1}));
    batch.assert_reply(ping, "ok", json!({"n": 1}));

    harness.respond(&first, 200, json!({"imported": 2}));
    batch.assert_push("batch_progress", json!({"processed": 2, "total": 5, "percent": 40}));
    let second = harness.expect_http("POST", IMPORT);
    assert_eq!(second.json(), json!({"items": [3, 4]}));
    harness.fail_http(&second, HttpFailure::Refused, "connection refused");
    batch.assert_push("batch_progress", json!({"processed": 4, "total": 5, "percent": 80}));
    let third = harness.expect_http("POST", IMPORT);
    assert_eq!(third.json(), json!({"items": [5]}));
    harness.respond(&third, 200, json!({}));
    batch.assert_push("batch_progress", json!({"processed": 5, "total": 5, "percent": 100}));
    batch.assert_push("batch_complete", json!({"total": 5, "imported": 3, "failed": 2}));
    assert!(harness.http_requests().is_empty());

    // The channel is free for another batch.
    let again = batch.push("import_batch", json!({"items": ["x"]}));
    batch.assert_reply(again, "ok", json!({"total": 1}));
}

#[test]
fn one_batch_at_a_time_and_bad_input_is_refused() {
    let harness = harness(10);
    let socket = harness.connect(json!({})).unwrap();
    let (_, batch) = socket.subscribe_and_join("batch:1", json!({})).unwrap();
    batch.push("import_batch", json!({"items": [1]}));
    let second = batch.push("import_batch", json!({"items": [2]}));
    batch.assert_reply(second, "error", json!({"reason": "a batch is already running"}));
    for bad in [json!({}), json!({"items": []}), json!({"items": "x"})] {
        let refused = batch.push("import_batch", bad);
        batch.assert_reply(refused, "error", json!({}));
    }
}
