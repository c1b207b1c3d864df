//! `cluster`: fan-out across the nodes of a plume cluster, against one node
//! alone, in the same run.
//!
//! Each round starts, fresh: one plume without a cluster, which gets every
//! subscriber (`--nodes` × `--subscribers`) and the publisher; then a real
//! `redis-server` (free loopback port, its own directory, nothing saved)
//! and `--nodes` plume nodes on it (`PLUME_REDIS_URL`), each with
//! `--subscribers` subscribers, the publisher on node 1. Both run the same
//! fan-out (rate or sweep, seconds): deliveries/s, received against
//! expected, latency from publish to receipt. For the cluster, each step
//! also reports what the broadcasts cost Redis ([`cost`]): commands, bytes
//! in and out and CPU per broadcast, net of the cluster's background
//! traffic, which should not grow with the subscribers.
//!
//! Like `compare`, it prints each run's JSON line and summary as it ends,
//! then the medians side by side with cluster/single, as a table (stderr)
//! and one JSON line (stdout).

pub mod cost;
pub mod redis;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde::Serialize;

use crate::client::Target;
use crate::compare::server::Server;
use crate::compare::{self, BETWEEN_RUNS};
use crate::latency::Micros;
use crate::process;
use crate::report::{Count, Figure, Outcome};
use crate::scenario::MAX_SOCKETS;
use crate::scenario::fanout::{self, FanoutArgs, NoProbe, Placement};
use cost::RedisCost;
use redis::RedisServer;

/// Which binary serves the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NodeServer {
    /// plume serve: the demo app, channel logic in WebAssembly plugins.
    Plume,
    /// plume-native: plume with the room channel compiled in.
    Native,
}

#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// Subscribers on each node of the cluster; the single node gets them
    /// all (nodes × subscribers).
    #[arg(long, default_value_t = 1000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=9_000))]
    pub subscribers: usize,
    /// Nodes in the cluster.
    #[arg(long, default_value_t = 2, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(2..=8))]
    pub nodes: usize,
    /// Messages a second from the publisher.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Rates to step through instead of --rate, e.g. 100,200,400,800.
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
    /// How long the cluster's background traffic to Redis (heartbeats,
    /// figures) is measured, once every subscriber has joined, to be
    /// subtracted from the broadcasts' cost.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=120))]
    pub background_seconds: u64,
    /// Rounds; each starts every server afresh, and medians are compared.
    #[arg(long, default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=20))]
    pub rounds: usize,
    /// Before each run, wait up to this many seconds for the machine to be
    /// quiet (other processes under 0.15 cores for 2 s), as `compare` does.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub wait_quiet: u64,
    /// Loopback source addresses to spread sockets over: 127.0.0.1 .. 127.0.0.N.
    #[arg(long, default_value_t = 8, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=254))]
    pub sources: usize,
    /// What serves the single node and the cluster's nodes.
    #[arg(long, value_enum, default_value = "plume")]
    pub server: NodeServer,
    /// The plume binary [default: `plume` beside this tool, i.e. target/release/plume].
    #[arg(long)]
    pub plume: Option<PathBuf>,
    /// The plume-native binary, for `--server native` [default: beside this tool].
    #[arg(long)]
    pub native: Option<PathBuf>,
    /// The demo app's built plugins, passed to `plume serve --plugin-dir`.
    #[arg(long)]
    pub plugin_dir: Option<PathBuf>,
    /// Let `plume serve` build its plugins first (it is given --no-build otherwise).
    #[arg(long)]
    pub build_plugins: bool,
    /// The redis-server binary.
    #[arg(long, default_value = "redis-server")]
    pub redis_server: PathBuf,
    /// The topic everyone joins.
    #[arg(long, default_value = "room:fanout")]
    pub topic: String,
}

