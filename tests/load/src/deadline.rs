//! Deadlines on a busy machine: how long a plugin call that spins holds on
//! before its client gets `phx_error`, while other work keeps every core
//! busy.
//!
//! plume serves the test-only probe plugin under `--deadline-ms`. Once it
//! listens, `--busy` loops of `sh -c 'while :; do :; done'` start at normal
//! priority beside it; one client then pushes `spin` `--rounds` times
//! (joining again after each `phx_error`), and the time from each push to
//! its `phx_error` is reported, with how many rounds stayed within twice
//! the deadline plus 200 ms (the bound plume promises). With
//! `--no-priority-rights` plume runs without the right to give a thread
//! its priority back (no `CAP_SYS_NICE`, `RLIMIT_NICE` 0), as an
//! unprivileged service does.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Target};
use crate::compare::server::Server;
use crate::wire;

#[derive(clap::Args)]
pub struct DeadlineArgs {
    /// The plume binary to run.
    #[arg(long, default_value = "target/release/plume")]
    pub plume: PathBuf,
    /// The built plugins (user_socket and the test-only probe); by default
    /// they are built from this source tree.
    #[arg(long)]
    pub plugin_dir: Option<PathBuf>,
    /// The probe's `deadline_ms`.
    #[arg(long, default_value_t = 300)]
    pub deadline_ms: u64,
    /// Busy loops started beside the server.
    #[arg(long, default_value_t = 8)]
    pub busy: usize,
    /// Spinning calls, one after another.
    #[arg(long, default_value_t = 10)]
    pub rounds: usize,
    /// Run plume without CAP_SYS_NICE and with RLIMIT_NICE 0, so that it may
    /// not give a thread its priority back.
    #[arg(long)]
    pub no_priority_rights: bool,
    /// How long one round waits for its `phx_error` before it counts as
    /// never stopped.
    #[arg(long, default_value_t = 30)]
    pub give_up_seconds: u64,
}

/// What a run measured.
#[derive(Serialize)]
struct DeadlineResult {
    deadline_ms: u64,
    busy_loops: usize,
    priority_rights: bool,
    /// Push to `phx_error`, per round; `null` for a round that gave up.
    rounds_ms: Vec<Option<f64>>,
    median_ms: Option<f64>,
    max_ms: Option<f64>,
    bound_ms: u64,
    within_bound: usize,
}

/// The server's `SECRET_KEY_BASE` (an app served with `--config` needs one
/// of its own) and its client's tokens' secret.
const SECRET: &str = "plume-load-deadline-secret-key-base-0123456789abcdef0123456789abcdef";

fn config(plugins: &std::path::Path, deadline_ms: u64) -> String {
    let p = plugins.display();
    format!(
        r#"[runtime]
hot_reload = false
deadline_ms = {deadline_ms}

[app]
socket_plugin = "user_socket"

[plugins.user_socket]
path = "{p}/user_socket.wasm"

[plugins.probe]
path = "{p}/probe.wasm"

[[routes]]
topic = "probe:*"
plugin = "probe"
"#
    )
}

/// Busy loops at normal priority, killed when dropped.
struct BusyLoops(Vec<Child>);

impl BusyLoops {
    fn start(count: usize) -> anyhow::Result<BusyLoops> {
        let mut loops = BusyLoops(Vec::new());
        for _ in 0..count {
            loops.0.push(
                Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .stdin(Stdio::null())
                    .spawn()?,
            );
        }
        Ok(loops)
    }
}

