//! The channel exports of the WIT package (join, handle-in, handle-out,
//! handle-info, terminate, intercepts) as a client observes them.

mod support;

use serde_json::{Value, json};
use support::{Client, Server};

/// Wait for the next `terminated` report on `probe:watch`.
async fn terminated(watcher: &mut Client) -> Value {
    let frame = watcher.recv().await;
    assert_eq!(frame[3], "terminated", "{frame}");
    frame[4].clone()
}

#[tokio::test]
async fn intercepted_events_pass_through_handle_out_once_per_subscriber() {
    let server = Server::start_probe();
    let mut a = server.client(1).await;
    let mut b = server.client(2).await;
    let ja = a.join_ok_probe("probe:out").await;
    let jb = b.join_ok_probe("probe:out").await;
    a.push(&ja, "probe:out", "broadcast", json!({"event": "secret", "payload": {"v": 1}})).await;
    // Each subscriber gets its own payload, pushed with its join_ref. The
    // sender's own copy goes through its mailbox as in Phoenix: after the
    // reply.
    assert_eq!(a.recv().await[3], "phx_reply");
    assert_eq!(a.recv().await, json!([ja, null, "probe:out", "secret", {"original": {"v": 1}, "seen_by": 1}]));
    assert_eq!(b.recv().await, json!([jb, null, "probe:out", "secret", {"original": {"v": 1}, "seen_by": 2}]));
}

#[tokio::test]
async fn handle_out_can_drop_an_event_and_other_events_go_out_as_broadcasts() {
    let server = Server::start_probe();
    let mut a = server.client(1).await;
    let mut b = server.client(2).await;
    let ja = a.join_ok_probe("probe:drop").await;
    b.join_ok_probe("probe:drop").await;
    a.push(&ja, "probe:drop", "broadcast", json!({"event": "hidden", "payload": {}})).await;
    assert_eq!(a.recv().await[3], "phx_reply");
    a.push(&ja, "probe:drop", "broadcast", json!({"event": "plain", "payload": {"p": 1}})).await;
    // The dropped event never arrives; the next one is an ordinary broadcast.
    assert_eq!(b.recv().await, json!([null, null, "probe:drop", "plain", {"p": 1}]));
}

#[tokio::test]
async fn terminate_runs_with_the_reason_on_leave_close_duplicate_join_and_crash() {
    let server = Server::start_probe();
    let mut watcher = server.client(9).await;
    watcher.join_ok("room:x").await;
    let mut a = server.client(1).await;
    // The watcher joins probe:watch through the probe plugin.
    watcher.join_ok_probe("probe:watch").await;

    let ja = a.join_ok_probe("probe:leave").await;
    a.send(json!([ja, "99", "probe:leave", "phx_leave", {}])).await;
    assert_eq!(a.recv().await[3], "phx_reply");
    assert_eq!(a.recv().await[3], "phx_close");
    assert_eq!(terminated(&mut watcher).await, json!({"topic": "probe:leave", "reason": "leave"}));

    a.join_ok_probe("probe:dup").await;
    a.join_ok_probe("probe:dup").await;
    assert_eq!(a.recv().await[3], "phx_close");
    assert_eq!(
        terminated(&mut watcher).await,
        json!({"topic": "probe:dup", "reason": "shutdown:duplicate_join"})
    );

    let jc = a.join_ok_probe("probe:crash").await;
    a.push(&jc, "probe:crash", "bad_json", json!({})).await;
    assert_eq!(a.recv().await[3], "phx_error");
    assert_eq!(terminated(&mut watcher).await, json!({"topic": "probe:crash", "reason": "crash"}));

    drop(a);
    assert_eq!(terminated(&mut watcher).await, json!({"topic": "probe:dup", "reason": "closed"}));
}

#[tokio::test]
async fn a_normal_stop_replies_then_closes_and_another_reason_is_a_crash() {
    let server = Server::start_probe();
    let mut a = server.client(1).await;
    let ja = a.join_ok_probe("probe:stop").await;
    let reference = a.push(&ja, "probe:stop", "stop", json!({"reason": "normal", "reply": true})).await;
    assert_eq!(
        a.recv().await,
        json!([ja, reference, "probe:stop", "phx_reply", {"response": {"stopping": true}, "status": "ok"}])
    );
    assert_eq!(a.recv().await, json!([ja, ja, "probe:stop", "phx_close", {}]));

    let jb = a.join_ok_probe("probe:stop").await;
    a.push(&jb, "probe:stop", "stop", json!({"reason": "gave up"})).await;
    assert_eq!(a.recv().await, json!([jb, jb, "probe:stop", "phx_error", {}]));
}

#[tokio::test]
async fn a_join_refused_by_the_plugin_carries_its_payload_and_a_crashing_join_says_join_crashed() {
    let server = Server::start_probe();
    let mut a = server.client(1).await;
    let (join_ref, reply) = a.join("probe:no", json!({"refuse": true})).await;
    assert_eq!(reply, json!([join_ref, join_ref, "probe:no", "phx_reply", {"response": {"reason": "refused"}, "status": "error"}]));
    let (join_ref, reply) = a.join("probe:boom", json!({"crash": true})).await;
    assert_eq!(
        reply,
        json!([join_ref, join_ref, "probe:boom", "phx_reply", {"response": {"reason": "join crashed"}, "status": "error"}])
    );
    a.expect_quiet().await;
    assert!(server.wait_for_log("join crash requested"), "the plugin's panic message is logged:\n{}", server.log());
}
