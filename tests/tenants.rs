//! Several tenants on one server: each has its own socket path, topics,
//! presence, key-value namespace, token secret, capabilities and limits,
//! and cannot reach another's even through names they share.

mod support;

use serde_json::{Value, json};
use support::{Client, Refused, Server};

/// A tenant with the user socket, the room and the probe plugins; `extra`
/// goes into the `[[tenants]]` table (ids, secrets, capabilities).
fn tenant(id: &str, path: &str, extra: &str) -> String {
    format!(
        r#"
[[tenants]]
id = "{id}"
socket_path = "{path}"
socket_plugin = "user_socket"
{extra}

[tenants.plugins.user_socket]
path = "{{plugins}}/user_socket.wasm"

[tenants.plugins.room]
path = "{{plugins}}/room.wasm"

[tenants.plugins.probe]
path = "{{plugins}}/probe.wasm"

[[tenants.routes]]
topic = "room:*"
plugin = "room"

[[tenants.routes]]
topic = "probe:*"
plugin = "probe"
config = {{ tenant = "{id}" }}
"#
    )
}

/// Alpha at `/alpha/socket`, beta at `/beta/socket`, both with the probe.
pub fn two_tenants(alpha: &str, beta: &str) -> String {
    format!(
        "[runtime]\ndeadline_ms = 300\nmemory_limit_mb = 32\n{}{}",
        tenant("alpha", "/alpha/socket", alpha),
        tenant("beta", "/beta/socket", beta)
    )
}

fn metrics(server: &Server) -> String {
    server.admin_page("/metrics")
}

async fn connect(server: &Server, path: &str, token: &str) -> Result<Client, Refused> {
    Client::connect(&format!("ws://{}{path}/websocket?token={token}&vsn=2.0.0", server.addr)).await
}

async fn client(server: &Server, path: &str, user: i64) -> Client {
    connect(server, path, &support::user_token(user)).await.expect("accepted")
}

/// Push to the probe and return the reply's `{status, response}`.
async fn call(c: &mut Client, join_ref: &str, topic: &str, event: &str, payload: Value) -> Value {
    let reference = c.push(join_ref, topic, event, payload).await;
    loop {
        let frame = c.recv().await;
        if frame[1] == reference.as_str() {
            return frame[4].clone();
        }
    }
}

#[tokio::test]
async fn a_tenant_cannot_reach_another_tenants_topic_presence_or_keys_of_the_same_name() {
    let server = Server::start_config(&two_tenants("", "")).expect("starts");
    let mut a = client(&server, "/alpha/socket", 1).await;
    let mut b = client(&server, "/beta/socket", 1).await;
    let ja = a.join_ok_probe("probe:shared").await;
    let jb = b.join_ok_probe("probe:shared").await;

    // A broadcast on alpha's probe:shared reaches alpha's members only.
    let reply = call(&mut a, &ja, "probe:shared", "broadcast", json!({"event": "hello", "payload": {"from": "alpha"}})).await;
    assert_eq!(reply["status"], "ok", "{reply}");
    b.expect_quiet().await;
    // ...and broadcast_to from alpha to the name beta uses, too.
    call(&mut a, &ja, "probe:shared", "broadcast_to", json!({"topic": "probe:shared", "event": "x", "payload": {}})).await;
    b.expect_quiet().await;

    // Presence: alpha tracks on probe:shared; beta's probe:shared is empty.
    let reply = call(&mut a, &ja, "probe:shared", "presence_track", json!({"key": "u1", "meta": {}})).await;
    assert_eq!(reply["status"], "ok", "{reply}");
    assert_eq!(call(&mut a, &ja, "probe:shared", "presence_count", json!({})).await["response"]["result"], 1);
    assert_eq!(call(&mut b, &jb, "probe:shared", "presence_count", json!({})).await["response"]["result"], 0);

    // Key-value: the same key names two different values.
    call(&mut a, &ja, "probe:shared", "kv", json!({"op": "set", "key": "k", "value": "alpha's"})).await;
    let got = call(&mut b, &jb, "probe:shared", "kv", json!({"op": "get", "key": "k"})).await;
    assert_eq!(got["response"]["result"], Value::Null, "{got}");
    call(&mut b, &jb, "probe:shared", "kv", json!({"op": "set", "key": "k", "value": "beta's"})).await;
    let got = call(&mut a, &ja, "probe:shared", "kv", json!({"op": "get", "key": "k"})).await;
    assert_eq!(got["response"]["result"]["value"], "alpha's", "{got}");

    // Beta's own broadcast reaches beta, and still not alpha.
    call(&mut b, &jb, "probe:shared", "broadcast", json!({"event": "hello", "payload": {"from": "beta"}})).await;
    a.expect_quiet().await;
}

/// Which tenant and user a socket belongs to, as its plugins see them:
/// the probe's route configuration names the tenant, its join reply the
/// socket's user.
async fn tenant_and_user(c: &mut Client) -> (Value, Value) {
    let (join_ref, reply) = c.join("probe:who", json!({})).await;
    assert_eq!(reply[4]["status"], "ok", "{reply}");
    let user = reply[4]["response"]["user"]["id"].clone();
    let config = call(c, &join_ref, "probe:who", "config", json!({})).await;
    (config["response"]["result"]["tenant"].clone(), user)
}

