//! plume-load: run a load scenario against a server that is already
//! running, `compare` to start the servers and run one against each, or
//! `cluster` to run the fan-out across plume nodes over Redis beside one
//! node alone.
//!
//! Each run prints one JSON result line on stdout and a human summary on
//! stderr.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use plume_load::backend::{self, BackendArgs};
use plume_load::chart::{self, ChartArgs};
use plume_load::client::Target;
use plume_load::cluster::{self, ClusterArgs};
use plume_load::compare::{self, CompareArgs};
use plume_load::deadline::{self, DeadlineArgs};
use plume_load::process;
use plume_load::scenario::Scenario;
use plume_load::scenario::fanout::FanoutArgs;
use plume_load::scenario::idle::IdleArgs;
use plume_load::scenario::joins::JoinsArgs;
use plume_load::scenario::presence::PresenceArgs;
use plume_load::scenario::rpc::RpcArgs;
use plume_load::soak::{self, SoakArgs};

/// Load scenarios for Phoenix Channels servers (plume, or the plume-echo
/// baseline), over loopback WebSockets with the V2 JSON protocol.
#[derive(Parser)]
#[command(name = "plume-load", version)]
struct Cli {
    /// Worker threads of the tool's runtime [default: one per core]; the
    /// server under test shares the same cores.
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// C sockets join room:lobby and ping in a closed loop: round trips/s and latency.
    Rpc(Direct<RpcArgs>),
    /// N subscribers on one topic, one publisher of new_msg at R msgs/s: deliveries/s and latency.
    Fanout(Direct<FanoutArgs>),
    /// N sockets each joined to its own topic, held with heartbeats: server memory per socket.
    Idle(Direct<IdleArgs>),
    /// N sockets connect and join at once: joins/s and join latency.
    Joins(Direct<JoinsArgs>),
    /// N members join one chat topic with presence: time until every member's presence list agrees.
    Presence(Direct<PresenceArgs>),
    /// Start plume-echo and plume (and plume-native: --servers echo,plume,native), run one scenario against each, and print them with plume's ratios.
    Compare(CompareArgs),
    /// Start a Redis, plume nodes on it and one plume alone; run the fan-out on the nodes (publisher on node 1) and on the single node: latency, delivery, and Redis's cost per broadcast.
    Cluster(ClusterArgs),
    /// Start plume with two tenants: A runs hostile plugins and a broadcast storm while B pings; B's p99 quiet and during the storm.
    Soak(SoakArgs),
    /// Start plume with an API key and a slow backend on loopback: server API publish rates (single, batched) against plugin broadcasts, and ping p99 while 1,000 plugin HTTP requests are in flight.
    Backend(BackendArgs),
    /// Start plume with the probe plugin beside busy loops: how long a spinning call takes to get phx_error.
    Deadline(DeadlineArgs),
    /// Draw a PNG of fan-out latency (p50, p99) against delivery rate from what `compare ... fanout --sweep` printed.
    Chart(ChartArgs),
}

/// A scenario against a server that is already running.
#[derive(clap::Args)]
struct Direct<A: clap::Args> {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    scenario: A,
}

#[derive(clap::Args)]
struct TargetArgs {
    /// The server's socket endpoint, e.g. ws://127.0.0.1:4000/socket/websocket (loopback only).
    #[arg(long, required_unless_present = "addr", conflicts_with = "addr")]
    url: Option<String>,
    /// The server's address, e.g. 127.0.0.1:4000; the endpoint is /socket/websocket.
    #[arg(long)]
    addr: Option<String>,
    /// The server's process id, for its CPU time beside the result (idle needs it for memory).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Loopback source addresses to spread sockets over: 127.0.0.1 .. 127.0.0.N.
    #[arg(long, default_value_t = 8, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=254))]
    sources: usize,
    /// A label for the JSON line's "server" field, e.g. plume.
    #[arg(long)]
    label: Option<String>,
    /// How long one TCP connect plus WebSocket handshake may take before the socket counts as failed.
    #[arg(long, default_value_t = 15, value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(1..=3600))]
    connect_timeout_seconds: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("plume-load: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Err(error) = process::raise_open_files_limit() {
        eprintln!("plume-load: warning: cannot raise the open-files limit: {error}");
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = cli.threads {
        runtime.worker_threads(threads.max(1));
    }
    let runtime = runtime.build()?;
    match cli.command {
        Command::Rpc(direct) => run_direct(&runtime, direct.target, Scenario::Rpc(direct.scenario)),
        Command::Fanout(direct) => {
            run_direct(&runtime, direct.target, Scenario::Fanout(direct.scenario))
        }
        Command::Idle(direct) => {
            run_direct(&runtime, direct.target, Scenario::Idle(direct.scenario))
        }
        Command::Joins(direct) => {
            run_direct(&runtime, direct.target, Scenario::Joins(direct.scenario))
        }
        Command::Presence(direct) => {
            run_direct(&runtime, direct.target, Scenario::Presence(direct.scenario))
        }
        Command::Compare(args) => compare::run(&args, &runtime),
        Command::Cluster(args) => cluster::run(&args, &runtime),
        Command::Soak(args) => soak::run(&args, &runtime),
        Command::Backend(args) => backend::run(&args, &runtime),
        Command::Deadline(args) => deadline::run(&args, &runtime),
        Command::Chart(args) => chart::run(&args),
    }
}

fn run_direct(
    runtime: &tokio::runtime::Runtime,
    args: TargetArgs,
    scenario: Scenario,
) -> anyhow::Result<()> {
    let url = match (args.url, args.addr) {
        (Some(url), _) => url,
        (None, Some(addr)) => format!("ws://{addr}/socket/websocket"),
        (None, None) => {
            anyhow::bail!("give the server with --url ws://ADDR/socket/websocket or --addr ADDR")
        }
    };
    let target = Arc::new(
        Target::new(&url, args.sources, args.server_pid)?
            .with_connect_timeout(std::time::Duration::from_secs(args.connect_timeout_seconds)),
    );
    let outcome = runtime.block_on(scenario.run(target.clone()))?;
    println!(
        "{}",
        outcome.json_line(args.label.as_deref(), &target.url())
    );
    eprintln!("{}", outcome.summary);
    Ok(())
}
