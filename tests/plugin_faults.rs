//! A plugin that fails ends only its own channel; broken plugin files are
//! refused with a clear error.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::busy::BusyLoops;
use support::{Server, priority};

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

#[tokio::test]
async fn a_long_call_runs_at_idle_priority_and_its_thread_gets_normal_priority_back() {
    let server = Server::start_probe();
    if !priority::demotes_or_skip(&server) {
        return;
    }
    let mut c = server.client(1).await;
    let bad = c.join_ok_probe("probe:bad").await;
    assert_eq!(priority::idle_threads(server.pid()), 0);
    c.push(&bad, "probe:bad", "spin", json!({})).await;
    // The probe's deadline is 300 ms; the call is demoted at its first
    // epoch tick (0.5 ms), so it is seen demoted well before its end.
    let mut seen = 0;
    let until = Instant::now() + Duration::from_millis(250);
    while Instant::now() < until && seen == 0 {
        seen = priority::idle_threads(server.pid());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(seen, 1, "one thread, the spinning call's, runs at SCHED_IDLE");
    assert_eq!(c.recv().await, json!([bad, bad, "probe:bad", "phx_error", {}]));
    every_thread_back_at_normal_priority(&server).await;
    // And the threads still serve at normal speed: another channel answers.
    let good = c.join_ok("room:good").await;
    let reference = c.push(&good, "room:good", "ping", json!({})).await;
    assert_eq!(c.recv().await[1], reference.as_str());
}

/// Poll until no thread of the server runs at idle priority.
async fn every_thread_back_at_normal_priority(server: &Server) {
    let until = Instant::now() + support::WAIT;
    while priority::idle_threads(server.pid()) != 0 {
        assert!(Instant::now() < until, "a thread stayed at idle priority after the call ended");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The probe's `deadline_ms`.
const DEADLINE: Duration = Duration::from_millis(300);

/// A spinning call on a machine whose two cores are busy with eight loops
/// of other work at normal priority: its channel gets `phx_error` within
/// twice its deadline plus 200 ms, three times in a row, and the server
/// serves on.
async fn a_spinning_call_is_stopped_in_time_under_load(server: Server) {
    // One test at a time starts its loops, so each sees exactly eight.
    static LOADED: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _alone = LOADED.lock().await;
    let mut c = server.client(1).await;
    let good = c.join_ok("room:good").await;
    let _load = BusyLoops::start(8);
    for round in 0..3 {
        let (bad, reply) = c.join("probe:bad", json!({})).await;
        assert_eq!(reply[4]["status"], "ok", "round {round}: {reply}\n{}", server.log());
        let pushed = Instant::now();
        c.push(&bad, "probe:bad", "spin", json!({})).await;
        assert_eq!(c.recv().await, json!([bad, bad, "probe:bad", "phx_error", {}]), "round {round}");
        let took = pushed.elapsed();
        eprintln!("round {round}: phx_error {took:?} after the push");
        assert!(took >= DEADLINE, "round {round}: stopped before its deadline, after {took:?}");
        assert!(
            took <= 2 * DEADLINE + Duration::from_millis(200),
            "round {round}: a spinning call with a deadline of {DEADLINE:?} was stopped only after {took:?} on a busy machine"
        );
    }
    every_thread_back_at_normal_priority(&server).await;
    let reference = c.push(&good, "room:good", "ping", json!({})).await;
    assert_eq!(c.recv().await[1], reference.as_str());
}

#[tokio::test]
async fn a_spinning_call_is_stopped_within_twice_its_deadline_on_a_busy_machine() {
    let server = Server::start_probe();
    if !priority::demotes_or_skip(&server) {
        return;
    }
    a_spinning_call_is_stopped_in_time_under_load(server).await;
}

#[tokio::test]
async fn a_spinning_call_is_stopped_within_twice_its_deadline_on_a_busy_machine_without_the_right_to_change_priorities() {
    let server = Server::start_config_with(support::PROBE_CONFIG, priority::without_priority_rights).expect("starts");
    assert!(!priority::has_cap_sys_nice(server.pid()), "the server still holds CAP_SYS_NICE");
    assert!(server.wait_for_log(priority::KEEPS_NORMAL_PRIORITY), "{}", server.log());
    a_spinning_call_is_stopped_in_time_under_load(server).await;
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

/// How many of the probe's `broadcast_storm` messages (`{"n": 0}`,
/// `{"n": 1}`, ...) one call may send within `max_output_bytes_per_call`:
/// each costs its payload's bytes plus 64 (the README's rule).
fn storm_messages_within(budget: usize) -> u64 {
    let mut spent = 0;
    for n in 0.. {
        let cost = json!({ "n": n }).to_string().len() + 64;
        if spent + cost > budget {
            return n;
        }
        spent += cost;
    }
    unreachable!("the budget runs out")
}

#[tokio::test]
async fn a_plugin_that_broadcasts_in_a_tight_loop_is_stopped_and_its_subscribers_stay_bounded() {
    const BUDGET: usize = 72_000;
    let server = Server::start_config(&support::probe_config_with(&format!("[limits]\nmax_output_bytes_per_call = {BUDGET}")))
        .expect("starts");
    let mut c = server.client(1).await;
    let mut other = server.client(2).await;
    let jo = other.join_ok("room:lobby").await;
    // A subscriber of the stormed topic that reads everything it gets.
    let mut listener = server.client(3).await;
    let jl = listener.join_ok("room:storm").await;
    let bad = c.join_ok_probe("probe:bad").await;
    c.push(&bad, "probe:bad", "broadcast_storm", json!({"topic": "room:storm"})).await;
    assert_eq!(c.recv().await, json!([bad, bad, "probe:bad", "phx_error", {}]));
    assert!(server.wait_for_log("deadline"), "{}", server.log());
    // The storm ran to its deadline, but its output budget let exactly
    // this many broadcasts out; the listener gets each, in order, and no
    // more.
    let expected = storm_messages_within(BUDGET);
    assert!(expected > 100, "a budget of {BUDGET} bytes lets {expected} through");
    for n in 0..expected {
        assert_eq!(listener.recv().await, json!([null, null, "room:storm", "storm", {"n": n}]), "{n} of {expected}");
    }
    listener.expect_quiet().await;
    let reference = listener.push(&jl, "room:storm", "ping", json!({})).await;
    assert_eq!(listener.recv().await[1], reference.as_str());
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
