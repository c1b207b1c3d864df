//! DonationChannel, topics `donations:*` (docs/demo-app.md), over
//! real sockets.
//!
//! Every test runs twice, with the same assertions: against the demo app's
//! DonationChannel (Rust, `plugins/donations`) as `rust::<test>`, and
//! against the same channel in Python (`plugins/donations-py`, built by
//! componentize-py with the SDK in `sdk/python`) as `py::<test>`.
//!
//! Joining a campaign tracks the user in presence once the server has it;
//! these tests read past `presence_diff` and `presence_state` frames, so they
//! hold with presence and without.

mod support;

use futures_util::future::join_all;
use serde_json::{Value, json};
use support::{Client, Server};

/// The DonationChannel that serves `donations:*` in a test.
#[derive(Debug, Clone, Copy)]
enum Donations {
    /// The demo app, as `plume serve` runs it.
    Rust,
    /// The demo app with `donations:*` routed to `donations-py.wasm`.
    Py,
}

/// The demo app's socket plugin, with the Python donations channel and the
/// runtime's default limits (memory, deadline, pool).
const DONATIONS_PY_CONFIG: &str = r#"
[app]
socket_plugin = "user_socket"

[plugins.user_socket]
path = "{plugins}/user_socket.wasm"

[plugins.donations]
path = "{plugins}/donations-py.wasm"

[[routes]]
topic = "donations:*"
plugin = "donations"
"#;

impl Donations {
    fn start(self) -> Server {
        match self {
            Donations::Rust => Server::start(),
            Donations::Py => {
                let wasm = support::plugin_dir().join("donations-py.wasm");
                assert!(
                    wasm.is_file(),
                    "{} was not built: plume build needs python3 with its venv module (python3-venv) for plugins/donations-py (see its warning above)",
                    wasm.display()
                );
                Server::start_config(DONATIONS_PY_CONFIG)
                    .unwrap_or_else(|log| panic!("the Python donations server did not start:\n{log}"))
            }
        }
    }
}

/// Defines each test once, as a function of the [`Donations`] channel it
/// runs against, and registers it for both: `rust::<name>` and `py::<name>`.
macro_rules! donation_tests {
    ($(async fn $name:ident($channel:ident) $body:block)*) => {
        $(async fn $name($channel: Donations) $body)*

        mod rust {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Donations::Rust).await;
            })*
        }

        mod py {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Donations::Py).await;
            })*
        }
    };
}

const TOPIC: &str = "donations:campaign:c1795305027169";

fn is_presence(frame: &Value) -> bool {
    matches!(frame[3].as_str(), Some("presence_diff" | "presence_state"))
}

/// The next frame that is not about presence, as text.
async fn recv_text(client: &mut Client) -> String {
    loop {
        let text = client.recv_text().await;
        let frame: Value = serde_json::from_str(&text).expect("a JSON frame");
        if !is_presence(&frame) {
            return text;
        }
    }
}

/// The next frame that is not about presence.
async fn recv(client: &mut Client) -> Value {
    serde_json::from_str(&recv_text(client).await).expect("a JSON frame")
}

/// Nothing but presence frames was queued for `client` before now: the
/// heartbeat barrier (see `support`), reading past presence frames, whose
/// order against other frames the spec leaves open.
async fn expect_quiet(client: &mut Client) {
    for _ in 0..2 {
        let reference = client.next_ref();
        client.send(json!([null, reference, "phoenix", "heartbeat", {}])).await;
        loop {
            let frame = client.recv().await;
            if frame[2] == "phoenix" && frame[1] == json!(reference) {
                assert_eq!(frame[4], json!({"response": {}, "status": "ok"}), "{frame}");
                break;
            }
            assert!(is_presence(&frame), "expected no frame, got {frame}");
        }
    }
}

/// A user map for the socket token.
fn user(id: i64, name: &str) -> Value {
    json!({"id": id, "name": name, "role": "user"})
}

async fn connect(server: &Server, user: Value) -> Client {
    let token = support::token("user socket", user);
    Client::connect(&server.ws_url(&format!("token={token}&vsn=2.0.0")))
        .await
        .expect("the connection is accepted")
}

