//! Node.js for the tests that drive real JavaScript clients: phoenix.js
//! under Node (`tests/js`) and the demo page in Chromium (`tests/browser`).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Longest `npm ci` may take (each folder downloads a package or two).
const INSTALL_PATIENCE: Duration = Duration::from_secs(600);

/// Asserts that Node 20 or newer is on PATH, so that an old or missing Node
/// fails with a clear message rather than with an odd test-runner error.
pub fn require_node(what: &str) {
    let output = Command::new("node")
        .arg("--version")
        .output()
        .unwrap_or_else(|err| {
            panic!("cannot run node: {err}; {what} needs Node 20+ and npm on PATH")
        });
    let version = String::from_utf8_lossy(&output.stdout);
    let major: u32 = version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|major| major.parse().ok())
        .unwrap_or_else(|| panic!("cannot read node's version from {version:?}"));
    assert!(
        major >= 20,
        "{what} needs Node 20 or newer, found Node {major}"
    );
}

/// Installs the npm packages of `dir` from its committed lockfile (`npm ci`)
/// when they are missing or older than the lockfile.
pub fn install_packages(dir: &Path) {
    if !plume::demo_page::packages::needs_install(dir) {
        return;
    }
    let mut npm = Command::new("npm");
    npm.args(["ci", "--no-audit", "--no-fund"]).current_dir(dir);
    let what = format!("npm ci (in {})", dir.display());
    let status = run_streaming(npm, &what, INSTALL_PATIENCE);
    assert!(
        status.success(),
        "{what} failed ({status}); its output is above"
    );
}

/// Runs `command`, printing its stdout and stderr line by line as they come
/// (the test harness shows them live with `--nocapture`, and after a
/// failure); kills it after `patience`.
pub fn run_streaming(mut command: Command, what: &str, patience: Duration) -> ExitStatus {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| {
            panic!("cannot run {what}: {err}; it needs Node 20+ and npm on PATH")
        });
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
    child
        .wait()
        .unwrap_or_else(|err| panic!("waiting for {what}: {err}"))
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
