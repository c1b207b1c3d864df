//! CollabChannel, for topics `collab:document:<id>`: presence metadata, as
//! a plume plugin.
//!
//! Each joined user is tracked under `"<user id>"` with `{"name",
//! "online_at", "cursor_position": null, "typing": false}` and gets
//! `presence_state`. `cursor_moved` and `typing` update the meta, and every
//! member receives the `presence_diff`. Nothing is replied to either.

use plume_sdk::{
    Channel, HandleIn, HandleInfo, Join, Payload, Reply, Socket, Value, clock, json, log, presence,
    timers,
};
use serde::Deserialize;

pub struct Collab;

/// The part of the socket's `user` assign this channel needs.
#[derive(Deserialize)]
struct User {
    id: i64,
    name: String,
}

fn now_seconds() -> i64 {
    (clock::now_ms() / 1000) as i64
}

/// Update this user's meta with `change` applied, keeping the rest.
fn update_meta(socket: &mut Socket, change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> HandleIn {
    let (Some(user), Some(mut meta)) = (socket.get::<User>("user"), socket.get::<Value>("meta")) else {
        return HandleIn::stop("the channel has no tracked user");
    };
    if let Some(map) = meta.as_object_mut() {
        change(map);
    }
    if let Err(err) = presence::update(&user.id.to_string(), &meta) {
        log::error(&format!("cannot update the presence meta: {err}"));
    }
    socket.assign("meta", meta);
    HandleIn::NoReply
}

impl Channel for Collab {
    fn join(_topic: &str, _payload: Payload, socket: &mut Socket) -> Join {
        let Some(user) = socket.get::<User>("user") else {
            return Join::error(json!({"reason": "unauthorized"}));
        };
        let meta = json!({
            "cursor_position": null,
            "name": user.name,
            "online_at": now_seconds(),
            "typing": false,
        });
        socket.assign("meta", meta);
        if let Err(err) = timers::send_self(&json!({"after_join": true})) {
            log::error(&format!("cannot schedule the after-join work: {err}"));
        }
        Join::ok(json!({}))
    }

    fn handle_info(message: Payload, socket: &mut Socket) -> HandleInfo {
        let after_join = message.value().ok().and_then(|m| m.get("after_join").and_then(Value::as_bool));
        if after_join == Some(true)
            && let (Some(user), Some(meta)) = (socket.get::<User>("user"), socket.get::<Value>("meta"))
        {
            if let Err(err) = presence::track(&user.id.to_string(), &meta) {
                log::error(&format!("cannot track the user: {err}"));
            }
            if let Err(err) = presence::push_state() {
                log::error(&format!("cannot push presence_state: {err}"));
            }
        }
        HandleInfo::NoReply
    }

    fn handle_in(event: &str, payload: Payload, socket: &mut Socket) -> HandleIn {
        let payload = payload.value().unwrap_or(Value::Null);
        match event {
            "cursor_moved" => match payload.get("position") {
                Some(position) => {
                    let position = position.clone();
                    update_meta(socket, |meta| {
                        meta.insert("cursor_position".into(), position);
                    })
                }
                None => Reply::error(json!({"reason": "invalid payload"})).into(),
            },
            "typing" => match payload.get("typing").and_then(Value::as_bool) {
                Some(typing) => update_meta(socket, |meta| {
                    meta.insert("typing".into(), json!(typing));
                    meta.insert("typing_at".into(), json!(now_seconds()));
                }),
                None => Reply::error(json!({"reason": "invalid payload"})).into(),
            },
            _ => HandleIn::stop(format!("unknown event: {event}")),
        }
    }
}

plume_sdk::export_channel!(Collab);
