//! A plugin that fails ends only its own channel; broken plugin files are
//! refused with a clear error.

mod support;

use serde_json::json;
use support::Server;

#[tokio::test]
async fn a_trapping_plugin_gets_its_channel_phx_error_while_another_channel_keeps_answering() {
    let server = Server::start();
    let mut c = server.client(42).await;
    c.send_text(r#"["5","5","room:lobby","phx_join",{}]"#).await;
    c.recv_text().await;
    let other = c.join_ok("room:side").await;

    c.send_text(r#"["5","6","room:lobby","crash",{}]"#).await;
    assert_eq!(c.recv_text().await, r#"["5","5","room:lobby","phx_error",{}]"#);
    c.send_text(r#"["5","7","room:lobby","ping",{}]"#).await;
    assert_eq!(
        c.recv_text().await,
        r#"[null,"7","room:lobby","phx_reply",{"response":{"reason":"unmatched topic"},"status":"error"}]"#
    );

    let reference = c.push(&other, "room:side", "ping", json!({"alive": true})).await;
    assert_eq!(
        c.recv().await,
        json!([other, reference, "room:side", "phx_reply", {"response": {"alive": true}, "status": "ok"}])
    );
    // phoenix.js rejoins after phx_error: the rejoin works.
    c.join_ok("room:lobby").await;
    assert!(server.wait_for_log("channel crashed"), "the crash is logged:\n{}", server.log());
}

#[tokio::test]
async fn an_unknown_event_crashes_the_channel_as_in_phoenix() {
    let server = Server::start();
    let mut c = server.client(42).await;
    c.send_text(r#"["8","8","room:lobby","phx_join",{}]"#).await;
    c.recv_text().await;
    c.send_text(r#"["8","9","room:lobby","no_such_event",{}]"#).await;
    assert_eq!(c.recv_text().await, r#"["8","8","room:lobby","phx_error",{}]"#);
}

#[tokio::test]
async fn a_crash_in_one_socket_leaves_other_sockets_on_the_topic_untouched() {
    let server = Server::start();
    let mut a = server.client(42).await;
    let mut b = server.client(7).await;
    let ja = a.join_ok("room:lobby").await;
    let jb = b.join_ok("room:lobby").await;
    a.push(&ja, "room:lobby", "crash", json!({})).await;
    assert_eq!(a.recv().await[3], "phx_error");
    b.push(&jb, "room:lobby", "new_msg", json!({"body": "still here"})).await;
    assert_eq!(b.recv().await[4], json!({"body": "still here", "user_id": 7}));
    assert_eq!(b.recv().await[3], "phx_reply");
}

fn config_with_room(path: &str) -> String {
    format!(
        r#"
[app]
socket_plugin = "user_socket"

[plugins.user_socket]
path = "{{plugins}}/user_socket.wasm"

[plugins.room]
path = "{path}"

[[routes]]
topic = "room:*"
plugin = "room"
"#
    )
}

#[test]
fn a_plugin_file_that_is_not_a_component_is_refused_with_its_name_and_what_to_do() {
    let dir = support::TempDir::new("not-a-component");
    let core = dir.0.join("core.wasm");
    // A minimal core module: magic and version 1.
    std::fs::write(&core, [0u8, b'a', b's', b'm', 1, 0, 0, 0]).expect("write");
    let error = Server::start_config(&config_with_room(&core.display().to_string()))
        .err()
        .expect("the server refuses to start");
    assert!(error.contains("room"), "{error}");
    assert!(error.contains("wasm32-wasip2"), "{error}");

    let text = dir.0.join("text.wasm");
    std::fs::write(&text, "hello").expect("write");
    let error = Server::start_config(&config_with_room(&text.display().to_string()))
        .err()
        .expect("the server refuses to start");
    assert!(error.contains("not a WebAssembly file"), "{error}");
}

#[test]
fn a_component_of_the_wrong_world_is_refused_naming_what_is_missing() {
    // The socket plugin does not export the channel handler.
    let error = Server::start_config(&config_with_room("{plugins}/user_socket.wasm"))
        .err()
        .expect("the server refuses to start");
    assert!(error.contains("channel-plugin"), "{error}");
    assert!(error.contains("channel-handler"), "{error}");
}

#[test]
fn a_config_mistake_names_the_file_line_and_key() {
    let error = Server::start_config("[server]\nbind = \"127.0.0.1:0\"\nport = 4000\n")
        .err()
        .expect("the server refuses to start");
    assert!(error.contains("plume.toml:3"), "{error}");
    assert!(error.contains("port"), "{error}");
}

/// Push a misbehaving event on one probe channel: that channel alone gets
/// `phx_error`, a sibling channel on the same socket and another socket
/// keep answering, and the client can rejoin.
async fn only_that_channel_pays(event: &str, log_needle: &str) {
    let server = Server::start_probe();
    let mut c = server.client(1).await;
    let mut other = server.client(2).await;
    let jo = other.join_ok("room:lobby").await;
    let bad = c.join_ok_probe("probe:bad").await;
    let good = c.join_ok("room:good").await;
    let started = std::time::Instant::now();
    c.push(&bad, "probe:bad", event, json!({})).await;
    assert_eq!(c.recv().await, json!([bad, bad, "probe:bad", "phx_error", {}]), "{event}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "{event} stopped in time");
    let reference = c.push(&good, "room:good", "ping", json!({"n": 1})).await;
    assert_eq!(c.recv().await[1], reference.as_str());
    let reference = other.push(&jo, "room:lobby", "ping", json!({})).await;
    assert_eq!(other.recv().await[1], reference.as_str());
    c.join_ok_probe("probe:bad").await;
    assert!(server.wait_for_log(log_needle), "{event}: expected `{log_needle}` in\n{}", server.log());
}

/// The threads of process `pid` scheduled under `SCHED_IDLE` (policy 5,
/// the 41st field of `/proc/PID/task/TID/stat`).
#[cfg(target_os = "linux")]
fn idle_threads(pid: u32) -> usize {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("stat")).ok())
        .filter(|stat| {
            // Fields after the command name, which is in parentheses, start at field 3.
            let rest = &stat[stat.rfind(')').map_or(0, |at| at + 1)..];
            rest.split_whitespace().nth(41 - 3) == Some("5")
        })
        .count()
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_long_call_runs_at_idle_priority_and_its_thread_gets_normal_priority_back() {
    let server = Server::start_probe();
    if server.log().contains("long plugin calls keep normal CPU priority") {
        eprintln!("skipped: this machine does not let plume restore a thread's priority");
        return;
    }
    let mut c = server.client(1).await;
    let bad = c.join_ok_probe("probe:bad").await;
    assert_eq!(idle_threads(server.pid()), 0);
    c.push(&bad, "probe:bad", "spin", json!({})).await;
    // The probe's deadline is 300 ms; the call is demoted at its first epoch tick (0.5 ms).
    let mut seen = 0;
    let until = std::time::Instant::now() + std::time::Duration::from_millis(200);
    while std::time::Instant::now() < until && seen == 0 {
        seen = idle_threads(server.pid());
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(seen, 1, "one thread, the spinning call's, runs at SCHED_IDLE");
    assert_eq!(c.recv().await, json!([bad, bad, "probe:bad", "phx_error", {}]));
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(idle_threads(server.pid()), 0, "the thread is back at normal priority");
    // And the threads still serve at normal speed: another channel answers.
    let good = c.join_ok("room:good").await;
    let reference = c.push(&good, "room:good", "ping", json!({})).await;
    assert_eq!(c.recv().await[1], reference.as_str());
}

#[tokio::test]
async fn a_plugin_that_spins_is_stopped_at_its_deadline() {
    only_that_channel_pays("spin", "deadline").await;
}

#[tokio::test]
async fn a_plugin_that_allocates_without_end_is_stopped_at_its_memory_limit() {
    only_that_channel_pays("grow", "memory limit").await;
}

#[tokio::test]
async fn a_plugin_that_recurses_without_end_is_stopped() {
    // Rust keeps its stack in linear memory: running off it is an
    // out-of-bounds access, which traps like any other fault.
    only_that_channel_pays("recurse", "the plugin trapped").await;
}

#[tokio::test]
async fn a_plugin_that_returns_invalid_json_crashes_only_its_channel() {
    only_that_channel_pays("bad_json", "not valid JSON").await;
}

#[tokio::test]
async fn a_plugin_that_panics_crashes_only_its_channel() {
    only_that_channel_pays("panic", "panicked").await;
}

#[tokio::test]
async fn a_plugin_that_returns_an_enormous_reply_crashes_only_its_channel() {
    // 4 MiB against the default max_payload_bytes of 1 MiB.
    only_that_channel_pays("huge", "max_payload_bytes").await;
}

#[tokio::test]
async fn a_plugin_that_broadcasts_in_a_tight_loop_is_stopped_and_its_subscribers_stay_bounded() {
    let server = Server::start_probe();
    let mut c = server.client(1).await;
    let mut other = server.client(2).await;
    let jo = other.join_ok("room:lobby").await;
    // A subscriber of the stormed topic that reads everything it gets.
    let mut listener = server.client(3).await;
    listener.join_ok("room:storm").await;
    let bad = c.join_ok_probe("probe:bad").await;
    c.push(&bad, "probe:bad", "broadcast_storm", json!({"topic": "room:storm"})).await;
    assert_eq!(c.recv().await, json!([bad, bad, "probe:bad", "phx_error", {}]));
    assert!(server.wait_for_log("deadline"), "{}", server.log());
    // The storm was bounded by the call's output budget and the app's
    // event rate: the listener got a bounded number, or was closed as a
    // slow reader; either way the server goes on.
    let mut storm = 0u64;
    loop {
        match tokio::time::timeout(std::time::Duration::from_millis(500), listener.next_message()).await {
            Ok(Some(tokio_tungstenite::tungstenite::Message::Text(_))) => storm += 1,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    assert!(storm <= 200_000, "{storm} storm messages");
    let reference = other.push(&jo, "room:lobby", "ping", json!({})).await;
    assert_eq!(other.recv().await[1], reference.as_str());
    c.join_ok_probe("probe:bad").await;
}

#[tokio::test]
async fn a_join_that_never_returns_is_stopped_at_its_deadline_and_the_client_can_rejoin() {
    let server = Server::start_probe();
    let mut c = server.client(1).await;
    let mut other = server.client(2).await;
    let jo = other.join_ok("room:lobby").await;
    let good = c.join_ok("room:good").await;
    let started = std::time::Instant::now();
    let (join_ref, reply) = c.join("probe:hang", json!({"hang": true})).await;
    assert_eq!(
        reply,
        json!([join_ref, join_ref, "probe:hang", "phx_reply", {"response": {"reason": "join crashed"}, "status": "error"}])
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let reference = c.push(&good, "room:good", "ping", json!({})).await;
    assert_eq!(c.recv().await[1], reference.as_str());
    let reference = other.push(&jo, "room:lobby", "ping", json!({})).await;
    assert_eq!(other.recv().await[1], reference.as_str());
    c.join_ok_probe("probe:hang").await;
    assert!(server.wait_for_log("join crashed"), "{}", server.log());
}
