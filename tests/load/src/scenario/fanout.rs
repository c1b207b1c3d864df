//! `fanout`: N subscribers join one topic; one publisher (a member too, as
//! in any chat room) pushes `new_msg` at R messages a second for S seconds.
//! Every subscriber measures the latency from publish to receipt; the run
//! reports deliveries per second and received against expected. `--sweep`
//! steps through several rates on the same subscribers and reports the
//! highest delivery rate the server kept up with.
//!
//! Each body is stamped `"<step>:<µs>"` with the time the message was *due*
//! to be sent, not the moment the publisher got to send it, so a server that
//! stalls the publisher is charged for the stall (no coordinated omission).
//! Subscribers tally on their own and file their counts when they move on
//! to the next step or stop, so the hot path takes no lock.
//!
//! With `--node URL` (repeatable) the subscribers are shared evenly between
//! the main target, which also holds the publisher, and each node: the
//! nodes of a cluster, where most deliveries cross from node to node. The
//! totals are counted exactly as on one server, and each node's share is
//! reported beside them. `plume-load cluster` runs it so, with a
//! [`StepProbe`] that measures what each step cost the cluster's Redis.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;

use super::SETUP_CONCURRENCY;
use crate::client::{self, Target, Ws};
use crate::latency::{Latencies, Micros, Summary};
use crate::process::{CpuMeter, CpuReport};
use crate::report::{Count, Figure, Outcome, cost_figures, cpu_figures};
use crate::wire::{self, Status};

/// Subscribers heartbeat this often, so that long sweeps are not closed as
/// idle (Phoenix's default timeout is 60 s).
const HEARTBEAT: Duration = Duration::from_secs(25);

/// How long the publisher may fall behind its schedule before the step is
/// abandoned: the server has stopped taking its messages.
const PUBLISH_GRACE: Duration = Duration::from_secs(30);

/// How long subscribers get to file their tallies once told to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The highest publish rate accepted, messages a second.
const MAX_RATE: f64 = 100_000.0;

#[derive(Debug, Clone, clap::Args)]
pub struct FanoutArgs {
    /// Subscribers, each a socket joined to the topic.
    #[arg(long, default_value_t = 2000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=18_999))]
    pub subscribers: usize,
    /// Messages a second from the publisher.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Rates to step through instead of --rate, e.g. 100,500,1000,2000.
    #[arg(long, value_delimiter = ',')]
    pub sweep: Vec<f64>,
    /// How long each rate is published.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub seconds: u64,
    /// How long to wait, after a rate's last publish, for its deliveries.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub drain_seconds: u64,
    /// A rate is kept up with when nothing is lost and p99 stays under this.
    #[arg(long, default_value_t = 1000)]
    pub keep_up_p99_ms: u64,
    /// The topic everyone joins.
    #[arg(long, default_value = "room:fanout")]
    pub topic: String,
    /// Another server to spread the subscribers over (repeatable), e.g. a
    /// second node of a cluster, as ws://127.0.0.1:PORT/socket/websocket.
    /// The subscribers are shared evenly between the main target (which
    /// holds the publisher) and each node.
    #[arg(long = "node", value_name = "URL")]
    pub nodes: Vec<String>,
}

impl FanoutArgs {
    fn rates(&self) -> anyhow::Result<Vec<f64>> {
        let rates = if self.sweep.is_empty() {
            vec![self.rate]
        } else {
            self.sweep.clone()
        };
        for &rate in &rates {
            anyhow::ensure!(
                rate > 0.0 && rate <= MAX_RATE && rate * self.seconds as f64 >= 1.0,
                "a rate of {rate} messages/s for {} s does not work: give a rate above 0 and at most {MAX_RATE}, with at least one message in all",
                self.seconds
            );
        }
        Ok(rates)
    }
}

/// `total` subscribers shared as evenly as can be among `servers`, the first
/// servers taking one more when it does not divide.
pub fn shares(total: usize, servers: usize) -> Vec<usize> {
    let servers = servers.max(1);
    (0..servers)
        .map(|server| total / servers + usize::from(server < total % servers))
        .collect()
}

/// Where the run's sockets go, and which processes serve it.
pub struct Placement {
    /// The publisher's server; it holds the first share of subscribers.
    pub main: Arc<Target>,
    /// Further servers that the subscribers are shared with.
    pub nodes: Vec<Arc<Target>>,
    /// The processes whose CPU time is the server's: every node's, and
    /// anything else they need (a cluster's Redis).
    pub server_pids: Vec<u32>,
}

