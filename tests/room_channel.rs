//! RoomChannel, topics `room:*` (docs/demo-app.md), over real sockets.
//!
//! Every test runs three times, with the same assertions: against the demo app's
//! RoomChannel (Rust, `plugins/room`) as `rust::<test>`, and against the
//! same channel written in JavaScript (`plugins/room-js`, built by
//! componentize-js) as `js::<test>`, and against it in Python (`plugins/room-py`,
//! built by componentize-py with the SDK in `sdk/python`) as `py::<test>`.

mod support;

use serde_json::json;
use support::Server;

/// The RoomChannel that serves `room:*` in a test.
#[derive(Debug, Clone, Copy)]
enum Room {
    /// The demo app, as `plume serve` runs it.
    Rust,
    /// The demo's socket plugin, with `room:*` routed to `room-js.wasm`.
    Js,
    /// The demo's socket plugin, with `room:*` routed to `room-py.wasm`.
    Py,
}

/// A room in another language (`{room}`: its `.wasm` file's name) beside
/// the demo's socket plugin, with the runtime's default limits (memory,
/// deadline, pool).
const ROOM_CONFIG: &str = r#"
[app]
socket_plugin = "user_socket"

[plugins.user_socket]
path = "{plugins}/user_socket.wasm"

[plugins.room]
path = "{plugins}/{room}.wasm"

[[routes]]
topic = "room:*"
plugin = "room"
"#;

impl Room {
    fn start(self) -> Server {
        match self {
            Room::Rust => Server::start(),
            Room::Js => start_room("room-js", "Node.js 20+ with npm"),
            Room::Py => start_room("room-py", "python3 with its venv module (python3-venv)"),
        }
    }
}

/// A server whose `room:*` is served by `<file>.wasm`, built by `plume
/// build` with `needs` on PATH.
fn start_room(file: &str, needs: &str) -> Server {
    let wasm = support::plugin_dir().join(format!("{file}.wasm"));
    assert!(
        wasm.is_file(),
        "{} was not built: plume build needs {needs} for plugins/{file} (see its warning above)",
        wasm.display()
    );
    Server::start_config(&ROOM_CONFIG.replace("{room}", file))
        .unwrap_or_else(|log| panic!("the {file} server did not start:\n{log}"))
}

/// Defines each test once, as a function of the [`Room`] it runs against,
/// and registers it for the three rooms: `rust::<name>`, `js::<name>` and
/// `py::<name>`.
macro_rules! room_tests {
    ($(async fn $name:ident($room:ident) $body:block)*) => {
        $(async fn $name($room: Room) $body)*

        mod rust {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Room::Rust).await;
            })*
        }

        mod js {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Room::Js).await;
            })*
        }

        mod py {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Room::Py).await;
            })*
        }
    };
}

