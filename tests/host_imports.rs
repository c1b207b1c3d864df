//! Every host import of the WIT package, driven over a real socket through
//! the test-only `probe` plugin (tests/plugins/probe).

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Client, Server};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Push `event` and return the reply's status and response, skipping the
/// frames that come before the reply (the caller's own broadcasts).
async fn call(client: &mut Client, join_ref: &str, topic: &str, event: &str, payload: Value) -> (String, Value) {
    let reference = client.push(join_ref, topic, event, payload).await;
    loop {
        let frame = client.recv().await;
        if frame[3] == "phx_reply" && frame[1] == reference.as_str() {
            return (
                frame[4]["status"].as_str().unwrap_or_default().to_owned(),
                frame[4]["response"].clone(),
            );
        }
    }
}

#[tokio::test]
async fn channel_push_reaches_only_this_client_with_its_join_ref() {
    let server = Server::start_probe();
    let mut a = server.client(1).await;
    let mut b = server.client(2).await;
    let ja = a.join_ok_probe("probe:a").await;
    b.join_ok_probe("probe:a").await;
    let reference = a.push(&ja, "probe:a", "push", json!({"event": "note", "payload": {"x": 1}})).await;
    assert_eq!(a.recv().await, json!([ja, null, "probe:a", "note", {"x": 1}]));
    assert_eq!(a.recv().await, json!([ja, reference, "probe:a", "phx_reply", {"response": {"result": null}, "status": "ok"}]));
    b.expect_quiet().await;
}

#[tokio::test]
async fn channel_broadcast_reaches_every_member_and_broadcast_from_skips_the_sender() {
    let server = Server::start_probe();
    let mut a = server.client(1).await;
    let mut b = server.client(2).await;
    let ja = a.join_ok_probe("probe:b").await;
    b.join_ok_probe("probe:b").await;

    a.push(&ja, "probe:b", "broadcast", json!({"event": "all", "payload": {"n": 1}})).await;
    assert_eq!(a.recv().await, json!([null, null, "probe:b", "all", {"n": 1}]));
    assert_eq!(a.recv().await[3], "phx_reply");
    assert_eq!(b.recv().await, json!([null, null, "probe:b", "all", {"n": 1}]));

    a.push(&ja, "probe:b", "broadcast_from", json!({"event": "others", "payload": {"n": 2}})).await;
    assert_eq!(a.recv().await[3], "phx_reply");
    assert_eq!(b.recv().await, json!([null, null, "probe:b", "others", {"n": 2}]));
    a.expect_quiet().await;
}

#[tokio::test]
async fn channel_broadcast_to_reaches_any_topic_of_the_app() {
    let server = Server::start_probe();
    let mut a = server.client(1).await;
    let mut room = server.client(2).await;
    let ja = a.join_ok_probe("probe:c").await;
    room.join_ok("room:lobby").await;
    let (status, _) = call(
        &mut a,
        &ja,
        "probe:c",
        "broadcast_to",
        json!({"topic": "room:lobby", "event": "new_msg", "payload": {"body": "from probe"}}),
    )
    .await;
    assert_eq!(status, "ok");
    assert_eq!(room.recv().await, json!([null, null, "room:lobby", "new_msg", {"body": "from probe"}]));
    let (status, response) = call(&mut a, &ja, "probe:c", "broadcast_to", json!({"topic": "", "event": "x", "payload": {}})).await;
    assert_eq!(status, "error");
    assert!(response["error"].as_str().expect("error").contains("topic"), "{response}");
}

#[tokio::test]
async fn channel_subscribe_delivers_another_topic_to_handle_info_until_unsubscribe() {
    let server = Server::start_probe();
    let mut a = server.client(1).await;
    let mut b = server.client(2).await;
    let ja = a.join_ok_probe("probe:d").await;
    let jb = b.join_ok_probe("probe:e").await;
    assert_eq!(call(&mut a, &ja, "probe:d", "subscribe", json!({"topic": "news"})).await.0, "ok");
    call(&mut b, &jb, "probe:e", "broadcast_to", json!({"topic": "news", "event": "flash", "payload": {"n": 1}})).await;
    assert_eq!(
        a.recv().await,
        json!([ja, null, "probe:d", "info", {"event": "flash", "payload": {"n": 1}, "topic": "news"}])
    );
    assert_eq!(call(&mut a, &ja, "probe:d", "unsubscribe", json!({"topic": "news"})).await.0, "ok");
    call(&mut b, &jb, "probe:e", "broadcast_to", json!({"topic": "news", "event": "flash", "payload": {"n": 2}})).await;
    a.expect_quiet().await;
}

