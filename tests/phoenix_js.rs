//! phoenix.js, the real Phoenix client, against real plume servers: runs
//! the Node suite in `tests/js` (`node --test`), so that
//! `cargo test --release --workspace` stays the one test command.
//!
//! The suite needs Node 20 or newer and npm. Its packages (`phoenix`, and
//! `ws` as the WebSocket under Node) are installed with `npm ci` from the
//! committed lockfile when `tests/js/node_modules` is missing or older than
//! the lockfile. Each Node test starts its own `plume serve` from the binary
//! and the plugins built here (`PLUME_BIN`, `PLUME_PLUGIN_DIR`).

mod support;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

/// Longest `npm ci` may take (it downloads two small packages).
const INSTALL_PATIENCE: Duration = Duration::from_secs(600);

/// Longest the whole Node suite may take; each Node test has its own,
/// much shorter, timeout.
const SUITE_PATIENCE: Duration = Duration::from_secs(600);

fn suite_dir() -> PathBuf {
    support::workspace().join("tests").join("js")
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|meta| meta.modified()).ok()
}

/// Whether `npm ci` must run: no installed packages, or a lockfile changed
/// since they were installed (npm records the install in
/// `node_modules/.package-lock.json`).
fn needs_install(dir: &Path) -> bool {
    let installed = modified(&dir.join("node_modules").join(".package-lock.json"));
    let locked = modified(&dir.join("package-lock.json"));
    match (installed, locked) {
        (Some(installed), Some(locked)) => locked > installed,
        _ => true,
    }
}

/// Runs `command`, printing its stdout and stderr line by line as they come
/// (the test harness shows them live with `--nocapture`, and after a
/// failure); kills it after `patience`.
fn run_streaming(mut command: Command, what: &str, patience: Duration) -> ExitStatus {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run {what}: {err}; the phoenix.js suite needs Node 20+ and npm on PATH"));
    let (lines, output) = mpsc::channel();
    forward_lines(child.stdout.take().expect("piped stdout"), lines.clone());
    forward_lines(child.stderr.take().expect("piped stderr"), lines);
    let deadline = Instant::now() + patience;
    loop {
        match output.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => println!("{line}"),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                stop(&mut child);
                panic!("{what} did not finish within {patience:?}; its output is above");
            }
        }
    }
    child.wait().unwrap_or_else(|err| panic!("waiting for {what}: {err}"))
}

fn forward_lines(stream: impl Read + Send + 'static, lines: mpsc::Sender<String>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Node's major version, checked up front so that an old Node fails with
/// a clear message rather than with an odd test-runner error.
fn node_major() -> u32 {
    let output = Command::new("node")
        .arg("--version")
        .output()
        .unwrap_or_else(|err| panic!("cannot run node: {err}; the phoenix.js suite needs Node 20+ and npm on PATH"));
    let version = String::from_utf8_lossy(&output.stdout);
    version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|major| major.parse().ok())
        .unwrap_or_else(|| panic!("cannot read node's version from {version:?}"))
}

#[test]
fn phoenix_js_suite_passes_against_real_servers() {
    let major = node_major();
    assert!(major >= 20, "the phoenix.js suite needs Node 20 or newer, found Node {major}");
    let dir = suite_dir();
    let plugins = support::plugin_dir();

    if needs_install(&dir) {
        let mut npm = Command::new("npm");
        npm.args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir);
        let status = run_streaming(npm, "npm ci (in tests/js)", INSTALL_PATIENCE);
        assert!(status.success(), "npm ci failed ({status}) in {}; its output is above", dir.display());
    }

    let mut node = Command::new("node");
    node.args(["--test", "--test-reporter=spec"])
        .current_dir(&dir)
        .env("PLUME_BIN", env!("CARGO_BIN_EXE_plume"))
        .env("PLUME_PLUGIN_DIR", plugins);
    let status = run_streaming(node, "node --test (in tests/js)", SUITE_PATIENCE);
    assert!(status.success(), "the phoenix.js suite failed ({status}); node's output is above");
}
