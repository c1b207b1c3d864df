//! The end-to-end harness: a real `plume` process on a free port, and a real
//! WebSocket client speaking the Phoenix protocol to it.
//!
//! Every test starts its own server, so tests are independent and can run in
//! parallel. Frames are compared as raw text where the wire details matter:
//! plume must match a Phoenix 1.7 server byte for byte.

#![allow(dead_code)]

pub mod backend;
pub mod barrier;
pub mod busy;
pub mod compile_cache;
pub mod node;
pub mod priority;
pub mod redis;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for one expected frame.
pub const WAIT: Duration = Duration::from_secs(5);

/// The `SECRET_KEY_BASE` of every server the harness starts (an app
/// served with `--config` refuses to start without one), and of every token
/// it signs.
pub const SECRET: &str = "plume-test-suite-secret-key-base-0123456789abcdef0123456789abcdef0123";

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The demo plugins and the test-only ones, built once per test binary.
pub fn plugin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        plume::build::build_plugin_folders(&workspace(), &["plugins", "tests/plugins"])
            .expect("the plugins build")
    })
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// A Phoenix.Token for `data` with `salt`, signed now with the demo secret.
pub fn token(salt: &str, data: Value) -> String {
    plume::token::Tokens::new(SECRET.as_bytes())
        .sign(salt, &data, now_ms(), 86_400)
        .expect("signable")
}

/// A UserSocket token for user `id`.
pub fn user_token(id: i64) -> String {
    token("user socket", json!(id))
}

/// The demo app with the probe plugin (see [`Server::start_probe`]).
pub const PROBE_CONFIG: &str = r#"
[runtime]
deadline_ms = 300
memory_limit_mb = 32

[app]
socket_plugin = "user_socket"

[plugins.user_socket]
path = "{plugins}/user_socket.wasm"

[plugins.room]
path = "{plugins}/room.wasm"

[plugins.probe]
path = "{plugins}/probe.wasm"

[[routes]]
topic = "room:*"
plugin = "room"

[[routes]]
topic = "probe:*"
plugin = "probe"
config = { greeting = "hello", update_ms = 50 }
"#;

/// `text` with `from` replaced by `to`. Panics when `from` is not in it, so
/// a test that edits a configuration never runs on the defaults because
/// the text it meant to change has moved.
pub fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the text to edit has no `{from}`:\n{text}");
    text.replace(from, to)
}

/// [`PROBE_CONFIG`] with `sections` (such as `[limits]` keys) added before
/// its `[app]` table.
pub fn probe_config_with(sections: &str) -> String {
    edit(PROBE_CONFIG, "\n[app]\n", &format!("\n{sections}\n\n[app]\n"))
}

/// The demo app (what `plume serve` runs with no configuration) as a
/// configuration text, with `sections` (such as `[server]` keys) first.
pub fn demo_config_with(sections: &str) -> String {
    let demo = edit(plume::config::DEMO, "\npath = \"", "\npath = \"{plugins}/");
    format!("{sections}\n\n{demo}")
}

/// A running plume server.
pub struct Server {
    child: Child,
    pub addr: String,
    /// Where its admin pages (`/metrics`, `/_plume/plugins`) are.
    pub admin_addr: String,
    log: Arc<Mutex<Vec<String>>>,
    _dir: Option<TempDir>,
    /// The server's own working directory and compile cache.
    _scratch: TempDir,
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("plume-test-{name}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Server {
    /// The demo app on a free port.
    pub fn start() -> Server {
        let dir = plugin_dir().to_owned();
        Server::spawn(
            &["serve", "--bind", "127.0.0.1:0", "--admin-bind", "127.0.0.1:0", "--no-build", "--plugin-dir"],
            Some(dir.as_os_str()),
            None,
        )
        .expect("the demo server starts")
    }

    /// The demo app plus the test-only `probe` plugin on `probe:*`, with a
    /// short call deadline and a small memory limit so faults come quickly.
    pub fn start_probe() -> Server {
        Server::start_config(PROBE_CONFIG).expect("the probe server starts")
    }

    /// The demo app as a node of the cluster whose Redis is at `redis_url`
    /// (`PLUME_REDIS_URL`, as an operator would start it).
    pub fn start_node(redis_url: &str) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_plume"));
        command
            .args(["serve", "--bind", "127.0.0.1:0", "--admin-bind", "127.0.0.1:0", "--no-build", "--plugin-dir"])
            .arg(plugin_dir())
            .env("PLUME_REDIS_URL", redis_url);
        Server::spawn_command(command, None, Duration::from_secs(60)).expect("the node starts")
    }

