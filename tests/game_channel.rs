//! GameChannel, topics `game:*` (docs/demo-app.md), over real sockets.

mod support;

use futures_util::future::join_all;
use serde_json::{Value, json};
use support::{Client, Server};

const ANN: (i64, &str) = (10, "ann");
const BOB: (i64, &str) = (11, "bob");

/// A player token for a user map, as the recorded Phoenix run used.
fn player_token((id, name): (i64, &str)) -> String {
    support::token("player", json!({"id": id, "name": name, "role": "user"}))
}

/// A connected client for the player, joined to `topic`; returns the
/// client, the join ref and the join's reply payload.
async fn join_game(server: &Server, topic: &str, player: (i64, &str)) -> (Client, String, Value) {
    let mut client = server.client(player.0).await;
    let (join_ref, reply) = client.join(topic, json!({"player_token": player_token(player)})).await;
    assert_eq!(reply[3], "phx_reply", "{reply}");
    assert_eq!(reply[4]["status"], "ok", "{reply}");
    (client, join_ref, reply[4]["response"].clone())
}

/// ann (X) and bob (O) in a game that is playing; the `player_joined` bob's
/// join sent to ann is consumed.
async fn two_players(server: &Server, topic: &str) -> ((Client, String), (Client, String)) {
    let (mut ann, ann_ref, _) = join_game(server, topic, ANN).await;
    let (bob, bob_ref, _) = join_game(server, topic, BOB).await;
    assert_eq!(ann.recv().await[3], "player_joined");
    ((ann, ann_ref), (bob, bob_ref))
}

fn empty_board() -> Value {
    json!([null, null, null, null, null, null, null, null, null])
}