impl Placement {
    /// The main target and `--node`s, with the main target's process.
    pub fn of(args: &FanoutArgs, main: Arc<Target>) -> anyhow::Result<Placement> {
        let nodes = args
            .nodes
            .iter()
            .map(|url| Ok(Arc::new(main.sibling(url, None)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Placement {
            server_pids: main.server_pid.into_iter().collect(),
            main,
            nodes,
        })
    }

    fn servers(&self) -> impl Iterator<Item = &Arc<Target>> {
        std::iter::once(&self.main).chain(&self.nodes)
    }
}

/// Something measured over each step beside the fan-out's own figures:
/// what the step cost a cluster's Redis, say. Each step's window runs from
/// its first publish until its drain ended.
pub trait StepProbe {
    /// What `start` noted, for `stop` to subtract.
    type Mark;
    /// Every subscriber has joined; the first step is about to start.
    fn ready(&mut self) -> impl Future<Output = anyhow::Result<()>>;
    /// A step starts publishing.
    fn start(&mut self) -> impl Future<Output = anyhow::Result<Self::Mark>>;
    /// The step's drain ended; it published `sent` broadcasts.
    fn stop(&mut self, mark: Self::Mark, sent: u64)
    -> impl Future<Output = anyhow::Result<Probed>>;
}

/// What a [`StepProbe`] measured over one step.
#[derive(Default)]
pub struct Probed {
    /// Added to the step's JSON object.
    pub fields: Map<String, Value>,
    /// Headline figures, named as the step's own (a sweep adds the rate).
    pub figures: Vec<Figure>,
    /// A line for the summary.
    pub summary: Option<String>,
}

/// The probe of a plain run: nothing beside the fan-out's own figures.
pub struct NoProbe;

impl StepProbe for NoProbe {
    type Mark = ();

    async fn ready(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    async fn start(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    async fn stop(&mut self, (): (), _sent: u64) -> anyhow::Result<Probed> {
        Ok(Probed::default())
    }
}

#[derive(Serialize)]
struct FanoutResult {
    subscribers: usize,
    /// Subscribers per server, the publisher's first (with `--node`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    subscribers_per_node: Vec<usize>,
    seconds: u64,
    topic: String,
    steps: Vec<StepResult>,
    /// The highest deliveries/s among the rates kept up with (0 if none).
    sustainable_deliveries_per_sec: f64,
    publish_replies_ok: u64,
    publish_replies_error: u64,
    /// Subscribers the server closed (a slow consumer is closed, not waited for).
    subscribers_closed: usize,
    /// Frames a subscriber received that were neither a stamped new_msg nor a reply.
    unrecognized_frames: u64,
}

#[derive(Serialize)]
struct StepResult {
    rate: f64,
    sent: u64,
    /// Deliveries due: messages sent times subscribers.
    expected: u64,
    received: u64,
    missing: u64,
    /// Received over the time from the step's first publish to its last receipt.
    deliveries_per_sec: f64,
    latency_us: Summary,
    /// From the last publish until every subscriber had everything, or the drain gave up.
    drain_s: f64,
    /// Nothing missing, p99 under --keep-up-p99-ms, and the publisher never stalled.
    kept_up: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    publish_error: Option<String>,
    cpu: CpuReport,
    /// Each server's share (with `--node`), the publisher's first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    nodes: Vec<NodeStep>,
    /// What the step's probe measured.
    #[serde(flatten)]
    probed: Map<String, Value>,
    #[serde(skip)]
    probed_figures: Vec<Figure>,
    #[serde(skip)]
    probed_summary: Option<String>,
}

/// One server's subscribers over one step.
#[derive(Serialize)]
struct NodeStep {
    url: String,
    subscribers: usize,
    expected: u64,
    received: u64,
    latency_us: Summary,
}

/// Where subscribers leave what they counted, per step.
struct Board {
    epoch: Instant,
    /// Messages each step publishes: a subscriber with that many has them all.
    expected: Vec<u64>,
    /// Subscribers that have all of each step's messages.
    complete: Vec<AtomicUsize>,
    /// Per step, per server.
    tallies: Vec<Vec<Mutex<Tally>>>,
}

impl Board {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// Adds the tally of `step` of a subscriber on server `node` to the
    /// step's, and clears it.
    fn file(&self, step: usize, node: usize, tally: &mut Tally) {
        self.tallies[step][node]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .add(tally);
        tally.received = 0;
        tally.latency.reset();
        tally.last_receipt_us = 0;
    }

    /// Step `step`'s tally on each server.
    fn step_tallies(&self, step: usize) -> Vec<Tally> {
        self.tallies[step]
            .iter()
            .map(|tally| {
                let mut copy = Tally::default();
                copy.add(&tally.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
                copy
            })
            .collect()
    }
}

#[derive(Default)]
struct Tally {
    received: u64,
    latency: Latencies,
    last_receipt_us: u64,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.received += other.received;
        self.latency.merge(&other.latency);
        self.last_receipt_us = self.last_receipt_us.max(other.last_receipt_us);
    }
}

/// How a subscriber ended.
struct Ended {
    closed_by_server: bool,
    unrecognized: u64,
}

/// What the publisher's replies said.
#[derive(Default)]
struct Replies {
    ok: u64,
    error: u64,
}

/// One step as the publisher ran it.
struct Published {
    rate: f64,
    start_us: u64,
    sent: u64,
    error: Option<String>,
    drain: Duration,
    cpu: CpuReport,
    probed: Probed,
}

/// Runs the fan-out against `target`, and the `--node`s.
pub async fn run(args: &FanoutArgs, target: Arc<Target>) -> anyhow::Result<Outcome> {
    run_on(args, Placement::of(args, target)?, &mut NoProbe).await
}

/// Runs the fan-out on `placement`'s servers, `probe` measuring each step.
pub async fn run_on(
    args: &FanoutArgs,
    placement: Placement,
    probe: &mut impl StepProbe,
) -> anyhow::Result<Outcome> {
    let rates = args.rates()?;
    let expected: Vec<u64> = rates
        .iter()
        .map(|rate| (rate * args.seconds as f64).round() as u64)
        .collect();
    let servers: Vec<&Arc<Target>> = placement.servers().collect();
    let shares = shares(args.subscribers, servers.len());
    let mut subscribers = Vec::with_capacity(servers.len());
    let mut first_user = 1;
    for (&target, &share) in servers.iter().zip(&shares) {
        eprintln!(
            "fanout: joining {} subscribers to {} on {}",
            Count(share as f64),
            args.topic,
            target.url()
        );
        let opened =
            client::open_joined(target, share, first_user, SETUP_CONCURRENCY, |_| {
                Some(args.topic.clone())
            })
            .await?
            .all()?;
        subscribers.push(opened);
        first_user += share as u64;
    }
    let publisher = client::open_joined(&placement.main, 1, first_user, 1, |_| {
        Some(args.topic.clone())
    })
    .await?
    .all()?;
    let Some(publisher) = publisher.into_iter().next() else {
        anyhow::bail!("the publisher's socket did not open");
    };

    let board = Arc::new(Board {
        epoch: Instant::now(),
        complete: expected.iter().map(|_| AtomicUsize::new(0)).collect(),
        tallies: expected
            .iter()
            .map(|_| servers.iter().map(|_| Mutex::new(Tally::default())).collect())
            .collect(),
        expected,
    });
    let (stop, stopped) = watch::channel(false);
    let mut listening = JoinSet::new();
    for (node, opened) in subscribers.into_iter().enumerate() {
        for opened in opened {
            listening.spawn(subscribe(opened.ws, node, board.clone(), stopped.clone()));
        }
    }
    let (mut sink, stream) = publisher.ws.split();
    let replies = tokio::spawn(count_replies(stream, stopped.clone()));
    probe.ready().await?;

    let mut published = Vec::with_capacity(rates.len());
    let mut reference = wire::JOIN_REF;
    for (step, &rate) in rates.iter().enumerate() {
        eprintln!(
            "fanout: publishing {rate} msg/s for {} s to {} subscribers (rate {} of {})",
            args.seconds,
            Count(args.subscribers as f64),
            step + 1,
            rates.len()
        );
        let meter = CpuMeter::start(&placement.server_pids)?;
        let mark = probe.start().await?;
        let start_us = board.now_us();
        let (sent, error) =
            publish(&mut sink, &args.topic, step, rate, &board, &mut reference).await;
        let drain_start = Instant::now();
        let drain_deadline = drain_start + Duration::from_secs(args.drain_seconds);
        while board.complete[step].load(Ordering::Relaxed) < args.subscribers
            && Instant::now() < drain_deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let stalled = error.is_some();
        let drain = drain_start.elapsed();
        let cpu = meter.stop()?;
        let probed = probe.stop(mark, sent).await?;
        published.push(Published {
            rate,
            start_us,
            sent,
            error,
            drain,
            cpu,
            probed,
        });
        if stalled {
            break;
        }
    }

    let _ = stop.send(true);
    let mut subscribers_closed = 0;
    let mut unrecognized_frames = 0;
    let collected = tokio::time::timeout(STOP_TIMEOUT, async {
        while let Some(ended) = listening.join_next().await {
            if let Ok(ended) = ended {
                subscribers_closed += usize::from(ended.closed_by_server);
                unrecognized_frames += ended.unrecognized;
            }
        }
    })
    .await;
    anyhow::ensure!(
        collected.is_ok(),
        "subscribers did not stop within {STOP_TIMEOUT:?}"
    );
    let _ = sink.close().await;
    let replies = replies.await.unwrap_or_default();

    let keep_up_p99_us = args.keep_up_p99_ms * 1000;
    let steps: Vec<StepResult> = published
        .into_iter()
        .enumerate()
        .map(|(step, run)| {
            let per_node = board.step_tallies(step);
            let mut tally = Tally::default();
            for node in &per_node {
                tally.add(node);
            }
            let nodes = if per_node.len() > 1 {
                per_node
                    .iter()
                    .zip(&servers)
                    .zip(&shares)
                    .map(|((node, target), &share)| NodeStep {
                        url: target.url(),
                        subscribers: share,
                        expected: run.sent * share as u64,
                        received: node.received,
                        latency_us: node.latency.summary(),
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let expected = run.sent * args.subscribers as u64;
            let window_s = tally.last_receipt_us.saturating_sub(run.start_us) as f64 / 1e6;
            let latency = tally.latency.summary();
            let missing = expected.saturating_sub(tally.received);
            StepResult {
                rate: run.rate,
                sent: run.sent,
                expected,
                received: tally.received,
                missing,
                deliveries_per_sec: if window_s > 0.0 {
                    tally.received as f64 / window_s
                } else {
                    0.0
                },
                latency_us: latency,
                drain_s: run.drain.as_secs_f64(),
                kept_up: missing == 0 && run.error.is_none() && latency.p99 <= keep_up_p99_us,
                publish_error: run.error,
                cpu: run.cpu,
                nodes,
                probed: run.probed.fields,
                probed_figures: run.probed.figures,
                probed_summary: run.probed.summary,
            }
        })
        .collect();
    let result = FanoutResult {
        subscribers: args.subscribers,
        subscribers_per_node: if shares.len() > 1 { shares } else { Vec::new() },
        seconds: args.seconds,
        topic: args.topic.clone(),
        sustainable_deliveries_per_sec: steps
            .iter()
            .filter(|step| step.kept_up)
            .map(|step| step.deliveries_per_sec)
            .fold(0.0, f64::max),
        steps,
        publish_replies_ok: replies.ok,
        publish_replies_error: replies.error,
        subscribers_closed,
        unrecognized_frames,
    };
    let sweep = !args.sweep.is_empty();
    let summary = describe(&result);
    let figures = figures(&result, sweep);
    Outcome::new("fanout", &result, figures, summary)
}

/// Publishes step `step`'s messages at `rate`, on a 1 ms tick (or one tick
/// a message below 1,000 messages/s), flushing once a tick. Returns how
/// many were sent and, if the step was cut short, why.
async fn publish(
    sink: &mut SplitSink<Ws, Message>,
    topic: &str,
    step: usize,
    rate: f64,
    board: &Board,
    reference: &mut u64,
) -> (u64, Option<String>) {
    let total = board.expected[step];
    let start = Instant::now();
    let start_us = board.now_us();
    let deadline = start + Duration::from_secs_f64(total as f64 / rate) + PUBLISH_GRACE;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64((1.0 / rate).max(0.001)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut sent = 0;
    while sent < total {
        ticker.tick().await;
        let due = ((start.elapsed().as_secs_f64() * rate) as u64 + 1).min(total);
        let batch = async {
            while sent < due {
                let due_us = start_us + (sent as f64 * 1e6 / rate) as u64;
                *reference += 1;
                let body = format!("{{\"body\":\"{step}:{due_us}\"}}");
                sink.feed(Message::text(wire::push(
                    Some(wire::JOIN_REF),
                    *reference,
                    topic,
                    "new_msg",
                    &body,
                )))
                .await?;
                sent += 1;
            }
            sink.flush().await
        };
        let outcome = tokio::time::timeout_at(deadline, batch).await;
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return (sent, Some(format!("publishing failed: {error}"))),
            Err(_) => {
                return (
                    sent,
                    Some(format!(
                        "the server stopped taking messages: {sent} of {total} sent by the deadline"
                    )),
                );
            }
        }
    }
    (sent, None)
}

/// Reads the publisher's socket (its replies and its own copies of the
/// broadcasts, which must be read or the server would close it as slow)
/// until told to stop.
async fn count_replies(mut stream: SplitStream<Ws>, mut stop: watch::Receiver<bool>) -> Replies {
    let mut replies = Replies::default();
    let stopped = stop.changed();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            biased;
            _ = &mut stopped => break,
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    if wire::new_msg_body(&text).is_some() {
                        continue;
                    }
                    match wire::reply(&text).map(|reply| reply.status) {
                        Some(Status::Ok) => replies.ok += 1,
                        Some(Status::Error(_)) => replies.error += 1,
                        None => {}
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
        }
    }
    replies
}

/// One subscriber, on server `node`: tallies stamped messages until told to
/// stop or closed.
async fn subscribe(
    mut ws: Ws,
    node: usize,
    board: Arc<Board>,
    mut stop: watch::Receiver<bool>,
) -> Ended {
    let mut tally = Tally::default();
    let mut step_tallied: Option<usize> = None;
    let mut unrecognized = 0;
    let mut heartbeat = tokio::time::interval_at(Instant::now() + HEARTBEAT, HEARTBEAT);
    let mut heartbeat_ref = wire::JOIN_REF;
    // Made once, not per frame: a fresh `changed()` each time round would
    // register with the watch (under its lock) thousands of times a second
    // per subscriber.
    let stopped = stop.changed();
    tokio::pin!(stopped);
    let closed_by_server = loop {
        tokio::select! {
            biased;
            _ = &mut stopped => break false,
            _ = heartbeat.tick() => {
                heartbeat_ref += 1;
                if ws.send(Message::text(wire::heartbeat(heartbeat_ref))).await.is_err() {
                    break true;
                }
            }
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let Some((step, due_us)) = wire::new_msg_body(&text).and_then(parse_stamp) else {
                        if wire::reply(&text).is_none() {
                            unrecognized += 1;
                        }
                        continue;
                    };
                    let Some(&expected) = board.expected.get(step) else {
                        unrecognized += 1;
                        continue;
                    };
                    let now_us = board.now_us();
                    if step_tallied != Some(step) {
                        if let Some(previous) = step_tallied {
                            board.file(previous, node, &mut tally);
                        }
                        step_tallied = Some(step);
                    }
                    tally.received += 1;
                    tally.latency.record_us(now_us.saturating_sub(due_us));
                    tally.last_receipt_us = now_us;
                    if tally.received == expected {
                        board.complete[step].fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break true,
                Some(Ok(_)) => {}
            },
        }
    };
    if let Some(step) = step_tallied {
        board.file(step, node, &mut tally);
    }
    Ended {
        closed_by_server,
        unrecognized,
    }
}

/// `"<step>:<due µs>"`.
fn parse_stamp(body: &str) -> Option<(usize, u64)> {
    let (step, due_us) = body.split_once(':')?;
    Some((step.parse().ok()?, due_us.parse().ok()?))
}

fn describe(result: &FanoutResult) -> String {
    let mut lines = Vec::new();
    for step in &result.steps {
        let received_pct = if step.expected > 0 {
            step.received as f64 * 100.0 / step.expected as f64
        } else {
            0.0
        };
        lines.push(format!(
            "fanout: {} subscribers @ {} msg/s x {} s: {} deliveries/s, received {} of {} ({received_pct:.2}%), drained in {:.2} s; latency {}; {}{}",
            result.subscribers,
            step.rate,
            result.seconds,
            Count(step.deliveries_per_sec),
            Count(step.received as f64),
            Count(step.expected as f64),
            step.drain_s,
            step.latency_us,
            step.cpu,
            if step.kept_up { "; kept up" } else { "; FELL BEHIND" }
        ));
        for (index, node) in step.nodes.iter().enumerate() {
            lines.push(format!(
                "  node {} ({}{}): {} subscribers, received {} of {}; latency {}",
                index + 1,
                node.url,
                if index == 0 { ", the publisher's" } else { "" },
                Count(node.subscribers as f64),
                Count(node.received as f64),
                Count(node.expected as f64),
                node.latency_us
            ));
        }
        if let Some(summary) = &step.probed_summary {
            lines.push(format!("  {summary}"));
        }
        if let Some(error) = &step.publish_error {
            lines.push(format!("  publisher: {error}"));
        }
    }
    if result.steps.len() > 1 {
        lines.push(format!(
            "sustainable: {} deliveries/s",
            Count(result.sustainable_deliveries_per_sec)
        ));
    }
    if result.subscribers_closed > 0
        || result.unrecognized_frames > 0
        || result.publish_replies_error > 0
    {
        lines.push(format!(
            "problems: {} subscribers closed by the server, {} unrecognized frames, {} error replies to the publisher",
            result.subscribers_closed, result.unrecognized_frames, result.publish_replies_error
        ));
    }
    if let Some(worst) = result.steps.iter().map(|step| step.latency_us.max).max() {
        lines.push(format!("worst delivery latency: {}", Micros(worst)));
    }
    lines.join("\n")
}

fn figures(result: &FanoutResult, sweep: bool) -> Vec<Figure> {
    let mut figures = Vec::new();
    for step in &result.steps {
        let name = |figure: &str| {
            if sweep {
                format!("{figure}@{}", step.rate)
            } else {
                figure.to_owned()
            }
        };
        let received_pct = if step.expected > 0 {
            step.received as f64 * 100.0 / step.expected as f64
        } else {
            0.0
        };
        figures.push(Figure::new(
            name("deliveries_per_sec"),
            "/s",
            step.deliveries_per_sec,
        ));
        figures.push(Figure::new(name("received_pct"), "%", received_pct));
        figures.push(Figure::new(
            name("p50_us"),
            "µs",
            step.latency_us.p50 as f64,
        ));
        figures.push(Figure::new(
            name("p99_us"),
            "µs",
            step.latency_us.p99 as f64,
        ));
        figures.push(Figure::new(
            name("max_us"),
            "µs",
            step.latency_us.max as f64,
        ));
        figures.extend(cpu_figures(&step.cpu, name));
        figures.extend(cost_figures(&step.cpu, step.received, name));
        for (index, node) in step.nodes.iter().enumerate() {
            let node_name = |figure: &str| name(&format!("node{}_{figure}", index + 1));
            let received_pct = if node.expected > 0 {
                node.received as f64 * 100.0 / node.expected as f64
            } else {
                0.0
            };
            figures.push(Figure::new(node_name("received_pct"), "%", received_pct));
            figures.push(Figure::new(
                node_name("p50_us"),
                "µs",
                node.latency_us.p50 as f64,
            ));
            figures.push(Figure::new(
                node_name("p99_us"),
                "µs",
                node.latency_us.p99 as f64,
            ));
        }
        for figure in &step.probed_figures {
            figures.push(Figure::new(name(&figure.name), figure.unit, figure.value));
        }
    }
    if sweep {
        figures.push(Figure::new(
            "sustainable_deliveries_per_sec",
            "/s",
            result.sustainable_deliveries_per_sec,
        ));
    }
    figures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_are_shared_evenly_the_first_servers_taking_the_rest() {
        assert_eq!(shares(2000, 2), vec![1000, 1000]);
        assert_eq!(shares(7, 3), vec![3, 2, 2]);
        assert_eq!(shares(2, 3), vec![1, 1, 0]);
        assert_eq!(shares(5, 1), vec![5]);
        assert_eq!(shares(5, 0), vec![5]);
        for (total, servers) in [(1, 4), (1999, 2), (18_999, 7)] {
            let split = shares(total, servers);
            assert_eq!(split.len(), servers);
            assert_eq!(split.iter().sum::<usize>(), total);
            let (most, least) = (split.iter().max(), split.iter().min());
            assert!(most.zip(least).is_some_and(|(m, l)| m - l <= 1), "{split:?}");
        }
    }

    #[test]
    fn stamps_carry_the_step_and_the_due_time() {
        assert_eq!(parse_stamp("2:123456"), Some((2, 123_456)));
        assert_eq!(parse_stamp("x:1"), None);
        assert_eq!(parse_stamp("12"), None);
    }
}