    /// A node of the cluster whose Redis is at `redis_url`, serving a
    /// `plume.toml` text (`{plugins}` as in [`Server::start_config`]).
    pub fn start_node_config(config: &str, redis_url: &str) -> Server {
        let dir = TempDir::new("node-config");
        let path = dir.0.join("plume.toml");
        std::fs::write(&path, config.replace("{plugins}", &plugin_dir().display().to_string())).expect("write config");
        let mut command = Command::new(env!("CARGO_BIN_EXE_plume"));
        command
            .args(["serve", "--bind", "127.0.0.1:0", "--admin-bind", "127.0.0.1:0", "--config"])
            .arg(&path)
            .env("PLUME_REDIS_URL", redis_url);
        Server::spawn_command(command, Some(dir), Duration::from_secs(60)).expect("the node starts")
    }

    /// A server for a `plume.toml` text; `{plugins}` in it stands for the
    /// built plugins' directory.
    pub fn start_config(config: &str) -> Result<Server, String> {
        Server::start_config_with(config, |_| {})
    }

    /// [`Server::start_config`], with `prepare` run on the command first.
    pub fn start_config_with(config: &str, prepare: impl FnOnce(&mut Command)) -> Result<Server, String> {
        let dir = TempDir::new("config");
        let path = dir.0.join("plume.toml");
        let text = config.replace("{plugins}", &plugin_dir().display().to_string());
        std::fs::write(&path, text).expect("write config");
        let mut command = Command::new(env!("CARGO_BIN_EXE_plume"));
        command.args(["serve", "--config"]).arg(&path);
        prepare(&mut command);
        if !command.get_args().any(|arg| arg == "--bind") {
            command.args(["--bind", "127.0.0.1:0"]);
        }
        if !command.get_args().any(|arg| arg == "--admin-bind") {
            command.args(["--admin-bind", "127.0.0.1:0"]);
        }
        Server::spawn_command(command, Some(dir), Duration::from_secs(60))
    }