#[tokio::test]
async fn channel_disconnect_closes_every_socket_with_that_id_and_no_other() {
    let server = Server::start_probe();
    let mut tab1 = server.client(99).await;
    let mut tab2 = server.client(99).await;
    let mut bystander = server.client(5).await;
    let mut admin = server.client(1).await;
    tab1.join_ok("room:lobby").await;
    let jb = bystander.join_ok("room:lobby").await;
    let ja = admin.join_ok_probe("probe:admin").await;
    let (status, _) = call(&mut admin, &ja, "probe:admin", "disconnect", json!({"socket_id": "user_socket:99"})).await;
    assert_eq!(status, "ok");
    assert_eq!(tab1.expect_close().await, Some(CloseCode::Error));
    assert_eq!(tab2.expect_close().await, Some(CloseCode::Error));
    let reference = bystander.push(&jb, "room:lobby", "ping", json!({"still": "here"})).await;
    assert_eq!(bystander.recv().await[1], reference.as_str());
}

#[tokio::test]
async fn timers_send_after_arrives_in_handle_info_and_cancel_stops_one() {
    let server = Server::start_probe();
    let mut a = server.client(1).await;
    let ja = a.join_ok_probe("probe:t").await;
    let (_, kept) = call(&mut a, &ja, "probe:t", "send_after", json!({"delay_ms": 150, "message": {"tick": "kept"}})).await;
    let (_, cancelled) = call(&mut a, &ja, "probe:t", "send_after", json!({"delay_ms": 100, "message": {"tick": "cancelled"}})).await;
    assert_ne!(kept["result"], cancelled["result"]);
    let (_, done) = call(&mut a, &ja, "probe:t", "cancel", json!({"timer_id": cancelled["result"]})).await;
    assert_eq!(done, json!({"result": true}));
    let (_, again) = call(&mut a, &ja, "probe:t", "cancel", json!({"timer_id": cancelled["result"]})).await;
    assert_eq!(again, json!({"result": false}));
    assert_eq!(a.recv().await, json!([ja, null, "probe:t", "info", {"tick": "kept"}]));
    a.expect_quiet().await;
    let (_, fired) = call(&mut a, &ja, "probe:t", "cancel", json!({"timer_id": kept["result"]})).await;
    assert_eq!(fired, json!({"result": false}), "a fired timer cannot be cancelled");
}

#[tokio::test]
async fn timers_send_self_arrives_right_after_the_call() {
    let server = Server::start_probe();
    let mut a = server.client(1).await;
    let ja = a.join_ok_probe("probe:s").await;
    a.push(&ja, "probe:s", "send_self", json!({"message": {"me": true}})).await;
    assert_eq!(a.recv().await, json!([ja, null, "probe:s", "info", {"me": true}]));
    // Joining with after_join: the message arrives after the join reply.
    let (join_ref, reply) = a.join("probe:s2", json!({"after_join": true})).await;
    assert_eq!(reply[4]["status"], "ok");
    assert_eq!(a.recv().await, json!([join_ref, null, "probe:s2", "info", {"after_join": true}]));
}

