//! `idle`: N sockets each join their own topic (`room:idle-<i>`) and are
//! held open with heartbeats. The server's resident memory is read before
//! the first connect and after the last join, so the difference over N is
//! what one connected, joined socket costs the server. Run it on a freshly
//! started server: memory a server already grew and kept would hide the
//! cost. Heartbeat latency is measured while the sockets are held.
//!
//! `--no-join` leaves the channels out, so that the two runs together tell
//! what a connection costs and what a channel on it adds.

use std::sync::Arc;
use std::time::Duration;

use futures_util::SinkExt;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::SETUP_CONCURRENCY;
use crate::client::{self, REPLY_TIMEOUT, Target, Ws};
use crate::latency::{Latencies, Summary};
use crate::process::{self, CpuMeter, CpuReport};
use crate::report::{Count, Figure, Outcome, cpu_figures};
use crate::wire::{self, Status};

#[derive(Debug, Clone, clap::Args)]
pub struct IdleArgs {
    /// Sockets, each joined to its own topic.
    #[arg(long, default_value_t = 5000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=19_000))]
    pub sockets: usize,
    /// How long the sockets are held, heartbeating, after the memory is read.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub hold_seconds: u64,
    /// Seconds between one socket's heartbeats (phoenix.js sends one every 30).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=60))]
    pub heartbeat_seconds: u64,
    /// Connect only, joining no channel: what a bare connection costs.
    #[arg(long)]
    pub no_join: bool,
    /// Pause after the last join before the memory is read.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=60))]
    pub settle_seconds: u64,
}

#[derive(Serialize)]
struct IdleResult {
    sockets: usize,
    /// Whether each socket joined its own topic (false with --no-join).
    joined: bool,
    hold_seconds: u64,
    heartbeat_seconds: u64,
    /// Time to connect and join every socket.
    connect_s: f64,
    rss_before_bytes: u64,
    rss_joined_bytes: u64,
    rss_end_bytes: u64,
    /// (rss_joined - rss_before) / sockets.
    bytes_per_socket: f64,
    heartbeats: u64,
    heartbeat_errors: u64,
    sockets_failed: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_failure: Option<String>,
    heartbeat_latency_us: Summary,
    /// CPU over the hold: what idle sockets cost.
    cpu: CpuReport,
}

#[derive(Default)]
struct Tally {
    heartbeats: u64,
    errors: u64,
    latency: Latencies,
    failure: Option<String>,
}

pub async fn run(args: &IdleArgs, target: Arc<Target>) -> anyhow::Result<Outcome> {
    let Some(pid) = target.server_pid else {
        anyhow::bail!(
            "idle measures the server's memory: give --server-pid PID (or run it with `plume-load compare`)"
        );
    };
    let rss_before = process::rss_bytes(pid)?;
    let connecting = Instant::now();
    let topic_of = |i| (!args.no_join).then(|| format!("room:idle-{i}"));
    let sockets = client::open_joined(&target, args.sockets, 1, SETUP_CONCURRENCY, topic_of)
        .await?
        .all()?;
    let connect_s = connecting.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(args.settle_seconds)).await;
    let rss_joined = process::rss_bytes(pid)?;

    let meter = CpuMeter::start(target.server_pid.as_slice())?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.hold_seconds);
    let period = Duration::from_secs(args.heartbeat_seconds);
    let mut holding = JoinSet::new();
    for opened in sockets {
        // Spread the first heartbeats over one period, as real clients'.
        let phase = period.mul_f64(opened.index as f64 / args.sockets as f64);
        holding.spawn(hold(opened.ws, start + phase, period, deadline));
    }
    let mut total = Tally::default();
    let mut sockets_failed = 0;
    while let Some(tally) = holding.join_next().await {
        let tally = tally?;
        total.heartbeats += tally.heartbeats;
        total.errors += tally.errors;
        total.latency.merge(&tally.latency);
        if let Some(failure) = tally.failure {
            sockets_failed += 1;
            total.failure.get_or_insert(failure);
        }
    }
    let cpu = meter.stop()?;
    let rss_end = process::rss_bytes(pid)?;

    let result = IdleResult {
        sockets: args.sockets,
        joined: !args.no_join,
        hold_seconds: args.hold_seconds,
        heartbeat_seconds: args.heartbeat_seconds,
        connect_s,
        rss_before_bytes: rss_before,
        rss_joined_bytes: rss_joined,
        rss_end_bytes: rss_end,
        bytes_per_socket: (rss_joined as f64 - rss_before as f64) / args.sockets as f64,
        heartbeats: total.heartbeats,
        heartbeat_errors: total.errors,
        sockets_failed,
        first_failure: total.failure,
        heartbeat_latency_us: total.latency.summary(),
        cpu,
    };
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    let mut summary = format!(
        "idle: {} sockets {} in {:.2} s: server RSS {:.1} MiB -> {:.1} MiB ({:.1} MiB after the hold): {} bytes ({:.1} KB) per socket\nheartbeats: {} every {} s, latency {}\n{}",
        result.sockets,
        if result.joined {
            "connected and joined"
        } else {
            "connected (no channel)"
        },
        result.connect_s,
        mib(rss_before),
        mib(rss_joined),
        mib(rss_end),
        Count(result.bytes_per_socket),
        result.bytes_per_socket / 1000.0,
        Count(result.heartbeats as f64),
        result.heartbeat_seconds,
        result.heartbeat_latency_us,
        result.cpu
    );
    if result.heartbeat_errors > 0 || result.sockets_failed > 0 {
        summary.push_str(&format!(
            "\nproblems: {} error replies, {} sockets failed ({})",
            result.heartbeat_errors,
            result.sockets_failed,
            result.first_failure.as_deref().unwrap_or("-")
        ));
    }
    let mut figures = vec![
        Figure::new("bytes_per_socket", "B", result.bytes_per_socket),
        Figure::new("rss_joined_bytes", "B", rss_joined as f64),
        Figure::new(
            "heartbeat_p50_us",
            "µs",
            result.heartbeat_latency_us.p50 as f64,
        ),
        Figure::new(
            "heartbeat_p99_us",
            "µs",
            result.heartbeat_latency_us.p99 as f64,
        ),
        Figure::new("connect_s", "s", result.connect_s),
    ];
    figures.extend(cpu_figures(&result.cpu, str::to_owned));
    Outcome::new("idle", &result, figures, summary)
}

/// Heartbeats every `period` from `first` until `deadline`.
async fn hold(mut ws: Ws, first: Instant, period: Duration, deadline: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut next = first;
    let mut reference = wire::JOIN_REF;
    while next < deadline {
        tokio::time::sleep_until(next).await;
        next += period;
        reference += 1;
        let sent = Instant::now();
        if let Err(error) = ws.send(Message::text(wire::heartbeat(reference))).await {
            tally.failure = Some(format!("sending a heartbeat: {error}"));
            break;
        }
        match client::await_reply(&mut ws, reference, sent + REPLY_TIMEOUT).await {
            Ok(Status::Ok) => {
                tally.latency.record(sent.elapsed());
                tally.heartbeats += 1;
            }
            Ok(Status::Error(_)) => tally.errors += 1,
            Err(error) => {
                tally.failure = Some(format!("awaiting a heartbeat reply: {error}"));
                break;
            }
        }
    }
    tally
}
