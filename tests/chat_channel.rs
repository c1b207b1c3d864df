//! ChatChannel, topics `chat:*`, and its interceptors
//! (docs/demo-app.md), over real sockets.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Client, Server};

/// Join `topic` with a chat token for `user`; returns the join ref after
/// the reply, the joiner's own `presence_diff` and its `presence_state`
/// (in either order, as with Phoenix). Returns (join_ref, presence_state).
async fn join_chat(client: &mut Client, topic: &str, user: i64) -> (String, Value) {
    let (join_ref, reply) = client.join(topic, json!({"token": support::user_token(user)})).await;
    assert_eq!(reply, json!([join_ref, join_ref, topic, "phx_reply", {"response": {}, "status": "ok"}]));
    let mut state = None;
    let mut own_diff = false;
    while state.is_none() || !own_diff {
        let frame = client.recv().await;
        match frame[3].as_str() {
            Some("presence_state") => {
                assert_eq!(frame[0], join_ref.as_str(), "presence_state is a push: {frame}");
                assert_eq!(frame[1], Value::Null);
                state = Some(frame[4].clone());
            }
            Some("presence_diff") if frame[4]["joins"].get(user.to_string()).is_some() => {
                assert_eq!(frame[0], Value::Null, "presence_diff is a broadcast: {frame}");
                own_diff = true;
            }
            _ => panic!("unexpected frame while joining: {frame}"),
        }
    }
    (join_ref, state.unwrap_or_default())
}

/// The next frame with `event`, skipping presence diffs and other events.
async fn next_event(client: &mut Client, event: &str) -> Value {
    loop {
        let frame = client.recv().await;
        if frame[3] == event {
            return frame;
        }
    }
}

