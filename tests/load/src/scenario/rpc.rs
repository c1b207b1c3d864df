//! `rpc`: C sockets join `room:lobby`, then each pings in a closed loop (one
//! `ping` in flight per socket, the next sent when the reply arrives) for S
//! seconds. Reports round trips per second and round-trip latency.

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
use crate::process::{CpuMeter, CpuReport};
use crate::report::{Count, Figure, Outcome, cost_figures, cpu_figures};
use crate::wire::{self, Status};

const TOPIC: &str = "room:lobby";

#[derive(Debug, Clone, clap::Args)]
pub struct RpcArgs {
    /// Sockets, each pinging in a closed loop.
    #[arg(long, default_value_t = 50, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=19_000))]
    pub sockets: usize,
    /// How long the pinging lasts.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub seconds: u64,
    /// The ping payload, a JSON value the server echoes back.
    #[arg(long, default_value = r#"{"p":"0123456789abcdef"}"#)]
    pub payload: String,
}

#[derive(Serialize)]
struct RpcResult {
    sockets: usize,
    seconds: u64,
    round_trips: u64,
    round_trips_per_sec: f64,
    /// Replies whose status was not ok.
    error_replies: u64,
    /// Sockets that stopped early (closed, timed out), and the first reason.
    sockets_failed: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_failure: Option<String>,
    latency_us: Summary,
    cpu: CpuReport,
}

/// What one socket's loop counted.
#[derive(Default)]
struct Tally {
    round_trips: u64,
    error_replies: u64,
    latency: Latencies,
    failure: Option<String>,
}

pub async fn run(args: &RpcArgs, target: Arc<Target>) -> anyhow::Result<Outcome> {
    serde_json::from_str::<serde_json::Value>(&args.payload)
        .map_err(|e| anyhow::anyhow!("--payload must be JSON ({e}): e.g. '{{\"p\":\"x\"}}'"))?;
    let payload: Arc<str> = args.payload.as_str().into();
    let sockets = client::open_joined(&target, args.sockets, 1, SETUP_CONCURRENCY, |_| {
        Some(TOPIC.to_owned())
    })
    .await?
    .all()?;

    let meter = CpuMeter::start(target.server_pid.as_slice())?;
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut loops = JoinSet::new();
    for opened in sockets {
        loops.spawn(ping_loop(opened.ws, payload.clone(), deadline));
    }
    let mut total = Tally::default();
    let mut sockets_failed = 0;
    while let Some(tally) = loops.join_next().await {
        let tally = tally?;
        total.round_trips += tally.round_trips;
        total.error_replies += tally.error_replies;
        total.latency.merge(&tally.latency);
        if let Some(failure) = tally.failure {
            sockets_failed += 1;
            total.failure.get_or_insert(failure);
        }
    }
    let cpu = meter.stop()?;

    let result = RpcResult {
        sockets: args.sockets,
        seconds: args.seconds,
        round_trips: total.round_trips,
        round_trips_per_sec: total.round_trips as f64 / cpu.window_s,
        error_replies: total.error_replies,
        sockets_failed,
        first_failure: total.failure,
        latency_us: total.latency.summary(),
        cpu,
    };
    let mut summary = format!(
        "rpc: {} sockets x {} s: {} round trips/s ({} in all); latency {}\n{}",
        result.sockets,
        result.seconds,
        Count(result.round_trips_per_sec),
        Count(result.round_trips as f64),
        result.latency_us,
        result.cpu
    );
    if result.error_replies > 0 || result.sockets_failed > 0 {
        summary.push_str(&format!(
            "\nproblems: {} error replies, {} sockets failed ({})",
            result.error_replies,
            result.sockets_failed,
            result.first_failure.as_deref().unwrap_or("-")
        ));
    }
    let mut figures = vec![
        Figure::new("round_trips_per_sec", "/s", result.round_trips_per_sec),
        Figure::new("p50_us", "µs", result.latency_us.p50 as f64),
        Figure::new("p90_us", "µs", result.latency_us.p90 as f64),
        Figure::new("p99_us", "µs", result.latency_us.p99 as f64),
        Figure::new("max_us", "µs", result.latency_us.max as f64),
    ];
    figures.extend(cpu_figures(&result.cpu, str::to_owned));
    figures.extend(cost_figures(&result.cpu, result.round_trips, str::to_owned));
    Outcome::new("rpc", &result, figures, summary)
}

/// Pings until `deadline`, one ping in flight; stops early on the first
/// transport failure.
async fn ping_loop(mut ws: Ws, payload: Arc<str>, deadline: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut reference = wire::JOIN_REF;
    while Instant::now() < deadline {
        reference += 1;
        let frame = wire::push(Some(wire::JOIN_REF), reference, TOPIC, "ping", &payload);
        let sent = Instant::now();
        if let Err(error) = ws.send(Message::text(frame)).await {
            tally.failure = Some(format!("sending a ping: {error}"));
            break;
        }
        match client::await_reply(&mut ws, reference, sent + REPLY_TIMEOUT).await {
            Ok(Status::Ok) => {
                tally.latency.record(sent.elapsed());
                tally.round_trips += 1;
            }
            Ok(Status::Error(_)) => tally.error_replies += 1,
            Err(error) => {
                tally.failure = Some(format!("awaiting a ping reply: {error}"));
                break;
            }
        }
    }
    tally
}
