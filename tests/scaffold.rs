//! `plume new`: a scaffolded plugin builds, its generated test passes, and
//! `plume serve` with the updated configuration answers a join on its
//! topic over a real WebSocket.
//!
//! The scaffold runs in a scratch source tree (under cargo's
//! `CARGO_TARGET_TMPDIR`), so the real tree is never touched: its own
//! `Cargo.toml`, `Cargo.lock` and `plugins/` folder, and links to the real
//! `host`, `sdk`, `wit`, `tests` and each existing plugin. Cargo names and
//! fingerprints workspace crates by their path inside the workspace, so
//! through the links they are the very crates of the real tree: with
//! `CARGO_TARGET_DIR` (native) and a `target/plugins` link (WebAssembly)
//! pointing at the real, warm target directories, only the new crate
//! compiles.

mod support;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::json;
use support::{Client, Server};

/// A fresh scratch tree over the real one, called `name`.
fn scratch_workspace(name: &str) -> PathBuf {
    let real = support::workspace().canonicalize().expect("the workspace");
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch).expect("clear the last run's tree");
    }
    std::fs::create_dir_all(scratch.join("plugins")).expect("plugins folder");
    std::fs::create_dir_all(scratch.join("target")).expect("target folder");
    for file in ["Cargo.toml", "Cargo.lock"] {
        std::fs::copy(real.join(file), scratch.join(file)).expect("copy the workspace manifest");
    }
    for folder in ["host", "sdk", "wit", "tests", "target/plugins"] {
        symlink(real.join(folder), scratch.join(folder)).expect("link a folder of the real tree");
    }
    for entry in std::fs::read_dir(real.join("plugins")).expect("list the plugins") {
        let entry = entry.expect("entry");
        symlink(entry.path(), scratch.join("plugins").join(entry.file_name())).expect("link a plugin");
    }
    scratch
}

