//! The demo page (`host/web`, served at `/`) and the operator's dashboard
//! (`/dashboard` on the admin listener) in a real browser: headless
//! Chromium, Debian's `/usr/bin/chromium`, driven by playwright-core from
//! the Node scripts in `tests/browser`, against a real `plume serve` of the
//! demo app. Each test starts its own server and runs one script with
//! `node --test`; screenshots land in `target/test-artifacts/`.
//!
//! Needs Chromium at `/usr/bin/chromium` (`apt-get install -y chromium`;
//! `.ci/run` installs it), Node 20+ and npm. playwright-core
//! (`tests/browser`) is installed with `npm ci` from its committed lockfile
//! when missing; the page's phoenix.js is in the `plume` binary (its build
//! installs it).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, Once, PoisonError};
use std::time::Duration;

use support::node;

/// The browser the scripts drive.
const CHROMIUM: &str = "/usr/bin/chromium";

/// Longest one script may take; each of its waits is much shorter.
const SCRIPT_PATIENCE: Duration = Duration::from_secs(300);

/// One browser at a time: two Chromiums with two pages each, next to the
/// rest of the suite on a small machine, make for slow pages rather than
/// better coverage.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

fn browser_dir() -> PathBuf {
    support::workspace().join("tests").join("browser")
}

/// Chromium, Node and playwright-core, checked and installed once per test
/// binary.
fn prepare() {
    static PREPARED: Once = Once::new();
    PREPARED.call_once(|| {
        assert!(
            Path::new(CHROMIUM).is_file(),
            "Chromium is not installed at {CHROMIUM}: the browser tests drive the demo page in it. \
             Install it with `apt-get install -y chromium` (.ci/run does this on CI)."
        );
        node::require_node("the browser tests");
        node::install_packages(&browser_dir());
    });
}

/// Serve the demo app and run `script` (in `tests/browser`) against it.
fn run_script(script: &str) {
    let _one = ONE_BROWSER.lock().unwrap_or_else(PoisonError::into_inner);
    prepare();
    run_script_on(script, &support::Server::start(), &[]);
}

/// Run `script` against `server`, with `env` added to its environment.
fn run_script_on(script: &str, server: &support::Server, env: &[(&str, String)]) {
    let artifacts = support::workspace().join("target").join("test-artifacts");
    let mut node = Command::new("node");
    node.args(["--test", "--test-reporter=spec", script])
        .current_dir(browser_dir())
        .env("PLUME_URL", format!("http://{}", server.addr))
        .env("CHROMIUM", CHROMIUM)
        .env("ARTIFACTS_DIR", &artifacts)
        .envs(env.iter().map(|(name, value)| (*name, value)));
    let status = node::run_streaming(node, &format!("node --test {script}"), SCRIPT_PATIENCE);
    assert!(
        status.success(),
        "{script} failed ({status}); node's output is above, the server's log:\n{}",
        server.log()
    );
}

#[test]
fn two_pages_see_each_others_messages_presence_and_typing() {
    run_script("chat.test.mjs");
}

#[test]
fn a_page_without_websocket_falls_back_to_long_poll_and_chats_with_a_websocket_page() {
    run_script("longpoll_fallback.test.mjs");
}

/// The token the dashboard test's admin listener asks for.
const ADMIN_TOKEN: &str = "dashboard-test-admin-token-0123456789";

#[test]
fn the_dashboard_asks_for_its_token_shows_clients_arrive_and_push_and_a_broken_plugin_file() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(PoisonError::into_inner);
    prepare();
    // The demo app (it serves the chat page) from a copy of the built
    // plugins, so that the test can break the room plugin's file.
    let dir = support::TempDir::new("dashboard");
    for entry in std::fs::read_dir(support::plugin_dir()).expect("the built plugins") {
        let path = entry.expect("a built plugin").path();
        if path.extension().is_some_and(|ext| ext == "wasm") {
            std::fs::copy(&path, dir.0.join(path.file_name().expect("a file name"))).expect("copy a plugin");
        }
    }
    let room = dir.0.join("room.wasm");
    let mut command = Command::new(env!("CARGO_BIN_EXE_plume"));
    command
        .args(["serve", "--bind", "127.0.0.1:0", "--admin-bind", "127.0.0.1:0", "--no-build", "--plugin-dir"])
        .arg(&dir.0)
        .env("PLUME_ADMIN_TOKEN", ADMIN_TOKEN);
    let server = support::Server::spawn_command(command, Some(dir), Duration::from_secs(60)).expect("the demo app starts");
    run_script_on(
        "dashboard.test.mjs",
        &server,
        &[
            ("ADMIN_URL", format!("http://{}", server.admin_addr)),
            ("ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
            ("BROKEN_PLUGIN", room.display().to_string()),
        ],
    );
}
