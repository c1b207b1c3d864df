//! UserSocket (docs/demo-app.md) and Phoenix.Token over real sockets.

mod support;

use serde_json::{Value, json};
use support::{Client, Refused, Server};

fn status(result: Result<Client, Refused>) -> u16 {
    match result {
        Ok(_) => 101,
        Err(Refused::Status(code)) => code,
        Err(Refused::Other(e)) => panic!("connection failed oddly: {e}"),
    }
}

#[tokio::test]
async fn connect_with_a_valid_integer_token_is_accepted_and_the_user_is_user_n() {
    let server = Server::start();
    let mut client = server.client(42).await;
    let join_ref = client.join_ok("room:lobby").await;
    client.push(&join_ref, "room:lobby", "new_msg", json!({"body": "x"})).await;
    let broadcast = client.recv().await;
    assert_eq!(broadcast[4], json!({"body": "x", "user_id": 42}));
}

#[tokio::test]
async fn connect_with_a_user_map_token_carries_that_user() {
    let server = Server::start();
    let token = support::token("user socket", json!({"id": 1, "name": "alice", "role": "admin"}));
    let mut client = Client::connect(&server.ws_url(&format!("token={token}&vsn=2.0.0")))
        .await
        .expect("accepted");
    let join_ref = client.join_ok("room:lobby").await;
    client.push(&join_ref, "room:lobby", "new_msg", json!({"body": "x"})).await;
    assert_eq!(client.recv().await[4], json!({"body": "x", "user_id": 1}));
}

#[tokio::test]
async fn connect_without_a_token_is_refused_with_http_403() {
    let server = Server::start();
    assert_eq!(status(Client::connect(&server.ws_url("vsn=2.0.0")).await), 403);
}

#[tokio::test]
async fn connect_with_a_bad_token_is_refused_with_http_403() {
    let server = Server::start();
    let tampered = format!("{}x", support::user_token(42));
    let wrong_salt = support::token("player", json!(42));
    let wrong_secret = plume::token::Tokens::new(b"another-secret-another-secret-another-secret-another-secret-0123")
        .sign("user socket", &json!(42), 1_800_000_000_000, 86_400)
        .expect("sign");
    let expired = plume::token::Tokens::new(support::SECRET.as_bytes())
        .sign("user socket", &json!(42), 1_700_000_000_000, 86_400)
        .expect("sign");
    for token in [tampered, wrong_salt, wrong_secret, expired, "garbage".to_owned()] {
        let url = server.ws_url(&format!("token={token}&vsn=2.0.0"));
        assert_eq!(status(Client::connect(&url).await), 403, "token {token} must be refused");
    }
    // A refusal harms nobody: a good token still connects.
    server.client(42).await;
}

#[tokio::test]
async fn a_phoenix_signed_vector_token_verifies_in_plume_with_a_long_enough_max_age() {
    // The vectors were signed by a real Phoenix (plug_crypto) with the demo
    // secret; `plume token verify` must read them, with both atom encodings.
    let vectors: Value = serde_json::from_str(include_str!("../host/tests/fixtures/phoenix-tokens.json"))
        .expect("vectors parse");
    for vector in vectors["vectors"].as_array().expect("vectors") {
        for key in ["token", "token_minor2"] {
            let Some(token) = vector[key].as_str() else { continue };
            let output = std::process::Command::new(env!("CARGO_BIN_EXE_plume"))
                .args(["token", "verify", "--salt"])
                .arg(vector["salt"].as_str().expect("salt"))
                .args(["--max-age", "9999999999", "--secret"])
                .arg(vectors["secret_key_base"].as_str().expect("secret"))
                .arg(token)
                .output()
                .expect("run plume token verify");
            assert!(output.status.success(), "{token}: {}", String::from_utf8_lossy(&output.stderr));
            let data: Value = serde_json::from_slice(&output.stdout).expect("JSON output");
            assert_eq!(data, vector["data"], "{}", vector["note"]);
        }
    }
}

#[tokio::test]
async fn plume_token_sign_makes_a_token_the_server_accepts() {
    let server = Server::start();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_plume"))
        .args(["token", "sign", "--salt", "user socket", "--secret", support::SECRET, "77"])
        .output()
        .expect("run plume token sign");
    assert!(output.status.success());
    let token = String::from_utf8(output.stdout).expect("utf-8");
    let mut client = Client::connect(&server.ws_url(&format!("token={}&vsn=2.0.0", token.trim())))
        .await
        .expect("accepted");
    let join_ref = client.join_ok("room:lobby").await;
    client.push(&join_ref, "room:lobby", "new_msg", json!({"body": "x"})).await;
    assert_eq!(client.recv().await[4], json!({"body": "x", "user_id": 77}));

    let expired = std::process::Command::new(env!("CARGO_BIN_EXE_plume"))
        .args(["token", "verify", "--salt", "user socket", "--max-age", "0", "--secret", support::SECRET])
        .arg(token.trim())
        .output()
        .expect("run plume token verify");
    assert!(!expired.status.success());
    assert!(String::from_utf8_lossy(&expired.stderr).contains("expired"));
}

#[tokio::test]
async fn an_unknown_serializer_version_is_refused() {
    let server = Server::start();
    let url = server.ws_url(&format!("token={}&vsn=9.0.0", support::user_token(1)));
    assert_eq!(status(Client::connect(&url).await), 403);
}
