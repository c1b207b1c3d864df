//! DonationChannel, for topics `donations:lobby` and
//! `donations:campaign:<id>`: live donation totals.
//!
//! A campaign lives in the app's key-value store under `campaign:<id>`,
//! changed only by compare-and-swap: its goal and total (integer cents, see
//! [`Cents`]; never floats), its donation count, and its organizer, the first
//! user to join it.
//!
//! - join `donations:lobby`: ok. join `donations:campaign:<id>`: ok, then
//!   `campaign_state` `{"campaign": {"id", "goal", "total"}}` is pushed and
//!   the user is tracked in presence (once the server has presence).
//! - `new_donation` `{"amount": "<decimal>", "donor_name": N}`: the amount
//!   must be a positive decimal with at most two places, else
//!   `{"errors": {"amount": ["must be greater than 0"]}}`. Replies
//!   `{"donation_id": ID}` and broadcasts `donation_created`, which is
//!   intercepted: everyone but the organizer sees `"donor_name": "Anonymous"`.
//! - `update_goal` `{"new_goal": "<decimal>"}`: the organizer only (others get
//!   `unauthorized`); replies `{"campaign": ...}` and broadcasts
//!   `goal_updated`.

mod amount;

use plume_sdk::{Channel, HandleIn, HandleInfo, HandleOut, Join, Payload, Reply, Socket, Value, channel, clock, json, kv, log, presence, timers};
use serde::{Deserialize, Serialize};

pub use amount::Cents;

/// The goal of a new campaign: 1000.00.
const DEFAULT_GOAL: Cents = Cents(100_000);

/// What donors are called to everyone but the organizer.
const ANONYMOUS: &str = "Anonymous";

/// The message that tracks presence once the join reply is out.
const TRACK: &str = "track_presence";

/// The donation channel.
pub struct Donations;

/// A campaign as the key-value store keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Campaign {
    goal: u64,
    total: u64,
    organizer: i64,
    /// Donations so far; the last one's id.
    donations: u64,
}

impl Campaign {
    /// The campaign as clients see it.
    fn view(&self, id: &str) -> Value {
        json!({"id": id, "goal": Cents(self.goal).render(), "total": Cents(self.total).render()})
    }
}

/// The part of the socket's `user` assign this channel needs.
#[derive(Deserialize)]
struct User {
    id: i64,
    name: String,
}

#[derive(Deserialize)]
struct NewGoal {
    new_goal: String,
}

fn campaign_key(id: &str) -> String {
    format!("campaign:{id}")
}

fn reason(reason: &str) -> Value {
    json!({ "reason": reason })
}

/// The store failed: log why, and tell the client to try again.
fn unavailable(what: &str, err: &dyn std::fmt::Display) -> Value {
    log::error(&format!("{what}: {err}"));
    reason("unavailable")
}

impl Channel for Donations {
    fn join(topic: &str, _payload: Payload, socket: &mut Socket) -> Join {
        if topic == "donations:lobby" {
            return Join::ok(json!({}));
        }
        let Some(id) = topic.strip_prefix("donations:campaign:") else {
            return Join::error(reason("unmatched topic"));
        };
        let Some(user) = socket.get::<User>("user") else {
            return Join::error(reason("unauthorized"));
        };
        // The first joiner creates the campaign and organizes it; everyone
        // after reads it. The closure may run again: it only records.
        let mut seen = None;
        let created = kv::update_json(&campaign_key(id), None, |campaign: Option<Campaign>| {
            let fresh = campaign.is_none();
            let campaign = campaign.unwrap_or(Campaign {
                goal: DEFAULT_GOAL.0,
                total: 0,
                organizer: user.id,
                donations: 0,
            });
            seen = Some(campaign.clone());
            fresh.then_some(campaign)
        });
        let campaign = match (created, seen) {
            (Ok(_), Some(campaign)) => campaign,
            (Err(err), _) => return Join::error(unavailable("opening the campaign", &err)),
            (Ok(_), None) => return Join::error(reason("unavailable")),
        };
        socket.assign("campaign_id", id);
        socket.assign("organizer", campaign.organizer == user.id);
        // Pushes made in join reach the client after the join reply.
        if let Err(err) = channel::push("campaign_state", &json!({"campaign": campaign.view(id)})) {
            log::warn(&format!("campaign_state not pushed: {err}"));
        }
        if let Err(err) = timers::send_self(&TRACK) {
            log::warn(&format!("presence not tracked: {err}"));
        }
        Join::ok(json!({}))
    }

