//! Several plume nodes acting as one server over a real Redis: clients on
//! different nodes see each other's broadcasts and presences, and the
//! cluster survives a node dying and Redis restarting.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::redis::{Redis, RedisCluster};
use support::{Client, Server};

/// Join `topic` on chat, returning (join_ref, presence_state) after the
/// reply, the state and the joiner's own diff (in either order).
async fn join_chat(client: &mut Client, topic: &str, user: i64) -> (String, Value) {
    let (join_ref, reply) = client.join(topic, json!({"token": support::user_token(user)})).await;
    assert_eq!(reply, json!([join_ref, join_ref, topic, "phx_reply", {"response": {}, "status": "ok"}]));
    let mut state = None;
    let mut own_diff = false;
    while state.is_none() || !own_diff {
        let frame = client.recv().await;
        match frame[3].as_str() {
            Some("presence_state") => state = Some(frame[4].clone()),
            Some("presence_diff") if frame[4]["joins"].get(user.to_string()).is_some() => own_diff = true,
            _ => {}
        }
    }
    (join_ref, state.unwrap_or_default())
}

/// Wait until `client`'s view of a topic's presence (its `presence_state`
/// `state`, then the diffs it receives) holds exactly `expected` keys.
/// Presence across nodes is eventually consistent, as Phoenix.Tracker's:
/// a member that joined on another node a moment ago may reach a joiner's
/// state, or the diff that follows it.
async fn presence_settles(client: &mut Client, state: &Value, expected: &[&str]) {
    let mut keys: std::collections::BTreeSet<String> = state.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    let started = Instant::now();
    loop {
        if keys.iter().map(String::as_str).eq(expected.iter().copied()) {
            return;
        }
        let remaining = Duration::from_secs(5).saturating_sub(started.elapsed());
        let Some(frame) = client.recv_within(remaining).await else {
            panic!("presence never settled on {expected:?}: {keys:?} (state {state})");
        };
        if frame[3] == "presence_diff" {
            for key in frame[4]["joins"].as_object().into_iter().flat_map(|o| o.keys()) {
                keys.insert(key.clone());
            }
            for key in frame[4]["leaves"].as_object().into_iter().flat_map(|o| o.keys()) {
                keys.remove(key);
            }
        }
    }
}

/// The next frame with `event`, skipping others.
async fn next_event(client: &mut Client, event: &str) -> Value {
    loop {
        let frame = client.recv().await;
        if frame[3] == event {
            return frame;
        }
    }
}

/// The next frame with `event`, skipping others, waiting up to `patience`.
async fn next_event_within(client: &mut Client, event: &str, patience: Duration) -> Value {
    let started = Instant::now();
    loop {
        let remaining = patience.saturating_sub(started.elapsed());
        let frame = client
            .recv_within(remaining)
            .await
            .unwrap_or_else(|| panic!("no {event} within {patience:?}"));
        if frame[3] == event {
            return frame;
        }
    }
}

#[tokio::test]
async fn a_room_broadcast_reaches_subscribers_on_every_node_exactly_once() {
    let redis = Redis::start();
    let node1 = Server::start_node(&redis.url());
    let node2 = Server::start_node(&redis.url());
    let mut a = node1.client(1).await;
    let mut b = node2.client(2).await;
    let mut c = node2.client(3).await;
    let join_a = a.join_ok("room:lobby").await;
    b.join_ok("room:lobby").await;
    c.join_ok("room:lobby").await;

    let reference = a.push(&join_a, "room:lobby", "new_msg", json!({"body": "hi from node 1"})).await;
    assert_eq!(a.recv().await, json!([null, null, "room:lobby", "new_msg", {"body": "hi from node 1", "user_id": 1}]));
    assert_eq!(a.recv().await, json!([join_a, reference, "room:lobby", "phx_reply", {"response": {}, "status": "ok"}]));
    for other in [&mut b, &mut c] {
        assert_eq!(other.recv().await, json!([null, null, "room:lobby", "new_msg", {"body": "hi from node 1", "user_id": 1}]));
    }
    // Exactly once: the next frame anyone gets is its heartbeat's reply.
    for client in [&mut a, &mut b, &mut c] {
        assert_eq!(support::barrier::frames_until_heartbeat(client).await, Vec::<Value>::new());
    }
}

