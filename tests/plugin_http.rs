//! Plugins' outbound HTTP (the `http` capability) and late replies, over
//! real sockets, against real HTTP servers the tests start on loopback.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::backend::{Answer, Backend};
use support::{Client, Server};

/// The probe on `probe:*` with `http_allow` (and `[limits]` lines).
fn config(allow: &[String], limits: &str) -> String {
    let allow: Vec<String> = allow.iter().map(|origin| format!("\"{origin}\"")).collect();
    format!(
        r#"
[limits]
{limits}

[app]
socket_plugin = "user_socket"
http_allow = [{}]

[plugins.user_socket]
path = "{{plugins}}/user_socket.wasm"

[plugins.probe]
path = "{{plugins}}/probe.wasm"

[[routes]]
topic = "probe:*"
plugin = "probe"
"#,
        allow.join(", ")
    )
}

fn start(allow: &[String], limits: &str) -> Server {
    Server::start_config(&config(allow, limits)).expect("the server starts")
}

/// A joined probe channel.
async fn probe(server: &Server, topic: &str) -> (Client, String) {
    let mut client = server.client(1).await;
    let join = client.join_ok_probe(topic).await;
    (client, join)
}

/// Push `event` and return the reply's `{status, response}`, skipping
/// other frames.
async fn call(client: &mut Client, join: &str, topic: &str, event: &str, payload: Value) -> Value {
    let reference = client.push(join, topic, event, payload).await;
    loop {
        let frame = client.recv().await;
        if frame[1] == reference.as_str() {
            return frame[4].clone();
        }
    }
}

/// Start a request through the probe; the request id.
async fn send(client: &mut Client, join: &str, request: Value) -> u64 {
    let reply = call(client, join, "probe:h", "http", request).await;
    assert_eq!(reply["status"], "ok", "{reply}");
    reply["response"]["result"].as_u64().expect("a request id")
}

/// The next `info` push: the probe pushes every handle_info message.
async fn outcome(client: &mut Client) -> Value {
    loop {
        let frame = client.recv().await;
        if frame[3] == "info" {
            return frame[4]["http"].clone();
        }
    }
}