fn metas(state: &Value, key: &str) -> Vec<Value> {
    state[key]["metas"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn join_with_an_invalid_token_is_refused_invalid_token() {
    let server = Server::start();
    let mut c = server.client(42).await;
    for payload in [json!({"token": "nope"}), json!({}), json!({"token": support::token("player", json!(42))})] {
        let (join_ref, reply) = c.join("chat:lobby", payload).await;
        assert_eq!(
            reply,
            json!([join_ref, join_ref, "chat:lobby", "phx_reply", {"response": {"reason": "invalid_token"}, "status": "error"}])
        );
    }
    c.expect_quiet().await;
}

#[tokio::test]
async fn the_chat_user_is_the_user_of_the_join_token_not_the_socket() {
    let server = Server::start();
    let mut c = server.client(1).await;
    let (_, state) = join_chat(&mut c, "chat:who", 77).await;
    assert_eq!(metas(&state, "77")[0]["name"], "user-77");
    assert!(state.get("1").is_none());
}

#[tokio::test]
async fn presence_across_three_users_in_the_phoenix_js_format() {
    let server = Server::start();
    let (mut a, mut b, mut c) = (server.client(1).await, server.client(2).await, server.client(3).await);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let (_, state_a) = join_chat(&mut a, "chat:three", 1).await;
    assert_eq!(state_a.as_object().map(|o| o.len()), Some(1));
    let meta = &metas(&state_a, "1")[0];
    assert_eq!(meta["name"], "user-1");
    assert!((meta["online_at"].as_i64().expect("online_at") - before).abs() <= 2);
    assert_eq!(meta["phx_ref"].as_str().map(str::len), Some(16));
    assert_eq!(meta.as_object().map(|o| o.len()), Some(3), "name, online_at, phx_ref: {meta}");

    join_chat(&mut b, "chat:three", 2).await;
    let (_, state_c) = join_chat(&mut c, "chat:three", 3).await;
    let keys: Vec<&String> = state_c.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["1", "2", "3"]);
    // Earlier members saw the later joins as diffs.
    let diff = next_event(&mut a, "presence_diff").await;
    assert!(diff[4]["joins"].get("2").is_some(), "{diff}");
    let diff = next_event(&mut a, "presence_diff").await;
    assert!(diff[4]["joins"].get("3").is_some(), "{diff}");
    assert_eq!(diff[4]["leaves"], json!({}));
}

#[tokio::test]
async fn two_tabs_of_one_user_have_two_metas_under_one_key() {
    let server = Server::start();
    let mut tab1 = server.client(42).await;
    let mut tab2 = server.client(42).await;
    join_chat(&mut tab1, "chat:tabs", 42).await;
    let (_, state) = join_chat(&mut tab2, "chat:tabs", 42).await;
    let metas = metas(&state, "42");
    assert_eq!(metas.len(), 2, "{state}");
    assert_ne!(metas[0]["phx_ref"], metas[1]["phx_ref"]);
}

#[tokio::test]
async fn user_joined_is_hidden_from_every_tab_of_the_joining_user() {
    let server = Server::start();
    let mut tab1 = server.client(42).await;
    let mut other = server.client(7).await;
    let (j1, _) = join_chat(&mut tab1, "chat:hello", 42).await;
    let (jo, _) = join_chat(&mut other, "chat:hello", 7).await;
    // tab1 hears user 7 join, pushed with its own join_ref (intercepted).
    assert_eq!(
        next_event(&mut tab1, "user_joined").await,
        json!([j1, null, "chat:hello", "user_joined", {"name": "user-7", "user_id": 7}])
    );
    let mut tab2 = server.client(42).await;
    join_chat(&mut tab2, "chat:hello", 42).await;
    assert_eq!(
        next_event(&mut other, "user_joined").await,
        json!([jo, null, "chat:hello", "user_joined", {"name": "user-42", "user_id": 42}])
    );
    // Neither tab of user 42 hears of its own second join (nor user 7 of its own).
    tab1.send_text(r#"[null,"hb","phoenix","heartbeat",{}]"#).await;
    loop {
        let frame = tab1.recv().await;
        assert_ne!(frame[3], "user_joined", "{frame}");
        if frame[1] == "hb" {
            break;
        }
    }
    tab2.send_text(r#"[null,"hb","phoenix","heartbeat",{}]"#).await;
    loop {
        let frame = tab2.recv().await;
        assert_ne!(frame[3], "user_joined", "{frame}");
        if frame[1] == "hb" {
            break;
        }
    }
}

#[tokio::test]
async fn leaving_removes_the_meta_and_user_left_carries_left_at() {
    let server = Server::start();
    let mut a = server.client(42).await;
    let mut b = server.client(7).await;
    let (ja, _) = join_chat(&mut a, "chat:leave", 42).await;
    let (jb, _) = join_chat(&mut b, "chat:leave", 7).await;
    b.send(json!([jb, "9", "chat:leave", "phx_leave", {}])).await;
    let started = std::time::Instant::now();
    let user_left = next_event(&mut a, "user_left").await;
    assert_eq!(user_left[0], ja.as_str(), "user_left is intercepted: a push");
    assert_eq!(user_left[4]["user_id"], 7);
    let left_at = user_left[4]["left_at"].as_i64().expect("left_at");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
    assert!((now - left_at).abs() <= 2);
    let diff = next_event(&mut a, "presence_diff").await;
    assert_eq!(diff[4]["joins"], json!({}));
    assert_eq!(diff[4]["leaves"]["7"]["metas"][0]["name"], "user-7");
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn an_abrupt_disconnect_removes_the_meta_within_a_second() {
    let server = Server::start();
    let mut a = server.client(42).await;
    let mut b = server.client(7).await;
    join_chat(&mut a, "chat:drop", 42).await;
    join_chat(&mut b, "chat:drop", 7).await;
    drop(b);
    let started = std::time::Instant::now();
    let user_left = next_event(&mut a, "user_left").await;
    assert_eq!(user_left[4]["user_id"], 7);
    assert!(user_left[4]["left_at"].is_i64());
    let diff = next_event(&mut a, "presence_diff").await;
    assert!(diff[4]["leaves"].get("7").is_some(), "{diff}");
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn new_message_is_trimmed_stored_broadcast_and_replied_with_its_id() {
    let server = Server::start();
    let mut a = server.client(42).await;
    let mut b = server.client(7).await;
    let (ja, _) = join_chat(&mut a, "chat:msgs", 42).await;
    join_chat(&mut b, "chat:msgs", 7).await;
    let reference = a.push(&ja, "chat:msgs", "new_message", json!({"message": "  hello  "})).await;
    let broadcast = next_event(&mut a, "new_message").await;
    assert_eq!(broadcast[0], Value::Null);
    let message = &broadcast[4];
    assert_eq!(message["content"], "hello");
    assert_eq!(message["id"], "1");
    assert_eq!(message["user"], json!({"id": 42, "name": "user-42"}));
    let inserted_at = message["inserted_at"].as_str().expect("inserted_at");
    assert_eq!(inserted_at.len(), 20, "{inserted_at}");
    assert!(inserted_at.ends_with('Z') && inserted_at.as_bytes()[10] == b'T');
    assert_eq!(
        a.recv().await,
        json!([ja, reference, "chat:msgs", "phx_reply", {"response": {"id": "1"}, "status": "ok"}])
    );
    assert_eq!(next_event(&mut b, "new_message").await[4], *message);
    a.push(&ja, "chat:msgs", "new_message", json!({"message": "second"})).await;
    assert_eq!(next_event(&mut a, "new_message").await[4]["id"], "2");
}

#[tokio::test]
async fn new_message_blank_or_over_2000_characters_is_refused_with_errors() {
    let server = Server::start();
    let mut a = server.client(42).await;
    let mut b = server.client(7).await;
    let (ja, _) = join_chat(&mut a, "chat:bad", 42).await;
    join_chat(&mut b, "chat:bad", 7).await;
    let cases = [
        (json!({"message": "   "}), json!({"errors": {"content": ["can't be blank"]}})),
        (json!({}), json!({"errors": {"content": ["can't be blank"]}})),
        (json!({"message": "x".repeat(2001)}), json!({"errors": {"content": ["should be at most 2000 character(s)"]}})),
    ];
    for (payload, errors) in cases {
        let reference = a.push(&ja, "chat:bad", "new_message", payload).await;
        assert_eq!(
            next_event(&mut a, "phx_reply").await,
            json!([ja, reference, "chat:bad", "phx_reply", {"response": errors, "status": "error"}])
        );
    }
    let reference = a.push(&ja, "chat:bad", "history", json!({})).await;
    assert_eq!(
        next_event(&mut a, "phx_reply").await,
        json!([ja, reference, "chat:bad", "phx_reply", {"response": {"messages": []}, "status": "ok"}])
    );
    b.expect_quiet().await;
    // 2000 characters (of two bytes each) is the most that is accepted.
    let reference = a.push(&ja, "chat:bad", "new_message", json!({"message": "é".repeat(2000)})).await;
    let reply = next_event(&mut a, "phx_reply").await;
    assert_eq!(reply[1], reference.as_str());
    assert_eq!(reply[4]["status"], "ok");
}

#[tokio::test]
async fn history_returns_the_last_50_messages_oldest_first_and_outlives_the_channel() {
    let server = Server::start();
    let mut a = server.client(42).await;
    let (ja, _) = join_chat(&mut a, "chat:hist", 42).await;
    for i in 1..=55 {
        a.push(&ja, "chat:hist", "new_message", json!({"message": format!("m{i}")})).await;
        next_event(&mut a, "phx_reply").await;
    }
    drop(a);
    let mut later = server.client(7).await;
    let (jl, _) = join_chat(&mut later, "chat:hist", 7).await;
    let reference = later.push(&jl, "chat:hist", "history", json!({})).await;
    let reply = loop {
        let frame = later.recv().await;
        if frame[1] == reference.as_str() {
            break frame;
        }
    };
    let messages = reply[4]["response"]["messages"].as_array().expect("messages").clone();
    assert_eq!(messages.len(), 50);
    assert_eq!(messages[0]["content"], "m6");
    assert_eq!(messages[49]["content"], "m55");
    assert_eq!(messages[49]["id"], "55");
}

#[tokio::test]
async fn delete_message_is_for_the_author_only() {
    let server = Server::start();
    let mut author = server.client(42).await;
    let mut other = server.client(7).await;
    let (ja, _) = join_chat(&mut author, "chat:del", 42).await;
    let (jo, _) = join_chat(&mut other, "chat:del", 7).await;
    author.push(&ja, "chat:del", "new_message", json!({"message": "mine"})).await;
    next_event(&mut author, "phx_reply").await;

    let reference = other.push(&jo, "chat:del", "delete_message", json!({"message_id": "1"})).await;
    let reply = next_event(&mut other, "phx_reply").await;
    assert_eq!(reply, json!([jo, reference, "chat:del", "phx_reply", {"response": {"reason": "forbidden"}, "status": "error"}]));

    let reference = author.push(&ja, "chat:del", "delete_message", json!({"message_id": "1"})).await;
    assert_eq!(next_event(&mut author, "message_deleted").await, json!([null, null, "chat:del", "message_deleted", {"message_id": "1"}]));
    assert_eq!(
        author.recv().await,
        json!([ja, reference, "chat:del", "phx_reply", {"response": {}, "status": "ok"}])
    );
    assert_eq!(next_event(&mut other, "message_deleted").await[4], json!({"message_id": "1"}));

    let reference = author.push(&ja, "chat:del", "delete_message", json!({"message_id": "999"})).await;
    assert_eq!(
        author.recv().await,
        json!([ja, reference, "chat:del", "phx_reply", {"response": {"reason": "not_found"}, "status": "error"}])
    );
}

#[tokio::test]
async fn typing_is_broadcast_to_the_others_and_not_echoed_to_the_sender() {
    let server = Server::start();
    let mut a = server.client(42).await;
    let mut b = server.client(7).await;
    let (ja, _) = join_chat(&mut a, "chat:typing", 42).await;
    join_chat(&mut b, "chat:typing", 7).await;
    a.push(&ja, "chat:typing", "typing", json!({"typing": true})).await;
    assert_eq!(
        next_event(&mut b, "user_typing").await,
        json!([null, null, "chat:typing", "user_typing", {"typing": true, "user_id": 42}])
    );
    // No reply and no echo: the next thing the sender sees is its heartbeat.
    a.send_text(r#"[null,"hb","phoenix","heartbeat",{}]"#).await;
    loop {
        let frame = a.recv().await;
        assert_ne!(frame[3], "user_typing", "{frame}");
        assert_ne!(frame[1], json!(ja), "typing is not replied to: {frame}");
        if frame[1] == "hb" {
            break;
        }
    }
}

#[tokio::test]
async fn a_coalescing_window_merges_a_join_storm_into_few_diffs() {
    let config = support::demo_config_with("[limits]\npresence_coalesce_ms = 300");
    let server = Server::start_config(&config).expect("starts");
    let mut observer = server.client(1).await;
    let (jo, reply) = observer.join("chat:storm", json!({"token": support::user_token(1)})).await;
    assert_eq!(reply[4]["status"], "ok");
    let mut members = Vec::new();
    for user in 2..=7 {
        let mut member = server.client(user).await;
        let (_, reply) = member.join("chat:storm", json!({"token": support::user_token(user)})).await;
        assert_eq!(reply[4]["status"], "ok");
        members.push(member);
    }
    let mut diffs = 0;
    let mut joined = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while joined.len() < 7 && std::time::Instant::now() < deadline {
        let frame = observer.recv().await;
        if frame[3] == "presence_diff" {
            diffs += 1;
            joined.extend(frame[4]["joins"].as_object().expect("joins").keys().cloned());
        }
    }
    assert_eq!(joined.len(), 7, "every join arrives: {joined:?}");
    assert!(diffs < 7, "7 joins went out in {diffs} diffs");
    assert!(!jo.is_empty());
}