    fn handle_in(event: &str, payload: Payload, socket: &mut Socket) -> HandleIn {
        match event {
            "new_donation" | "update_goal" => {}
            _ => return HandleIn::stop(format!("unknown event: {event}")),
        }
        // The lobby has no campaign to give to.
        let Some(id) = socket.get::<String>("campaign_id") else {
            return Reply::error(reason("invalid payload")).into();
        };
        if event == "new_donation" {
            new_donation(&id, &payload)
        } else {
            let organizer = socket.get::<bool>("organizer") == Some(true);
            update_goal(&id, organizer, &payload)
        }
    }

    fn handle_info(message: Payload, socket: &mut Socket) -> HandleInfo {
        if message.parse::<&str>().ok() == Some(TRACK) {
            track(socket);
        }
        HandleInfo::NoReply
    }

    fn intercepts() -> &'static [&'static str] {
        &["donation_created"]
    }

    fn handle_out(_event: &str, payload: Payload, socket: &mut Socket) -> HandleOut {
        if socket.get::<bool>("organizer") == Some(true) {
            return HandleOut::Push;
        }
        anonymized(&payload).map_or(HandleOut::Drop, HandleOut::push_changed)
    }
}

/// `donation_created` with the donor's name hidden; `None` (and the event is
/// not pushed) when the payload has no donor to hide, so a name can never
/// slip through a payload of another shape.
fn anonymized(payload: &Payload) -> Option<Value> {
    let mut value = payload.value().ok()?;
    let donor = value.get_mut("donation")?.get_mut("donor_name")?;
    *donor = Value::from(ANONYMOUS);
    Some(value)
}

/// Tracks the user in the topic's presence and pushes `presence_state`. A
/// server without presence answers `not-enabled`: the channel works on
/// without it.
fn track(socket: &Socket) {
    let Some(user) = socket.get::<User>("user") else {
        return;
    };
    let meta = json!({"name": user.name, "online_at": clock::now_ms() / 1000});
    let tracked = presence::track(&user.id.to_string(), &meta)
        .and_then(|_| presence::list(None))
        .map(|state| channel::push("presence_state", &state));
    match tracked {
        Ok(Ok(())) | Err(presence::PresenceError::NotEnabled) => {}
        Ok(Err(err)) => log::warn(&format!("presence_state not pushed: {err}")),
        Err(err) => log::warn(&format!("presence not tracked: {err}")),
    }
}

fn new_donation(id: &str, payload: &Payload) -> HandleIn {
    let Ok(donation) = payload.value() else {
        return Reply::error(reason("invalid payload")).into();
    };
    let Some(amount) = donation.get("amount").and_then(Value::as_str).and_then(Cents::parse_positive) else {
        return Reply::error(json!({"errors": {"amount": ["must be greater than 0"]}})).into();
    };
    let Some(donor_name) = donation.get("donor_name").and_then(Value::as_str) else {
        return Reply::error(reason("invalid payload")).into();
    };
    let given = kv::update_json(&campaign_key(id), None, |campaign: Option<Campaign>| {
        let mut campaign = campaign?;
        campaign.total = Cents(campaign.total).checked_add(amount)?.0;
        campaign.donations += 1;
        Some(campaign)
    });
    let campaign = match given {
        Ok(Some(campaign)) => campaign,
        // A campaign whose total would overflow takes no more.
        Ok(None) => return Reply::error(reason("invalid payload")).into(),
        Err(err) => return Reply::error(unavailable("recording a donation", &err)).into(),
    };
    let donation_id = campaign.donations.to_string();
    let created = json!({
        "donation": {"id": donation_id, "amount": amount.render(), "donor_name": donor_name},
        "new_total": Cents(campaign.total).render(),
    });
    if let Err(err) = channel::broadcast("donation_created", &created) {
        log::warn(&format!("donation_created not broadcast: {err}"));
    }
    Reply::ok(json!({ "donation_id": donation_id })).into()
}

