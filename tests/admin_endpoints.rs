//! The admin listener: `/metrics` and `/_plume/plugins` on an address of
//! their own (loopback by default), behind a bearer token when one is set,
//! and never on the client port.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{Server, http_get};

const TOKEN: &str = "admin-token-for-the-tests-0123456789";

fn status(head: &str) -> &str {
    head.split_whitespace().nth(1).unwrap_or_default()
}

#[test]
fn the_admin_pages_are_on_the_admin_listener_and_not_on_the_client_port() {
    let server = Server::start();
    assert!(server.admin_addr.starts_with("127.0.0.1:"), "loopback by default: {}", server.admin_addr);
    assert_ne!(server.admin_addr, server.addr);
    for path in ["/metrics", "/_plume/plugins"] {
        let (head, body) = http_get(&server.addr, path, None);
        assert_eq!(status(&head), "404", "the client port hides {path}: {head}\n{body}");
        assert!(!body.contains("plume_connections") && !body.contains(".wasm"), "{body}");
    }
    let (head, metrics) = server.admin_get("/metrics", None);
    assert_eq!(status(&head), "200", "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    assert!(metrics.contains("plume_connections{tenant=\"demo\"}"), "{metrics}");
    let (head, plugins) = server.admin_get("/_plume/plugins", None);
    assert_eq!(status(&head), "200", "{head}");
    let plugins: serde_json::Value = serde_json::from_str(&plugins).expect("JSON");
    assert_eq!(plugins["apps"][0]["app"], "demo", "{plugins}");
    let (head, index) = server.admin_get("/", None);
    assert_eq!(status(&head), "200");
    assert!(index.contains("/metrics") && index.contains("/_plume/plugins"), "{index}");
    assert_eq!(status(&server.admin_get("/nothing-here", None).0), "404");
    // The client port still serves clients.
    assert_eq!(status(&http_get(&server.addr, "/", None).0), "200");
}

#[test]
fn a_token_in_the_config_guards_every_admin_page() {
    let config = format!("[server]\nadmin_token = \"{TOKEN}\"\n{}", support::PROBE_CONFIG);
    let server = Server::start_config(&config).expect("starts");
    for path in ["/metrics", "/_plume/plugins", "/"] {
        let (head, _) = server.admin_get(path, None);
        assert_eq!(status(&head), "401", "{path} without a token: {head}");
        assert!(head.to_ascii_lowercase().contains("www-authenticate: bearer"), "{head}");
        let (head, _) = server.admin_get(path, Some("admin-token-for-the-tests-012345678"));
        assert_eq!(status(&head), "401", "{path} with a wrong token: {head}");
        let (head, _) = server.admin_get(path, Some(TOKEN));
        assert_eq!(status(&head), "200", "{path} with the token: {head}");
    }
}

#[test]
fn plume_admin_token_in_the_environment_is_the_token_too() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_plume"));
    command
        .args(["serve", "--bind", "127.0.0.1:0", "--admin-bind", "127.0.0.1:0", "--no-build", "--plugin-dir"])
        .arg(support::plugin_dir())
        .env("PLUME_ADMIN_TOKEN", TOKEN);
    let server = Server::spawn_command(command, None, Duration::from_secs(60)).expect("starts");
    assert_eq!(status(&server.admin_get("/metrics", None).0), "401");
    assert_eq!(status(&server.admin_get("/metrics", Some(TOKEN)).0), "200");
}

#[test]
fn an_admin_listener_off_loopback_refuses_to_start_without_a_token() {
    let serve = |token: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_plume"));
        command
            .args(["serve", "--bind", "127.0.0.1:0", "--admin-bind", "0.0.0.0:0", "--no-build", "--plugin-dir"])
            .arg(support::plugin_dir())
            .env_remove("PLUME_ADMIN_TOKEN");
        if let Some(token) = token {
            command.env("PLUME_ADMIN_TOKEN", token);
        }
        command
    };
    let (status_of_refused, stderr) = support::run_briefly(serve(None), Duration::from_secs(60));
    assert!(status_of_refused.is_some_and(|s| !s.success()), "it must not start: {stderr}");
    assert!(stderr.contains("not loopback") && stderr.contains("PLUME_ADMIN_TOKEN"), "{stderr}");

    let server = Server::spawn_command(serve(Some(TOKEN)), None, Duration::from_secs(60)).expect("with a token it starts");
    let port = server.admin_addr.rsplit(':').next().expect("a port");
    let local = format!("127.0.0.1:{port}");
    assert_eq!(status(&http_get(&local, "/metrics", None).0), "401");
    assert_eq!(status(&http_get(&local, "/metrics", Some(TOKEN)).0), "200");
}
