//! Hot-swap latency: from a plugin file landing to the first call answered
//! by the new version, and what swapping does to connected clients.
//!
//! Run: `cargo bench -p plume --bench swap` (builds the plugins first).
//!
//! A real `plume` serves the test-only `reload_v1`/`reload_v2` counter
//! plugin from a scratch folder with its own compile cache. Four clients
//! ping in a closed loop throughout; a fifth pings until it sees the new
//! version after each swap. Twenty swaps to versions never seen (each copy
//! carries a distinct custom section, so its content hash is new and it is
//! compiled), then twenty swaps back and forth between two versions already
//! in the cache. A swap not in the cache goes live on Winch's code and
//! moves to Cranelift's in the background (see `plume::reload`); the time to
//! that second step is reported too, from the status page.
//!
//! Then the same for the JavaScript room (`room-js`, 12 MiB): five swaps to
//! copies never seen, each timed from the file landing to the first `ping`
//! answered once the status page shows the new version (the copies behave
//! alike, so the version is read there), and to its optimized code.
//!
//! Prints one JSON line and a summary.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// The server's `SECRET_KEY_BASE` (a configured app needs one), and the
/// tokens' secret.
const SECRET: &str = "plume-swap-bench-secret-key-base-0123456789abcdef0123456789abcdef0123";

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// `bytes` with a custom section appended: the same component, a new hash.
fn with_custom_section(bytes: &[u8], tag: u32) -> Vec<u8> {
    let name = b"plume-bench";
    let data = tag.to_le_bytes();
    let mut out = bytes.to_vec();
    out.push(0); // custom section id
    out.push((1 + name.len() + data.len()) as u8);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.extend_from_slice(&data);
    out
}