    fn spawn(args: &[&str], last: Option<&std::ffi::OsStr>, dir: Option<TempDir>) -> Result<Server, String> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_plume"));
        command.args(args);
        if let Some(last) = last {
            command.arg(last);
        }
        Server::spawn_command(command, dir, Duration::from_secs(60))
    }

    /// Run a prepared `plume` command and wait up to `patience` for it to
    /// listen. Unless the command says otherwise, the server runs in a
    /// scratch directory of its own, with its own compile cache there
    /// (seeded with the plugins already compiled, see [`compile_cache`]):
    /// nothing a test's server writes reaches another server or
    /// `~/.cache/plume`.
    pub fn spawn_command(mut command: Command, dir: Option<TempDir>, patience: Duration) -> Result<Server, String> {
        // The suite's secret, unless the test chose (or removed) one.
        if !command.get_envs().any(|(name, _)| name == "SECRET_KEY_BASE") {
            command.env("SECRET_KEY_BASE", SECRET);
        }
        let scratch = TempDir::new("server");
        if command.get_current_dir().is_none() {
            command.current_dir(&scratch.0);
        }
        if !command.get_envs().any(|(key, _)| key == "PLUME_CACHE_DIR") {
            let cache = scratch.0.join("compile-cache");
            compile_cache::seed(&cache);
            command.env("PLUME_CACHE_DIR", cache);
        }
        let mut child = command
            .env("PLUME_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn plume");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("log").push(line);
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let address_after = |line: &str, marker: &str| {
                line.split(marker).nth(1).map(|rest| rest.split_whitespace().next().unwrap_or_default().to_owned())
            };
            // The client's listening line, then the admin listener's.
            let mut client = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(admin) = address_after(&line, "admin listening on http://") {
                    if let Some(client) = client.take() {
                        let _ = tx.send((client, admin));
                    }
                } else if let Some(addr) = address_after(&line, "listening on http://") {
                    client = Some(addr);
                }
            }
        });
        match rx.recv_timeout(patience) {
            Ok((addr, admin_addr)) => Ok(Server {
                child,
                addr,
                admin_addr,
                log,
                _dir: dir,
                _scratch: scratch,
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                Err(log.lock().expect("log").join("\n"))
            }
        }
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }

    /// Wait (up to [`WAIT`]) until the log has a line containing `needle`.
    pub fn wait_for_log(&self, needle: &str) -> bool {
        let until = std::time::Instant::now() + WAIT;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if std::time::Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `GET path` on the admin listener, with `token` as its bearer token
    /// when given: the status line and headers, and the body.
    pub fn admin_get(&self, path: &str, token: Option<&str>) -> (String, String) {
        http_get(&self.admin_addr, path, token)
    }

    /// An admin page's body, asserting it was served (200).
    pub fn admin_page(&self, path: &str) -> String {
        let (head, body) = self.admin_get(path, None);
        assert!(head.starts_with("HTTP/1.1 200"), "GET {path} on the admin listener: {head}\n{body}");
        body
    }

    pub fn ws_url(&self, query: &str) -> String {
        format!("ws://{}/socket/websocket?{query}", self.addr)
    }

    /// Send SIGTERM and wait for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        for _ in 0..200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("plume did not exit within 10 s of SIGTERM");
    }

    /// SIGKILL, as a crash or the OOM killer ends it, and wait for it:
    /// no shutdown, nothing cleaned up.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// A connected V2 client for user `id`.
    pub async fn client(&self, id: i64) -> Client {
        Client::connect(&self.ws_url(&format!("token={}&vsn=2.0.0", user_token(id))))
            .await
            .expect("the connection is accepted")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `command` until it exits, or kill it after `patience`; returns its
/// status (`None` if it was still running) and its stderr.
pub fn run_briefly(mut command: Command, patience: Duration) -> (Option<std::process::ExitStatus>, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn plume");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if started.elapsed() > patience {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr).expect("read stderr");
    (status, stderr)
}

/// `GET path` from `addr` over a fresh connection, with a bearer token when
/// given: the response head (status line and headers) and its body.
pub fn http_get(addr: &str, path: &str, token: Option<&str>) -> (String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let authorization = token.map(|token| format!("Authorization: Bearer {token}\r\n")).unwrap_or_default();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: plume\r\n{authorization}Connection: close\r\n\r\n").expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (head.to_owned(), body.to_owned())
}

/// A raw WebSocket client that speaks Phoenix frames.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_ref: u64,
    /// Whether the socket speaks the V1 serializer (no `vsn=2...`).
    v1: bool,
}

/// How a connection attempt ended, when it was refused.
#[derive(Debug)]
pub enum Refused {
    Status(u16),
    Other(String),
}

impl Client {
    pub async fn connect(url: &str) -> Result<Client, Refused> {
        Client::connect_request(url.into_client_request().expect("valid url")).await
    }

    pub async fn connect_request(
        request: tokio_tungstenite::tungstenite::handshake::client::Request,
    ) -> Result<Client, Refused> {
        let v1 = !request
            .uri()
            .query()
            .is_some_and(|query| query.split('&').any(|pair| pair.starts_with("vsn=2.")));
        match tokio_tungstenite::connect_async(request).await {
            Ok((ws, _)) => Ok(Client { ws, next_ref: 100, v1 }),
            Err(WsError::Http(response)) => Err(Refused::Status(response.status().as_u16())),
            Err(other) => Err(Refused::Other(other.to_string())),
        }
    }

