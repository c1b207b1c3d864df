//! ChatChannel (`chat:*`) through the plume-test harness: presence, the
//! message store, and the `user_joined` / `user_left` interceptors.

use std::time::Duration;

use plume_test::{Channel, Harness, Socket, json};

fn harness() -> Harness {
    Harness::builder().channel("chat").socket("user_socket").build()
}

/// A socket for user `id`, connected with a UserSocket token.
fn user(harness: &Harness, id: i64) -> Socket {
    let token = harness.sign_token("user socket", json!(id));
    harness.connect(json!({"token": token})).expect("a valid token connects")
}

/// Join `topic` as user `id` (the chat user is the join token's user).
fn join(harness: &Harness, socket: &Socket, topic: &str, id: i64) -> Channel {
    let token = harness.sign_token("user socket", json!(id));
    let (reply, channel) = socket.subscribe_and_join(topic, json!({"token": token})).expect("a valid join token joins");
    assert_eq!(reply, json!({}));
    channel
}

#[test]
fn join_with_an_invalid_token_is_refused_as_invalid_token() {
    let harness = harness();
    let socket = user(&harness, 1);
    let player_token = harness.sign_token("player", json!(1));
    for payload in [json!({"token": "nope"}), json!({}), json!({"token": player_token})] {
        let refused = socket.subscribe_and_join("chat:lobby", payload).err();
        assert_eq!(refused, Some(json!({"reason": "invalid_token"})));
    }
}

#[test]
fn after_joining_the_user_is_tracked_in_presence_and_pushed_the_state() {
    let harness = harness();
    harness.advance(Duration::from_secs(3600));
    let lobby = join(&harness, &user(&harness, 42), "chat:lobby", 42);

    let online_at = harness.now_ms() / 1000;
    lobby.assert_push("presence_state", json!({"42": {"metas": [{"name": "user-42", "online_at": online_at}]}}));
    lobby.assert_push("presence_diff", json!({"joins": {"42": {"metas": [{"name": "user-42"}]}}, "leaves": {}}));
    let presence = harness.presence("chat:lobby");
    assert_eq!(presence["42"]["metas"][0]["name"], "user-42");
    assert!(presence["42"]["metas"][0]["phx_ref"].is_string(), "{presence}");
}

#[test]
fn presence_joins_and_leaves_across_two_users() {
    let harness = harness();
    let ann = join(&harness, &user(&harness, 1), "chat:room", 1);
    ann.assert_push("presence_diff", json!({"joins": {"1": {}}}));

    let bob = join(&harness, &user(&harness, 2), "chat:room", 2);
    bob.assert_push("presence_state", json!({"1": {"metas": [{"name": "user-1"}]}, "2": {"metas": [{"name": "user-2"}]}}));
    ann.assert_push("presence_diff", json!({"joins": {"2": {"metas": [{"name": "user-2"}]}}, "leaves": {}}));
    ann.assert_push("user_joined", json!({"user_id": 2, "name": "user-2"}));

    let left = bob.leave();
    bob.assert_reply(left, "ok", json!({}));
    ann.assert_push("presence_diff", json!({"joins": {}, "leaves": {"2": {"metas": [{"name": "user-2"}]}}}));
    let user_left = ann.assert_push("user_left", json!({"user_id": 2}));
    assert_eq!(user_left["left_at"], json!(harness.now_ms() / 1000));
    assert_eq!(harness.presence("chat:room").as_object().map(|p| p.len()), Some(1));
}

#[test]
fn user_joined_is_not_pushed_to_the_joining_user() {
    let harness = harness();
    let lobby = join(&harness, &user(&harness, 7), "chat:hello", 7);
    lobby.assert_broadcast("user_joined", json!({"user_id": 7}));
    lobby.refute_push("user_joined", json!({}));
}

#[test]
fn new_message_is_trimmed_stored_broadcast_and_replied_with_its_id() {
    let harness = harness();
    let chat = join(&harness, &user(&harness, 42), "chat:msgs", 42);

    let sent = chat.push("new_message", json!({"message": "  hello  "}));
    let message = chat.assert_broadcast("new_message", json!({"content": "hello", "user": {"id": 42, "name": "user-42"}}));
    chat.assert_reply(sent, "ok", json!({"id": message["id"]}));
    assert!(message["inserted_at"].as_str().is_some_and(|at| at.ends_with('Z')), "{message}");

    let history = chat.push("history", json!({}));
    chat.assert_reply(history, "ok", json!({"messages": [{"content": "hello", "id": message["id"]}]}));
}

#[test]
fn blank_messages_are_refused_with_errors_and_nothing_is_broadcast() {
    let harness = harness();
    let chat = join(&harness, &user(&harness, 1), "chat:bad", 1);
    let blank = json!({"errors": {"content": ["can't be blank"]}});
    for payload in [json!({"message": "   "}), json!({"message": ""}), json!({})] {
        let sent = chat.push("new_message", payload);
        chat.assert_reply(sent, "error", blank.clone());
    }
    let sent = chat.push("new_message", json!({"message": "x".repeat(2001)}));
    chat.assert_reply(sent, "error", json!({"errors": {"content": ["should be at most 2000 character(s)"]}}));
    chat.refute_broadcast("new_message", json!({}));
    let history = chat.push("history", json!({}));
    chat.assert_reply(history, "ok", json!({"messages": []}));
}

#[test]
fn typing_is_broadcast_to_the_others_without_a_reply() {
    let harness = harness();
    let ann = join(&harness, &user(&harness, 1), "chat:typing", 1);
    let bob = join(&harness, &user(&harness, 2), "chat:typing", 2);
    let sent = ann.push("typing", json!({"typing": true}));
    bob.assert_push("user_typing", json!({"user_id": 1, "typing": true}));
    ann.refute_push("user_typing", json!({}));
    ann.refute_reply(sent, "ok", json!({}));
}

#[test]
fn delete_message_is_for_the_author_only() {
    let harness = harness();
    let author = join(&harness, &user(&harness, 1), "chat:del", 1);
    let other = join(&harness, &user(&harness, 2), "chat:del", 2);
    let sent = author.push("new_message", json!({"message": "mine"}));
    let id = author.assert_reply(sent, "ok", json!({}))["id"].clone();

    let denied = other.push("delete_message", json!({"message_id": id}));
    other.assert_reply(denied, "error", json!({"reason": "forbidden"}));
    let deleted = author.push("delete_message", json!({"message_id": id}));
    author.assert_reply(deleted, "ok", json!({}));
    other.assert_push("message_deleted", json!({"message_id": id}));
    let unknown = author.push("delete_message", json!({"message_id": "999"}));
    author.assert_reply(unknown, "error", json!({"reason": "not_found"}));
}
