//! `plume-load backend`: the backend in the loop, measured. The run starts
//! plume itself (the room and probe plugins, an API key, `http_allow` for
//! a backend this tool serves on loopback) and measures, in one run:
//!
//! 1. **publish**: messages published per second on one topic with one
//!    subscriber, three ways, each for `--seconds` over `--publishers`
//!    closed loops: the server API one message per request (keep-alive
//!    HTTP/1.1), the server API `--batch` messages per request, and the
//!    same broadcasts made by a plugin (the probe's `broadcast_to`, one per
//!    client push) as the baseline.
//! 2. **slow backend**: `--pingers` sockets ping (each after the last
//!    reply, `--ping-interval-ms` apart) for `--seconds` quiet, then for
//!    `--seconds` while `--channels` channels keep `--in-flight` plugin
//!    HTTP requests in flight in all to a backend that answers after
//!    `--backend-delay-ms`. Reports ping p99 storm/quiet, outcomes per
//!    second, and the server's threads during the storm (from
//!    `/proc/PID/task`): their count and each one's CPU, so a worker
//!    blocked on the network would show (none is: requests are async).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Target, Ws};
use crate::compare::server::Server;
use crate::latency::{Latencies, Summary};
use crate::wire;

/// The API key of the run's server.
const KEY: &str = "plume-load-backend-key-0123456789";

#[derive(clap::Args)]
pub struct BackendArgs {
    /// The plume binary to run.
    #[arg(long, default_value = "target/release/plume")]
    pub plume: PathBuf,
    /// The built plugins (user_socket, room and the test-only probe); by
    /// default they are built from this source tree.
    #[arg(long)]
    pub plugin_dir: Option<PathBuf>,
    /// Length of each measured phase.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Closed loops publishing at once (HTTP connections, or sockets).
    #[arg(long, default_value_t = 8)]
    pub publishers: usize,
    /// Messages per batched API request.
    #[arg(long, default_value_t = 50)]
    pub batch: usize,
    /// Sockets pinging during the slow-backend phases.
    #[arg(long, default_value_t = 20)]
    pub pingers: usize,
    /// Pause between one pinger's pings.
    #[arg(long, default_value_t = 10)]
    pub ping_interval_ms: u64,
    /// Plugin HTTP requests kept in flight, in all.
    #[arg(long, default_value_t = 1000)]
    pub in_flight: usize,
    /// Channels the requests are spread over (each keeps in_flight/channels).
    #[arg(long, default_value_t = 100)]
    pub channels: usize,
    /// How long the backend takes to answer.
    #[arg(long, default_value_t = 1000)]
    pub backend_delay_ms: u64,
}

#[derive(Serialize)]
struct Publish {
    api_single_per_sec: f64,
    api_batched_per_sec: f64,
    plugin_per_sec: f64,
    api_single_over_plugin: f64,
    api_batched_over_plugin: f64,
    delivered: u64,
}

#[derive(Serialize)]
struct SlowBackend {
    quiet: Summary,
    storm: Summary,
    p99_ratio: f64,
    outcomes: u64,
    outcomes_per_sec: f64,
    in_flight_target: usize,
    threads_quiet: usize,
    threads_storm: usize,
    /// Each server thread's CPU during the storm, busiest first, as
    /// (name, share of one core).
    thread_cpu_storm: Vec<(String, f64)>,
}

#[derive(Serialize)]
struct BackendResult {
    publish: Publish,
    slow_backend: SlowBackend,
}

/// The server's `SECRET_KEY_BASE` (an app served with `--config` needs one
/// of its own) and its clients' tokens' secret.
const SECRET: &str = "plume-load-backend-secret-key-base-0123456789abcdef0123456789abcdef";

fn config(plugins: &std::path::Path, backend: &str, args: &BackendArgs) -> String {
    let p = plugins.display();
    let per_channel = args.in_flight.div_ceil(args.channels.max(1));
    format!(
        r#"[runtime]
hot_reload = false

[limits]
max_events_per_second = 10000000
max_http_in_flight = {}
max_http_in_flight_per_channel = {per_channel}
http_timeout_ms = 30000

[app]
socket_plugin = "user_socket"
api_keys = ["{KEY}"]
http_allow = ["{backend}"]

[plugins.user_socket]
path = "{p}/user_socket.wasm"

[plugins.room]
path = "{p}/room.wasm"

[plugins.probe]
path = "{p}/probe.wasm"

[[routes]]
topic = "room:*"
plugin = "room"

[[routes]]
topic = "probe:*"
plugin = "probe"
"#,
        args.in_flight + 100
    )
}

