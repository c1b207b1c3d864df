//! WebSocket conformance: the Autobahn test suite, run by `kosoku` (a native
//! re-implementation of Autobahn's fuzzing client, from PyPI), against
//! plume's echo endpoint (`[server] websocket_echo_path`), which runs on the
//! same WebSocket stack as `/socket/websocket`.
//!
//! Sections 1-7 (framing, pings, reserved bits, opcodes, fragmentation,
//! UTF-8, closing), 9 (large messages, up to 16 MiB) and 10 (auto-fragmen-
//! tation) run; 12 and 13 test permessage-deflate, which plume does not
//! offer. A case passes as Autobahn's report defines it: its behaviour is
//! OK, NON-STRICT or INFORMATIONAL, and so is its closing behaviour (OK or
//! INFORMATIONAL).
//!
//! kosoku installs itself on first run into a virtual environment under
//! cargo's target directory; that needs `python3` with its `venv` module
//! (Debian: `apt-get install python3-venv`) and access to PyPI.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use support::{Server, TempDir};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// The kosoku release this suite was written against (its report format).
const KOSOKU: &str = "kosoku==0.1.0";

/// Where the echo endpoint listens in these tests.
const ECHO_PATH: &str = "/_plume/echo";

/// The cases that run: everything but compression (12, 13).
const SECTIONS: [&str; 9] = ["1", "2", "3", "4", "5", "6", "7", "9", "10"];

/// Cases kosoku runs at once. Most of the suite's time is its own timers
/// (one-second waits in sections 5-7), not work; section 9 stays fast on
/// two cores with four at once.
const PARALLELISM: usize = 4;

/// How long the whole run may take before the test gives up.
const RUN_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Verdicts that pass, for the message exchange and for the close.
const PASSING_BEHAVIOUR: [&str; 3] = ["OK", "NON-STRICT", "INFORMATIONAL"];
const PASSING_CLOSE: [&str; 2] = ["OK", "INFORMATIONAL"];

/// The `kosoku` executable, installed into a virtual environment first
/// when it is not there yet.
fn kosoku() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kosoku-venv");
    let exe = venv.join("bin").join("kosoku");
    if exe.exists() {
        return exe;
    }
    run(
        Command::new("python3").arg("-m").arg("venv").arg(&venv),
        "create a Python virtual environment for kosoku (needs python3 with its venv module; on Debian or Ubuntu: apt-get install python3-venv)",
    );
    run(
        Command::new(venv.join("bin").join("python")).args(["-m", "pip", "install", "--quiet", KOSOKU]),
        &format!("install {KOSOKU} from PyPI"),
    );
    assert!(exe.exists(), "pip installed {KOSOKU} but {} is missing", exe.display());
    exe
}

