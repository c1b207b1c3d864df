//! UserSocket through the plume-test harness: who may connect, and the
//! socket's assigns and id.

use std::time::Duration;

use plume_test::{Harness, json};

/// The socket plugin alone: `connect` and `id` need no channel.
fn harness() -> Harness {
    Harness::builder().socket("user_socket").build()
}

#[test]
fn a_valid_token_connects_with_the_user_as_assigns_and_id() {
    let harness = harness();
    let token = harness.sign_token("user socket", json!(42));
    let socket = harness.connect(json!({"token": token})).expect("connects");
    assert_eq!(socket.assigns(), &json!({"user": {"id": 42, "name": "user-42", "role": "user"}}));
    assert_eq!(socket.id(), Some("user_socket:42"));
}

#[test]
fn a_user_map_token_keeps_its_name_and_role() {
    let harness = harness();
    let token = harness.sign_token("user socket", json!({"id": 1, "name": "ada", "role": "admin"}));
    let socket = harness.connect(json!({"token": token})).expect("connects");
    assert_eq!(socket.assigns()["user"], json!({"id": 1, "name": "ada", "role": "admin"}));
}

#[test]
fn a_missing_forged_or_wrongly_salted_token_is_refused() {
    let harness = harness();
    let player_token = harness.sign_token("player", json!(1));
    for params in [json!({}), json!({"token": "forged"}), json!({"token": player_token})] {
        assert!(harness.connect(params.clone()).is_err(), "{params}");
    }
}

#[test]
fn a_token_older_than_a_day_is_refused() {
    let harness = harness();
    let token = harness.sign_token("user socket", json!(3));
    harness.advance(Duration::from_secs(86_400 + 1));
    assert!(harness.connect(json!({"token": token})).is_err());
}

#[test]
fn a_disconnect_broadcast_to_the_id_closes_every_socket_of_the_user() {
    let harness = harness();
    let token = harness.sign_token("user socket", json!(9));
    let tab1 = harness.connect(json!({"token": token})).expect("connects");
    let tab2 = harness.connect(json!({"token": token})).expect("connects");
    let other = harness
        .connect(json!({"token": harness.sign_token("user socket", json!(10))}))
        .expect("connects");
    harness.broadcast("user_socket:9", "disconnect", json!({}));
    assert_eq!(tab1.closed_by_server().map(|(code, _)| code), Some(1011));
    assert_eq!(tab2.closed_by_server().map(|(code, _)| code), Some(1011));
    assert_eq!(other.closed_by_server(), None);
}
