//! ChatChannel, for topics `chat:<room>`: presence, a message store and
//! interceptors, as a plume plugin.
//!
//! - join with `{"token": T}`: T is a user token (salt `"user socket"`, a
//!   day old at most); the chat user is its user. After the join reply the
//!   user is tracked in presence under `"<id>"` with `{"name", "online_at"}`,
//!   the client gets `presence_state`, and the room hears `user_joined`.
//! - `new_message` `{"message": M}`: trimmed, 1 to 2000 characters, stored
//!   in the key-value store (ids count up per room) and broadcast.
//! - `typing`, `delete_message` (author only), `history` (last 50).
//! - `user_joined` is hidden from every channel of the joining user, and
//!   every `user_left` pushed gets a `left_at`. The host does both
//!   (`presence::identify` and `presence::announce`): no `handle_out` call
//!   per member, so a join into a room of thousands costs what a join
//!   into an empty room costs.

use std::time::Duration;

use plume_sdk::presence::Announcement;
use plume_sdk::{
    Channel, HandleIn, HandleInfo, Join, Payload, Reply, Socket, Value, channel, clock, json, kv,
    log, presence, timers, token,
};
use serde::{Deserialize, Serialize};

/// The salt of user tokens.
const SALT: &str = "user socket";
/// How old a user token may be.
const MAX_AGE: Duration = Duration::from_secs(86_400);
/// The longest message, in characters.
const MAX_CHARS: usize = 2000;
/// How many messages `history` returns at most.
const HISTORY: u64 = 50;

pub struct Chat;

/// Who is chatting: the user of the join token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatUser {
    pub id: i64,
    pub name: String,
}

/// A user token's data: a bare id, or a user map.
#[derive(Deserialize)]
#[serde(untagged)]
enum TokenData {
    Id(i64),
    User { id: i64, name: String },
}

impl From<TokenData> for ChatUser {
    fn from(data: TokenData) -> Self {
        match data {
            TokenData::Id(id) => ChatUser {
                id,
                name: format!("user-{id}"),
            },
            TokenData::User { id, name } => ChatUser { id, name },
        }
    }
}

/// A stored message, as broadcast and as listed by `history`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub content: String,
    pub id: String,
    pub inserted_at: String,
    pub user: ChatUser,
}

/// Why a message is refused, as Phoenix changeset errors.
#[derive(Debug, PartialEq)]
pub enum Invalid {
    Blank,
    TooLong,
}

/// Trim and check a message's content.
pub fn validate(message: &str) -> Result<&str, Invalid> {
    let content = message.trim();
    if content.is_empty() {
        Err(Invalid::Blank)
    } else if content.chars().count() > MAX_CHARS {
        Err(Invalid::TooLong)
    } else {
        Ok(content)
    }
}

fn now_seconds() -> i64 {
    (clock::now_ms() / 1000) as i64
}

fn room(socket: &Socket) -> &str {
    socket.topic().strip_prefix("chat:").unwrap_or_default()
}

fn message_key(room: &str, id: u64) -> String {
    // Zero-padded so that key order is id order.
    format!("chat:{room}:msg:{id:012}")
}

fn counter_key(room: &str) -> String {
    format!("chat:{room}:next_id")
}

fn error(reason: &str) -> HandleIn {
    Reply::error(json!({ "reason": reason })).into()
}

