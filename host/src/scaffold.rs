//! `plume new NAME`: a new plugin crate that builds, has a passing test, and
//! is wired into the configuration.
//!
//! `--lang js` and `--lang python` scaffold the same channel in JavaScript
//! (an npm package built by componentize-js) or Python (a `pyproject.toml`
//! with `[tool.plume]`, built by componentize-py on the SDK in
//! `sdk/python`); `plume build` builds them like the Rust crates, and the
//! folder is added to the workspace's `exclude` list, since cargo takes
//! every folder under `plugins/` for a crate.
//!
//! The crate goes to `plugins/NAME` of the source tree (a workspace member
//! by the `plugins/*` glob): a channel handler serving `NAME:*` by default,
//! or a socket handler with `--socket`; a test through `plume-test`; and
//! the plugin (plus its `NAME:*` route) appended to the configuration file.
//!
//! Appending keeps the file's comments and layout. Nothing is written
//! unless everything can be: the name is checked, the crate folder must
//! not exist, and the configuration must parse, before and after the edit.
//!
//! A missing configuration file is created with the demo app in it (the
//! plugins `plume serve` runs without a configuration, from
//! `target/plugins`) plus the new plugin, so `plume serve --config
//! plume.toml` keeps serving everything it served before, and the newcomer's
//! channel next to it.

use std::path::{Path, PathBuf};

use crate::app::TopicPattern;
use crate::config::{self, ConfigError};

mod js;
mod python;

/// What kind of plugin to scaffold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A channel handler (`join`, `handle_in`, ...), routed `NAME:*`.
    Channel,
    /// A socket handler (`connect`, `id`).
    Socket,
}

/// The language a plugin is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Lang {
    /// A crate on plume-sdk, with plume-test tests.
    #[default]
    Rust,
    /// An npm package built by componentize-js.
    Js,
    /// A Python package built by componentize-py on `sdk/python`.
    Python,
}

/// Why `plume new` wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("`{name}` is not a valid plugin name: {why}")]
    InvalidName { name: String, why: &'static str },
    #[error("{} already exists: pick another name, or remove it first", .0.display())]
    Exists(PathBuf),
    /// The configuration's own error is this one's source: printed once,
    /// after it (`plume: error: cannot add ...: plume.toml:3: ...`).
    #[error("cannot add the plugin to the configuration")]
    Config(#[from] ConfigError),
    #[error("{file} already declares a plugin named `{name}`: pick another name, or remove it from the file")]
    AlreadyDeclared { file: String, name: String },
    #[error(
        "{file} declares tenants: add `{name}` to a tenant's plugins and routes by hand (path {path})"
    )]
    Tenants { file: String, name: String, path: String },
    #[error("cannot write {}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("socket plugins are scaffolded in Rust only: drop --lang, or write the socket handler by hand (world `socket-plugin`)")]
    SocketLang,
    #[error(
        "cannot add {member} to the `exclude` list of {file}: {why}; add it by hand (cargo takes every folder under plugins/ for a crate)"
    )]
    Workspace { file: String, member: String, why: String },
}

/// What `plume new` did.
#[derive(Debug)]
pub struct Scaffolded {
    /// The new crate's folder.
    pub crate_dir: PathBuf,
    /// The files written in it, relative to it.
    pub files: Vec<&'static str>,
    /// The configuration file changed (or created).
    pub config: PathBuf,
    /// Whether the configuration file was created.
    pub config_created: bool,
    /// Whether the configuration file was written (a socket plugin is not
    /// added to an app that has one).
    pub config_changed: bool,
    /// Things the user should know (a route shadowed by an earlier one, a
    /// socket plugin to switch on by hand).
    pub notes: Vec<String>,
}

/// Names Rust or cargo keep for themselves.
const RESERVED: &[&str] = &[
    "alloc", "as", "async", "await", "break", "const", "continue", "core", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "plume", "plume_sdk",
    "plume_test", "proc_macro", "pub", "ref", "return", "self", "static", "std", "struct", "super", "test", "trait",
    "true", "type", "unsafe", "use", "where", "while", "yield",
];

