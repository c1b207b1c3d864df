//! Hot reload: a plugin swapped while its channels stay joined.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Client, Server, TempDir};

/// A server whose `counter:*` route serves the plugin file in `dir`,
/// starting as version 1. Returns the server and that file's path.
fn start(dir: &TempDir) -> (Server, PathBuf) {
    let file = dir.0.join("counter.wasm");
    std::fs::copy(wasm("reload_v1"), &file).expect("copy v1");
    let config = format!(
        r#"
[runtime]
cache_dir = "{cache}"

[app]
socket_plugin = "user_socket"

[plugins.user_socket]
path = "{{plugins}}/user_socket.wasm"

[plugins.counter]
path = "{file}"

[[routes]]
topic = "counter:*"
plugin = "counter"
"#,
        cache = dir.0.join("cache").display(),
        file = file.display()
    );
    (Server::start_config(&config).expect("starts"), file)
}

fn wasm(name: &str) -> PathBuf {
    support::plugin_dir().join(format!("{name}.wasm"))
}

/// Replace `file` the way deploy tools do: write aside, rename over.
fn rename_over(file: &Path, from: &Path) {
    let aside = file.with_extension("new");
    std::fs::copy(from, &aside).expect("copy");
    std::fs::rename(&aside, file).expect("rename");
}

async fn ping(client: &mut Client, join_ref: &str, topic: &str) -> Value {
    let reference = client.push(join_ref, topic, "ping", json!({})).await;
    let frame = client.recv().await;
    assert_eq!(frame[1], reference.as_str(), "every ping is answered, in order: {frame}");
    assert_eq!(frame[4]["status"], "ok", "{frame}");
    frame[4]["response"].clone()
}

