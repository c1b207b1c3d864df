//! `compare`: the script-free benchmark. In one run it starts each server
//! (the raw echo baseline, then plume, and `plume-native` when asked: plume
//! with the room channel compiled in instead of WebAssembly), runs one
//! scenario against each on a freshly started process, and prints every
//! result, then the medians side by side with the ratios plume/echo and
//! plume/native. The servers run on the same machine in the same minute, so
//! the ratios hold where absolute figures would not.

pub mod server;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde::Serialize;

use crate::client::Target;
use crate::latency::Micros;
use crate::process;
use crate::report::{Count, Figure};
use crate::scenario::Scenario;
use server::Server;

/// A pause between runs, so that one run's closing sockets are gone from
/// both processes before the next starts.
pub(crate) const BETWEEN_RUNS: Duration = Duration::from_secs(1);

/// The servers a comparison can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServerKind {
    /// plume-echo: the same frames answered directly, no channel logic.
    Echo,
    /// plume serve: the demo app, channel logic in WebAssembly plugins.
    Plume,
    /// plume-native: plume with the room channel's same code compiled into
    /// the server: what plume would do without the sandbox.
    Native,
}

impl ServerKind {
    fn name(self) -> &'static str {
        match self {
            ServerKind::Echo => "echo",
            ServerKind::Plume => "plume",
            ServerKind::Native => "native",
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The plume binary [default: `plume` beside this tool, i.e. target/release/plume].
    #[arg(long)]
    plume: Option<PathBuf>,
    /// The echo baseline binary [default: `plume-echo` beside this tool].
    #[arg(long)]
    echo: Option<PathBuf>,
    /// The native baseline binary [default: `plume-native` beside this tool].
    #[arg(long)]
    native: Option<PathBuf>,
    /// The demo app's built plugins, passed to `plume serve --plugin-dir`.
    #[arg(long)]
    plugin_dir: Option<PathBuf>,
    /// Let `plume serve` build its plugins first (it is given --no-build otherwise).
    #[arg(long)]
    build_plugins: bool,
    /// Rounds; each round runs every server once, freshly started, and medians are compared.
    #[arg(long, default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=20))]
    rounds: usize,
    /// Which servers, in the order they run within a round: echo, plume,
    /// native.
    #[arg(long, value_delimiter = ',', default_value = "echo,plume")]
    servers: Vec<ServerKind>,
    /// Before each run, wait up to this many seconds for the machine to be
    /// quiet (other processes under 0.15 cores for 2 s): this machine is
    /// shared, and a run beside a compile measures the compile.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=3600))]
    wait_quiet: u64,
    /// Loopback source addresses to spread sockets over: 127.0.0.1 .. 127.0.0.N.
    #[arg(long, default_value_t = 8, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=254))]
    sources: usize,
    #[command(subcommand)]
    scenario: Scenario,
}

/// The comparison's closing JSON line.
#[derive(Serialize)]
struct Comparison {
    compare: &'static str,
    command: String,
    unix_time: u64,
    cores: usize,
    rounds: usize,
    figures: Vec<Row>,
}

/// One figure's medians; the ratios are plume over each baseline whatever
/// the figure, so for latencies and memory below 1 is better, for rates
/// above 1.
#[derive(Serialize)]
struct Row {
    name: String,
    unit: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    echo: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plume: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plume_over_echo: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    native: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plume_over_native: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    echo_runs: Vec<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    plume_runs: Vec<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    native_runs: Vec<f64>,
}

/// Runs the comparison, driving each scenario run on `runtime`.
pub fn run(args: &CompareArgs, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.servers.is_empty(),
        "--servers names no server: give e.g. echo,plume"
    );
    let here = std::env::current_exe()
        .context("cannot find this executable's path, to find the servers beside it: pass --plume and --echo")?;
    let beside = here.parent().map(Path::to_path_buf).unwrap_or_default();
    let wanted = |kind| args.servers.contains(&kind);
    let plume = binary(
        args.plume.clone(),
        &beside,
        "plume",
        "--plume",
        "cargo build --release -p plume",
    )?;
    let echo = binary(
        args.echo.clone(),
        &beside,
        "plume-echo",
        "--echo",
        "cargo build --release -p plume-load",
    )?;
    let native = if wanted(ServerKind::Native) {
        Some(binary(
            args.native.clone(),
            &beside,
            "plume-native",
            "--native",
            "cargo build --release -p plume-load",
        )?)
    } else {
        None
    };

