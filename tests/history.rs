//! Channel history and recovery: positions in the `ref` slot of broadcasts
//! on a topic with history, and a rejoin with `"_recover"` that gets what
//! it missed, over real sockets.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Client, Server};

/// The demo's room and the probe, on routes that keep history (a short one
/// on `room:short*`, an expiring one on `room:brief*`), and a room route
/// that does not.
const CONFIG: &str = r#"
[app]
socket_plugin = "user_socket"

[plugins.user_socket]
path = "{plugins}/user_socket.wasm"

[plugins.room]
path = "{plugins}/room.wasm"

[plugins.probe]
path = "{plugins}/probe.wasm"

[[routes]]
topic = "room:short"
plugin = "room"
history = { size = 3, ttl_s = 600 }

[[routes]]
topic = "room:brief"
plugin = "room"
history = { size = 100, ttl_s = 1 }

[[routes]]
topic = "room:plain"
plugin = "room"

[[routes]]
topic = "room:race"
plugin = "room"
history = { size = 1000, ttl_s = 600 }

[[routes]]
topic = "room:norecover"
plugin = "room"
history = { size = 100, ttl_s = 600, recover = false }

[[routes]]
topic = "room:*"
plugin = "room"
history = { size = 100, ttl_s = 600 }

[[routes]]
topic = "probe:*"
plugin = "probe"
history = { size = 100, ttl_s = 600 }
"#;

fn start() -> Server {
    Server::start_config(CONFIG).expect("the history server starts")
}

/// Push `n` messages from `client` on `topic`, each `"<prefix><i>"`; returns
/// the positions the broadcasts carried, as `client` saw them.
async fn send(client: &mut Client, join_ref: &str, topic: &str, prefix: &str, n: usize) -> Vec<String> {
    let mut positions = Vec::new();
    for i in 0..n {
        client.push(join_ref, topic, "new_msg", json!({"body": format!("{prefix}{i}")})).await;
        loop {
            let frame = client.recv().await;
            if frame[3] == "new_msg" {
                positions.push(frame[1].as_str().expect("a position in the ref slot").to_owned());
                break;
            }
        }
    }
    // The replies to the pushes.
    let _ = support::barrier::frames_until_heartbeat(client).await;
    positions
}

fn parse(position: &str) -> (String, u64) {
    let (epoch, offset) = position.split_once(':').expect("<epoch>:<offset>");
    (epoch.to_owned(), offset.parse().expect("an offset"))
}

/// Join `topic` asking to recover from `position`: the reply, then every
/// frame up to and including `plume_recovery`.
async fn rejoin(client: &mut Client, topic: &str, position: Value) -> (Value, Vec<Value>, Value) {
    let (join_ref, reply) = client.join(topic, json!({"_recover": position})).await;
    assert_eq!(reply, json!([join_ref, join_ref, topic, "phx_reply", {"response": {}, "status": "ok"}]));
    let mut replayed = Vec::new();
    loop {
        let frame = client.recv().await;
        if frame[3] == "plume_recovery" {
            assert_eq!(frame[0], join_ref.as_str(), "plume_recovery is a push of the channel: {frame}");
            assert_eq!(frame[1], Value::Null);
            return (reply, replayed, frame[4].clone());
        }
        replayed.push(frame);
    }
}

