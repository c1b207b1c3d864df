//! The `plume` command.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use plume::config;
use plume::demo_page::DemoPage;

#[derive(Parser)]
#[command(name = "plume", version, about = "A Phoenix Channels server whose channels are WebAssembly plugins")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve an app: the demo app when no --config is given.
    Serve(plume::cli::ServeArgs),
    /// Serve like `serve`, and rebuild plugins whenever their sources
    /// change; the new versions go live with clients still connected.
    Dev {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        bind: Option<String>,
        /// Serve the admin pages here (default: loopback, the client port
        /// plus one).
        #[arg(long)]
        admin_bind: Option<String>,
    },
    /// Build every plugin under plugins/ for wasm32-wasip2.
    Build,
    /// Create a plugin crate in plugins/NAME, with a test, and add it to
    /// the configuration.
    New {
        /// The plugin's name: a crate name, and the topic prefix it serves
        /// (`NAME:*`).
        name: String,
        /// A socket handler (connect, id) instead of a channel handler
        /// (Rust only).
        #[arg(long)]
        socket: bool,
        /// The language to write it in: a Rust crate, an npm package
        /// (componentize-js) or a Python package (componentize-py).
        #[arg(long, value_enum, default_value_t)]
        lang: plume::scaffold::Lang,
        /// The configuration to add it to (default: plume.toml at the top
        /// of the source tree); created with the demo app if missing.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run a plugin's own tests: `cargo test` for a Rust plugin; for a
    /// JavaScript or Python one, build it, serve it alone on a free
    /// loopback port and run `npm test` or `python -m unittest` in its
    /// folder with PLUME_URL set.
    Test {
        /// The plugin: the folder plugins/NAME.
        name: String,
        /// A topic pattern to serve a JavaScript or Python plugin on
        /// (repeatable; default `NAME:*`).
        #[arg(long)]
        topic: Vec<String>,
        /// Passed on to the test runner (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Print a fresh secret_key_base (64 random characters) for
    /// SECRET_KEY_BASE or the configuration.
    Secret,
    /// Sign and verify Phoenix.Token tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Sign JSON data: prints the token.
    Sign {
        /// The salt, e.g. "user socket".
        #[arg(long)]
        salt: String,
        /// Max age in seconds stored in the token.
        #[arg(long, default_value_t = 86_400)]
        max_age: u64,
        /// The secret_key_base (default: $SECRET_KEY_BASE, else the development secret).
        #[arg(long)]
        secret: Option<String>,
        /// The data, as JSON (e.g. 42 or '{"id":1,"name":"alice","role":"admin"}').
        data: String,
    },
    /// Verify a token: prints its data as JSON.
    Verify {
        #[arg(long)]
        salt: String,
        /// Max age in seconds, overriding the token's own.
        #[arg(long)]
        max_age: Option<u64>,
        #[arg(long)]
        secret: Option<String>,
        token: String,
    },
}

/// The secret `plume token` uses: `--secret`, else `SECRET_KEY_BASE`, else
/// (said on stderr, since only the demo app accepts it) the development one.
fn secret(explicit: Option<String>) -> String {
    explicit
        .or_else(|| std::env::var("SECRET_KEY_BASE").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| {
            eprintln!("plume: note: SECRET_KEY_BASE is unset: using the development secret, which only the demo app accepts");
            config::DEV_SECRET.to_owned()
        })
}

/// A new secret_key_base: 48 random bytes in base64, 64 characters (what
/// `openssl rand -base64 48` prints).
fn new_secret() -> String {
    use base64::Engine as _;
    let bytes: [u8; 48] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `plume new`: scaffold, then say what to run next.
fn new_plugin(name: &str, socket: bool, lang: plume::scaffold::Lang, config: Option<PathBuf>) -> anyhow::Result<()> {
    let cwd = std::env::current_dir()?;
    let workspace = plume::build::find_workspace(&cwd)
        .context("plume new runs inside a plume source tree (no Cargo.toml with plugins/ and wit/ above here)")?;
    let config = config.unwrap_or_else(|| workspace.join("plume.toml"));
    let kind = if socket { plume::scaffold::Kind::Socket } else { plume::scaffold::Kind::Channel };
    let done = plume::scaffold::new_plugin(&workspace, name, kind, lang, &config)?;
    let what = if socket { "socket plugin" } else { "channel plugin" };
    eprintln!("plume: created the {what} `{name}` in {}: {}", done.crate_dir.display(), done.files.join(", "));
    if done.config_changed {
        let how = if done.config_created { "created it with the demo app, and added" } else { "added" };
        let what = if socket { "as the app's socket plugin".to_owned() } else { format!("with the route `{name}:*`") };
        eprintln!("plume: {}: {how} the plugin `{name}` {what}", done.config.display());
    }
    for note in &done.notes {
        eprintln!("plume: note: {note}");
    }
    eprintln!("next:");
    let how = match lang {
        plume::scaffold::Lang::Rust => "cargo test, on the real runtime",
        plume::scaffold::Lang::Js => "builds it, serves it, runs npm test (phoenix.js)",
        plume::scaffold::Lang::Python => "builds it, serves it, runs its unittest tests",
    };
    eprintln!("  cargo run --release -- test {name}                  # its tests: {how}");
    let shown = done.config.strip_prefix(&cwd).unwrap_or(&done.config);
    if std::env::var_os("SECRET_KEY_BASE").is_none() {
        eprintln!("  export SECRET_KEY_BASE=$(cargo run -q --release -- secret)   # an app served with --config needs its own secret");
    }
    eprintln!("  cargo run --release -- dev --config {}   # build, serve, and hot-swap on save", shown.display());
    Ok(())
}

/// Run `serve` (or `dev`) on a fresh async runtime until it returns.
fn run_server(serve: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(plume::runtime::reset_new_thread)
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(serve);
    // Shutdown has waited its `shutdown_timeout_ms`; a socket still in a
    // plugin call then holds a thread until the call's deadline, which may
    // be much later. Dropping the runtime would wait for it: leave it.
    runtime.shutdown_background();
    result
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("plume: error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<std::process::ExitCode> {
    plume::cli::init_logging();
    match Cli::parse().command {
        Command::Test { name, topic, args } => test_plugin(&name, &topic, &args),
        command => run_command(command).map(|()| std::process::ExitCode::SUCCESS),
    }
}

/// `plume test`: the tests' exit status is the command's.
fn test_plugin(name: &str, topics: &[String], args: &[String]) -> anyhow::Result<std::process::ExitCode> {
    let cwd = std::env::current_dir()?;
    let workspace = plume::build::find_workspace(&cwd)
        .context("plume test runs inside a plume source tree (no Cargo.toml with plugins/ and wit/ above here)")?;
    let status = plume::plugin_tests::run(&workspace, name, topics, args)?;
    Ok(match status.code() {
        Some(0) => std::process::ExitCode::SUCCESS,
        Some(code) => std::process::ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => std::process::ExitCode::FAILURE,
    })
}

fn run_command(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            let loaded = args.load()?;
            let page = args.config.is_none().then_some(DemoPage);
            run_server(plume::server::serve(loaded, args.bind, None, page))
        }
        Command::Dev { config, bind, admin_bind } => {
            let cwd = std::env::current_dir()?;
            let workspace = plume::build::find_workspace(&cwd)
                .context("plume dev runs inside a plume source tree (no Cargo.toml with plugins/ and wit/ above here)")?;
            plume::build::build_plugins(&workspace)?;
            let demo = config.is_none();
            let mut loaded = plume::cli::load_config(config.as_deref(), Some(plume::build::plugin_dir(&workspace)), false)?;
            plume::cli::override_admin_bind(&mut loaded, admin_bind.as_deref());
            let page = demo.then_some(DemoPage);
            run_server(plume::server::serve(loaded, bind, Some(workspace), page))
        }
        Command::Build => {
            let cwd = std::env::current_dir()?;
            let workspace = plume::build::find_workspace(&cwd)
                .context("not inside a plume source tree (no Cargo.toml with plugins/ and wit/ above here)")?;
            let dir = plume::build::build_plugins(&workspace)?;
            eprintln!("plume: plugins built in {}", dir.display());
            Ok(())
        }
        Command::New { name, socket, lang, config } => new_plugin(&name, socket, lang, config),
        Command::Test { .. } => unreachable!("run() runs plume test"),
        Command::Secret => {
            println!("{}", new_secret());
            Ok(())
        }
        Command::Token { command } => match command {
            TokenCommand::Sign {
                salt,
                max_age,
                secret: s,
                data,
            } => {
                let data: serde_json::Value =
                    serde_json::from_str(&data).context("the data must be JSON, e.g. 42 or '{\"id\":1}'")?;
                let tokens = plume::token::Tokens::new(secret(s).as_bytes());
                println!("{}", tokens.sign(&salt, &data, plume::clock::unix_ms(), max_age)?);
                Ok(())
            }
            TokenCommand::Verify {
                salt,
                max_age,
                secret: s,
                token,
            } => {
                let tokens = plume::token::Tokens::new(secret(s).as_bytes());
                let data = tokens.verify(&salt, &token, max_age, plume::clock::unix_ms())?;
                println!("{data}");
                Ok(())
            }
        },
    }
}
