//! plume-echo: the raw WebSocket baseline that plume's benchmarks are
//! measured against (see `plume_load::echo`).

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use plume_load::echo::{self, Settings};

/// Answers Phoenix V2 heartbeats, joins, pings and new_msg broadcasts
/// directly, with no channel logic: the upper bound for plume on this machine.
#[derive(Parser)]
#[command(name = "plume-echo", version)]
struct Cli {
    /// Where to listen; port 0 picks a free one (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:4001")]
    bind: SocketAddr,
    /// Frames queued for one connection before it is closed as too slow.
    #[arg(long, default_value_t = 4096)]
    queue: usize,
    /// Bytes of read buffer per connection (tungstenite's default is 131072).
    #[arg(long, default_value_t = 4096)]
    read_buffer: usize,
    /// Runtime worker threads [default: one per core].
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = cli.threads {
        runtime.worker_threads(threads.max(1));
    }
    let served = runtime
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| {
            runtime.block_on(echo::serve(Settings {
                bind: cli.bind,
                queue: cli.queue,
                read_buffer: cli.read_buffer,
            }))
        });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("plume-echo: {error:#}");
            ExitCode::FAILURE
        }
    }
}