fn plume(workspace: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_plume"))
        .current_dir(workspace)
        .args(args)
        .output()
        .expect("run plume")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn plume_new_refuses_bad_names_existing_folders_and_broken_configs() {
    let scratch = tempdir("refusals");
    std::fs::create_dir_all(scratch.join("plugins/taken")).expect("a taken name");
    std::fs::create_dir_all(scratch.join("wit")).expect("wit");
    std::fs::write(scratch.join("Cargo.toml"), "[workspace]\n").expect("a workspace");

    let invalid = plume(&scratch, &["new", "My-Room"]);
    assert!(!invalid.status.success());
    assert!(text(&invalid.stderr).contains("`My-Room` is not a valid plugin name"), "{}", text(&invalid.stderr));

    let taken = plume(&scratch, &["new", "taken"]);
    assert!(!taken.status.success());
    assert!(text(&taken.stderr).contains("already exists"), "{}", text(&taken.stderr));

    std::fs::write(scratch.join("broken.toml"), "[server]\nbind = \"127.0.0.1:1\"\nbnd = 3\n").expect("a broken config");
    let broken = plume(&scratch, &["new", "fresh", "--config", "broken.toml"]);
    assert!(!broken.status.success());
    let stderr = text(&broken.stderr);
    assert!(stderr.contains("broken.toml:3") && stderr.contains("bnd"), "{stderr}");
    assert_eq!(stderr.matches("broken.toml:3").count(), 1, "the error is printed once:\n{stderr}");
    assert!(!scratch.join("plugins/fresh").exists(), "nothing is written when the config is broken");
    let _ = std::fs::remove_dir_all(&scratch);
}

#[test]
fn a_new_plugin_builds_passes_its_test_and_serves_its_topic() {
    // The demo plugins the new configuration serves, built in the real tree.
    support::plugin_dir();
    let scratch = scratch_workspace("scaffold-workspace");

    let created = plume(&scratch, &["new", "greeter"]);
    assert!(created.status.success(), "plume new failed:\n{}", text(&created.stderr));
    for file in ["Cargo.toml", "src/lib.rs", "tests/channel.rs"] {
        assert!(scratch.join("plugins/greeter").join(file).is_file(), "{file} is generated");
    }
    let config = std::fs::read_to_string(scratch.join("plume.toml")).expect("plume.toml is created");
    assert!(config.contains("[plugins.greeter]") && config.contains("topic = \"greeter:*\""), "{config}");
    assert!(config.contains("[plugins.room]"), "the demo app stays in the new configuration");

    let again = plume(&scratch, &["new", "greeter"]);
    assert!(!again.status.success(), "a second `plume new greeter` is refused");

    let socket = plume(&scratch, &["new", "gatekeeper", "--socket"]);
    assert!(socket.status.success(), "plume new --socket failed:\n{}", text(&socket.stderr));
    assert!(
        text(&socket.stderr).contains("set socket_plugin = \"gatekeeper\" under [app]"),
        "the demo's socket plugin stays, and the user is told how to switch: {}",
        text(&socket.stderr)
    );
    let unchanged = std::fs::read_to_string(scratch.join("plume.toml")).expect("plume.toml");
    assert_eq!(unchanged, config, "an app has one socket plugin: the configuration is left as it was");

    let real_target = support::workspace().join("target").canonicalize().expect("target");
    // `plume test NAME` runs a Rust plugin's tests with cargo.
    for (name, passed) in [("greeter", 5), ("gatekeeper", 2)] {
        let tested = Command::new(env!("CARGO_BIN_EXE_plume"))
            .current_dir(&scratch)
            .env("CARGO_TARGET_DIR", &real_target)
            .args(["test", name])
            .output()
            .expect("run plume test");
        let stdout = text(&tested.stdout);
        assert!(
            tested.status.success(),
            "the generated test of {name} fails:\n{stdout}\n{}",
            text(&tested.stderr)
        );
        assert!(stdout.contains(&format!("test result: ok. {passed} passed")), "{name}'s tests: {stdout}");
    }

    let server = serve(&scratch, Duration::from_secs(60));
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let mut client: Client = server.client(42).await;
            let (join_ref, reply) = client.join("greeter:lobby", json!({})).await;
            assert_eq!(
                reply,
                json!([join_ref, join_ref, "greeter:lobby", "phx_reply", {"status": "ok", "response": {"joined": "greeter:lobby"}}])
            );
            // The user the demo's socket plugin assigned, as the channel sees it.
            let whoami = client.push(&join_ref, "greeter:lobby", "whoami", json!({})).await;
            assert_eq!(
                client.recv().await,
                json!([join_ref, whoami, "greeter:lobby", "phx_reply", {"status": "ok", "response": {"user": {"id": 42, "name": "user-42", "role": "user"}}}])
            );
            let (_, room) = client.join("room:lobby", json!({})).await;
            assert_eq!(room[4]["status"], "ok", "the demo app still serves: {room}");
        });
}