/// A plugin name is a crate name, a TOML key, a topic prefix and a Rust
/// identifier at once: lowercase ASCII letters, digits and underscores,
/// starting with a letter.
pub fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let invalid = |why| ScaffoldError::InvalidName {
        name: name.to_owned(),
        why,
    };
    if name.is_empty() || name.len() > 64 {
        return Err(invalid("give 1 to 64 characters"));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(invalid("start with a lowercase letter (a-z)"));
    }
    if name.contains('-') {
        return Err(invalid("use underscores, not hyphens (e.g. `my_room`)"));
    }
    if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return Err(invalid("use only lowercase letters, digits and underscores"));
    }
    if RESERVED.contains(&name) {
        return Err(invalid("Rust, cargo or plume already uses this name"));
    }
    Ok(())
}

/// Scaffold plugin `name` of `kind` in `lang` in `workspace`, and add it to
/// the configuration file `config` (created if missing).
pub fn new_plugin(workspace: &Path, name: &str, kind: Kind, lang: Lang, config: &Path) -> Result<Scaffolded, ScaffoldError> {
    check_name(name)?;
    if kind == Kind::Socket && lang != Lang::Rust {
        return Err(ScaffoldError::SocketLang);
    }
    let crate_dir = workspace.join("plugins").join(name);
    if crate_dir.exists() {
        return Err(ScaffoldError::Exists(crate_dir));
    }
    // Checked before anything is written: the workspace manifest with the
    // new folder excluded.
    let excluded = match lang {
        Lang::Rust => None,
        Lang::Js | Lang::Python => Some(excluded_manifest(workspace, name)?),
    };
    let config_dir = config.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let plugin_dir = crate::build::plugin_dir(workspace);
    let wasm_dir = relative_to(&plugin_dir, config_dir);
    let wasm = format!("{wasm_dir}/{name}.wasm");

    let (existing, config_created) = match std::fs::read_to_string(config) {
        Ok(text) => (text, false),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => (demo_config(&wasm_dir), true),
        Err(source) => {
            return Err(ScaffoldError::Config(ConfigError {
                file: config.display().to_string(),
                line: 0,
                message: format!("cannot read the configuration: {source}"),
            }));
        }
    };
    let file = config.display().to_string();
    let loaded = config::parse(&existing, &file, config_dir)?;
    if loaded.config.plugins.contains_key(name) {
        return Err(ScaffoldError::AlreadyDeclared {
            file,
            name: name.to_owned(),
        });
    }
    if !loaded.config.tenants.is_empty() {
        return Err(ScaffoldError::Tenants {
            file,
            name: name.to_owned(),
            path: wasm,
        });
    }

    let mut notes = Vec::new();
    let plugin = format!("\n# Added by `plume new {name}`.\n[plugins.{name}]\npath = \"{wasm}\"\n");
    let mut updated = format!("{}\n", existing.trim_end_matches('\n'));
    match kind {
        Kind::Channel => {
            let topic = format!("{name}:*");
            let sample = format!("{name}:lobby");
            if let Some(earlier) = loaded
                .config
                .routes
                .iter()
                .find(|route| TopicPattern::parse(&route.topic).matches(&sample))
            {
                notes.push(format!(
                    "the route `{}` comes first in {file} and also matches {topic}: move the new route above it",
                    earlier.topic
                ));
            }
            updated.push_str(&plugin);
            updated.push_str(&format!("\n[[routes]]\ntopic = \"{topic}\"\nplugin = \"{name}\"\n"));
        }
        // An app has one socket plugin, and every other plugin it declares
        // is loaded as a channel plugin: a socket plugin goes in only as
        // the app's socket plugin.
        Kind::Socket => match loaded.config.app.as_ref().and_then(|app| app.socket_plugin.as_ref()) {
            Some(current) => {
                notes.push(format!(
                    "{file} is unchanged: its socket plugin is `{}`. To use `{name}` instead, set socket_plugin = \"{name}\" under [app] and add:{plugin}",
                    current.get_ref()
                ));
                updated = existing.clone();
            }
            None => {
                updated = with_socket_plugin(&updated, name);
                updated.push_str(&plugin);
            }
        },
    }
    config::parse(&updated, &file, config_dir)?;

    let files = match lang {
        Lang::Rust => write_crate(&crate_dir, name, kind)?,
        Lang::Js => write_files(&crate_dir, &js::files(name))?,
        Lang::Python => write_files(&crate_dir, &python::files(name))?,
    };
    if let Some((path, text)) = excluded {
        std::fs::write(&path, text).map_err(|source| ScaffoldError::Write { path, source })?;
    }
    let config_changed = updated != existing || config_created;
    if config_changed {
        std::fs::write(config, updated).map_err(|source| ScaffoldError::Write {
            path: config.to_owned(),
            source,
        })?;
    }
    Ok(Scaffolded {
        crate_dir,
        files,
        config: config.to_owned(),
        config_created,
        config_changed,
        notes,
    })
}

