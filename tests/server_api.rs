//! The server API (`/api/...`) against real servers: the app's backend
//! publishing into channels, closing sockets and reading presence, over
//! real HTTP, with real WebSocket clients on the receiving end.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Client, Server, api};

const KEY: &str = "alpha-key-0123456789abcdef";
const OLD_KEY: &str = "alpha-old-key-0123456789";
const BETA_KEY: &str = "beta-key-0123456789abcdef";

/// One tenant with the user socket, the room, the probe (which intercepts
/// `secret`: each subscriber gets its own rewrite) and API keys; `extra`
/// goes into `[app]`, `limits` into `[limits]`.
fn config(extra: &str, limits: &str) -> String {
    format!(
        r#"
[limits]
{limits}

[app]
socket_plugin = "user_socket"
api_keys = ["{KEY}", "{OLD_KEY}"]
{extra}

[plugins.user_socket]
path = "{{plugins}}/user_socket.wasm"

[plugins.room]
path = "{{plugins}}/room.wasm"

[plugins.probe]
path = "{{plugins}}/probe.wasm"

[[routes]]
topic = "room:*"
plugin = "room"

[[routes]]
topic = "probe:*"
plugin = "probe"
"#
    )
}

fn start(extra: &str, limits: &str) -> Server {
    Server::start_config(&config(extra, limits)).expect("the server starts")
}

async fn broadcast_frame(client: &mut Client) -> Value {
    let frame = client.recv().await;
    assert_eq!(frame[0], Value::Null, "a broadcast has no join ref: {frame}");
    frame
}

