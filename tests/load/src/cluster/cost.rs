//! What each broadcast costs the cluster's Redis: commands, bytes in and
//! out, CPU, read from Redis's own statistics (`INFO`) and the nodes'
//! `/metrics` (`plume_cluster_*`) before and after each fan-out step.
//!
//! A cluster talks to Redis when nobody broadcasts too: every node writes a
//! heartbeat, publishes a probe to itself and sums the cluster's figures
//! every two seconds. That background is measured over an idle window once
//! every subscriber has joined, and subtracted from each step at its rate,
//! so the figures per broadcast are the broadcasts' own. The statistics
//! connection's own `INFO` exchanges are taken out exactly.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::redis::{CommandStat, Info, StatsConnection};
use crate::latency::Micros;
use crate::report::{Count, Figure};
use crate::scenario::fanout::{Probed, StepProbe};

/// How long one `/metrics` request may take.
const METRICS_TIMEOUT: Duration = Duration::from_secs(5);

/// Counters read at one moment, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters(BTreeMap<&'static str, f64>);

impl Counters {
    fn get(&self, name: &str) -> f64 {
        self.0.get(name).copied().unwrap_or(0.0)
    }

    fn map(&self, f: impl Fn(&'static str, f64) -> f64) -> Counters {
        Counters(self.0.iter().map(|(&name, &value)| (name, f(name, value))).collect())
    }

    fn json(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(&name, &value)| (name.to_owned(), json!(value)))
                .collect(),
        )
    }
}

/// Redis's statistics and the nodes' counters at one moment: what a step
/// starts from.
#[derive(Debug, Clone)]
pub struct Sample {
    at: Instant,
    redis: Info,
    /// `plume_cluster_*` summed over the nodes.
    plume: BTreeMap<String, f64>,
}

/// What changed from `earlier` to `later`, without the statistics
/// connection's own traffic: `earlier`'s reply went out after `earlier` was
/// read, and `later`'s request came in before `later` was.
fn delta(earlier: &Sample, later: &Sample) -> Counters {
    let sum = |info: &Info, wanted: &dyn Fn(&str) -> bool, of: fn(&CommandStat) -> u64| -> f64 {
        info.commands
            .iter()
            .filter(|(name, _)| wanted(name))
            .map(|(_, stat)| of(stat) as f64)
            .sum()
    };
    let calls = |wanted: &dyn Fn(&str) -> bool| {
        sum(&later.redis, wanted, |stat| stat.calls) - sum(&earlier.redis, wanted, |stat| stat.calls)
    };
    let usec = |wanted: &dyn Fn(&str) -> bool| {
        sum(&later.redis, wanted, |stat| stat.usec) - sum(&earlier.redis, wanted, |stat| stat.usec)
    };
    let publish = |name: &str| name == "publish" || name == "spublish";
    let plume = |name: &str| {
        later.plume.get(name).copied().unwrap_or(0.0)
            - earlier.plume.get(name).copied().unwrap_or(0.0)
    };
    let (e, l) = (&earlier.redis, &later.redis);
    Counters(BTreeMap::from([
        ("redis_commands", calls(&|name| name != "info")),
        ("redis_publishes", calls(&publish)),
        ("redis_publish_us", usec(&publish)),
        (
            "redis_bytes_in",
            l.net_input_bytes.saturating_sub(e.net_input_bytes + l.request_bytes) as f64,
        ),
        (
            "redis_bytes_out",
            l.net_output_bytes.saturating_sub(e.net_output_bytes + e.reply_bytes) as f64,
        ),
        ("redis_cpu_s", (l.cpu_s - e.cpu_s).max(0.0)),
        ("plume_commands", plume("plume_cluster_commands_total")),
        ("plume_round_trips", plume("plume_cluster_pipelines_total")),
        (
            "plume_messages_received",
            plume("plume_cluster_messages_received_total"),
        ),
        (
            "plume_messages_dropped",
            plume("plume_cluster_messages_dropped_total"),
        ),
        (
            "plume_command_failures",
            plume("plume_cluster_command_failures_total"),
        ),
    ]))
}

/// A command Redis ran in the background: how often, and how long it held
/// Redis each time (Redis runs one command at a time: a broadcast that
/// comes in meanwhile waits).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
struct BackgroundCommand {
    name: String,
    calls_per_s: f64,
    us_per_call: f64,
}

