//! ReportChannel, topics `report:*` (docs/demo-app.md), over real
//! sockets.

mod support;

use serde_json::{Value, json};
use support::{Client, Server};

const PROGRESS: [(u64, &str); 5] = [
    (0, "Starting report"),
    (25, "Collecting data"),
    (50, "Processing data"),
    (75, "Formatting report"),
    (100, "Report complete"),
];

async fn expect_progress(client: &mut Client, (percent, message): (u64, &str)) {
    assert_eq!(
        client.recv_text().await,
        format!(r#"["1",null,"report:x","report_progress",{{"message":"{message}","percent":{percent}}}]"#)
    );
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

#[tokio::test]
async fn generate_report_replies_started_then_pushes_progress_in_order_then_report_ready() {
    let server = Server::start();
    let mut client = server.client(42).await;
    client.send_text(r#"["1","1","report:x","phx_join",{}]"#).await;
    client.recv_text().await;
    client
        .send_text(r#"["1","2","report:x","generate_report",{"type":"sales","year":2024}]"#)
        .await;
    assert_eq!(
        client.recv_text().await,
        r#"["1","2","report:x","phx_reply",{"response":{"status":"started"},"status":"ok"}]"#
    );
    for step in PROGRESS {
        expect_progress(&mut client, step).await;
    }
    let ready = client.recv().await;
    let generated_at = ready[4]["report"]["generated_at"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        ready,
        json!(["1", null, "report:x", "report_ready", {"report": {
            "data": [{"quarter": 1, "total": 100}, {"quarter": 2, "total": 200},
                     {"quarter": 3, "total": 300}, {"quarter": 4, "total": 400}],
            "generated_at": generated_at, "rows": 4, "type": "sales", "year": 2024}}])
    );
    // ISO 8601 in UTC, to the second, about now.
    assert_eq!(generated_at.len(), 20, "{generated_at}");
    assert!(generated_at.ends_with('Z') && generated_at.as_bytes()[10] == b'T', "{generated_at}");
    let year: u64 = generated_at[..4].parse().expect("a year");
    let about_now = 1970 + now_s() / 31_556_952;
    assert!((about_now - 1..=about_now + 1).contains(&year), "{generated_at}");
    client.expect_quiet().await;
}

#[tokio::test]
async fn ping_is_answered_between_report_progress_pushes() {
    let server = Server::start();
    let mut client = server.client(42).await;
    client.send_text(r#"["1","1","report:x","phx_join",{}]"#).await;
    client.recv_text().await;
    client
        .send_text(r#"["1","2","report:x","generate_report",{"type":"sales","year":2024}]"#)
        .await;
    client.recv_text().await;
    expect_progress(&mut client, PROGRESS[0]).await;
    client
        .send_text(r#"["1","3","report:x","ping",{"during":"report"}]"#)
        .await;
    assert_eq!(
        client.recv_text().await,
        r#"["1","3","report:x","phx_reply",{"response":{"during":"report"},"status":"ok"}]"#
    );
    expect_progress(&mut client, PROGRESS[1]).await;
    // And again later in the run.
    client.send_text(r#"["1","4","report:x","ping","again"]"#).await;
    assert_eq!(
        client.recv_text().await,
        r#"["1","4","report:x","phx_reply",{"response":"again","status":"ok"}]"#
    );
    for step in &PROGRESS[2..] {
        expect_progress(&mut client, *step).await;
    }
    assert_eq!(client.recv().await[3], "report_ready");
}

#[tokio::test]
async fn two_reports_run_side_by_side_each_to_its_end() {
    let server = Server::start();
    let mut client = server.client(42).await;
    let join_ref = client.join_ok("report:x").await;
    client.push(&join_ref, "report:x", "generate_report", json!({"type": "sales", "year": 2023})).await;
    client.push(&join_ref, "report:x", "generate_report", json!({"type": "costs", "year": 2024})).await;
    let mut percents = Vec::new();
    let mut ready: Vec<Value> = Vec::new();
    while ready.len() < 2 {
        let frame = client.recv().await;
        match frame[3].as_str() {
            Some("phx_reply") => assert_eq!(frame[4]["response"], json!({"status": "started"})),
            Some("report_progress") => percents.push(frame[4]["percent"].clone()),
            Some("report_ready") => ready.push(frame[4]["report"].clone()),
            _ => panic!("unexpected {frame}"),
        }
    }
    assert_eq!(percents.len(), 10);
    let mut kinds: Vec<_> = ready.iter().map(|r| (r["type"].clone(), r["year"].clone())).collect();
    kinds.sort_by_key(|(kind, _)| kind.to_string());
    assert_eq!(kinds, [(json!("costs"), json!(2024)), (json!("sales"), json!(2023))]);
}

#[tokio::test]
async fn generate_report_with_a_request_of_the_wrong_shape_is_an_invalid_payload() {
    let server = Server::start();
    let mut client = server.client(42).await;
    let join_ref = client.join_ok("report:x").await;
    for payload in [json!({}), json!({"type": "sales"}), json!({"type": "sales", "year": "2024"}), json!({"type": 5, "year": 2024}), json!({"type": "sales", "year": 0})] {
        let reference = client.push(&join_ref, "report:x", "generate_report", payload.clone()).await;
        assert_eq!(
            client.recv().await,
            json!([join_ref, reference, "report:x", "phx_reply", {"response": {"reason": "invalid payload"}, "status": "error"}]),
            "{payload}"
        );
    }
    client.expect_quiet().await;
}
