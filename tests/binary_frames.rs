//! V2 binary frames: payloads of raw bytes, both ways, in the header
//! layouts of Phoenix's V2 serializer (push 0, reply 1, broadcast 2).
//!
//! phoenix.js sends a push whose payload is an `ArrayBuffer` as a binary
//! frame; tests/js/binary.test.js drives the same paths from phoenix.js.

mod support;

use serde_json::{Value, json};
use support::{Client, Server, user_token};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// A client push as phoenix.js encodes it: kind 0, then the sizes of join
/// ref, ref, topic and event, the four fields, and the payload.
fn push_frame(join_ref: &str, reference: &str, topic: &str, event: &str, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0, join_ref.len() as u8, reference.len() as u8, topic.len() as u8, event.len() as u8];
    for field in [join_ref, reference, topic, event] {
        frame.extend_from_slice(field.as_bytes());
    }
    frame.extend_from_slice(payload);
    frame
}

/// A server frame split into its kind, header fields and payload.
#[derive(Debug, PartialEq)]
struct Decoded {
    kind: u8,
    fields: Vec<String>,
    payload: Vec<u8>,
}

fn decode(frame: &[u8]) -> Decoded {
    let kind = frame[0];
    let count = match kind {
        0 => 3, // join ref, topic, event
        1 => 4, // join ref, ref, topic, status
        2 => 2, // topic, event
        other => panic!("unknown kind {other}"),
    };
    let sizes: Vec<usize> = frame[1..=count].iter().map(|&n| n as usize).collect();
    let mut at = 1 + count;
    let mut fields = Vec::new();
    for size in sizes {
        fields.push(String::from_utf8(frame[at..at + size].to_vec()).expect("text field"));
        at += size;
    }
    Decoded {
        kind,
        fields,
        payload: frame[at..].to_vec(),
    }
}

fn strings(fields: &[&str]) -> Vec<String> {
    fields.iter().map(|s| (*s).to_owned()).collect()
}

/// The next frame, which must be binary.
async fn recv_binary(client: &mut Client) -> Decoded {
    match client.next_message().await {
        Some(Message::Binary(bytes)) => decode(&bytes),
        other => panic!("expected a binary frame, got {other:?}"),
    }
}

#[tokio::test]
async fn a_binary_ping_on_room_lobby_is_echoed_as_a_binary_reply() {
    let server = Server::start();
    let mut client = server.client(1).await;
    let join_ref = client.join_ok("room:lobby").await;
    let bytes = [0u8, 1, 2, 254, 255];
    client.send_binary(push_frame(&join_ref, "7", "room:lobby", "ping", &bytes)).await;
    assert_eq!(
        recv_binary(&mut client).await,
        Decoded {
            kind: 1,
            fields: strings(&[&join_ref, "7", "room:lobby", "ok"]),
            payload: bytes.to_vec(),
        }
    );
    // The socket goes on speaking JSON.
    let reference = client.push(&join_ref, "room:lobby", "ping", json!({"after": "binary"})).await;
    assert_eq!(
        client.recv().await,
        json!([join_ref, reference, "room:lobby", "phx_reply", {"response": {"after": "binary"}, "status": "ok"}])
    );
}

#[tokio::test]
async fn the_plugin_sees_bytes_and_a_json_reply_to_a_binary_push_is_text() {
    let server = Server::start_probe();
    let mut client = server.client(1).await;
    let join_ref = client.join_ok_probe("probe:bin").await;
    client.send_binary(push_frame(&join_ref, "8", "probe:bin", "binary_info", &[9; 300])).await;
    assert_eq!(
        client.recv().await,
        json!([join_ref, "8", "probe:bin", "phx_reply", {"response": {"binary": true, "bytes": 300}, "status": "ok"}])
    );
    // An empty payload is still binary.
    client.send_binary(push_frame(&join_ref, "9", "probe:bin", "binary_info", &[])).await;
    assert_eq!(client.recv().await[4]["response"], json!({"binary": true, "bytes": 0}));
}

#[tokio::test]
async fn a_binary_broadcast_reaches_every_v2_subscriber_as_a_broadcast_frame() {
    let server = Server::start_probe();
    let mut a = server.client(1).await;
    let mut b = server.client(2).await;
    let ja = a.join_ok_probe("probe:fan").await;
    b.join_ok_probe("probe:fan").await;
    a.send_binary(push_frame(&ja, "5", "probe:fan", "binary_broadcast", b"\x00bytes\xff")).await;
    let expected = Decoded {
        kind: 2,
        fields: strings(&["probe:fan", "blob"]),
        payload: b"\x00bytes\xff".to_vec(),
    };
    // The sender's broadcast comes before its reply (not intercepted).
    assert_eq!(recv_binary(&mut a).await, expected);
    assert_eq!(a.recv().await[4], json!({"response": {"result": null}, "status": "ok"}));
    assert_eq!(recv_binary(&mut b).await, expected);
}

