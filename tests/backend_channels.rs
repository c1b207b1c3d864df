//! The guide's channels that call the app's backend (CalculatorChannel,
//! ResilientAPIChannel, BatchChannel; `docs/backend-channels.md`), over
//! real sockets, against a real HTTP backend on loopback.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::backend::{Answer, Backend};
use support::{Client, Server};

/// The three channels, each with `backend_url` set to `backend`.
fn start(backend: &str, limits: &str) -> Server {
    let route = |name: &str| {
        format!(
            "[plugins.{name}]\npath = \"{{plugins}}/{name}.wasm\"\n\n[[routes]]\ntopic = \"{name}:*\"\nplugin = \"{name}\"\nconfig = {{ backend_url = \"{backend}\" }}\n\n"
        )
    };
    let config = format!(
        "[limits]\n{limits}\n\n[app]\nsocket_plugin = \"user_socket\"\nhttp_allow = [\"{backend}\"]\n\n[plugins.user_socket]\npath = \"{{plugins}}/user_socket.wasm\"\n\n{}{}{}",
        route("calculator"),
        route("resilient"),
        route("batch")
    );
    Server::start_config(&config).expect("the server starts")
}

async fn joined(server: &Server, topic: &str) -> Client {
    let mut client = server.client(1).await;
    client.send_text(&format!(r#"["1","1","{topic}","phx_join",{{}}]"#)).await;
    assert_eq!(client.recv_text().await, format!(r#"["1","1","{topic}","phx_reply",{{"response":{{}},"status":"ok"}}]"#));
    client
}

#[tokio::test]
async fn calculate_nisab_replies_85_grams_at_the_price() {
    let server = start("http://127.0.0.1:9", "");
    let mut client = joined(&server, "calculator:zakat").await;
    client.send_text(r#"["1","2","calculator:zakat","calculate_nisab",{"currency":"USD","gold_price":65.5}]"#).await;
    assert_eq!(
        client.recv_text().await,
        r#"["1","2","calculator:zakat","phx_reply",{"response":{"currency":"USD","nisab":5567.5},"status":"ok"}]"#
    );
    client.send_text(r#"["1","3","calculator:zakat","calculate_nisab",{"currency":"USD"}]"#).await;
    assert_eq!(
        client.recv_text().await,
        r#"["1","3","calculator:zakat","phx_reply",{"response":{"reason":"gold_price must be a positive number"},"status":"error"}]"#
    );
}

#[tokio::test]
async fn complex_calculation_replies_processing_then_pushes_the_backends_result() {
    let backend = Backend::start(|request| match request.json()["fail"].as_bool() {
        Some(true) => Answer::Json(500, json!({"error": "no"})),
        _ => Answer::After(Duration::from_millis(100), Box::new(Answer::Json(200, json!({"sum": 6})))),
    });
    let server = start(&backend.url(), "");
    let mut client = joined(&server, "calculator:1").await;
    client.send_text(r#"["1","2","calculator:1","complex_calculation",{"numbers":[1,2,3]}]"#).await;
    assert_eq!(
        client.recv_text().await,
        r#"["1","2","calculator:1","phx_reply",{"response":{"status":"processing"},"status":"ok"}]"#
    );
    assert_eq!(client.recv_text().await, r#"["1",null,"calculator:1","calculation_complete",{"result":{"sum":6}}]"#);
    let received = backend.wait_for(1);
    assert_eq!((received[0].method.as_str(), received[0].path.as_str()), ("POST", "/complex_calculation"));
    assert_eq!(received[0].json(), json!({"numbers": [1, 2, 3]}));

    client.send_text(r#"["1","3","calculator:1","complex_calculation",{"fail":true}]"#).await;
    client.recv_text().await;
    assert_eq!(client.recv_text().await, r#"["1",null,"calculator:1","calculation_failed",{"reason":"calculation error"}]"#);
}

#[tokio::test]
async fn resilient_calls_open_the_breaker_after_five_failures() {
    let backend = Backend::start(|request| match request.json()["ok"].as_bool() {
        Some(true) => Answer::Json(200, json!({"rates": {"usd": 1}})),
        _ => Answer::Json(503, json!({})),
    });
    let server = start(&backend.url(), "");
    let mut client = joined(&server, "resilient:1").await;
    client.send_text(r#"["1","2","resilient:1","external_api_call",{"ok":true}]"#).await;
    assert_eq!(
        client.recv_text().await,
        r#"["1","2","resilient:1","phx_reply",{"response":{"rates":{"usd":1}},"status":"ok"}]"#
    );
    for n in 3..8 {
        client.send_text(&format!(r#"["1","{n}","resilient:1","external_api_call",{{}}]"#)).await;
        let reply = client.recv().await;
        assert_eq!(reply[4], json!({"status": "error", "response": {"reason": "the service answered 503"}}), "{reply}");
    }
    assert_eq!(backend.received().len(), 6);
    client.send_text(r#"["1","8","resilient:1","external_api_call",{"ok":true}]"#).await;
    assert_eq!(
        client.recv_text().await,
        r#"["1","8","resilient:1","phx_reply",{"response":{"reason":"service temporarily unavailable"},"status":"error"}]"#
    );
    assert_eq!(backend.received().len(), 6, "an open breaker sends nothing");
}

#[tokio::test]
async fn a_batch_import_pushes_progress_then_completes() {
    let backend = Backend::start(|request| Answer::Json(200, json!({"imported": request.json()["items"].as_array().map(Vec::len)})));
    let server = start(&backend.url(), "");
    let mut client = joined(&server, "batch:1").await;
    let items: Vec<Value> = (1..=25).map(|n| json!({"row": n})).collect();
    client.send(json!(["1", "2", "batch:1", "import_batch", {"items": items}])).await;
    assert_eq!(
        client.recv_text().await,
        r#"["1","2","batch:1","phx_reply",{"response":{"status":"started","total":25},"status":"ok"}]"#
    );
    for (processed, percent) in [(10, 40), (20, 80), (25, 100)] {
        assert_eq!(
            client.recv().await,
            json!(["1", null, "batch:1", "batch_progress", {"processed": processed, "percent": percent, "total": 25}])
        );
    }
    assert_eq!(client.recv().await, json!(["1", null, "batch:1", "batch_complete", {"failed": 0, "imported": 25, "total": 25}]));
    let received = backend.received();
    assert_eq!(received.len(), 3);
    assert_eq!(received[2].json()["items"].as_array().map(Vec::len), Some(5));
}
