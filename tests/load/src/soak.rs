//! The multi-tenant soak: one plume serves two tenants; tenant A runs the
//! hostile probe plugin and a broadcast storm while tenant B's clients
//! ping. Tenant B's latency during the storm is reported beside its
//! latency in a quiet phase of the same run, with the server's memory.
//!
//! Phases, each `--seconds` long: quiet (B pings alone), then storm (B
//! pings while A spins, allocates, recurses, panics, returns enormous and
//! malformed replies, broadcasts in a loop, hangs in join, and floods a
//! topic one of its clients never reads). Loopback only; the server is
//! started and stopped by the run.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::client::{self, Target, Ws};
use crate::compare::server::Server;
use crate::latency::{Latencies, Summary};
use crate::process;
use crate::wire;

#[derive(clap::Args)]
pub struct SoakArgs {
    /// The plume binary to run.
    #[arg(long, default_value = "target/release/plume")]
    pub plume: PathBuf,
    /// The built plugins (user_socket, room and the test-only probe); by
    /// default they are built from this source tree.
    #[arg(long)]
    pub plugin_dir: Option<PathBuf>,
    /// Length of each phase (quiet, then storm).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Tenant B's sockets, each pinging its own room.
    #[arg(long, default_value_t = 20)]
    pub pingers: usize,
    /// Pause between one pinger's pings (after each reply).
    #[arg(long, default_value_t = 10)]
    pub ping_interval_ms: u64,
    /// Tenant A's hostile clients, each cycling through the faults.
    #[arg(long, default_value_t = 4)]
    pub hostile: usize,
}

/// What a run measured.
#[derive(Serialize)]
struct SoakResult {
    quiet: Summary,
    storm: Summary,
    p99_ratio: f64,
    hostile_calls: u64,
    hostile_errors_seen: u64,
    storm_broadcasts: u64,
    non_reader_closed_1008: bool,
    server_rss_quiet_bytes: u64,
    server_rss_storm_max_bytes: u64,
    server_rss_end_bytes: u64,
}

/// The soak server's `SECRET_KEY_BASE` (an app served with `--config`
/// needs one) and its clients' tokens' secret.
const SECRET: &str = "plume-load-soak-secret-key-base-0123456789abcdef0123456789abcdef0123";

/// Tenant A: the hostile probe, a short deadline, few instances, a small
/// outbound queue. Tenant B: the room plugin with the defaults.
fn config(plugins: &std::path::Path) -> String {
    let p = plugins.display();
    format!(
        r#"[runtime]
hot_reload = false

[[tenants]]
id = "a"
socket_path = "/a/socket"
socket_plugin = "user_socket"

[tenants.limits]
deadline_ms = 100
memory_limit_mb = 32
max_instances_per_plugin = 1
outbound_queue = 256
max_events_per_second = 20000

[tenants.plugins.user_socket]
path = "{p}/user_socket.wasm"

[tenants.plugins.probe]
path = "{p}/probe.wasm"

[tenants.plugins.room]
path = "{p}/room.wasm"

[[tenants.routes]]
topic = "probe:*"
plugin = "probe"

[[tenants.routes]]
topic = "room:*"
plugin = "room"

[[tenants]]
id = "b"
socket_path = "/b/socket"
socket_plugin = "user_socket"

[tenants.plugins.user_socket]
path = "{p}/user_socket.wasm"

[tenants.plugins.room]
path = "{p}/room.wasm"

[[tenants.routes]]
topic = "room:*"
plugin = "room"
"#
    )
}

