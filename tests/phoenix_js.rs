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

use std::process::Command;
use std::time::Duration;

use support::node;

/// Longest the whole Node suite may take; each Node test has its own,
/// much shorter, timeout.
const SUITE_PATIENCE: Duration = Duration::from_secs(600);

#[test]
fn phoenix_js_suite_passes_against_real_servers() {
    node::require_node("the phoenix.js suite");
    let dir = support::workspace().join("tests").join("js");
    let plugins = support::plugin_dir();
    node::install_packages(&dir);

    let mut node = Command::new("node");
    node.args(["--test", "--test-reporter=spec"])
        .current_dir(&dir)
        .env("PLUME_BIN", env!("CARGO_BIN_EXE_plume"))
        .env("PLUME_PLUGIN_DIR", plugins)
        .env("PLUME_TEST_COMPILE_CACHE", support::compile_cache::template());
    let status = node::run_streaming(node, "node --test (in tests/js)", SUITE_PATIENCE);
    assert!(status.success(), "the phoenix.js suite failed ({status}); node's output is above");
}
