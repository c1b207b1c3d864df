//! What an operator meets first: the secret an app must have, the hints a
//! broken configuration gets, and a `plume` binary run away from its source
//! tree.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{Server, TempDir, run_briefly};

fn plume() -> Command {
    Command::new(env!("CARGO_BIN_EXE_plume"))
}

/// A configuration file named `name` in `dir`, `{plugins}` filled in.
fn write_config(dir: &TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.0.join(name);
    let text = text.replace("{plugins}", &support::plugin_dir().display().to_string());
    std::fs::write(&path, text).expect("write the configuration");
    path
}

const ROOM_APP: &str = r#"
[app]
socket_plugin = "user_socket"

[plugins.user_socket]
path = "{plugins}/user_socket.wasm"

[plugins.room]
path = "{plugins}/room.wasm"

[[routes]]
topic = "room:*"
plugin = "room"
"#;

fn serve(config: &Path) -> Command {
    let mut command = plume();
    command.args(["serve", "--bind", "127.0.0.1:0", "--config"]).arg(config);
    command
}

#[test]
fn an_app_served_with_a_config_refuses_to_start_without_a_secret_of_its_own() {
    let dir = TempDir::new("secret");
    let config = write_config(&dir, "acme.toml", ROOM_APP);

    let mut unset = serve(&config);
    unset.env_remove("SECRET_KEY_BASE");
    let (status, stderr) = run_briefly(unset, Duration::from_secs(60));
    assert!(status.is_some_and(|s| !s.success()), "it must not start: {status:?}\n{stderr}");
    assert!(stderr.contains(&format!("{}: the app `demo` has no secret", config.display())), "names the file:\n{stderr}");
    assert!(stderr.contains("plume secret") && stderr.contains("openssl rand -base64 48"), "says how to make one:\n{stderr}");
    assert!(!stderr.contains("plume.toml"), "names the file it read, not plume.toml:\n{stderr}");

    let mut short = serve(&config);
    short.env("SECRET_KEY_BASE", "too-short");
    let (status, stderr) = run_briefly(short, Duration::from_secs(60));
    assert!(status.is_some_and(|s| !s.success()), "{stderr}");
    assert!(stderr.contains("(SECRET_KEY_BASE) is 9 bytes; it must have at least 64"), "{stderr}");

    let mut public = serve(&config);
    public.env("SECRET_KEY_BASE", plume::config::DEV_SECRET);
    let (status, stderr) = run_briefly(public, Duration::from_secs(60));
    assert!(status.is_some_and(|s| !s.success()), "{stderr}");
    assert!(stderr.contains("development secret") && stderr.contains("public"), "{stderr}");

    // `plume secret` makes one that serves.
    let made = plume().arg("secret").output().expect("plume secret");
    assert!(made.status.success());
    let secret = String::from_utf8(made.stdout).expect("text").trim().to_owned();
    assert_eq!(secret.len(), 64, "{secret}");
    let again = plume().arg("secret").output().expect("plume secret");
    assert_ne!(String::from_utf8_lossy(&again.stdout).trim(), secret, "a fresh secret every time");
    let mut good = serve(&config);
    good.env("SECRET_KEY_BASE", &secret);
    let server = Server::spawn_command(good, None, Duration::from_secs(60)).expect("a long secret serves");
    let token = plume::token::Tokens::new(secret.as_bytes())
        .sign("user socket", &serde_json::json!(42), plume::clock::unix_ms(), 60)
        .expect("signable");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let mut client = support::Client::connect(&server.ws_url(&format!("token={token}&vsn=2.0.0")))
                .await
                .expect("a token signed with the app's secret connects");
            client.join_ok("room:lobby").await;
            let development = support::Client::connect(&server.ws_url(&format!(
                "token={}&vsn=2.0.0",
                plume::token::Tokens::new(plume::config::DEV_SECRET.as_bytes())
                    .sign("user socket", &serde_json::json!(42), plume::clock::unix_ms(), 60)
                    .expect("signable")
            )))
            .await;
            assert!(matches!(development, Err(support::Refused::Status(403))), "the development secret opens nothing");
        });
}

#[test]
fn the_demo_app_alone_runs_on_the_development_secret_with_a_warning() {
    let mut demo = plume();
    demo.args(["serve", "--bind", "127.0.0.1:0", "--no-build", "--plugin-dir"])
        .arg(support::plugin_dir())
        .env_remove("SECRET_KEY_BASE");
    let server = Server::spawn_command(demo, None, Duration::from_secs(60)).expect("the demo starts");
    assert!(server.wait_for_log("public development secret"), "{}", server.log());
}