pub fn run(args: &BackendArgs, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let plugins = match &args.plugin_dir {
        Some(dir) => std::path::absolute(dir)?,
        None => {
            let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
            eprintln!("plume-load backend: building the plugins (plugins/, tests/plugins/)");
            plume::build::build_plugin_folders(&workspace, &["plugins", "tests/plugins"])?
        }
    };
    let delay = Duration::from_millis(args.backend_delay_ms);
    let backend = runtime.block_on(slow_backend(delay))?;
    let dir = std::env::temp_dir().join(format!("plume-load-backend-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config_path = dir.join("plume.toml");
    std::fs::write(&config_path, config(&plugins, &format!("http://{backend}"), args))?;
    let mut command = Command::new(&args.plume);
    command
        .args(["serve", "--bind", "127.0.0.1:0", "--config"])
        .arg(&config_path)
        .env("SECRET_KEY_BASE", SECRET);
    let server = Server::start("plume", command)?;
    let (pid, addr) = (server.pid(), server.addr);
    let result = runtime.block_on(async {
        let target = Arc::new(Target::new(&format!("ws://{addr}/socket/websocket"), 4, Some(pid))?.with_secret(SECRET));
        eprintln!("plume-load backend: publish rates, {} s each", args.seconds);
        let publish = publish(args, &target, addr).await?;
        eprintln!("plume-load backend: ping latency quiet, then with {} requests in flight to a {} ms backend", args.in_flight, args.backend_delay_ms);
        let slow = slow(args, &target, pid, &format!("http://{backend}")).await?;
        anyhow::Ok(BackendResult { publish, slow_backend: slow })
    });
    server.stop()?;
    let _ = std::fs::remove_dir_all(&dir);
    let result = result?;
    println!("{}", serde_json::to_string(&result)?);
    let p = &result.publish;
    let s = &result.slow_backend;
    let busiest: Vec<String> = s.thread_cpu_storm.iter().take(4).map(|(name, cores)| format!("{name} {:.0}%", cores * 100.0)).collect();
    eprintln!(
        "publish (msgs/s): API single {:.0} ({:.2}x plugin), API batched x{} {:.0} ({:.2}x plugin), plugin broadcasts {:.0}\n\
         slow backend: ping quiet {} | storm {} | p99 storm/quiet {:.2}x; {} outcomes ({:.0}/s, target {} in flight)\n\
         server threads: {} quiet, {} in the storm; busiest in the storm: {}",
        p.api_single_per_sec,
        p.api_single_over_plugin,
        args.batch,
        p.api_batched_per_sec,
        p.api_batched_over_plugin,
        p.plugin_per_sec,
        s.quiet,
        s.storm,
        s.p99_ratio,
        s.outcomes,
        s.outcomes_per_sec,
        s.in_flight_target,
        s.threads_quiet,
        s.threads_storm,
        busiest.join(", "),
    );
    Ok(())
}

/// A backend on loopback that answers every request after `delay`, on the
/// tool's runtime (a sleep per request, no thread each).
async fn slow_backend(delay: Duration) -> anyhow::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| async move {
                    use http_body_util::BodyExt;
                    let _ = request.into_body().collect().await;
                    tokio::time::sleep(delay).await;
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(b"{\"ok\":true}"))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// One keep-alive HTTP/1.1 connection to the server API.
struct ApiConnection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl ApiConnection {
    async fn open(addr: std::net::SocketAddr) -> anyhow::Result<ApiConnection> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(ApiConnection { stream, buffer: Vec::with_capacity(4096) })
    }

    /// POST `body` to /api/broadcast; the status.
    async fn broadcast(&mut self, body: &str) -> anyhow::Result<u16> {
        let request = format!(
            "POST /api/broadcast HTTP/1.1\r\nHost: plume\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.stream.write_all(request.as_bytes()).await?;
        loop {
            if let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buffer[..end]).into_owned();
                let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("a status line")?;
                let length: usize = head
                    .lines()
                    .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                    .and_then(|v| v.parse().ok())
                    .context("a content-length")?;
                while self.buffer.len() < end + 4 + length {
                    self.read().await?;
                }
                self.buffer.drain(..end + 4 + length);
                return Ok(status);
            }
            self.read().await?;
        }
    }

    async fn read(&mut self) -> anyhow::Result<()> {
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "the server closed the API connection");
        self.buffer.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

/// Count what reaches one subscriber of `topic` until `stop`.
async fn subscriber(target: &Target, topic: &str, stop: Arc<AtomicBool>, count: Arc<AtomicU64>) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut ws = target.open(0, &target.socket_url(9_000)?).await?;
    client::join(&mut ws, topic).await?;
    Ok(tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            match tokio::time::timeout(Duration::from_millis(200), ws.next()).await {
                Ok(Some(Ok(Message::Text(_)))) => {
                    count.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Some(Ok(_))) | Err(_) => {}
                Ok(_) => break,
            }
        }
    }))
}

