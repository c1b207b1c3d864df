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

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use plume::runtime::{NativeChannel, Runtime};
use plume_sdk::__private::ChannelExport;

/// Serve like `plume serve`, with the `room` plugin compiled in.
#[derive(Parser)]
#[command(name = "plume-native", version)]
struct Cli {
    /// `plume serve`'s flags. A plugin named `room` is served by the
    /// compiled-in room channel, whatever its path.
    #[command(flatten)]
    serve: plume::cli::ServeArgs,
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
    plume::cli::init_logging();
    let mut loaded = cli.serve.load()?;
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
        .on_thread_start(plume::runtime::reset_new_thread)
        .build()
        .context("cannot start the async runtime")?
        .block_on(plume::server::serve_on(runtime, loaded, cli.serve.bind, None, None))
}