    let mut results: Vec<(ServerKind, Vec<Figure>)> = Vec::new();
    for round in 1..=args.rounds {
        for &kind in &args.servers {
            let command = match kind {
                ServerKind::Echo => echo_command(&echo),
                ServerKind::Plume => plume_command(Command::new(&plume), args),
                ServerKind::Native => {
                    native_command(native.as_deref().context("the native binary was not looked for")?, args)
                }
            };
            if args.wait_quiet > 0 && !wait_until_quiet(Duration::from_secs(args.wait_quiet))? {
                eprintln!(
                    "plume-load: the machine is still busy after {} s; running anyway",
                    args.wait_quiet
                );
            }
            let server = Server::start(kind.name(), command)?;
            let url = format!("ws://{}/socket/websocket", server.addr);
            let target = Arc::new(Target::new(&url, args.sources, Some(server.pid()))?);
            eprintln!(
                "== {} against {} (pid {}, round {round} of {})",
                args.scenario.name(),
                kind.name(),
                server.pid(),
                args.rounds
            );
            let outcome = runtime.block_on(args.scenario.run(target.clone()));
            server.stop()?;
            let outcome = outcome
                .with_context(|| format!("{} against {}", args.scenario.name(), kind.name()))?;
            println!("{}", outcome.json_line(Some(kind.name()), &target.url()));
            eprintln!("{}", outcome.summary);
            results.push((kind, outcome.figures));
            std::thread::sleep(BETWEEN_RUNS);
        }
    }

