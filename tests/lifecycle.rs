//! Start-up and graceful shutdown.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::Server;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test]
async fn sigterm_closes_every_socket_with_1012_and_exits_cleanly() {
    let mut server = Server::start();
    let mut a = server.client(42).await;
    let mut b = server.client(7).await;
    a.join_ok("room:lobby").await;
    b.join_ok("room:other").await;
    let status = tokio::task::spawn_blocking(move || {
        let status = server.terminate();
        (status, server)
    });
    assert_eq!(a.expect_close().await, Some(CloseCode::Restart));
    assert_eq!(b.expect_close().await, Some(CloseCode::Restart));
    let (status, server) = status.await.expect("join");
    assert!(status.success(), "exit status {status:?}\n{}", server.log());
}

#[test]
fn start_up_reports_what_it_loaded_and_where_it_listens() {
    let server = Server::start();
    assert!(server.wait_for_log("route room:* -> plugin `room`"), "{}", server.log());
    let log = server.log();
    assert!(log.contains("loading plugin `room`"), "{log}");
    assert!(log.contains("socket plugin `user_socket` version"), "{log}");
}

/// The probe on the durable key-value store in `dir`, where its
/// `terminate` records the reason per topic.
fn durable_probe_config(dir: &support::TempDir) -> String {
    support::probe_config_with(&format!("[kv]\nengine = \"redb\"\npath = \"{}\"", dir.0.join("plume.redb").display()))
}

#[tokio::test]
async fn shutdown_runs_every_channels_terminate_with_reason_shutdown() {
    let dir = support::TempDir::new("terminate");
    let config = durable_probe_config(&dir);
    let mut server = Server::start_config(&config).expect("starts");
    let mut a = server.client(1).await;
    a.join_ok_probe("probe:bye").await;
    let (status, server) = tokio::task::spawn_blocking(move || {
        let status = server.terminate();
        (status, server)
    })
    .await
    .expect("join");
    assert_eq!(a.expect_close().await, Some(CloseCode::Restart));
    assert!(status.success(), "{}", server.log());
    drop(server);

    // The channel's terminate ran with reason "shutdown": it says so in the
    // store, read back through the next server.
    let server = Server::start_config(&config).expect("restarts");
    let mut b = server.client(2).await;
    let j = b.join_ok_probe("probe:check").await;
    let reference = b.push(&j, "probe:check", "kv", json!({"op": "get", "key": "terminated:probe:bye"})).await;
    let reply = b.recv().await;
    assert_eq!(reply[1], reference.as_str(), "{reply}");
    assert_eq!(reply[4]["response"]["result"]["value"], "shutdown", "{reply}");
}