/// The commands run between `earlier` and `later`, `window_s` apart, the
/// statistics connection's `INFO` left out, longest calls first.
fn background_commands(earlier: &Info, later: &Info, window_s: f64) -> Vec<BackgroundCommand> {
    let mut commands: Vec<BackgroundCommand> = later
        .commands
        .iter()
        .filter(|(name, _)| name.as_str() != "info")
        .filter_map(|(name, stat)| {
            let before = earlier.commands.get(name).copied().unwrap_or_default();
            let calls = stat.calls.saturating_sub(before.calls);
            (calls > 0).then(|| BackgroundCommand {
                name: name.clone(),
                calls_per_s: calls as f64 / window_s,
                us_per_call: stat.usec.saturating_sub(before.usec) as f64 / calls as f64,
            })
        })
        .collect();
    commands.sort_by(|a, b| b.us_per_call.total_cmp(&a.us_per_call));
    commands
}

/// What a step cost, net of the background over its window, per broadcast.
fn per_broadcast(measured: &Counters, background_per_s: &Counters, window_s: f64, sent: u64) -> Counters {
    measured.map(|name, value| {
        let net = (value - background_per_s.get(name) * window_s).max(0.0);
        if sent == 0 { 0.0 } else { net / sent as f64 }
    })
}

/// The `plume_cluster_*` samples of a `/metrics` text, summed by name.
pub fn cluster_counters(metrics: &str, into: &mut BTreeMap<String, f64>) {
    for line in metrics.lines() {
        if !line.starts_with("plume_cluster_") {
            continue;
        }
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        let value = line
            .rsplit(' ')
            .next()
            .and_then(|value| value.parse::<f64>().ok());
        if let Some(value) = value {
            *into.entry(name.to_owned()).or_default() += value;
        }
    }
}

/// A node's `/metrics` text.
async fn metrics(node: SocketAddr) -> anyhow::Result<String> {
    let fetch = async {
        let mut stream = TcpStream::connect(node).await?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        std::io::Result::Ok(String::from_utf8_lossy(&response).into_owned())
    };
    let response = tokio::time::timeout(METRICS_TIMEOUT, fetch)
        .await
        .map_err(|_| anyhow::anyhow!("{node} did not answer GET /metrics within {METRICS_TIMEOUT:?}"))?
        .with_context(|| format!("GET /metrics from {node}"))?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    anyhow::ensure!(
        head.starts_with("HTTP/1.1 200"),
        "{node} answered GET /metrics with {:?}",
        head.lines().next().unwrap_or_default()
    );
    Ok(body.to_owned())
}

/// The probe of a cluster run.
pub struct RedisCost {
    redis: StatsConnection,
    nodes: Vec<SocketAddr>,
    background: Duration,
    background_per_s: Counters,
    background_commands: Vec<BackgroundCommand>,
}

impl RedisCost {
    /// Reads `redis`'s statistics and the `/metrics` of `nodes`; measures
    /// the background for `background` once the subscribers have joined.
    pub async fn connect(
        redis: SocketAddr,
        nodes: Vec<SocketAddr>,
        background: Duration,
    ) -> anyhow::Result<RedisCost> {
        Ok(RedisCost {
            redis: StatsConnection::connect(redis).await?,
            nodes,
            background,
            background_per_s: Counters::default(),
            background_commands: Vec::new(),
        })
    }

    async fn sample(&mut self) -> anyhow::Result<Sample> {
        let redis = self.redis.info().await?;
        let at = Instant::now();
        let mut plume = BTreeMap::new();
        for &node in &self.nodes {
            cluster_counters(&metrics(node).await?, &mut plume);
        }
        Ok(Sample { at, redis, plume })
    }
}

impl StepProbe for RedisCost {
    type Mark = Sample;

