//! The "Wire details" of docs/demo-app.md, frame for frame as a real
//! Phoenix 1.7 server sends them (recorded from Phoenix 1.7.21), and
//! plume's stricter handling of bad input.

mod support;

use serde_json::json;
use support::Server;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

async fn exchange(client: &mut support::Client, send: &str, expect: &[&str]) {
    client.send_text(send).await;
    for frame in expect {
        assert_eq!(client.recv_text().await, *frame, "after sending {send}");
    }
}

#[tokio::test]
async fn heartbeat_replies_ok_on_the_phoenix_topic() {
    let server = Server::start();
    let mut c = server.client(42).await;
    exchange(
        &mut c,
        r#"[null,"1","phoenix","heartbeat",{}]"#,
        &[r#"[null,"1","phoenix","phx_reply",{"response":{},"status":"ok"}]"#],
    )
    .await;
    // A join_ref on a heartbeat is ignored; other events on `phoenix` are unmatched.
    exchange(
        &mut c,
        r#"["x","10","phoenix","heartbeat",{}]"#,
        &[r#"[null,"10","phoenix","phx_reply",{"response":{},"status":"ok"}]"#],
    )
    .await;
    exchange(
        &mut c,
        r#"[null,"11","phoenix","something_else",{}]"#,
        &[r#"[null,"11","phoenix","phx_reply",{"response":{"reason":"unmatched topic"},"status":"error"}]"#],
    )
    .await;
}

#[tokio::test]
async fn joining_an_unmatched_topic_replies_unmatched_topic() {
    let server = Server::start();
    let mut c = server.client(42).await;
    exchange(
        &mut c,
        r#"["9","9","nope:1","phx_join",{}]"#,
        &[r#"[null,"9","nope:1","phx_reply",{"response":{"reason":"unmatched topic"},"status":"error"}]"#],
    )
    .await;
}

#[tokio::test]
async fn a_push_to_a_topic_not_joined_replies_unmatched_topic() {
    let server = Server::start();
    let mut c = server.client(42).await;
    exchange(
        &mut c,
        r#"["10","10","room:other","new_msg",{"body":"x"}]"#,
        &[r#"[null,"10","room:other","phx_reply",{"response":{"reason":"unmatched topic"},"status":"error"}]"#],
    )
    .await;
    exchange(
        &mut c,
        r#"[null,"11","room:other","new_msg",{"body":"x"}]"#,
        &[r#"[null,"11","room:other","phx_reply",{"response":{"reason":"unmatched topic"},"status":"error"}]"#],
    )
    .await;
}

#[tokio::test]
async fn phx_leave_replies_ok_then_phx_close_and_later_pushes_are_unmatched() {
    let server = Server::start();
    let mut a = server.client(42).await;
    let mut b = server.client(7).await;
    exchange(&mut a, r#"["7","7","room:lobby","phx_join",{}]"#, &[r#"["7","7","room:lobby","phx_reply",{"response":{},"status":"ok"}]"#]).await;
    let jb = b.join_ok("room:lobby").await;
    exchange(
        &mut a,
        r#"["7","13","room:lobby","phx_leave",{}]"#,
        &[
            r#"["7","13","room:lobby","phx_reply",{"response":{},"status":"ok"}]"#,
            r#"["7","7","room:lobby","phx_close",{}]"#,
        ],
    )
    .await;
    exchange(
        &mut a,
        r#"["7","14","room:lobby","ping",{}]"#,
        &[r#"[null,"14","room:lobby","phx_reply",{"response":{"reason":"unmatched topic"},"status":"error"}]"#],
    )
    .await;
    // The member that left no longer receives the topic's broadcasts.
    b.push(&jb, "room:lobby", "new_msg", json!({"body": "after"})).await;
    assert_eq!(b.recv().await[3], "new_msg");
    a.expect_quiet().await;
}

#[tokio::test]
async fn joining_a_joined_topic_again_replies_then_closes_the_old_channel() {
    let server = Server::start();
    let mut c = server.client(42).await;
    exchange(&mut c, r#"["1","1","room:lobby","phx_join",{}]"#, &[r#"["1","1","room:lobby","phx_reply",{"response":{},"status":"ok"}]"#]).await;
    exchange(
        &mut c,
        r#"["1","2","room:lobby","phx_join",{}]"#,
        &[
            r#"["1","2","room:lobby","phx_reply",{"response":{},"status":"ok"}]"#,
            r#"["1","1","room:lobby","phx_close",{}]"#,
        ],
    )
    .await;
    exchange(
        &mut c,
        r#"["3","3","room:lobby","phx_join",{}]"#,
        &[
            r#"["3","3","room:lobby","phx_reply",{"response":{},"status":"ok"}]"#,
            r#"["1","1","room:lobby","phx_close",{}]"#,
        ],
    )
    .await;
    exchange(
        &mut c,
        r#"["3","4","room:lobby","ping",{"after":"rejoin"}]"#,
        &[r#"["3","4","room:lobby","phx_reply",{"response":{"after":"rejoin"},"status":"ok"}]"#],
    )
    .await;
    // A push with a stale join_ref reaches the current channel and is
    // answered with the current join_ref.
    exchange(
        &mut c,
        r#"["1","5","room:lobby","ping",{"old":"join_ref"}]"#,
        &[r#"["3","5","room:lobby","phx_reply",{"response":{"old":"join_ref"},"status":"ok"}]"#],
    )
    .await;
}

#[tokio::test]
async fn integer_and_null_references_are_echoed_as_sent() {
    let server = Server::start();
    let mut c = server.client(42).await;
    exchange(&mut c, r#"[null,1,"phoenix","heartbeat",{}]"#, &[r#"[null,1,"phoenix","phx_reply",{"response":{},"status":"ok"}]"#]).await;
    exchange(&mut c, r#"[1,2,"room:lobby","phx_join",{}]"#, &[r#"[1,2,"room:lobby","phx_reply",{"response":{},"status":"ok"}]"#]).await;
    exchange(
        &mut c,
        r#"[1,3,"room:lobby","ping",{"int_refs":true}]"#,
        &[r#"[1,3,"room:lobby","phx_reply",{"response":{"int_refs":true},"status":"ok"}]"#],
    )
    .await;
    exchange(
        &mut c,
        r#"["11",null,"room:lobby","ping",{"null_ref":true}]"#,
        &[r#"[1,null,"room:lobby","phx_reply",{"response":{"null_ref":true},"status":"ok"}]"#],
    )
    .await;
}

#[tokio::test]
async fn a_non_string_topic_or_event_is_answered_unmatched_topic() {
    let server = Server::start();
    let mut c = server.client(42).await;
    exchange(
        &mut c,
        r#"[null,"12",123,"heartbeat",{}]"#,
        &[r#"[null,"12",123,"phx_reply",{"response":{"reason":"unmatched topic"},"status":"error"}]"#],
    )
    .await;
    exchange(
        &mut c,
        r#"["1","1","room:lobby",5,{}]"#,
        &[r#"[null,"1","room:lobby","phx_reply",{"response":{"reason":"unmatched topic"},"status":"error"}]"#],
    )
    .await;
}

#[tokio::test]
async fn a_six_element_frame_is_accepted_as_phoenix_does() {
    let server = Server::start();
    let mut c = server.client(42).await;
    exchange(
        &mut c,
        r#"["1","1","room:lobby","phx_join",{},"extra"]"#,
        &[r#"["1","1","room:lobby","phx_reply",{"response":{},"status":"ok"}]"#],
    )
    .await;
}

#[tokio::test]
async fn malformed_frames_get_an_error_and_harm_no_channel() {
    let server = Server::start();
    let mut c = server.client(42).await;
    let mut other = server.client(7).await;
    other.join_ok("room:lobby").await;
    exchange(&mut c, r#"["1","1","room:lobby","phx_join",{}]"#, &[r#"["1","1","room:lobby","phx_reply",{"response":{},"status":"ok"}]"#]).await;

    // Unreadable frames get no answer; the socket and its channel live on.
    for garbage in ["this is not json", "[]", r#"{"topic":"room:lobby","event":"phx_join","payload":{},"ref":"3"}"#] {
        c.send_text(garbage).await;
    }
    // A frame whose reference can be read is answered with an error.
    c.send_text(r#"["1","7","room:lobby","ping"]"#).await;
    let reply = c.recv().await;
    assert_eq!(reply[1], "7");
    assert_eq!(reply[2], "room:lobby");
    assert_eq!(reply[4]["status"], "error");
    assert!(reply[4]["response"]["reason"].as_str().expect("reason").starts_with("malformed message"));

    exchange(
        &mut c,
        r#"["1","8","room:lobby","ping",{"still":"alive"}]"#,
        &[r#"["1","8","room:lobby","phx_reply",{"response":{"still":"alive"},"status":"ok"}]"#],
    )
    .await;
    c.send(json!(["1", "9", "room:lobby", "new_msg", {"body": "ok"}])).await;
    assert_eq!(other.recv().await[4], json!({"body": "ok", "user_id": 42}));
}

#[tokio::test]
async fn repeated_garbage_closes_the_socket_with_1007() {
    let server = Server::start();
    let mut c = server.client(42).await;
    let mut bystander = server.client(7).await;
    for _ in 0..10 {
        c.send_text("garbage").await;
    }
    assert_eq!(c.expect_close().await, Some(CloseCode::Invalid));
    bystander
        .send_text(r#"[null,"1","phoenix","heartbeat",{}]"#)
        .await;
    assert_eq!(
        bystander.recv_text().await,
        r#"[null,"1","phoenix","phx_reply",{"response":{},"status":"ok"}]"#
    );
}

#[tokio::test]
async fn only_ten_malformed_frames_in_a_row_close_the_socket_a_good_one_between_resets_the_count() {
    let server = Server::start();
    let mut c = server.client(42).await;
    // 9 bad, 1 good, 9 bad: never 10 in a row, so the socket stays open.
    for _ in 0..9 {
        c.send_text("garbage").await;
    }
    exchange(
        &mut c,
        r#"[null,"1","phoenix","heartbeat",{}]"#,
        &[r#"[null,"1","phoenix","phx_reply",{"response":{},"status":"ok"}]"#],
    )
    .await;
    for _ in 0..9 {
        c.send_text("garbage").await;
    }
    // Still open: unreadable frames get no answer, and the barrier's
    // heartbeats (good frames) are answered.
    c.expect_quiet().await;
    // 10 in a row close it.
    for _ in 0..10 {
        c.send_text("garbage").await;
    }
    assert_eq!(c.expect_close().await, Some(CloseCode::Invalid));
}

#[tokio::test]
async fn a_frame_over_the_size_limit_closes_the_socket_with_1009() {
    let server = Server::start();
    let mut c = server.client(42).await;
    c.join_ok("room:lobby").await;
    let big = "x".repeat(2 * 1024 * 1024);
    c.send(json!(["1", "2", "room:lobby", "ping", {"big": big}])).await;
    assert_eq!(c.expect_close().await, Some(CloseCode::Size));
    // The server lives on.
    server.client(7).await.join_ok("room:lobby").await;
}

#[tokio::test]
async fn a_binary_frame_is_refused_without_closing_the_socket() {
    let server = Server::start();
    let mut c = server.client(42).await;
    c.send_text(r#"[null,"1","phoenix","heartbeat",{}]"#).await;
    c.recv_text().await;
    c.send_binary(vec![1, 2, 3, 4, 5]).await;
    exchange(
        &mut c,
        r#"[null,"2","phoenix","heartbeat",{}]"#,
        &[r#"[null,"2","phoenix","phx_reply",{"response":{},"status":"ok"}]"#],
    )
    .await;
}

#[tokio::test]
async fn the_v1_serializer_speaks_objects() {
    let server = Server::start();
    let token = support::user_token(42);
    let mut c = support::Client::connect(&server.ws_url(&format!("token={token}&vsn=1.0.0")))
        .await
        .expect("v1 connects");
    exchange(
        &mut c,
        r#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"1"}"#,
        &[r#"{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":"1","topic":"phoenix"}"#],
    )
    .await;
    exchange(
        &mut c,
        r#"{"topic":"room:lobby","event":"phx_join","payload":{},"ref":"2","join_ref":"2"}"#,
        &[r#"{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":"2","topic":"room:lobby"}"#],
    )
    .await;
    exchange(
        &mut c,
        r#"{"topic":"room:lobby","event":"new_msg","payload":{"body":"v1"},"ref":"3","join_ref":"2"}"#,
        &[
            r#"{"event":"new_msg","payload":{"body":"v1","user_id":42},"ref":null,"topic":"room:lobby"}"#,
            r#"{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":"3","topic":"room:lobby"}"#,
        ],
    )
    .await;
    // A V2 array on a V1 socket is malformed; the reference cannot be read.
    c.send_text(r#"[null,"4","phoenix","heartbeat",{}]"#).await;
    exchange(
        &mut c,
        r#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"5"}"#,
        &[r#"{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":"5","topic":"phoenix"}"#],
    )
    .await;
}

// phx_leave, as Phoenix.Socket answers it: a topic with no channel gets an
// ok reply carrying the leave's own references (and nothing to close); a
// leave naming an earlier join of a rejoined topic is ignored.

const HEARTBEAT: &str = r#"[null,"hb","phoenix","heartbeat",{}]"#;
const HEARTBEAT_REPLY: &str = r#"[null,"hb","phoenix","phx_reply",{"response":{},"status":"ok"}]"#;

/// Send a heartbeat and expect its reply as the very next frame: whatever
/// was sent before it got no answer beyond the frames already read.
async fn nothing_more(client: &mut support::Client) {
    exchange(client, HEARTBEAT, &[HEARTBEAT_REPLY]).await;
}

#[tokio::test]
async fn leaving_after_a_refused_join_replies_ok_and_closes_nothing() {
    let server = Server::start();
    let mut c = server.client(42).await;
    exchange(
        &mut c,
        r#"["12","12","room:private","phx_join",{}]"#,
        &[r#"["12","12","room:private","phx_reply",{"response":{"reason":"unauthorized"},"status":"error"}]"#],
    )
    .await;
    exchange(
        &mut c,
        r#"["12","13","room:private","phx_leave",{}]"#,
        &[r#"["12","13","room:private","phx_reply",{"response":{},"status":"ok"}]"#],
    )
    .await;
    nothing_more(&mut c).await;
}

#[tokio::test]
async fn leaving_a_topic_never_joined_replies_ok_with_the_leaves_references() {
    let server = Server::start();
    let mut c = server.client(42).await;
    exchange(
        &mut c,
        r#"["5","6","room:never","phx_leave",{}]"#,
        &[r#"["5","6","room:never","phx_reply",{"response":{},"status":"ok"}]"#],
    )
    .await;
    exchange(
        &mut c,
        r#"[null,7,"room:never","phx_leave",{}]"#,
        &[r#"[null,7,"room:never","phx_reply",{"response":{},"status":"ok"}]"#],
    )
    .await;
    // A topic no route serves is no different: there is no channel to leave.
    exchange(
        &mut c,
        r#"["9","9","nope:1","phx_leave",{}]"#,
        &[r#"["9","9","nope:1","phx_reply",{"response":{},"status":"ok"}]"#],
    )
    .await;
    // Other events on a topic without a channel stay unmatched.
    exchange(
        &mut c,
        r#"["5","8","room:never","ping",{}]"#,
        &[r#"[null,"8","room:never","phx_reply",{"response":{"reason":"unmatched topic"},"status":"error"}]"#],
    )
    .await;
}

#[tokio::test]
async fn leaving_twice_closes_the_channel_once_and_answers_both_leaves() {
    let server = Server::start();
    let mut c = server.client(42).await;
    exchange(&mut c, r#"["1","1","room:lobby","phx_join",{}]"#, &[r#"["1","1","room:lobby","phx_reply",{"response":{},"status":"ok"}]"#]).await;
    exchange(
        &mut c,
        r#"["1","2","room:lobby","phx_leave",{}]"#,
        &[
            r#"["1","2","room:lobby","phx_reply",{"response":{},"status":"ok"}]"#,
            r#"["1","1","room:lobby","phx_close",{}]"#,
        ],
    )
    .await;
    exchange(
        &mut c,
        r#"["1","3","room:lobby","phx_leave",{}]"#,
        &[r#"["1","3","room:lobby","phx_reply",{"response":{},"status":"ok"}]"#],
    )
    .await;
    nothing_more(&mut c).await;
}

#[tokio::test]
async fn a_leave_for_an_earlier_join_is_ignored_and_the_rejoined_channel_stays() {
    let server = Server::start();
    let mut c = server.client(42).await;
    exchange(&mut c, r#"["1","1","room:lobby","phx_join",{}]"#, &[r#"["1","1","room:lobby","phx_reply",{"response":{},"status":"ok"}]"#]).await;
    exchange(
        &mut c,
        r#"["3","3","room:lobby","phx_join",{}]"#,
        &[
            r#"["3","3","room:lobby","phx_reply",{"response":{},"status":"ok"}]"#,
            r#"["1","1","room:lobby","phx_close",{}]"#,
        ],
    )
    .await;
    // The client raced the server's close of join "1": no reply, and the
    // channel of join "3" lives on. A null join_ref names no join either
    // (Phoenix lets a join_ref-less leave through only to a channel joined
    // without one).
    c.send_text(r#"["1","4","room:lobby","phx_leave",{}]"#).await;
    c.send_text(r#"[null,"5","room:lobby","phx_leave",{}]"#).await;
    nothing_more(&mut c).await;
    exchange(
        &mut c,
        r#"["3","6","room:lobby","ping",{"still":"joined"}]"#,
        &[r#"["3","6","room:lobby","phx_reply",{"response":{"still":"joined"},"status":"ok"}]"#],
    )
    .await;
    exchange(
        &mut c,
        r#"["3","7","room:lobby","phx_leave",{}]"#,
        &[
            r#"["3","7","room:lobby","phx_reply",{"response":{},"status":"ok"}]"#,
            r#"["3","3","room:lobby","phx_close",{}]"#,
        ],
    )
    .await;
}

#[tokio::test]
async fn a_leave_then_a_join_in_one_batch_leaves_then_joins_again() {
    let server = Server::start();
    let mut c = server.client(42).await;
    let mut other = server.client(7).await;
    let other_ref = other.join_ok("room:lobby").await;
    exchange(&mut c, r#"["1","1","room:lobby","phx_join",{}]"#, &[r#"["1","1","room:lobby","phx_reply",{"response":{},"status":"ok"}]"#]).await;
    c.send_batch(&[r#"["1","2","room:lobby","phx_leave",{}]"#, r#"["3","3","room:lobby","phx_join",{}]"#]).await;
    for frame in [
        r#"["1","2","room:lobby","phx_reply",{"response":{},"status":"ok"}]"#,
        r#"["1","1","room:lobby","phx_close",{}]"#,
        r#"["3","3","room:lobby","phx_reply",{"response":{},"status":"ok"}]"#,
    ] {
        assert_eq!(c.recv_text().await, frame);
    }
    // One channel: a broadcast reaches the client once.
    other.push(&other_ref, "room:lobby", "new_msg", json!({"body": "once"})).await;
    assert_eq!(c.recv_text().await, r#"[null,null,"room:lobby","new_msg",{"body":"once","user_id":7}]"#);
    nothing_more(&mut c).await;
}

#[tokio::test]
async fn a_v1_channel_joined_without_a_join_ref_leaves_on_any_leave() {
    let server = Server::start();
    let token = support::user_token(42);
    let mut c = support::Client::connect(&server.ws_url(&format!("token={token}&vsn=1.0.0")))
        .await
        .expect("v1 connects");
    exchange(
        &mut c,
        r#"{"topic":"room:lobby","event":"phx_join","payload":{},"ref":"1"}"#,
        &[r#"{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":"1","topic":"room:lobby"}"#],
    )
    .await;
    exchange(
        &mut c,
        r#"{"topic":"room:lobby","event":"phx_leave","payload":{},"ref":"2","join_ref":"9"}"#,
        &[
            r#"{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":"2","topic":"room:lobby"}"#,
            r#"{"event":"phx_close","payload":{},"ref":null,"topic":"room:lobby"}"#,
        ],
    )
    .await;
}
