//! AdminChannel, for topics `admin:dashboard` and `admin:users`: the app's
//! live figures, and banning users.
//!
//! - Only a socket whose user has role `admin` may join; anyone else gets
//!   `{"reason": "unauthorized"}`.
//! - `admin:dashboard` pushes `dashboard_data` once joined, then
//!   `dashboard_update` every `update_ms` milliseconds (the route's plugin
//!   configuration, 30000 by default, between 10 and 86400000), each from
//!   the host's live figures.
//! - `ban_user` `{"user_id": ID}` on `admin:users` writes `banned:<ID>` to
//!   the key-value store (the socket plugin refuses that user's connects from
//!   then on), closes every socket of the user, broadcasts `user_banned` and
//!   replies `{"status": "banned"}`.
//! - `get_user_details` `{"user_id": ID}` replies the user the socket plugin
//!   recorded at connect (`users:<ID>`) with their open socket count, or
//!   `{"reason": "user_not_found"}`.

use std::ops::RangeInclusive;
use std::time::Duration;

use plume_sdk::{Channel, HandleIn, HandleInfo, Join, Payload, Reply, Socket, Value, channel, clock, config, figures, json, kv, log, timers};
use serde::Deserialize;

/// The socket plugin of the demo app. The host's figures list it among the
/// plugins; the dashboard lists channel plugins only, as Phoenix lists
/// channels.
const SOCKET_PLUGIN: &str = "user_socket";

/// The dashboard's refresh period when the route's configuration sets none.
const DEFAULT_UPDATE_MS: u64 = 30_000;

/// The refresh periods a configuration may set: fast enough for a demo,
/// never a busy loop, at least once a day.
const UPDATE_MS: RangeInclusive<u64> = 10..=86_400_000;

/// The admin channel.
pub struct Admin;

/// The part of the socket's `user` assign this channel needs.
#[derive(Deserialize)]
struct User {
    id: i64,
    role: String,
}

/// A user as the socket plugin records them under `users:<id>`.
#[derive(Deserialize)]
struct KnownUser {
    id: i64,
    name: String,
    role: String,
}

/// The route's configuration.
#[derive(Deserialize)]
#[serde(default)]
struct Config {
    update_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            update_ms: DEFAULT_UPDATE_MS,
        }
    }
}

/// The payload of `ban_user` and `get_user_details`.
#[derive(Deserialize)]
struct Target {
    user_id: i64,
}

/// What the dashboard's timers carry to `handle_info`: the event to push.
const DASHBOARD_DATA: &str = "dashboard_data";
const DASHBOARD_UPDATE: &str = "dashboard_update";

fn reason(reason: &str) -> Value {
    json!({ "reason": reason })
}

/// The refresh period the route configures, if it is a valid one.
fn update_ms() -> Result<u64, String> {
    let Config { update_ms } = config::get().map_err(|err| format!("update_ms must be a whole number of milliseconds: {err}"))?;
    if UPDATE_MS.contains(&update_ms) {
        Ok(update_ms)
    } else {
        Err(format!(
            "update_ms = {update_ms} is out of range: give {} to {} milliseconds",
            UPDATE_MS.start(),
            UPDATE_MS.end()
        ))
    }
}

impl Channel for Admin {
    fn join(topic: &str, _payload: Payload, socket: &mut Socket) -> Join {
        if socket.get::<User>("user").is_none_or(|user| user.role != "admin") {
            return Join::error(reason("unauthorized"));
        }
        match topic {
            "admin:dashboard" => {
                let period = match update_ms() {
                    Ok(period) => period,
                    Err(why) => {
                        log::error(&format!("the admin route's configuration is invalid: {why}"));
                        return Join::error(reason("invalid payload"));
                    }
                };
                socket.assign("update_ms", period);
                // After the join reply, when the figures count this channel.
                if let Err(err) = timers::send_self(&DASHBOARD_DATA) {
                    log::error(&format!("the dashboard cannot start: {err}"));
                    return Join::error(reason("unavailable"));
                }
                Join::ok(json!({}))
            }
            "admin:users" => Join::ok(json!({})),
            _ => Join::error(reason("unmatched topic")),
        }
    }

    fn handle_in(event: &str, payload: Payload, socket: &mut Socket) -> HandleIn {
        match (event, socket.topic()) {
            ("ban_user", "admin:users") => ban_user(&payload, socket),
            ("get_user_details", _) => get_user_details(&payload),
            _ => HandleIn::stop(format!("unknown event: {event}")),
        }
    }