impl ClusterArgs {
    /// The fan-out both layouts run: every subscriber, however placed.
    fn fanout(&self) -> FanoutArgs {
        FanoutArgs {
            subscribers: self.subscribers * self.nodes,
            rate: self.rate,
            sweep: self.sweep.clone(),
            seconds: self.seconds,
            drain_seconds: self.drain_seconds,
            keep_up_p99_ms: self.keep_up_p99_ms,
            topic: self.topic.clone(),
            nodes: Vec::new(),
        }
    }
}

/// The two ways the same subscribers are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// One plume, no cluster.
    Single,
    /// Nodes over one Redis.
    Cluster,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::Single => "single",
            Layout::Cluster => "cluster",
        }
    }
}

/// The closing JSON line: medians side by side.
#[derive(Serialize)]
pub struct Report {
    cluster: &'static str,
    command: String,
    unix_time: u64,
    cores: usize,
    rounds: usize,
    nodes: usize,
    subscribers_per_node: usize,
    figures: Vec<Row>,
}

/// One figure's medians; the ratio is cluster over single whatever the
/// figure (for latencies and costs below 1 is better, for rates above 1).
#[derive(Serialize)]
struct Row {
    name: String,
    unit: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    single: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster_over_single: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    single_runs: Vec<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cluster_runs: Vec<f64>,
}

/// Runs the benchmark and prints its closing line and table.
pub fn run(args: &ClusterArgs, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let report = measure(args, runtime)?;
    println!("{}", serde_json::to_string(&report)?);
    eprintln!("{}", table(&report));
    Ok(())
}

/// Runs every round, printing each run's JSON line (stdout) and summary
/// (stderr) as it ends; returns the medians.
pub fn measure(args: &ClusterArgs, runtime: &tokio::runtime::Runtime) -> anyhow::Result<Report> {
    let fanout = args.fanout();
    let sockets = fanout.subscribers + 1;
    anyhow::ensure!(
        sockets <= MAX_SOCKETS,
        "{} nodes × {} subscribers and a publisher need {sockets} sockets, more than the {MAX_SOCKETS} one run may open: ask for fewer",
        args.nodes,
        args.subscribers
    );
    let limit = process::raise_open_files_limit()?;
    anyhow::ensure!(
        sockets as u64 + 64 <= limit,
        "the run needs {sockets} sockets but this process may open only {limit} files: raise the hard limit (ulimit -Hn) or ask for fewer"
    );
    let here = std::env::current_exe()
        .context("cannot find this executable's path, to find the servers beside it: pass --plume")?;
    let beside = here.parent().map(Path::to_path_buf).unwrap_or_default();
    let binary = match args.server {
        NodeServer::Plume => compare::binary(
            args.plume.clone(),
            &beside,
            "plume",
            "--plume",
            "cargo build --release -p plume",
        )?,
        NodeServer::Native => compare::binary(
            args.native.clone(),
            &beside,
            "plume-native",
            "--native",
            "cargo build --release -p plume-load",
        )?,
    };

    let mut results: Vec<(Layout, Vec<Figure>)> = Vec::new();
    for round in 1..=args.rounds {
        for layout in [Layout::Single, Layout::Cluster] {
            if args.wait_quiet > 0
                && !compare::wait_until_quiet(Duration::from_secs(args.wait_quiet))?
            {
                eprintln!(
                    "plume-load: the machine is still busy after {} s; running anyway",
                    args.wait_quiet
                );
            }
            eprintln!(
                "== fanout on {} (round {round} of {})",
                match layout {
                    Layout::Single => format!(
                        "a single node, {} subscribers",
                        Count(fanout.subscribers as f64)
                    ),
                    Layout::Cluster => format!(
                        "a cluster of {} nodes over Redis, {} subscribers each",
                        args.nodes,
                        Count(args.subscribers as f64)
                    ),
                },
                args.rounds
            );
            let (outcome, url) = match layout {
                Layout::Single => run_single(args, &binary, &fanout, runtime)?,
                Layout::Cluster => run_cluster(args, &binary, &fanout, runtime)?,
            };
            println!("{}", outcome.json_line(Some(layout.name()), &url));
            eprintln!("{}", outcome.summary);
            results.push((layout, outcome.figures));
            std::thread::sleep(BETWEEN_RUNS);
        }
    }
    Ok(Report {
        cluster: "fanout",
        command: std::env::args().collect::<Vec<_>>().join(" "),
        unix_time: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        rounds: args.rounds,
        nodes: args.nodes,
        subscribers_per_node: args.subscribers,
        figures: rows(&results, args.rounds > 1),
    })
}

