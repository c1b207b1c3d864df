//! `plume test NAME`: run a plugin's own tests, in the plugin's language.
//!
//! - A Rust plugin (`plugins/NAME/Cargo.toml`) is tested by `cargo test
//!   --release -p NAME`: its tests load the component in plume-test's
//!   in-process harness.
//! - A JavaScript plugin (`package.json`) or a Python plugin
//!   (`pyproject.toml` with `[tool.plume]`) is tested over the wire. The
//!   plugin is built (skipped while fresh; its `test/` or `tests/` folder is
//!   not part of the component), then served alone by a `plume serve` child
//!   on a free loopback port: the plugin, its route (`NAME:*` unless
//!   `--topic` says otherwise), no socket plugin (every socket connects),
//!   the in-memory key-value store and a throwaway secret. The tests then
//!   run in the plugin's folder with `PLUME_URL` set to the socket's
//!   endpoint (`ws://127.0.0.1:PORT/socket`, what phoenix.js's `Socket`
//!   takes): `npm test` (the template's runs `node --test` with phoenix.js),
//!   or `python -m unittest` in the virtual environment under `target/`,
//!   with `plume_test` (`sdk/python-test`) on the path.
//!
//! The server's log goes to `target/plume-test/NAME/server.log`, named
//! when a test fails; the command's exit status is the tests'.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::build;

/// How long the server may take to listen: a JavaScript or Python
/// component's first start compiles 12 to 18 MiB of WebAssembly.
const START_PATIENCE: Duration = Duration::from_secs(300);

/// What a plugin folder is written in, by its manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Rust,
    JavaScript,
    Python,
}

/// The language of `plugins/NAME` in `workspace`.
pub fn language(workspace: &Path, name: &str) -> anyhow::Result<Language> {
    let dir = workspace.join("plugins").join(name);
    if !dir.is_dir() {
        bail!("there is no plugin `{name}`: {} does not exist (`plume new {name}` makes one)", dir.display());
    }
    if dir.join("Cargo.toml").is_file() {
        return Ok(Language::Rust);
    }
    if build::npm::has_script(&dir, "build")? {
        return Ok(Language::JavaScript);
    }
    if dir.join("pyproject.toml").is_file() && build::python::manifest(&dir)?.is_some() {
        return Ok(Language::Python);
    }
    bail!(
        "{} is no plugin plume knows how to test: it has no Cargo.toml, no package.json with a build script, and no pyproject.toml with [tool.plume]",
        dir.display()
    )
}

/// Run the tests of `plugins/NAME`, with `args` passed on to the test
/// runner; the runner's exit status. `topics` are the routes to serve the
/// plugin on (default `NAME:*`).
pub fn run(workspace: &Path, name: &str, topics: &[String], args: &[String]) -> anyhow::Result<ExitStatus> {
    let dir = workspace.join("plugins").join(name);
    let language = language(workspace, name)?;
    if language == Language::Rust {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        eprintln!("plume test: cargo test --release -p {name}");
        return Command::new(cargo)
            .current_dir(workspace)
            .args(["test", "--release", "-p", name])
            .args(args)
            .status()
            .context("cannot run cargo");
    }

    let mut runner = match language {
        Language::JavaScript => {
            if !build::npm::has_script(&dir, "test")? {
                bail!(
                    "{} has no test script: add \"test\": \"node --test\" to its scripts (`plume new NAME --lang js` shows one, with a phoenix.js test in test/)",
                    dir.join("package.json").display()
                );
            }
            let mut npm = Command::new("npm");
            npm.args(["test", "--"]).args(args);
            npm
        }
        Language::Python => {
            if !dir.join("tests").is_dir() {
                bail!(
                    "{} has no tests/ folder: put unittest tests there (`plume new NAME --lang python` shows one, on plume_test)",
                    dir.display()
                );
            }
            let python = build::python::test_python(workspace)?;
            let mut command = Command::new(python);
            command.args(["-m", "unittest"]);
            if args.is_empty() {
                command.args(["discover", "--start-directory", "tests"]);
            } else {
                command.args(args);
            }
            let client = workspace.join(build::python::TEST_CLIENT);
            let path = match std::env::var_os("PYTHONPATH") {
                Some(existing) => std::env::join_paths(std::iter::once(client).chain(std::env::split_paths(&existing)))?,
                None => client.into_os_string(),
            };
            command.env("PYTHONPATH", path).env("PYTHONDONTWRITEBYTECODE", "1");
            command
        }
        Language::Rust => unreachable!("tested by cargo above"),
    };

    let out_dir = build::plugin_dir(workspace);
    match language {
        Language::JavaScript => build::npm::build_one(workspace, &dir, name, &out_dir)?,
        _ => build::python::build_one(workspace, &dir, name, &out_dir)?,
    }
    let wasm = out_dir.join(format!("{name}.wasm"));
    if !wasm.is_file() {
        bail!("{} was not built (see the warning above)", wasm.display());
    }

    let work = workspace.join("target/plume-test").join(name);
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let config = work.join("plume.toml");
    let default_topic = [format!("{name}:*")];
    let topics = if topics.is_empty() { &default_topic[..] } else { topics };
    std::fs::write(&config, config_text(name, &wasm, topics)?)
        .with_context(|| format!("cannot write {}", config.display()))?;
    let log = work.join("server.log");
    eprintln!("plume test: serving {name} on {} (a first start compiles the component)", topics.join(", "));
    let server = Server::start(&config, &log)?;
    eprintln!("plume test: {name} is served at {}; running its tests", server.url);

    let status = runner
        .current_dir(&dir)
        .env("PLUME_URL", &server.url)
        .status()
        .with_context(|| format!("cannot run the tests of {name}"));
    drop(server);
    let status = status?;
    if !status.success() {
        eprintln!("plume test: {name}: the tests failed; the server's log is {}", log.display());
    }
    Ok(status)
}

