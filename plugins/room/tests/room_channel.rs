//! RoomChannel (`room:*`) through the plume-test harness: the real
//! component on the real runtime, in-process.

use plume_test::{Channel, Harness, Socket, json};

/// The room plugin behind the demo's socket plugin.
fn harness() -> Harness {
    Harness::builder().channel("room").socket("user_socket").build()
}

/// A socket for user `id`, connected with a UserSocket token.
fn user(harness: &Harness, id: i64) -> Socket {
    let token = harness.sign_token("user socket", json!(id));
    harness.connect(json!({"token": token})).expect("a valid token connects")
}

fn join_lobby(socket: &Socket) -> Channel {
    let (reply, lobby) = socket.subscribe_and_join("room:lobby", json!({})).expect("room:lobby is open");
    assert_eq!(reply, json!({}));
    lobby
}

#[test]
fn joining_room_lobby_replies_ok_with_an_empty_map() {
    let harness = harness();
    join_lobby(&user(&harness, 1));
}

#[test]
fn joining_room_private_is_refused_as_unauthorized() {
    let harness = harness();
    let refused = user(&harness, 1).subscribe_and_join("room:private", json!({})).err();
    assert_eq!(refused, Some(json!({"reason": "unauthorized"})));
}

#[test]
fn any_other_room_is_open() {
    let harness = harness();
    assert!(user(&harness, 1).subscribe_and_join("room:42", json!({})).is_ok());
}

#[test]
fn new_msg_replies_ok_and_broadcasts_the_body_with_the_user_id() {
    let harness = harness();
    let (ann, bob) = (user(&harness, 42), user(&harness, 7));
    let ann_lobby = join_lobby(&ann);
    let bob_lobby = join_lobby(&bob);

    let sent = ann_lobby.push("new_msg", json!({"body": "hi"}));
    ann_lobby.assert_reply(sent, "ok", json!({}));
    ann_lobby.assert_broadcast("new_msg", json!({"body": "hi", "user_id": 42}));
    ann_lobby.assert_push("new_msg", json!({"body": "hi", "user_id": 42}));
    bob_lobby.assert_push("new_msg", json!({"body": "hi", "user_id": 42}));
}

#[test]
fn new_msg_without_a_string_body_is_refused_and_nothing_is_broadcast() {
    let harness = harness();
    let lobby = join_lobby(&user(&harness, 1));
    for payload in [json!({}), json!({"body": 5}), json!("hi")] {
        let sent = lobby.push("new_msg", payload);
        lobby.assert_reply(sent, "error", json!({"reason": "invalid message"}));
    }
    lobby.refute_broadcast("new_msg", json!({}));
    lobby.refute_push("new_msg", json!({}));
}

#[test]
fn ping_echoes_its_payload_whatever_its_shape() {
    let harness = harness();
    let lobby = join_lobby(&user(&harness, 1));
    for payload in [json!({"n": 1}), json!("x"), json!([1, 2])] {
        let sent = lobby.push("ping", payload.clone());
        assert_eq!(lobby.assert_reply(sent, "ok", payload.clone()), payload);
    }
}

#[test]
fn a_crash_errors_the_channel_and_the_socket_lives_on() {
    let harness = harness();
    let socket = user(&harness, 1);
    let lobby = join_lobby(&socket);
    let other = socket.subscribe_and_join("room:other", json!({})).expect("joined").1;
    lobby.push("crash", json!({}));
    lobby.assert_push("phx_error", json!({}));
    let sent = other.push("ping", json!({"still": "here"}));
    other.assert_reply(sent, "ok", json!({"still": "here"}));
}

#[test]
fn leaving_replies_ok_then_closes_the_channel() {
    let harness = harness();
    let lobby = join_lobby(&user(&harness, 1));
    let left = lobby.leave();
    lobby.assert_reply(left, "ok", json!({}));
    lobby.assert_push("phx_close", json!({}));
}

#[test]
fn a_broadcast_from_another_socket_reaches_the_room() {
    let harness = harness();
    let (ann, bob) = (user(&harness, 1), user(&harness, 2));
    let ann_lobby = join_lobby(&ann);
    let bob_lobby = join_lobby(&bob);
    ann_lobby.broadcast_from("announcement", json!({"text": "welcome"}));
    bob_lobby.assert_push("announcement", json!({"text": "welcome"}));
    ann_lobby.refute_push("announcement", json!({}));
    ann_lobby.assert_broadcast("announcement", json!({"text": "welcome"}));
}