    let comparison = Comparison {
        compare: args.scenario.name(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        unix_time: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        rounds: args.rounds,
        figures: rows(&results, args.rounds > 1),
    };
    println!("{}", serde_json::to_string(&comparison)?);
    eprintln!("{}", table(&comparison));
    Ok(())
}

/// Busy cores below which the rest of the machine counts as quiet.
const QUIET_CORES: f64 = 0.15;

/// Waits, up to `limit`, until the machine has been quiet for two seconds
/// in a row; says whether it was.
pub(crate) fn wait_until_quiet(limit: Duration) -> anyhow::Result<bool> {
    let deadline = Instant::now() + limit;
    let mut quiet_seconds = 0;
    let mut told = false;
    while Instant::now() < deadline {
        let before = process::machine_busy()?;
        std::thread::sleep(Duration::from_secs(1));
        let busy = process::machine_busy()?
            .saturating_sub(before)
            .as_secs_f64();
        if busy < QUIET_CORES {
            quiet_seconds += 1;
            if quiet_seconds >= 2 {
                return Ok(true);
            }
        } else {
            quiet_seconds = 0;
            if !told {
                eprintln!(
                    "plume-load: other processes use {busy:.2} cores; waiting for the machine to be quiet"
                );
                told = true;
            }
        }
    }
    Ok(false)
}

/// The binary `given`, or `name` beside this tool; an error that says how
/// to build it, or which `flag` names it, when it is not there.
pub(crate) fn binary(
    given: Option<PathBuf>,
    beside: &Path,
    name: &str,
    flag: &str,
    build: &str,
) -> anyhow::Result<PathBuf> {
    let path = given.unwrap_or_else(|| beside.join(name));
    anyhow::ensure!(
        path.is_file(),
        "no {name} binary at {}: build it with `{build}`, or give its path with {flag}",
        path.display(),
    );
    Ok(path)
}

fn echo_command(path: &Path) -> Command {
    let mut command = Command::new(path);
    command.args(["--bind", "127.0.0.1:0"]);
    command
}

/// `plume-native` takes `plume serve`'s flags.
fn native_command(path: &Path, args: &CompareArgs) -> Command {
    serve_flags(
        Command::new(path),
        args.build_plugins,
        args.plugin_dir.as_deref(),
    )
}

fn plume_command(mut command: Command, args: &CompareArgs) -> Command {
    command.arg("serve");
    serve_flags(command, args.build_plugins, args.plugin_dir.as_deref())
}

/// `plume serve`'s flags for a benchmark: a free loopback port, the demo
/// app's plugins from `plugin_dir`, built first only if `build_plugins`.
pub(crate) fn serve_flags(
    mut command: Command,
    build_plugins: bool,
    plugin_dir: Option<&Path>,
) -> Command {
    command.args(["--bind", "127.0.0.1:0"]);
    if !build_plugins {
        command.arg("--no-build");
    }
    if let Some(dir) = plugin_dir {
        command.arg("--plugin-dir").arg(dir);
    }
    // Per-connection info logs would be measured as server work; warnings
    // and errors still show.
    if std::env::var_os("PLUME_LOG").is_none() {
        command.env("PLUME_LOG", "warn");
    }
    command
}

/// Every figure's median per server, in the order the first run listed them.
fn rows(results: &[(ServerKind, Vec<Figure>)], keep_runs: bool) -> Vec<Row> {
    let mut names: Vec<(&str, &'static str)> = Vec::new();
    for (_, figures) in results {
        for figure in figures {
            if !names.iter().any(|(name, _)| *name == figure.name) {
                names.push((&figure.name, figure.unit));
            }
        }
    }
    let runs = |kind: ServerKind, name: &str| -> Vec<f64> {
        results
            .iter()
            .filter(|(k, _)| *k == kind)
            .filter_map(|(_, figures)| figures.iter().find(|f| f.name == name).map(|f| f.value))
            .collect()
    };
    names
        .into_iter()
        .map(|(name, unit)| {
            let echo_runs = runs(ServerKind::Echo, name);
            let plume_runs = runs(ServerKind::Plume, name);
            let native_runs = runs(ServerKind::Native, name);
            let echo = median(&echo_runs);
            let plume = median(&plume_runs);
            let native = median(&native_runs);
            let over = |baseline: Option<f64>| match (plume, baseline) {
                (Some(p), Some(b)) if b != 0.0 => Some(p / b),
                _ => None,
            };
            let kept = |runs: Vec<f64>| if keep_runs { runs } else { Vec::new() };
            Row {
                name: name.to_owned(),
                unit,
                echo,
                plume,
                plume_over_echo: over(echo),
                native,
                plume_over_native: over(native),
                echo_runs: kept(echo_runs),
                plume_runs: kept(plume_runs),
                native_runs: kept(native_runs),
            }
        })
        .collect()
}

pub(crate) fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        n if n % 2 == 1 => Some(sorted[n / 2]),
        n => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

fn table(comparison: &Comparison) -> String {
    let show = |value: Option<f64>, unit: &str| match value {
        None => "-".to_owned(),
        Some(v) => match unit {
            "µs" => Micros(v.round() as u64).to_string(),
            "/s" | "B" => Count(v).to_string(),
            _ => format!("{v:.2}"),
        },
    };
    let mut lines = vec![format!(
        "{} (median of {} round{}):",
        comparison.compare,
        comparison.rounds,
        if comparison.rounds == 1 { "" } else { "s" }
    )];
    let ratio = |value: Option<f64>| value.map_or("-".to_owned(), |r| format!("{r:.3}"));
    lines.push(format!(
        "{:<36} {:>14} {:>14} {:>11} {:>14} {:>12}",
        "", "echo", "plume", "plume/echo", "native", "plume/native"
    ));
    for row in &comparison.figures {
        lines.push(format!(
            "{:<36} {:>14} {:>14} {:>11} {:>14} {:>12}",
            format!("{} ({})", row.name, row.unit),
            show(row.echo, row.unit),
            show(row.plume, row.unit),
            ratio(row.plume_over_echo),
            show(row.native, row.unit),
            ratio(row.plume_over_native),
        ));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn rows_put_medians_side_by_side_with_the_ratio() {
        let figure = |value| vec![Figure::new("round_trips_per_sec", "/s", value)];
        let results = vec![
            (ServerKind::Echo, figure(200.0)),
            (ServerKind::Plume, figure(100.0)),
            (ServerKind::Echo, figure(220.0)),
            (ServerKind::Plume, figure(140.0)),
            (ServerKind::Echo, figure(180.0)),
            (ServerKind::Plume, figure(120.0)),
        ];
        let rows = rows(&results, true);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].echo, Some(200.0));
        assert_eq!(rows[0].plume, Some(120.0));
        assert_eq!(rows[0].plume_over_echo, Some(0.6));
        assert_eq!(rows[0].plume_runs, vec![100.0, 140.0, 120.0]);
        assert_eq!(rows[0].native, None);
        assert_eq!(rows[0].plume_over_native, None);
    }

    #[test]
    fn rows_give_plume_over_native_beside_plume_over_echo() {
        let figure = |value| vec![Figure::new("round_trips_per_sec", "/s", value)];
        let results = vec![
            (ServerKind::Echo, figure(200.0)),
            (ServerKind::Plume, figure(90.0)),
            (ServerKind::Native, figure(100.0)),
        ];
        let rows = rows(&results, false);
        assert_eq!(rows[0].plume_over_echo, Some(0.45));
        assert_eq!(rows[0].native, Some(100.0));
        assert_eq!(rows[0].plume_over_native, Some(0.9));
        assert!(rows[0].native_runs.is_empty());
    }
}