#[tokio::test]
async fn tokens_are_per_tenant_each_with_its_own_secret() {
    let beta_secret = "beta-secret-key-base-0123456789abcdef0123456789abcdef0123456789abcdef0123";
    let server = Server::start_config(&two_tenants("", &format!("secret_key_base = \"{beta_secret}\""))).expect("starts");
    let alpha_token = support::user_token(5);
    let mut alpha = connect(&server, "/alpha/socket", &alpha_token).await.expect("alpha's token opens alpha");
    assert_eq!(tenant_and_user(&mut alpha).await, (json!("alpha"), json!(5)));
    match connect(&server, "/beta/socket", &alpha_token).await {
        Err(Refused::Status(403)) => {}
        other => panic!("alpha's token must not open beta: {:?}", other.map(|_| "accepted")),
    }
    let beta_token = plume::token::Tokens::new(beta_secret.as_bytes())
        .sign("user socket", &json!(6), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as u64, 86_400)
        .expect("signable");
    let mut beta = connect(&server, "/beta/socket", &beta_token).await.expect("beta's token opens beta");
    assert_eq!(tenant_and_user(&mut beta).await, (json!("beta"), json!(6)));
}

#[tokio::test]
async fn imports_a_tenant_was_not_granted_fail_with_the_capability_named() {
    // The user socket keeps its ban list in the key-value store: beta keeps
    // `kv` and is refused the rest.
    let server = Server::start_config(&two_tenants("", r#"capabilities = ["kv"]"#)).expect("starts");
    let mut b = client(&server, "/beta/socket", 2).await;
    let jb = b.join_ok_probe("probe:caps").await;
    for (event, payload, capability) in [
        ("presence_track", json!({"key": "u", "meta": {}}), "presence"),
        ("broadcast_to", json!({"topic": "probe:other", "event": "e", "payload": {}}), "broadcast_to"),
        ("subscribe", json!({"topic": "probe:other"}), "broadcast_to"),
        ("disconnect", json!({"socket_id": "users_socket:1"}), "disconnect"),
    ] {
        let reply = call(&mut b, &jb, "probe:caps", event, payload).await;
        assert_eq!(reply["status"], "error", "{event}: {reply}");
        let error = reply["response"]["error"].as_str().unwrap_or_default();
        // One error for every interface: `not-granted`, naming the
        // capability and how to grant it.
        assert!(error.starts_with("not granted: "), "{event}: {error}");
        assert!(error.contains(&format!("`{capability}` capability")), "{event}: {error}");
        assert!(error.contains("`capabilities`"), "{event}: {error}");
    }
    // Its own topic needs no capability.
    let reply = call(&mut b, &jb, "probe:caps", "broadcast", json!({"event": "e", "payload": {}})).await;
    assert_eq!(reply["status"], "ok", "{reply}");
    // Alpha, granted everything by default, tracks presence.
    let mut a = client(&server, "/alpha/socket", 2).await;
    let ja = a.join_ok_probe("probe:caps").await;
    let reply = call(&mut a, &ja, "probe:caps", "presence_track", json!({"key": "u", "meta": {}})).await;
    assert_eq!(reply["status"], "ok", "{reply}");
}

#[tokio::test]
async fn each_tenant_has_its_own_limits_and_figures() {
    let server = Server::start_config(&two_tenants("[tenants.limits]\nmax_connections = 1\ndeadline_ms = 100", "")).expect("starts");
    let mut a = client(&server, "/alpha/socket", 1).await;
    match connect(&server, "/alpha/socket", &support::user_token(2)).await {
        Err(Refused::Status(503)) => {}
        other => panic!("alpha is full: {:?}", other.map(|_| "accepted")),
    }
    // Beta's limit is its own.
    let mut b = client(&server, "/beta/socket", 1).await;
    let _b2 = client(&server, "/beta/socket", 2).await;
    // Alpha's deadline is 100 ms: a 200 ms call is stopped; beta's (300 ms) lets it finish.
    let ja = a.join_ok_probe("probe:t").await;
    a.push(&ja, "probe:t", "busy", json!({"ms": 200})).await;
    let frame = a.recv().await;
    assert_eq!(frame[3], "phx_error", "{frame}");
    let jb = b.join_ok_probe("probe:t").await;
    assert_eq!(call(&mut b, &jb, "probe:t", "busy", json!({"ms": 200})).await["status"], "ok");
    let figures = metrics(&server);
    assert!(figures.contains("plume_deadline_hits_total{tenant=\"alpha\"} 1"), "{figures}");
    assert!(figures.contains("plume_deadline_hits_total{tenant=\"beta\"} 0"), "{figures}");
    assert!(figures.contains("plume_connections{tenant=\"beta\"} 2"), "{figures}");
}

/// The key-value store answers a missing grant as every other interface
/// does (it used to answer `unavailable`, channel and presence `limit`).
#[tokio::test]
async fn kv_without_its_capability_fails_with_the_same_not_granted_error() {
    let config = r#"
[app]
capabilities = ["presence"]

[plugins.probe]
path = "{plugins}/probe.wasm"

[[routes]]
topic = "probe:*"
plugin = "probe"
"#;
    let server = Server::start_config(config).expect("starts");
    let mut c = Client::connect(&server.ws_url("vsn=2.0.0")).await.expect("no socket plugin: everyone connects");
    let join = c.join_ok_probe("probe:caps").await;
    let reply = call(&mut c, &join, "probe:caps", "kv", json!({"op": "get", "key": "k"})).await;
    let error = reply["response"]["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("not granted: ") && error.contains("`kv` capability"), "{error}");
    let reply = call(&mut c, &join, "probe:caps", "http", json!({"method": "GET", "url": "http://127.0.0.1:9/"})).await;
    let error = reply["response"]["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("not granted: ") && error.contains("`http` capability") && error.contains("http_allow"), "{error}");
}
