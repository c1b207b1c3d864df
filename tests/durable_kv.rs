//! The durable key-value engine (`[kv] engine = "redb"`): games, donation
//! totals and bans survive a restart, and an acknowledged write is never
//! lost.

mod support;

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use support::{Client, Refused, Server, TempDir};

/// The shared-state channels of the demo app on the redb engine, storing
/// in `file`.
fn config(file: &Path) -> String {
    format!(
        r#"
[app]
socket_plugin = "user_socket"

[kv]
engine = "redb"
path = "{}"

[plugins.user_socket]
path = "{{plugins}}/user_socket.wasm"

[plugins.game]
path = "{{plugins}}/game.wasm"

[plugins.donations]
path = "{{plugins}}/donations.wasm"

[plugins.admin]
path = "{{plugins}}/admin.wasm"

[[routes]]
topic = "game:*"
plugin = "game"

[[routes]]
topic = "donations:*"
plugin = "donations"

[[routes]]
topic = "admin:*"
plugin = "admin"
"#,
        file.display()
    )
}

fn start(file: &Path) -> Server {
    Server::start_config(&config(file)).unwrap_or_else(|log| panic!("the server starts:\n{log}"))
}

/// SIGTERM, and wait for a clean exit.
async fn stop(mut server: Server) {
    let (status, server) = tokio::task::spawn_blocking(move || (server.terminate(), server))
        .await
        .expect("join");
    assert!(status.success(), "exit status {status:?}\n{}", server.log());
}

async fn connect(server: &Server, user: Value) -> Result<Client, Refused> {
    let token = support::token("user socket", user);
    Client::connect(&server.ws_url(&format!("token={token}&vsn=2.0.0"))).await
}

async fn user(server: &Server, id: i64, name: &str, role: &str) -> Client {
    connect(server, json!({"id": id, "name": name, "role": role}))
        .await
        .expect("the connection is accepted")
}

fn player_token(id: i64, name: &str) -> String {
    support::token("player", json!({"id": id, "name": name}))
}

/// The reply to `reference`, skipping broadcasts and pushes.
async fn reply_to(client: &mut Client, reference: &str) -> Value {
    loop {
        let frame = client.recv().await;
        if frame[1] == json!(reference) {
            return frame[4].clone();
        }
    }
}

/// Joins a donation campaign and returns its join ref and `campaign_state`,
/// reading past whatever the socket's other channels receive meanwhile.
async fn join_campaign(client: &mut Client, topic: &str) -> (String, Value) {
    let join_ref = client.next_ref();
    client.send(json!([join_ref, join_ref, topic, "phx_join", {}])).await;
    assert_eq!(reply_to(client, &join_ref).await, json!({"response": {}, "status": "ok"}));
    loop {
        let frame = client.recv().await;
        if frame[3] == "campaign_state" {
            return (join_ref, frame[4]["campaign"].clone());
        }
    }
}

async fn donate(client: &mut Client, join_ref: &str, topic: &str, amount: &str) -> Value {
    let reference = client
        .push(join_ref, topic, "new_donation", json!({"amount": amount, "donor_name": "d"}))
        .await;
    reply_to(client, &reference).await
}

