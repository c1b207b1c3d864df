//! Start-up and graceful shutdown.

mod support;

use support::Server;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test]
async fn sigterm_closes_every_socket_with_1012_and_exits_cleanly() {
    let mut server = Server::start();
    let mut a = server.client(42).await;
    let mut b = server.client(7).await;
    a.join_ok("room:lobby").await;
    b.join_ok("room:other").await;
    let status = tokio::task::spawn_blocking(move || {
        let status = server.terminate();
        (status, server)
    });
    assert_eq!(a.expect_close().await, Some(CloseCode::Restart));
    assert_eq!(b.expect_close().await, Some(CloseCode::Restart));
    let (status, server) = status.await.expect("join");
    assert!(status.success(), "exit status {status:?}\n{}", server.log());
}

#[test]
fn start_up_reports_what_it_loaded_and_where_it_listens() {
    let server = Server::start();
    assert!(server.wait_for_log("route room:* -> plugin `room`"), "{}", server.log());
    let log = server.log();
    assert!(log.contains("[1/2] compiling plugin `room`"), "{log}");
    assert!(log.contains("socket plugin `user_socket` version"), "{log}");
}
