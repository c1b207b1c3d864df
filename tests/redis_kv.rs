//! The Redis key-value engine (`[kv] engine = "redis"`) end to end: two
//! real plume servers on one real `redis-server` share games, donation
//! totals and bans, and the state outlives every plume process.
//!
//! Broadcasts do not cross servers here (that is the cluster broker's
//! work): each player reads what the other did from the shared store.

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use support::redis::Redis;
use support::{Client, Refused, Server, TempDir};

/// The demo app's shared-state channels, with `kv` as the `[kv]` table.
fn config(kv: &str) -> String {
    format!(
        r#"
[app]
socket_plugin = "user_socket"

[kv]
{kv}

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
"#
    )
}

/// A plume server storing in the Redis at `url`.
fn start(redis: &Redis) -> Server {
    Server::start_config(&config(&format!("engine = \"redis\"\nurl = \"{}\"", redis.url())))
        .unwrap_or_else(|log| panic!("the server starts:\n{log}"))
}

/// SIGTERM, and wait for a clean exit.
async fn stop(mut server: Server) {
    let (status, server) = tokio::task::spawn_blocking(move || (server.terminate(), server))
        .await
        .expect("join");
    assert!(status.success(), "exit status {status:?}\n{}", server.log());
}

async fn user(server: &Server, id: i64, name: &str) -> Client {
    let token = support::token("user socket", json!({"id": id, "name": name, "role": "user"}));
    Client::connect(&server.ws_url(&format!("token={token}&vsn=2.0.0")))
        .await
        .expect("the connection is accepted")
}

