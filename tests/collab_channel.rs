//! CollabChannel, topics `collab:document:*` (docs/demo-app.md):
//! presence metadata updates, over real sockets.

mod support;

use serde_json::{Value, json};
use support::{Client, Server};

fn user_token(id: i64, name: &str) -> String {
    support::token("user socket", json!({"id": id, "name": name, "role": "user"}))
}

async fn connect(server: &Server, id: i64, name: &str) -> Client {
    Client::connect(&server.ws_url(&format!("token={}&vsn=2.0.0", user_token(id, name))))
        .await
        .expect("connects")
}

/// Join and collect the joiner's presence_state (and skip its own diff).
async fn join(client: &mut Client, topic: &str) -> (String, Value) {
    let join_ref = client.join_ok(topic).await;
    let mut state = None;
    let mut diff = false;
    while state.is_none() || !diff {
        let frame = client.recv().await;
        match frame[3].as_str() {
            Some("presence_state") => state = Some(frame[4].clone()),
            Some("presence_diff") => diff = true,
            _ => panic!("unexpected {frame}"),
        }
    }
    (join_ref, state.unwrap_or_default())
}

async fn next_diff(client: &mut Client) -> Value {
    loop {
        let frame = client.recv().await;
        if frame[3] == "presence_diff" {
            assert_eq!(frame[0], Value::Null);
            return frame[4].clone();
        }
    }
}

#[tokio::test]
async fn join_tracks_the_user_with_a_null_cursor_and_pushes_presence_state() {
    let server = Server::start();
    let mut ann = connect(&server, 10, "ann").await;
    let (_, state) = join(&mut ann, "collab:document:d1").await;
    let meta = &state["10"]["metas"][0];
    assert_eq!(meta["name"], "ann");
    assert_eq!(meta["cursor_position"], Value::Null);
    assert_eq!(meta["typing"], false);
    assert!(meta["online_at"].is_i64());
    let keys: Vec<&String> = meta.as_object().expect("meta").keys().collect();
    assert_eq!(keys, ["cursor_position", "name", "online_at", "phx_ref", "typing"]);
}

#[tokio::test]
async fn cursor_moved_updates_the_meta_and_every_client_receives_the_diff() {
    let server = Server::start();
    let mut ann = connect(&server, 10, "ann").await;
    let mut bob = connect(&server, 11, "bob").await;
    let (ja, state) = join(&mut ann, "collab:document:d2").await;
    let first_ref = state["10"]["metas"][0]["phx_ref"].clone();
    join(&mut bob, "collab:document:d2").await;
    next_diff(&mut ann).await; // bob's join

    ann.push(&ja, "collab:document:d2", "cursor_moved", json!({"position": {"line": 3, "ch": 7}})).await;
    for client in [&mut ann, &mut bob] {
        let diff = next_diff(client).await;
        let joined = &diff["joins"]["10"]["metas"][0];
        assert_eq!(joined["cursor_position"], json!({"ch": 7, "line": 3}));
        assert_eq!(joined["phx_ref_prev"], first_ref);
        assert_eq!(diff["leaves"]["10"]["metas"][0]["cursor_position"], Value::Null);
        assert_eq!(diff["leaves"]["10"]["metas"][0]["phx_ref"], first_ref);
    }
}

#[tokio::test]
async fn typing_updates_the_meta_with_typing_and_typing_at() {
    let server = Server::start();
    let mut ann = connect(&server, 10, "ann").await;
    let mut bob = connect(&server, 11, "bob").await;
    let (ja, _) = join(&mut ann, "collab:document:d3").await;
    join(&mut bob, "collab:document:d3").await;
    ann.push(&ja, "collab:document:d3", "cursor_moved", json!({"position": 5})).await;
    next_diff(&mut bob).await;
    ann.push(&ja, "collab:document:d3", "typing", json!({"typing": true})).await;
    let diff = next_diff(&mut bob).await;
    let joined = &diff["joins"]["10"]["metas"][0];
    assert_eq!(joined["typing"], true);
    assert_eq!(joined["cursor_position"], 5, "the cursor is kept");
    assert!(joined["typing_at"].is_i64());
    assert_eq!(diff["leaves"]["10"]["metas"][0]["typing"], false);
}

#[tokio::test]
async fn a_member_that_disconnects_leaves_the_presence() {
    let server = Server::start();
    let mut ann = connect(&server, 10, "ann").await;
    let mut bob = connect(&server, 11, "bob").await;
    join(&mut ann, "collab:document:d4").await;
    join(&mut bob, "collab:document:d4").await;
    drop(ann);
    let diff = next_diff(&mut bob).await;
    assert_eq!(diff["joins"], json!({}));
    assert_eq!(diff["leaves"]["10"]["metas"][0]["name"], "ann");
}
