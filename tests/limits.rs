//! Limits, origin checks, the per-app figures at `/metrics` (on the admin
//! listener), and the guards against slow and greedy clients: the header
//! read timeout and the per-address connection cap.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{Client, Refused, Server};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// The probe config with `keys` added to its `[app]` table.
fn with(keys: &str) -> String {
    support::edit(support::PROBE_CONFIG, "\n[app]\n", &format!("\n[app]\n{keys}\n"))
}

async fn connect_from(server: &Server, origin: Option<&str>) -> Result<Client, Refused> {
    let mut request = server
        .ws_url(&format!("token={}&vsn=2.0.0", support::user_token(1)))
        .into_client_request()
        .expect("request");
    if let Some(origin) = origin {
        request.headers_mut().insert("origin", origin.parse().expect("header"));
    }
    Client::connect_request(request).await
}

#[tokio::test]
async fn check_origin_with_a_list_refuses_other_pages_with_403_and_allows_no_origin() {
    let server = Server::start_config(&with(r#"check_origin = ["https://app.example.com", "//*.trusted.org"]"#)).expect("starts");
    assert!(connect_from(&server, Some("https://app.example.com")).await.is_ok());
    assert!(connect_from(&server, Some("http://chat.trusted.org")).await.is_ok());
    assert!(connect_from(&server, None).await.is_ok(), "no Origin is allowed, as in Phoenix");
    for origin in ["https://evil.com", "http://app.example.com", "https://trusted.org.evil.com"] {
        match connect_from(&server, Some(origin)).await {
            Err(Refused::Status(403)) => {}
            other => panic!("{origin} must be refused with 403, got {:?}", other.map(|_| "accepted")),
        }
    }
    assert!(server.wait_for_log("origin not allowed"), "{}", server.log());
}

#[tokio::test]
async fn check_origin_true_allows_only_the_servers_own_host() {
    let server = Server::start_config(&with("check_origin = true")).expect("starts");
    let own = format!("http://{}", server.addr);
    assert!(connect_from(&server, Some(&own)).await.is_ok());
    assert!(matches!(connect_from(&server, Some("http://elsewhere:1")).await, Err(Refused::Status(403))));
}

#[tokio::test]
async fn more_channels_than_the_limit_are_refused_too_many_channels_joined() {
    let server = Server::start_config(&limited("max_channels_per_socket = 3")).expect("starts");
    let mut c = server.client(1).await;
    for i in 0..3 {
        c.join_ok(&format!("room:{i}")).await;
    }
    let (join_ref, reply) = c.join("room:3", json!({})).await;
    assert_eq!(
        reply,
        json!([join_ref, join_ref, "room:3", "phx_reply", {"response": {"reason": "too many channels joined"}, "status": "error"}])
    );
    // Rejoining a joined topic is not an extra channel.
    c.join_ok("room:0").await;
}

/// The most bytes the kernel may buffer on a loopback connection: the
/// sender's largest send buffer and the receiver's largest receive buffer
/// (the third figure of `tcp_wmem` and `tcp_rmem`).
fn loopback_buffer_bytes() -> usize {
    let max = |file: &str| -> usize {
        let text = std::fs::read_to_string(format!("/proc/sys/net/ipv4/{file}")).expect("the TCP buffer sizes");
        text.split_whitespace().nth(2).and_then(|n| n.parse().ok()).expect("three sizes")
    };
    max("tcp_wmem") + max("tcp_rmem")
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_with_1008_and_the_server_stays_bounded() {
    const QUEUE: usize = 64;
    const FRAME: usize = 500_000;
    const PUSHES: usize = 400;
    let server = Server::start_config(&limited(&format!("outbound_queue = {QUEUE}"))).expect("starts");
    // What can reach a client after it stops reading: what the kernel
    // buffers, the frames the socket took from its queue to write, and the
    // queue itself. Nothing beyond that may be kept for it.
    let bound = loopback_buffer_bytes() / FRAME + 2 * QUEUE + 8;
    assert!(bound < PUSHES, "with {FRAME}-byte frames, {PUSHES} pushes must overflow a bound of {bound}");
    let mut sleeper = server.client(1).await;
    sleeper.join_ok("room:storm").await;
    let mut publisher = server.client(2).await;
    let jp = publisher.join_ok_probe("probe:storm").await;
    let big = "x".repeat(FRAME);
    // Broadcast far more than the socket buffers and the queue can hold,
    // while the sleeper reads nothing.
    let mut pushed = 0;
    while pushed < PUSHES && !server.log().contains("the client is not reading its messages") {
        publisher
            .push(&jp, "probe:storm", "broadcast_to", json!({"topic": "room:storm", "event": "flood", "payload": {"big": big}}))
            .await;
        assert_eq!(publisher.recv().await[4]["status"], "ok");
        pushed += 1;
    }
    assert!(server.wait_for_log("the client is not reading its messages"), "{}", server.log());
    // The sleeper, reading at last, finds the close (1008) after what was
    // already queued for it.
    let mut received = 0;
    let code = loop {
        match sleeper.next_message().await {
            Some(tokio_tungstenite::tungstenite::Message::Text(_)) => received += 1,
            Some(tokio_tungstenite::tungstenite::Message::Close(frame)) => break frame.map(|f| f.code),
            Some(_) => {}
            None => break None,
        }
    };
    assert_eq!(code, Some(CloseCode::Policy), "after {received} frames");
    assert!(
        received <= bound,
        "{received} of {pushed} broadcasts reached a client that had stopped reading: more than the {bound} that buffers and the queue hold"
    );
    let mut bystander = server.client(3).await;
    bystander.join_ok("room:calm").await;
}

fn metrics(server: &Server) -> String {
    server.admin_page("/metrics")
}

fn value(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find(|line| line.starts_with(&format!("{name}{{tenant=\"demo\"}}")))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing in\n{metrics}"))
}

#[tokio::test]
async fn metrics_count_connections_channels_messages_and_faults_per_app() {
    let server = Server::start_probe();
    let mut a = server.client(1).await;
    let ja = a.join_ok_probe("probe:m").await;
    a.join_ok("room:m").await;
    a.push(&ja, "probe:m", "spin", json!({})).await;
    assert_eq!(a.recv().await[3], "phx_error");
    // The figures are counted as the frames go out: poll until the last
    // frame's are in.
    let figures = metrics_until(&server, |figures| value(figures, "plume_messages_out_total") >= 3);
    assert!(figures.contains("# TYPE plume_connections gauge"), "{figures}");
    assert_eq!(value(&figures, "plume_connections"), 1);
    assert_eq!(value(&figures, "plume_channels"), 1);
    assert_eq!(value(&figures, "plume_messages_in_total"), 3);
    assert!(value(&figures, "plume_messages_out_total") >= 3);
    assert_eq!(value(&figures, "plume_plugin_faults_total"), 1);
    assert_eq!(value(&figures, "plume_deadline_hits_total"), 1);
    assert_eq!(value(&figures, "plume_memory_limit_hits_total"), 0);
}

/// Poll `/metrics` until `done` holds (up to [`support::WAIT`]); the last
/// figures either way.
fn metrics_until(server: &Server, done: impl Fn(&str) -> bool) -> String {
    let until = std::time::Instant::now() + support::WAIT;
    loop {
        let figures = metrics(server);
        if done(&figures) || std::time::Instant::now() >= until {
            return figures;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The probe config with `[limits]` keys set.
fn limited(keys: &str) -> String {
    support::probe_config_with(&format!("[limits]\n{keys}"))
}

/// Push to a probe channel; the reply's `{status, response}`.
async fn call(c: &mut Client, join_ref: &str, topic: &str, event: &str, payload: serde_json::Value) -> serde_json::Value {
    let reference = c.push(join_ref, topic, event, payload).await;
    loop {
        let frame = c.recv().await;
        if frame[1] == reference.as_str() {
            return frame[4].clone();
        }
    }
}

#[tokio::test]
async fn connections_over_max_connections_are_refused_with_503_until_one_closes() {
    let server = Server::start_config(&limited("max_connections = 2")).expect("starts");
    let a = server.client(1).await;
    let _b = server.client(2).await;
    match Client::connect(&server.ws_url(&format!("token={}&vsn=2.0.0", support::user_token(3)))).await {
        Err(Refused::Status(503)) => {}
        other => panic!("the third connection must get 503, got {:?}", other.map(|_| "accepted")),
    }
    assert!(server.wait_for_log("at its connection limit"), "{}", server.log());
    drop(a);
    // The place is given back once the server has seen the socket close.
    let url = server.ws_url(&format!("token={}&vsn=2.0.0", support::user_token(3)));
    let until = std::time::Instant::now() + support::WAIT;
    loop {
        match Client::connect(&url).await {
            Ok(_) => break,
            Err(Refused::Status(503)) if std::time::Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(refused) => panic!("a place was not given back: {refused:?}"),
        }
    }
}

#[tokio::test]
async fn events_over_the_sockets_rate_get_rate_limited_and_other_sockets_do_not_pay() {
    let server = Server::start_config(&limited("max_events_per_second_per_socket = 5")).expect("starts");
    let mut noisy = server.client(1).await;
    let jn = noisy.join_ok("room:noisy").await;
    for _ in 0..10 {
        noisy.push(&jn, "room:noisy", "ping", json!({})).await;
    }
    let mut limited = 0;
    for _ in 0..10 {
        let reply = noisy.recv().await;
        if reply[4] == json!({"response": {"reason": "rate limited"}, "status": "error"}) {
            assert_eq!(reply[0], jn.as_str(), "the refusal answers the push: {reply}");
            limited += 1;
        }
    }
    assert!(limited >= 4, "the join and 4 pings fit in a burst of 5; {limited} of 10 refused");
    let mut calm = server.client(2).await;
    let jc = calm.join_ok("room:calm").await;
    let reference = calm.push(&jc, "room:calm", "ping", json!({})).await;
    assert_eq!(calm.recv().await[4]["status"], "ok", "ref {reference}");
    // A second later the socket has its budget back.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    noisy.push(&jn, "room:noisy", "ping", json!({})).await;
    assert_eq!(noisy.recv().await[4]["status"], "ok");
}

#[tokio::test]
async fn events_over_the_apps_rate_are_refused_across_its_sockets() {
    let server = Server::start_config(&limited("max_events_per_second = 6")).expect("starts");
    let mut a = server.client(1).await;
    let mut b = server.client(2).await;
    let ja = a.join_ok("room:a").await;
    let jb = b.join_ok("room:b").await;
    let mut replies = Vec::new();
    for _ in 0..4 {
        a.push(&ja, "room:a", "ping", json!({})).await;
        replies.push(a.recv().await);
        b.push(&jb, "room:b", "ping", json!({})).await;
        replies.push(b.recv().await);
    }
    let refused = replies.iter().filter(|r| r[4]["response"]["reason"] == "rate limited").count();
    assert!(refused >= 3, "2 joins + 8 pings against 6 a second: {replies:?}");
}

#[tokio::test]
async fn joins_over_the_apps_rate_are_refused_too_many_joins() {
    let server = Server::start_config(&limited("max_joins_per_second = 3")).expect("starts");
    let mut c = server.client(1).await;
    for i in 0..3 {
        c.join_ok(&format!("room:{i}")).await;
    }
    let (join_ref, reply) = c.join("room:3", json!({})).await;
    assert_eq!(
        reply,
        json!([join_ref, join_ref, "room:3", "phx_reply", {"response": {"reason": "too many joins"}, "status": "error"}])
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    c.join_ok("room:3").await;
}

#[tokio::test]
async fn presence_events_over_the_apps_rate_fail_with_a_limit_error() {
    let server = Server::start_config(&limited("max_presence_events_per_second = 2")).expect("starts");
    let mut c = server.client(1).await;
    let j = c.join_ok_probe("probe:p").await;
    assert_eq!(call(&mut c, &j, "probe:p", "presence_track", json!({"key": "u", "meta": {}})).await["status"], "ok");
    assert_eq!(call(&mut c, &j, "probe:p", "presence_update", json!({"key": "u", "meta": {"a": 1}})).await["status"], "ok");
    let reply = call(&mut c, &j, "probe:p", "presence_update", json!({"key": "u", "meta": {"a": 2}})).await;
    assert_eq!(reply["status"], "error", "{reply}");
    assert!(reply["response"]["error"].as_str().unwrap_or_default().contains("max_presence_events_per_second"), "{reply}");
}

#[tokio::test]
async fn payloads_over_max_payload_bytes_are_refused_and_replies_over_it_crash_only_that_channel() {
    let server = Server::start_config(&limited("max_payload_bytes = 1000")).expect("starts");
    let mut c = server.client(1).await;
    let j = c.join_ok_probe("probe:big").await;
    let reply = call(&mut c, &j, "probe:big", "push", json!({"event": "e", "payload": {"x": "y".repeat(2000)}})).await;
    assert_eq!(reply["status"], "error", "{reply}");
    assert!(reply["response"]["error"].as_str().unwrap_or_default().contains("at most 1000 bytes"), "{reply}");
    c.push(&j, "probe:big", "huge", json!({"bytes": 5000})).await;
    assert_eq!(c.recv().await, json!([j, j, "probe:big", "phx_error", {}]));
    assert!(server.wait_for_log("over the limit of 1000 (max_payload_bytes)"), "{}", server.log());
}

#[tokio::test]
async fn output_over_max_output_bytes_per_call_fails_the_push_that_crosses_it() {
    let server = Server::start_config(&limited("max_output_bytes_per_call = 1500")).expect("starts");
    let mut c = server.client(1).await;
    let j = c.join_ok_probe("probe:out").await;
    let reply = call(&mut c, &j, "probe:out", "push", json!({"event": "e", "payload": {"x": "y".repeat(2000)}})).await;
    assert!(reply["response"]["error"].as_str().unwrap_or_default().contains("max_output_bytes_per_call"), "{reply}");
    let reply = call(&mut c, &j, "probe:out", "push", json!({"event": "e", "payload": {"x": "small"}})).await;
    assert_eq!(reply["status"], "ok", "the budget is per call: {reply}");
}

/// Set keys `k0`, `k1`, ... with `value` until a write is refused (the
/// namespace may hold keys of other plugins already); the refusal's text.
async fn fill_kv(c: &mut Client, j: &str, value: &str) -> (usize, String) {
    for i in 0..50 {
        let reply = call(c, j, "probe:kv", "kv", json!({"op": "set", "key": format!("k{i}"), "value": value})).await;
        if reply["status"] == "error" {
            return (i, reply["response"]["error"].as_str().unwrap_or_default().to_owned());
        }
    }
    panic!("50 writes and no quota");
}

#[tokio::test]
async fn kv_keys_over_max_kv_keys_are_refused_with_a_quota_error() {
    let server = Server::start_config(&limited("max_kv_keys = 5")).expect("starts");
    let mut c = server.client(1).await;
    let j = c.join_ok_probe("probe:kv").await;
    let (written, error) = fill_kv(&mut c, &j, "1").await;
    assert!((1..=5).contains(&written), "{written} keys fit");
    assert!(error.contains("quota") && error.contains("max_kv_keys"), "{error}");
    // Overwriting a key adds none; deleting one makes room.
    let reply = call(&mut c, &j, "probe:kv", "kv", json!({"op": "set", "key": "k0", "value": "2"})).await;
    assert_eq!(reply["status"], "ok", "{reply}");
    call(&mut c, &j, "probe:kv", "kv", json!({"op": "delete", "key": "k0"})).await;
    let reply = call(&mut c, &j, "probe:kv", "kv", json!({"op": "set", "key": "fresh", "value": "1"})).await;
    assert_eq!(reply["status"], "ok", "{reply}");
}

#[tokio::test]
async fn kv_bytes_over_max_kv_bytes_are_refused_with_a_quota_error() {
    let server = Server::start_config(&limited("max_kv_bytes = 2000")).expect("starts");
    let mut c = server.client(1).await;
    let j = c.join_ok_probe("probe:kv").await;
    let (written, error) = fill_kv(&mut c, &j, &"x".repeat(300)).await;
    assert!((1..=6).contains(&written), "{written} values of 300 bytes fit in 2000");
    assert!(error.contains("quota") && error.contains("max_kv_bytes"), "{error}");
    let reply = call(&mut c, &j, "probe:kv", "kv", json!({"op": "cas", "key": "k0", "value": "x".repeat(3000)})).await;
    assert!(reply["response"]["error"].as_str().unwrap_or_default().contains("max_kv_bytes"), "{reply}");
}

#[tokio::test]
async fn a_call_that_finds_every_instance_busy_fails_and_the_channel_can_rejoin() {
    let config = support::edit(&limited("max_instances_per_plugin = 1"), "deadline_ms = 300", "deadline_ms = 3000");
    let server = Server::start_config(&config).expect("starts");
    let mut slow = server.client(1).await;
    let mut other = server.client(2).await;
    let js = slow.join_ok_probe("probe:slow").await;
    let jo = other.join_ok_probe("probe:other").await;
    slow.push(&js, "probe:slow", "busy", json!({"ms": 1500})).await;
    // Until the slow call holds the one instance, the other's calls find
    // it free; then one fails.
    let until = std::time::Instant::now() + Duration::from_millis(1500);
    loop {
        let reference = other.push(&jo, "probe:other", "clock", json!({})).await;
        let frame = other.recv().await;
        if frame == json!([jo, jo, "probe:other", "phx_error", {}]) {
            break;
        }
        assert_eq!(frame[1], reference.as_str(), "{frame}");
        assert!(std::time::Instant::now() < until, "no call found the instance busy:\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(server.wait_for_log("instances of the plugin are busy"), "{}", server.log());
    assert_eq!(slow.recv().await[4]["status"], "ok", "the busy call finishes");
    other.join_ok_probe("probe:other").await;
}

#[tokio::test]
async fn a_tenants_memory_limit_applies_to_its_instances() {
    let server = Server::start_config(&support::edit(support::PROBE_CONFIG, "memory_limit_mb = 32", "memory_limit_mb = 20")).expect("starts");
    let mut c = server.client(1).await;
    let j = c.join_ok_probe("probe:m").await;
    c.push(&j, "probe:m", "grow", json!({})).await;
    assert_eq!(c.recv().await[3], "phx_error");
    assert!(server.wait_for_log(&format!("memory limit of {} bytes", 20 * 1024 * 1024)), "{}", server.log());
}

/// The probe app with `lines` under `[server]`.
fn with_server(lines: &str) -> String {
    format!("[server]\n{lines}\n{}", support::PROBE_CONFIG)
}

/// Half-open connections: each sends half a request head and never the
/// rest, as a slowloris client does.
const HALF_OPEN: usize = 1000;

#[tokio::test]
async fn half_open_connections_are_closed_at_the_header_read_timeout_while_clients_chat() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let timeout = Duration::from_millis(2000);
    let server = Server::start_config(&with_server(&format!("header_read_timeout_ms = {}", timeout.as_millis()))).expect("starts");
    let mut ann = server.client(1).await;
    let ann_ref = ann.join_ok("room:slow").await;

    let mut readers = Vec::with_capacity(HALF_OPEN);
    for _ in 0..HALF_OPEN {
        let mut stream = tokio::net::TcpStream::connect(&server.addr).await.expect("connect");
        stream
            .write_all(b"GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: plume\r\nUpgrade: websocket\r\n")
            .await
            .expect("half a request");
        let opened = Instant::now();
        // The server closes it: EOF, or a reset if it answered first.
        readers.push(tokio::spawn(async move {
            let mut sink = [0u8; 256];
            loop {
                match stream.read(&mut sink).await {
                    Ok(0) | Err(_) => return opened.elapsed(),
                    Ok(_) => {}
                }
            }
        }));
    }

    // While they hang, a client connects and chats with one already there.
    let mut bob = server.client(2).await;
    let bob_ref = bob.join_ok("room:slow").await;
    bob.push(&bob_ref, "room:slow", "new_msg", json!({"body": "still here"})).await;
    assert_eq!(ann.recv().await[4], json!({"body": "still here", "user_id": 2}));

    let mut closed_after = Vec::with_capacity(HALF_OPEN);
    for reader in readers {
        let elapsed = tokio::time::timeout(timeout + Duration::from_secs(15), reader)
            .await
            .expect("every half-open connection is closed")
            .expect("reader");
        closed_after.push(elapsed);
    }
    closed_after.sort();
    let (first, last) = (closed_after[0], closed_after[HALF_OPEN - 1]);
    assert!(first >= timeout - Duration::from_millis(200), "none is closed before the timeout: first after {first:?}");
    assert!(last <= timeout + Duration::from_secs(10), "all are closed soon after the timeout: last after {last:?}");

    // The upgraded sockets outlived the header timeout.
    let reference = ann.push(&ann_ref, "room:slow", "ping", json!({"n": 1})).await;
    let reply = ann.recv().await;
    assert_eq!((&reply[1], &reply[4]), (&json!(reference), &json!({"response": {"n": 1}, "status": "ok"})));
    bob.push(&bob_ref, "room:slow", "new_msg", json!({"body": "after"})).await;
    assert_eq!(ann.recv().await[4], json!({"body": "after", "user_id": 2}));
}

#[tokio::test]
async fn a_client_address_holds_at_most_max_connections_per_ip_unless_trusted() {
    let server = Server::start_config(&with_server("max_connections_per_ip = 3\ntrusted_proxies = []")).expect("starts");
    let mut held = Vec::new();
    for user in 0..3 {
        held.push(server.client(user).await);
    }
    match Client::connect(&server.ws_url(&format!("token={}&vsn=2.0.0", support::user_token(9)))).await {
        // The 503 is written at once, before the request is read, and the
        // connection closed: a client may read the 503 or see the reset.
        Err(Refused::Status(503) | Refused::Other(_)) => {}
        Err(other) => panic!("the fourth connection must be refused, got {other:?}"),
        Ok(_) => panic!("the fourth connection from one address must be refused"),
    }
    assert!(server.wait_for_log("refused: the address is at its connection limit (max_connections_per_ip)"), "{}", server.log());

    // A closed connection gives its place back.
    held.pop();
    let started = Instant::now();
    let mut again = loop {
        match Client::connect(&server.ws_url(&format!("token={}&vsn=2.0.0", support::user_token(9)))).await {
            Ok(client) => break client,
            Err(_) if started.elapsed() < Duration::from_secs(10) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(error) => panic!("the place never came back: {error:?}"),
        }
    };
    again.join_ok("room:lobby").await;

    // Loopback is trusted by default: load tests connect from there.
    let trusted = Server::start_config(&with_server("max_connections_per_ip = 3")).expect("starts");
    let mut clients = Vec::new();
    for user in 0..10 {
        clients.push(trusted.client(user).await);
    }
    clients[9].join_ok("room:lobby").await;
}