async fn publish(args: &BackendArgs, target: &Arc<Target>, addr: std::net::SocketAddr) -> anyhow::Result<Publish> {
    let stop = Arc::new(AtomicBool::new(false));
    let delivered = Arc::new(AtomicU64::new(0));
    let reader = subscriber(target, "room:bench", stop.clone(), delivered.clone()).await?;
    let phase = Duration::from_secs(args.seconds);

    let one = r#"{"topic":"room:bench","event":"tick","payload":{"p":"0123456789abcdef"}}"#;
    let batch = format!(
        r#"{{"messages":[{}]}}"#,
        std::iter::repeat_n(one, args.batch.max(1)).collect::<Vec<_>>().join(",")
    );
    let mut rates = Vec::new();
    for (body, per_request) in [(one.to_owned(), 1u64), (batch, args.batch.max(1) as u64)] {
        let published = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + phase;
        let mut loops = Vec::new();
        for _ in 0..args.publishers {
            let (body, published) = (body.clone(), published.clone());
            let mut connection = ApiConnection::open(addr).await?;
            loops.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    let status = connection.broadcast(&body).await?;
                    anyhow::ensure!(status == 200, "the API answered {status}");
                    published.fetch_add(per_request, Ordering::Relaxed);
                }
                anyhow::Ok(())
            }));
        }
        let started = Instant::now();
        for task in loops {
            task.await??;
        }
        rates.push(published.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64());
    }

    // The baseline: the same broadcasts, made by a plugin per client push.
    let published = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + phase;
    let mut loops = Vec::new();
    for i in 0..args.publishers {
        let mut ws = target.open(i, &target.socket_url(8_000 + i as u64)?).await?;
        let topic = format!("probe:publisher{i}");
        client::join(&mut ws, &topic).await?;
        let published = published.clone();
        loops.push(tokio::spawn(async move {
            let payload = r#"{"topic":"room:bench","event":"tick","payload":{"p":"0123456789abcdef"}}"#;
            let mut reference = 10;
            while Instant::now() < deadline {
                reference += 1;
                ws.send(Message::text(wire::push(Some(wire::JOIN_REF), reference, &topic, "broadcast_to", payload))).await?;
                client::await_reply(&mut ws, reference, Instant::now() + client::REPLY_TIMEOUT).await?;
                published.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    let started = Instant::now();
    for task in loops {
        task.await??;
    }
    let plugin = published.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let _ = reader.await;
    Ok(Publish {
        api_single_per_sec: rates[0],
        api_batched_per_sec: rates[1],
        plugin_per_sec: plugin,
        api_single_over_plugin: rates[0] / plugin.max(1e-9),
        api_batched_over_plugin: rates[1] / plugin.max(1e-9),
        delivered: delivered.load(Ordering::Relaxed),
    })
}

/// CPU ticks (user + system) of each thread of `pid`, by thread id, with
/// its name.
fn thread_ticks(pid: u32) -> HashMap<u32, (String, u64)> {
    let mut threads = HashMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return threads;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let name = stat[open + 1..close].to_owned();
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let ticks = fields.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
            + fields.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        if let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) {
            threads.insert(tid, (name, ticks));
        }
    }
    threads
}

async fn slow(args: &BackendArgs, target: &Arc<Target>, pid: u32, backend: &str) -> anyhow::Result<SlowBackend> {
    let phase = Duration::from_secs(args.seconds);
    let storming = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let (quiet, storm) = (Arc::new(Mutex::new(Latencies::new())), Arc::new(Mutex::new(Latencies::new())));
    let mut pingers = Vec::new();
    for i in 0..args.pingers {
        let mut ws = target.open(i, &target.socket_url(1_000 + i as u64)?).await?;
        let topic = format!("room:ping{i}");
        client::join(&mut ws, &topic).await?;
        let (storming, stop, quiet, storm) = (storming.clone(), stop.clone(), quiet.clone(), storm.clone());
        let interval = Duration::from_millis(args.ping_interval_ms);
        pingers.push(tokio::spawn(async move {
            let (mut q, mut s) = (Latencies::new(), Latencies::new());
            let mut reference = 10;
            while !stop.load(Ordering::Relaxed) {
                reference += 1;
                let sent = Instant::now();
                ws.send(Message::text(wire::push(Some(wire::JOIN_REF), reference, &topic, "ping", "{}"))).await?;
                client::await_reply(&mut ws, reference, sent + client::REPLY_TIMEOUT).await?;
                if storming.load(Ordering::Relaxed) { s.record(sent.elapsed()) } else { q.record(sent.elapsed()) }
                tokio::time::sleep(interval).await;
            }
            quiet.lock().await.merge(&q);
            storm.lock().await.merge(&s);
            anyhow::Ok(())
        }));
    }
    tokio::time::sleep(phase).await;
    let threads_quiet = thread_ticks(pid).len();

    // The storm: each channel keeps its share of requests in flight,
    // sending one more whenever an outcome arrives.
    let per_channel = args.in_flight.div_ceil(args.channels.max(1));
    let outcomes = Arc::new(AtomicU64::new(0));
    let mut requesters = Vec::new();
    let request = format!(r#"{{"method":"POST","url":"{backend}/work","body":"{{}}"}}"#);
    for i in 0..args.channels {
        let mut ws: Ws = target.open(i, &target.socket_url(2_000 + i as u64)?).await?;
        let topic = format!("probe:http{i}");
        client::join(&mut ws, &topic).await?;
        let (stop, outcomes, request) = (stop.clone(), outcomes.clone(), request.clone());
        requesters.push(tokio::spawn(async move {
            let mut reference = 10;
            for _ in 0..per_channel {
                reference += 1;
                ws.send(Message::text(wire::push(Some(wire::JOIN_REF), reference, &topic, "http", &request))).await?;
            }
            while !stop.load(Ordering::Relaxed) {
                match tokio::time::timeout(Duration::from_millis(200), ws.next()).await {
                    Ok(Some(Ok(Message::Text(text)))) if text.contains(r#""info""#) && text.contains(r#""http""#) => {
                        outcomes.fetch_add(1, Ordering::Relaxed);
                        reference += 1;
                        ws.send(Message::text(wire::push(Some(wire::JOIN_REF), reference, &topic, "http", &request))).await?;
                    }
                    Ok(Some(Ok(_))) | Err(_) => {}
                    Ok(_) => anyhow::bail!("a requesting socket closed"),
                }
            }
            anyhow::Ok(())
        }));
    }
    let storm_started = Instant::now();
    storming.store(true, Ordering::Relaxed);
    // The threads' CPU over the storm, from its second second on (the
    // first fills the pipeline).
    tokio::time::sleep(Duration::from_secs(1).min(phase / 2)).await;
    let before = thread_ticks(pid);
    let window_started = Instant::now();
    let outcomes_before = outcomes.load(Ordering::Relaxed);
    tokio::time::sleep(phase.saturating_sub(storm_started.elapsed())).await;
    let after = thread_ticks(pid);
    let window = window_started.elapsed().as_secs_f64();
    let outcomes_window = outcomes.load(Ordering::Relaxed) - outcomes_before;
    stop.store(true, Ordering::Relaxed);
    for pinger in pingers {
        pinger.await.context("a pinger panicked")?.context("a pinger failed")?;
    }
    for task in requesters {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    // SAFETY: sysconf has no memory effects.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut thread_cpu: Vec<(String, f64)> = after
        .iter()
        .map(|(tid, (name, ticks))| {
            let start = before.get(tid).map_or(0, |(_, t)| *t);
            (name.clone(), ticks.saturating_sub(start) as f64 / ticks_per_second / window)
        })
        .collect();
    thread_cpu.sort_by(|a, b| b.1.total_cmp(&a.1));
    let (quiet, storm) = (quiet.lock().await.summary(), storm.lock().await.summary());
    Ok(SlowBackend {
        p99_ratio: storm.p99 as f64 / quiet.p99.max(1) as f64,
        quiet,
        storm,
        outcomes: outcomes.load(Ordering::Relaxed),
        outcomes_per_sec: outcomes_window as f64 / window,
        in_flight_target: per_channel * args.channels,
        threads_quiet,
        threads_storm: after.len(),
        thread_cpu_storm: thread_cpu,
    })
}