fn metric(server: &Server, name: &str) -> u64 {
    let text = server.admin_page("/metrics");
    text.lines()
        .find(|line| line.starts_with(name) && !line.starts_with('#'))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[tokio::test]
async fn a_request_to_an_allowed_backend_arrives_in_handle_info_with_its_id() {
    let backend = Backend::start(|request| Answer::Json(201, json!({"got": request.json(), "path": request.path})));
    let server = start(&[backend.url()], "");
    let (mut client, join) = probe(&server, "probe:h").await;
    let id = send(&mut client, &join, json!({
        "method": "POST", "url": format!("{}/orders?x=1", backend.url()),
        "headers": {"x-trace": "abc", "content-type": "application/json"}, "body": "{\"sku\":1}",
    }))
    .await;
    let http = outcome(&mut client).await;
    assert_eq!(http["id"], id);
    assert_eq!(http["status"], 201);
    assert_eq!(serde_json::from_str::<Value>(http["body"].as_str().unwrap()).unwrap(), json!({"got": {"sku": 1}, "path": "/orders"}));
    assert!(http["headers"].as_array().unwrap().iter().any(|h| h[0] == "content-type"), "{http}");
    let received = backend.wait_for(1);
    assert_eq!(received[0].method, "POST");
    assert!(received[0].headers.iter().any(|(n, v)| n == "x-trace" && v == "abc"));
    assert_eq!(metric(&server, "plume_http_requests_total"), 1);
}

#[tokio::test]
async fn an_error_status_is_a_response_and_a_binary_body_arrives_as_base64() {
    let backend = Backend::start(|request| match request.path.as_str() {
        "/fail" => Answer::Json(500, json!({"error": "boom"})),
        _ => Answer::Bytes(200, vec![0, 159, 255]),
    });
    let server = start(&[backend.url()], "");
    let (mut client, join) = probe(&server, "probe:h").await;
    send(&mut client, &join, json!({"method": "GET", "url": format!("{}/fail", backend.url())})).await;
    let http = outcome(&mut client).await;
    assert_eq!((http["status"].as_u64(), http["body"].as_str()), (Some(500), Some(r#"{"error":"boom"}"#)));
    send(&mut client, &join, json!({"method": "GET", "url": format!("{}/bytes", backend.url())})).await;
    let http = outcome(&mut client).await;
    assert_eq!((http["body"].as_str(), http["base64"].as_bool()), (Some("AJ//"), Some(true)));
}

#[tokio::test]
async fn a_disallowed_origin_or_an_app_without_http_allow_is_refused_at_once() {
    let backend = Backend::start(|_| Answer::Json(200, json!({})));
    let server = start(&[backend.url()], "");
    let (mut client, join) = probe(&server, "probe:h").await;
    let other = format!("http://127.0.0.1:{}/", backend.addr.port() + 1);
    let reply = call(&mut client, &join, "probe:h", "http", json!({"method": "GET", "url": other})).await;
    assert_eq!(reply["status"], "error");
    assert!(reply["response"]["error"].as_str().unwrap().contains("is not in this app's http_allow"), "{reply}");
    let reply = call(&mut client, &join, "probe:h", "http", json!({"method": "GET", "url": "file:///etc/passwd"})).await;
    assert!(reply["response"]["error"].as_str().unwrap().starts_with("invalid request"), "{reply}");

    let server = start(&[], "");
    let (mut client, join) = probe(&server, "probe:h").await;
    let reply = call(&mut client, &join, "probe:h", "http", json!({"method": "GET", "url": backend.url()})).await;
    let error = reply["response"]["error"].as_str().unwrap();
    assert!(error.contains("`http` capability") && error.contains("http_allow"), "{error}");
    assert!(backend.received().is_empty());
}

#[tokio::test]
async fn a_backend_that_hangs_times_out() {
    let backend = Backend::start(|_| Answer::Hang);
    let server = start(&[backend.url()], "http_timeout_ms = 300");
    let (mut client, join) = probe(&server, "probe:h").await;
    let id = send(&mut client, &join, json!({"method": "GET", "url": backend.url()})).await;
    // The channel answers meanwhile: nothing waits on the backend.
    let reply = call(&mut client, &join, "probe:h", "clock", json!({})).await;
    assert_eq!(reply["status"], "ok");
    let http = outcome(&mut client).await;
    assert_eq!((http["id"].as_u64(), http["error"].as_str()), (Some(id), Some("timeout")), "{http}");
    assert!(http["reason"].as_str().unwrap().contains("300 ms"), "{http}");
    assert_eq!(metric(&server, "plume_http_failures_total"), 1);
}

#[tokio::test]
async fn a_response_over_the_limit_fails_as_too_large() {
    let backend = Backend::start(|_| Answer::Bytes(200, vec![b'x'; 5 * 1024 * 1024]));
    let server = start(&[backend.url()], "");
    let (mut client, join) = probe(&server, "probe:h").await;
    send(&mut client, &join, json!({"method": "GET", "url": backend.url()})).await;
    let http = outcome(&mut client).await;
    assert_eq!(http["error"], "too-large", "{http}");
    assert!(http["reason"].as_str().unwrap().contains("max_http_response_bytes"), "{http}");
}

#[tokio::test]
async fn requests_in_flight_per_channel_are_bounded() {
    let backend = Backend::start(|_| Answer::Hang);
    let server = start(&[backend.url()], "max_http_in_flight_per_channel = 2\nhttp_timeout_ms = 60000");
    let (mut client, join) = probe(&server, "probe:h").await;
    for _ in 0..2 {
        send(&mut client, &join, json!({"method": "GET", "url": backend.url()})).await;
    }
    let reply = call(&mut client, &join, "probe:h", "http", json!({"method": "GET", "url": backend.url()})).await;
    assert!(reply["response"]["error"].as_str().unwrap().contains("max_http_in_flight_per_channel"), "{reply}");
    // Another channel has its own budget.
    let (mut other, other_join) = probe(&server, "probe:h").await;
    send(&mut other, &other_join, json!({"method": "GET", "url": backend.url()})).await;
}

#[tokio::test]
async fn a_channel_that_leaves_while_its_request_is_in_flight_gets_nothing_and_the_outcome_is_counted() {
    let backend = Backend::start(|_| Answer::After(Duration::from_millis(300), Box::new(Answer::Json(200, json!({})))));
    let mut server = start(&[backend.url()], "");
    let (mut client, join) = probe(&server, "probe:h").await;
    send(&mut client, &join, json!({"method": "GET", "url": backend.url()})).await;
    client.send(json!([join, "99", "probe:h", "phx_leave", {}])).await;
    assert_eq!(client.recv().await[3], "phx_reply");
    assert_eq!(client.recv().await[3], "phx_close");
    backend.wait_for(1);
    for _ in 0..100 {
        if metric(&server, "plume_http_dropped_total") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metric(&server, "plume_http_dropped_total"), 1);
    client.expect_quiet().await;
    assert!(server.is_running());
}

#[tokio::test]
async fn a_name_that_resolves_to_loopback_is_refused_even_when_allowed() {
    let backend = Backend::start(|_| Answer::Json(200, json!({})));
    let by_name = format!("http://localhost:{}", backend.addr.port());
    let server = start(std::slice::from_ref(&by_name), "");
    let (mut client, join) = probe(&server, "probe:h").await;
    send(&mut client, &join, json!({"method": "GET", "url": format!("{by_name}/")})).await;
    let http = outcome(&mut client).await;
    assert_eq!(http["error"], "not-allowed", "{http}");
    assert!(http["reason"].as_str().unwrap().contains("not a public address"), "{http}");
    assert!(backend.received().is_empty());
}

#[tokio::test]
async fn redirects_are_followed_only_within_the_allowed_origins() {
    let outside = Backend::start(|_| Answer::Json(200, json!({"outside": true})));
    let outside_url = outside.url();
    let backend = Backend::start(move |request| match request.path.as_str() {
        "/inside" => Answer::Redirect("/final".into()),
        "/final" => Answer::Json(200, json!({"followed": true})),
        _ => Answer::Redirect(format!("{outside_url}/")),
    });
    let server = start(&[backend.url()], "");
    let (mut client, join) = probe(&server, "probe:h").await;
    send(&mut client, &join, json!({"method": "GET", "url": format!("{}/inside", backend.url())})).await;
    let http = outcome(&mut client).await;
    assert_eq!(http["body"], r#"{"followed":true}"#, "{http}");
    send(&mut client, &join, json!({"method": "GET", "url": format!("{}/away", backend.url())})).await;
    let http = outcome(&mut client).await;
    assert_eq!(http["error"], "not-allowed", "{http}");
    assert!(outside.received().is_empty(), "the redirect off the allowlist was not followed");
}

#[tokio::test]
async fn an_https_server_with_a_self_signed_certificate_is_refused() {
    let tls = support::backend::SelfSigned::start();
    let server = start(&[tls.url()], "");
    let (mut client, join) = probe(&server, "probe:h").await;
    send(&mut client, &join, json!({"method": "GET", "url": format!("{}/", tls.url())})).await;
    let http = outcome(&mut client).await;
    assert_eq!(http["error"], "tls", "{http}");
}

#[tokio::test]
async fn a_push_is_answered_later_with_its_socket_ref() {
    let server = start(&[], "");
    let (mut client, join) = probe(&server, "probe:h").await;
    let reference = client.push(&join, "probe:h", "reply_later", json!({"delay_ms": 100, "response": {"done": 1}})).await;
    assert_eq!(client.recv_within(Duration::from_millis(50)).await, None, "no reply before the plugin gives it");
    assert_eq!(
        client.recv_text().await,
        format!(r#"["{join}","{reference}","probe:h","phx_reply",{{"response":{{"done":1}},"status":"ok"}}]"#)
    );
}

#[tokio::test]
async fn a_socket_ref_of_a_join_that_has_ended_or_a_forged_one_is_refused() {
    let server = start(&[], "");
    let (mut client, join) = probe(&server, "probe:h").await;
    let taken = call(&mut client, &join, "probe:h", "socket_ref", json!({})).await;
    let socket_ref = taken["response"]["result"].as_str().expect("a socket ref").to_owned();
    // The same join may use it (a second reply to that push).
    let reply = call(&mut client, &join, "probe:h", "reply_with", json!({"ref": socket_ref})).await;
    assert_eq!(reply["status"], "ok", "{reply}");
    // Leave and join again: the old join's ref is stale.
    client.send(json!([join, "50", "probe:h", "phx_leave", {}])).await;
    client.recv().await;
    client.recv().await;
    let join = client.join_ok_probe("probe:h").await;
    let reply = call(&mut client, &join, "probe:h", "reply_with", json!({"ref": socket_ref})).await;
    assert!(reply["response"]["error"].as_str().unwrap().starts_with("stale socket ref"), "{reply}");
    for forged in ["garbage", "1.2.Ig.AAAAAAAAAAAAAAAAAAAAAA", &socket_ref.replacen('.', "9.", 1)] {
        let reply = call(&mut client, &join, "probe:h", "reply_with", json!({"ref": forged})).await;
        assert!(reply["response"]["error"].as_str().unwrap().starts_with("not a socket ref"), "{forged}: {reply}");
    }
    // And another socket's channel cannot answer this one's pushes.
    let (mut other, other_join) = probe(&server, "probe:h").await;
    let taken = call(&mut client, &join, "probe:h", "socket_ref", json!({})).await;
    let reply = call(&mut other, &other_join, "probe:h", "reply_with", json!({"ref": taken["response"]["result"]})).await;
    assert!(reply["response"]["error"].as_str().unwrap().starts_with("stale socket ref"), "{reply}");
}