fn rename_over(file: &Path, bytes: &[u8]) {
    let aside = file.with_extension("new");
    std::fs::write(&aside, bytes).expect("write");
    std::fs::rename(&aside, file).expect("rename");
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Start `plume` on `config`; returns it with its client and admin addresses.
fn start_server(config: &Path) -> (std::process::Child, String, String) {
    let mut server = Command::new(env!("CARGO_BIN_EXE_plume"))
        .args(["serve", "--bind", "127.0.0.1:0", "--admin-bind", "127.0.0.1:0", "--config"])
        .arg(config)
        .env("PLUME_LOG", "warn")
        .env("SECRET_KEY_BASE", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("plume starts");
    let stdout = server.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
    let mut after = |marker: &str| {
        lines
            .find_map(|line| line.split(marker).nth(1).map(|r| r.split_whitespace().next().unwrap_or_default().to_owned()))
            .expect("plume listens")
    };
    let addr = after(": listening on http://");
    let admin = after("admin listening on http://");
    (server, addr, admin)
}

/// The entry of plugin `name` on the admin listener's `/_plume/plugins`.
async fn plugin_status(admin: &str, name: &str) -> Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(admin).await.expect("admin connects");
    stream
        .write_all(format!("GET /_plume/plugins HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("response");
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body).unwrap_or_default();
    let status: Value = serde_json::from_str(body).expect("JSON status");
    status["apps"][0]["plugins"]
        .as_array()
        .and_then(|plugins| plugins.iter().find(|p| p["name"] == name).cloned())
        .expect("the plugin is listed")
}

/// Poll the status of plugin `name` until `done` holds.
async fn status_until(admin: &str, name: &str, done: impl Fn(&Value) -> bool) {
    loop {
        if done(&plugin_status(admin, name).await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn connect(addr: &str, user: i64) -> (Ws, String) {
    connect_topic(addr, user, &format!("counter:{user}")).await
}

/// A socket of `user` joined to `topic`.
async fn connect_topic(addr: &str, user: i64, topic: &str) -> (Ws, String) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let token = plume::token::Tokens::new(SECRET.as_bytes())
        .sign("user socket", &json!(user), now, 86_400)
        .expect("token");
    let url = format!("ws://{addr}/socket/websocket?token={token}&vsn=2.0.0");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
    let topic = topic.to_owned();
    ws.send(Message::Text(json!(["1", "1", topic, "phx_join", {}]).to_string().into()))
        .await
        .expect("join");
    ws.next().await.expect("join reply").expect("frame");
    (ws, topic)
}

/// One ping: its latency and the version that answered.
async fn ping(ws: &mut Ws, topic: &str, n: u64) -> (Duration, u64) {
    let started = Instant::now();
    ws.send(Message::Text(json!(["1", n.to_string(), topic, "ping", {}]).to_string().into()))
        .await
        .expect("send");
    loop {
        let frame = ws.next().await.expect("a reply").expect("frame");
        if let Message::Text(text) = frame {
            let value: Value = serde_json::from_str(&text).expect("JSON");
            if value[1] == n.to_string().as_str() {
                assert_eq!(value[4]["status"], "ok", "{value}");
                return (started.elapsed(), value[4]["response"]["version"].as_u64().unwrap_or(0));
            }
        }
    }
}

/// Swap `file` to `bytes` and wait until the observer sees `version`.
async fn swap(file: &Path, bytes: &[u8], observer: &mut (Ws, String), version: u64, n: &mut u64) -> Duration {
    let landed = Instant::now();
    rename_over(file, bytes);
    loop {
        *n += 1;
        let (_, seen) = ping(&mut observer.0, &observer.1, *n).await;
        if seen == version {
            return landed.elapsed();
        }
    }
}

fn summary(label: &str, samples: &mut [f64]) -> Value {
    samples.sort_by(|a, b| a.total_cmp(b));
    let (p50, p99) = (percentile(samples, 0.5), percentile(samples, 0.99));
    println!("{label}: p50 {p50:.1} ms, p99 {p99:.1} ms over {} swaps", samples.len());
    json!({"p50_ms": p50, "p99_ms": p99, "swaps": samples.len()})
}

#[tokio::main]
async fn main() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let plugins = plume::build::build_plugin_folders(&workspace, &["plugins", "tests/plugins"]).expect("plugins build");
    let scratch: PathBuf = std::env::temp_dir().join(format!("plume-swap-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch");
    let file = scratch.join("counter.wasm");
    let v1 = std::fs::read(plugins.join("reload_v1.wasm")).expect("v1");
    let v2 = std::fs::read(plugins.join("reload_v2.wasm")).expect("v2");
    std::fs::write(&file, &v1).expect("write");
    let config = scratch.join("plume.toml");
    std::fs::write(
        &config,
        format!(
            "[runtime]\ncache_dir = \"cache\"\n\n[app]\nsocket_plugin = \"user_socket\"\n\n[plugins.user_socket]\npath = \"{}\"\n\n[plugins.counter]\npath = \"counter.wasm\"\n\n[[routes]]\ntopic = \"counter:*\"\nplugin = \"counter\"\n",
            plugins.join("user_socket.wasm").display()
        ),
    )
    .expect("config");
    let (mut server, addr, admin) = start_server(&config);

    // Background clients: closed-loop pings, latencies recorded with the
    // time they were taken.
    let swapping = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut loaders = Vec::new();
    for user in 1..=4 {
        let (mut ws, topic) = connect(&addr, user).await;
        let (swapping, stop) = (swapping.clone(), stop.clone());
        loaders.push(tokio::spawn(async move {
            let (mut quiet, mut during) = (Vec::new(), Vec::new());
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let (latency, _) = ping(&mut ws, &topic, n).await;
                let ms = latency.as_secs_f64() * 1000.0;
                if swapping.load(Ordering::Relaxed) { during.push(ms) } else { quiet.push(ms) }
            }
            (quiet, during)
        }));
    }
    let mut observer = connect(&addr, 100).await;
    let mut n = 0;
    tokio::time::sleep(Duration::from_secs(2)).await;

    swapping.store(true, Ordering::Relaxed);
    let (mut compiled, mut optimized) = (Vec::new(), Vec::new());
    for i in 0..20u32 {
        let (base, version) = if i % 2 == 0 { (&v2, 2) } else { (&v1, 1) };
        let bytes = with_custom_section(base, i);
        let landed = Instant::now();
        compiled.push(swap(&file, &bytes, &mut observer, version, &mut n).await.as_secs_f64() * 1000.0);
        let id = plume::runtime::version_id(&bytes);
        status_until(&admin, "counter", |p| p["version"] == id.as_str() && p["compiler"] == "optimized").await;
        optimized.push(landed.elapsed().as_secs_f64() * 1000.0);
    }
    let mut cached = Vec::new();
    for i in 0..20u32 {
        // Versions 18 and 19 of the first round are in the cache.
        let (tag, base, version) = if i % 2 == 0 { (18, &v2, 2) } else { (19, &v1, 1) };
        let bytes = with_custom_section(base, tag);
        cached.push(swap(&file, &bytes, &mut observer, version, &mut n).await.as_secs_f64() * 1000.0);
    }
    swapping.store(false, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut quiet, mut during) = (Vec::new(), Vec::new());
    for loader in loaders {
        let (q, d) = loader.await.expect("a client failed");
        quiet.extend(q);
        during.extend(d);
    }
    let _ = server.kill();
    let _ = server.wait();

    let compiled = summary("compiled swap (file landed -> first reply from the new version)", &mut compiled);
    let optimized = summary("compiled swap, file landed -> its optimized code serving", &mut optimized);
    let js = js_swaps(&plugins, &scratch).await;
    let _ = std::fs::remove_dir_all(&scratch);
    let cached = summary("cached swap", &mut cached);
    quiet.sort_by(|a, b| a.total_cmp(b));
    during.sort_by(|a, b| a.total_cmp(b));
    let (quiet_p99, during_p99) = (percentile(&quiet, 0.99), percentile(&during, 0.99));
    println!(
        "ping latency of 4 connected clients: quiet p50 {:.3} ms p99 {quiet_p99:.3} ms ({} pings); during swaps p50 {:.3} ms p99 {during_p99:.3} ms ({} pings); ratio p99 {:.2}x",
        percentile(&quiet, 0.5),
        quiet.len(),
        percentile(&during, 0.5),
        during.len(),
        during_p99 / quiet_p99.max(f64::MIN_POSITIVE)
    );
    println!(
        "{}",
        json!({
            "compiled_swap": compiled,
            "compiled_swap_optimized": optimized,
            "js_swap": js,
            "cached_swap": cached,
            "ping_quiet": {"p50_ms": percentile(&quiet, 0.5), "p99_ms": quiet_p99, "count": quiet.len()},
            "ping_during_swaps": {"p50_ms": percentile(&during, 0.5), "p99_ms": during_p99, "count": during.len()},
        })
    );
}

/// Five swaps of the JavaScript room to copies never seen: file landed to
/// the first `ping` answered once the new version serves, and to its
/// optimized code serving.
async fn js_swaps(plugins: &Path, scratch: &Path) -> Value {
    let js = std::fs::read(plugins.join("room-js.wasm")).expect("room-js.wasm (plume build needs Node.js 20+)");
    let dir = scratch.join("js");
    std::fs::create_dir_all(&dir).expect("js scratch");
    let file = dir.join("room.wasm");
    std::fs::write(&file, &js).expect("write");
    let config = dir.join("plume.toml");
    std::fs::write(
        &config,
        format!(
            "[runtime]\ncache_dir = \"cache\"\n\n[app]\nsocket_plugin = \"user_socket\"\n\n[plugins.user_socket]\npath = \"{}\"\n\n[plugins.room]\npath = \"room.wasm\"\n\n[[routes]]\ntopic = \"room:*\"\nplugin = \"room\"\n",
            plugins.join("user_socket.wasm").display()
        ),
    )
    .expect("config");
    let (mut server, addr, admin) = start_server(&config);
    let (mut ws, _) = connect_topic(&addr, 1, "room:lobby").await;
    let (mut live, mut optimized) = (Vec::new(), Vec::new());
    let mut n = 0;
    for i in 0..5u32 {
        let bytes = with_custom_section(&js, 1000 + i);
        let id = plume::runtime::version_id(&bytes);
        let landed = Instant::now();
        rename_over(&file, &bytes);
        status_until(&admin, "room", |p| p["version"] == id.as_str()).await;
        n += 1;
        ping(&mut ws, "room:lobby", n).await;
        live.push(landed.elapsed().as_secs_f64() * 1000.0);
        status_until(&admin, "room", |p| p["version"] == id.as_str() && p["compiler"] == "optimized").await;
        optimized.push(landed.elapsed().as_secs_f64() * 1000.0);
    }
    let _ = server.kill();
    let _ = server.wait();
    json!({
        "live": summary("room-js swap, file landed -> first reply from the new version", &mut live),
        "optimized": summary("room-js swap, file landed -> its optimized code serving", &mut optimized),
    })
}
