//! AdminChannel (`admin:*`) through the plume-test harness: the role
//! check, the timer-driven dashboard on the virtual clock, and bans.

use std::time::Duration;

use plume_test::{Channel, Harness, Socket, json};

/// The admin plugin with a one-second dashboard period, behind the demo's
/// socket plugin.
fn harness() -> Harness {
    Harness::builder()
        .route("admin:*", "admin", json!({"update_ms": 1000}))
        .socket("user_socket")
        .build()
}

fn connect(harness: &Harness, user: plume_test::Value) -> Socket {
    let token = harness.sign_token("user socket", user);
    harness.connect(json!({"token": token})).expect("a valid token connects")
}

fn admin(harness: &Harness) -> Socket {
    connect(harness, json!({"id": 1, "name": "root", "role": "admin"}))
}

fn join(socket: &Socket, topic: &str) -> Channel {
    socket.subscribe_and_join(topic, json!({})).expect("an admin joins").1
}

#[test]
fn only_admins_may_join() {
    let harness = harness();
    let user = connect(&harness, json!(2));
    for topic in ["admin:dashboard", "admin:users"] {
        assert_eq!(user.subscribe_and_join(topic, json!({})).err(), Some(json!({"reason": "unauthorized"})));
    }
}

#[test]
fn the_dashboard_pushes_its_data_then_an_update_every_period() {
    let harness = harness();
    let _visitor = connect(&harness, json!(2));
    let dashboard = join(&admin(&harness), "admin:dashboard");
    dashboard.assert_push(
        "dashboard_data",
        json!({"total_connections": 2, "total_channels": 1, "active_users": 2, "plugins": ["admin"]}),
    );
    dashboard.refute_push("dashboard_update", json!({}));

    harness.advance(Duration::from_millis(999));
    dashboard.refute_push("dashboard_update", json!({}));
    harness.advance(Duration::from_millis(1));
    dashboard.assert_push("dashboard_update", json!({"total_connections": 2}));

    harness.advance(Duration::from_millis(3000));
    for _ in 0..3 {
        dashboard.assert_push("dashboard_update", json!({}));
    }
    dashboard.refute_push("dashboard_update", json!({}));
}

#[test]
fn the_dashboard_stops_updating_once_left() {
    let harness = harness();
    let dashboard = join(&admin(&harness), "admin:dashboard");
    let left = dashboard.leave();
    dashboard.assert_reply(left, "ok", json!({}));
    harness.advance(Duration::from_secs(10));
    dashboard.refute_push("dashboard_update", json!({}));
}

#[test]
fn ban_user_disconnects_the_user_and_refuses_their_later_connects() {
    let harness = harness();
    let victim = connect(&harness, json!(7));
    let users = join(&admin(&harness), "admin:users");

    let banned = users.push("ban_user", json!({"user_id": 7}));
    users.assert_reply(banned, "ok", json!({"status": "banned"}));
    users.assert_broadcast("user_banned", json!({"user_id": 7, "banned_by": 1}));
    assert_eq!(victim.closed_by_server().map(|(code, _)| code), Some(1011));

    let token = harness.sign_token("user socket", json!(7));
    let refused = harness.connect(json!({"token": token})).err();
    assert!(refused.is_some_and(|why| why.contains("banned")));
}

#[test]
fn get_user_details_knows_connected_users_only() {
    let harness = harness();
    let _ann = connect(&harness, json!(5));
    let users = join(&admin(&harness), "admin:users");
    let known = users.push("get_user_details", json!({"user_id": 5}));
    users.assert_reply(known, "ok", json!({"id": 5, "name": "user-5", "role": "user", "connection_count": 1}));
    let unknown = users.push("get_user_details", json!({"user_id": 99}));
    users.assert_reply(unknown, "error", json!({"reason": "user_not_found"}));
}