#[tokio::test]
async fn without_a_key_configured_the_api_does_not_exist() {
    let server = Server::start();
    let (status, _) = api(&server.addr, "POST", "/api/broadcast", KEY, json!({"topic": "room:lobby", "event": "e"}));
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_missing_or_wrong_key_is_refused_with_401() {
    let server = start("", "");
    let (status, body) = api(&server.addr, "POST", "/api/broadcast", "", json!({"topic": "room:lobby", "event": "e"}));
    assert_eq!(status, 401, "{body}");
    assert!(body["error"].as_str().unwrap().contains("Authorization: Bearer"), "{body}");
    let (status, body) = api(&server.addr, "POST", "/api/broadcast", "alpha-key-0123456789abcdeX", json!({"topic": "room:lobby", "event": "e"}));
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid API key")));
    let (status, _) = api(&server.addr, "GET", "/api/topics", "", Value::Null);
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_broadcast_reaches_plain_and_intercepting_subscribers_as_a_plugins_would() {
    let server = start("", "");
    let mut plain = server.client(1).await;
    plain.join_ok("room:lobby").await;
    let mut first = server.client(7).await;
    first.join_ok_probe("probe:api").await;
    let mut second = server.client(8).await;
    second.join_ok_probe("probe:api").await;

    let (status, body) = api(&server.addr, "POST", "/api/broadcast", KEY, json!({"topic": "room:lobby", "event": "new_msg", "payload": {"body": "from the backend"}}));
    assert_eq!((status, body), (200, json!({"accepted": 1})));
    assert_eq!(plain.recv_text().await, r#"[null,null,"room:lobby","new_msg",{"body":"from the backend"}]"#);

    // `secret` is intercepted: each subscriber's handle_out rewrites it.
    let (status, _) = api(&server.addr, "POST", "/api/broadcast", OLD_KEY, json!({"topic": "probe:api", "event": "secret", "payload": {"code": 1}}));
    assert_eq!(status, 200, "a rotated-out key still in the list works");
    for (client, id) in [(&mut first, 7), (&mut second, 8)] {
        let frame = client.recv().await;
        assert_eq!(frame[3], "secret", "{frame}");
        assert_eq!(frame[4], json!({"original": {"code": 1}, "seen_by": id}), "{frame}");
    }
    // `hidden` is dropped by every handle_out.
    api(&server.addr, "POST", "/api/broadcast", KEY, json!({"topic": "probe:api", "event": "hidden", "payload": {}}));
    first.expect_quiet().await;
}

#[tokio::test]
async fn a_batch_is_delivered_in_order() {
    let server = start("", "");
    let mut lobby = server.client(1).await;
    lobby.join_ok("room:lobby").await;
    let mut other = server.client(2).await;
    other.join_ok("room:other").await;
    let messages = json!({"messages": [
        {"topic": "room:lobby", "event": "one", "payload": {"n": 1}},
        {"topic": "room:other", "event": "two"},
        {"topic": "room:lobby", "event": "three", "payload": {"n": 3}},
    ]});
    let (status, body) = api(&server.addr, "POST", "/api/broadcast", KEY, messages);
    assert_eq!((status, body), (200, json!({"accepted": 3})));
    assert_eq!(broadcast_frame(&mut lobby).await, json!([null, null, "room:lobby", "one", {"n": 1}]));
    assert_eq!(broadcast_frame(&mut lobby).await, json!([null, null, "room:lobby", "three", {"n": 3}]));
    assert_eq!(broadcast_frame(&mut other).await, json!([null, null, "room:other", "two", {}]));
}

#[tokio::test]
async fn bad_input_gets_400_naming_the_field_and_publishes_nothing() {
    let server = start("", "");
    let mut lobby = server.client(1).await;
    lobby.join_ok("room:lobby").await;
    for (body, field) in [
        (json!({"event": "e"}), "topic"),
        (json!({"topic": "room:lobby"}), "event"),
        (json!({"topic": 3, "event": "e"}), "topic"),
        (json!({"topic": "room:lobby", "event": "e", "payload": [1]}), "payload"),
        (json!({"topic": "room:lobby", "event": "e", "paylod": {}}), "paylod"),
        (json!({"messages": [{"topic": "room:lobby", "event": "ok"}, {"topic": "room:lobby"}]}), "messages[1].event"),
        (json!({"messages": []}), "messages"),
        (json!([1, 2]), "JSON object"),
    ] {
        let (status, reply) = api(&server.addr, "POST", "/api/broadcast", KEY, body.clone());
        assert_eq!(status, 400, "{body} -> {reply}");
        let error = reply["error"].as_str().unwrap_or_default();
        assert!(error.contains(field), "{body}: {error} should name {field}");
    }
    let (status, _) = api(&server.addr, "POST", "/api/disconnect", KEY, json!({}));
    assert_eq!(status, 400);
    let (status, _) = api(&server.addr, "GET", "/api/broadcast", KEY, Value::Null);
    assert_eq!(status, 405);
    lobby.expect_quiet().await;
}

#[tokio::test]
async fn a_payload_over_the_limit_gets_413_and_a_rate_over_the_limit_429() {
    let server = start("", "max_payload_bytes = 1000\nmax_events_per_second = 3");
    let (status, body) = api(&server.addr, "POST", "/api/broadcast", KEY, json!({"topic": "room:lobby", "event": "e", "payload": {"big": "x".repeat(2000)}}));
    assert_eq!(status, 413, "{body}");
    assert!(body["error"].as_str().unwrap().contains("max_payload_bytes"), "{body}");

    let mut lobby = server.client(1).await;
    lobby.join_ok("room:lobby").await;
    let five: Vec<Value> = (0..5).map(|n| json!({"topic": "room:lobby", "event": "n", "payload": {"n": n}})).collect();
    let (status, body) = api(&server.addr, "POST", "/api/broadcast", KEY, json!({"messages": five}));
    assert_eq!(status, 429, "{body}");
    // The join took one of the three tokens (a slow machine may have
    // refilled one since): the first messages went out, in order, and no
    // more than the body says.
    let accepted = body["accepted"].as_u64().expect("how many were accepted");
    assert!((2..5).contains(&accepted), "{body}");
    assert!(body["error"].as_str().unwrap().contains("max_events_per_second"), "{body}");
    for n in 0..accepted {
        assert_eq!(broadcast_frame(&mut lobby).await[4], json!({ "n": n }));
    }
    lobby.expect_quiet().await;
}

#[tokio::test]
async fn disconnect_closes_every_socket_of_that_id_and_no_other() {
    let server = start("", "");
    let mut tab1 = server.client(42).await;
    let mut tab2 = server.client(42).await;
    let mut someone = server.client(7).await;
    someone.join_ok("room:lobby").await;
    let (status, body) = api(&server.addr, "POST", "/api/disconnect", KEY, json!({"socket_id": "user_socket:42"}));
    assert_eq!((status, body), (200, json!({"disconnected": 2})));
    for tab in [&mut tab1, &mut tab2] {
        assert_eq!(tab.expect_close().await.map(u16::from), Some(1011));
    }
    let reference = someone.push("x", "room:lobby", "ping", json!({})).await;
    assert_eq!(someone.recv().await[1], reference.as_str(), "the other user is still connected");
}

#[tokio::test]
async fn presence_and_topics_can_be_read() {
    let server = start("", "");
    let mut a = server.client(1).await;
    let join = a.join_ok_probe("probe:room").await;
    a.push(&join, "probe:room", "presence_track", json!({"key": "u1", "meta": {"name": "ada"}})).await;
    a.recv().await;
    let mut b = server.client(2).await;
    b.join_ok_probe("probe:room").await;
    b.join_ok("room:lobby").await;

    let (status, presence) = api(&server.addr, "GET", "/api/presence?topic=probe:room", KEY, Value::Null);
    assert_eq!(status, 200, "{presence}");
    assert_eq!(presence["u1"]["metas"][0]["name"], "ada", "{presence}");
    assert!(presence["u1"]["metas"][0]["phx_ref"].is_string(), "{presence}");
    let (status, _) = api(&server.addr, "GET", "/api/presence", KEY, Value::Null);
    assert_eq!(status, 400);

    let (status, topics) = api(&server.addr, "GET", "/api/topics?prefix=probe:", KEY, Value::Null);
    assert_eq!((status, topics), (200, json!({"topics": [{"topic": "probe:room", "subscribers": 2}]})));
    let (_, topics) = api(&server.addr, "GET", "/api/topics?prefix=room:&limit=5", KEY, Value::Null);
    assert_eq!(topics, json!({"topics": [{"topic": "room:lobby", "subscribers": 1}]}));
    let (status, _) = api(&server.addr, "GET", "/api/topics?limit=0", KEY, Value::Null);
    assert_eq!(status, 400);
}

/// Two tenants, each with its keys: a key publishes into its own tenant
/// only, even on a topic name both use.
#[tokio::test]
async fn a_key_opens_only_its_own_tenant() {
    let tenant = |id: &str, key: &str| {
        format!(
            r#"
[[tenants]]
id = "{id}"
socket_path = "/{id}/socket"
socket_plugin = "user_socket"
api_keys = ["{key}"]

[tenants.plugins.user_socket]
path = "{{plugins}}/user_socket.wasm"

[tenants.plugins.room]
path = "{{plugins}}/room.wasm"

[[tenants.routes]]
topic = "room:*"
plugin = "room"
"#
        )
    };
    let server = Server::start_config(&format!("{}{}", tenant("alpha", KEY), tenant("beta", BETA_KEY))).expect("starts");
    let connect = |path: &str| format!("ws://{}/{path}/socket/websocket?token={}&vsn=2.0.0", server.addr, support::user_token(1));
    let mut alpha = Client::connect(&connect("alpha")).await.expect("alpha");
    let mut beta = Client::connect(&connect("beta")).await.expect("beta");
    alpha.join_ok("room:lobby").await;
    beta.join_ok("room:lobby").await;

    let (status, _) = api(&server.addr, "POST", "/api/broadcast", BETA_KEY, json!({"topic": "room:lobby", "event": "for_beta"}));
    assert_eq!(status, 200);
    assert_eq!(broadcast_frame(&mut beta).await[3], "for_beta");
    alpha.expect_quiet().await;
    let (_, topics) = api(&server.addr, "GET", "/api/topics", KEY, Value::Null);
    assert_eq!(topics["topics"].as_array().map(Vec::len), Some(2), "alpha's room:lobby and its socket id: {topics}");
}

#[tokio::test]
async fn plume_api_key_turns_the_api_on_for_the_single_app_form() {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_plume"));
    command
        .args(["serve", "--bind", "127.0.0.1:0", "--no-build", "--plugin-dir"])
        .arg(support::plugin_dir())
        .env("PLUME_API_KEY", KEY);
    let server = Server::spawn_command(command, None, Duration::from_secs(60)).expect("the demo starts");
    let mut lobby = server.client(1).await;
    lobby.join_ok("room:lobby").await;
    let (status, _) = api(&server.addr, "POST", "/api/broadcast", KEY, json!({"topic": "room:lobby", "event": "hi"}));
    assert_eq!(status, 200);
    assert_eq!(broadcast_frame(&mut lobby).await[3], "hi");
}

#[test]
fn a_short_or_shared_key_is_refused_at_start() {
    let error = Server::start_config(&config("", "").replace(KEY, "short")).err().expect("refused");
    assert!(error.contains("at least 16 characters"), "{error}");
}
