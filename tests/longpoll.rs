//! The long-poll transport, as the spec's wire details and the recorded
//! Phoenix exchange describe it: HTTP 200 with the status in the body.

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::Server;

/// The long-poll window the tests' servers use (`[server]
/// longpoll_window_ms`): Phoenix's 10 s would make every empty poll a
/// 10 s wait.
const WINDOW: Duration = Duration::from_millis(500);

/// The demo app with a short long-poll window.
fn start() -> Server {
    let config = support::demo_config_with(&format!("[server]\nlongpoll_window_ms = {}", WINDOW.as_millis()));
    Server::start_config(&config).expect("starts")
}

/// One HTTP/1.1 request; returns the status line's code and the JSON body.
fn http(addr: &str, method: &str, query: &str, content_type: &str, body: &str) -> (u16, Value) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let request = format!(
        "{method} /socket/longpoll?{query} HTTP/1.1\r\nHost: plume\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("a response");
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("a status");
    (code, serde_json::from_str(body).unwrap_or_else(|e| panic!("{body}: {e}")))
}

fn get(addr: &str, query: &str) -> Value {
    let (code, body) = http(addr, "GET", query, "application/json", "");
    assert_eq!(code, 200, "every long-poll answer is HTTP 200: {body}");
    body
}

fn post(addr: &str, query: &str, content_type: &str, body: &str) -> Value {
    let (code, body) = http(addr, "POST", query, content_type, body);
    assert_eq!(code, 200, "{body}");
    body
}

/// Open a session for user 42; returns the query string that resumes it.
fn open(addr: &str) -> String {
    let app_token = support::user_token(42);
    let opened = get(addr, &format!("token={app_token}&vsn=2.0.0"));
    assert_eq!(opened["status"], 410);
    assert_eq!(opened["messages"], json!([]));
    let session = opened["token"].as_str().expect("a session token");
    // phoenix.js appends the session token after the socket's own params.
    format!("token={app_token}&vsn=2.0.0&token={session}")
}

/// Poll until `count` frames arrived; returns them raw.
fn collect(addr: &str, query: &str, count: usize) -> Vec<String> {
    let mut frames = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while frames.len() < count && Instant::now() < deadline {
        let polled = get(addr, query);
        assert!(polled["status"] == 200 || polled["status"] == 204, "{polled}");
        for frame in polled["messages"].as_array().expect("messages") {
            frames.push(frame.as_str().expect("each message is an encoded frame").to_owned());
        }
    }
    frames
}

#[test]
fn a_poll_without_a_valid_app_token_is_403_in_the_body() {
    let server = start();
    assert_eq!(get(&server.addr, "vsn=2.0.0"), json!({"status": 403}));
    assert_eq!(get(&server.addr, "vsn=2.0.0&token=bogus"), json!({"status": 403}));
}

#[test]
fn the_first_poll_opens_a_session_with_410_and_a_token_and_frames_round_trip() {
    let server = start();
    let session = open(&server.addr);
    for frame in [
        r#"[null,"1","phoenix","heartbeat",{}]"#,
        r#"["2","2","room:lobby","phx_join",{}]"#,
        r#"["2","3","room:lobby","ping",{"via":"longpoll"}]"#,
    ] {
        assert_eq!(post(&server.addr, &session, "application/json", frame), json!({"status": 200}));
    }
    let frames = collect(&server.addr, &session, 3);
    assert_eq!(
        frames,
        [
            r#"[null,"1","phoenix","phx_reply",{"response":{},"status":"ok"}]"#,
            r#"["2","2","room:lobby","phx_reply",{"response":{},"status":"ok"}]"#,
            r#"["2","3","room:lobby","phx_reply",{"response":{"via":"longpoll"},"status":"ok"}]"#,
        ]
    );
}