async fn admin(server: &Server) -> Client {
    let token = support::token("user socket", json!({"id": 1, "name": "alice", "role": "admin"}));
    Client::connect(&server.ws_url(&format!("token={token}&vsn=2.0.0")))
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

/// The game as `client` reads it now.
async fn game_state(client: &mut Client, join_ref: &str, topic: &str) -> Value {
    let reference = client.push(join_ref, topic, "request_game_state", json!({})).await;
    reply_to(client, &reference).await["response"]["game"].clone()
}

/// Joins a donation campaign and returns its join ref and `campaign_state`.
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

/// Donates `amount` and returns the donation id.
async fn donate(client: &mut Client, join_ref: &str, topic: &str, amount: &str) -> String {
    let reference = client
        .push(join_ref, topic, "new_donation", json!({"amount": amount, "donor_name": "d"}))
        .await;
    let reply = reply_to(client, &reference).await;
    assert_eq!(reply["status"], "ok", "{reply}");
    reply["response"]["donation_id"].as_str().expect("a donation id").to_owned()
}

/// Donates 0.05 `times` times, one after the other; returns the ids.
async fn donate_times(client: &mut Client, join_ref: &str, topic: &str, times: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..times {
        ids.push(donate(client, join_ref, topic, "0.05").await);
    }
    ids
}

#[tokio::test]
async fn two_players_on_two_servers_play_one_game() {
    let redis = Redis::start();
    let (one, two) = (start(&redis), start(&redis));
    let topic = "game:g1";
    let mut ann = user(&one, 10, "ann").await;
    let mut bob = user(&two, 11, "bob").await;
    let (ann_game, _) = ann.join(topic, json!({"player_token": player_token(10, "ann")})).await;
    let (bob_game, reply) = bob.join(topic, json!({"player_token": player_token(11, "bob")})).await;
    let game = &reply[4]["response"]["game"];
    assert_eq!(game["status"], "playing", "bob, on the other server, takes the second seat: {reply}");
    assert_eq!(game["players"][0]["name"], "ann");
    assert_eq!(game["current_turn"], 10);

    ann.push(&ann_game, topic, "make_move", json!({"move": {"cell": 4}})).await;
    // In a cluster ann also hears bob's player_joined from the other node.
    let mut heard = Vec::new();
    while heard.last() != Some(&json!("move_made")) {
        heard.push(ann.recv().await[3].clone());
    }
    assert!(heard.len() <= 2, "only player_joined may come before move_made: {heard:?}");
    let seen_by_bob = game_state(&mut bob, &bob_game, topic).await;
    assert_eq!(seen_by_bob["board"][4], "X");
    assert_eq!(seen_by_bob["current_turn"], 11);

    // ann cannot play bob's turn, on either server.
    let reference = ann.push(&ann_game, topic, "make_move", json!({"move": {"cell": 0}})).await;
    assert_eq!(reply_to(&mut ann, &reference).await["response"], json!({"reason": "not_your_turn"}));
    bob.push(&bob_game, topic, "make_move", json!({"move": {"cell": 0}})).await;
    let made = bob.recv().await;
    assert_eq!(made[3], "move_made", "{made}");
    assert_eq!(made[4]["game"]["board"], json!(["O", null, null, null, "X", null, null, null, null]));
    assert_eq!(game_state(&mut ann, &ann_game, topic).await, made[4]["game"]);
}

/// What became of a move `client` pushed as `reference`: `true` when it was
/// played (its own server broadcast `move_made`), `false` when refused.
async fn played(client: &mut Client, reference: &str) -> bool {
    loop {
        let frame = client.recv().await;
        if frame[3] == "move_made" {
            return true;
        }
        if frame[1] == json!(reference) {
            assert_eq!(frame[4]["response"], json!({"reason": "not_your_turn"}), "{frame}");
            return false;
        }
    }
}

#[tokio::test]
async fn two_moves_racing_for_one_turn_on_two_servers_play_once() {
    let redis = Redis::start();
    let (one, two) = (start(&redis), start(&redis));
    let mut ann_one = user(&one, 10, "ann").await;
    let mut ann_two = user(&two, 10, "ann").await;
    let mut bob = user(&two, 11, "bob").await;
    for game in 0..3 {
        let topic = format!("game:race{game}");
        let topic = topic.as_str();
        let (ref_one, _) = ann_one.join(topic, json!({"player_token": player_token(10, "ann")})).await;
        let (ref_two, _) = ann_two.join(topic, json!({"player_token": player_token(10, "ann")})).await;
        let (bob_ref, _) = bob.join(topic, json!({"player_token": player_token(11, "bob")})).await;

        // ann plays her turn from both servers at once, a cell from each.
        let (push_one, push_two) = tokio::join!(
            ann_one.push(&ref_one, topic, "make_move", json!({"move": {"cell": 0}})),
            ann_two.push(&ref_two, topic, "make_move", json!({"move": {"cell": 1}})),
        );
        let (first, second) = (played(&mut ann_one, &push_one).await, played(&mut ann_two, &push_two).await);
        assert!(first != second, "exactly one of the racing moves is played ({first}, {second})");
        let game = game_state(&mut bob, &bob_ref, topic).await;
        let marks = game["board"].as_array().expect("a board").iter().filter(|cell| **cell == "X").count();
        assert_eq!(marks, 1, "{game}");
        assert_eq!(game["current_turn"], 11);
    }
}

#[tokio::test]
async fn donations_on_two_servers_add_up_without_losing_one() {
    let redis = Redis::start();
    let (one, two) = (start(&redis), start(&redis));
    let campaign = "donations:campaign:shared";
    let mut ann = user(&one, 10, "ann").await;
    let mut bob = user(&two, 11, "bob").await;
    let (ann_ref, _) = join_campaign(&mut ann, campaign).await;
    let (bob_ref, _) = join_campaign(&mut bob, campaign).await;
    let (from_ann, from_bob) = tokio::join!(
        donate_times(&mut ann, &ann_ref, campaign, 15),
        donate_times(&mut bob, &bob_ref, campaign, 15)
    );
    let ids: BTreeSet<u32> = from_ann
        .iter()
        .chain(&from_bob)
        .map(|id| id.parse().expect("a numeric id"))
        .collect();
    assert_eq!(ids, (1..=30).collect(), "every donation has its own id");
    let mut carl = user(&one, 12, "carl").await;
    let (_, state) = join_campaign(&mut carl, campaign).await;
    assert_eq!(state["total"], "1.50");
}

#[tokio::test]
async fn the_state_outlives_every_plume_and_a_ban_holds_on_the_other_server() {
    let redis = Redis::start();
    let (one, two) = (start(&redis), start(&redis));
    let topic = "game:kept";
    let campaign = "donations:campaign:kept";
    let mut ann = user(&one, 10, "ann").await;
    let mut bob = user(&two, 11, "bob").await;
    let (ann_game, _) = ann.join(topic, json!({"player_token": player_token(10, "ann")})).await;
    bob.join(topic, json!({"player_token": player_token(11, "bob")})).await;
    ann.push(&ann_game, topic, "make_move", json!({"move": {"cell": 8}})).await;
    assert_eq!(ann.recv().await[3], "move_made");
    let before = game_state(&mut ann, &ann_game, topic).await;
    let (bob_campaign, _) = join_campaign(&mut bob, campaign).await;
    donate(&mut bob, &bob_campaign, campaign, "12.34").await;

    // An admin on the first server bans user 99: the second refuses them.
    let mut alice = admin(&one).await;
    let admin_ref = alice.join_ok("admin:users").await;
    let reference = alice.push(&admin_ref, "admin:users", "ban_user", json!({"user_id": 99})).await;
    assert_eq!(reply_to(&mut alice, &reference).await["status"], "ok");
    let banned = two.ws_url(&format!("token={}&vsn=2.0.0", support::user_token(99)));
    assert!(matches!(Client::connect(&banned).await, Err(Refused::Status(403))), "the ban holds on the other server");

    drop((ann, bob, alice));
    stop(one).await;
    stop(two).await;

    let three = start(&redis);
    let mut bob = user(&three, 11, "bob").await;
    let (bob_game, reply) = bob.join(topic, json!({"player_token": player_token(11, "bob")})).await;
    assert_eq!(reply[4]["response"]["game"], before, "the game is where it was");
    bob.push(&bob_game, topic, "make_move", json!({"move": {"cell": 0}})).await;
    assert_eq!(bob.recv().await[3], "move_made", "and goes on");
    let (_, state) = join_campaign(&mut bob, campaign).await;
    assert_eq!(state["total"], "12.34");
    let banned = three.ws_url(&format!("token={}&vsn=2.0.0", support::user_token(99)));
    assert!(matches!(Client::connect(&banned).await, Err(Refused::Status(403))), "user 99 stays banned");
}

/// `plume serve --config` for `config`, with `PLUME_REDIS_URL` set to
/// `redis_url` (or removed).
fn start_with_env(config: &str, redis_url: Option<&str>) -> Result<Server, String> {
    let dir = TempDir::new("redis-env");
    let path = dir.0.join("plume.toml");
    std::fs::write(&path, config.replace("{plugins}", &support::plugin_dir().display().to_string())).expect("write config");
    let mut command = Command::new(env!("CARGO_BIN_EXE_plume"));
    command.args(["serve", "--bind", "127.0.0.1:0", "--admin-bind", "127.0.0.1:0", "--config"]).arg(&path);
    match redis_url {
        Some(url) => command.env("PLUME_REDIS_URL", url),
        None => command.env_remove("PLUME_REDIS_URL"),
    };
    Server::spawn_command(command, Some(dir), Duration::from_secs(60))
}

#[tokio::test]
async fn plume_redis_url_names_the_redis_when_the_config_does_not() {
    let redis = Redis::start();
    let by_env = start_with_env(&config("engine = \"redis\""), Some(&redis.url())).unwrap_or_else(|log| panic!("{log}"));
    let by_config = start(&redis);
    let mut ann = user(&by_env, 10, "ann").await;
    let (ann_ref, _) = join_campaign(&mut ann, "donations:campaign:env").await;
    donate(&mut ann, &ann_ref, "donations:campaign:env", "7").await;
    let mut bob = user(&by_config, 11, "bob").await;
    let (_, state) = join_campaign(&mut bob, "donations:campaign:env").await;
    assert_eq!(state["total"], "7.00", "both servers use the same Redis");
}

#[tokio::test]
async fn start_up_stops_with_the_url_when_redis_is_unreachable_or_unnamed() {
    let mut redis = Redis::start();
    redis.stop();
    match Server::start_config(&config(&format!("engine = \"redis\"\nurl = \"{}\"", redis.url()))) {
        Ok(_) => panic!("a server started without its Redis"),
        Err(log) => {
            assert!(log.contains("[kv]"), "{log}");
            assert!(log.contains(&format!("redis at {}", redis.url())) && log.contains("cannot connect"), "{log}");
        }
    }
    match start_with_env(&config("engine = \"redis\""), None) {
        Ok(_) => panic!("a server started with no Redis named"),
        Err(log) => {
            assert!(log.contains("plume.toml:6"), "{log}");
            assert!(log.contains("url") && log.contains("PLUME_REDIS_URL"), "{log}");
        }
    }
}

/// Cluster nodes with no `[kv]` engine named share the `redis` engine on
/// the cluster's Redis: a game, a campaign's total and a ban are one state
/// whichever node a client is on.
#[tokio::test]
async fn cluster_nodes_share_the_default_store_on_the_clusters_redis() {
    let redis = Redis::start();
    let node = || start_with_env(&config(""), Some(&redis.url())).unwrap_or_else(|log| panic!("a node starts:\n{log}"));
    let (one, two) = (node(), node());
    for server in [&one, &two] {
        assert!(
            server.wait_for_log("the redis engine on the cluster's Redis"),
            "the node says which store it uses:\n{}",
            server.log()
        );
    }

    let topic = "game:cluster";
    let mut ann = user(&one, 10, "ann").await;
    let mut bob = user(&two, 11, "bob").await;
    let (ann_game, _) = ann.join(topic, json!({"player_token": player_token(10, "ann")})).await;
    let (bob_game, reply) = bob.join(topic, json!({"player_token": player_token(11, "bob")})).await;
    assert_eq!(reply[4]["response"]["game"]["status"], "playing", "bob takes the second seat on the other node: {reply}");
    ann.push(&ann_game, topic, "make_move", json!({"move": {"cell": 4}})).await;
    // In a cluster ann also hears bob's player_joined from the other node.
    let mut heard = Vec::new();
    while heard.last() != Some(&json!("move_made")) {
        heard.push(ann.recv().await[3].clone());
    }
    assert!(heard.len() <= 2, "only player_joined may come before move_made: {heard:?}");
    let seen_by_bob = game_state(&mut bob, &bob_game, topic).await;
    assert_eq!(seen_by_bob["board"][4], "X", "{seen_by_bob}");
    assert_eq!(seen_by_bob["current_turn"], 11);
    // A second move of ann's is refused on her node: the turn is bob's.
    let reference = ann.push(&ann_game, topic, "make_move", json!({"move": {"cell": 0}})).await;
    assert_eq!(reply_to(&mut ann, &reference).await["response"], json!({"reason": "not_your_turn"}));

    let campaign = "donations:campaign:cluster";
    let (ann_ref, _) = join_campaign(&mut ann, campaign).await;
    let (bob_ref, _) = join_campaign(&mut bob, campaign).await;
    let (from_ann, from_bob) = tokio::join!(
        donate_times(&mut ann, &ann_ref, campaign, 10),
        donate_times(&mut bob, &bob_ref, campaign, 10)
    );
    let ids: BTreeSet<u32> = from_ann.iter().chain(&from_bob).map(|id| id.parse().expect("a numeric id")).collect();
    assert_eq!(ids, (1..=20).collect(), "every donation on either node has its own id");
    let mut carl = user(&two, 12, "carl").await;
    let (_, state) = join_campaign(&mut carl, campaign).await;
    assert_eq!(state["total"], "1.00");

    let mut alice = admin(&one).await;
    let admin_ref = alice.join_ok("admin:users").await;
    let reference = alice.push(&admin_ref, "admin:users", "ban_user", json!({"user_id": 99})).await;
    assert_eq!(reply_to(&mut alice, &reference).await["status"], "ok");
    let banned = two.ws_url(&format!("token={}&vsn=2.0.0", support::user_token(99)));
    assert!(matches!(Client::connect(&banned).await, Err(Refused::Status(403))), "the ban holds on the other node");
}