/// Ping until the reply comes from `version`; returns that reply.
async fn ping_until(client: &mut Client, join_ref: &str, topic: &str, version: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = ping(client, join_ref, topic).await;
        if reply["version"] == version {
            return reply;
        }
        assert!(Instant::now() < deadline, "version {version} never went live; last reply {reply}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn status(server: &Server) -> Value {
    let (head, body) = server.admin_get("/_plume/plugins", None);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
    serde_json::from_str(&body).expect("JSON body")
}

fn counter_status(server: &Server) -> Value {
    status(server)["apps"][0]["plugins"]
        .as_array()
        .and_then(|plugins| plugins.iter().find(|p| p["name"] == "counter").cloned())
        .expect("the counter plugin is listed")
}

/// Poll `GET /_plume/plugins` until the counter plugin's entry satisfies
/// `done`; returns that entry.
async fn counter_status_until(server: &Server, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let entry = counter_status(server);
        if done(&entry) {
            return entry;
        }
        assert!(Instant::now() < deadline, "never {what}: {entry}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The error `GET /_plume/plugins` shows for the counter plugin.
fn last_error(entry: &Value) -> &str {
    entry["last_error"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_swapped_plugin_answers_the_next_ping_with_the_same_assigns_and_no_rejoin() {
    let dir = TempDir::new("reload-swap");
    let (server, file) = start(&dir);
    let mut c = server.client(1).await;
    let join_ref = c.join_ok("counter:a").await;
    for _ in 0..3 {
        c.push(&join_ref, "counter:a", "incr", json!({})).await;
        c.recv().await;
    }
    assert_eq!(ping(&mut c, &join_ref, "counter:a").await, json!({"version": 1, "count": 3}));
    let v1 = plume::runtime::version_id(&std::fs::read(&file).expect("read"));

    rename_over(&file, &wasm("reload_v2"));
    let reply = ping_until(&mut c, &join_ref, "counter:a", 2).await;
    // Same channel, same assigns, migrated once by the new version's upgrade.
    assert_eq!(reply, json!({"version": 2, "count": 3, "upgraded_from": v1}));
    let entry = counter_status(&server);
    assert_eq!(entry["version"], plume::runtime::version_id(&std::fs::read(wasm("reload_v2")).expect("read")));
    assert_eq!(entry["channels"], 1);
    assert_eq!(entry["routes"], json!(["counter:*"]));
    assert_eq!(entry["last_error"], Value::Null);
    assert!(entry["loaded_at_ms"].as_u64().expect("loaded_at_ms") > 0);
    assert!(entry["path"].as_str().expect("path").ends_with("counter.wasm"));
}

/// The server log's line that says `needle` and names `version`, once
/// there is one.
fn log_line(server: &Server, needle: &str, version: &str) -> String {
    assert!(server.wait_for_log(needle), "{}", server.log());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let line = server.log().lines().find(|l| l.contains(needle) && l.contains(version)).map(str::to_owned);
        if let Some(line) = line {
            return line;
        }
        assert!(Instant::now() < deadline, "no line `{needle}` for {version}: {}", server.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `plume_plugin_swaps_total` of the counter plugin on `/metrics`.
fn counter_swaps(server: &Server) -> u64 {
    let metrics = server.admin_page("/metrics");
    metrics
        .lines()
        .find(|l| l.starts_with("plume_plugin_swaps_total{") && l.contains("\"counter\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no swap count for counter: {metrics}"))
}

#[tokio::test]
async fn a_swap_not_in_the_compile_cache_goes_live_on_baseline_code_then_optimized_code_as_one_version() {
    let dir = TempDir::new("reload-tiers");
    let (server, file) = start(&dir);
    let mut c = server.client(1).await;
    let join_ref = c.join_ok("counter:tiers").await;
    for _ in 0..2 {
        c.push(&join_ref, "counter:tiers", "incr", json!({})).await;
        c.recv().await;
    }
    let v1 = plume::runtime::version_id(&std::fs::read(&file).expect("read"));
    let v2 = plume::runtime::version_id(&std::fs::read(wasm("reload_v2")).expect("read"));
    assert_eq!(counter_status(&server)["compiler"], "optimized", "start-up loads optimized code");

    rename_over(&file, &wasm("reload_v2"));
    let reply = ping_until(&mut c, &join_ref, "counter:tiers", 2).await;
    assert_eq!(reply, json!({"version": 2, "count": 2, "upgraded_from": v1}));
    let went_live = counter_status(&server)["loaded_at_ms"].clone();
    // Version 2 was never compiled here: Winch's code went live first, and
    // Cranelift's replaced it once compiled in the background.
    let live = log_line(&server, "new plugin version is live", &v2);
    assert!(live.contains("baseline=true"), "{live}");
    log_line(&server, "the version's optimized code is live", &v2);
    let entry = counter_status_until(&server, "optimized", |e| e["compiler"] == "optimized").await;
    assert_eq!(entry["version"], v2.as_str());
    assert_eq!(entry["loaded_at_ms"], went_live, "the optimized code is the same version, live since the swap");

    // On the optimized code the channel has the same assigns, and version
    // 2's `upgrade` ran once: from version 1, not again from itself.
    assert_eq!(ping(&mut c, &join_ref, "counter:tiers").await, json!({"version": 2, "count": 2, "upgraded_from": v1}));
    c.push(&join_ref, "counter:tiers", "incr", json!({})).await;
    assert_eq!(c.recv().await[4]["response"]["count"], 3);
    assert_eq!(counter_swaps(&server), 1, "telemetry counts one swap");
    assert_eq!(last_error(&counter_status(&server)), "");
}

#[tokio::test]
async fn a_swap_to_code_in_the_compile_cache_goes_live_on_optimized_code_directly() {
    let dir = TempDir::new("reload-cached");
    let (server, file) = start(&dir);
    let mut c = server.client(1).await;
    let join_ref = c.join_ok("counter:cached").await;
    rename_over(&file, &wasm("reload_v2"));
    ping_until(&mut c, &join_ref, "counter:cached", 2).await;
    counter_status_until(&server, "optimized", |e| e["compiler"] == "optimized").await;

    // Version 1 was compiled at start-up, so its code is in the cache.
    rename_over(&file, &wasm("reload_v1"));
    ping_until(&mut c, &join_ref, "counter:cached", 1).await;
    let v1 = plume::runtime::version_id(&std::fs::read(wasm("reload_v1")).expect("read"));
    let entry = counter_status(&server);
    assert_eq!((entry["version"].as_str(), entry["compiler"].as_str()), (Some(v1.as_str()), Some("optimized")));
    let live = log_line(&server, "new plugin version is live", &format!("version={v1}"));
    assert!(live.contains("baseline=false"), "{live}");
    assert_eq!(counter_swaps(&server), 2);
}

#[tokio::test]
async fn a_file_written_in_place_in_chunks_goes_live_once_complete() {
    let dir = TempDir::new("reload-chunks");
    let (server, file) = start(&dir);
    let mut c = server.client(1).await;
    let join_ref = c.join_ok("counter:b").await;
    let bytes = std::fs::read(wasm("reload_v2")).expect("read v2");
    let mut out = std::fs::OpenOptions::new().write(true).truncate(true).open(&file).expect("open");
    for chunk in bytes.chunks(bytes.len() / 4 + 1) {
        out.write_all(chunk).expect("write");
        out.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(out);
    let reply = ping_until(&mut c, &join_ref, "counter:b", 2).await;
    assert_eq!(reply["count"], 0);
}

#[tokio::test]
async fn a_broken_file_leaves_the_old_version_answering_and_is_reported() {
    let dir = TempDir::new("reload-broken");
    let (server, file) = start(&dir);
    let mut c = server.client(1).await;
    let join_ref = c.join_ok("counter:c").await;
    let garbage = dir.0.join("garbage");
    std::fs::write(&garbage, b"this is not a component").expect("write");
    rename_over(&file, &garbage);
    let entry = counter_status_until(&server, "reported the broken file", |e| !last_error(e).is_empty()).await;
    assert!(last_error(&entry).contains("not a WebAssembly file"), "{entry}");
    assert_eq!(ping(&mut c, &join_ref, "counter:c").await["version"], 1);

    // A component of the wrong world is refused the same way.
    rename_over(&file, &wasm("user_socket"));
    counter_status_until(&server, "reported the wrong world", |e| last_error(e).contains("channel-handler")).await;
    assert_eq!(ping(&mut c, &join_ref, "counter:c").await["version"], 1);

    // A good file afterwards goes live and clears the error.
    rename_over(&file, &wasm("reload_v2"));
    ping_until(&mut c, &join_ref, "counter:c", 2).await;
    assert_eq!(counter_status(&server)["last_error"], Value::Null);
}

#[tokio::test]
async fn a_deleted_file_keeps_the_last_version_serving_with_a_warning() {
    let dir = TempDir::new("reload-deleted");
    let (server, file) = start(&dir);
    let mut c = server.client(1).await;
    let join_ref = c.join_ok("counter:d").await;
    std::fs::remove_file(&file).expect("delete");
    assert!(server.wait_for_log("the plugin file was deleted"), "{}", server.log());
    assert_eq!(ping(&mut c, &join_ref, "counter:d").await["version"], 1);
}

#[tokio::test]
async fn a_failing_upgrade_errors_only_that_channel() {
    let dir = TempDir::new("reload-upgrade");
    let (server, file) = start(&dir);
    let mut c = server.client(1).await;
    let unlucky = c.join_ok("counter:unlucky").await;
    let fine = c.join_ok("counter:fine").await;
    for _ in 0..13 {
        c.push(&unlucky, "counter:unlucky", "incr", json!({})).await;
        c.recv().await;
    }
    rename_over(&file, &wasm("reload_v2"));
    ping_until(&mut c, &fine, "counter:fine", 2).await;
    c.push(&unlucky, "counter:unlucky", "ping", json!({})).await;
    assert_eq!(c.recv().await, json!([unlucky, unlucky, "counter:unlucky", "phx_error", {}]));
    assert_eq!(ping(&mut c, &fine, "counter:fine").await["version"], 2);
}

#[tokio::test]
async fn a_channel_that_leaves_after_a_swap_is_upgraded_before_its_terminate_runs() {
    let dir = TempDir::new("reload-terminate");
    let (server, file) = start(&dir);
    let mut leaver = server.client(1).await;
    let leaver_ref = leaver.join_ok("counter:t").await;
    for _ in 0..3 {
        leaver.push(&leaver_ref, "counter:t", "incr", json!({})).await;
        leaver.recv().await;
    }
    let mut watcher = server.client(2).await;
    let watcher_ref = watcher.join_ok("counter:t").await;
    rename_over(&file, &wasm("reload_v2"));
    // The watcher's own channel moves to version 2; the leaver's has made
    // no call since the swap, so it still holds version 1's assigns.
    let from = ping_until(&mut watcher, &watcher_ref, "counter:t", 2).await["upgraded_from"].clone();
    assert!(from.is_string(), "version 2 says what it upgraded from: {from}");

    leaver.send(json!([leaver_ref, "9", "counter:t", "phx_leave", {}])).await;
    assert_eq!(leaver.recv().await[3], "phx_reply");
    assert_eq!(
        watcher.recv().await,
        json!([null, null, "counter:t", "terminated", {"version": 2, "reason": "leave", "count": 3, "upgraded_from": from}]),
        "terminate runs on version 2 after its upgrade"
    );
}

#[tokio::test]
async fn twenty_swaps_under_closed_loop_pings_lose_nothing() {
    let dir = TempDir::new("reload-load");
    let (server, file) = start(&dir);
    let mut tasks = Vec::new();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for i in 0..8 {
        let mut c = server.client(i).await;
        let topic = format!("counter:load{i}");
        let join_ref = c.join_ok(&topic).await;
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut answered = 0u64;
            let mut versions = std::collections::BTreeSet::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // `ping` asserts every push gets its reply, in order, ok.
                let reply = ping(&mut c, &join_ref, &topic).await;
                versions.insert(reply["version"].as_u64().unwrap_or(0));
                answered += 1;
            }
            (answered, versions)
        }));
    }
    // Each swap goes live before the next: an observer waits for it.
    let mut observer = server.client(100).await;
    let observed = observer.join_ok("counter:observer").await;
    for swap in 0..20 {
        let (next, version) = if swap % 2 == 0 { ("reload_v2", 2) } else { ("reload_v1", 1) };
        rename_over(&file, &wasm(next));
        ping_until(&mut observer, &observed, "counter:observer", version).await;
        let id = plume::runtime::version_id(&std::fs::read(wasm(next)).expect("read"));
        assert_eq!(counter_status(&server)["version"], id, "swap {swap}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in tasks {
        let (answered, versions) = task.await.expect("no client failed");
        assert!(answered > 20, "each client kept pinging: {answered}");
        assert_eq!(versions.len(), 2, "each client saw both versions: {versions:?}");
    }
    assert_eq!(plugin_faults(&server), 0, "no channel crashed");
    let metrics = server.admin_page("/metrics");
    assert!(
        metrics.contains("plume_plugin_swaps_total{tenant=\"demo\",plugin=\"counter\"} 20\n"),
        "every swap is counted:\n{metrics}"
    );
}

/// The app's `plume_plugin_faults_total` at `/metrics`.
fn plugin_faults(server: &Server) -> u64 {
    let response = server.admin_page("/metrics");
    response
        .lines()
        .find_map(|line| line.strip_prefix("plume_plugin_faults_total{tenant=\"demo\"} "))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no plume_plugin_faults_total in\n{response}"))
}