/// Joins `topic`, checks the reply is ok `{}`, reads `campaign_state` and
/// returns the join ref with the campaign.
async fn join_campaign(client: &mut Client, topic: &str) -> (String, Value) {
    let join_ref = client.join_ok(topic).await;
    let state = recv(client).await;
    assert_eq!(&state[0], &json!(join_ref), "{state}");
    assert_eq!(state[3], "campaign_state", "{state}");
    (join_ref, state[4]["campaign"].clone())
}

async fn donate(client: &mut Client, join_ref: &str, amount: Value, donor: &str) -> String {
    client
        .push(join_ref, TOPIC, "new_donation", json!({"amount": amount, "donor_name": donor}))
        .await
}

/// The reply to `reference` and the donor's own `donation_created`, in
/// whichever order they come.
async fn reply_and_own_push(client: &mut Client, reference: &str) -> (Value, Value) {
    let (first, second) = (recv(client).await, recv(client).await);
    if first[1] == json!(reference) { (first, second) } else { (second, first) }
}

donation_tests! {
    async fn join_donations_lobby_is_ok(channel) {
        let server = channel.start();
        let mut client = connect(&server, user(10, "ann")).await;
        client.send(json!(["1", "1", "donations:lobby", "phx_join", {}])).await;
        assert_eq!(
            client.recv_text().await,
            r#"["1","1","donations:lobby","phx_reply",{"response":{},"status":"ok"}]"#
        );
        expect_quiet(&mut client).await;
    }

    async fn join_a_campaign_replies_ok_then_pushes_campaign_state(channel) {
        let server = channel.start();
        let mut ann = connect(&server, user(10, "ann")).await;
        ann.send(json!(["2", "2", TOPIC, "phx_join", {}])).await;
        assert_eq!(
            ann.recv_text().await,
            r#"["2","2","donations:campaign:c1795305027169","phx_reply",{"response":{},"status":"ok"}]"#
        );
        assert_eq!(
            recv_text(&mut ann).await,
            r#"["2",null,"donations:campaign:c1795305027169","campaign_state",{"campaign":{"goal":"1000.00","id":"c1795305027169","total":"0.00"}}]"#
        );
    }

    async fn join_a_campaign_tracks_the_user_in_presence_when_the_server_has_it(channel) {
        let server = channel.start();
        let mut ann = connect(&server, user(10, "ann")).await;
        let join_ref = ann.join_ok(TOPIC).await;
        // ann is tracked under her id with her name: the joining client gets
        // `presence_state` and her own join's `presence_diff` (in either
        // order), around `campaign_state`.
        let (mut state, mut diff, mut campaign) = (None, None, None);
        while state.is_none() || diff.is_none() || campaign.is_none() {
            let frame = ann.recv().await;
            let slot = match frame[3].as_str() {
                Some("presence_state") => &mut state,
                Some("presence_diff") => &mut diff,
                Some("campaign_state") => &mut campaign,
                _ => panic!("unexpected {frame}"),
            };
            assert!(slot.replace(frame).is_none(), "a frame came twice");
        }
        let state = state.expect("presence_state");
        assert_eq!(state[0], json!(join_ref), "{state}");
        let metas = &state[4]["10"]["metas"];
        assert_eq!(metas.as_array().map(Vec::len), Some(1), "{state}");
        assert_eq!(metas[0]["name"], "ann", "{state}");
        assert!(metas[0]["online_at"].is_u64(), "{state}");
        let diff = diff.expect("presence_diff");
        assert_eq!(diff[4]["joins"]["10"]["metas"][0]["name"], "ann", "{diff}");
        assert_eq!(diff[4]["leaves"], json!({}), "{diff}");
        expect_quiet(&mut ann).await;
        let reference = donate(&mut ann, &join_ref, json!("1"), "ann").await;
        let (reply, _) = reply_and_own_push(&mut ann, &reference).await;
        assert_eq!(reply[4]["status"], "ok", "{reply}");
    }

    async fn new_donation_replies_the_donation_id_and_broadcasts_donation_created_with_the_new_total(channel) {
        let server = channel.start();
        let mut ann = connect(&server, user(10, "ann")).await;
        let (join_ref, _) = join_campaign(&mut ann, TOPIC).await;
        let donations = [
            ("25.5", "25.50", "25.50"),
            ("0.10", "0.10", "25.60"),
            ("0.2", "0.20", "25.80"),
            ("1000", "1000.00", "1025.80"),
        ];
        for (n, (amount, rendered, total)) in donations.into_iter().enumerate() {
            let reference = donate(&mut ann, &join_ref, json!(amount), "Ann A").await;
            let (reply, created) = reply_and_own_push(&mut ann, &reference).await;
            let id = (n + 1).to_string();
            assert_eq!(
                reply,
                json!([join_ref, reference, TOPIC, "phx_reply", {"response": {"donation_id": id}, "status": "ok"}])
            );
            assert_eq!(
                created,
                json!([join_ref, null, TOPIC, "donation_created",
                       {"donation": {"amount": rendered, "donor_name": "Ann A", "id": id}, "new_total": total}])
            );
        }
    }

    async fn the_organizer_and_a_donor_receive_different_donation_created_payloads_from_one_broadcast(channel) {
        let server = channel.start();
        let mut organizer = connect(&server, user(10, "ann")).await;
        let mut donor = connect(&server, user(11, "bob")).await;
        let mut watcher = connect(&server, user(12, "cy")).await;
        let (organizer_ref, _) = join_campaign(&mut organizer, TOPIC).await;
        let (donor_ref, _) = join_campaign(&mut donor, TOPIC).await;
        let (watcher_ref, _) = join_campaign(&mut watcher, TOPIC).await;

        let reference = donate(&mut donor, &donor_ref, json!("25.5"), "Bob B").await;
        let (reply, own) = reply_and_own_push(&mut donor, &reference).await;
        assert_eq!(reply[4]["response"], json!({"donation_id": "1"}));
        let anonymous = |join_ref: &str| {
            format!(
                r#"["{join_ref}",null,"donations:campaign:c1795305027169","donation_created",{{"donation":{{"amount":"25.50","donor_name":"Anonymous","id":"1"}},"new_total":"25.50"}}]"#
            )
        };
        assert_eq!(own.to_string(), anonymous(&donor_ref));
        assert_eq!(recv_text(&mut watcher).await, anonymous(&watcher_ref));
        assert_eq!(
            recv_text(&mut organizer).await,
            format!(
                r#"["{organizer_ref}",null,"donations:campaign:c1795305027169","donation_created",{{"donation":{{"amount":"25.50","donor_name":"Bob B","id":"1"}},"new_total":"25.50"}}]"#
            )
        );

        // An event that is not intercepted goes out as the broadcast itself,
        // encoded once: no join ref, the same bytes for everyone.
        organizer.push(&organizer_ref, TOPIC, "update_goal", json!({"new_goal": "5000"})).await;
        let goal = r#"[null,null,"donations:campaign:c1795305027169","goal_updated",{"new_goal":"5000.00"}]"#;
        assert_eq!(recv_text(&mut organizer).await, goal);
        assert_eq!(recv_text(&mut donor).await, goal);
        assert_eq!(recv_text(&mut watcher).await, goal);
    }

    async fn an_amount_that_is_not_a_positive_decimal_with_two_places_at_most_is_refused_and_changes_no_total(channel) {
        let server = channel.start();
        let mut ann = connect(&server, user(10, "ann")).await;
        let mut bob = connect(&server, user(11, "bob")).await;
        join_campaign(&mut ann, TOPIC).await;
        let (bob_ref, _) = join_campaign(&mut bob, TOPIC).await;
        for amount in [json!("0"), json!("1.234"), json!("-5"), json!("abc"), json!(""), json!(10), json!(2.5), json!(null)] {
            let reference = donate(&mut bob, &bob_ref, amount.clone(), "x").await;
            assert_eq!(
                recv(&mut bob).await,
                json!([bob_ref, reference, TOPIC, "phx_reply",
                       {"response": {"errors": {"amount": ["must be greater than 0"]}}, "status": "error"}]),
                "{amount}"
            );
        }
        let reference = bob.push(&bob_ref, TOPIC, "new_donation", json!({"donor_name": "x"})).await;
        assert_eq!(recv(&mut bob).await[1], json!(reference));
        expect_quiet(&mut ann).await;

        let reference = donate(&mut bob, &bob_ref, json!("0.01"), "x").await;
        let (reply, created) = reply_and_own_push(&mut bob, &reference).await;
        assert_eq!(reply[4]["response"], json!({"donation_id": "1"}), "the refused ones took no id");
        assert_eq!(created[4]["new_total"], "0.01");
        assert_eq!(recv(&mut ann).await[4]["new_total"], "0.01");
    }

    async fn a_donation_without_a_text_donor_name_is_an_invalid_payload(channel) {
        let server = channel.start();
        let mut ann = connect(&server, user(10, "ann")).await;
        let (join_ref, _) = join_campaign(&mut ann, TOPIC).await;
        for payload in [json!({"amount": "5"}), json!({"amount": "5", "donor_name": 7}), json!("5")] {
            let reference = ann.push(&join_ref, TOPIC, "new_donation", payload.clone()).await;
            let expected = if payload.is_string() {
                json!({"errors": {"amount": ["must be greater than 0"]}})
            } else {
                json!({"reason": "invalid payload"})
            };
            assert_eq!(
                recv(&mut ann).await,
                json!([join_ref, reference, TOPIC, "phx_reply", {"response": expected, "status": "error"}]),
                "{payload}"
            );
        }
    }

    async fn the_lobby_takes_no_donations(channel) {
        let server = channel.start();
        let mut ann = connect(&server, user(10, "ann")).await;
        let join_ref = ann.join_ok("donations:lobby").await;
        let reference = ann
            .push(&join_ref, "donations:lobby", "new_donation", json!({"amount": "5", "donor_name": "x"}))
            .await;
        assert_eq!(
            recv(&mut ann).await,
            json!([join_ref, reference, "donations:lobby", "phx_reply", {"response": {"reason": "invalid payload"}, "status": "error"}])
        );
    }

    async fn update_goal_by_the_organizer_replies_the_campaign_and_broadcasts_goal_updated(channel) {
        let server = channel.start();
        let mut ann = connect(&server, user(10, "ann")).await;
        let mut bob = connect(&server, user(11, "bob")).await;
        let (ann_ref, _) = join_campaign(&mut ann, TOPIC).await;
        let (bob_ref, _) = join_campaign(&mut bob, TOPIC).await;
        let reference = donate(&mut bob, &bob_ref, json!("25.5"), "Bob B").await;
        reply_and_own_push(&mut bob, &reference).await;
        recv(&mut ann).await;

        ann.send(json!([ann_ref, "3", TOPIC, "update_goal", {"new_goal": "5000"}])).await;
        assert_eq!(
            recv_text(&mut ann).await,
            r#"[null,null,"donations:campaign:c1795305027169","goal_updated",{"new_goal":"5000.00"}]"#
        );
        assert_eq!(
            recv_text(&mut ann).await,
            format!(
                r#"["{ann_ref}","3","donations:campaign:c1795305027169","phx_reply",{{"response":{{"campaign":{{"goal":"5000.00","id":"c1795305027169","total":"25.50"}}}},"status":"ok"}}]"#
            )
        );
        assert_eq!(recv(&mut bob).await[4], json!({"new_goal": "5000.00"}));

        // A later joiner sees the new goal.
        let mut cy = connect(&server, user(12, "cy")).await;
        let (_, campaign) = join_campaign(&mut cy, TOPIC).await;
        assert_eq!(campaign, json!({"goal": "5000.00", "id": "c1795305027169", "total": "25.50"}));
    }

    async fn update_goal_by_anyone_else_is_unauthorized_and_changes_nothing(channel) {
        let server = channel.start();
        let mut ann = connect(&server, user(10, "ann")).await;
        let mut bob = connect(&server, user(11, "bob")).await;
        join_campaign(&mut ann, TOPIC).await;
        let (bob_ref, _) = join_campaign(&mut bob, TOPIC).await;
        bob.send(json!([bob_ref, "5", TOPIC, "update_goal", {"new_goal": "5000"}])).await;
        assert_eq!(
            recv_text(&mut bob).await,
            format!(r#"["{bob_ref}","5","donations:campaign:c1795305027169","phx_reply",{{"response":{{"reason":"unauthorized"}},"status":"error"}}]"#)
        );
        expect_quiet(&mut ann).await;
        let mut cy = connect(&server, user(12, "cy")).await;
        let (_, campaign) = join_campaign(&mut cy, TOPIC).await;
        assert_eq!(campaign["goal"], "1000.00");
    }

    async fn update_goal_with_a_goal_that_is_not_a_positive_decimal_is_an_invalid_payload(channel) {
        let server = channel.start();
        let mut ann = connect(&server, user(10, "ann")).await;
        let (join_ref, _) = join_campaign(&mut ann, TOPIC).await;
        for payload in [json!({"new_goal": "0"}), json!({"new_goal": "12.345"}), json!({"new_goal": 5000}), json!({})] {
            let reference = ann.push(&join_ref, TOPIC, "update_goal", payload.clone()).await;
            assert_eq!(
                recv(&mut ann).await,
                json!([join_ref, reference, TOPIC, "phx_reply", {"response": {"reason": "invalid payload"}, "status": "error"}]),
                "{payload}"
            );
        }
        expect_quiet(&mut ann).await;
    }

    async fn the_first_user_to_join_a_campaign_stays_its_organizer(channel) {
        let server = channel.start();
        let mut ann = connect(&server, user(10, "ann")).await;
        let mut bob = connect(&server, user(11, "bob")).await;
        let (ann_ref, _) = join_campaign(&mut ann, TOPIC).await;
        let (bob_ref, _) = join_campaign(&mut bob, TOPIC).await;
        // ann leaves: bob, alone, is still no organizer; ann comes back in a
        // new tab: the campaign is still hers.
        ann.push(&ann_ref, TOPIC, "phx_leave", json!({})).await;
        assert_eq!(recv(&mut ann).await[3], "phx_reply");
        let reference = bob.push(&bob_ref, TOPIC, "update_goal", json!({"new_goal": "1"})).await;
        let reply = loop {
            let frame = recv(&mut bob).await;
            if frame[1] == json!(reference) {
                break frame;
            }
        };
        assert_eq!(reply[4]["response"], json!({"reason": "unauthorized"}));
        let mut ann_tab = connect(&server, user(10, "ann")).await;
        let (tab_ref, _) = join_campaign(&mut ann_tab, TOPIC).await;
        let reference = ann_tab.push(&tab_ref, TOPIC, "update_goal", json!({"new_goal": "1"})).await;
        let (first, second) = (recv(&mut ann_tab).await, recv(&mut ann_tab).await);
        assert_eq!(first[3], "goal_updated");
        assert_eq!(second[1], json!(reference));
        assert_eq!(second[4]["status"], "ok");
    }

    async fn of_many_users_joining_a_new_campaign_at_once_exactly_one_becomes_its_organizer(channel) {
        let server = channel.start();
        for round in 0..5 {
            let topic = format!("donations:campaign:race{round}");
            let mut clients = Vec::new();
            for id in 20..26 {
                clients.push(connect(&server, user(id, &format!("user-{id}"))).await);
            }
            let joins = join_all(clients.iter_mut().map(|client| client.join(&topic, json!({})))).await;
            let mut organizers = 0;
            for (client, (join_ref, reply)) in clients.iter_mut().zip(joins) {
                assert_eq!(reply[4]["status"], "ok", "{reply}");
                let reference = client
                    .push(&join_ref, &topic, "update_goal", json!({"new_goal": "10"}))
                    .await;
                let reply = loop {
                    let frame = recv(client).await;
                    if frame[1] == json!(reference) {
                        break frame;
                    }
                };
                if reply[4]["status"] == "ok" {
                    organizers += 1;
                } else {
                    assert_eq!(reply[4]["response"], json!({"reason": "unauthorized"}));
                }
            }
            assert_eq!(organizers, 1, "round {round}");
        }
    }
}