#[tokio::test]
async fn games_totals_and_bans_survive_a_restart() {
    let dir = TempDir::new("durable");
    let file = dir.0.join("plume.redb");
    let campaign = "donations:campaign:c1";

    let server = start(&file);
    let mut ann = user(&server, 10, "ann", "user").await;
    let mut bob = user(&server, 11, "bob", "user").await;
    let (ann_game, _) = ann.join("game:g1", json!({"player_token": player_token(10, "ann")})).await;
    let (bob_game, _) = bob.join("game:g1", json!({"player_token": player_token(11, "bob")})).await;
    ann.push(&ann_game, "game:g1", "make_move", json!({"move": {"cell": 4}})).await;
    assert_eq!(bob.recv().await[3], "move_made");
    bob.push(&bob_game, "game:g1", "make_move", json!({"move": {"cell": 0}})).await;
    let reference = bob.push(&bob_game, "game:g1", "request_game_state", json!({})).await;
    let before = reply_to(&mut bob, &reference).await["response"]["game"].clone();
    assert_eq!(before["board"], json!(["O", null, null, null, "X", null, null, null, null]));

    let (ann_campaign, _) = join_campaign(&mut ann, campaign).await;
    let (bob_campaign, _) = join_campaign(&mut bob, campaign).await;
    assert_eq!(donate(&mut bob, &bob_campaign, campaign, "25.50").await["status"], "ok");
    assert_eq!(donate(&mut bob, &bob_campaign, campaign, "0.25").await["status"], "ok");
    let reference = ann.push(&ann_campaign, campaign, "update_goal", json!({"new_goal": "5000"})).await;
    assert_eq!(reply_to(&mut ann, &reference).await["status"], "ok");

    let mut admin = user(&server, 1, "alice", "admin").await;
    let admin_ref = admin.join_ok("admin:users").await;
    let mut u99 = server.client(99).await;
    let reference = admin.push(&admin_ref, "admin:users", "ban_user", json!({"user_id": 99})).await;
    assert_eq!(reply_to(&mut admin, &reference).await["status"], "ok");
    u99.expect_close().await;
    drop((ann, bob, admin));
    stop(server).await;

    let server = start(&file);
    // The ban holds.
    let url = server.ws_url(&format!("token={}&vsn=2.0.0", support::user_token(99)));
    assert!(matches!(Client::connect(&url).await, Err(Refused::Status(403))), "user 99 stays banned");
    // The game is where it was, seats and turn included, and goes on.
    let mut bob = user(&server, 11, "bob", "user").await;
    let (bob_game, reply) = bob.join("game:g1", json!({"player_token": player_token(11, "bob")})).await;
    assert_eq!(reply[4]["response"]["game"], before);
    let mut ann = user(&server, 10, "ann", "user").await;
    let (ann_game, reply) = ann.join("game:g1", json!({"player_token": player_token(10, "ann")})).await;
    assert_eq!(reply[4]["response"]["game"], before);
    ann.push(&ann_game, "game:g1", "make_move", json!({"move": {"cell": 8}})).await;
    let made = ann.recv().await;
    assert_eq!(made[3], "move_made", "{made}");
    assert_eq!(made[4]["game"]["board"], json!(["O", null, null, null, "X", null, null, null, "X"]));
    let reference = bob.push(&bob_game, "game:g1", "request_game_state", json!({})).await;
    assert_eq!(reply_to(&mut bob, &reference).await["response"]["game"]["current_turn"], 11);

    // The campaign keeps its total, goal, organizer and donation ids.
    let (bob_campaign, state) = join_campaign(&mut bob, campaign).await;
    assert_eq!(state, json!({"goal": "5000.00", "id": "c1", "total": "25.75"}));
    let reference = bob.push(&bob_campaign, campaign, "update_goal", json!({"new_goal": "1"})).await;
    assert_eq!(reply_to(&mut bob, &reference).await["response"], json!({"reason": "unauthorized"}));
    assert_eq!(donate(&mut bob, &bob_campaign, campaign, "1").await["response"], json!({"donation_id": "3"}));
}

#[tokio::test]
async fn every_acknowledged_write_survives_a_clean_shutdown() {
    let dir = TempDir::new("durable");
    let file = dir.0.join("plume.redb");
    let campaign = "donations:campaign:many";

    let server = start(&file);
    let mut ann = user(&server, 10, "ann", "user").await;
    let (join_ref, _) = join_campaign(&mut ann, campaign).await;
    for n in 1..=40 {
        let reply = donate(&mut ann, &join_ref, campaign, "0.01").await;
        assert_eq!(reply["response"], json!({"donation_id": n.to_string()}));
    }
    // Stop right after the last acknowledgement.
    stop(server).await;

    let server = start(&file);
    let mut ann = user(&server, 10, "ann", "user").await;
    let (join_ref, state) = join_campaign(&mut ann, campaign).await;
    assert_eq!(state["total"], "0.40");
    assert_eq!(donate(&mut ann, &join_ref, campaign, "0.01").await["response"], json!({"donation_id": "41"}));
}

#[tokio::test]
async fn acknowledged_writes_survive_even_a_killed_server() {
    let dir = TempDir::new("durable");
    let file = dir.0.join("plume.redb");
    let campaign = "donations:campaign:killed";

    let server = start(&file);
    let mut ann = user(&server, 10, "ann", "user").await;
    let (join_ref, _) = join_campaign(&mut ann, campaign).await;
    for _ in 0..10 {
        assert_eq!(donate(&mut ann, &join_ref, campaign, "1.10").await["status"], "ok");
    }
    drop(server); // SIGKILL: no shutdown at all

    let server = start(&file);
    let mut ann = user(&server, 10, "ann", "user").await;
    let (_, state) = join_campaign(&mut ann, campaign).await;
    assert_eq!(state["total"], "11.00");
}

