//! Work due when no channel is joined, on a real server: the poll of
//! `tests/plugins/poll` keeps its deadline in the key-value store, so it is
//! closed at its deadline even after every member left, and the members
//! still joined hear `closed` once (see the guide's "Deadlines that outlive
//! a channel").

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Client, Server};

/// The demo app with the poll plugin on `poll:*`.
fn start() -> Server {
    let config = support::demo_config_with(
        "[plugins.poll]\npath = \"{plugins}/poll.wasm\"\n\n[[routes]]\ntopic = \"poll:*\"\nplugin = \"poll\"\n",
    );
    Server::start_config(&config).expect("the server starts")
}

/// Push `event` and return its reply's payload.
async fn call(client: &mut Client, join_ref: &str, topic: &str, event: &str, payload: Value) -> Value {
    let reference = client.push(join_ref, topic, event, payload).await;
    loop {
        let frame = client.recv().await;
        if frame[3] == "phx_reply" && frame[1] == reference.as_str() {
            return frame[4].clone();
        }
    }
}

#[tokio::test]
async fn a_poll_closes_at_its_deadline_after_every_member_left() {
    let server = start();
    let mut creator = server.client(1).await;
    let (join_ref, reply) = creator.join("poll:left", json!({})).await;
    assert_eq!(reply[4]["response"], json!({"poll": null}), "{reply}");
    let created_at = Instant::now();
    let created = call(&mut creator, &join_ref, "poll:left", "create", json!({"options": ["tea", "coffee"], "duration_ms": 1500})).await;
    assert_eq!(created["response"]["closed"], json!(false), "{created}");
    let voted = call(&mut creator, &join_ref, "poll:left", "vote", json!({"option": "tea"})).await;
    assert_eq!(voted["status"], "ok", "{voted}");
    // The only member leaves: its channel, and the timer it set, are gone.
    let left = call(&mut creator, &join_ref, "poll:left", "phx_leave", json!({})).await;
    assert_eq!(left["status"], "ok", "{left}");
    drop(creator);

    // With nobody joined, the deadline passes: no code runs then.
    tokio::time::sleep((created_at + Duration::from_millis(1600)).saturating_duration_since(Instant::now())).await;

    // A latecomer finds the poll closed, with the vote cast before it.
    let mut latecomer = server.client(2).await;
    let (join_ref, reply) = latecomer.join("poll:left", json!({})).await;
    let poll = &reply[4]["response"]["poll"];
    assert_eq!(poll["closed"], json!(true), "{reply}");
    assert_eq!(poll["tally"], json!({"tea": 1, "coffee": 0}), "{reply}");
    let late = call(&mut latecomer, &join_ref, "poll:left", "vote", json!({"option": "coffee"})).await;
    assert_eq!(late, json!({"status": "error", "response": {"reason": "closed"}}));
}

#[tokio::test]
async fn the_members_still_joined_hear_closed_once_at_the_deadline() {
    let server = start();
    let mut creator = server.client(1).await;
    let mut member = server.client(2).await;
    let (creator_ref, _) = creator.join("poll:kept", json!({})).await;
    let created = call(&mut creator, &creator_ref, "poll:kept", "create", json!({"options": ["tea"], "duration_ms": 1000})).await;
    assert_eq!(created["status"], "ok", "{created}");
    let (_, reply) = member.join("poll:kept", json!({})).await;
    assert_eq!(reply[4]["response"]["poll"]["closed"], json!(false), "{reply}");

    for client in [&mut creator, &mut member] {
        let closed = client.recv().await;
        assert_eq!(
            (&closed[2], &closed[3], &closed[4]),
            (&json!("poll:kept"), &json!("closed"), &json!({"tally": {"tea": 0}})),
            "{closed}"
        );
        // Both timers fired; only the write that closed it broadcast.
        assert_eq!(client.recv_within(Duration::from_millis(500)).await, None);
    }
}