/// The command that starts one plume (a node when given a Redis URL).
fn server_command(args: &ClusterArgs, binary: &Path, redis_url: Option<&str>) -> Command {
    let mut command = Command::new(binary);
    if args.server == NodeServer::Plume {
        command.arg("serve");
    }
    let mut command = compare::serve_flags(command, args.build_plugins, args.plugin_dir.as_deref());
    match redis_url {
        Some(url) => command.env(plume::config::REDIS_URL_ENV, url),
        None => command.env_remove(plume::config::REDIS_URL_ENV),
    };
    command
}

fn socket_url(addr: SocketAddr) -> String {
    format!("ws://{addr}/socket/websocket")
}

fn run_single(
    args: &ClusterArgs,
    binary: &Path,
    fanout: &FanoutArgs,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<(Outcome, String)> {
    let server = Server::start("the single node", server_command(args, binary, None))?;
    eprintln!("single: plume (pid {}) at {}", server.pid(), server.addr);
    let url = socket_url(server.addr);
    let main = Arc::new(Target::new(&url, args.sources, Some(server.pid()))?);
    let placement = Placement {
        server_pids: vec![server.pid()],
        main,
        nodes: Vec::new(),
    };
    let outcome = runtime.block_on(fanout::run_on(fanout, placement, &mut NoProbe));
    server.stop()?;
    Ok((outcome.context("fanout on the single node")?, url))
}

fn run_cluster(
    args: &ClusterArgs,
    binary: &Path,
    fanout: &FanoutArgs,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<(Outcome, String)> {
    let redis = RedisServer::start(&args.redis_server)?;
    eprintln!("cluster: redis-server (pid {}) at {}", redis.pid(), redis.url());
    let mut nodes = Vec::with_capacity(args.nodes);
    for index in 1..=args.nodes {
        let node = Server::start(
            &format!("node {index}"),
            server_command(args, binary, Some(&redis.url())),
        )?;
        eprintln!("cluster: node {index} (pid {}) at {}", node.pid(), node.addr);
        nodes.push(node);
    }
    let url = socket_url(nodes[0].addr);
    let main = Arc::new(Target::new(&url, args.sources, Some(nodes[0].pid()))?);
    let others = nodes[1..]
        .iter()
        .map(|node| Ok(Arc::new(main.sibling(&socket_url(node.addr), Some(node.pid()))?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let placement = Placement {
        server_pids: nodes
            .iter()
            .map(Server::pid)
            .chain([redis.pid()])
            .collect(),
        main,
        nodes: others,
    };
    // Their admin listeners, where `/metrics` is.
    let addrs: Vec<SocketAddr> = nodes.iter().map(Server::admin_addr).collect::<anyhow::Result<_>>()?;
    let background = Duration::from_secs(args.background_seconds);
    let outcome = runtime.block_on(async {
        let mut probe = RedisCost::connect(redis.addr(), addrs, background).await?;
        fanout::run_on(fanout, placement, &mut probe).await
    });
    for node in nodes {
        node.stop()?;
    }
    redis.stop()?;
    Ok((outcome.context("fanout on the cluster")?, url))
}

/// Every figure's median per layout, in the order the runs listed them.
fn rows(results: &[(Layout, Vec<Figure>)], keep_runs: bool) -> Vec<Row> {
    let mut names: Vec<(&str, &'static str)> = Vec::new();
    for (_, figures) in results {
        for figure in figures {
            if !names.iter().any(|(name, _)| *name == figure.name) {
                names.push((&figure.name, figure.unit));
            }
        }
    }
    let runs = |layout: Layout, name: &str| -> Vec<f64> {
        results
            .iter()
            .filter(|(l, _)| *l == layout)
            .filter_map(|(_, figures)| figures.iter().find(|f| f.name == name).map(|f| f.value))
            .collect()
    };
    names
        .into_iter()
        .map(|(name, unit)| {
            let single_runs = runs(Layout::Single, name);
            let cluster_runs = runs(Layout::Cluster, name);
            let single = compare::median(&single_runs);
            let cluster = compare::median(&cluster_runs);
            let kept = |runs: Vec<f64>| if keep_runs { runs } else { Vec::new() };
            Row {
                name: name.to_owned(),
                unit,
                single,
                cluster,
                cluster_over_single: match (cluster, single) {
                    (Some(c), Some(s)) if s != 0.0 => Some(c / s),
                    _ => None,
                },
                single_runs: kept(single_runs),
                cluster_runs: kept(cluster_runs),
            }
        })
        .collect()
}

fn table(report: &Report) -> String {
    let show = |value: Option<f64>, unit: &str| match value {
        None => "-".to_owned(),
        Some(v) => match unit {
            "µs" => Micros(v.round() as u64).to_string(),
            "/s" | "B" => Count(v).to_string(),
            _ => format!("{v:.2}"),
        },
    };
    let mut lines = vec![format!(
        "cluster fan-out: {} nodes × {} subscribers against 1 node × {} (median of {} round{}):",
        report.nodes,
        Count(report.subscribers_per_node as f64),
        Count((report.nodes * report.subscribers_per_node) as f64),
        report.rounds,
        if report.rounds == 1 { "" } else { "s" }
    )];
    lines.push(format!(
        "{:<46} {:>14} {:>14} {:>15}",
        "", "single", "cluster", "cluster/single"
    ));
    for row in &report.figures {
        lines.push(format!(
            "{:<46} {:>14} {:>14} {:>15}",
            format!("{} ({})", row.name, row.unit),
            show(row.single, row.unit),
            show(row.cluster, row.unit),
            row.cluster_over_single
                .map_or("-".to_owned(), |r| format!("{r:.3}")),
        ));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_put_single_and_cluster_medians_side_by_side() {
        let figures = |p99, extra: Option<f64>| {
            let mut figures = vec![Figure::new("p99_us", "µs", p99)];
            if let Some(commands) = extra {
                figures.push(Figure::new("redis_commands_per_broadcast", "cmd", commands));
            }
            figures
        };
        let results = vec![
            (Layout::Single, figures(10.0, None)),
            (Layout::Cluster, figures(15.0, Some(1.0))),
            (Layout::Single, figures(12.0, None)),
            (Layout::Cluster, figures(18.0, Some(1.02))),
            (Layout::Single, figures(30.0, None)),
            (Layout::Cluster, figures(24.0, Some(1.01))),
        ];
        let rows = rows(&results, true);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].single, rows[0].cluster), (Some(12.0), Some(18.0)));
        assert_eq!(rows[0].cluster_over_single, Some(1.5));
        assert_eq!(rows[0].cluster_runs, vec![15.0, 18.0, 24.0]);
        assert_eq!(rows[1].name, "redis_commands_per_broadcast");
        assert_eq!((rows[1].single, rows[1].cluster), (None, Some(1.01)));
        assert_eq!(rows[1].cluster_over_single, None);
    }

    #[test]
    fn both_layouts_run_every_subscriber() {
        use clap::Parser;
        #[derive(Parser)]
        struct Line {
            #[command(flatten)]
            args: ClusterArgs,
        }
        let line = Line::try_parse_from(["cluster", "--subscribers", "500", "--nodes", "3", "--sweep", "100,200"])
            .expect("valid arguments");
        let fanout = line.args.fanout();
        assert_eq!(fanout.subscribers, 1500);
        assert_eq!(fanout.sweep, vec![100.0, 200.0]);
        assert!(fanout.nodes.is_empty());
        assert!(Line::try_parse_from(["cluster", "--nodes", "1"]).is_err());
    }
}