#[tokio::test]
async fn broadcasts_keep_their_order_across_nodes() {
    let redis = Redis::start();
    let node1 = Server::start_node(&redis.url());
    let node2 = Server::start_node(&redis.url());
    let mut a = node1.client(1).await;
    let mut b = node2.client(2).await;
    let join_a = a.join_ok("room:order").await;
    b.join_ok("room:order").await;
    for i in 0..200 {
        a.push(&join_a, "room:order", "new_msg", json!({"body": i.to_string()})).await;
    }
    for i in 0..200 {
        let frame = next_event(&mut b, "new_msg").await;
        assert_eq!(frame[4]["body"], i.to_string());
    }
    assert_eq!(support::barrier::frames_until_heartbeat(&mut b).await, Vec::<Value>::new());
}

#[tokio::test]
async fn a_node_hears_only_the_topics_its_sockets_joined() {
    let redis = Redis::start();
    let node1 = Server::start_node(&redis.url());
    let node2 = Server::start_node(&redis.url());
    let mut a = node1.client(1).await;
    let join_a = a.join_ok("room:quiet").await;
    let channel = "plume:t:demo:room:quiet";
    // Node 1 listens to room:quiet, node 2 does not.
    assert_eq!(redis.numsub(channel), 1);
    let mut b = node2.client(2).await;
    let join_b = b.join_ok("room:quiet").await;
    assert_eq!(redis.numsub(channel), 2, "the join waited for the subscription");
    // A second subscriber on a node does not subscribe the node again.
    let mut b2 = node2.client(3).await;
    let join_b2 = b2.join_ok("room:quiet").await;
    assert_eq!(redis.numsub(channel), 2);
    for (client, join_ref) in [(&mut b, &join_b), (&mut b2, &join_b2), (&mut a, &join_a)] {
        let reference = client.next_ref();
        client.send(json!([join_ref, reference, "room:quiet", "phx_leave", {}])).await;
        let _ = support::barrier::frames_until_heartbeat(client).await;
    }
    let started = Instant::now();
    while redis.numsub(channel) != 0 {
        assert!(started.elapsed() < Duration::from_secs(5), "the nodes did not unsubscribe: {}", redis.numsub(channel));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn chat_presence_is_the_same_on_every_node() {
    let redis = Redis::start();
    let node1 = Server::start_node(&redis.url());
    let node2 = Server::start_node(&redis.url());
    let mut a = node1.client(42).await;
    let (_, state_a) = join_chat(&mut a, "chat:cluster", 42).await;
    assert_eq!(state_a.as_object().map(|o| o.len()), Some(1), "{state_a}");
    let ref_a = state_a["42"]["metas"][0]["phx_ref"].as_str().expect("a phx_ref").to_owned();

    let mut b = node2.client(7).await;
    let (join_b, state_b) = join_chat(&mut b, "chat:cluster", 7).await;
    // b, on the other node, sees a.
    presence_settles(&mut b, &state_b, &["42", "7"]).await;

    // a hears b join, through the other node.
    let diff = next_event(&mut a, "presence_diff").await;
    assert_eq!(diff[4]["joins"]["7"]["metas"][0]["name"], "user-7", "{diff}");
    let ref_b = diff[4]["joins"]["7"]["metas"][0]["phx_ref"].as_str().expect("ref").to_owned();
    assert_ne!(ref_a, ref_b);

    // b leaves: a gets the leave.
    let leave = b.next_ref();
    b.send(json!([join_b, leave, "chat:cluster", "phx_leave", {}])).await;
    let diff = next_event(&mut a, "presence_diff").await;
    assert_eq!(diff[4]["leaves"]["7"]["metas"][0]["phx_ref"], ref_b.as_str(), "{diff}");
    assert_eq!(diff[4]["joins"], json!({}));

    // A third client on node 2 sees only a, under the phx_ref node 1 gave
    // it: one phx_ref for one meta, on every node.
    let mut c = node2.client(9).await;
    let (_, state_c) = join_chat(&mut c, "chat:cluster", 9).await;
    let keys: Vec<&String> = state_c.as_object().expect("object").keys().collect();
    assert_eq!(keys, vec!["42", "9"], "{state_c}");
    assert_eq!(state_c["42"]["metas"][0]["phx_ref"], ref_a.as_str(), "{state_c}");
}

/// The reply to `reference` on `client`, skipping broadcasts and pushes.
async fn reply_to(client: &mut Client, reference: &str) -> Value {
    loop {
        let frame = client.recv().await;
        if frame[1] == json!(reference) && frame[3] == "phx_reply" {
            return frame[4].clone();
        }
    }
}

#[tokio::test]
async fn chat_messages_and_their_history_are_shared_by_every_node() {
    let redis = Redis::start();
    let node1 = Server::start_node(&redis.url());
    let node2 = Server::start_node(&redis.url());
    let topic = "chat:cluster-history";
    let mut a = node1.client(42).await;
    let (join_a, _) = join_chat(&mut a, topic, 42).await;
    let mut b = node2.client(7).await;
    let (join_b, _) = join_chat(&mut b, topic, 7).await;

    // a's message is stored (in the cluster's key-value store) and reaches b
    // on the other node.
    let sent = a.push(&join_a, topic, "new_message", json!({"message": "hello from node 1"})).await;
    let reply = reply_to(&mut a, &sent).await;
    assert_eq!(reply["status"], "ok", "{reply}");
    let id = reply["response"]["id"].clone();
    let heard = next_event(&mut b, "new_message").await;
    assert_eq!(heard[4]["id"], id, "{heard}");
    assert_eq!(heard[4]["content"], "hello from node 1");

    // b's message, stored through node 2, is in the same room's history.
    let sent = b.push(&join_b, topic, "new_message", json!({"message": "and from node 2"})).await;
    assert_eq!(reply_to(&mut b, &sent).await["status"], "ok");

    // A newcomer on node 2 and a on node 1 read one history, in order.
    let asked = a.push(&join_a, topic, "history", json!({})).await;
    let history = reply_to(&mut a, &asked).await;
    let contents: Vec<&str> = history["response"]["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|message| message["content"].as_str())
        .collect();
    assert_eq!(contents, ["hello from node 1", "and from node 2"], "{history}");
    let mut c = node2.client(9).await;
    let (join_c, _) = join_chat(&mut c, topic, 9).await;
    let asked = c.push(&join_c, topic, "history", json!({})).await;
    let history = reply_to(&mut c, &asked).await;
    let messages = history["response"]["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 2, "{history}");
    assert_eq!(messages[0]["id"], id);
    assert_eq!(messages[1]["user"]["id"], 7);
}

#[tokio::test]
async fn a_killed_node_s_presences_leave_every_other_node_within_the_bound() {
    let redis = Redis::start();
    let node1 = Server::start_node(&redis.url());
    let mut node2 = Server::start_node(&redis.url());
    let mut a = node1.client(42).await;
    join_chat(&mut a, "chat:doomed", 42).await;
    let mut b = node2.client(7).await;
    join_chat(&mut b, "chat:doomed", 7).await;
    let joined = next_event(&mut a, "presence_diff").await;
    let ref_b = joined[4]["joins"]["7"]["metas"][0]["phx_ref"].clone();

    let killed = Instant::now();
    node2.kill();
    // Down after 10 s without a heartbeat, swept at the next heartbeat of
    // a live node (every 2 s): well within 10 + 2 + 1 s.
    let diff = next_event_within(&mut a, "presence_diff", Duration::from_secs(15)).await;
    let took = killed.elapsed();
    assert_eq!(diff[4]["leaves"]["7"]["metas"][0]["phx_ref"], ref_b, "{diff}");
    assert!(took >= Duration::from_secs(8), "left too early ({took:?}): heartbeats are 2 s apart");
    assert!(took <= Duration::from_secs(13), "left too late ({took:?})");
    eprintln!("the killed node's presence left after {took:?}");

    // A newcomer sees only the live node's user.
    let mut c = node1.client(9).await;
    let (_, state) = join_chat(&mut c, "chat:doomed", 9).await;
    let keys: Vec<&String> = state.as_object().expect("object").keys().collect();
    assert_eq!(keys, vec!["42", "9"], "{state}");
}

#[tokio::test]
async fn a_cleanly_stopped_node_s_presences_leave_at_once() {
    let redis = Redis::start();
    let node1 = Server::start_node(&redis.url());
    let mut node2 = Server::start_node(&redis.url());
    let mut a = node1.client(42).await;
    join_chat(&mut a, "chat:stop", 42).await;
    let mut b = node2.client(7).await;
    join_chat(&mut b, "chat:stop", 7).await;
    next_event(&mut a, "presence_diff").await;
    let stopped = Instant::now();
    node2.terminate();
    let diff = next_event_within(&mut a, "presence_diff", Duration::from_secs(3)).await;
    assert!(diff[4]["leaves"].get("7").is_some(), "{diff}");
    assert!(stopped.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_disconnect_by_socket_id_closes_the_users_sockets_on_every_node() {
    let redis = Redis::start();
    let node1 = Server::start_node(&redis.url());
    let node2 = Server::start_node(&redis.url());
    let admin_token = support::token("user socket", json!({"id": 1, "name": "root", "role": "admin"}));
    let mut admin = Client::connect(&node1.ws_url(&format!("token={admin_token}&vsn=2.0.0")))
        .await
        .expect("admin connects");
    let join_admin = admin.join_ok("admin:users").await;
    let mut victim_1 = node1.client(66).await;
    let mut victim_2 = node2.client(66).await;
    let mut bystander = node2.client(67).await;
    victim_1.join_ok("room:lobby").await;
    victim_2.join_ok("room:lobby").await;
    bystander.join_ok("room:lobby").await;

    let reference = admin.push(&join_admin, "admin:users", "ban_user", json!({"user_id": 66})).await;
    loop {
        let frame = admin.recv().await;
        if frame[1] == reference.as_str() {
            assert_eq!(frame[4], json!({"response": {"status": "banned"}, "status": "ok"}));
            break;
        }
    }
    for victim in [&mut victim_1, &mut victim_2] {
        assert_eq!(victim.expect_close().await.map(u16::from), Some(1011));
    }
    assert_eq!(support::barrier::frames_until_heartbeat(&mut bystander).await, Vec::<Value>::new(), "the other user stays");
}

#[tokio::test]
async fn redis_restarting_drops_no_socket_and_broadcasts_resume_without_duplicates() {
    let mut redis = Redis::start();
    let node1 = Server::start_node(&redis.url());
    let node2 = Server::start_node(&redis.url());
    let mut a = node1.client(1).await;
    let mut b = node2.client(2).await;
    let join_a = a.join_ok("room:restart").await;
    b.join_ok("room:restart").await;
    a.push(&join_a, "room:restart", "new_msg", json!({"body": "before"})).await;
    assert_eq!(next_event(&mut b, "new_msg").await[4]["body"], "before");

    redis.restart();
    // Until both nodes are back, a cross-node broadcast fails (and is then
    // delivered on its own node only); once they are, they arrive.
    let started = Instant::now();
    let mut sent = 0;
    let mut received: Vec<u64> = Vec::new();
    while received.is_empty() {
        assert!(started.elapsed() < Duration::from_secs(20), "broadcasts did not resume");
        sent += 1;
        a.push(&join_a, "room:restart", "new_msg", json!({"body": sent.to_string()})).await;
        while let Some(frame) = b.recv_within(Duration::from_millis(300)).await {
            if frame[3] == "new_msg" {
                received.push(frame[4]["body"].as_str().and_then(|n| n.parse().ok()).expect("a number"));
            }
        }
    }
    // Drain what is still on its way, then check: each at most once, in
    // the order sent.
    while let Some(frame) = b.recv_within(Duration::from_secs(1)).await {
        if frame[3] == "new_msg" {
            received.push(frame[4]["body"].as_str().and_then(|n| n.parse().ok()).expect("a number"));
        }
    }
    assert!(received.windows(2).all(|w| w[0] < w[1]), "in order, no duplicates: {received:?}");
    assert_eq!(received.last(), Some(&sent), "the last one sent arrived: {received:?}");
    // Both sockets stayed open all along: they still answer.
    assert_eq!(support::barrier::frames_until_heartbeat(&mut a).await.iter().filter(|f| f[3] != "new_msg" && f[3] != "phx_reply").count(), 0);
    for i in 0..20 {
        a.push(&join_a, "room:restart", "new_msg", json!({"body": format!("steady {i}")})).await;
    }
    for i in 0..20 {
        assert_eq!(next_event(&mut b, "new_msg").await[4]["body"], format!("steady {i}"));
    }
    assert_eq!(support::barrier::frames_until_heartbeat(&mut b).await, Vec::<Value>::new());
}

#[tokio::test]
async fn presence_resynchronises_after_redis_restarts() {
    let mut redis = Redis::start();
    let node1 = Server::start_node(&redis.url());
    let node2 = Server::start_node(&redis.url());
    let mut a = node1.client(42).await;
    join_chat(&mut a, "chat:restart", 42).await;
    redis.restart();
    // Both nodes reconnect and re-assert: a newcomer on node 2 sees user 42.
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < Duration::from_secs(20), "presence did not come back after Redis restarted");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut c = node2.client(9).await;
        let (_, state) = join_chat(&mut c, "chat:restart", 9).await;
        if state.get("42").is_some() {
            break;
        }
    }
}

#[tokio::test]
async fn sharded_pubsub_on_a_redis_cluster_carries_broadcasts_and_presence() {
    let cluster = RedisCluster::start();
    let node1 = Server::start_node(&cluster.nodes()[0].url());
    let node2 = Server::start_node(&cluster.nodes()[2].url());
    assert!(node1.log().contains("sharded pub/sub"), "{}", node1.log());
    // Topics spread over the shards: every master carries some.
    let mut clients = Vec::new();
    for room in 0..24 {
        let topic = format!("room:shard-{room}");
        let mut a = node1.client(1).await;
        let mut b = node2.client(2).await;
        let join_a = a.join_ok(&topic).await;
        b.join_ok(&topic).await;
        a.push(&join_a, &topic, "new_msg", json!({"body": room.to_string()})).await;
        assert_eq!(next_event(&mut b, "new_msg").await[4]["body"], room.to_string());
        assert_eq!(support::barrier::frames_until_heartbeat(&mut b).await, Vec::<Value>::new(), "once");
        clients.push((a, b));
    }
    for master in cluster.nodes() {
        assert!(!master.shard_channels().is_empty(), "the master on port {} carries no topic", master.port());
    }
    let mut a = node1.client(42).await;
    join_chat(&mut a, "chat:sharded", 42).await;
    let mut b = node2.client(7).await;
    let (_, state) = join_chat(&mut b, "chat:sharded", 7).await;
    presence_settles(&mut b, &state, &["42", "7"]).await;
}

#[tokio::test]
async fn the_figures_plugins_read_count_every_node() {
    let redis = Redis::start();
    let node1 = Server::start_node(&redis.url());
    let node2 = Server::start_node(&redis.url());
    let mut others = Vec::new();
    for user in [20, 21, 21] {
        let mut client = node2.client(user).await;
        client.join_ok("room:lobby").await;
        others.push(client);
    }
    let admin_token = support::token("user socket", json!({"id": 1, "name": "root", "role": "admin"}));
    // Figures travel with the heartbeat (2 s): ask again until they show.
    let started = Instant::now();
    loop {
        let mut admin = Client::connect(&node1.ws_url(&format!("token={admin_token}&vsn=2.0.0")))
            .await
            .expect("admin connects");
        admin.join_ok_probe("admin:dashboard").await;
        let data = next_event(&mut admin, "dashboard_data").await;
        // 3 sockets on node 2 and the admin's on node 1; users 20, 21, 1.
        if data[4]["total_connections"] == 4 {
            assert_eq!(data[4]["active_users"], 3, "{data}");
            assert_eq!(data[4]["total_channels"], 4, "{data}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(8), "the dashboard never counted the other node: {data}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[test]
fn a_node_whose_redis_is_unreachable_says_which_url_and_stops() {
    let port = support::redis::free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_plume"));
    command
        .args(["serve", "--bind", "127.0.0.1:0", "--no-build", "--plugin-dir"])
        .arg(support::plugin_dir())
        .env("PLUME_REDIS_URL", &url);
    let output = command.output().expect("plume runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("cannot reach Redis at {url}")), "{stderr}");
    assert!(stderr.contains("PLUME_REDIS_URL"), "says how to set it: {stderr}");
}

/// One long-poll HTTP request; returns the JSON body (always HTTP 200).
fn longpoll(addr: &str, method: &str, query: &str, body: &str) -> Value {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let request = format!(
        "{method} /socket/longpoll?{query} HTTP/1.1\r\nHost: plume\r\nConnection: close\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("a response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{body}: {e}"))
}

#[tokio::test]
async fn a_long_poll_client_works_when_every_request_lands_on_another_node() {
    let redis = Redis::start();
    let node1 = Server::start_node(&redis.url());
    let node2 = Server::start_node(&redis.url());
    let nodes = [node1.addr.clone(), node2.addr.clone()];
    let app_token = support::user_token(42);
    let opened = longpoll(&nodes[0], "GET", &format!("token={app_token}&vsn=2.0.0"), "");
    assert_eq!(opened["status"], 410);
    let session = format!("token={app_token}&vsn=2.0.0&token={}", opened["token"].as_str().expect("a token"));

    // A WebSocket client on node 2 in the same room.
    let mut ws = node2.client(7).await;
    let join_ws = ws.join_ok("room:lp").await;

    // Join through node 2, push through node 1, poll through both.
    let posted = longpoll(&nodes[1], "POST", &session, "[\"1\",\"1\",\"room:lp\",\"phx_join\",{}]\n");
    assert_eq!(posted, json!({"status": 200}));
    let posted = longpoll(&nodes[0], "POST", &session, "[\"1\",\"2\",\"room:lp\",\"new_msg\",{\"body\":\"from long-poll\"}]\n");
    assert_eq!(posted, json!({"status": 200}));
    assert_eq!(next_event(&mut ws, "new_msg").await[4], json!({"body": "from long-poll", "user_id": 42}));
    ws.push(&join_ws, "room:lp", "new_msg", json!({"body": "to long-poll"})).await;

    let mut frames: Vec<Value> = Vec::new();
    let started = Instant::now();
    let mut turn = 1;
    while !frames.iter().any(|f| f[4]["body"] == "to long-poll") {
        assert!(started.elapsed() < Duration::from_secs(15), "frames so far: {frames:?}");
        let addr = nodes[turn % 2].clone();
        turn += 1;
        let query = session.clone();
        let polled = tokio::task::spawn_blocking(move || longpoll(&addr, "GET", &query, "")).await.expect("poll");
        assert!(polled["status"] == 200 || polled["status"] == 204, "the session lives on: {polled}");
        for frame in polled["messages"].as_array().expect("messages") {
            frames.push(serde_json::from_str(frame.as_str().expect("a frame")).expect("JSON"));
        }
    }
    let texts: Vec<String> = frames.iter().map(Value::to_string).collect();
    assert!(texts.contains(&json!(["1", "1", "room:lp", "phx_reply", {"response": {}, "status": "ok"}]).to_string()), "{texts:?}");
    assert!(texts.contains(&json!(["1", "2", "room:lp", "phx_reply", {"response": {}, "status": "ok"}]).to_string()), "{texts:?}");
}

#[tokio::test]
async fn a_long_poll_session_whose_node_died_starts_over_with_a_new_session() {
    let redis = Redis::start();
    let node1 = Server::start_node(&redis.url());
    let mut node2 = Server::start_node(&redis.url());
    let app_token = support::user_token(42);
    let opened = longpoll(&node2.addr, "GET", &format!("token={app_token}&vsn=2.0.0"), "");
    let session = format!("token={app_token}&vsn=2.0.0&token={}", opened["token"].as_str().expect("a token"));
    node2.kill();
    let addr = node1.addr.clone();
    let query = session.clone();
    let polled = tokio::task::spawn_blocking(move || longpoll(&addr, "GET", &query, "")).await.expect("poll");
    assert_eq!(polled["status"], 410, "a new session: {polled}");
    assert_ne!(polled["token"], opened["token"]);
    let posted = longpoll(&node1.addr, "POST", &session, "[null,\"1\",\"phoenix\",\"heartbeat\",{}]\n");
    assert_eq!(posted, json!({"status": 410}));
}

#[tokio::test]
async fn collab_cursor_updates_reach_the_other_node_as_presence_diffs() {
    let redis = Redis::start();
    let node1 = Server::start_node(&redis.url());
    let node2 = Server::start_node(&redis.url());
    let token = |id: i64, name: &str| support::token("user socket", json!({"id": id, "name": name, "role": "user"}));
    let mut ann = Client::connect(&node1.ws_url(&format!("token={}&vsn=2.0.0", token(10, "ann")))).await.expect("ann");
    let mut bob = Client::connect(&node2.ws_url(&format!("token={}&vsn=2.0.0", token(11, "bob")))).await.expect("bob");
    let topic = "collab:document:nodes";
    let join_ann = ann.join_ok(topic).await;
    let state = next_event(&mut ann, "presence_state").await;
    let first_ref = state[4]["10"]["metas"][0]["phx_ref"].clone();
    bob.join_ok(topic).await;
    let state = next_event(&mut bob, "presence_state").await;
    assert_eq!(state[4]["10"]["metas"][0]["phx_ref"], first_ref, "bob sees ann from the other node: {state}");
    let _ = support::barrier::frames_until_heartbeat(&mut bob).await;

    ann.push(&join_ann, topic, "cursor_moved", json!({"position": {"line": 3, "ch": 7}})).await;
    let diff = next_event(&mut bob, "presence_diff").await;
    let joined = &diff[4]["joins"]["10"]["metas"][0];
    assert_eq!(joined["cursor_position"], json!({"ch": 7, "line": 3}), "{diff}");
    assert_eq!(joined["phx_ref_prev"], first_ref);
    assert_eq!(diff[4]["leaves"]["10"]["metas"][0]["phx_ref"], first_ref);

    // A newcomer on node 2 gets ann's current meta in presence_state.
    let mut cat = Client::connect(&node2.ws_url(&format!("token={}&vsn=2.0.0", token(12, "cat")))).await.expect("cat");
    cat.join_ok(topic).await;
    let state = next_event(&mut cat, "presence_state").await;
    assert_eq!(state[4]["10"]["metas"].as_array().map(Vec::len), Some(1), "one meta, the updated one: {state}");
    assert_eq!(state[4]["10"]["metas"][0]["cursor_position"], json!({"ch": 7, "line": 3}));
}

/// Room routes with history, for the recovery tests.
const HISTORY_CONFIG: &str = r#"
[app]
socket_plugin = "user_socket"

[plugins.user_socket]
path = "{plugins}/user_socket.wasm"

[plugins.room]
path = "{plugins}/room.wasm"

[[routes]]
topic = "room:*"
plugin = "room"
history = { size = 100, ttl_s = 600 }
"#;

#[tokio::test]
async fn a_client_that_comes_back_on_the_other_node_recovers_what_it_missed() {
    let redis = Redis::start();
    let node1 = Server::start_node_config(HISTORY_CONFIG, &redis.url());
    let node2 = Server::start_node_config(HISTORY_CONFIG, &redis.url());
    let mut a = node1.client(1).await;
    let mut b = node2.client(2).await;
    let join_a = a.join_ok("room:travel").await;
    b.join_ok("room:travel").await;
    a.push(&join_a, "room:travel", "new_msg", json!({"body": "seen"})).await;
    let seen = next_event(&mut b, "new_msg").await;
    let position = seen[1].as_str().expect("a position").to_owned();
    // The publisher gets its own broadcast, with the same position, through
    // Redis like everyone.
    assert_eq!(next_event(&mut a, "new_msg").await[1], position.as_str());
    drop(b);

    for i in 0..4 {
        a.push(&join_a, "room:travel", "new_msg", json!({"body": format!("missed {i}")})).await;
    }
    for _ in 0..4 {
        next_event(&mut a, "new_msg").await;
    }
    // b comes back on node 1.
    let mut b = node1.client(2).await;
    let (join_ref, reply) = b.join("room:travel", json!({"_recover": position})).await;
    assert_eq!(reply[4]["status"], "ok", "{reply}");
    let mut replayed = Vec::new();
    let recovery = loop {
        let frame = b.recv().await;
        if frame[3] == "plume_recovery" {
            break frame;
        }
        replayed.push(frame);
    };
    let bodies: Vec<&str> = replayed.iter().map(|f| f[4]["body"].as_str().unwrap_or("")).collect();
    assert_eq!(bodies, vec!["missed 0", "missed 1", "missed 2", "missed 3"]);
    assert_eq!(recovery[0], join_ref.as_str());
    assert_eq!(recovery[4]["recovered"], true, "{recovery}");
    assert_eq!(recovery[4]["count"], 4);
    assert_eq!(recovery[4]["position"], replayed[3][1]);
    let (_, last) = replayed[3][1].as_str().and_then(|p| p.split_once(':')).expect("position");
    assert_eq!(last, "5");
}
