//! plume-native: plume serving the demo app with the room channel's code
//! compiled into the server instead of run as WebAssembly, the baseline
//! that shows what the sandbox costs.
//!
//! Everything else is `plume serve`: the same library, configuration,
//! transport, socket tasks, broker and host imports (a native call's
//! imports reach the same implementations a component's do), and the other
//! plugins, the user socket included, still run as WebAssembly. Only the
//! `room` plugin's calls differ: they run the `room` crate natively through
//! the SDK's export glue (`plume::runtime::NativeChannel`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use plume::runtime::{NativeChannel, Runtime};
use plume_sdk::__private::ChannelExport;

/// Serve like `plume serve`, with the `room` plugin compiled in.
#[derive(Parser)]
#[command(name = "plume-native", version)]
struct Cli {
    /// A plume.toml; without it, the demo app from the built plugins. A
    /// plugin named `room` is served by the compiled-in room channel,
    /// whatever its path.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Listen here instead of the configured address (e.g. 127.0.0.1:0).
    #[arg(long)]
    bind: Option<String>,
    /// Where the demo app's plugins are (default: this source tree's
    /// target/plugins/wasm32-wasip2/plugin, built first).
    #[arg(long)]
    plugin_dir: Option<PathBuf>,
    /// Do not build the demo plugins before serving.
    #[arg(long)]
    no_build: bool,
    /// Run `room` as WebAssembly too, exactly as `plume serve` does: the
    /// same binary with only the engine switched, to check that both
    /// answer alike.
    #[arg(long)]
    wasm: bool,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("plume-native: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    // As `plume` does, so that both spend the same on logging.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PLUME_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let mut loaded = match cli.config {
        Some(path) => plume::config::load(&path)?,
        None => {
            let dir = plume::server::demo_plugin_dir(cli.plugin_dir.as_deref(), !cli.no_build)?;
            plume::config::parse(plume::config::DEMO, "the built-in demo configuration", &dir)?
        }
    };
    // A reload would replace the compiled-in room with its file's component.
    loaded.config.runtime.hot_reload = false;
    let mut runtime = Runtime::new(
        plume::server::runtime_settings(&loaded),
        plume::server::compile_cache(&loaded),
    )?;
    if !cli.wasm {
        runtime.register_native("room", NativeChannel::of::<ChannelExport<room::Room>>());
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(plume::server::serve_on(runtime, loaded, cli.bind, None, None))
}