impl Drop for BusyLoops {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Take the right to raise a thread's priority back from the command's
/// process: `CAP_SYS_NICE` leaves its bounding set (so an exec as root
/// does not grant it either) and `RLIMIT_NICE` is 0.
fn without_priority_rights(command: &mut Command) {
    // SAFETY: between fork and exec the closure makes two system calls and
    // allocates nothing.
    unsafe {
        command.pre_exec(|| {
            const CAP_SYS_NICE: libc::c_ulong = 23;
            // Fails without CAP_SETPCAP, where there is no CAP_SYS_NICE to
            // give up either.
            libc::prctl(libc::PR_CAPBSET_DROP, CAP_SYS_NICE, 0, 0, 0);
            let none = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            if libc::setrlimit(libc::RLIMIT_NICE, &none) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

pub fn run(args: &DeadlineArgs, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let plugins = match &args.plugin_dir {
        Some(dir) => std::path::absolute(dir)?,
        None => {
            let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
            eprintln!("plume-load deadline: building the plugins (plugins/, tests/plugins/)");
            plume::build::build_plugin_folders(&workspace, &["plugins", "tests/plugins"])?
        }
    };
    let dir = std::env::temp_dir().join(format!("plume-deadline-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config_path = dir.join("plume.toml");
    std::fs::write(&config_path, config(&plugins, args.deadline_ms))?;
    let mut command = Command::new(&args.plume);
    command
        .args(["serve", "--bind", "127.0.0.1:0", "--config"])
        .arg(&config_path)
        .env("SECRET_KEY_BASE", SECRET);
    if args.no_priority_rights {
        without_priority_rights(&mut command);
    }
    let server = Server::start("plume", command)?;
    let busy = BusyLoops::start(args.busy)?;
    eprintln!(
        "plume-load deadline: {} busy loops; {} spinning calls under a {} ms deadline{}",
        args.busy,
        args.rounds,
        args.deadline_ms,
        if args.no_priority_rights { ", plume without the right to change priorities" } else { "" }
    );
    let result = runtime.block_on(spin_rounds(args, server.addr, server.pid()));
    drop(busy);
    server.stop()?;
    let _ = std::fs::remove_dir_all(&dir);
    let result = result?;
    println!("{}", serde_json::to_string(&result)?);
    let shown = |ms: Option<f64>| ms.map_or("never".to_owned(), |ms| format!("{ms:.0} ms"));
    eprintln!(
        "push to phx_error: median {}, max {}; {} of {} rounds within {} ms",
        shown(result.median_ms),
        shown(result.max_ms),
        result.within_bound,
        args.rounds,
        result.bound_ms,
    );
    Ok(())
}

async fn spin_rounds(args: &DeadlineArgs, addr: std::net::SocketAddr, pid: u32) -> anyhow::Result<DeadlineResult> {
    let target = Target::new(&format!("ws://{addr}/socket/websocket"), 1, Some(pid))?.with_secret(SECRET);
    let mut ws = target.open(0, &target.socket_url(1)?).await?;
    let give_up = Duration::from_secs(args.give_up_seconds);
    let mut rounds = Vec::with_capacity(args.rounds);
    for round in 0..args.rounds {
        let topic = format!("probe:spin{round}");
        client::join(&mut ws, &topic).await?;
        let pushed = Instant::now();
        ws.send(Message::text(wire::push(Some(wire::JOIN_REF), 7, &topic, "spin", "{}"))).await?;
        let stopped = loop {
            match tokio::time::timeout_at(pushed + give_up, ws.next()).await {
                Err(_) => break None,
                Ok(Some(Ok(Message::Text(text)))) if text.contains(r#""phx_error""#) => break Some(pushed.elapsed()),
                Ok(Some(Ok(_))) => {}
                Ok(_) => anyhow::bail!("the connection ended during round {round}"),
            }
        };
        let ms = stopped.map(|took| took.as_secs_f64() * 1000.0);
        eprintln!("round {round}: {}", ms.map_or("no phx_error".to_owned(), |ms| format!("{ms:.0} ms")));
        rounds.push(ms);
        if stopped.is_none() {
            // The call still holds the channel: the next round needs a
            // fresh socket.
            ws = target.open(0, &target.socket_url(1)?).await?;
        }
    }
    let bound_ms = 2 * args.deadline_ms + 200;
    let mut stopped: Vec<f64> = rounds.iter().flatten().copied().collect();
    stopped.sort_by(f64::total_cmp);
    let gave_up = rounds.len() > stopped.len();
    Ok(DeadlineResult {
        deadline_ms: args.deadline_ms,
        busy_loops: args.busy,
        priority_rights: !args.no_priority_rights,
        // A round that never stopped counts as longer than any that did.
        median_ms: stopped.get(rounds.len() / 2).copied(),
        max_ms: if gave_up { None } else { stopped.last().copied() },
        within_bound: stopped.iter().filter(|ms| **ms <= bound_ms as f64).count(),
        bound_ms,
        rounds_ms: rounds,
    })
}