#[tokio::test]
async fn a_silent_socket_is_closed_after_the_idle_timeout_and_heartbeats_keep_one_open() {
    const IDLE: Duration = Duration::from_millis(1500);
    let config = support::probe_config_with(&format!("[limits]\nidle_timeout_ms = {}", IDLE.as_millis()));
    let server = Server::start_config(&config).expect("starts");
    let mut silent = server.client(1).await;
    let mut beating = server.client(2).await;
    let started = Instant::now();
    // Heartbeats every 200 ms for twice the idle timeout: the beating
    // socket stays open while the silent one is closed.
    let mut i = 0;
    while started.elapsed() < 2 * IDLE {
        beating.send_text(&format!(r#"[null,"{i}","phoenix","heartbeat",{{}}]"#)).await;
        assert_eq!(beating.recv().await[1], i.to_string());
        i += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Phoenix (Bandit) closes an idle socket with 1002; so does plume.
    assert_eq!(silent.expect_close().await, Some(CloseCode::Protocol));
    assert!(started.elapsed() >= IDLE);
    beating.send_text(r#"[null,"x","phoenix","heartbeat",{}]"#).await;
    assert_eq!(beating.recv().await[1], "x");
}

/// The compile cache's entries in `dir`, with the time each was written.
fn cache_entries(dir: &std::path::Path) -> Vec<(std::path::PathBuf, std::time::SystemTime)> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("cache dir")
        .map(|entry| {
            let path = entry.expect("entry").path();
            let written = std::fs::metadata(&path).and_then(|m| m.modified()).expect("mtime");
            (path, written)
        })
        .collect();
    entries.sort();
    entries
}

#[test]
fn a_restart_loads_compiled_plugins_from_the_compile_cache() {
    let cache = support::TempDir::new("compile-cache");
    let config = format!(
        "[runtime]\ncache_dir = \"{}\"\n\n{}",
        cache.0.display(),
        support::edit(support::PROBE_CONFIG, "[runtime]\n", "")
    );
    let first = Server::start_config(&config).expect("starts");
    assert!(first.wait_for_log("route probe:*"), "{}", first.log());
    assert!(first.log().contains("channel plugin `room` version"), "{}", first.log());
    assert!(!first.log().contains("from the compile cache"), "{}", first.log());
    drop(first);
    let compiled = cache_entries(&cache.0);
    assert_eq!(compiled.len(), 3, "one entry per plugin: {compiled:?}");

    let second = Server::start_config(&config).expect("starts");
    assert!(second.wait_for_log("route probe:*"), "{}", second.log());
    let log = second.log();
    assert!(log.contains("channel plugin `room` version"), "{log}");
    assert_eq!(log.matches("loaded from the compile cache").count(), 3, "{log}");
    drop(second);
    assert_eq!(cache_entries(&cache.0), compiled, "loaded, not compiled and written again");

    // A damaged entry is dropped with a warning and the plugin recompiled.
    for (path, _) in &compiled {
        std::fs::write(path, b"garbage").expect("damage");
    }
    let third = Server::start_config(&config).expect("starts despite a damaged cache");
    assert!(third.wait_for_log("route probe:*"), "{}", third.log());
    assert!(third.log().contains("unusable compile-cache entry"), "{}", third.log());
    for (path, _) in &compiled {
        let entry = std::fs::read(path).expect("the entry is written again");
        assert_ne!(entry, b"garbage", "{} was not rewritten", path.display());
    }
}

/// The app's figure `name` at `/metrics`.
fn figure(server: &Server, name: &str) -> u64 {
    let response = server.admin_page("/metrics");
    response
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name}{{tenant=\"demo\"}} ")))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{response}"))
}

#[tokio::test]
async fn shutdown_gives_up_on_a_call_still_running_at_shutdown_timeout_ms() {
    const TIMEOUT: Duration = Duration::from_millis(500);
    let config = support::edit(
        &support::probe_config_with(&format!("[server]\nshutdown_timeout_ms = {}", TIMEOUT.as_millis())),
        "deadline_ms = 300",
        "deadline_ms = 60000",
    );
    let mut server = Server::start_config(&config).expect("starts");
    let mut busy = server.client(1).await;
    let mut idle = server.client(2).await;
    let j = busy.join_ok_probe("probe:busy").await;
    idle.join_ok("room:idle").await;
    busy.push(&j, "probe:busy", "busy", json!({"ms": 30_000})).await;
    // The socket counts a frame in, then runs its call without a pause:
    // once the third frame (two joins, the push) is counted, the call is
    // running.
    let until = Instant::now() + support::WAIT;
    while figure(&server, "plume_messages_in_total") < 3 {
        assert!(Instant::now() < until, "the push never arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let sent = Instant::now();
    let stopped = tokio::task::spawn_blocking(move || {
        let status = server.terminate();
        (status, sent.elapsed(), server)
    });
    // The other socket closes at once, as at every shutdown.
    assert_eq!(idle.expect_close().await, Some(CloseCode::Restart));
    let (status, took, server) = stopped.await.expect("join");
    assert!(status.success(), "exit status {status:?}\n{}", server.log());
    assert!(took >= TIMEOUT, "exited after {took:?}, before its shutdown timeout");
    assert!(
        took < TIMEOUT + Duration::from_secs(3),
        "exited {took:?} after SIGTERM: it waited for the 30 s call instead of giving up at {TIMEOUT:?}\n{}",
        server.log()
    );
    assert!(server.log().contains("some sockets did not close within"), "{}", server.log());
    // The busy socket's task never got back from its call: its connection
    // ended with the process, without a close frame.
    assert_eq!(busy.expect_close().await, None);
}

/// A chat member: connected as user `id`, joined to `chat:lobby` (tracked
/// in presence). It reads nothing after the join reply.
async fn chat_member(server: &Server, id: i64) -> support::Client {
    let mut client = server.client(id).await;
    let (join_ref, reply) = client.join("chat:lobby", json!({"token": support::user_token(id)})).await;
    assert_eq!(reply, json!([join_ref, join_ref, "chat:lobby", "phx_reply", {"response": {}, "status": "ok"}]));
    client
}

/// Join `chat:lobby` as `observer` until its `presence_state` lists each of
/// users 1 to `members` once, with one meta each, and nobody else: the
/// presences of sockets that went away must leave.
async fn presence_converges(server: &Server, members: i64, observer: i64) {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let mut client = server.client(observer).await;
        let (join_ref, reply) = client.join("chat:lobby", json!({"token": support::user_token(observer)})).await;
        assert_eq!(reply[4]["status"], "ok", "{reply}");
        let state = loop {
            let frame = client.recv().await;
            if frame[3] == "presence_state" {
                assert_eq!(frame[0], json!(join_ref));
                break frame[4].clone();
            }
        };
        let listed = state.as_object().expect("presence_state is a map");
        let wrong: Vec<String> = listed
            .iter()
            .filter(|(key, _)| key.as_str() != observer.to_string())
            .filter_map(|(key, entry)| {
                let metas = entry["metas"].as_array().map_or(0, Vec::len);
                let member = key.parse::<i64>().is_ok_and(|id| (1..=members).contains(&id));
                (!member || metas != 1).then(|| format!("{key} with {metas} metas"))
            })
            .collect();
        let missing = (1..=members).filter(|id| !listed.contains_key(&id.to_string())).count();
        if wrong.is_empty() && missing == 0 {
            return;
        }
        assert!(
            Instant::now() < until,
            "presence never settled: {missing} members missing, and these should not be there: {wrong:?}"
        );
        drop(client);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_reconnect_storm_after_a_restart_leaves_no_ghost_presences() {
    const MEMBERS: i64 = 300;
    let config = support::demo_config_with("");
    let mut first = Server::start_config(&config).expect("starts");
    let members = futures_util::future::join_all((1..=MEMBERS).map(|id| chat_member(&first, id))).await;
    presence_converges(&first, MEMBERS, MEMBERS + 1).await;

    // A restart on the same address: every member is closed with 1012 and
    // comes back at once.
    let addr = first.addr.clone();
    let (status, _first) = tokio::task::spawn_blocking(move || (first.terminate(), first)).await.expect("join");
    assert!(status.success());
    drop(members);
    let second = Server::start_config_with(&config, |command| {
        command.args(["--bind", &addr]);
    })
    .expect("restarts on the same address");
    let mut members = futures_util::future::join_all((1..=MEMBERS).map(|id| chat_member(&second, id))).await;
    presence_converges(&second, MEMBERS, MEMBERS + 1).await;

    // Half of them reconnect: the new socket joins first, then the old
    // connection drops without a close frame, as a client on a flaky
    // network does; the old socket's presence must leave.
    let dropped: Vec<i64> = (1..=MEMBERS).filter(|id| id % 2 == 0).collect();
    for id in &dropped {
        drop(std::mem::replace(&mut members[(*id - 1) as usize], chat_member(&second, *id).await));
    }
    presence_converges(&second, MEMBERS, MEMBERS + 1).await;
}
