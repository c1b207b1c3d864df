//! RoomChannel, for topics `room:*`: the channel of the Phoenix guides,
//! as a plume plugin.
//!
//! - join `room:private` is refused with `{"reason": "unauthorized"}`; any
//!   other room (`room:lobby`, `room:42`) is open.
//! - `new_msg` `{"body": B}` broadcasts `new_msg` `{"body": B, "user_id": ID}`
//!   to the room (ID is the socket's user) and replies ok `{}`; a missing or
//!   non-string body replies error `{"reason": "invalid message"}`.
//! - `ping` P replies ok P, the payload echoed as sent.
//! - `crash` panics, to show (and test) that a crashed channel gets
//!   `phx_error` while its socket lives on.
//! - Any other event stops the channel as a crash, as an unmatched
//!   `handle_in` clause crashes a Phoenix channel.

use plume_sdk::{Channel, HandleIn, Join, Payload, Reply, Socket, channel, json, log};
use serde::Deserialize;

/// The room channel. Stateless: it reads the user from the assigns the
/// socket plugin set, and keeps nothing of its own.
pub struct Room;

/// The payload of `new_msg`.
#[derive(Deserialize)]
struct NewMsg {
    body: String,
}

/// The part of the socket's `user` assign this channel needs.
#[derive(Deserialize)]
struct User {
    id: i64,
}

impl Channel for Room {
    fn join(topic: &str, _payload: Payload, _socket: &mut Socket) -> Join {
        if topic == "room:private" {
            Join::error(json!({"reason": "unauthorized"}))
        } else {
            Join::ok(json!({}))
        }
    }

    fn handle_in(event: &str, payload: Payload, socket: &mut Socket) -> HandleIn {
        match event {
            "new_msg" => new_msg(&payload, socket),
            "ping" => Reply::ok_raw(payload).into(),
            "crash" => panic!("crash requested by the client"),
            _ => HandleIn::stop(format!("unknown event: {event}")),
        }
    }
}

/// Broadcasts a message to the room, tagged with the sender's user id.
fn new_msg(payload: &Payload, socket: &Socket) -> HandleIn {
    let Ok(NewMsg { body }) = payload.parse() else {
        return Reply::error(json!({"reason": "invalid message"})).into();
    };
    let user_id = socket.get::<User>("user").map(|user| user.id);
    match channel::broadcast("new_msg", &json!({"body": body, "user_id": user_id})) {
        Ok(()) => Reply::ok(json!({})).into(),
        Err(err) => {
            log::warn(&format!("new_msg not broadcast: {err}"));
            Reply::error(json!({"reason": "not delivered"})).into()
        }
    }
}

plume_sdk::export_channel!(Room);

#[cfg(test)]
mod tests {
    use super::*;
    use plume_sdk::Assigns;

    fn socket() -> Socket {
        Socket::new("room:lobby", Assigns::new().with("user", json!({"id": 1})))
    }

    #[test]
    fn join_room_lobby_is_ok() {
        let join = Room::join("room:lobby", Payload::from_raw("{}"), &mut socket());
        assert_eq!(join, Join::ok(json!({})));
    }

    #[test]
    fn join_room_private_is_unauthorized() {
        let join = Room::join("room:private", Payload::from_raw("{}"), &mut socket());
        assert_eq!(join, Join::error(json!({"reason": "unauthorized"})));
    }

    #[test]
    fn join_any_other_room_is_ok() {
        let join = Room::join("room:42", Payload::from_raw("{}"), &mut socket());
        assert_eq!(join, Join::ok(json!({})));
    }

    #[test]
    fn new_msg_without_a_string_body_is_an_invalid_message() {
        for raw in [r#"{}"#, r#"{"body": 1}"#, r#"{"body": null}"#, r#""hi""#] {
            let outcome = Room::handle_in("new_msg", Payload::from_raw(raw), &mut socket());
            let expected = Reply::error(json!({"reason": "invalid message"})).into();
            assert_eq!(outcome, expected, "{raw}");
        }
    }

    #[test]
    fn ping_echoes_the_payload_as_sent() {
        for raw in [r#""x""#, r#"{"z": 1, "a": [1, 2]}"#, "null", "3.0"] {
            let outcome = Room::handle_in("ping", Payload::from_raw(raw), &mut socket());
            assert_eq!(outcome, Reply::ok_raw(Payload::from_raw(raw)).into());
        }
    }

    #[test]
    fn an_unknown_event_stops_the_channel_as_a_crash() {
        let outcome = Room::handle_in("dance", Payload::from_raw("{}"), &mut socket());
        assert_eq!(outcome, HandleIn::stop("unknown event: dance"));
    }
}