#[tokio::test]
async fn kv_is_shared_by_the_apps_channels_with_atomic_compare_and_swap() {
    let server = Server::start_probe();
    let mut a = server.client(1).await;
    let mut b = server.client(2).await;
    let ja = a.join_ok_probe("probe:kv1").await;
    let jb = b.join_ok_probe("probe:kv2").await;

    let (_, set) = call(&mut a, &ja, "probe:kv1", "kv", json!({"op": "set", "key": "k", "value": "one"})).await;
    let v1 = set["result"].as_u64().expect("version");
    let (_, got) = call(&mut b, &jb, "probe:kv2", "kv", json!({"op": "get", "key": "k"})).await;
    assert_eq!(got["result"], json!({"value": "one", "version": v1}));

    let (_, won) = call(&mut b, &jb, "probe:kv2", "kv", json!({"op": "cas", "key": "k", "expected": v1, "value": "two"})).await;
    let v2 = won["result"].as_u64().expect("swapped");
    let (_, lost) = call(&mut a, &ja, "probe:kv1", "kv", json!({"op": "cas", "key": "k", "expected": v1, "value": "three"})).await;
    assert_eq!(lost["result"], Value::Null, "a stale version loses");
    let (_, created) = call(&mut a, &ja, "probe:kv1", "kv", json!({"op": "cas", "key": "fresh", "value": "new"})).await;
    assert!(created["result"].as_u64().is_some(), "expected none means: only if absent");
    assert!(v2 > v1);

    for _ in 0..3 {
        call(&mut a, &ja, "probe:kv1", "kv", json!({"op": "increment", "key": "n", "delta": 2})).await;
    }
    let (_, n) = call(&mut b, &jb, "probe:kv2", "kv", json!({"op": "increment", "key": "n", "delta": -1})).await;
    assert_eq!(n["result"], 5);
    let (status, not_number) = call(&mut b, &jb, "probe:kv2", "kv", json!({"op": "increment", "key": "k"})).await;
    assert_eq!(status, "error");
    assert!(not_number["error"].as_str().expect("error").contains("not an integer"));

    for key in ["list:b", "list:a", "other"] {
        call(&mut a, &ja, "probe:kv1", "kv", json!({"op": "set", "key": key, "value": key})).await;
    }
    let (_, listed) = call(&mut a, &ja, "probe:kv1", "kv", json!({"op": "list", "prefix": "list:"})).await;
    assert_eq!(listed["result"], json!([["list:a", "list:a"], ["list:b", "list:b"]]));

    call(&mut a, &ja, "probe:kv1", "kv", json!({"op": "set", "key": "brief", "value": "x", "ttl_ms": 100})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, expired) = call(&mut a, &ja, "probe:kv1", "kv", json!({"op": "get", "key": "brief"})).await;
    assert_eq!(expired["result"], Value::Null);

    let (_, deleted) = call(&mut a, &ja, "probe:kv1", "kv", json!({"op": "delete", "key": "k"})).await;
    assert_eq!(deleted["result"], true);
    let (_, gone) = call(&mut b, &jb, "probe:kv2", "kv", json!({"op": "get", "key": "k"})).await;
    assert_eq!(gone["result"], Value::Null);
    let (status, _) = call(&mut b, &jb, "probe:kv2", "kv", json!({"op": "get", "key": ""})).await;
    assert_eq!(status, "error", "an empty key is refused");
}

#[tokio::test]
async fn token_sign_and_verify_use_the_apps_secret() {
    let server = Server::start_probe();
    let mut a = server.client(1).await;
    let ja = a.join_ok_probe("probe:tok").await;
    let (_, signed) = call(&mut a, &ja, "probe:tok", "token_sign", json!({"salt": "player", "data": {"id": 7}})).await;
    let token = signed["result"].as_str().expect("a token");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let data = plume::token::Tokens::new(support::SECRET.as_bytes())
        .verify("player", token, None, now)
        .expect("a plugin-signed token verifies on the host");
    assert_eq!(data, json!({"id": 7}));

    let host_signed = support::token("player", json!(11));
    let (_, verified) = call(&mut a, &ja, "probe:tok", "token_verify", json!({"salt": "player", "token": host_signed})).await;
    assert_eq!(verified["result"], 11);
    let (status, wrong_salt) = call(&mut a, &ja, "probe:tok", "token_verify", json!({"salt": "other", "token": host_signed})).await;
    assert_eq!(status, "error");
    assert!(wrong_salt["error"].as_str().expect("error").contains("invalid"), "{wrong_salt}");
}

#[tokio::test]
async fn plugin_config_is_the_routes_config_as_json() {
    let server = Server::start_probe();
    let mut a = server.client(1).await;
    let ja = a.join_ok_probe("probe:cfg").await;
    let (_, config) = call(&mut a, &ja, "probe:cfg", "config", json!({})).await;
    assert_eq!(config["result"], json!({"greeting": "hello", "update_ms": 50}));
}