#[test]
fn an_ndjson_post_is_a_batch_of_frames_and_broadcasts_reach_the_poller() {
    let server = start();
    let session = open(&server.addr);
    post(&server.addr, &session, "application/json", r#"["2","2","room:lobby","phx_join",{}]"#);
    collect(&server.addr, &session, 1);
    let batch = "[\"2\",\"4\",\"room:lobby\",\"new_msg\",{\"body\":\"lp\"}]\n[\"2\",\"5\",\"room:lobby\",\"ping\",{\"n\":5}]\n";
    assert_eq!(post(&server.addr, &session, "application/x-ndjson", batch), json!({"status": 200}));
    assert_eq!(
        collect(&server.addr, &session, 3),
        [
            r#"[null,null,"room:lobby","new_msg",{"body":"lp","user_id":42}]"#,
            r#"["2","4","room:lobby","phx_reply",{"response":{},"status":"ok"}]"#,
            r#"["2","5","room:lobby","phx_reply",{"response":{"n":5},"status":"ok"}]"#,
        ]
    );
}

#[tokio::test]
async fn long_poll_and_websocket_clients_share_topics() {
    let server = start();
    let mut ws = server.client(7).await;
    let join_ref = ws.join_ok("room:mixed").await;
    let session = open(&server.addr);
    post(&server.addr, &session, "application/json", r#"["1","1","room:mixed","phx_join",{}]"#);
    collect(&server.addr, &session, 1);
    ws.push(&join_ref, "room:mixed", "new_msg", json!({"body": "from ws"})).await;
    let addr = server.addr.clone();
    let frames = tokio::task::spawn_blocking(move || collect(&addr, &session, 1))
    .await
    .expect("poll");
    assert_eq!(frames, [r#"[null,null,"room:mixed","new_msg",{"body":"from ws","user_id":7}]"#]);
}

#[test]
fn a_post_without_a_live_session_is_410_in_the_body() {
    let server = start();
    assert_eq!(post(&server.addr, "vsn=2.0.0&token=bogus", "application/json", "[]"), json!({"status": 410}));
}

#[test]
fn an_empty_poll_answers_204_after_the_window() {
    let server = start();
    let session = open(&server.addr);
    let started = Instant::now();
    let polled = get(&server.addr, &session);
    assert_eq!(polled["status"], 204);
    assert_eq!(polled["messages"], json!([]));
    assert!(polled["token"].is_string());
    assert!(started.elapsed() >= WINDOW, "answered after {:?}, before the window", started.elapsed());
    // The session lives on across the empty poll.
    assert_eq!(post(&server.addr, &session, "application/json", r#"[null,"1","phoenix","heartbeat",{}]"#), json!({"status": 200}));
    assert_eq!(collect(&server.addr, &session, 1), [r#"[null,"1","phoenix","phx_reply",{"response":{},"status":"ok"}]"#]);
}

#[test]
fn garbage_lines_in_a_batch_harm_nothing_else() {
    let server = start();
    let session = open(&server.addr);
    let batch = "not json\n[\"1\",\"7\",\"room:lobby\"]\n[\"2\",\"2\",\"room:lobby\",\"phx_join\",{}]\n";
    assert_eq!(post(&server.addr, &session, "application/x-ndjson", batch), json!({"status": 200}));
    let frames = collect(&server.addr, &session, 2);
    let malformed: Value = serde_json::from_str(&frames[0]).expect("JSON");
    assert_eq!(malformed[1], "7");
    assert!(malformed[4]["response"]["reason"].as_str().expect("reason").starts_with("malformed message"));
    assert_eq!(frames[1], r#"["2","2","room:lobby","phx_reply",{"response":{},"status":"ok"}]"#);
}

#[test]
fn a_base64_line_is_a_binary_message_as_phoenix_js_sends_it() {
    use base64::Engine as _;
    let server = Server::start_config(&support::probe_config_with(&format!("[server]\nlongpoll_window_ms = {}", WINDOW.as_millis())))
        .expect("starts");
    let session = open(&server.addr);
    post(&server.addr, &session, "application/json", r#"["1","1","probe:lp","phx_join",{}]"#);
    collect(&server.addr, &session, 1);
    // phoenix.js's long-poll base64-encodes a binary frame (kind 0: join
    // ref, ref, topic and event sizes, the fields, then the bytes).
    let line = |reference: &str, event: &str, bytes: &[u8]| {
        let mut frame = vec![0, 1, reference.len() as u8, 8, event.len() as u8];
        frame.extend_from_slice(format!("1{reference}probe:lp{event}").as_bytes());
        frame.extend_from_slice(bytes);
        base64::engine::general_purpose::STANDARD.encode(frame)
    };
    let batch = format!("{}\n{}\n", line("2", "binary_push", &[1, 2]), line("3", "binary_info", &[0; 40]));
    assert_eq!(post(&server.addr, &session, "application/x-ndjson", &batch), json!({"status": 200}));
    // The binary push cannot be polled (phoenix.js reads polled messages
    // as JSON) and is dropped; both replies, in JSON, arrive in order.
    assert_eq!(
        collect(&server.addr, &session, 2),
        [
            r#"["1","2","probe:lp","phx_reply",{"response":{"result":null},"status":"ok"}]"#,
            r#"["1","3","probe:lp","phx_reply",{"response":{"binary":true,"bytes":40},"status":"ok"}]"#,
        ]
    );
}

#[tokio::test]
async fn a_session_nobody_polls_for_two_windows_ends_and_its_channels_with_it() {
    let server = start();
    let mut observer = server.client(7).await;
    let (_, reply) = observer.join("chat:lobby", json!({"token": support::user_token(7)})).await;
    assert_eq!(reply[4]["status"], "ok", "{reply}");
    let addr = server.addr.clone();
    let last_seen = tokio::task::spawn_blocking(move || {
        let session = open(&addr);
        let join = json!(["1", "1", "chat:lobby", "phx_join", {"token": support::user_token(42)}]).to_string();
        post(&addr, &session, "application/json", &join);
        collect(&addr, &session, 1);
        Instant::now()
    })
    .await
    .expect("the session joins");
    // Nobody polls from now on. The session ends after two windows, its
    // chat channel terminates, and the member leaves the others' presence.
    loop {
        let frame = observer.recv().await;
        if frame[3] == "presence_diff" && frame[4]["leaves"].get("42").is_some() {
            break;
        }
    }
    // `last_seen` is taken once the last poll's answer has been read; the
    // server touched the session a moment before it sent that answer.
    let slack = Duration::from_millis(50);
    assert!(last_seen.elapsed() + slack >= 2 * WINDOW, "the session ended after {:?}", last_seen.elapsed());
}
