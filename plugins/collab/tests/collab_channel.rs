//! CollabChannel (`collab:document:*`) through the plume-test harness:
//! presence metadata that follows cursors and typing.

use plume_test::{Channel, Harness, Socket, json};

fn harness() -> Harness {
    Harness::builder().route("collab:document:*", "collab", json!({})).socket("user_socket").build()
}

fn user(harness: &Harness, id: i64) -> Socket {
    let token = harness.sign_token("user socket", json!(id));
    harness.connect(json!({"token": token})).expect("a valid token connects")
}

fn join(socket: &Socket) -> Channel {
    socket.subscribe_and_join("collab:document:1", json!({})).expect("documents are open").1
}

#[test]
fn joining_tracks_the_user_with_an_empty_cursor() {
    let harness = harness();
    let doc = join(&user(&harness, 4));
    doc.assert_push(
        "presence_state",
        json!({"4": {"metas": [{"name": "user-4", "cursor_position": null, "typing": false}]}}),
    );
    assert_eq!(harness.presence("collab:document:1")["4"]["metas"][0]["typing"], false);
}

#[test]
fn a_moved_cursor_updates_the_meta_for_everyone() {
    let harness = harness();
    let ann = join(&user(&harness, 1));
    let bob = join(&user(&harness, 2));
    ann.push("cursor_moved", json!({"position": {"line": 3, "column": 7}}));
    bob.assert_push(
        "presence_diff",
        json!({"joins": {"1": {"metas": [{"cursor_position": {"line": 3, "column": 7}}]}}}),
    );
    let presence = harness.presence("collab:document:1");
    assert_eq!(presence["1"]["metas"][0]["cursor_position"], json!({"line": 3, "column": 7}));
}

#[test]
fn typing_updates_the_meta_with_when() {
    let harness = harness();
    let doc = join(&user(&harness, 1));
    doc.push("typing", json!({"typing": true}));
    doc.assert_broadcast("presence_diff", json!({"joins": {"1": {"metas": [{"typing": true}]}}}));
    let meta = &harness.presence("collab:document:1")["1"]["metas"][0];
    assert_eq!(meta["typing"], true);
    assert!(meta.get("typing_at").is_some(), "{meta}");
}