room_tests! {
    async fn join_room_lobby_replies_ok_with_an_empty_map(room) {
        let server = room.start();
        let mut client = server.client(42).await;
        client
            .send_text(r#"["2","2","room:lobby","phx_join",{}]"#)
            .await;
        assert_eq!(
            client.recv_text().await,
            r#"["2","2","room:lobby","phx_reply",{"response":{},"status":"ok"}]"#
        );
    }

    async fn join_room_private_is_refused_as_unauthorized_without_phx_close(room) {
        let server = room.start();
        let mut client = server.client(42).await;
        client
            .send_text(r#"["12","12","room:private","phx_join",{}]"#)
            .await;
        assert_eq!(
            client.recv_text().await,
            r#"["12","12","room:private","phx_reply",{"response":{"reason":"unauthorized"},"status":"error"}]"#
        );
        client.expect_quiet().await;
    }

    async fn join_any_other_room_is_ok_whatever_the_payload(room) {
        let server = room.start();
        let mut client = server.client(42).await;
        client.join_ok("room:42").await;
        client
            .send_text(r#"["9","9","room:lobby2","phx_join","not-a-map"]"#)
            .await;
        assert_eq!(
            client.recv_text().await,
            r#"["9","9","room:lobby2","phx_reply",{"response":{},"status":"ok"}]"#
        );
        client
            .send_text(r#"["10","10","room:lobby3","phx_join",null]"#)
            .await;
        assert_eq!(
            client.recv_text().await,
            r#"["10","10","room:lobby3","phx_reply",{"response":{},"status":"ok"}]"#
        );
    }

    async fn new_msg_broadcasts_body_and_user_id_to_every_member_then_replies_ok(room) {
        let server = room.start();
        let mut a = server.client(42).await;
        let mut b = server.client(7).await;
        a.send_text(r#"["2","2","room:lobby","phx_join",{}]"#).await;
        a.recv_text().await;
        b.send_text(r#"["5","5","room:lobby","phx_join",{}]"#).await;
        b.recv_text().await;

        a.send_text(r#"["2","4","room:lobby","new_msg",{"body":"hi"}]"#)
            .await;
        // The sender sees the broadcast before its reply, as with Phoenix.
        assert_eq!(
            a.recv_text().await,
            r#"[null,null,"room:lobby","new_msg",{"body":"hi","user_id":42}]"#
        );
        assert_eq!(
            a.recv_text().await,
            r#"["2","4","room:lobby","phx_reply",{"response":{},"status":"ok"}]"#
        );
        assert_eq!(
            b.recv_text().await,
            r#"[null,null,"room:lobby","new_msg",{"body":"hi","user_id":42}]"#
        );
    }

    async fn new_msg_with_a_missing_or_non_string_body_replies_invalid_message_and_broadcasts_nothing(room) {
        let server = room.start();
        let mut a = server.client(42).await;
        let mut b = server.client(7).await;
        let ja = a.join_ok("room:lobby").await;
        b.join_ok("room:lobby").await;

        for payload in [json!({"body": 5}), json!({}), json!({"body": null}), json!("text")] {
            let reference = a.push(&ja, "room:lobby", "new_msg", payload).await;
            assert_eq!(
                a.recv().await,
                json!([ja, reference, "room:lobby", "phx_reply",
                       {"response": {"reason": "invalid message"}, "status": "error"}])
            );
        }
        b.expect_quiet().await;
    }

    async fn ping_replies_ok_with_the_payload_echoed(room) {
        let server = room.start();
        let mut a = server.client(42).await;
        a.send_text(r#"["2","2","room:lobby","phx_join",{}]"#).await;
        a.recv_text().await;
        let cases = [
            (
                r#"["2","3","room:lobby","ping",{"hello":"world","n":1}]"#,
                r#"["2","3","room:lobby","phx_reply",{"response":{"hello":"world","n":1},"status":"ok"}]"#,
            ),
            (
                r#"["2","6","room:lobby","ping","not-a-map"]"#,
                r#"["2","6","room:lobby","phx_reply",{"response":"not-a-map","status":"ok"}]"#,
            ),
            (
                r#"["2","61","room:lobby","ping",[1,2,3]]"#,
                r#"["2","61","room:lobby","phx_reply",{"response":[1,2,3],"status":"ok"}]"#,
            ),
            (
                r#"["2","62","room:lobby","ping",null]"#,
                r#"["2","62","room:lobby","phx_reply",{"response":null,"status":"ok"}]"#,
            ),
        ];
        for (push, reply) in cases {
            a.send_text(push).await;
            assert_eq!(a.recv_text().await, reply);
        }
    }

    async fn ping_echoes_a_binary_payload_as_a_binary_reply(room) {
        let server = room.start();
        let mut a = server.client(42).await;
        let join_ref = a.join_ok("room:lobby").await;
        // V2 binary push: kind 0, the sizes of join ref, ref, topic and
        // event, those four, then the payload bytes.
        let mut push = vec![0, join_ref.len() as u8, 1, 10, 4];
        push.extend_from_slice(format!("{join_ref}7room:lobbyping").as_bytes());
        push.extend_from_slice(&[0, 1, 2, 255]);
        a.send_binary(push).await;
        // V2 binary reply: kind 1, then join ref, ref, topic and status.
        let mut reply = vec![1, join_ref.len() as u8, 1, 10, 2];
        reply.extend_from_slice(format!("{join_ref}7room:lobbyok").as_bytes());
        reply.extend_from_slice(&[0, 1, 2, 255]);
        match a.next_message().await {
            Some(tokio_tungstenite::tungstenite::Message::Binary(bytes)) => assert_eq!(bytes.to_vec(), reply),
            other => panic!("expected a binary reply, got {other:?}"),
        }
    }

    async fn new_msg_reaches_members_on_v1_and_v2_sockets_alike(room) {
        let server = room.start();
        let mut v2 = server.client(42).await;
        let token = support::user_token(7);
        let mut v1 = support::Client::connect(&server.ws_url(&format!("token={token}&vsn=1.0.0")))
            .await
            .expect("v1 connects");
        let j2 = v2.join_ok("room:mixed").await;
        v1.send_text(r#"{"topic":"room:mixed","event":"phx_join","payload":{},"ref":"1","join_ref":"1"}"#)
            .await;
        assert_eq!(
            v1.recv_text().await,
            r#"{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":"1","topic":"room:mixed"}"#
        );
        v2.push(&j2, "room:mixed", "new_msg", json!({"body": "both"})).await;
        assert_eq!(
            v1.recv_text().await,
            r#"{"event":"new_msg","payload":{"body":"both","user_id":42},"ref":null,"topic":"room:mixed"}"#
        );
        assert_eq!(
            v2.recv().await,
            json!([null, null, "room:mixed", "new_msg", {"body": "both", "user_id": 42}])
        );
    }
}
