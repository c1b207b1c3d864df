//! The harness itself: settling, virtual time, failure reports, and the
//! app it runs. Driven by the demo plugins of this workspace.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use plume_test::{Harness, json};

/// The panic message of `f`, which must panic.
fn panic_message(f: impl FnOnce()) -> String {
    let payload = catch_unwind(AssertUnwindSafe(f)).expect_err("the assertion fails");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

#[test]
fn a_failed_assert_push_names_the_pattern_and_lists_what_arrived() {
    let harness = Harness::new("room");
    let socket = harness.connect(json!({})).expect("connects");
    let (_, lobby) = socket.subscribe_and_join("room:lobby", json!({})).expect("joined");
    lobby.push("new_msg", json!({"body": "hi"}));
    let message = panic_message(|| {
        lobby.assert_push("new_msg", json!({"body": "bye"}));
    });
    assert!(message.contains("assert_push on room:lobby: expected \"new_msg\""), "{message}");
    assert!(message.contains("\"body\": \"bye\""), "the pattern, pretty: {message}");
    assert!(message.contains("\"body\": \"hi\""), "what arrived, pretty: {message}");
    assert!(message.contains("\"status\": \"ok\""), "the reply is listed too: {message}");
}

#[test]
fn a_failed_assert_reply_shows_the_reply_that_did_arrive() {
    let harness = Harness::new("room");
    let socket = harness.connect(json!({})).expect("connects");
    let (_, lobby) = socket.subscribe_and_join("room:lobby", json!({})).expect("joined");
    let sent = lobby.push("new_msg", json!({}));
    let message = panic_message(|| {
        lobby.assert_reply(sent, "ok", json!({}));
    });
    assert!(message.contains("ref 2 with status \"ok\""), "{message}");
    assert!(message.contains("invalid message"), "{message}");
    lobby.assert_reply(sent, "error", json!({"reason": "invalid message"}));
}

#[test]
fn an_assertion_claims_what_it_matched() {
    let harness = Harness::new("room");
    let socket = harness.connect(json!({})).expect("connects");
    let (_, lobby) = socket.subscribe_and_join("room:lobby", json!({})).expect("joined");
    lobby.push("new_msg", json!({"body": "once"}));
    lobby.assert_push("new_msg", json!({"body": "once"}));
    lobby.refute_push("new_msg", json!({}));
    lobby.assert_broadcast("new_msg", json!({"body": "once"}));
    lobby.refute_broadcast("new_msg", json!({}));
}

#[test]
fn timers_fire_only_when_virtual_time_reaches_them() {
    let harness = Harness::builder().route("admin:*", "admin", json!({"update_ms": 60_000})).socket("user_socket").build();
    let token = harness.sign_token("user socket", json!({"id": 1, "name": "root", "role": "admin"}));
    let socket = harness.connect(json!({"token": token})).expect("connects");
    let (_, dashboard) = socket.subscribe_and_join("admin:dashboard", json!({})).expect("joined");
    dashboard.assert_push("dashboard_data", json!({}));

    let real = std::time::Instant::now();
    harness.advance(Duration::from_secs(3600));
    assert!(real.elapsed() < Duration::from_secs(10), "an hour of virtual time takes no real hour");
    assert_eq!(harness.elapsed(), Duration::from_secs(3600));
    for _ in 0..60 {
        dashboard.assert_push("dashboard_update", json!({}));
    }
    dashboard.refute_push("dashboard_update", json!({}));
}

#[test]
fn the_host_clock_follows_virtual_time() {
    let harness = Harness::new("game");
    let before = harness.now_ms();
    harness.advance(Duration::from_secs(90));
    assert_eq!(harness.now_ms() - before, 90_000);
    assert!(plume::clock::unix_ms().abs_diff(before) < 90_000, "outside the harness, the system clock");
}

#[test]
fn presence_lists_a_topic_in_the_phoenix_js_format() {
    let harness = Harness::builder().channel("chat").socket("user_socket").build();
    let token = harness.sign_token("user socket", json!(3));
    let socket = harness.connect(json!({"token": token.clone()})).expect("connects");
    assert_eq!(harness.presence("chat:x"), json!({}));
    socket.subscribe_and_join("chat:x", json!({"token": token})).expect("joined");
    let presence = harness.presence("chat:x");
    assert_eq!(presence["3"]["metas"].as_array().map(Vec::len), Some(1), "{presence}");
}

#[test]
fn a_harness_builds_each_app_afresh() {
    for _ in 0..2 {
        let harness = Harness::builder().channel("chat").socket("user_socket").build();
        let token = harness.sign_token("user socket", json!(1));
        let socket = harness.connect(json!({"token": token.clone()})).expect("connects");
        let (_, chat) = socket.subscribe_and_join("chat:fresh", json!({"token": token})).expect("joined");
        let history = chat.push("history", json!({}));
        chat.assert_reply(history, "ok", json!({"messages": []}));
        let sent = chat.push("new_message", json!({"message": "only one"}));
        chat.assert_reply(sent, "ok", json!({"id": "1"}));
    }
}

#[test]
fn a_plugin_that_is_not_in_the_workspace_is_reported() {
    let error = Harness::builder().channel("no_such_plugin").try_build().err().expect("refused");
    assert!(error.contains("no_such_plugin"), "{error}");
}

#[test]
fn a_socket_plugin_reads_the_socket_config_the_harness_gives_it() {
    let harness = Harness::builder()
        .socket("configured_socket")
        .socket_config(json!({"key": "k", "id_prefix": "gated"}))
        .build();
    assert!(harness.connect(json!({"key": "wrong", "user": "1"})).is_err(), "connect checks the configured key");
    let socket = harness.connect(json!({"key": "k", "user": "1"})).expect("the configured key opens");
    assert_eq!(socket.assigns()["socket_config"], json!({"key": "k", "id_prefix": "gated"}));
    assert_eq!(socket.id(), Some("gated:1"), "id reads the config too");
}
