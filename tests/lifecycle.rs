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
    assert!(log.contains("loading plugin `room`"), "{log}");
    assert!(log.contains("socket plugin `user_socket` version"), "{log}");
}

#[tokio::test]
async fn shutdown_runs_every_channels_terminate_with_reason_shutdown() {
    let mut server = Server::start_probe();
    let mut a = server.client(1).await;
    a.join_ok_probe("probe:bye").await;
    let (status, server) = tokio::task::spawn_blocking(move || {
        let status = server.terminate();
        (status, server)
    })
    .await
    .expect("join");
    assert_eq!(a.expect_close().await, Some(CloseCode::Restart));
    assert!(status.success());
    assert!(server.log().contains("probe terminate probe:bye shutdown"), "{}", server.log());
}

#[tokio::test]
async fn a_silent_socket_is_closed_after_the_idle_timeout_and_heartbeats_keep_one_open() {
    let config = support::PROBE_CONFIG.replace("[app]", "[limits]\nidle_timeout_ms = 600\n\n[app]");
    let server = Server::start_config(&config).expect("starts");
    let mut silent = server.client(1).await;
    let mut beating = server.client(2).await;
    let started = std::time::Instant::now();
    for i in 0..6 {
        beating
            .send_text(&format!(r#"[null,"{i}","phoenix","heartbeat",{{}}]"#))
            .await;
        beating.recv().await;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // Phoenix (Bandit) closes an idle socket with 1002; so does plume.
    assert_eq!(silent.expect_close().await, Some(CloseCode::Protocol));
    assert!(started.elapsed() >= std::time::Duration::from_millis(600));
    beating.send_text(r#"[null,"x","phoenix","heartbeat",{}]"#).await;
    assert_eq!(beating.recv().await[1], "x");
}

#[test]
fn a_restart_loads_compiled_plugins_from_the_compile_cache() {
    let cache = support::TempDir::new("compile-cache");
    let config = format!(
        "[runtime]\ncache_dir = \"{}\"\n\n{}",
        cache.0.display(),
        support::PROBE_CONFIG.replace("[runtime]\n", "")
    );
    let first = Server::start_config(&config).expect("starts");
    assert!(first.wait_for_log("route probe:*"), "{}", first.log());
    assert!(first.log().contains("channel plugin `room` version"), "{}", first.log());
    assert!(!first.log().contains("from the compile cache"), "{}", first.log());
    drop(first);

    let second = Server::start_config(&config).expect("starts");
    assert!(second.wait_for_log("route probe:*"), "{}", second.log());
    let log = second.log();
    assert!(log.contains("channel plugin `room` version"), "{log}");
    assert_eq!(log.matches("loaded from the compile cache").count(), 3, "{log}");
    drop(second);

    // A damaged entry is dropped with a warning and the plugin recompiled.
    for entry in std::fs::read_dir(&cache.0).expect("cache dir") {
        std::fs::write(entry.expect("entry").path(), b"garbage").expect("damage");
    }
    let third = Server::start_config(&config).expect("starts despite a damaged cache");
    assert!(third.wait_for_log("route probe:*"), "{}", third.log());
    assert!(third.log().contains("unusable compile-cache entry"), "{}", third.log());
}