#[tokio::test]
async fn broadcasts_on_a_history_topic_carry_their_position_in_the_ref_slot() {
    let server = start();
    let mut a = server.client(1).await;
    let mut b = server.client(2).await;
    let join_a = a.join_ok("room:lobby").await;
    b.join_ok("room:lobby").await;
    let positions = send(&mut a, &join_a, "room:lobby", "m", 3).await;
    let parsed: Vec<(String, u64)> = positions.iter().map(|p| parse(p)).collect();
    assert_eq!(parsed.iter().map(|(_, o)| *o).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(parsed.iter().all(|(e, _)| *e == parsed[0].0 && e.len() == 16));
    for (i, position) in positions.iter().enumerate() {
        let frame = b.recv().await;
        assert_eq!(frame, json!([null, position, "room:lobby", "new_msg", {"body": format!("m{i}"), "user_id": 1}]));
    }
    // A topic without history: null, as in Phoenix.
    let join_plain = a.join_ok("room:plain").await;
    a.push(&join_plain, "room:plain", "new_msg", json!({"body": "x"})).await;
    let frames = support::barrier::frames_until_heartbeat(&mut a).await;
    let broadcast = frames.iter().find(|f| f[3] == "new_msg").expect("the broadcast");
    assert_eq!(broadcast[1], Value::Null);
}

#[tokio::test]
async fn a_rejoin_with_the_last_position_gets_what_it_missed_in_order_then_live_traffic() {
    let server = start();
    let mut a = server.client(1).await;
    let mut b = server.client(2).await;
    let join_a = a.join_ok("room:recover").await;
    let join_b = b.join_ok("room:recover").await;
    let seen = send(&mut a, &join_a, "room:recover", "before", 2).await;
    let _ = support::barrier::frames_until_heartbeat(&mut b).await;
    drop(b);

    let missed = send(&mut a, &join_a, "room:recover", "missed", 5).await;
    let mut b = server.client(2).await;
    let (_, replayed, recovery) = rejoin(&mut b, "room:recover", json!(seen[1])).await;
    let bodies: Vec<&str> = replayed.iter().map(|f| f[4]["body"].as_str().unwrap_or("")).collect();
    assert_eq!(bodies, vec!["missed0", "missed1", "missed2", "missed3", "missed4"]);
    for (frame, position) in replayed.iter().zip(&missed) {
        assert_eq!(frame[0], Value::Null, "a broadcast: {frame}");
        assert_eq!(frame[1], position.as_str());
        assert_eq!(frame[3], "new_msg");
    }
    assert_eq!(recovery, json!({"recovered": true, "count": 5, "position": missed[4]}));
    // Live traffic continues, each once.
    let next = send(&mut a, &join_a, "room:recover", "live", 1).await;
    let frames = support::barrier::frames_until_heartbeat(&mut b).await;
    assert_eq!(frames, vec![json!([null, next[0], "room:recover", "new_msg", {"body": "live0", "user_id": 1}])]);
    let _ = join_b;
}

#[tokio::test]
async fn nothing_missed_recovers_with_count_zero() {
    let server = start();
    let mut a = server.client(1).await;
    let join_a = a.join_ok("room:quiet").await;
    let seen = send(&mut a, &join_a, "room:quiet", "m", 2).await;
    let mut b = server.client(2).await;
    let (_, replayed, recovery) = rejoin(&mut b, "room:quiet", json!(seen[1])).await;
    assert!(replayed.is_empty());
    assert_eq!(recovery, json!({"recovered": true, "count": 0, "position": seen[1]}));
}

#[tokio::test]
async fn a_gap_longer_than_the_history_is_not_recovered_and_nothing_is_replayed() {
    let server = start();
    let mut a = server.client(1).await;
    let join_a = a.join_ok("room:short").await;
    let seen = send(&mut a, &join_a, "room:short", "m", 1).await;
    let missed = send(&mut a, &join_a, "room:short", "gone", 5).await;
    let mut b = server.client(2).await;
    let (_, replayed, recovery) = rejoin(&mut b, "room:short", json!(seen[0])).await;
    assert!(replayed.is_empty(), "never a partial history: {replayed:?}");
    assert_eq!(recovery, json!({"recovered": false, "count": 0, "position": missed[4]}));
}

#[tokio::test]
async fn an_expired_history_is_not_recovered() {
    let server = start();
    let mut a = server.client(1).await;
    let join_a = a.join_ok("room:brief").await;
    let seen = send(&mut a, &join_a, "room:brief", "m", 1).await;
    let missed = send(&mut a, &join_a, "room:brief", "soon-gone", 2).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let mut b = server.client(2).await;
    let (_, replayed, recovery) = rejoin(&mut b, "room:brief", json!(seen[0])).await;
    assert!(replayed.is_empty());
    assert_eq!(recovery, json!({"recovered": false, "count": 0, "position": missed[1]}));
}

#[tokio::test]
async fn garbage_or_forged_positions_join_fine_and_are_not_recovered() {
    let server = start();
    let mut a = server.client(1).await;
    let join_a = a.join_ok("room:forged").await;
    let seen = send(&mut a, &join_a, "room:forged", "m", 2).await;
    let (epoch, _) = parse(&seen[1]);
    for garbage in [json!("nope"), json!(42), json!(null), json!(format!("{epoch}:999")), json!(format!("{epoch}:-1")), json!("0000000000000001:1")] {
        let mut b = server.client(2).await;
        let (_, replayed, recovery) = rejoin(&mut b, "room:forged", garbage.clone()).await;
        assert!(replayed.is_empty(), "{garbage}");
        assert_eq!(recovery, json!({"recovered": false, "count": 0, "position": seen[1]}), "{garbage}");
    }
}

#[tokio::test]
async fn the_plugin_never_sees_the_recover_key() {
    let server = start();
    let mut a = server.client(1).await;
    let (join_ref, reply) = a.join("probe:recover", json!({"echo_payload": true, "_recover": "0000000000000001:1", "x": 1})).await;
    assert_eq!(reply, json!([join_ref, join_ref, "probe:recover", "phx_reply", {"response": {"payload": {"echo_payload": true, "x": 1}}, "status": "ok"}]));
    let recovery = support::barrier::frames_until_heartbeat(&mut a).await;
    assert_eq!(recovery.len(), 1);
    assert_eq!(recovery[0][3], "plume_recovery");
    assert_eq!(recovery[0][4]["recovered"], false);
}

#[tokio::test]
async fn a_route_with_recovery_off_passes_the_key_to_the_plugin_and_replays_nothing() {
    let server = start();
    let mut a = server.client(1).await;
    let join_a = a.join_ok("room:norecover").await;
    let seen = send(&mut a, &join_a, "room:norecover", "m", 1).await;
    send(&mut a, &join_a, "room:norecover", "missed", 1).await;
    let mut b = server.client(2).await;
    let (join_ref, reply) = b.join("room:norecover", json!({"_recover": seen[0]})).await;
    assert_eq!(reply[4]["status"], "ok", "{reply}");
    assert_eq!(support::barrier::frames_until_heartbeat(&mut b).await, Vec::<Value>::new(), "no replay, no plume_recovery");
    let _ = join_ref;
}

#[tokio::test]
async fn a_restarted_node_has_a_new_epoch_and_does_not_recover_old_positions() {
    let dir = support::TempDir::new("history-restart");
    let config = dir.0.join("plume.toml");
    std::fs::write(&config, CONFIG.replace("{plugins}", &support::plugin_dir().display().to_string())).expect("config");
    let start = |config: &std::path::Path| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_plume"));
        command.args(["serve", "--bind", "127.0.0.1:0", "--config"]).arg(config);
        Server::spawn_command(command, None, Duration::from_secs(60)).expect("starts")
    };
    let mut server = start(&config);
    let mut a = server.client(1).await;
    let join_a = a.join_ok("room:restart").await;
    let seen = send(&mut a, &join_a, "room:restart", "m", 2).await;
    server.terminate();
    let server = start(&config);
    let mut a = server.client(1).await;
    let (_, replayed, recovery) = rejoin(&mut a, "room:restart", json!(seen[1])).await;
    assert!(replayed.is_empty());
    assert_eq!(recovery["recovered"], false);
    let (old_epoch, _) = parse(&seen[1]);
    let (new_epoch, offset) = parse(recovery["position"].as_str().expect("a position"));
    assert_ne!(old_epoch, new_epoch);
    assert_eq!(offset, 0);
}