#[tokio::test]
async fn log_lines_reach_the_server_log_with_the_plugin_name() {
    let server = Server::start_probe();
    let mut a = server.client(1).await;
    let ja = a.join_ok_probe("probe:log").await;
    call(&mut a, &ja, "probe:log", "log", json!({"level": "warn", "message": "hello from the plugin"})).await;
    assert!(server.wait_for_log("hello from the plugin"), "{}", server.log());
    let line = server.log().lines().find(|l| l.contains("hello from the plugin")).map(str::to_owned).unwrap_or_default();
    assert!(line.contains("WARN") && line.contains("plugin=probe"), "{line}");
}

#[tokio::test]
async fn clock_and_random_come_from_the_host() {
    let server = Server::start_probe();
    let mut a = server.client(1).await;
    let ja = a.join_ok_probe("probe:cr").await;
    let (_, clock) = call(&mut a, &ja, "probe:cr", "clock", json!({})).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let plugin_now = clock["now_ms"].as_i64().expect("now_ms");
    assert!((now - plugin_now).abs() < 5_000, "host {now} vs plugin {plugin_now}");
    assert!(clock["monotonic_ns"].as_u64().is_some());
    let (_, random) = call(&mut a, &ja, "probe:cr", "random", json!({"len": 32})).await;
    assert_eq!(random, json!({"u64s_differ": true, "bytes": 32}));
}

#[tokio::test]
async fn figures_count_connections_channels_users_and_plugins() {
    let server = Server::start_probe();
    let mut a = server.client(1).await;
    let mut a2 = server.client(1).await;
    let mut b = server.client(2).await;
    let ja = a.join_ok_probe("probe:fig").await;
    a2.join_ok("room:lobby").await;
    b.join_ok("room:lobby").await;
    let (_, figures) = call(&mut a, &ja, "probe:fig", "figures", json!({})).await;
    assert_eq!(figures["connections"], 3);
    assert_eq!(figures["channels"], 3);
    assert_eq!(figures["users"], 2);
    assert_eq!(figures["connections_of_me"], 2);
    let plugins = figures["plugins"].as_array().expect("plugins");
    let by_name = |name: &str| plugins.iter().find(|p| p["name"] == name).cloned().unwrap_or(Value::Null);
    assert_eq!(by_name("room")["channels"], 2);
    assert_eq!(by_name("probe")["channels"], 1);
    assert_eq!(by_name("user_socket")["version"].as_str().map(str::len), Some(16));
}

#[tokio::test]
async fn presence_track_update_untrack_and_count_broadcast_diffs_to_the_topic() {
    let server = Server::start_probe();
    let mut a = server.client(1).await;
    let mut b = server.client(2).await;
    let ja = a.join_ok_probe("probe:pr").await;
    let jb = b.join_ok_probe("probe:pr").await;
    let (_, tracked) = call(&mut a, &ja, "probe:pr", "presence_track", json!({"key": "1", "meta": {"m": 1}})).await;
    let phx_ref = tracked["result"].as_str().expect("a phx_ref").to_owned();
    let diff = json!([null, null, "probe:pr", "presence_diff",
        {"joins": {"1": {"metas": [{"m": 1, "phx_ref": phx_ref}]}}, "leaves": {}}]);
    assert_eq!(b.recv().await, diff);
    let (status, _) = call(&mut a, &ja, "probe:pr", "presence_track", json!({"key": "1", "meta": {}})).await;
    assert_eq!(status, "error", "tracking a key twice from one channel is refused");
    let (_, updated) = call(&mut a, &ja, "probe:pr", "presence_update", json!({"key": "1", "meta": {"m": 2}})).await;
    let new_ref = updated["result"].as_str().expect("a new phx_ref").to_owned();
    assert_eq!(
        b.recv().await[4],
        json!({"joins": {"1": {"metas": [{"m": 2, "phx_ref": new_ref, "phx_ref_prev": phx_ref}]}},
               "leaves": {"1": {"metas": [{"m": 1, "phx_ref": phx_ref}]}}})
    );
    let (_, count) = call(&mut b, &jb, "probe:pr", "presence_count", json!({})).await;
    assert_eq!(count["result"], 1);
    call(&mut a, &ja, "probe:pr", "presence_untrack", json!({"key": "1"})).await;
    assert_eq!(b.recv().await[4]["leaves"]["1"]["metas"][0]["m"], 2);
    let (_, count) = call(&mut b, &jb, "probe:pr", "presence_count", json!({})).await;
    assert_eq!(count["result"], 0);
}