/// The configuration that serves `name` alone on `topics`.
fn config_text(name: &str, wasm: &Path, topics: &[String]) -> anyhow::Result<String> {
    let quote = |text: &str| toml::Value::String(text.to_owned()).to_string();
    let wasm = wasm.to_str().context("the plugin's path is not UTF-8")?;
    let mut text = format!(
        "# Written by `plume test {name}`: the plugin alone, on its topics.\n\
         [app]\n\
         secret_key_base = {}\n\n\
         [plugins.{name}]\n\
         path = {}\n",
        quote(&throwaway_secret()),
        quote(wasm),
    );
    for topic in topics {
        text.push_str(&format!("\n[[routes]]\ntopic = {}\nplugin = {}\n", quote(topic), quote(name)));
    }
    Ok(text)
}

/// A secret for one run: no token signed with it outlives the server.
fn throwaway_secret() -> String {
    (0..64).map(|_| char::from(b'a' + rand::random::<u8>() % 26)).collect()
}

/// A `plume serve` child, stopped when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    /// Start `plume serve` on `config`, its stderr into `log`, and wait for
    /// its `listening on` line.
    fn start(config: &Path, log: &Path) -> anyhow::Result<Server> {
        let exe = std::env::current_exe().context("cannot find the plume executable")?;
        let log_file = std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let mut child = Command::new(exe)
            .args(["serve", "--bind", "127.0.0.1:0", "--admin-bind", "127.0.0.1:0", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .context("cannot start plume serve")?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (lines, listening) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(address) = listening_address(&line) {
                    let _ = lines.send(address);
                }
            }
        });
        let mut server = Server { child, url: String::new() };
        match listening.recv_timeout(START_PATIENCE) {
            Ok(address) => {
                server.url = format!("ws://{address}/socket");
                Ok(server)
            }
            Err(_) => {
                let exited = server.child.try_wait().ok().flatten();
                let tail = log_tail(log);
                match exited {
                    Some(status) => bail!("plume serve stopped ({status}) before listening:\n{tail}"),
                    None => bail!("plume serve did not listen within {START_PATIENCE:?}:\n{tail}"),
                }
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM first: the server closes its sockets and stops cleanly.
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill sends a signal to our own child; no memory is touched.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        for _ in 0..50 {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address in `plume: listening on http://ADDR (...)`.
fn listening_address(line: &str) -> Option<String> {
    let rest = line.strip_prefix("plume: listening on http://")?;
    Some(rest.split_whitespace().next()?.to_owned())
}

/// The last lines of the server's log, for an error.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_line_gives_the_client_address_not_the_admin_one() {
        assert_eq!(
            listening_address("plume: listening on http://127.0.0.1:4321 (WebSocket at ws://127.0.0.1:4321/socket/websocket)"),
            Some("127.0.0.1:4321".to_owned())
        );
        assert_eq!(listening_address("plume: admin listening on http://127.0.0.1:4322 (...)"), None);
    }

    #[test]
    fn the_config_serves_the_plugin_alone_and_parses() {
        let text = config_text("hello_py", Path::new("/tmp/x \"q\"/hello_py.wasm"), &["hello_py:*".into(), "lobby".into()])
            .expect("a config");
        let value: toml::Value = toml::from_str(&text).expect("it parses");
        assert_eq!(value["plugins"]["hello_py"]["path"].as_str(), Some("/tmp/x \"q\"/hello_py.wasm"));
        let routes = value["routes"].as_array().expect("routes");
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[1]["topic"].as_str(), Some("lobby"));
        assert_eq!(value["app"]["secret_key_base"].as_str().map(str::len), Some(64));
        assert!(value["app"].get("socket_plugin").is_none(), "every socket connects");
    }

    #[test]
    fn a_folder_is_tested_in_the_language_of_its_manifest() {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        assert_eq!(language(&workspace, "room").expect("room"), Language::Rust);
        assert_eq!(language(&workspace, "room-js").expect("room-js"), Language::JavaScript);
        assert_eq!(language(&workspace, "room-py").expect("room-py"), Language::Python);
        let missing = language(&workspace, "no_such_plugin").expect_err("no folder");
        assert!(missing.to_string().contains("plume new no_such_plugin"), "{missing}");
    }
}
