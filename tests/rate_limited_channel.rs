//! RateLimitedChannel, topics `limited:*` (docs/demo-app.md), over
//! real sockets.

mod support;

use std::time::Duration;

use serde_json::json;
use support::Server;

#[tokio::test]
async fn the_eleventh_message_inside_the_window_replies_rate_limit_exceeded() {
    let server = Server::start();
    let mut client = server.client(42).await;
    client.send_text(r#"["1","1","limited:x","phx_join",{}]"#).await;
    assert_eq!(
        client.recv_text().await,
        r#"["1","1","limited:x","phx_reply",{"response":{},"status":"ok"}]"#
    );
    // Twelve pushes back to back, as in the recorded Phoenix run.
    for i in 2..=13 {
        client
            .send_text(&format!(r#"["1","{i}","limited:x","echo",{{"i":{i}}}]"#))
            .await;
    }
    for i in 2..=11 {
        assert_eq!(
            client.recv_text().await,
            format!(r#"["1","{i}","limited:x","phx_reply",{{"response":{{"i":{i}}},"status":"ok"}}]"#)
        );
    }
    for i in 12..=13 {
        assert_eq!(
            client.recv_text().await,
            format!(r#"["1","{i}","limited:x","phx_reply",{{"response":{{"reason":"rate limit exceeded"}},"status":"error"}}]"#)
        );
    }
}

#[tokio::test]
async fn the_window_slides_and_lets_messages_through_again() {
    let server = Server::start();
    let mut client = server.client(42).await;
    let join_ref = client.join_ok("limited:x").await;
    for _ in 0..10 {
        client.push(&join_ref, "limited:x", "echo", json!({})).await;
        assert_eq!(client.recv().await[4]["status"], "ok");
    }
    client.push(&join_ref, "limited:x", "echo", json!({})).await;
    assert_eq!(client.recv().await[4]["status"], "error");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..10 {
        client.push(&join_ref, "limited:x", "echo", json!({})).await;
        assert_eq!(client.recv().await[4]["status"], "ok", "a second later the window is empty again");
    }
}

#[tokio::test]
async fn the_limit_is_per_channel() {
    let server = Server::start();
    let mut a = server.client(42).await;
    let mut b = server.client(42).await;
    let a_ref = a.join_ok("limited:x").await;
    let other_ref = a.join_ok("limited:y").await;
    let b_ref = b.join_ok("limited:x").await;
    for _ in 0..10 {
        a.push(&a_ref, "limited:x", "echo", json!({})).await;
        assert_eq!(a.recv().await[4]["status"], "ok");
    }
    a.push(&a_ref, "limited:x", "echo", json!({})).await;
    assert_eq!(a.recv().await[4]["response"], json!({"reason": "rate limit exceeded"}));
    // The same socket's other channel, and the same topic on another
    // socket, have their own windows.
    a.push(&other_ref, "limited:y", "echo", json!("y")).await;
    assert_eq!(a.recv().await[4], json!({"response": "y", "status": "ok"}));
    b.push(&b_ref, "limited:x", "echo", json!("b")).await;
    assert_eq!(b.recv().await[4], json!({"response": "b", "status": "ok"}));
}

#[tokio::test]
async fn echo_replies_ok_with_any_payload_echoed() {
    let server = Server::start();
    let mut client = server.client(42).await;
    client.send_text(r#"["1","1","limited:z","phx_join",{}]"#).await;
    client.recv_text().await;
    for payload in [r#""x""#, "[1,2,3]", "null", r#"{"nested":{"a":1}}"#] {
        client
            .send_text(&format!(r#"["1","2","limited:z","echo",{payload}]"#))
            .await;
        assert_eq!(
            client.recv_text().await,
            format!(r#"["1","2","limited:z","phx_reply",{{"response":{payload},"status":"ok"}}]"#)
        );
    }
}