fn update_goal(id: &str, organizer: bool, payload: &Payload) -> HandleIn {
    if !organizer {
        return Reply::error(reason("unauthorized")).into();
    }
    let Some(goal) = payload
        .parse::<NewGoal>()
        .ok()
        .and_then(|NewGoal { new_goal }| Cents::parse_positive(&new_goal))
    else {
        return Reply::error(reason("invalid payload")).into();
    };
    let updated = kv::update_json(&campaign_key(id), None, |campaign: Option<Campaign>| {
        let mut campaign = campaign?;
        campaign.goal = goal.0;
        Some(campaign)
    });
    let campaign = match updated {
        Ok(Some(campaign)) => campaign,
        Ok(None) => return Reply::error(reason("invalid payload")).into(),
        Err(err) => return Reply::error(unavailable("updating the goal", &err)).into(),
    };
    if let Err(err) = channel::broadcast("goal_updated", &json!({"new_goal": goal.render()})) {
        log::warn(&format!("goal_updated not broadcast: {err}"));
    }
    Reply::ok(json!({"campaign": campaign.view(id)})).into()
}

plume_sdk::export_channel!(Donations);

#[cfg(test)]
mod tests {
    use super::*;
    use plume_sdk::Assigns;

    fn campaign_socket(organizer: bool) -> Socket {
        Socket::new(
            "donations:campaign:c1",
            Assigns::new()
                .with("user", json!({"id": 11, "name": "bob", "role": "user"}))
                .with("campaign_id", "c1")
                .with("organizer", organizer),
        )
    }

    fn created() -> Payload {
        Payload::from(json!({
            "donation": {"id": "1", "amount": "25.50", "donor_name": "Bob B"},
            "new_total": "25.50",
        }))
    }

    #[test]
    fn the_organizer_sees_the_donor_name() {
        let out = Donations::handle_out("donation_created", created(), &mut campaign_socket(true));
        assert_eq!(out, HandleOut::Push);
    }

    #[test]
    fn everyone_else_sees_anonymous() {
        let out = Donations::handle_out("donation_created", created(), &mut campaign_socket(false));
        assert_eq!(
            out,
            HandleOut::push_changed(json!({
                "donation": {"id": "1", "amount": "25.50", "donor_name": "Anonymous"},
                "new_total": "25.50",
            }))
        );
    }

    #[test]
    fn a_donation_created_without_a_donor_is_not_pushed_to_others() {
        let out = Donations::handle_out("donation_created", Payload::from(json!({"x": 1})), &mut campaign_socket(false));
        assert_eq!(out, HandleOut::Drop);
    }

    #[test]
    fn an_invalid_amount_is_refused_before_the_store_is_touched() {
        for raw in [
            r#"{"amount": "0", "donor_name": "x"}"#,
            r#"{"amount": "1.234", "donor_name": "x"}"#,
            r#"{"amount": 10, "donor_name": "x"}"#,
            r#"{"amount": "-5", "donor_name": "x"}"#,
            r#"{"donor_name": "x"}"#,
        ] {
            let outcome = Donations::handle_in("new_donation", Payload::from_raw(raw), &mut campaign_socket(false));
            let expected: HandleIn = Reply::error(json!({"errors": {"amount": ["must be greater than 0"]}})).into();
            assert_eq!(outcome, expected, "{raw}");
        }
    }

    #[test]
    fn a_donation_without_a_donor_name_is_an_invalid_payload() {
        for raw in [r#"{"amount": "5"}"#, r#"{"amount": "5", "donor_name": 3}"#] {
            let outcome = Donations::handle_in("new_donation", Payload::from_raw(raw), &mut campaign_socket(false));
            assert_eq!(outcome, Reply::error(json!({"reason": "invalid payload"})).into(), "{raw}");
        }
    }

    #[test]
    fn only_the_organizer_may_update_the_goal() {
        let payload = Payload::from_raw(r#"{"new_goal": "5000"}"#);
        let outcome = Donations::handle_in("update_goal", payload, &mut campaign_socket(false));
        assert_eq!(outcome, Reply::error(json!({"reason": "unauthorized"})).into());
    }

    #[test]
    fn an_invalid_goal_is_an_invalid_payload() {
        for raw in [r#"{"new_goal": "0"}"#, r#"{"new_goal": 5000}"#, r#"{}"#, r#"{"new_goal": "1.001"}"#] {
            let outcome = Donations::handle_in("update_goal", Payload::from_raw(raw), &mut campaign_socket(true));
            assert_eq!(outcome, Reply::error(json!({"reason": "invalid payload"})).into(), "{raw}");
        }
    }

    #[test]
    fn the_lobby_takes_no_donations() {
        let mut lobby = Socket::new("donations:lobby", Assigns::new());
        let outcome = Donations::handle_in("new_donation", Payload::from_raw(r#"{"amount": "5", "donor_name": "x"}"#), &mut lobby);
        assert_eq!(outcome, Reply::error(json!({"reason": "invalid payload"})).into());
    }
}
