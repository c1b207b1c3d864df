//! AdminChannel, topics `admin:*` (docs/demo-app.md), over real sockets.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Client, Refused, Server};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// The recorded run's admin: user 1, alice.
fn alice() -> Value {
    json!({"id": 1, "name": "alice", "role": "admin"})
}

async fn connect(server: &Server, user: Value) -> Client {
    let token = support::token("user socket", user);
    Client::connect(&server.ws_url(&format!("token={token}&vsn=2.0.0")))
        .await
        .expect("the connection is accepted")
}

fn status(result: Result<Client, Refused>) -> u16 {
    match result {
        Ok(_) => 101,
        Err(Refused::Status(code)) => code,
        Err(Refused::Other(e)) => panic!("connection failed oddly: {e}"),
    }
}

/// The demo app with the admin route configured as `config` (a TOML
/// inline table).
fn server_with_admin_config(config: &str) -> Result<Server, String> {
    Server::start_config(&format!(
        r#"
[app]
socket_plugin = "user_socket"

[plugins.user_socket]
path = "{{plugins}}/user_socket.wasm"

[plugins.admin]
path = "{{plugins}}/admin.wasm"

[[routes]]
topic = "admin:*"
plugin = "admin"
config = {config}
"#
    ))
}

#[tokio::test]
async fn join_by_a_user_without_the_admin_role_is_unauthorized() {
    let server = Server::start();
    let mut ann = connect(&server, json!({"id": 10, "name": "ann", "role": "user"})).await;
    let mut plain = server.client(42).await;
    for client in [&mut ann, &mut plain] {
        for topic in ["admin:dashboard", "admin:users"] {
            client.send(json!(["1", "1", topic, "phx_join", {}])).await;
            assert_eq!(
                client.recv_text().await,
                format!(r#"["1","1","{topic}","phx_reply",{{"response":{{"reason":"unauthorized"}},"status":"error"}}]"#)
            );
        }
        client.expect_quiet().await;
    }
}

#[tokio::test]
async fn joining_admin_dashboard_pushes_dashboard_data_from_the_live_figures() {
    let server = Server::start();
    let mut ann = connect(&server, json!({"id": 10, "name": "ann", "role": "user"})).await;
    let mut admin = connect(&server, alice()).await;
    ann.send(json!(["1", "1", "admin:dashboard", "phx_join", {}])).await;
    ann.recv().await;
    admin.send(json!(["1", "1", "admin:dashboard", "phx_join", {}])).await;
    assert_eq!(
        admin.recv_text().await,
        r#"["1","1","admin:dashboard","phx_reply",{"response":{},"status":"ok"}]"#
    );
    assert_eq!(
        admin.recv_text().await,
        r#"["1",null,"admin:dashboard","dashboard_data",{"active_users":2,"plugins":["room","chat","game","admin","donations","collab","limited","report"],"total_channels":1,"total_connections":2}]"#
    );
    // The figures are live: another socket of ann and a channel of hers count.
    let mut ann_tab = connect(&server, json!({"id": 10, "name": "ann", "role": "user"})).await;
    ann_tab.join_ok("room:lobby").await;
    admin.send(json!(["2", "2", "admin:dashboard", "phx_join", {}])).await;
    admin.recv().await;
    admin.recv().await; // phx_close of the first dashboard channel
    let data = admin.recv().await;
    assert_eq!(data[3], "dashboard_data", "{data}");
    assert_eq!(data[4]["total_connections"], 3);
    assert_eq!(data[4]["active_users"], 2);
    assert_eq!(data[4]["total_channels"], 2);
    // With the default update_ms, the next update is 30 s away.
    admin.expect_quiet().await;
}

#[tokio::test]
async fn dashboard_update_follows_every_update_ms_with_the_same_shape() {
    let server = server_with_admin_config("{ update_ms = 150 }").expect("starts");
    let mut admin = connect(&server, alice()).await;
    let join_ref = admin.join_ok("admin:dashboard").await;
    let started = Instant::now();
    let data = admin.recv().await;
    assert_eq!(data[3], "dashboard_data");
    let mut previous = Instant::now();
    for _ in 0..3 {
        let update = admin.recv().await;
        let gap = previous.elapsed();
        previous = Instant::now();
        assert_eq!(update[0], json!(join_ref));
        assert_eq!(update[3], "dashboard_update");
        assert_eq!(
            update[4],
            json!({"active_users": 1, "plugins": ["admin"], "total_channels": 1, "total_connections": 1})
        );
        assert!(gap >= Duration::from_millis(100), "updates come every update_ms, not faster: {gap:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

#[tokio::test]
async fn an_update_ms_of_the_wrong_type_or_range_refuses_the_dashboard_with_invalid_payload() {
    for config in [r#"{ update_ms = "fast" }"#, "{ update_ms = 0 }", "{ update_ms = -5 }"] {
        let server = server_with_admin_config(config).expect("starts");
        let mut admin = connect(&server, alice()).await;
        let (join_ref, reply) = admin.join("admin:dashboard", json!({})).await;
        assert_eq!(
            reply,
            json!([join_ref, join_ref, "admin:dashboard", "phx_reply", {"response": {"reason": "invalid payload"}, "status": "error"}]),
            "{config}"
        );
        assert!(server.wait_for_log("update_ms"), "the log says what is wrong: {}", server.log());
        admin.join_ok("admin:users").await;
    }
}

#[tokio::test]
async fn ban_user_replies_banned_broadcasts_user_banned_and_closes_every_socket_of_the_user() {
    let server = Server::start();
    let mut admin = connect(&server, alice()).await;
    let mut other_admin = connect(&server, json!({"id": 2, "name": "bea", "role": "admin"})).await;
    let mut u99 = server.client(99).await;
    let mut u99_tab = server.client(99).await;
    let mut bystander = server.client(7).await;
    u99.join_ok("room:lobby").await;
    bystander.join_ok("room:lobby").await;
    let join_ref = admin.join_ok("admin:users").await;
    other_admin.join_ok("admin:users").await;

    admin.send(json!([join_ref, "3", "admin:users", "ban_user", {"user_id": 99}])).await;
    let banned = r#"[null,null,"admin:users","user_banned",{"banned_by":1,"user_id":99}]"#;
    assert_eq!(admin.recv_text().await, banned);
    assert_eq!(
        admin.recv_text().await,
        format!(r#"["{join_ref}","3","admin:users","phx_reply",{{"response":{{"status":"banned"}},"status":"ok"}}]"#)
    );
    assert_eq!(other_admin.recv_text().await, banned);
    // Phoenix closes a disconnected socket with 1011; so does plume.
    assert_eq!(u99.expect_close().await, Some(CloseCode::Error));
    assert_eq!(u99_tab.expect_close().await, Some(CloseCode::Error));
    // Nobody else is touched.
    bystander.expect_quiet().await;
    bystander.join_ok("room:other").await;
}

#[tokio::test]
async fn a_banned_user_s_later_connects_are_refused_with_http_403() {
    let server = Server::start();
    let mut admin = connect(&server, alice()).await;
    let join_ref = admin.join_ok("admin:users").await;
    let mut u99 = server.client(99).await;
    admin.push(&join_ref, "admin:users", "ban_user", json!({"user_id": 99})).await;
    assert_eq!(admin.recv().await[3], "user_banned");
    assert_eq!(admin.recv().await[4]["response"], json!({"status": "banned"}));
    u99.expect_close().await;
    let url = server.ws_url(&format!("token={}&vsn=2.0.0", support::user_token(99)));
    assert_eq!(status(Client::connect(&url).await), 403);
    // A user map token for the same id is the same user.
    let token = support::token("user socket", json!({"id": 99, "name": "x", "role": "admin"}));
    assert_eq!(status(Client::connect(&server.ws_url(&format!("token={token}&vsn=2.0.0"))).await), 403);
    // A user never connected can be banned ahead of time.
    admin.push(&join_ref, "admin:users", "ban_user", json!({"user_id": 5})).await;
    assert_eq!(admin.recv().await[3], "user_banned");
    assert_eq!(admin.recv().await[4]["response"], json!({"status": "banned"}));
    let url = server.ws_url(&format!("token={}&vsn=2.0.0", support::user_token(5)));
    assert_eq!(status(Client::connect(&url).await), 403);
    server.client(6).await;
}

#[tokio::test]
async fn ban_user_with_a_user_id_that_is_not_an_integer_is_an_invalid_payload_and_bans_nobody() {
    let server = Server::start();
    let mut admin = connect(&server, alice()).await;
    let join_ref = admin.join_ok("admin:users").await;
    let mut u99 = server.client(99).await;
    for payload in [json!({"user_id": "99"}), json!({"user_id": 99.5}), json!({}), json!(99), json!({"user_id": null})] {
        let reference = admin.push(&join_ref, "admin:users", "ban_user", payload.clone()).await;
        assert_eq!(
            admin.recv().await,
            json!([join_ref, reference, "admin:users", "phx_reply", {"response": {"reason": "invalid payload"}, "status": "error"}]),
            "{payload}"
        );
    }
    u99.expect_quiet().await;
    server.client(99).await;
}

#[tokio::test]
async fn get_user_details_replies_the_user_and_their_connection_count() {
    let server = Server::start();
    let mut admin = connect(&server, alice()).await;
    let u99 = server.client(99).await;
    admin.send(json!(["1", "1", "admin:users", "phx_join", {}])).await;
    admin.recv().await;
    admin.send(json!(["1", "2", "admin:users", "get_user_details", {"user_id": 99}])).await;
    assert_eq!(
        admin.recv_text().await,
        r#"["1","2","admin:users","phx_reply",{"response":{"connection_count":1,"id":99,"name":"user-99","role":"user"},"status":"ok"}]"#
    );
    admin.send(json!(["1", "3", "admin:users", "get_user_details", {"user_id": 1}])).await;
    assert_eq!(
        admin.recv_text().await,
        r#"["1","3","admin:users","phx_reply",{"response":{"connection_count":1,"id":1,"name":"alice","role":"admin"},"status":"ok"}]"#
    );

    // The count follows the user's sockets, down to 0 once they are gone.
    let u99_tab = server.client(99).await;
    let details = |reference: &str| json!(["1", reference, "admin:users", "get_user_details", {"user_id": 99}]);
    admin.send(details("4")).await;
    assert_eq!(admin.recv().await[4]["response"]["connection_count"], 2);
    drop(u99);
    drop(u99_tab);
    let mut count = Value::Null;
    for attempt in 0..50 {
        admin.send(details(&format!("5{attempt}"))).await;
        count = admin.recv().await[4]["response"]["connection_count"].clone();
        if count == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(count, 0, "a user who left is still known, with no sockets");
}

#[tokio::test]
async fn get_user_details_of_a_user_who_never_connected_is_user_not_found() {
    let server = Server::start();
    let mut admin = connect(&server, alice()).await;
    admin.send(json!(["2", "2", "admin:users", "phx_join", {}])).await;
    admin.recv().await;
    admin.send(json!(["2", "3", "admin:users", "get_user_details", {"user_id": 123456}])).await;
    assert_eq!(
        admin.recv_text().await,
        r#"["2","3","admin:users","phx_reply",{"response":{"reason":"user_not_found"},"status":"error"}]"#
    );
    for payload in [json!({"user_id": "1"}), json!({}), json!("1")] {
        admin.send(json!(["2", "4", "admin:users", "get_user_details", payload])).await;
        assert_eq!(
            admin.recv_text().await,
            r#"["2","4","admin:users","phx_reply",{"response":{"reason":"invalid payload"},"status":"error"}]"#
        );
    }
}