#[tokio::test]
async fn broadcasts_made_while_a_client_recovers_arrive_once() {
    let server = start();
    let mut a = server.client(1).await;
    let join_a = a.join_ok("room:race").await;
    let seen = send(&mut a, &join_a, "room:race", "m", 1).await;
    // A publisher keeps broadcasting while b rejoins and recovers.
    let addr = server.ws_url(&format!("token={}&vsn=2.0.0", support::user_token(3)));
    let publisher = tokio::spawn(async move {
        let mut p = Client::connect(&addr).await.expect("publisher");
        let join_p = p.join_ok("room:race").await;
        for i in 0..200 {
            p.push(&join_p, "room:race", "new_msg", json!({"body": i.to_string()})).await;
        }
        let _ = support::barrier::frames_until_heartbeat(&mut p).await;
    });
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut b = server.client(2).await;
    let (_, replayed, recovery) = rejoin(&mut b, "room:race", json!(seen[0])).await;
    assert_eq!(recovery["recovered"], true, "{recovery}");
    publisher.await.expect("publisher");
    let mut offsets: Vec<u64> = replayed.iter().map(|f| parse(f[1].as_str().expect("position")).1).collect();
    let started = Instant::now();
    while offsets.last().copied().unwrap_or(0) < 201 {
        assert!(started.elapsed() < Duration::from_secs(10), "offsets so far: {offsets:?}");
        for frame in support::barrier::frames_until_heartbeat(&mut b).await {
            if frame[3] == "new_msg" {
                offsets.push(parse(frame[1].as_str().expect("position")).1);
            }
        }
    }
    let expected: Vec<u64> = (2..=201).collect();
    assert_eq!(offsets, expected, "each of the 200 once, in order, replayed or live");
}