    async fn ready(&mut self) -> anyhow::Result<()> {
        eprintln!(
            "cluster: measuring Redis's background traffic (heartbeats, figures) for {} s, every subscriber joined",
            self.background.as_secs()
        );
        let before = self.sample().await?;
        tokio::time::sleep(self.background).await;
        let after = self.sample().await?;
        let window_s = after.at.duration_since(before.at).as_secs_f64().max(1e-3);
        self.background_per_s = delta(&before, &after).map(|_, value| value / window_s);
        self.background_commands = background_commands(&before.redis, &after.redis, window_s);
        let longest = self
            .background_commands
            .first()
            .map(|command| {
                format!(
                    "; the longest call: {} {} ({:.1} a second)",
                    command.name.to_uppercase(),
                    Micros(command.us_per_call.round() as u64),
                    command.calls_per_s
                )
            })
            .unwrap_or_default();
        eprintln!(
            "cluster: background: {:.1} Redis commands/s, {} B/s in, {} B/s out, {:.2} ms of Redis CPU/s{longest}",
            self.background_per_s.get("redis_commands"),
            Count(self.background_per_s.get("redis_bytes_in")),
            Count(self.background_per_s.get("redis_bytes_out")),
            self.background_per_s.get("redis_cpu_s") * 1e3,
        );
        Ok(())
    }

    async fn start(&mut self) -> anyhow::Result<Sample> {
        self.sample().await
    }