fn run(command: &mut Command, what: &str) {
    match command.output() {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!(
            "cannot {what}: {}\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(error) => panic!("cannot {what}: {error}"),
    }
}

/// plume serving only the echo endpoint.
fn echo_server(dir: &TempDir, echo: bool) -> Server {
    let path = dir.0.join("plume.toml");
    let server = if echo { format!("[server]\nwebsocket_echo_path = \"{ECHO_PATH}\"\n") } else { String::new() };
    std::fs::write(&path, format!("{server}[runtime]\nhot_reload = false\n")).expect("write the config");
    let mut command = Command::new(env!("CARGO_BIN_EXE_plume"));
    command.args(["serve", "--bind", "127.0.0.1:0", "--config"]).arg(&path);
    Server::spawn_command(command, None, Duration::from_secs(30)).expect("plume starts")
}

/// Run the fuzzing client against `url`, writing its report into `reports`.
fn fuzz(url: &str, reports: &Path) {
    let mut command = Command::new(kosoku());
    command.args(["-m", "fuzzingclient", url, "-p", &PARALLELISM.to_string(), "-o"]).arg(reports);
    for section in SECTIONS {
        command.args(["-i", &format!("{section}.*")]);
    }
    // kosoku exits 1 when any case fails; the report says which, so the
    // verdict comes from the report, not from the exit status.
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start kosoku");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for kosoku") {
            break status;
        }
        if started.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kosoku did not finish within {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut output = String::new();
    child.stdout.take().map(|mut out| out.read_to_string(&mut output));
    child.stderr.take().map(|mut err| err.read_to_string(&mut output));
    assert!(
        reports.join("index.json").exists(),
        "kosoku wrote no report ({status}):\n{output}"
    );
    println!("kosoku finished in {:.1?} ({status}); report: {}", started.elapsed(), reports.join("index.html").display());
}

/// One case's verdicts, from the report's index.
struct Verdict {
    id: String,
    behaviour: String,
    close: String,
    report_file: String,
}

impl Verdict {
    fn passed(&self) -> bool {
        PASSING_BEHAVIOUR.contains(&self.behaviour.as_str()) && PASSING_CLOSE.contains(&self.close.as_str())
    }

    fn section(&self) -> &str {
        self.id.split('.').next().unwrap_or_default()
    }
}

/// Every case in `index.json` (`{agent: {case id: {behavior, ...}}}`).
fn verdicts(reports: &Path) -> Vec<Verdict> {
    let text = std::fs::read_to_string(reports.join("index.json")).expect("read index.json");
    let index: Value = serde_json::from_str(&text).expect("index.json is JSON");
    let field = |case: &Value, key: &str| case[key].as_str().unwrap_or("missing").to_owned();
    let mut verdicts: Vec<Verdict> = index
        .as_object()
        .expect("index.json maps agents to cases")
        .values()
        .flat_map(|cases| cases.as_object().expect("an agent maps case ids to verdicts"))
        .map(|(id, case)| Verdict {
            id: id.clone(),
            behaviour: field(case, "behavior"),
            close: field(case, "behaviorClose"),
            report_file: field(case, "reportfile"),
        })
        .collect();
    verdicts.sort_by_key(|v| v.id.split('.').map(|n| n.parse::<u32>().unwrap_or(0)).collect::<Vec<_>>());
    verdicts
}

/// Cases per section and verdict, as a table.
fn summary(verdicts: &[Verdict]) -> String {
    let mut table: BTreeMap<u32, BTreeMap<String, usize>> = BTreeMap::new();
    for v in verdicts {
        let row = table.entry(v.section().parse().unwrap_or(0)).or_default();
        *row.entry(v.behaviour.clone()).or_default() += 1;
        *row.entry(format!("close {}", v.close)).or_default() += 1;
    }
    let passed = verdicts.iter().filter(|v| v.passed()).count();
    let mut out = format!("Autobahn ({KOSOKU}) against plume {ECHO_PATH}: {passed}/{} cases pass\n", verdicts.len());
    out.push_str("section  cases  behaviour                          close\n");
    for (section, counts) in &table {
        let total: usize = counts.iter().filter(|(k, _)| !k.starts_with("close ")).map(|(_, n)| n).sum();
        let list = |close: bool| {
            counts
                .iter()
                .filter(|(k, _)| k.starts_with("close ") == close)
                .map(|(k, n)| format!("{} {n}", k.trim_start_matches("close ")))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push_str(&format!("{section:>7}  {total:>5}  {:<33}  {}\n", list(false), list(true)));
    }
    out
}

/// What the report says about a failed case, for the assertion message.
fn explain(reports: &Path, v: &Verdict) -> String {
    let detail: Value = std::fs::read_to_string(reports.join(&v.report_file))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    format!(
        "{} [{} / close {}]: {} {} (remote close code {}, reason {})",
        v.id,
        v.behaviour,
        v.close,
        detail["result"].as_str().unwrap_or_default(),
        detail["resultClose"].as_str().unwrap_or_default(),
        detail["remoteCloseCode"],
        detail["remoteCloseReason"],
    )
}

#[test]
fn the_websocket_stack_passes_autobahn_sections_1_to_7_9_and_10() {
    let dir = TempDir::new("autobahn");
    let server = echo_server(&dir, true);
    // Kept after the run: open index.html there for every case's wire log.
    let reports = Path::new(env!("CARGO_TARGET_TMPDIR")).join("autobahn-reports");
    let _ = std::fs::remove_dir_all(&reports);
    fuzz(&format!("ws://{}{ECHO_PATH}", server.addr), &reports);

    let verdicts = verdicts(&reports);
    let summary = summary(&verdicts);
    println!("{summary}");
    let _ = std::io::stdout().flush();
    for section in SECTIONS {
        assert!(
            verdicts.iter().any(|v| v.section() == section),
            "no case of section {section} ran:\n{summary}"
        );
    }
    let failed: Vec<String> = verdicts.iter().filter(|v| !v.passed()).map(|v| explain(&reports, v)).collect();
    assert!(
        failed.is_empty(),
        "{} cases fail:\n{}\n\n{summary}\nserver log:\n{}",
        failed.len(),
        failed.join("\n"),
        server.log()
    );
}

#[test]
fn the_echo_endpoint_is_off_unless_configured() {
    let dir = TempDir::new("autobahn-off");
    let server = echo_server(&dir, false);
    let mut stream = std::net::TcpStream::connect(&server.addr).expect("connect");
    write!(
        stream,
        "GET {ECHO_PATH} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        server.addr
    )
    .expect("send the upgrade");
    let mut status = [0u8; 12];
    stream.read_exact(&mut status).expect("a response");
    assert_eq!(&status, b"HTTP/1.1 404", "{}", String::from_utf8_lossy(&status));
}

// The suite runs on the echo endpoint; these check that what it found also
// holds where Phoenix clients connect.

#[tokio::test]
async fn a_phoenix_socket_answers_the_clients_close_frame() {
    let dir = TempDir::new("autobahn-close");
    let server = echo_server(&dir, false);
    let url = format!("ws://{}/socket/websocket?vsn=2.0.0", server.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("the socket connects");
    let goodbye = CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    };
    ws.send(Message::Close(Some(goodbye))).await.expect("send the close frame");
    match tokio::time::timeout(support::WAIT, ws.next()).await {
        Ok(Some(Ok(Message::Close(Some(frame))))) => assert_eq!(frame.code, CloseCode::Normal),
        other => panic!("expected the server's close frame (1000), got {other:?}"),
    }
}

#[test]
fn a_phoenix_socket_fails_a_broken_frame_with_1002() {
    let dir = TempDir::new("autobahn-broken");
    let server = echo_server(&dir, false);
    let mut stream = std::net::TcpStream::connect(&server.addr).expect("connect");
    stream.set_read_timeout(Some(support::WAIT)).expect("timeout");
    write!(
        stream,
        "GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        server.addr
    )
    .expect("send the upgrade");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("the handshake response");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    // An empty masked text frame with RSV1 set: no extension gives it a meaning.
    stream.write_all(&[0xC1, 0x80, 1, 2, 3, 4]).expect("send the frame");
    let mut close = [0u8; 4];
    stream.read_exact(&mut close).expect("a close frame");
    assert_eq!(close[0], 0x88, "a final close frame");
    assert_eq!(u16::from_be_bytes([close[2], close[3]]), 1002);
}
