//! Limits, origin checks and the per-app figures at `/metrics`.

mod support;

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::json;
use support::{Client, Refused, Server};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

fn with(section: &str) -> String {
    support::PROBE_CONFIG.replace("[app]\n", &format!("[app]\n{section}\n"))
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
    let config = support::PROBE_CONFIG.replace("[app]\n", "[limits]\nmax_channels_per_socket = 3\n\n[app]\n");
    let server = Server::start_config(&config).expect("starts");
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

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_with_1008_and_the_server_stays_bounded() {
    let config = support::PROBE_CONFIG.replace("[app]\n", "[limits]\noutbound_queue = 64\n\n[app]\n");
    let server = Server::start_config(&config).expect("starts");
    let mut sleeper = server.client(1).await;
    sleeper.join_ok("room:storm").await;
    let mut publisher = server.client(2).await;
    let jp = publisher.join_ok_probe("probe:storm").await;
    let big = "x".repeat(60_000);
    // Broadcast far more than the socket buffers and the queue can hold,
    // while the sleeper reads nothing.
    for _ in 0..400 {
        publisher
            .push(&jp, "probe:storm", "broadcast_to", json!({"topic": "room:storm", "event": "flood", "payload": {"big": big}}))
            .await;
        publisher.recv().await;
    }
    assert!(server.wait_for_log("the client is not reading its messages"), "{}", server.log());
    assert!(server.log().contains("code=1008"), "{}", server.log());
    // The sleeper, reading at last, finds the close (1008) after what was
    // already queued for it; nothing more was buffered.
    let mut received = 0;
    let code = loop {
        match sleeper.next_message().await {
            Some(tokio_tungstenite::tungstenite::Message::Text(_)) => received += 1,
            Some(tokio_tungstenite::tungstenite::Message::Close(frame)) => break frame.map(|f| f.code),
            Some(_) => {}
            None => break None,
        }
    };
    assert!(received < 400, "the server stopped queueing: {received} of 400 delivered");
    assert!(matches!(code, Some(CloseCode::Policy) | None), "{code:?}");
    let mut bystander = server.client(3).await;
    bystander.join_ok("room:calm").await;
}

fn metrics(server: &Server) -> String {
    let mut stream = std::net::TcpStream::connect(&server.addr).expect("connect");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: plume\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default()
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
    tokio::time::sleep(Duration::from_millis(100)).await;
    let figures = metrics(&server);
    assert!(figures.contains("# TYPE plume_connections gauge"), "{figures}");
    assert_eq!(value(&figures, "plume_connections"), 1);
    assert_eq!(value(&figures, "plume_channels"), 1);
    assert_eq!(value(&figures, "plume_messages_in_total"), 3);
    assert!(value(&figures, "plume_messages_out_total") >= 3);
    assert_eq!(value(&figures, "plume_plugin_faults_total"), 1);
    assert_eq!(value(&figures, "plume_deadline_hits_total"), 1);
    assert_eq!(value(&figures, "plume_memory_limit_hits_total"), 0);
}