#[tokio::test]
async fn a_binary_push_and_an_intercepted_binary_broadcast_are_push_frames() {
    let server = Server::start_probe();
    let mut a = server.client(1).await;
    let mut b = server.client(2).await;
    let ja = a.join_ok_probe("probe:push").await;
    let jb = b.join_ok_probe("probe:push").await;
    a.send_binary(push_frame(&ja, "5", "probe:push", "binary_push", &[1, 2, 3])).await;
    assert_eq!(
        recv_binary(&mut a).await,
        Decoded {
            kind: 0,
            fields: strings(&[&ja, "probe:push", "blob"]),
            payload: vec![1, 2, 3],
        }
    );
    assert_eq!(a.recv().await[3], "phx_reply");
    // `reversed` is intercepted: handle-out rewrites the bytes for each
    // subscriber, and each gets a push with its own join ref.
    a.send_binary(push_frame(&ja, "6", "probe:push", "binary_broadcast_reversed", &[1, 2, 3])).await;
    assert_eq!(a.recv().await[3], "phx_reply");
    assert_eq!(
        recv_binary(&mut a).await,
        Decoded {
            kind: 0,
            fields: strings(&[&ja, "probe:push", "reversed"]),
            payload: vec![3, 2, 1],
        }
    );
    assert_eq!(
        recv_binary(&mut b).await,
        Decoded {
            kind: 0,
            fields: strings(&[&jb, "probe:push", "reversed"]),
            payload: vec![3, 2, 1],
        }
    );
}

#[tokio::test]
async fn binary_frames_to_an_unjoined_topic_get_the_unmatched_topic_reply() {
    let server = Server::start();
    let mut client = server.client(1).await;
    client.send_binary(push_frame("", "3", "room:nowhere", "ping", &[1])).await;
    assert_eq!(
        client.recv().await,
        json!([null, "3", "room:nowhere", "phx_reply", {"response": {"reason": "unmatched topic"}, "status": "error"}])
    );
}

#[tokio::test]
async fn a_binary_frame_whose_header_lies_harms_nothing() {
    let server = Server::start();
    let mut client = server.client(1).await;
    let join_ref = client.join_ok("room:lobby").await;
    // Sizes larger than the frame, a kind a client never sends (the frame
    // Phoenix's recorded session closes with 1011), a field that is not text.
    let mut lying = push_frame(&join_ref, "4", "room:lobby", "ping", &[]);
    lying[3] = 250;
    client.send_binary(lying).await;
    client.send_binary(vec![1, 2, 3, 4, 5]).await;
    client.send_binary(vec![0, 0, 1, 1, 1, b'1', 0xff, b'e']).await;
    // The socket and its channel live on, stricter than Phoenix's 1011.
    let reference = client.push(&join_ref, "room:lobby", "ping", json!({"still": "here"})).await;
    assert_eq!(
        client.recv().await,
        json!([join_ref, reference, "room:lobby", "phx_reply", {"response": {"still": "here"}, "status": "ok"}])
    );
    // Garbage without end is still garbage: ten in a row close with 1007.
    for _ in 0..10 {
        client.send_binary(vec![7]).await;
    }
    assert_eq!(client.expect_close().await, Some(CloseCode::Invalid));
}

#[tokio::test]
async fn v1_clients_cannot_carry_bytes_and_miss_only_the_binary_broadcasts() {
    let server = Server::start_probe();
    let mut v1 = Client::connect(&server.ws_url(&format!("token={}&vsn=1.0.0", user_token(1))))
        .await
        .expect("the V1 connection is accepted");
    let mut v2 = server.client(2).await;
    v1.send(json!({"topic": "probe:mixed", "event": "phx_join", "payload": {}, "ref": "1", "join_ref": "1"})).await;
    assert_eq!(v1.recv().await["payload"]["status"], "ok");
    let j2 = v2.join_ok_probe("probe:mixed").await;
    // A V1 socket refuses a binary frame as malformed, and stays open.
    v1.send_binary(push_frame("1", "2", "probe:mixed", "binary_info", &[1])).await;
    v2.send_binary(push_frame(&j2, "5", "probe:mixed", "binary_broadcast", &[4, 2])).await;
    assert_eq!(recv_binary(&mut v2).await.payload, vec![4, 2]);
    assert_eq!(v2.recv().await[3], "phx_reply");
    v2.push(&j2, "probe:mixed", "broadcast", json!({"event": "text", "payload": {"n": 1}})).await;
    // The V1 client never sees the binary broadcast; the JSON one arrives.
    let frame: Value = v1.recv().await;
    assert_eq!(frame["event"], "text", "{frame}");
    assert_eq!(frame["payload"], json!({"n": 1}));
    v1.expect_quiet().await;
}