#[test]
fn a_new_python_or_javascript_plugin_builds_passes_its_own_tests_and_serves_its_topic() {
    // The real tree's plugins, room-py among them: its build made the
    // virtual environment with componentize-py that the scratch tree links.
    support::plugin_dir();
    let scratch = scratch_workspace("scaffold-languages");
    symlink(support::workspace().join("target/python-venv").canonicalize().expect("the venv"), scratch.join("target/python-venv"))
        .expect("link the venv");

    let refused = plume(&scratch, &["new", "door", "--socket", "--lang", "python"]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("Rust only"), "{}", text(&refused.stderr));

    for (name, lang, files) in [
        ("hello_py", "python", &["pyproject.toml", "src/channel.py", "tests/test_channel.py"][..]),
        ("hello_js", "js", &["package.json", "package-lock.json", "build.mjs", "src/channel.js", "test/channel.test.js"][..]),
    ] {
        let created = plume(&scratch, &["new", name, "--lang", lang]);
        assert!(created.status.success(), "plume new --lang {lang} failed:\n{}", text(&created.stderr));
        for file in files {
            assert!(scratch.join("plugins").join(name).join(file).is_file(), "{name}: {file} is generated");
        }
    }
    let manifest = std::fs::read_to_string(scratch.join("Cargo.toml")).expect("Cargo.toml");
    assert!(
        manifest.contains("\"plugins/hello_py\", \"plugins/hello_js\"]"),
        "cargo is told the new folders are no crates:\n{manifest}"
    );

    let built = plume(&scratch, &["build"]);
    assert!(built.status.success(), "plume build failed:\n{}", text(&built.stderr));

    // Each template's own tests, in its own language, over a real socket:
    // `plume test` serves the plugin alone and runs them.
    for (name, passed) in [("hello_py", "Ran 5 tests"), ("hello_js", "# pass 5")] {
        let tested = plume(&scratch, &["test", name]);
        let output = format!("{}{}", text(&tested.stdout), text(&tested.stderr));
        assert!(tested.status.success(), "the generated tests of {name} fail:\n{output}");
        assert!(output.contains(passed), "{name}: {output}");
        assert!(output.contains(&format!("{name} is served at ws://127.0.0.1:")), "{output}");
    }
    // A test that fails fails `plume test`, naming the test; editing a test
    // does not rebuild the plugin (tests are not part of the component).
    for (name, file, from, to, failing) in [
        (
            "hello_py",
            "tests/test_channel.py",
            r#"("ok", {"count": count})"#,
            r#"("ok", {"count": count + 1})"#,
            "FAIL: test_count_counts_this_channels_pushes",
        ),
        ("hello_js", "test/channel.test.js", "response: { count } }", "response: { count: count + 1 } }", "not ok 5 - count counts"),
    ] {
        let wasm = support::plugin_dir().join(format!("{name}.wasm"));
        let built_at = std::fs::metadata(&wasm).and_then(|m| m.modified()).expect("the component");
        let path = scratch.join("plugins").join(name).join(file);
        let test = std::fs::read_to_string(&path).expect("the generated test");
        assert!(test.contains(from), "{name}: the generated test has changed: {test}");
        std::fs::write(&path, test.replace(from, to)).expect("break the test");
        let tested = plume(&scratch, &["test", name]);
        let output = format!("{}{}", text(&tested.stdout), text(&tested.stderr));
        assert!(!tested.status.success(), "a failing test fails plume test:\n{output}");
        assert!(output.contains(failing), "{name}: {output}");
        assert!(output.contains("the tests failed; the server's log is"), "{output}");
        let after = std::fs::metadata(&wasm).and_then(|m| m.modified()).expect("the component");
        assert_eq!(after, built_at, "{name}: a test edit does not rebuild the plugin");
    }
    let missing = plume(&scratch, &["test", "no_such_plugin"]);
    assert!(!missing.status.success());
    assert!(text(&missing.stderr).contains("there is no plugin `no_such_plugin`"), "{}", text(&missing.stderr));

    // Two interpreters' components to compile on a first start.
    let server = serve(&scratch, Duration::from_secs(600));
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            for name in ["hello_py", "hello_js"] {
                let topic = format!("{name}:lobby");
                let mut ann: Client = server.client(42).await;
                let mut bob: Client = server.client(43).await;
                let (join_ref, reply) = ann.join(&topic, json!({})).await;
                assert_eq!(
                    reply,
                    json!([join_ref, join_ref, topic, "phx_reply", {"status": "ok", "response": {"joined": topic}}])
                );
                let (_, reply) = bob.join(&topic, json!({})).await;
                assert_eq!(reply[4]["status"], "ok", "{reply}");

                let ping = ann.push(&join_ref, &topic, "ping", json!({"hello": "world"})).await;
                assert_eq!(ann.recv().await, json!([join_ref, ping, topic, "phx_reply", {"status": "ok", "response": {"hello": "world"}}]));

                let shout = ann.push(&join_ref, &topic, "shout", json!({"body": "hi"})).await;
                let (first, second) = (ann.recv().await, ann.recv().await);
                let (reply, broadcast) = if first[1] == json!(shout) { (first, second) } else { (second, first) };
                assert_eq!(reply, json!([join_ref, shout, topic, "phx_reply", {"status": "ok", "response": {}}]));
                assert_eq!(broadcast[3], "shout", "{broadcast}");
                assert_eq!(broadcast[4], json!({"body": "hi"}));
                let pushed = bob.recv().await;
                assert_eq!((&pushed[3], &pushed[4]), (&json!("shout"), &json!({"body": "hi"})), "{pushed}");

                let empty = ann.push(&join_ref, &topic, "shout", json!({})).await;
                assert_eq!(
                    ann.recv().await,
                    json!([join_ref, empty, topic, "phx_reply", {"status": "error", "response": {"reason": "body is required"}}])
                );
                for expected in 1..=3 {
                    let count = ann.push(&join_ref, &topic, "count", json!({})).await;
                    assert_eq!(
                        ann.recv().await,
                        json!([join_ref, count, topic, "phx_reply", {"status": "ok", "response": {"count": expected}}]),
                        "{name}"
                    );
                }
            }
        });
    // The components land in the real tree's plugin folder (target/plugins
    // is linked): remove them, so the next test binary does not compile
    // them into its compile-cache template; and the npm packages with the
    // scratch tree.
    drop(server);
    for name in ["hello_py", "hello_js"] {
        let _ = std::fs::remove_file(support::plugin_dir().join(format!("{name}.wasm")));
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

#[test]
fn plume_dev_rebuilds_an_edited_plugin_and_it_goes_live_without_a_reconnect() {
    // The scratch tree's plugins are the real tree's, built here already,
    // so `plume dev` builds only the plugin this test creates and edits
    // (it never touches a source another test uses).
    support::plugin_dir();
    let scratch = scratch_workspace("dev-workspace");
    let created = plume(&scratch, &["new", "devedit"]);
    assert!(created.status.success(), "plume new failed:\n{}", text(&created.stderr));

    let mut dev = Command::new(env!("CARGO_BIN_EXE_plume"));
    dev.current_dir(&scratch)
        .args(["dev", "--bind", "127.0.0.1:0", "--config"])
        .arg(scratch.join("plume.toml"));
    let server = Server::spawn_command(dev, None, Duration::from_secs(300)).expect("plume dev starts");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let mut c = server.client(1).await;
            let (join_ref, reply) = c.join("devedit:lobby", json!({})).await;
            assert_eq!(reply[4]["status"], "ok", "{reply}");
            let reference = c.push(&join_ref, "devedit:lobby", "ping", json!({"n": 1})).await;
            assert_eq!(c.recv().await, json!([join_ref, reference, "devedit:lobby", "phx_reply", {"response": {"n": 1}, "status": "ok"}]));

            let source = scratch.join("plugins/devedit/src/lib.rs");
            let code = std::fs::read_to_string(&source).expect("source");
            let edited = support::edit(
                &code,
                "\"ping\" => Reply::ok_raw(payload).into(),",
                "\"ping\" => Reply::ok(json!({\"edited\": true})).into(),",
            );
            std::fs::write(&source, edited).expect("edit");

            // Same socket, same channel: the next pings reach the rebuilt
            // version once it is live.
            let deadline = std::time::Instant::now() + Duration::from_secs(240);
            loop {
                let reference = c.push(&join_ref, "devedit:lobby", "ping", json!({"n": 2})).await;
                let frame = c.recv().await;
                assert_eq!(frame[1], reference.as_str(), "{frame}");
                if frame[4]["response"] == json!({"edited": true}) {
                    break;
                }
                assert_eq!(frame[4]["response"], json!({"n": 2}), "{frame}");
                assert!(std::time::Instant::now() < deadline, "the edit never went live:\n{}", server.log());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
}

#[test]
fn plume_dev_serves_a_plugin_added_while_it_runs_without_dropping_clients() {
    // Dev starts on the demo's room alone (built in the real tree already);
    // `plume new` then adds a plugin and its route to the running dev's
    // configuration, as a new author does.
    support::plugin_dir();
    let scratch = scratch_workspace("dev-config-workspace");
    let config = scratch.join("plume.toml");
    std::fs::write(
        &config,
        "[plugins.room]\npath = \"target/plugins/wasm32-wasip2/plugin/room.wasm\"\n\n[[routes]]\ntopic = \"room:*\"\nplugin = \"room\"\n",
    )
    .expect("write plume.toml");

    let mut dev = Command::new(env!("CARGO_BIN_EXE_plume"));
    dev.current_dir(&scratch).args(["dev", "--bind", "127.0.0.1:0", "--config"]).arg(&config);
    let server = Server::spawn_command(dev, None, Duration::from_secs(300)).expect("plume dev starts");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let mut c = server.client(1).await;
            let (room_ref, reply) = c.join("room:lobby", json!({})).await;
            assert_eq!(reply[4]["status"], "ok", "{reply}");
            let (_, unmatched) = c.join("added:lobby", json!({})).await;
            assert_eq!(unmatched[4]["response"], json!({"reason": "unmatched topic"}), "{unmatched}");

            let created = plume(&scratch, &["new", "added"]);
            assert!(created.status.success(), "plume new failed:\n{}", text(&created.stderr));

            // The same socket joins the new topic once dev has built the
            // plugin and applied the configuration; until then the join is
            // unmatched, never an error of another kind.
            let deadline = std::time::Instant::now() + Duration::from_secs(240);
            let added_ref = loop {
                let (join_ref, reply) = c.join("added:lobby", json!({})).await;
                if reply[4]["status"] == "ok" {
                    assert_eq!(reply[4]["response"], json!({"joined": "added:lobby"}), "{reply}");
                    break join_ref;
                }
                assert_eq!(reply[4]["response"], json!({"reason": "unmatched topic"}), "{reply}");
                assert!(std::time::Instant::now() < deadline, "the added plugin never went live:\n{}", server.log());
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            let ping = c.push(&added_ref, "added:lobby", "ping", json!({"n": 1})).await;
            assert_eq!(c.recv().await, json!([added_ref, ping, "added:lobby", "phx_reply", {"status": "ok", "response": {"n": 1}}]));
            // The channel joined before the change still serves, on the same socket.
            let ping = c.push(&room_ref, "room:lobby", "ping", json!({"n": 2})).await;
            assert_eq!(c.recv().await, json!([room_ref, ping, "room:lobby", "phx_reply", {"status": "ok", "response": {"n": 2}}]));
            let log = server.log();
            assert!(log.contains("plume dev:   added:* -> plugin `added`"), "dev says what it serves now:\n{log}");

            // A change dev cannot apply live is said plainly.
            let mut edited = std::fs::read_to_string(&config).expect("plume.toml");
            edited.push_str("\n[limits]\nmax_connections = 5\n");
            std::fs::write(&config, edited).expect("edit plume.toml");
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while !server.log().contains("changed [limits]: restart plume dev to apply that") {
                assert!(std::time::Instant::now() < deadline, "no restart notice:\n{}", server.log());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
}

/// An empty folder under cargo's temporary directory.
fn tempdir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("scaffold-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// `plume serve` on the scratch workspace's configuration, given `patience`
/// to compile its plugins.
fn serve(scratch: &Path, patience: Duration) -> Server {
    let mut serve = Command::new(env!("CARGO_BIN_EXE_plume"));
    serve
        .current_dir(scratch)
        .args(["serve", "--bind", "127.0.0.1:0", "--config"])
        .arg(scratch.join("plume.toml"));
    Server::spawn_command(serve, None, patience).expect("plume serve starts")
}