/// The message id a client sent: `"3"` or `3`.
fn message_id(payload: &Value) -> Option<u64> {
    match payload.get("message_id")? {
        Value::String(text) => text.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

impl Chat {
    fn new_message(payload: &Payload, socket: &Socket, user: &ChatUser) -> HandleIn {
        let message = payload
            .value()
            .ok()
            .and_then(|p| p.get("message").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default();
        let content = match validate(&message) {
            Ok(content) => content,
            Err(Invalid::Blank) => {
                return Reply::error(json!({"errors": {"content": ["can't be blank"]}})).into();
            }
            Err(Invalid::TooLong) => {
                return Reply::error(
                    json!({"errors": {"content": ["should be at most 2000 character(s)"]}}),
                )
                .into();
            }
        };
        let room = room(socket);
        let id = match kv::increment(&counter_key(room), 1, None) {
            Ok(id) => id as u64,
            Err(err) => {
                log::error(&format!("cannot number a message: {err}"));
                return error("not stored");
            }
        };
        let stored = Message {
            content: content.to_owned(),
            id: id.to_string(),
            inserted_at: clock::utc_iso8601(now_seconds() as u64),
            user: user.clone(),
        };
        if let Err(err) = kv::set_json(&message_key(room, id), &stored, None) {
            log::error(&format!("cannot store a message: {err}"));
            return error("not stored");
        }
        let _ = channel::broadcast("new_message", &stored);
        Reply::ok(json!({ "id": stored.id })).into()
    }

    fn delete_message(payload: &Payload, socket: &Socket, user: &ChatUser) -> HandleIn {
        let Some(id) = payload.value().ok().as_ref().and_then(message_id) else {
            return error("not_found");
        };
        let key = message_key(room(socket), id);
        match kv::get_json::<Message>(&key) {
            Ok(Some(message)) if message.user.id == user.id => {
                if let Err(err) = kv::delete(&key) {
                    log::error(&format!("cannot delete a message: {err}"));
                    return error("not deleted");
                }
                let _ = channel::broadcast("message_deleted", &json!({ "message_id": message.id }));
                Reply::ok(json!({})).into()
            }
            Ok(Some(_)) => error("forbidden"),
            Ok(None) => error("not_found"),
            Err(err) => {
                log::error(&format!("cannot read a message: {err}"));
                error("not_found")
            }
        }
    }

    fn history(socket: &Socket) -> HandleIn {
        let room = room(socket);
        let last = kv::get(&counter_key(room))
            .ok()
            .flatten()
            .and_then(|entry| entry.value.parse::<u64>().ok())
            .unwrap_or(0);
        let first = last.saturating_sub(HISTORY - 1).max(1);
        let messages: Vec<Message> = (first..=last)
            .filter_map(|id| kv::get_json::<Message>(&message_key(room, id)).ok().flatten())
            .collect();
        Reply::ok(json!({ "messages": messages })).into()
    }
}

impl Channel for Chat {
    fn join(_topic: &str, payload: Payload, socket: &mut Socket) -> Join {
        let token = payload
            .value()
            .ok()
            .and_then(|p| p.get("token").and_then(Value::as_str).map(str::to_owned));
        let user: ChatUser = match token.map(|t| token::verify::<TokenData>(SALT, &t, Some(MAX_AGE))) {
            Some(Ok(data)) => data.into(),
            _ => return Join::error(json!({"reason": "invalid_token"})),
        };
        socket.assign("chat_user", json!(user));
        // Who this channel is (every tab of a user alike, so none of them
        // hears that user's `user_joined`), and the `user_left` the room
        // hears when it ends, stamped with `left_at`.
        let identified = Announcement::new("user_left", &json!({"user_id": user.id}))
            .and_then(|left| presence::identify(&user.id.to_string(), Some(&left.stamped("left_at"))));
        if let Err(err) = identified {
            log::error(&format!("cannot identify the user: {err}"));
        }
        if let Err(err) = timers::send_self(&json!({"after_join": true})) {
            log::error(&format!("cannot schedule the after-join work: {err}"));
        }
        Join::ok(json!({}))
    }

    fn handle_in(event: &str, payload: Payload, socket: &mut Socket) -> HandleIn {
        let Some(user) = socket.get::<ChatUser>("chat_user") else {
            return HandleIn::stop("the channel has no chat user");
        };
        match event {
            "new_message" => Chat::new_message(&payload, socket, &user),
            "typing" => match payload.value().ok().and_then(|p| p.get("typing").and_then(Value::as_bool)) {
                Some(typing) => {
                    let _ = channel::broadcast_from("user_typing", &json!({"typing": typing, "user_id": user.id}));
                    HandleIn::NoReply
                }
                None => error("invalid payload"),
            },
            "delete_message" => Chat::delete_message(&payload, socket, &user),
            "history" => Chat::history(socket),
            _ => HandleIn::stop(format!("unknown event: {event}")),
        }
    }

    fn handle_info(message: Payload, socket: &mut Socket) -> HandleInfo {
        let after_join = message.value().ok().and_then(|m| m.get("after_join").and_then(Value::as_bool));
        if after_join != Some(true) {
            return HandleInfo::NoReply;
        }
        let Some(user) = socket.get::<ChatUser>("chat_user") else {
            return HandleInfo::NoReply;
        };
        let meta = json!({"name": user.name, "online_at": now_seconds()});
        if let Err(err) = presence::track(&user.id.to_string(), &meta) {
            log::error(&format!("cannot track the user: {err}"));
        }
        if let Err(err) = presence::push_state() {
            log::error(&format!("cannot push presence_state: {err}"));
        }
        let joined = Announcement::new("user_joined", &json!({"name": user.name, "user_id": user.id}))
            .and_then(|joined| presence::announce(&user.id.to_string(), &joined));
        if let Err(err) = joined {
            log::error(&format!("cannot announce the user: {err}"));
        }
        HandleInfo::NoReply
    }
}

plume_sdk::export_channel!(Chat);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_trimmed_and_bounded() {
        assert_eq!(validate("  hello  "), Ok("hello"));
        assert_eq!(validate("   "), Err(Invalid::Blank));
        assert_eq!(validate(""), Err(Invalid::Blank));
        assert_eq!(validate(&"é".repeat(2000)), Ok("é".repeat(2000).as_str()));
        assert_eq!(validate(&"a".repeat(2001)), Err(Invalid::TooLong));
    }

    #[test]
    fn message_ids_read_from_strings_or_numbers() {
        assert_eq!(message_id(&json!({"message_id": "12"})), Some(12));
        assert_eq!(message_id(&json!({"message_id": 3})), Some(3));
        assert_eq!(message_id(&json!({"message_id": "x"})), None);
        assert_eq!(message_id(&json!({})), None);
    }

    #[test]
    fn keys_sort_in_id_order() {
        assert!(message_key("r", 9) < message_key("r", 10));
    }
}