    fn handle_info(message: Payload, socket: &mut Socket) -> HandleInfo {
        let event = match message.parse::<&str>() {
            Ok(event @ (DASHBOARD_DATA | DASHBOARD_UPDATE)) => event,
            _ => return HandleInfo::NoReply,
        };
        if let Err(err) = channel::push(event, &dashboard()) {
            log::warn(&format!("{event} not pushed: {err}"));
        }
        let period = socket.get::<u64>("update_ms").unwrap_or(DEFAULT_UPDATE_MS);
        match timers::send_after(Duration::from_millis(period), &DASHBOARD_UPDATE) {
            Ok(_) => HandleInfo::NoReply,
            Err(err) => HandleInfo::Stop(format!("the dashboard cannot refresh: {err}")),
        }
    }
}

/// The dashboard's figures, from the host's live counters.
fn dashboard() -> Value {
    let figures = figures::now();
    let plugins: Vec<String> = figures
        .plugins
        .into_iter()
        .map(|plugin| plugin.name)
        .filter(|name| name != SOCKET_PLUGIN)
        .collect();
    json!({
        "total_connections": figures.connections,
        "total_channels": figures.channels,
        "active_users": figures.users,
        "plugins": plugins,
    })
}

/// Bans a user: the ban is written before their sockets close, so a client
/// that reconnects at once is already refused.
fn ban_user(payload: &Payload, socket: &Socket) -> HandleIn {
    let Ok(Target { user_id }) = payload.parse() else {
        return Reply::error(reason("invalid payload")).into();
    };
    let banned_by = socket.get::<User>("user").map(|admin| admin.id);
    let ban = json!({"banned_by": banned_by, "banned_at": clock::now_ms() / 1000});
    if let Err(err) = kv::set_json(&format!("banned:{user_id}"), &ban, None) {
        log::error(&format!("cannot ban user {user_id}: {err}"));
        return Reply::error(reason("unavailable")).into();
    }
    if let Err(err) = channel::disconnect(&format!("user_socket:{user_id}")) {
        log::warn(&format!("user {user_id} is banned but their sockets stay open: {err}"));
    }
    if let Err(err) = channel::broadcast("user_banned", &json!({"user_id": user_id, "banned_by": banned_by})) {
        log::warn(&format!("user_banned not broadcast: {err}"));
    }
    Reply::ok(json!({"status": "banned"})).into()
}

fn get_user_details(payload: &Payload) -> HandleIn {
    let Ok(Target { user_id }) = payload.parse() else {
        return Reply::error(reason("invalid payload")).into();
    };
    match kv::get_json::<KnownUser>(&format!("users:{user_id}")) {
        Ok(Some(user)) => Reply::ok(json!({
            "id": user.id,
            "name": user.name,
            "role": user.role,
            "connection_count": figures::connections_of(&format!("user_socket:{user_id}")),
        }))
        .into(),
        Ok(None) => Reply::error(reason("user_not_found")).into(),
        Err(err) => {
            log::error(&format!("cannot read user {user_id}: {err}"));
            Reply::error(reason("unavailable")).into()
        }
    }
}

plume_sdk::export_channel!(Admin);

#[cfg(test)]
mod tests {
    use super::*;
    use plume_sdk::Assigns;

    fn socket(topic: &str, role: &str) -> Socket {
        Socket::new(topic, Assigns::new().with("user", json!({"id": 1, "name": "alice", "role": role})))
    }

    #[test]
    fn a_user_without_the_admin_role_is_unauthorized() {
        for topic in ["admin:dashboard", "admin:users", "admin:other"] {
            let join = Admin::join(topic, Payload::from_raw("{}"), &mut socket(topic, "user"));
            assert_eq!(join, Join::error(json!({"reason": "unauthorized"})), "{topic}");
        }
        let mut anonymous = Socket::new("admin:users", Assigns::new());
        let join = Admin::join("admin:users", Payload::from_raw("{}"), &mut anonymous);
        assert_eq!(join, Join::error(json!({"reason": "unauthorized"})));
    }

    #[test]
    fn an_admin_joins_admin_users() {
        let join = Admin::join("admin:users", Payload::from_raw("{}"), &mut socket("admin:users", "admin"));
        assert_eq!(join, Join::ok(json!({})));
    }

    #[test]
    fn a_user_id_that_is_not_an_integer_is_an_invalid_payload() {
        for raw in [r#"{}"#, r#"{"user_id": "99"}"#, r#"{"user_id": 1.5}"#, r#"{"user_id": 1e30}"#, "null"] {
            let payload = Payload::from_raw(raw);
            let expected: HandleIn = Reply::error(json!({"reason": "invalid payload"})).into();
            assert_eq!(get_user_details(&payload), expected, "{raw}");
            assert_eq!(ban_user(&payload, &socket("admin:users", "admin")), expected, "{raw}");
        }
    }

    #[test]
    fn ban_user_outside_admin_users_is_an_unknown_event() {
        let outcome = Admin::handle_in("ban_user", Payload::from_raw(r#"{"user_id": 2}"#), &mut socket("admin:dashboard", "admin"));
        assert_eq!(outcome, HandleIn::stop("unknown event: ban_user"));
    }
}
