//! DonationChannel (`donations:*`) through the plume-test harness: amount
//! validation, totals, and the organizer-only donor name.

use plume_test::{Channel, Harness, Socket, json};

fn harness() -> Harness {
    Harness::builder().channel("donations").socket("user_socket").build()
}

fn user(harness: &Harness, id: i64) -> Socket {
    let token = harness.sign_token("user socket", json!(id));
    harness.connect(json!({"token": token})).expect("a valid token connects")
}

fn campaign(socket: &Socket, id: &str) -> Channel {
    socket
        .subscribe_and_join(&format!("donations:campaign:{id}"), json!({}))
        .expect("campaigns are open")
        .1
}

#[test]
fn the_lobby_and_campaigns_are_open_and_a_campaign_pushes_its_state() {
    let harness = harness();
    let socket = user(&harness, 1);
    assert!(socket.subscribe_and_join("donations:lobby", json!({})).is_ok());
    let campaign = campaign(&socket, "7");
    campaign.assert_push("campaign_state", json!({"campaign": {"id": "7"}}));
}

#[test]
fn an_amount_that_is_not_a_positive_decimal_with_two_places_is_refused() {
    let harness = harness();
    let channel = campaign(&user(&harness, 1), "1");
    let refused = json!({"errors": {"amount": ["must be greater than 0"]}});
    for amount in [json!("0"), json!("-5"), json!("1.234"), json!("abc"), json!(""), json!(10)] {
        let sent = channel.push("new_donation", json!({"amount": amount, "donor_name": "ann"}));
        channel.assert_reply(sent, "error", refused.clone());
    }
    channel.refute_broadcast("donation_created", json!({}));
}

#[test]
fn a_donation_is_replied_and_broadcast_with_the_new_total() {
    let harness = harness();
    let channel = campaign(&user(&harness, 1), "2");
    let sent = channel.push("new_donation", json!({"amount": "10.5", "donor_name": "ann"}));
    let reply = channel.assert_reply(sent, "ok", json!({}));
    assert!(reply["donation_id"].is_string() || reply["donation_id"].is_number(), "{reply}");
    channel.assert_broadcast(
        "donation_created",
        json!({"donation": {"amount": "10.50", "donor_name": "ann"}, "new_total": "10.50"}),
    );
    channel.push("new_donation", json!({"amount": "0.25", "donor_name": "ann"}));
    channel.assert_broadcast("donation_created", json!({"new_total": "10.75"}));
}

#[test]
fn only_the_organizer_sees_the_donor_name() {
    let harness = harness();
    let organizer = campaign(&user(&harness, 1), "3");
    let supporter = campaign(&user(&harness, 2), "3");
    supporter.push("new_donation", json!({"amount": "5", "donor_name": "bob"}));
    organizer.assert_push("donation_created", json!({"donation": {"donor_name": "bob"}}));
    supporter.assert_push("donation_created", json!({"donation": {"donor_name": "Anonymous"}}));
}

#[test]
fn only_the_organizer_may_update_the_goal() {
    let harness = harness();
    let organizer = campaign(&user(&harness, 1), "4");
    let supporter = campaign(&user(&harness, 2), "4");
    let denied = supporter.push("update_goal", json!({"new_goal": "500"}));
    supporter.assert_reply(denied, "error", json!({"reason": "unauthorized"}));
    let updated = organizer.push("update_goal", json!({"new_goal": "500"}));
    organizer.assert_reply(updated, "ok", json!({"campaign": {}}));
    supporter.assert_push("goal_updated", json!({}));
}