    /// A fresh reference, as a string.
    pub fn next_ref(&mut self) -> String {
        self.next_ref += 1;
        self.next_ref.to_string()
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::Text(text.into())).await.expect("send");
    }

    /// Send several text frames in one write, as a client that batches
    /// its outgoing messages does: the server reads them together.
    pub async fn send_batch(&mut self, frames: &[&str]) {
        for frame in frames {
            self.ws.feed(Message::Text((*frame).into())).await.expect("queue a frame");
        }
        self.ws.flush().await.expect("send");
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::Binary(bytes.into())).await.expect("send");
    }

    pub async fn send(&mut self, frame: Value) {
        self.send_text(&frame.to_string()).await;
    }

    /// The next text frame, raw.
    pub async fn recv_text(&mut self) -> String {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await {
                Err(_) => panic!("no frame within {WAIT:?}"),
                Ok(Some(Ok(Message::Text(text)))) => return text.to_string(),
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(other) => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next text frame, parsed, if one arrives within `wait`.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return None,
                Ok(Some(Ok(Message::Text(text)))) => {
                    return Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("frame {text} is not JSON: {e}")));
                }
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(other) => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next message of any kind; `None` when the connection ended.
    pub async fn next_message(&mut self) -> Option<Message> {
        match tokio::time::timeout(WAIT, self.ws.next()).await {
            Ok(Some(Ok(message))) => Some(message),
            Ok(_) => None,
            Err(_) => panic!("nothing arrived within {WAIT:?}"),
        }
    }

    /// The next text frame, parsed; `None` when the connection ended or
    /// broke, or nothing came within [`WAIT`] (for tests that end the
    /// server under a client).
    pub async fn try_recv(&mut self) -> Option<Value> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => return serde_json::from_str(&text).ok(),
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                _ => return None,
            }
        }
    }

    /// Send a frame; `false` when the connection is gone.
    pub async fn try_send(&mut self, frame: Value) -> bool {
        self.ws.send(Message::Text(frame.to_string().into())).await.is_ok()
    }

    /// The next text frame, parsed.
    pub async fn recv(&mut self) -> Value {
        let text = self.recv_text().await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("frame {text} is not JSON: {e}"))
    }

    /// Wait for the server to close the connection; returns the close code.
    pub async fn expect_close(&mut self) -> Option<CloseCode> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await {
                Err(_) => panic!("the server did not close the connection within {WAIT:?}"),
                Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| f.code),
                Ok(Some(Ok(Message::Text(text)))) => {
                    eprintln!("(frame before close: {text})");
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(_)) | None) => return None,
            }
        }
    }

    /// Join `topic` with join ref = ref = a fresh ref; returns (join_ref, reply frame).
    pub async fn join(&mut self, topic: &str, payload: Value) -> (String, Value) {
        let join_ref = self.next_ref();
        self.send(json!([join_ref, join_ref, topic, "phx_join", payload])).await;
        let reply = self.recv().await;
        (join_ref, reply)
    }

    /// Join and assert the reply is ok; returns the join ref.
    pub async fn join_ok(&mut self, topic: &str) -> String {
        let (join_ref, reply) = self.join(topic, json!({})).await;
        assert_eq!(
            reply,
            json!([join_ref, join_ref, topic, "phx_reply", {"response": {}, "status": "ok"}])
        );
        join_ref
    }

    /// Join a topic whose plugin replies with a payload; asserts the status
    /// is ok and returns the join ref.
    pub async fn join_ok_probe(&mut self, topic: &str) -> String {
        let (join_ref, reply) = self.join(topic, json!({})).await;
        assert_eq!(reply[3], "phx_reply", "{reply}");
        assert_eq!(reply[4]["status"], "ok", "{reply}");
        join_ref
    }

    /// Push `event` on a joined topic; returns the ref used.
    pub async fn push(&mut self, join_ref: &str, topic: &str, event: &str, payload: Value) -> String {
        let reference = self.next_ref();
        self.send(json!([join_ref, reference, topic, event, payload])).await;
        reference
    }
}

/// One HTTP/1.1 request to `addr` over a fresh connection: the status and
/// the body. `headers` are `Name: value` lines.
pub fn http_request(addr: &str, method: &str, path: &str, headers: &[&str], body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: plume\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read");
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// A server API call with bearer `key` (none when empty): the status and
/// the JSON body.
pub fn api(addr: &str, method: &str, path: &str, key: &str, body: Value) -> (u16, Value) {
    let auth = format!("Authorization: Bearer {key}");
    let headers: Vec<&str> = if key.is_empty() { vec!["Content-Type: application/json"] } else { vec![&auth, "Content-Type: application/json"] };
    let body = if body.is_null() { String::new() } else { body.to_string() };
    let (status, text) = http_request(addr, method, path, &headers, &body);
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}
