//! `joins`: a join storm. N sockets connect and join at once (at most
//! `--concurrency` handshakes in flight) and stay joined until the last one
//! is in. Reports joins per second and the latency of each phase: TCP plus
//! WebSocket handshake (where the server verifies the token), and
//! `phx_join` to its reply (where it runs the channel's join).

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::{self, ClientError, Target, Ws};
use crate::latency::{Latencies, Summary};
use crate::process::{CpuMeter, CpuReport};
use crate::report::{Count, Figure, Outcome, cost_figures, cpu_figures};

#[derive(Debug, Clone, clap::Args)]
pub struct JoinsArgs {
    /// Sockets that connect and join.
    #[arg(long, default_value_t = 2000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=19_000))]
    pub sockets: usize,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 500, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=19_000))]
    pub concurrency: usize,
    /// The topic every socket joins.
    #[arg(long, default_value = "room:lobby")]
    pub topic: String,
}

#[derive(Serialize)]
struct JoinsResult {
    sockets: usize,
    concurrency: usize,
    topic: String,
    joined: usize,
    failed: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_failure: Option<String>,
    /// From the first connect to the last join reply.
    seconds: f64,
    joins_per_sec: f64,
    /// TCP connect and WebSocket handshake.
    connect_latency_us: Summary,
    /// phx_join to its reply.
    join_latency_us: Summary,
    /// Both.
    total_latency_us: Summary,
    cpu: CpuReport,
}

/// One socket's storm: when it connected and joined.
struct Joined {
    _ws: Ws,
    connect: std::time::Duration,
    join: std::time::Duration,
}

pub async fn run(args: &JoinsArgs, target: Arc<Target>) -> anyhow::Result<Outcome> {
    let urls = (0..args.sockets)
        .map(|i| target.socket_url(i as u64 + 1))
        .collect::<Result<Vec<_>, _>>()?;
    let gate = Arc::new(Semaphore::new(args.concurrency));
    let topic: Arc<str> = args.topic.as_str().into();

    let meter = CpuMeter::start(target.server_pid.as_slice())?;
    let start = Instant::now();
    let mut storm = JoinSet::new();
    for (index, url) in urls.into_iter().enumerate() {
        let (target, gate, topic) = (target.clone(), gate.clone(), topic.clone());
        storm.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let began = Instant::now();
            let mut ws = target.open(index, &url).await?;
            let connected = Instant::now();
            client::join(&mut ws, &topic).await?;
            Ok::<_, ClientError>(Joined {
                _ws: ws,
                connect: connected - began,
                join: connected.elapsed(),
            })
        });
    }
    // Every socket stays open until the storm is over, so the server holds
    // them all at once, as it would a real reconnect storm.
    let mut joined = Vec::with_capacity(args.sockets);
    let mut failed = 0;
    let mut first_failure = None;
    let (mut connect, mut join, mut total) = (Latencies::new(), Latencies::new(), Latencies::new());
    while let Some(outcome) = storm.join_next().await {
        match outcome? {
            Ok(socket) => {
                connect.record(socket.connect);
                join.record(socket.join);
                total.record(socket.connect + socket.join);
                joined.push(socket);
            }
            Err(error) => {
                failed += 1;
                first_failure.get_or_insert_with(|| error.to_string());
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu = meter.stop()?;
    drop(joined);

    let result = JoinsResult {
        sockets: args.sockets,
        concurrency: args.concurrency,
        topic: args.topic.clone(),
        joined: args.sockets - failed,
        failed,
        first_failure,
        seconds,
        joins_per_sec: (args.sockets - failed) as f64 / seconds,
        connect_latency_us: connect.summary(),
        join_latency_us: join.summary(),
        total_latency_us: total.summary(),
        cpu,
    };
    let mut summary = format!(
        "joins: {} sockets on {} ({} at a time) in {:.2} s: {} joins/s\nconnect {}\njoin    {}\nboth    {}\n{}",
        result.joined,
        result.topic,
        result.concurrency,
        result.seconds,
        Count(result.joins_per_sec),
        result.connect_latency_us,
        result.join_latency_us,
        result.total_latency_us,
        result.cpu
    );
    if let Some(failure) = &result.first_failure {
        summary.push_str(&format!(
            "\nproblems: {} sockets failed ({failure})",
            result.failed
        ));
    }
    let mut figures = vec![
        Figure::new("joins_per_sec", "/s", result.joins_per_sec),
        Figure::new("join_p50_us", "µs", result.join_latency_us.p50 as f64),
        Figure::new("join_p99_us", "µs", result.join_latency_us.p99 as f64),
        Figure::new("connect_p99_us", "µs", result.connect_latency_us.p99 as f64),
        Figure::new("total_p99_us", "µs", result.total_latency_us.p99 as f64),
        Figure::new("failed", "", result.failed as f64),
    ];
    figures.extend(cpu_figures(&result.cpu, str::to_owned));
    figures.extend(cost_figures(
        &result.cpu,
        result.joined as u64,
        str::to_owned,
    ));
    Outcome::new("joins", &result, figures, summary)
}
