//! GameChannel (`game:*`) through the plume-test harness: seats, turns,
//! and a game shared by two sockets through the key-value store.

use plume_test::{Channel, Harness, Socket, json};

const ANN: (i64, &str) = (10, "ann");
const BOB: (i64, &str) = (11, "bob");

fn harness() -> Harness {
    Harness::builder().channel("game").socket("user_socket").build()
}

/// A socket for the player, joined to `topic` with a player token.
fn join(harness: &Harness, topic: &str, (id, name): (i64, &str)) -> (Socket, Channel, plume_test::Value) {
    let socket = harness
        .connect(json!({"token": harness.sign_token("user socket", json!(id))}))
        .expect("a valid token connects");
    let token = harness.sign_token("player", json!({"id": id, "name": name, "role": "user"}));
    let (reply, channel) = socket.subscribe_and_join(topic, json!({"player_token": token})).expect("the player joins");
    (socket, channel, reply)
}

#[test]
fn the_first_player_waits_as_x() {
    let harness = harness();
    let (_socket, _game, reply) = join(&harness, "game:g1", ANN);
    assert_eq!(
        reply,
        json!({"game": {
            "id": "g1",
            "status": "waiting",
            "players": [{"id": 10, "name": "ann", "score": 0, "mark": "X"}],
            "current_turn": null,
            "board": [null, null, null, null, null, null, null, null, null],
            "winner": null
        }})
    );
}

#[test]
fn the_second_player_starts_the_game_and_is_announced_to_the_first() {
    let harness = harness();
    let (_ann_socket, ann, _) = join(&harness, "game:g1", ANN);
    let (_bob_socket, bob, reply) = join(&harness, "game:g1", BOB);
    assert_eq!(reply["game"]["status"], "playing");
    assert_eq!(reply["game"]["current_turn"], 10);
    ann.assert_push("player_joined", json!({"player": {"id": 11, "name": "bob"}}));
    bob.refute_push("player_joined", json!({}));
}

#[test]
fn a_third_player_is_refused_as_game_full() {
    let harness = harness();
    let _ann = join(&harness, "game:g1", ANN);
    let _bob = join(&harness, "game:g1", BOB);
    let socket = harness
        .connect(json!({"token": harness.sign_token("user socket", json!(12))}))
        .expect("connects");
    let token = harness.sign_token("player", json!({"id": 12, "name": "cy", "role": "user"}));
    let refused = socket.subscribe_and_join("game:g1", json!({"player_token": token})).err();
    assert_eq!(refused, Some(json!({"reason": "game_full"})));
}

#[test]
fn an_invalid_player_token_is_refused() {
    let harness = harness();
    let socket = harness
        .connect(json!({"token": harness.sign_token("user socket", json!(10))}))
        .expect("connects");
    let user_token = harness.sign_token("user socket", json!(10));
    for payload in [json!({"player_token": "bad"}), json!({"player_token": user_token}), json!({})] {
        let refused = socket.subscribe_and_join("game:g1", payload).err();
        assert_eq!(refused, Some(json!({"reason": "invalid_token"})));
    }
}

#[test]
fn moves_are_checked_in_order_and_broadcast() {
    let harness = harness();
    let (_a, ann, _) = join(&harness, "game:g2", ANN);
    let (_b, bob, _) = join(&harness, "game:g2", BOB);

    let early = bob.push("make_move", json!({"move": {"cell": 0}}));
    bob.assert_reply(early, "error", json!({"reason": "not_your_turn"}));
    let out_of_range = ann.push("make_move", json!({"move": {"cell": 9}}));
    ann.assert_reply(out_of_range, "error", json!({"reason": "invalid_move"}));

    let played = ann.push("make_move", json!({"move": {"cell": 4}}));
    bob.assert_push("move_made", json!({"player_id": 10, "move": {"cell": 4}, "game": {"current_turn": 11}}));
    ann.refute_reply(played, "ok", json!({}));
    let taken = bob.push("make_move", json!({"move": {"cell": 4}}));
    bob.assert_reply(taken, "error", json!({"reason": "invalid_move"}));
}

#[test]
fn a_winning_move_finishes_the_game_with_the_score() {
    let harness = harness();
    let (_a, ann, _) = join(&harness, "game:g3", ANN);
    let (_b, bob, _) = join(&harness, "game:g3", BOB);
    // Each move is seen before the next is made: pushes on two sockets are
    // not ordered with each other until something waits on them.
    for (channel, cell) in [(&ann, 0), (&bob, 3), (&ann, 1), (&bob, 4), (&ann, 2)] {
        channel.push("make_move", json!({"move": {"cell": cell}}));
        channel.assert_push("move_made", json!({"move": {"cell": cell}}));
    }
    bob.assert_push("game_finished", json!({"winner": 10, "final_score": {"10": 1, "11": 0}}));
    let state = bob.push("request_game_state", json!({}));
    bob.assert_reply(state, "ok", json!({"game": {"status": "finished", "winner": 10}}));
}

#[test]
fn player_left_is_broadcast_when_a_game_socket_closes() {
    let harness = harness();
    let (_ann_socket, ann, _) = join(&harness, "game:g4", ANN);
    let (bob_socket, _bob, _) = join(&harness, "game:g4", BOB);
    ann.assert_push("player_joined", json!({}));

    bob_socket.close();
    ann.assert_push("player_left", json!({"player_id": 11}));
    ann.assert_broadcast("player_left", json!({"player_id": 11}));
}

#[test]
fn send_chat_is_broadcast_with_the_player_and_a_timestamp() {
    let harness = harness();
    let (_a, ann, _) = join(&harness, "game:g5", ANN);
    ann.push("send_chat", json!({"message": "gl"}));
    ann.assert_push(
        "chat_message",
        json!({"player": {"id": 10, "name": "ann"}, "message": "gl", "timestamp": harness.now_ms() / 1000}),
    );
}