#[tokio::test]
async fn join_with_an_invalid_player_token_is_refused_as_invalid_token() {
    let server = Server::start();
    let mut client = server.client(ANN.0).await;
    let expired = plume::token::Tokens::new(support::SECRET.as_bytes())
        .sign("player", &json!(10), now_ms() - 3_700_000, 86_400)
        .expect("sign");
    let payloads = [
        json!({"player_token": "bad"}),
        json!({"player_token": support::token("user socket", json!(10))}),
        json!({"player_token": expired}),
        json!({"player_token": 10}),
        json!({}),
        json!("not-a-map"),
    ];
    for payload in payloads {
        let (join_ref, reply) = client.join("game:g1", payload.clone()).await;
        assert_eq!(
            reply,
            json!([join_ref, join_ref, "game:g1", "phx_reply", {"response": {"reason": "invalid_token"}, "status": "error"}]),
            "{payload}"
        );
    }
    // None of them took a seat: the next two players start the game.
    let (_ann, _, first) = join_game(&server, "game:g1", ANN).await;
    assert_eq!(first["game"]["players"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn the_first_player_is_x_and_the_game_waits_for_a_second() {
    let server = Server::start();
    let mut ann = server.client(ANN.0).await;
    let join = json!(["2", "2", "game:g1795305022640", "phx_join", {"player_token": player_token(ANN)}]);
    ann.send(join).await;
    assert_eq!(
        ann.recv_text().await,
        r#"["2","2","game:g1795305022640","phx_reply",{"response":{"game":{"board":[null,null,null,null,null,null,null,null,null],"current_turn":null,"id":"g1795305022640","players":[{"id":10,"mark":"X","name":"ann","score":0}],"status":"waiting","winner":null}},"status":"ok"}]"#
    );
}

#[tokio::test]
async fn the_second_player_is_o_the_game_plays_with_x_to_move_and_the_others_get_player_joined() {
    let server = Server::start();
    let (mut ann, _, _) = join_game(&server, "game:g1795305022640", ANN).await;
    let mut bob = server.client(BOB.0).await;
    bob.send(json!(["1", "1", "game:g1795305022640", "phx_join", {"player_token": player_token(BOB)}]))
        .await;
    assert_eq!(
        bob.recv_text().await,
        r#"["1","1","game:g1795305022640","phx_reply",{"response":{"game":{"board":[null,null,null,null,null,null,null,null,null],"current_turn":10,"id":"g1795305022640","players":[{"id":10,"mark":"X","name":"ann","score":0},{"id":11,"mark":"O","name":"bob","score":0}],"status":"playing","winner":null}},"status":"ok"}]"#
    );
    assert_eq!(
        ann.recv_text().await,
        r#"[null,null,"game:g1795305022640","player_joined",{"player":{"id":11,"name":"bob"}}]"#
    );
    // broadcast_from: the joiner does not hear of itself.
    bob.expect_quiet().await;
}

#[tokio::test]
async fn a_player_token_for_a_bare_user_id_plays_as_user_n() {
    let server = Server::start();
    let mut client = server.client(12).await;
    let (_, reply) = client.join("game:g1", json!({"player_token": support::token("player", json!(12))})).await;
    assert_eq!(reply[4]["response"]["game"]["players"], json!([{"id": 12, "mark": "X", "name": "user-12", "score": 0}]));
}

#[tokio::test]
async fn a_third_player_gets_game_full() {
    let server = Server::start();
    let ((mut ann, _), (mut bob, bob_ref)) = two_players(&server, "game:g1").await;
    let mut carl = server.client(12).await;
    carl.send(json!(["1", "1", "game:g1", "phx_join", {"player_token": support::token("player", json!(12))}]))
        .await;
    assert_eq!(
        carl.recv_text().await,
        r#"["1","1","game:g1","phx_reply",{"response":{"reason":"game_full"},"status":"error"}]"#
    );
    // Refused: no phx_close, no player_joined, and the seats are as they were.
    carl.expect_quiet().await;
    ann.expect_quiet().await;
    let reference = bob.push(&bob_ref, "game:g1", "request_game_state", json!({})).await;
    let state = bob.recv().await;
    assert_eq!(state[1], json!(reference));
    assert_eq!(state[4]["response"]["game"]["players"].as_array().map(Vec::len), Some(2), "{state}");
}

#[tokio::test]
async fn rejoining_players_keep_their_seat_on_the_same_or_another_socket() {
    let server = Server::start();
    let ((mut ann, ann_ref), (mut bob, bob_ref)) = two_players(&server, "game:g1").await;
    bob.push(&bob_ref, "game:g1", "phx_leave", json!({})).await;
    assert_eq!(bob.recv().await[3], "phx_reply");
    assert_eq!(bob.recv().await[3], "phx_close");
    assert_eq!(ann.recv().await[3], "player_left");

    // bob comes back on the same socket, then in a new tab: still O.
    let (rejoin_ref, reply) = bob.join("game:g1", json!({"player_token": player_token(BOB)})).await;
    assert_eq!(reply[4]["status"], "ok", "{reply}");
    let players = &reply[4]["response"]["game"]["players"];
    assert_eq!(
        players,
        &json!([{"id": 10, "mark": "X", "name": "ann", "score": 0}, {"id": 11, "mark": "O", "name": "bob", "score": 0}])
    );
    let joined = json!([null, null, "game:g1", "player_joined", {"player": {"id": 11, "name": "bob"}}]);
    assert_eq!(ann.recv().await, joined);
    let (mut tab, _, second) = join_game(&server, "game:g1", BOB).await;
    assert_eq!(&second["game"]["players"], players);
    assert_eq!(ann.recv().await, joined);
    assert_eq!(bob.recv().await, joined);

    // And plays as O, in turn, from the rejoined channel.
    ann.push(&ann_ref, "game:g1", "make_move", json!({"move": {"cell": 4}})).await;
    for client in [&mut ann, &mut bob, &mut tab] {
        assert_eq!(client.recv().await[4]["move"]["cell"], 4);
    }
    bob.push(&rejoin_ref, "game:g1", "make_move", json!({"move": {"cell": 0}})).await;
    for client in [&mut ann, &mut bob, &mut tab] {
        let made = client.recv().await;
        assert_eq!(made[4]["player_id"], 11, "{made}");
        assert_eq!(made[4]["game"]["board"][0], "O", "{made}");
        assert_eq!(made[4]["game"]["current_turn"], 10, "{made}");
    }
}

#[tokio::test]
async fn make_move_is_checked_for_status_then_turn_then_cell() {
    let server = Server::start();
    let (mut ann, ann_ref, _) = join_game(&server, "game:g1", ANN).await;
    let error = |reference: &str, join_ref: &str, reason: &str| {
        json!([join_ref, reference, "game:g1", "phx_reply", {"response": {"reason": reason}, "status": "error"}])
    };

    // Waiting for a second player: not playing.
    let reference = ann.push(&ann_ref, "game:g1", "make_move", json!({"move": {"cell": 0}})).await;
    assert_eq!(ann.recv().await, error(&reference, &ann_ref, "invalid_move"));

    let (mut bob, bob_ref, _) = join_game(&server, "game:g1", BOB).await;
    assert_eq!(ann.recv().await[3], "player_joined");
    // Not bob's turn, even for a cell that does not exist.
    for cell in [json!(4), json!(99)] {
        let reference = bob.push(&bob_ref, "game:g1", "make_move", json!({"move": {"cell": cell}})).await;
        assert_eq!(bob.recv().await, error(&reference, &bob_ref, "not_your_turn"));
    }
    // ann's turn, but off the board or not a cell.
    for cell in [json!(9), json!(-1), json!(1.5), json!("4"), json!(null)] {
        let reference = ann.push(&ann_ref, "game:g1", "make_move", json!({"move": {"cell": cell}})).await;
        assert_eq!(ann.recv().await, error(&reference, &ann_ref, "invalid_move"), "cell {cell}");
    }
    // A taken cell.
    ann.push(&ann_ref, "game:g1", "make_move", json!({"move": {"cell": 0}})).await;
    assert_eq!(ann.recv().await[3], "move_made");
    assert_eq!(bob.recv().await[3], "move_made");
    let reference = bob.push(&bob_ref, "game:g1", "make_move", json!({"move": {"cell": 0}})).await;
    assert_eq!(bob.recv().await, error(&reference, &bob_ref, "invalid_move"));

    // None of the refused moves reached anyone or changed the board.
    ann.expect_quiet().await;
    let reference = bob.push(&bob_ref, "game:g1", "request_game_state", json!({})).await;
    let state = bob.recv().await;
    assert_eq!(state[1], json!(reference));
    assert_eq!(state[4]["response"]["game"]["board"], json!(["X", null, null, null, null, null, null, null, null]));
    assert_eq!(state[4]["response"]["game"]["current_turn"], 11);
}

#[tokio::test]
async fn make_move_with_a_payload_of_the_wrong_shape_is_an_invalid_payload_and_changes_nothing() {
    let server = Server::start();
    let ((mut ann, ann_ref), (mut bob, _)) = two_players(&server, "game:g1").await;
    for payload in [json!({}), json!({"move": 4}), json!({"cell": 4}), json!("move"), json!(null)] {
        let reference = ann.push(&ann_ref, "game:g1", "make_move", payload.clone()).await;
        assert_eq!(
            ann.recv().await,
            json!([ann_ref, reference, "game:g1", "phx_reply", {"response": {"reason": "invalid payload"}, "status": "error"}]),
            "{payload}"
        );
    }
    bob.expect_quiet().await;
    let reference = ann.push(&ann_ref, "game:g1", "request_game_state", json!({})).await;
    let state = ann.recv().await;
    assert_eq!(state[1], json!(reference));
    assert_eq!(state[4]["response"]["game"]["board"], empty_board());
    assert_eq!(state[4]["response"]["game"]["current_turn"], 10);
}

#[tokio::test]
async fn a_move_broadcasts_move_made_with_the_game_to_both_players_and_is_not_replied_to() {
    let server = Server::start();
    let topic = "game:g1795305022640";
    let ((mut ann, ann_ref), (mut bob, _)) = two_players(&server, topic).await;
    ann.send(json!([ann_ref, "5", topic, "make_move", {"move": {"cell": 0}}])).await;
    let made = r#"[null,null,"game:g1795305022640","move_made",{"game":{"board":["X",null,null,null,null,null,null,null,null],"current_turn":11,"id":"g1795305022640","players":[{"id":10,"mark":"X","name":"ann","score":0},{"id":11,"mark":"O","name":"bob","score":0}],"status":"playing","winner":null},"move":{"cell":0},"player_id":10}]"#;
    assert_eq!(ann.recv_text().await, made);
    assert_eq!(bob.recv_text().await, made);
    ann.expect_quiet().await;
}

#[tokio::test]
async fn a_winning_move_broadcasts_game_finished_with_the_winner_and_the_final_score() {
    let server = Server::start();
    let topic = "game:g1795305022640";
    let ((mut ann, ann_ref), (mut bob, bob_ref)) = two_players(&server, topic).await;
    for (x, o) in [(0, 3), (1, 4)] {
        ann.push(&ann_ref, topic, "make_move", json!({"move": {"cell": x}})).await;
        ann.recv().await;
        bob.recv().await;
        bob.push(&bob_ref, topic, "make_move", json!({"move": {"cell": o}})).await;
        ann.recv().await;
        bob.recv().await;
    }
    ann.push(&ann_ref, topic, "make_move", json!({"move": {"cell": 2}})).await;
    let made = r#"[null,null,"game:g1795305022640","move_made",{"game":{"board":["X","X","X","O","O",null,null,null,null],"current_turn":null,"id":"g1795305022640","players":[{"id":10,"mark":"X","name":"ann","score":1},{"id":11,"mark":"O","name":"bob","score":0}],"status":"finished","winner":10},"move":{"cell":2},"player_id":10}]"#;
    let finished = r#"[null,null,"game:g1795305022640","game_finished",{"final_score":{"10":1,"11":0},"winner":10}]"#;
    for client in [&mut ann, &mut bob] {
        assert_eq!(client.recv_text().await, made);
        assert_eq!(client.recv_text().await, finished);
    }
    // A finished game takes no more moves.
    let reference = bob.push(&bob_ref, topic, "make_move", json!({"move": {"cell": 5}})).await;
    assert_eq!(
        bob.recv().await,
        json!([bob_ref, reference, topic, "phx_reply", {"response": {"reason": "invalid_move"}, "status": "error"}])
    );
}

#[tokio::test]
async fn a_move_that_fills_the_board_finishes_the_game_as_a_draw() {
    let server = Server::start();
    let ((mut ann, ann_ref), (mut bob, bob_ref)) = two_players(&server, "game:g1").await;
    for (i, cell) in DRAW.into_iter().enumerate() {
        let (mover, join_ref) = if i % 2 == 0 { (&mut ann, &ann_ref) } else { (&mut bob, &bob_ref) };
        mover.push(join_ref, "game:g1", "make_move", json!({"move": {"cell": cell}})).await;
        assert_eq!(ann.recv().await[3], "move_made");
        assert_eq!(bob.recv().await[3], "move_made");
    }
    let finished = json!([null, null, "game:g1", "game_finished", {"final_score": {"10": 0, "11": 0}, "winner": null}]);
    assert_eq!(ann.recv().await, finished);
    assert_eq!(bob.recv().await, finished);
}

#[tokio::test]
async fn request_game_state_replies_the_game() {
    let server = Server::start();
    let ((mut ann, ann_ref), (mut bob, _)) = two_players(&server, "game:g1").await;
    ann.push(&ann_ref, "game:g1", "make_move", json!({"move": {"cell": 8}})).await;
    ann.recv().await;
    bob.recv().await;
    ann.send(json!([ann_ref, "8", "game:g1", "request_game_state", {}])).await;
    assert_eq!(
        ann.recv_text().await,
        format!(
            r#"["{ann_ref}","8","game:g1","phx_reply",{{"response":{{"game":{{"board":[null,null,null,null,null,null,null,null,"X"],"current_turn":11,"id":"g1","players":[{{"id":10,"mark":"X","name":"ann","score":0}},{{"id":11,"mark":"O","name":"bob","score":0}}],"status":"playing","winner":null}}}},"status":"ok"}}]"#
        )
    );
}

#[tokio::test]
async fn send_chat_broadcasts_chat_message_with_the_player_and_a_timestamp() {
    let server = Server::start();
    let ((mut ann, ann_ref), (mut bob, bob_ref)) = two_players(&server, "game:g1").await;
    let before = now_ms() / 1000;
    ann.push(&ann_ref, "game:g1", "send_chat", json!({"message": "gg"})).await;
    for client in [&mut ann, &mut bob] {
        let chat = client.recv().await;
        assert_eq!((&chat[0], &chat[1], &chat[2], &chat[3]), (&json!(null), &json!(null), &json!("game:g1"), &json!("chat_message")));
        let timestamp = chat[4]["timestamp"].as_u64().expect("unix seconds");
        assert!((before..=before + 5).contains(&timestamp), "{chat}");
        assert_eq!(chat[4], json!({"message": "gg", "player": {"id": 10, "name": "ann"}, "timestamp": timestamp}));
    }
    // No reply; a message that is not text is refused.
    ann.expect_quiet().await;
    let reference = bob.push(&bob_ref, "game:g1", "send_chat", json!({"message": 5})).await;
    assert_eq!(
        bob.recv().await,
        json!([bob_ref, reference, "game:g1", "phx_reply", {"response": {"reason": "invalid payload"}, "status": "error"}])
    );
    ann.expect_quiet().await;
}

#[tokio::test]
async fn leaving_broadcasts_player_left_to_the_others() {
    let server = Server::start();
    let ((mut ann, _), (mut bob, bob_ref)) = two_players(&server, "game:g1").await;
    bob.push(&bob_ref, "game:g1", "phx_leave", json!({})).await;
    assert_eq!(bob.recv().await[3], "phx_reply");
    assert_eq!(bob.recv().await, json!([bob_ref, bob_ref, "game:g1", "phx_close", {}]));
    assert_eq!(ann.recv_text().await, r#"[null,null,"game:g1","player_left",{"player_id":11}]"#);
    bob.expect_quiet().await;
}

#[tokio::test]
async fn disconnecting_abruptly_broadcasts_player_left_to_the_others() {
    let server = Server::start();
    let ((mut ann, _), (bob, _)) = two_players(&server, "game:g1").await;
    drop(bob);
    assert_eq!(ann.recv_text().await, r#"[null,null,"game:g1","player_left",{"player_id":11}]"#);
}

/// Moves that fill the board without a line, X first.
const DRAW: [u64; 9] = [0, 1, 2, 4, 3, 5, 7, 6, 8];

/// One socket of a player in the race test.
struct Seat {
    client: Client,
    join_ref: String,
    player: i64,
}

/// What one socket saw of one race.
#[derive(Default)]
struct Seen {
    refused: Option<String>,
    made: Option<Value>,
    finished: Option<Value>,
    state: Option<Value>,
}

/// Reads one socket's frames for a race until it has the state reply, the
/// `move_made` and (on the last move) `game_finished`; panics on anything
/// else, so a duplicated broadcast fails the race that sent it.
async fn observe(seat: &mut Seat, move_ref: &str, state_ref: &str, last: bool) -> Seen {
    let mut seen = Seen::default();
    while seen.state.is_none() || seen.made.is_none() || (last && seen.finished.is_none()) {
        let frame = seat.client.recv().await;
        let event = frame[3].as_str().unwrap_or_default();
        match (frame[1].as_str(), event) {
            (Some(r), "phx_reply") if r == move_ref && seen.refused.is_none() => {
                assert_eq!(frame[4]["status"], "error", "{frame}");
                seen.refused = frame[4]["response"]["reason"].as_str().map(str::to_owned);
            }
            (Some(r), "phx_reply") if r == state_ref => seen.state = Some(frame[4]["response"]["game"].clone()),
            (None, "move_made") if seen.made.is_none() => seen.made = Some(frame[4].clone()),
            (None, "game_finished") if last && seen.finished.is_none() => seen.finished = Some(frame[4].clone()),
            _ => panic!("unexpected frame in a race: {frame}"),
        }
    }
    seen
}

#[tokio::test]
async fn simultaneous_moves_race_and_exactly_one_wins_each_time_without_losing_or_duplicating_a_move() {
    let server = Server::start();
    for round in 0..40 {
        let topic = format!("game:race{round}");
        // Both players, each on four sockets: the player whose turn it is
        // races themselves, and the other player races them all. Hundreds of
        // races are needed: a store without compare-and-swap loses only a
        // few of them (a duplicated move_made), but it does lose some.
        let mut seats = Vec::new();
        for player in [ANN, BOB, ANN, BOB, ANN, BOB, ANN, BOB] {
            let (client, join_ref, _) = join_game(&server, &topic, player).await;
            seats.push(Seat { client, join_ref, player: player.0 });
        }
        for (i, seat) in seats.iter_mut().enumerate() {
            for _ in i + 1..8 {
                assert_eq!(seat.client.recv().await[3], "player_joined");
            }
        }

        let mut board = vec![Value::Null; 9];
        for (turn, cell) in DRAW.into_iter().enumerate() {
            let mover = if turn % 2 == 0 { ANN.0 } else { BOB.0 };
            let mark = if turn % 2 == 0 { "X" } else { "O" };
            let last = turn == DRAW.len() - 1;
            let move_refs = join_all(seats.iter_mut().map(|seat| {
                seat.client
                    .push(&seat.join_ref, &topic, "make_move", json!({"move": {"cell": cell}}))
            }))
            .await;
            let mut state_refs = Vec::new();
            for seat in &mut seats {
                state_refs.push(seat.client.push(&seat.join_ref, &topic, "request_game_state", json!({})).await);
            }
            let seen = join_all(
                seats
                    .iter_mut()
                    .zip(move_refs.iter().zip(&state_refs))
                    .map(|(seat, (move_ref, state_ref))| observe(seat, move_ref, state_ref, last)),
            )
            .await;

            let winners: Vec<i64> = seats
                .iter()
                .zip(&seen)
                .filter(|(_, seen)| seen.refused.is_none())
                .map(|(seat, _)| seat.player)
                .collect();
            assert_eq!(winners, [mover], "round {round} turn {turn}: exactly one move lands, the mover's");
            for seen in &seen {
                if let Some(reason) = &seen.refused {
                    assert!(reason == "invalid_move" || reason == "not_your_turn", "{reason}");
                }
            }
            board[cell as usize] = json!(mark);
            for seen in &seen {
                let made = seen.made.as_ref().expect("move_made");
                assert_eq!(made["player_id"], mover);
                assert_eq!(made["move"], json!({"cell": cell}));
                assert_eq!(made["game"]["board"], Value::Array(board.clone()), "round {round} turn {turn}");
                let state = seen.state.as_ref().expect("state");
                let marks = state["board"].as_array().map_or(0, |b| b.iter().filter(|c| !c.is_null()).count());
                assert!(marks == turn || marks == turn + 1, "a state between moves: {state}");
            }
        }
        for seat in &mut seats {
            let reference = seat.client.push(&seat.join_ref, &topic, "request_game_state", json!({})).await;
            let state = seat.client.recv().await;
            assert_eq!(state[1], json!(reference));
            let game = &state[4]["response"]["game"];
            assert_eq!(game["board"], Value::Array(board.clone()));
            assert_eq!(game["status"], "finished");
            assert_eq!(game["winner"], Value::Null);
        }
        for seat in &mut seats {
            seat.client.expect_quiet().await;
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}