/// The faults a hostile client cycles through, as (event, payload).
const FAULTS: [(&str, &str); 7] = [
    ("spin", "{}"),
    ("grow", "{}"),
    ("recurse", "{}"),
    ("panic", "{}"),
    ("huge", "{}"),
    ("bad_json", "{}"),
    ("broadcast_storm", r#"{"topic":"room:storm"}"#),
];

pub fn run(args: &SoakArgs, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let plugins = match &args.plugin_dir {
        Some(dir) => std::path::absolute(dir)?,
        None => {
            let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
            eprintln!("plume-load soak: building the plugins (plugins/, tests/plugins/)");
            plume::build::build_plugin_folders(&workspace, &["plugins", "tests/plugins"])?
        }
    };
    let dir = std::env::temp_dir().join(format!("plume-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config_path = dir.join("plume.toml");
    std::fs::write(&config_path, config(&plugins))?;
    let mut command = Command::new(&args.plume);
    command
        .args(["serve", "--bind", "127.0.0.1:0", "--config"])
        .arg(&config_path)
        .env("SECRET_KEY_BASE", SECRET);
    let server = Server::start("plume", command)?;
    let pid = server.pid();
    let addr = server.addr;
    let result = runtime.block_on(soak(args, addr, pid));
    server.stop()?;
    let _ = std::fs::remove_dir_all(&dir);
    let result = result?;
    println!("{}", serde_json::to_string(&result)?);
    eprintln!(
        "tenant B ping latency: quiet {} | storm {} | p99 storm/quiet {:.2}x\n\
         tenant A: {} hostile calls, {} answered with phx_error or an error reply; {} storm broadcasts sent\n\
         non-reading client closed with 1008: {}; server RSS: quiet {:.1} MB, storm max {:.1} MB, end {:.1} MB",
        result.quiet,
        result.storm,
        result.p99_ratio,
        result.hostile_calls,
        result.hostile_errors_seen,
        result.storm_broadcasts,
        result.non_reader_closed_1008,
        result.server_rss_quiet_bytes as f64 / 1e6,
        result.server_rss_storm_max_bytes as f64 / 1e6,
        result.server_rss_end_bytes as f64 / 1e6,
    );
    Ok(())
}

async fn soak(args: &SoakArgs, addr: std::net::SocketAddr, pid: u32) -> anyhow::Result<SoakResult> {
    let b = Arc::new(Target::new(&format!("ws://{addr}/b/socket/websocket"), 4, Some(pid))?.with_secret(SECRET));
    let a = Arc::new(Target::new(&format!("ws://{addr}/a/socket/websocket"), 4, Some(pid))?.with_secret(SECRET));
    let phase = Duration::from_secs(args.seconds);

    // Tenant B's pingers record into the histogram of the current phase.
    let storming = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let quiet = Arc::new(Mutex::new(Latencies::new()));
    let storm = Arc::new(Mutex::new(Latencies::new()));
    let mut pingers = Vec::new();
    for i in 0..args.pingers {
        let mut ws = b.open(i, &b.socket_url(1000 + i as u64)?).await?;
        client::join(&mut ws, &format!("room:b{i}")).await?;
        let (storming, stop, quiet, storm) = (storming.clone(), stop.clone(), quiet.clone(), storm.clone());
        let interval = Duration::from_millis(args.ping_interval_ms);
        let topic = format!("room:b{i}");
        pingers.push(tokio::spawn(async move {
            let mut reference = 10;
            let (mut q, mut s) = (Latencies::new(), Latencies::new());
            while !stop.load(Ordering::Relaxed) {
                reference += 1;
                let sent = Instant::now();
                ws.send(Message::text(wire::push(Some(wire::JOIN_REF), reference, &topic, "ping", "{}"))).await?;
                client::await_reply(&mut ws, reference, sent + client::REPLY_TIMEOUT).await?;
                let latency = sent.elapsed();
                if storming.load(Ordering::Relaxed) { s.record(latency) } else { q.record(latency) }
                tokio::time::sleep(interval).await;
            }
            quiet.lock().await.merge(&q);
            storm.lock().await.merge(&s);
            anyhow::Ok(())
        }));
    }

    tokio::time::sleep(phase).await;
    let rss_quiet = process::rss_bytes(pid).unwrap_or(0);

    // The storm: hostile clients, a broadcast storm on room:storm, readers
    // of it, and one client joined to it that never reads.
    storming.store(true, Ordering::Relaxed);
    let calls = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let broadcasts = Arc::new(AtomicU64::new(0));
    let mut non_reader = a.open(0, &a.socket_url(1)?).await?;
    client::join(&mut non_reader, "room:storm").await?;
    let mut tasks = Vec::new();
    for i in 0..args.hostile {
        let url = a.socket_url(100 + i as u64)?;
        let (a, stop, calls, errors) = (a.clone(), stop.clone(), calls.clone(), errors.clone());
        tasks.push(tokio::spawn(async move { hostile(&a, i, &url, &stop, &calls, &errors).await }));
    }
    {
        let url = a.socket_url(50)?;
        let (a, stop, calls, errors) = (a.clone(), stop.clone(), calls.clone(), errors.clone());
        tasks.push(tokio::spawn(async move { hanging_joins(&a, &url, &stop, &calls, &errors).await }));
    }
    for i in 0..2 {
        let mut ws = a.open(i, &a.socket_url(200 + i as u64)?).await?;
        client::join(&mut ws, "room:storm").await?;
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match tokio::time::timeout(Duration::from_millis(200), ws.next()).await {
                    Ok(Some(Ok(_))) | Err(_) => {}
                    Ok(_) => break,
                }
            }
            anyhow::Ok(())
        }));
    }
    {
        // The storm goes through tenant A's room plugin, so it runs while
        // the probe's instances are busy with the faults.
        let mut ws = a.open(3, &a.socket_url(300)?).await?;
        client::join(&mut ws, "room:storm").await?;
        let (stop, broadcasts) = (stop.clone(), broadcasts.clone());
        let payload = format!(r#"{{"body":"{}"}}"#, "x".repeat(1000));
        tasks.push(tokio::spawn(async move {
            let mut reference = 10;
            while !stop.load(Ordering::Relaxed) {
                reference += 1;
                ws.send(Message::text(wire::push(Some(wire::JOIN_REF), reference, "room:storm", "new_msg", &payload))).await?;
                client::await_reply(&mut ws, reference, Instant::now() + client::REPLY_TIMEOUT).await?;
                broadcasts.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    let mut rss_max = rss_quiet;
    let storm_started = Instant::now();
    while storm_started.elapsed() < phase {
        tokio::time::sleep(Duration::from_millis(250)).await;
        rss_max = rss_max.max(process::rss_bytes(pid).unwrap_or(0));
    }
    stop.store(true, Ordering::Relaxed);
    for pinger in pingers {
        pinger.await.context("a pinger panicked")?.context("a tenant B pinger failed")?;
    }
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    // The non-reader reads at last: what was queued for it, then the close.
    let mut closed_1008 = false;
    while let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(5), non_reader.next()).await {
        if let Message::Close(frame) = message {
            closed_1008 = frame.is_some_and(|f| f.code == CloseCode::Policy);
            break;
        }
    }
    let rss_end = process::rss_bytes(pid).unwrap_or(0);
    let (quiet, storm) = (quiet.lock().await.summary(), storm.lock().await.summary());
    Ok(SoakResult {
        p99_ratio: storm.p99 as f64 / quiet.p99.max(1) as f64,
        quiet,
        storm,
        hostile_calls: calls.load(Ordering::Relaxed),
        hostile_errors_seen: errors.load(Ordering::Relaxed),
        storm_broadcasts: broadcasts.load(Ordering::Relaxed),
        non_reader_closed_1008: closed_1008,
        server_rss_quiet_bytes: rss_quiet,
        server_rss_storm_max_bytes: rss_max,
        server_rss_end_bytes: rss_end,
    })
}

/// Whether a frame is `phx_error` or an error reply.
fn is_error(text: &str) -> bool {
    text.contains(r#""phx_error""#) || text.contains(r#""status":"error""#)
}

/// Join a probe topic, fire one fault, wait for its error, rejoin; repeat.
async fn hostile(a: &Target, i: usize, url: &str, stop: &AtomicBool, calls: &AtomicU64, errors: &AtomicU64) -> anyhow::Result<()> {
    let mut ws = a.open(i, url).await?;
    let topic = format!("probe:hostile{i}");
    let mut n = i;
    while !stop.load(Ordering::Relaxed) {
        if client::join(&mut ws, &topic).await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let (event, payload) = FAULTS[n % FAULTS.len()];
        n += 1;
        ws.send(Message::text(wire::push(Some(wire::JOIN_REF), 7, &topic, event, payload))).await?;
        calls.fetch_add(1, Ordering::Relaxed);
        if wait_for_error(&mut ws).await? {
            errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

/// Reads until an error frame (true) or 5 s pass (false).
async fn wait_for_error(ws: &mut Ws) -> anyhow::Result<bool> {
    let give_up = Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(give_up, ws.next()).await {
            Err(_) => return Ok(false),
            Ok(Some(Ok(Message::Text(text)))) if is_error(&text) => return Ok(true),
            Ok(Some(Ok(_))) => {}
            Ok(_) => anyhow::bail!("a hostile client's connection ended"),
        }
    }
}

/// Joins whose `join` never returns, one after another.
async fn hanging_joins(a: &Target, url: &str, stop: &AtomicBool, calls: &AtomicU64, errors: &AtomicU64) -> anyhow::Result<()> {
    let mut ws = a.open(5, url).await?;
    let mut reference = 10;
    while !stop.load(Ordering::Relaxed) {
        reference += 1;
        ws.send(Message::text(wire::push(Some(reference), reference, "probe:hang", "phx_join", r#"{"hang":true}"#))).await?;
        calls.fetch_add(1, Ordering::Relaxed);
        if wait_for_error(&mut ws).await? {
            errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}