#[tokio::test]
async fn a_server_killed_during_concurrent_writes_loses_no_acknowledged_write() {
    const WRITERS: i64 = 4;
    const BEFORE_THE_KILL: usize = 200;
    let dir = TempDir::new("durable-kill");
    let config = support::probe_config_with(&format!(
        "[kv]\nengine = \"redb\"\npath = \"{}\"",
        dir.0.join("plume.redb").display()
    ));
    let mut server = Server::start_config(&config).unwrap_or_else(|log| panic!("the server starts:\n{log}"));

    // Writers in closed loops, each on its own socket and keys; a write
    // counts as acknowledged when its ok reply has arrived.
    let acknowledged = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let mut writers = Vec::new();
    for w in 1..=WRITERS {
        let mut c = server.client(w).await;
        let topic = format!("probe:writer{w}");
        let join_ref = c.join_ok_probe(&topic).await;
        let acknowledged = acknowledged.clone();
        writers.push(tokio::spawn(async move {
            for n in 0u64.. {
                let (key, value) = (format!("w{w}:{n:06}"), format!("{w}/{n}"));
                let frame = json!([join_ref, n.to_string(), topic, "kv", {"op": "set", "key": key, "value": value}]);
                if !c.try_send(frame).await {
                    return;
                }
                match c.try_recv().await {
                    Some(reply) => {
                        assert_eq!(reply[1], json!(n.to_string()), "{reply}");
                        assert_eq!(reply[4]["status"], "ok", "{reply}");
                        acknowledged.lock().expect("acknowledged").push((key, value));
                    }
                    None => return,
                }
            }
        }));
    }
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while acknowledged.lock().expect("acknowledged").len() < BEFORE_THE_KILL {
        assert!(std::time::Instant::now() < until, "the writers stalled");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    server.kill();
    for writer in writers {
        writer.await.expect("a writer failed before the kill");
    }
    let acknowledged = acknowledged.lock().expect("acknowledged").clone();

    // The store opens, and holds every acknowledged write; at most one
    // write per writer was in flight at the kill, and may or may not be.
    let server = Server::start_config(&config).unwrap_or_else(|log| panic!("the store opens after a kill:\n{log}"));
    let mut reader = server.client(9).await;
    let j = reader.join_ok_probe("probe:check").await;
    let reference = reader.push(&j, "probe:check", "kv", json!({"op": "list", "prefix": "w", "limit": 100_000})).await;
    let listed = reply_to(&mut reader, &reference).await;
    let stored: std::collections::HashMap<String, String> =
        serde_json::from_value::<Vec<(String, String)>>(listed["response"]["result"].clone())
            .unwrap_or_else(|e| panic!("{listed}: {e}"))
            .into_iter()
            .collect();
    for (key, value) in &acknowledged {
        assert_eq!(stored.get(key), Some(value), "acknowledged write {key} lost ({} acknowledged)", acknowledged.len());
    }
    assert!(stored.len() <= acknowledged.len() + WRITERS as usize, "{} stored, {} acknowledged", stored.len(), acknowledged.len());
}

#[tokio::test]
async fn a_second_server_cannot_open_a_kv_file_in_use_and_says_so() {
    let dir = TempDir::new("durable");
    let file = dir.0.join("plume.redb");
    let _first = start(&file);
    match Server::start_config(&config(&file)) {
        Ok(_) => panic!("two servers opened one key-value file"),
        Err(log) => {
            assert!(log.contains("[kv]"), "{log}");
            assert!(log.contains("plume.redb"), "{log}");
        }
    }
}

#[tokio::test]
async fn an_unknown_kv_engine_stops_start_up_with_the_file_line_and_choices() {
    match Server::start_config("[kv]\nengine = \"sqlite\"\n") {
        Ok(_) => panic!("an unknown engine was accepted"),
        Err(log) => {
            assert!(log.contains("plume.toml:2"), "{log}");
            assert!(log.contains("`memory`") && log.contains("`redb`"), "{log}");
        }
    }
}
