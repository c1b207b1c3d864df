//! `plume-native` serves the room channel compiled into the server exactly
//! as plume serves it as WebAssembly: over a real WebSocket, the same pushes
//! on `room:lobby` get the same frames back, byte for byte. Both servers are
//! the `plume-native` binary, with and without `--wasm`, so the engine is
//! the only difference.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use plume_load::client::{self, Target, Ws};
use plume_load::compare::server::Server;
use plume_load::wire;
use tokio_tungstenite::tungstenite::Message;

const TOPIC: &str = "room:lobby";

/// How long one answer may take (the first call of a fresh server
/// instantiates a component).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

fn plugin_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    plume::build::build_plugins(&workspace).expect("the demo plugins build")
}

fn start(plugins: &Path, wasm: bool) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_plume-native"));
    command
        .args(["--bind", "127.0.0.1:0", "--no-build", "--plugin-dir"])
        .arg(plugins)
        .env("PLUME_LOG", "warn");
    if wasm {
        command.arg("--wasm");
    }
    Server::start(if wasm { "plume-native --wasm" } else { "plume-native" }, command)
        .expect("the server starts")
}

/// A frame as the client saw it: text as is, binary frames as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Frame {
    Text(String),
    Binary(Vec<u8>),
}

/// A V2 binary push (`kind` 0) of `payload` on the joined topic.
fn binary_push(reference: u64, event: &str, payload: &[u8]) -> Vec<u8> {
    let (join_ref, reference) = (wire::JOIN_REF.to_string(), reference.to_string());
    let mut frame = vec![0, join_ref.len() as u8, reference.len() as u8, TOPIC.len() as u8, event.len() as u8];
    for part in [join_ref.as_bytes(), reference.as_bytes(), TOPIC.as_bytes(), event.as_bytes(), payload] {
        frame.extend_from_slice(part);
    }
    frame
}

/// Reads frames until one is the answer to `reference` (its reply, or the
/// channel's `phx_error`), and returns them all.
async fn answer(ws: &mut Ws, reference: u64) -> Vec<Frame> {
    let mut frames = Vec::new();
    loop {
        let message = tokio::time::timeout(ANSWER_TIMEOUT, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no answer to push {reference}; frames so far: {frames:?}"))
            .expect("the socket stays open")
            .expect("a frame");
        let frame = match message {
            Message::Text(text) => Frame::Text(text.to_string()),
            Message::Binary(bytes) => Frame::Binary(bytes.to_vec()),
            _ => continue,
        };
        let done = match &frame {
            Frame::Text(text) => {
                wire::reply(text).is_some_and(|reply| reply.reference == reference) || text.contains("\"phx_error\"")
            }
            // A binary reply (kind 1) carries its ref as text after the join ref.
            Frame::Binary(bytes) => {
                bytes.first() == Some(&1) && {
                    let (join_ref_len, ref_len) = (usize::from(bytes[1]), usize::from(bytes[2]));
                    let start = 5 + join_ref_len;
                    bytes.get(start..start + ref_len) == Some(reference.to_string().as_bytes())
                }
            }
        };
        frames.push(frame);
        if done {
            return frames;
        }
    }
}

/// Joins `room:lobby` as user 42 and makes every kind of push the room
/// channel answers, `crash` last; returns every frame received.
async fn session(addr: std::net::SocketAddr) -> Vec<Frame> {
    let target = Target::new(&format!("ws://{addr}/socket/websocket"), 1, None).expect("a loopback target");
    let url = target.socket_url(42).expect("a token");
    let mut ws = target.open(0, &url).await.expect("the socket connects");
    client::join(&mut ws, TOPIC).await.expect("room:lobby joins");
    let pushes: [(&str, &str); 5] = [
        ("ping", r#"{"z": 1, "a": [1, 2]}"#),
        ("ping", "null"),
        ("new_msg", r#"{"body":"hello"}"#),
        ("new_msg", r#"{"body":5}"#),
        ("crash", "{}"),
    ];
    let mut frames = Vec::new();
    for (reference, (event, payload)) in (2..).zip(pushes) {
        if event == "crash" {
            // Before the crash: a binary ping is echoed as bytes.
            ws.send(Message::binary(binary_push(reference, "ping", &[0, 1, 255])))
                .await
                .expect("sent");
            frames.extend(answer(&mut ws, reference).await);
        }
        let reference = reference + 10;
        ws.send(Message::text(wire::push(Some(wire::JOIN_REF), reference, TOPIC, event, payload)))
            .await
            .expect("sent");
        frames.extend(answer(&mut ws, reference).await);
    }
    frames
}

fn serve_session(plugins: &Path, wasm: bool) -> Vec<Frame> {
    let server = start(plugins, wasm);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let frames = runtime.block_on(session(server.addr));
    server.stop().expect("the server stops");
    frames
}

#[test]
fn the_native_room_answers_ping_and_new_msg_as_the_webassembly_room_does() {
    let plugins = plugin_dir();
    let wasm = serve_session(&plugins, true);
    let native = serve_session(&plugins, false);
    assert_eq!(native, wasm, "native and WebAssembly answers differ");

    let text = |frame: &str| Frame::Text(frame.to_owned());
    for expected in [
        text(r#"["1","12","room:lobby","phx_reply",{"response":{"z": 1, "a": [1, 2]},"status":"ok"}]"#),
        text(r#"["1","13","room:lobby","phx_reply",{"response":null,"status":"ok"}]"#),
        text(r#"[null,null,"room:lobby","new_msg",{"body":"hello","user_id":42}]"#),
        text(r#"["1","14","room:lobby","phx_reply",{"response":{},"status":"ok"}]"#),
        text(r#"["1","15","room:lobby","phx_reply",{"response":{"reason":"invalid message"},"status":"error"}]"#),
        text(r#"["1","1","room:lobby","phx_error",{}]"#),
    ] {
        assert!(native.contains(&expected), "no {expected:?} among {native:?}");
    }
    let binary_reply = native
        .iter()
        .find_map(|frame| match frame {
            Frame::Binary(bytes) => Some(bytes),
            Frame::Text(_) => None,
        })
        .expect("the binary ping's reply is a binary frame");
    assert!(binary_reply.ends_with(&[0, 1, 255]), "{binary_reply:?}");
}