    async fn stop(&mut self, start: Sample, sent: u64) -> anyhow::Result<Probed> {
        let end = self.sample().await?;
        let window_s = end.at.duration_since(start.at).as_secs_f64();
        let measured = delta(&start, &end);
        let each = per_broadcast(&measured, &self.background_per_s, window_s, sent);
        let dropped = measured.get("plume_messages_dropped");
        let subscriptions = end
            .plume
            .get("plume_cluster_subscriptions")
            .copied()
            .unwrap_or(0.0);
        let mut fields = Map::new();
        fields.insert(
            "redis".to_owned(),
            json!({
                "window_s": window_s,
                "broadcasts": sent,
                "measured": measured.json(),
                "background_per_s": self.background_per_s.json(),
                "background_commands": self.background_commands,
                "per_broadcast": each.json(),
                "node_subscriptions": subscriptions,
            }),
        );
        let figures = vec![
            Figure::new("redis_commands_per_broadcast", "cmd", each.get("redis_commands")),
            Figure::new("redis_publishes_per_broadcast", "cmd", each.get("redis_publishes")),
            Figure::new("redis_bytes_in_per_broadcast", "B", each.get("redis_bytes_in")),
            Figure::new("redis_bytes_out_per_broadcast", "B", each.get("redis_bytes_out")),
            Figure::new("redis_cpu_us_per_broadcast", "µs", each.get("redis_cpu_s") * 1e6),
            Figure::new("redis_publish_us_per_broadcast", "µs", each.get("redis_publish_us")),
            Figure::new("node_round_trips_per_broadcast", "trips", each.get("plume_round_trips")),
            Figure::new("node_receipts_per_broadcast", "nodes", each.get("plume_messages_received")),
            Figure::new("node_messages_dropped", "msgs", dropped),
            Figure::new(
                "redis_background_commands_per_sec",
                "/s",
                self.background_per_s.get("redis_commands"),
            ),
            Figure::new(
                "redis_background_longest_call_us",
                "µs",
                self.background_commands
                    .first()
                    .map_or(0.0, |command| command.us_per_call),
            ),
        ];
        let summary = format!(
            "Redis per broadcast (net of {:.1} background commands/s): {:.2} commands ({:.2} PUBLISH, {:.1} µs in them), {} B in, {} B out, {:.1} µs of Redis CPU; the nodes made {:.2} round trips to Redis a broadcast and heard each {:.2} times; {} messages dropped; {} Redis channels held by the nodes",
            self.background_per_s.get("redis_commands"),
            each.get("redis_commands"),
            each.get("redis_publishes"),
            each.get("redis_publish_us"),
            Count(each.get("redis_bytes_in")),
            Count(each.get("redis_bytes_out")),
            each.get("redis_cpu_s") * 1e6,
            each.get("plume_round_trips"),
            each.get("plume_messages_received"),
            Count(dropped),
            Count(subscriptions),
        );
        Ok(Probed {
            fields,
            figures,
            summary: Some(summary),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(calls: u64, usec: u64) -> CommandStat {
        CommandStat { calls, usec }
    }

    fn sample(at: Instant, publishes: u64, info_calls: u64, bytes: (u64, u64), plume: f64) -> Sample {
        Sample {
            at,
            redis: Info {
                commands: BTreeMap::from([
                    ("publish".to_owned(), stat(publishes, publishes * 3)),
                    ("zadd".to_owned(), stat(publishes / 100, 0)),
                    ("info".to_owned(), stat(info_calls, 50)),
                ]),
                net_input_bytes: bytes.0,
                net_output_bytes: bytes.1,
                cpu_s: publishes as f64 * 1e-5,
                request_bytes: 40,
                reply_bytes: 3000,
            },
            plume: BTreeMap::from([("plume_cluster_pipelines_total".to_owned(), plume)]),
        }
    }

    #[test]
    fn a_delta_leaves_out_the_statistics_connections_own_info_exchanges() {
        let now = Instant::now();
        let earlier = sample(now, 100, 1, (10_000, 50_000), 7.0);
        let later = sample(now, 1100, 2, (10_000 + 40 + 150_000, 50_000 + 3000 + 300_000), 107.0);
        let d = delta(&earlier, &later);
        assert_eq!(d.get("redis_publishes"), 1000.0);
        assert_eq!(d.get("redis_commands"), 1010.0, "INFO is not counted: {d:?}");
        assert_eq!(d.get("redis_publish_us"), 3000.0);
        assert_eq!(d.get("redis_bytes_in"), 150_000.0);
        assert_eq!(d.get("redis_bytes_out"), 300_000.0);
        assert_eq!(d.get("plume_round_trips"), 100.0);
        assert!((d.get("redis_cpu_s") - 0.01).abs() < 1e-9);
    }

    #[test]
    fn background_commands_come_longest_call_first_without_info() {
        let earlier = Info {
            commands: BTreeMap::from([
                ("publish".to_owned(), stat(10, 20)),
                ("eval".to_owned(), stat(1, 900)),
                ("info".to_owned(), stat(1, 40)),
            ]),
            ..Info::default()
        };
        let later = Info {
            commands: BTreeMap::from([
                ("publish".to_owned(), stat(18, 36)),
                ("eval".to_owned(), stat(5, 4900)),
                ("zadd".to_owned(), stat(4, 8)),
                ("info".to_owned(), stat(2, 80)),
            ]),
            ..Info::default()
        };
        let commands = background_commands(&earlier, &later, 4.0);
        let names: Vec<&str> = commands.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["eval", "publish", "zadd"]);
        assert_eq!(commands[0].us_per_call, 1000.0);
        assert_eq!(commands[0].calls_per_s, 1.0);
        assert_eq!(commands[1].us_per_call, 2.0);
        assert_eq!(commands[1].calls_per_s, 2.0);
    }

    #[test]
    fn the_cost_per_broadcast_is_net_of_the_background_at_its_rate() {
        let measured = Counters(BTreeMap::from([("redis_commands", 1030.0), ("redis_bytes_in", 100.0)]));
        let background = Counters(BTreeMap::from([("redis_commands", 3.0), ("redis_bytes_in", 50.0)]));
        let each = per_broadcast(&measured, &background, 10.0, 1000);
        assert!((each.get("redis_commands") - 1.0).abs() < 1e-9, "{each:?}");
        // More background than measured is noise, not a negative cost.
        assert_eq!(each.get("redis_bytes_in"), 0.0);
        assert_eq!(per_broadcast(&measured, &background, 10.0, 0).get("redis_commands"), 0.0);
    }

    #[test]
    fn cluster_counters_are_summed_over_the_nodes() {
        let node = |n: u64| {
            format!(
                "# HELP plume_connections Open sockets.\nplume_connections{{app=\"demo\"}} 5\n\
                 # TYPE plume_cluster_commands_total counter\n\
                 plume_cluster_commands_total{{node=\"host-{n}\"}} {}\n\
                 plume_cluster_up{{node=\"host-{n}\"}} 1\n",
                n * 100
            )
        };
        let mut sums = BTreeMap::new();
        cluster_counters(&node(1), &mut sums);
        cluster_counters(&node(2), &mut sums);
        assert_eq!(sums.get("plume_cluster_commands_total"), Some(&300.0));
        assert_eq!(sums.get("plume_cluster_up"), Some(&2.0));
        assert_eq!(sums.len(), 2, "{sums:?}");
    }
}