#[test]
fn a_missing_plugin_file_says_to_run_plume_build() {
    let dir = TempDir::new("missing-wasm");
    let config = write_config(&dir, "plume.toml", &ROOM_APP.replace("{plugins}/room.wasm", "target/nowhere/room.wasm"));
    let (status, stderr) = run_briefly(serve(&config), Duration::from_secs(60));
    assert!(status.is_some_and(|s| !s.success()), "{stderr}");
    assert!(stderr.contains("there is no plugin file at") && stderr.contains("nowhere/room.wasm"), "{stderr}");
    assert!(stderr.contains("plume build"), "{stderr}");
}

#[test]
fn a_key_under_the_wrong_section_is_sent_to_its_own() {
    let dir = TempDir::new("wrong-section");
    let config = write_config(&dir, "plume.toml", &format!("[server]\nmax_connections = 10\n{ROOM_APP}"));
    let (status, stderr) = run_briefly(serve(&config), Duration::from_secs(60));
    assert!(status.is_some_and(|s| !s.success()), "{stderr}");
    assert!(stderr.contains(&format!("{}:2:", config.display())), "{stderr}");
    assert!(stderr.contains("`max_connections` belongs under [limits]"), "{stderr}");
}

#[test]
fn deadline_ms_is_documented_as_wall_clock_time_everywhere() {
    let root = support::workspace();
    for file in ["README.md", "sdk/GUIDE.md", "host/src/config/mod.rs", "host/src/config/tenant.rs"] {
        let text = std::fs::read_to_string(root.join(file)).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !line.contains("deadline_ms") {
                continue;
            }
            // The line and the comment lines just above it (a field's doc).
            let context = lines[i.saturating_sub(2)..=i].join("\n");
            let said = context.to_lowercase();
            assert!(
                !said.contains("cpu time") || said.contains("not cpu time"),
                "{file}:{}: deadline_ms is wall-clock time, not CPU time:\n{context}",
                i + 1
            );
        }
    }
    let readme = std::fs::read_to_string(root.join("README.md")).expect("read");
    let row = readme.lines().find(|line| line.contains("| `deadline_ms` |")).expect("the README's deadline_ms row");
    assert!(row.contains("Wall-clock time"), "{row}");
    assert!(readme.contains("deadline_ms = 50              # wall-clock time per call"), "the tenants example");
}

#[test]
fn a_plume_copied_away_from_its_source_tree_serves_the_demo_page_from_itself() {
    let dir = TempDir::new("standalone");
    let binary = dir.0.join("plume");
    std::fs::copy(env!("CARGO_BIN_EXE_plume"), &binary).expect("copy the binary");
    let elsewhere = dir.0.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("a folder");
    let plume_here = || {
        let mut command = Command::new(&binary);
        command.current_dir(&elsewhere).env_remove("PLUME_PLUGIN_DIR");
        command
    };

    // Neither a configuration nor the demo plugins: one message, saying
    // what to pass.
    let mut bare = plume_here();
    bare.args(["serve", "--bind", "127.0.0.1:0"]);
    let (status, stderr) = run_briefly(bare, Duration::from_secs(60));
    assert!(status.is_some_and(|s| !s.success()), "{stderr}");
    assert_eq!(stderr.matches("plume: error:").count(), 1, "{stderr}");
    assert!(stderr.contains("--plugin-dir DIR") && stderr.contains("--config FILE"), "{stderr}");

    // With the built demo plugins it serves the demo app, and the page and
    // phoenix.js come from the binary.
    let mut served = plume_here();
    served
        .args(["serve", "--bind", "127.0.0.1:0", "--admin-bind", "127.0.0.1:0", "--plugin-dir"])
        .arg(support::plugin_dir());
    let server = Server::spawn_command(served, None, Duration::from_secs(60)).expect("the copy serves the demo");
    let (head, page) = support::http_get(&server.addr, "/", None);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(page.contains("/demo/app.js"), "the page: {page}");
    let (head, script) = support::http_get(&server.addr, "/demo/phoenix.mjs", None);
    assert!(head.starts_with("HTTP/1.1 200") && head.to_ascii_lowercase().contains("text/javascript"), "{head}");
    assert!(script.contains("export") && script.contains("Socket"), "phoenix.js's ES module is served");
    let (head, _) = support::http_get(&server.addr, "/demo/app.js", None);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async { server.client(42).await.join_ok("room:lobby").await });
}