#[tokio::test]
async fn a_presence_tracked_by_a_join_that_then_fails_does_not_outlive_it() {
    let server = Server::start_probe();
    let mut a = server.client(1).await;
    let mut b = server.client(2).await;
    let jb = b.join_ok_probe("probe:ghost").await;
    let (_, reply) = a.join("probe:ghost", json!({"track_then_refuse": true})).await;
    assert_eq!(reply[4], json!({"response": {"reason": "refused after tracking"}, "status": "error"}));
    // The member came and went: no presence is left without a channel.
    assert!(b.recv().await[4]["joins"].get("ghost").is_some());
    assert!(b.recv().await[4]["leaves"].get("ghost").is_some());
    let (_, count) = call(&mut b, &jb, "probe:ghost", "presence_count", json!({})).await;
    assert_eq!(count["result"], 0);
}

#[tokio::test]
async fn assigns_live_in_the_host_between_calls() {
    let server = Server::start_probe();
    let mut a = server.client(1).await;
    let (join_ref, reply) = a.join("probe:as", json!({})).await;
    assert_eq!(
        reply[4]["response"],
        json!({"join_ref": join_ref, "socket_id": "user_socket:1", "user": {"id": 1, "name": "user-1", "role": "user"}})
    );
    let (_, joined) = call(&mut a, &join_ref, "probe:as", "assigns", json!({"key": "joined"})).await;
    assert_eq!(joined, json!("probe:as"), "assigns set by join are kept");
    call(&mut a, &join_ref, "probe:as", "assign", json!({"key": "score", "value": 41})).await;
    // Many calls in between, on pooled instances that keep nothing.
    for _ in 0..20 {
        call(&mut a, &join_ref, "probe:as", "clock", json!({})).await;
    }
    let (_, score) = call(&mut a, &join_ref, "probe:as", "assigns", json!({"key": "score"})).await;
    assert_eq!(score, 41);
}

/// An app whose socket plugin takes its rules from `socket_config`.
const CONFIGURED_SOCKET: &str = r#"
[app]
socket_plugin = "gate"
socket_config = { key = "let-me-in", id_prefix = "gated" }

[plugins.gate]
path = "{plugins}/configured_socket.wasm"

[plugins.probe]
path = "{plugins}/probe.wasm"

[[routes]]
topic = "probe:*"
plugin = "probe"
"#;

#[tokio::test]
async fn a_socket_plugin_reads_its_socket_config_in_connect_and_id() {
    let server = Server::start_config(CONFIGURED_SOCKET).expect("starts");
    let refused = Client::connect(&server.ws_url("key=guess&user=7&vsn=2.0.0")).await;
    assert!(matches!(refused, Err(support::Refused::Status(403))), "connect checks the configured key");

    let mut gated = Client::connect(&server.ws_url("key=let-me-in&user=7&vsn=2.0.0")).await.expect("the configured key opens");
    let jg = gated.join_ok_probe("probe:cfg").await;
    let (status, config) = call(&mut gated, &jg, "probe:cfg", "assigns", json!({"key": "socket_config"})).await;
    assert_eq!((status.as_str(), config), ("ok", json!({"key": "let-me-in", "id_prefix": "gated"})), "connect saw the whole socket_config");
    let (_, route_config) = call(&mut gated, &jg, "probe:cfg", "config", json!({})).await;
    assert_eq!(route_config, json!({"result": {}}), "a channel plugin still gets its route's config");

    // The socket's id came from the configuration too: `id` read it.
    let mut admin = Client::connect(&server.ws_url("key=let-me-in&user=1&vsn=2.0.0")).await.expect("connects");
    let ja = admin.join_ok_probe("probe:admin").await;
    let (status, _) = call(&mut admin, &ja, "probe:admin", "disconnect", json!({"socket_id": "gated:7"})).await;
    assert_eq!(status, "ok");
    assert_eq!(gated.expect_close().await, Some(CloseCode::Error));
}