/// `text` (a configuration without a socket plugin) with `name` as its
/// socket plugin: a line under its `[app]` header, or a new `[app]` table.
fn with_socket_plugin(text: &str, name: &str) -> String {
    let setting = format!("socket_plugin = \"{name}\"\n");
    let mut out = String::with_capacity(text.len() + setting.len());
    let mut placed = false;
    for line in text.split_inclusive('\n') {
        out.push_str(line);
        if !placed && line.trim() == "[app]" {
            out.push_str(&setting);
            placed = true;
        }
    }
    if !placed {
        out.push_str(&format!("\n[app]\n{setting}"));
    }
    out
}

/// `path` as the configuration writes it: relative to the configuration's
/// folder when inside it, else absolute.
fn relative_to(path: &Path, base: &Path) -> String {
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
    let (path, base) = (absolute(path), absolute(base));
    match path.strip_prefix(&base) {
        Ok(relative) => relative.display().to_string(),
        Err(_) => path.display().to_string(),
    }
}

/// The demo app's configuration with plugin paths in `wasm_dir`.
fn demo_config(wasm_dir: &str) -> String {
    let mut text = String::from(
        "# plume's configuration (see README.md, \"Configuration reference\").\n\
         # Created by `plume new` with the demo app (what `plume serve` runs\n\
         # without a configuration) in it; plugin paths are relative to this file.\n",
    );
    for line in config::DEMO.lines().skip_while(|line| line.starts_with('#')) {
        match line.strip_prefix("path = \"") {
            Some(file) => text.push_str(&format!("path = \"{wasm_dir}/{file}\n")),
            None => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    text
}

fn write_crate(dir: &Path, name: &str, kind: Kind) -> Result<Vec<&'static str>, ScaffoldError> {
    let files: [(&'static str, String); 3] = match kind {
        Kind::Channel => [
            ("Cargo.toml", manifest(name, "a channel plugin: the logic of `NAME:*` topics")),
            ("src/lib.rs", fill(CHANNEL_LIB, name)),
            ("tests/channel.rs", fill(CHANNEL_TEST, name)),
        ],
        Kind::Socket => [
            ("Cargo.toml", manifest(name, "a socket plugin: who may connect")),
            ("src/lib.rs", fill(SOCKET_LIB, name)),
            ("tests/socket.rs", fill(SOCKET_TEST, name)),
        ],
    };
    write_files(dir, &files)
}

/// Write `files` (paths relative to `dir`); on a failure, remove `dir`.
fn write_files(dir: &Path, files: &[(&'static str, String)]) -> Result<Vec<&'static str>, ScaffoldError> {
    for (file, text) in files {
        let path = dir.join(file);
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, text));
        if let Err(source) = written {
            let _ = std::fs::remove_dir_all(dir);
            return Err(ScaffoldError::Write { path, source });
        }
    }
    Ok(files.iter().map(|(file, _)| *file).collect())
}

/// The workspace's `Cargo.toml` with `plugins/NAME` added to its
/// `exclude` list (one line, `exclude = [...]`, or a new one under
/// `[workspace]`), and its path.
fn excluded_manifest(workspace: &Path, name: &str) -> Result<(PathBuf, String), ScaffoldError> {
    let path = workspace.join("Cargo.toml");
    let member = format!("plugins/{name}");
    let failed = |why: String| ScaffoldError::Workspace {
        file: path.display().to_string(),
        member: member.clone(),
        why,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| failed(e.to_string()))?;
    let mut out = String::with_capacity(text.len() + member.len() + 16);
    let mut placed = false;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if !placed && trimmed.starts_with("exclude = [") && trimmed.ends_with(']') {
            let list = trimmed[..trimmed.len() - 1].trim_end().trim_end_matches(',');
            let separator = if list.ends_with('[') { "" } else { ", " };
            out.push_str(&format!("{list}{separator}\"{member}\"]\n"));
            placed = true;
        } else {
            out.push_str(line);
        }
    }
    if !placed {
        out = String::new();
        for line in text.split_inclusive('\n') {
            out.push_str(line);
            if !placed && line.trim() == "[workspace]" {
                out.push_str(&format!("exclude = [\"{member}\"]\n"));
                placed = true;
            }
        }
    }
    let parsed: toml::Value = toml::from_str(&out).map_err(|e| failed(format!("the edit does not parse ({e})")))?;
    let listed = parsed
        .get("workspace")
        .and_then(|w| w.get("exclude"))
        .and_then(toml::Value::as_array)
        .is_some_and(|list| list.iter().any(|m| m.as_str() == Some(member.as_str())));
    if !listed {
        return Err(failed("it has no one-line `exclude = [...]` under [workspace]".into()));
    }
    Ok((path, out))
}

fn manifest(name: &str, what: &str) -> String {
    fill(
        &format!(
            r#"[package]
name = "NAME"
description = "{what}"
version.workspace = true
edition.workspace = true
license.workspace = true
rust-version.workspace = true
publish = false

[lib]
# cdylib: the WebAssembly component plume loads (`plume build`);
# rlib: the same handler compiled natively, for unit tests.
crate-type = ["cdylib", "rlib"]

[dependencies]
plume-sdk = {{ path = "../../sdk" }}
# Payloads and key-value values as your own types: #[derive(Deserialize)].
serde.workspace = true

[dev-dependencies]
# Runs this plugin's component on the real plume runtime, in-process.
plume-test = {{ path = "../../sdk/plume-test" }}
"#
        ),
        name,
    )
}

/// A template with `NAME` (the plugin name) and `TYPE` (its CamelCase
/// type name) filled in.
fn fill(template: &str, name: &str) -> String {
    let type_name: String = name
        .split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    template.replace("TYPE", &type_name).replace("NAME", name)
}

const CHANNEL_LIB: &str = r#"//! The `NAME:*` channels. Generated by `plume new NAME`: make it yours.
//!
//! - join `NAME:<anything>`: ok, replies `{"joined": <topic>}`.
//! - `ping` P: replies ok P, the payload echoed.
//! - `shout` `{"body": B}`: broadcasts `shout` `{"body": B}` to every client
//!   on the topic and replies ok `{}`; without a string body, replies error
//!   `{"reason": "body is required"}`.
//! - `count`: counts this channel's `count` pushes and replies
//!   `{"count": N}`. The count lives in the channel's assigns, which the
//!   host keeps between calls (and across hot swaps of this plugin).
//! - `whoami`: replies `{"user": U}`, U the socket's user `{"id", "name",
//!   "role"}` as the socket plugin assigned it (the demo's `user_socket`,
//!   or one made by `plume new NAME --socket`), or null without one.
//!
//! The SDK's manual: `cargo doc -p plume-sdk --open`.

use plume_sdk::{Channel, HandleIn, Join, Payload, Reply, Socket, channel, json};
use serde::Deserialize;

/// The channel handler.
pub struct TYPE;

/// The payload of `shout`.
#[derive(Deserialize)]
struct Shout {
    body: String,
}

impl Channel for TYPE {
    fn join(topic: &str, _payload: Payload, socket: &mut Socket) -> Join {
        socket.assign("count", 0);
        Join::ok(json!({"joined": topic}))
    }

    fn handle_in(event: &str, payload: Payload, socket: &mut Socket) -> HandleIn {
        match event {
            "ping" => Reply::ok_raw(payload).into(),
            "shout" => shout(&payload),
            "count" => {
                let count = socket.get::<u64>("count").unwrap_or(0) + 1;
                socket.assign("count", count);
                Reply::ok(json!({"count": count})).into()
            }
            "whoami" => Reply::ok(json!({"user": socket.user()})).into(),
            _ => HandleIn::stop(format!("unknown event: {event}")),
        }
    }
}

/// Broadcasts the body to the topic.
fn shout(payload: &Payload) -> HandleIn {
    let Ok(Shout { body }) = payload.parse::<Shout>() else {
        return Reply::error(json!({"reason": "body is required"})).into();
    };
    match channel::broadcast("shout", &json!({"body": body})) {
        Ok(()) => Reply::ok(json!({})).into(),
        Err(err) => Reply::error(json!({"reason": err.to_string()})).into(),
    }
}

plume_sdk::export_channel!(TYPE);
"#;

const CHANNEL_TEST: &str = r#"//! The `NAME:*` channels, run by plume-test: this plugin's real component
//! on the real plume runtime, in-process. `cargo test -p NAME`.

use plume_test::{Harness, json};

#[test]
fn joining_replies_with_the_topic() {
    let harness = Harness::new("NAME");
    let socket = harness.connect(json!({})).expect("no socket plugin: everyone connects");
    let (reply, _channel) = socket.subscribe_and_join("NAME:lobby", json!({})).expect("joins");
    assert_eq!(reply, json!({"joined": "NAME:lobby"}));
}

#[test]
fn ping_echoes_the_payload() {
    let harness = Harness::new("NAME");
    let socket = harness.connect(json!({})).expect("connects");
    let (_, channel) = socket.subscribe_and_join("NAME:lobby", json!({})).expect("joins");
    let ping = channel.push("ping", json!({"hello": "world"}));
    channel.assert_reply(ping, "ok", json!({"hello": "world"}));
}

#[test]
fn shout_is_broadcast_to_everyone_on_the_topic() {
    let harness = Harness::new("NAME");
    let ann = harness.connect(json!({})).expect("connects");
    let bob = harness.connect(json!({})).expect("connects");
    let (_, ann_lobby) = ann.subscribe_and_join("NAME:lobby", json!({})).expect("joins");
    let (_, bob_lobby) = bob.subscribe_and_join("NAME:lobby", json!({})).expect("joins");

    let shout = ann_lobby.push("shout", json!({"body": "hi"}));
    ann_lobby.assert_reply(shout, "ok", json!({}));
    ann_lobby.assert_broadcast("shout", json!({"body": "hi"}));
    bob_lobby.assert_push("shout", json!({"body": "hi"}));

    let empty = ann_lobby.push("shout", json!({}));
    ann_lobby.assert_reply(empty, "error", json!({"reason": "body is required"}));
    bob_lobby.refute_push("shout", json!({}));
}

#[test]
fn whoami_is_the_user_the_socket_plugin_assigned() {
    // The demo's socket plugin, as in the plume.toml `plume new` writes.
    let harness = Harness::builder().channel("NAME").socket("user_socket").build();
    let token = harness.sign_token("user socket", json!(42));
    let socket = harness.connect(json!({"token": token})).expect("a user token connects");
    let (_, channel) = socket.subscribe_and_join("NAME:lobby", json!({})).expect("joins");
    let whoami = channel.push("whoami", json!({}));
    channel.assert_reply(whoami, "ok", json!({"user": {"id": 42, "name": "user-42", "role": "user"}}));
}

#[test]
fn count_keeps_its_state_between_pushes() {
    let harness = Harness::new("NAME");
    let socket = harness.connect(json!({})).expect("connects");
    let (_, channel) = socket.subscribe_and_join("NAME:lobby", json!({})).expect("joins");
    for expected in 1..=3 {
        let count = channel.push("count", json!({}));
        channel.assert_reply(count, "ok", json!({"count": expected}));
    }
}
"#;

const SOCKET_LIB: &str = r#"//! A socket handler: who may connect. Generated by `plume new NAME
//! --socket`: make it yours.
//!
//! - connect: the `token` param must be a Phoenix.Token signed with the salt
//!   `"NAME socket"` (mint one with `plume token sign --salt "NAME socket"
//!   42`), at most a day old. Its data, a user `{"id", "name", "role"}` or
//!   a bare id N (the user `{"id": N, "name": "user-N", "role": "user"}`),
//!   becomes the socket's `user` assign, which every channel of the socket
//!   reads with `socket.user()`: the same identity as the demo's
//!   `user_socket`. No token, or a bad one: the connection is refused
//!   (HTTP 403).
//! - id: `"NAME:<user id>"`, so broadcasting `disconnect` to that topic
//!   closes every socket of the user.
//!
//! Switch it on with `socket_plugin = "NAME"` under `[app]` in plume.toml.

use std::time::Duration;

use plume_sdk::{Assigns, ConnectInfo, Payload, SocketHandler, User, Value, token};

/// The salt tokens for this socket are signed with.
const SALT: &str = "NAME socket";

/// How old a token may be.
const MAX_AGE: Duration = Duration::from_secs(86_400);

/// The socket handler.
pub struct TYPE;

impl SocketHandler for TYPE {
    fn connect(params: Payload, _info: ConnectInfo) -> Result<Assigns, String> {
        let params: Value = params.parse().map_err(|err| format!("params that are not JSON: {err}"))?;
        let token = params.get("token").and_then(Value::as_str).ok_or("no token param")?;
        let user: User = token::verify(SALT, token, Some(MAX_AGE)).map_err(|err| format!("token refused: {err}"))?;
        let mut assigns = Assigns::new();
        assigns.try_assign("user", &user).map_err(|err| format!("cannot assign the user: {err}"))?;
        Ok(assigns)
    }

    fn id(assigns: &Assigns) -> Option<String> {
        let user: User = assigns.get("user")?;
        Some(format!("NAME:{}", user.id))
    }
}

plume_sdk::export_socket!(TYPE);
"#;

const SOCKET_TEST: &str = r#"//! The NAME socket handler, run by plume-test: this plugin's real component
//! on the real plume runtime, in-process. `cargo test -p NAME`.

use plume_test::{Harness, json};

#[test]
fn a_valid_token_connects_as_its_user() {
    let harness = Harness::builder().socket("NAME").build();
    let token = harness.sign_token("NAME socket", json!(42));
    let socket = harness.connect(json!({"token": token})).expect("a valid token connects");
    assert_eq!(socket.assigns(), &json!({"user": {"id": 42, "name": "user-42", "role": "user"}}));
    assert_eq!(socket.id(), Some("NAME:42"));

    let ada = json!({"id": 7, "name": "ada", "role": "admin"});
    let token = harness.sign_token("NAME socket", ada.clone());
    let socket = harness.connect(json!({"token": token})).expect("a whole user connects");
    assert_eq!(socket.assigns(), &json!({"user": ada}));
}

#[test]
fn a_missing_or_forged_token_is_refused() {
    let harness = Harness::builder().socket("NAME").build();
    let other_salt = harness.sign_token("another salt", json!(42));
    for params in [json!({}), json!({"token": "forged"}), json!({"token": other_salt})] {
        assert!(harness.connect(params.clone()).is_err(), "{params}");
    }
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_js_or_python_plugin_is_added_to_the_workspace_exclude_list() {
        let dir = std::env::temp_dir().join(format!("plume-scaffold-exclude-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let write = |text: &str| std::fs::write(dir.join("Cargo.toml"), text).expect("write");
        write("[workspace]\nmembers = [\"plugins/*\"]\nexclude = [\"plugins/room-js\"]\n");
        let (_, text) = excluded_manifest(&dir, "poll").expect("edits");
        assert!(text.contains("exclude = [\"plugins/room-js\", \"plugins/poll\"]\n"), "{text}");
        write("[workspace]\nmembers = [\"plugins/*\"]\n");
        let (_, text) = excluded_manifest(&dir, "poll").expect("edits");
        assert_eq!(text, "[workspace]\nexclude = [\"plugins/poll\"]\nmembers = [\"plugins/*\"]\n");
        write("[workspace]\nexclude = [\n  \"a\",\n]\n");
        let err = excluded_manifest(&dir, "poll").expect_err("a list over lines is left to the user");
        assert!(err.to_string().contains("add it by hand"), "{err}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn names_are_lowercase_identifiers() {
        for name in ["hello", "my_room", "room2"] {
            assert!(check_name(name).is_ok(), "{name}");
        }
        for name in ["", "Hello", "my-room", "2rooms", "_x", "ro om", "test", "std", "plume"] {
            assert!(check_name(name).is_err(), "{name}");
        }
    }

    #[test]
    fn a_socket_plugin_goes_under_the_app_header_or_in_a_new_app_table() {
        let text = with_socket_plugin("[app]\nid = \"x\"\n", "gate");
        assert_eq!(text, "[app]\nsocket_plugin = \"gate\"\nid = \"x\"\n");
        let text = with_socket_plugin("[server]\nbind = \"127.0.0.1:1\"\n", "gate");
        assert!(text.ends_with("\n[app]\nsocket_plugin = \"gate\"\n"), "{text}");
        config::parse(&text, "plume.toml", Path::new(".")).expect_err("the plugin is not declared yet");
    }

    #[test]
    fn the_type_name_is_camel_case() {
        assert_eq!(fill("TYPE NAME", "my_room"), "MyRoom my_room");
    }

    #[test]
    fn the_demo_config_with_relative_paths_parses() {
        let text = demo_config("target/plugins/wasm32-wasip2/plugin");
        let loaded = config::parse(&text, "plume.toml", Path::new("/srv")).expect("valid");
        assert_eq!(
            loaded.config.plugins["room"].path,
            Path::new("target/plugins/wasm32-wasip2/plugin/room.wasm")
        );
    }
}
