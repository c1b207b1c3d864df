//! The [`Channel`] trait, and the glue that exports an implementation as the
//! `channel-handler` interface.

use std::marker::PhantomData;

use crate::__bindings::channel_plugin::exports::plume::plugin::channel_handler as wit;
use crate::__bindings::host::types as wit_types;
use crate::{Assigns, HandleIn, HandleInfo, HandleOut, Join, Payload, Reply, ReplyStatus, Socket};

/// The logic of one kind of channel: Phoenix's `Phoenix.Channel` behaviour.
///
/// Implement it on a unit struct and export that with
/// [`export_channel!`](crate::export_channel). The host routes topics to
/// the plugin (`room:*` in `plume.toml`) and calls these functions; they
/// take no `self` because a plugin instance keeps nothing between calls.
/// What a channel must remember goes in its [`Assigns`] (through the
/// [`Socket`]), what channels share goes in [`kv`](crate::kv).
///
/// Only [`join`](Self::join) and [`handle_in`](Self::handle_in) are
/// required; the others default to what a Phoenix channel does without
/// them.
///
/// ```no_run
/// use plume_sdk::{Channel, HandleIn, Join, Payload, Reply, Socket, json};
///
/// struct Echo;
///
/// impl Channel for Echo {
///     fn join(_topic: &str, _payload: Payload, _socket: &mut Socket) -> Join {
///         Join::ok(json!({}))
///     }
///
///     fn handle_in(_event: &str, payload: Payload, _socket: &mut Socket) -> HandleIn {
///         Reply::ok_raw(payload).into()
///     }
/// }
///
/// plume_sdk::export_channel!(Echo);
/// ```
pub trait Channel {
    /// A client asks to join `topic` with `payload` (the params of
    /// `socket.channel(topic, params)` in phoenix.js). The socket's assigns
    /// are the socket's (what [`SocketHandler::connect`](crate::SocketHandler::connect)
    /// returned); assigns set here are the channel's from now on.
    ///
    /// ```no_run
    /// use plume_sdk::{Channel, HandleIn, Join, Payload, Socket, json};
    ///
    /// struct Room;
    ///
    /// impl Channel for Room {
    ///     fn join(topic: &str, _payload: Payload, socket: &mut Socket) -> Join {
    ///         if topic == "room:private" {
    ///             return Join::error(json!({"reason": "unauthorized"}));
    ///         }
    ///         socket.assign("joined_at", plume_sdk::clock::now_ms());
    ///         Join::ok(json!({}))
    ///     }
    /// #   fn handle_in(_: &str, _: Payload, _: &mut Socket) -> HandleIn { HandleIn::NoReply }
    /// }
    /// ```
    fn join(topic: &str, payload: Payload, socket: &mut Socket) -> Join;

    /// The client pushed `event` with `payload`. Reply, don't, or stop the
    /// channel. A panic here is a crash: the client gets `phx_error`.
    ///
    /// ```no_run
    /// use plume_sdk::{Channel, HandleIn, Join, Payload, Reply, Socket, json};
    ///
    /// struct Room;
    ///
    /// impl Channel for Room {
    /// #   fn join(_: &str, _: Payload, _: &mut Socket) -> Join { Join::ok(json!({})) }
    ///     fn handle_in(event: &str, payload: Payload, _socket: &mut Socket) -> HandleIn {
    ///         match event {
    ///             "ping" => Reply::ok_raw(payload).into(),
    ///             _ => HandleIn::stop(format!("unknown event: {event}")),
    ///         }
    ///     }
    /// }
    /// ```
    fn handle_in(event: &str, payload: Payload, socket: &mut Socket) -> HandleIn;

    /// A broadcast of `event`, one of [`intercepts`](Self::intercepts), is
    /// about to reach this channel's client. Default: push it unchanged.
    ///
    /// ```no_run
    /// use plume_sdk::{Channel, HandleIn, HandleOut, Join, Payload, Socket, json};
    ///
    /// struct Chat;
    ///
    /// impl Channel for Chat {
    /// #   fn join(_: &str, _: Payload, _: &mut Socket) -> Join { Join::ok(json!({})) }
    /// #   fn handle_in(_: &str, _: Payload, _: &mut Socket) -> HandleIn { HandleIn::NoReply }
    ///     fn intercepts() -> &'static [&'static str] {
    ///         &["user_joined"]
    ///     }
    ///
    ///     fn handle_out(_event: &str, _payload: Payload, socket: &mut Socket) -> HandleOut {
    ///         if socket.get::<bool>("muted") == Some(true) {
    ///             HandleOut::Drop
    ///         } else {
    ///             HandleOut::Push
    ///         }
    ///     }
    /// }
    /// ```
    fn handle_out(event: &str, payload: Payload, socket: &mut Socket) -> HandleOut {
        let _ = (event, payload, socket);
        HandleOut::Push
    }

    /// A message for the channel itself: a timer from
    /// [`timers::send_after`](crate::timers::send_after), a
    /// [`timers::send_self`](crate::timers::send_self), or a broadcast on a
    /// topic subscribed with [`channel::subscribe`](crate::channel::subscribe)
    /// (see [`channel::Broadcast`](crate::channel::Broadcast)). Default:
    /// ignore it.
    ///
    /// ```no_run
    /// use plume_sdk::{Channel, HandleIn, HandleInfo, Join, Payload, Socket, channel, json};
    ///
    /// struct Clock;
    ///
    /// impl Channel for Clock {
    /// #   fn join(_: &str, _: Payload, _: &mut Socket) -> Join { Join::ok(json!({})) }
    /// #   fn handle_in(_: &str, _: Payload, _: &mut Socket) -> HandleIn { HandleIn::NoReply }
    ///     fn handle_info(message: Payload, _socket: &mut Socket) -> HandleInfo {
    ///         if message.raw() == r#""tick""# {
    ///             let _ = channel::push("tick", &json!({"at": plume_sdk::clock::now_ms()}));
    ///         }
    ///         HandleInfo::NoReply
    ///     }
    /// }
    /// ```
    fn handle_info(message: Payload, socket: &mut Socket) -> HandleInfo {
        let _ = (message, socket);
        HandleInfo::NoReply
    }

    /// The channel ends: `reason` is `leave`, `closed` (the socket went
    /// away), `shutdown`, `crash` or the reason of a [`Stop`](crate::Stop).
    /// Effects (broadcasts, key-value writes) still apply; the assigns are
    /// gone. Default: nothing.
    ///
    /// ```no_run
    /// use plume_sdk::{Channel, HandleIn, Join, Payload, Socket, channel, json};
    ///
    /// struct Room;
    ///
    /// impl Channel for Room {
    /// #   fn join(_: &str, _: Payload, _: &mut Socket) -> Join { Join::ok(json!({})) }
    /// #   fn handle_in(_: &str, _: Payload, _: &mut Socket) -> HandleIn { HandleIn::NoReply }
    ///     fn terminate(reason: &str, socket: &Socket) {
    ///         let _ = channel::broadcast_from("left", &json!({"who": socket.socket_id(), "why": reason}));
    ///     }
    /// }
    /// ```
    fn terminate(reason: &str, socket: &Socket) {
        let _ = (reason, socket);
    }

    /// The events whose broadcasts go through [`handle_out`](Self::handle_out).
    /// Every other event is encoded once and written to every subscriber,
    /// so intercept only what needs it. Asked once per loaded version.
    /// Default: none.
    ///
    /// ```no_run
    /// use plume_sdk::{Channel, HandleIn, Join, Payload, Socket, json};
    ///
    /// struct Chat;
    ///
    /// impl Channel for Chat {
    /// #   fn join(_: &str, _: Payload, _: &mut Socket) -> Join { Join::ok(json!({})) }
    /// #   fn handle_in(_: &str, _: Payload, _: &mut Socket) -> HandleIn { HandleIn::NoReply }
    ///     fn intercepts() -> &'static [&'static str] {
    ///         &["new_msg", "user_joined"]
    ///     }
    /// }
    /// ```
    fn intercepts() -> &'static [&'static str] {
        &[]
    }

    /// A new version of the plugin went live while this channel was joined;
    /// `from_version` is the id of the version that served it until now.
    /// Migrate the assigns in place; an error ends the channel with
    /// `phx_error`. Default: keep the assigns as they are.
    ///
    /// ```no_run
    /// use plume_sdk::{Assigns, Channel, HandleIn, Join, Payload, Socket, json};
    ///
    /// struct Game;
    ///
    /// impl Channel for Game {
    /// #   fn join(_: &str, _: Payload, _: &mut Socket) -> Join { Join::ok(json!({})) }
    /// #   fn handle_in(_: &str, _: Payload, _: &mut Socket) -> HandleIn { HandleIn::NoReply }
    ///     fn upgrade(_from_version: &str, assigns: &mut Assigns) -> Result<(), String> {
    ///         // Version 2 renamed `score` to `points`.
    ///         if let Some(score) = assigns.remove("score") {
    ///             assigns.assign("points", score);
    ///         }
    ///         Ok(())
    ///     }
    /// }
    /// ```
    fn upgrade(from_version: &str, assigns: &mut Assigns) -> Result<(), String> {
        let _ = (from_version, assigns);
        Ok(())
    }
}

/// Adapts a [`Channel`] to the generated `channel-handler` export trait.
/// Named only by [`export_channel!`](crate::export_channel).
#[doc(hidden)]
pub struct ChannelExport<T>(PhantomData<T>);

impl<T: Channel> wit::Guest for ChannelExport<T> {
    fn join(
        topic: String,
        payload: wit_types::Payload,
        socket: wit_types::Socket,
    ) -> Result<wit::Joined, String> {
        crate::panic::install_hook();
        let mut socket = Socket::from(socket);
        match T::join(&topic, Payload::from(payload), &mut socket) {
            Join::Ok(reply) => Ok(wit::Joined {
                reply: reply.into_raw(),
                assigns: socket.into_changed_assigns(),
            }),
            Join::Error(reply) => Err(reply.into_raw()),
        }
    }

    fn handle_in(event: String, payload: wit_types::Payload, socket: wit_types::Socket) -> wit::Handled {
        crate::panic::install_hook();
        let mut socket = Socket::from(socket);
        let action = match T::handle_in(&event, Payload::from(payload), &mut socket) {
            HandleIn::Reply(reply) => wit::Action::Reply(reply.into()),
            HandleIn::NoReply => wit::Action::Noreply,
            HandleIn::Stop(stop) => {
                let (reason, reply) = stop.into_parts();
                wit::Action::Stop(wit::Stop {
                    reason,
                    reply: reply.map(Into::into),
                })
            }
        };
        wit::Handled {
            action,
            assigns: socket.into_changed_assigns(),
        }
    }

    fn handle_out(event: String, payload: wit_types::Payload, socket: wit_types::Socket) -> wit::OutHandled {
        crate::panic::install_hook();
        let mut socket = Socket::from(socket);
        let action = match T::handle_out(&event, Payload::from(payload), &mut socket) {
            HandleOut::Push => wit::OutAction::Push(None),
            HandleOut::PushChanged(payload) => wit::OutAction::Push(Some(payload.into())),
            HandleOut::Drop => wit::OutAction::Drop,
        };
        wit::OutHandled {
            action,
            assigns: socket.into_changed_assigns(),
        }
    }

    fn handle_info(message: String, socket: wit_types::Socket) -> wit::InfoHandled {
        crate::panic::install_hook();
        let mut socket = Socket::from(socket);
        let action = match T::handle_info(Payload::from_raw(message), &mut socket) {
            HandleInfo::NoReply => wit::InfoAction::Noreply,
            HandleInfo::Stop(reason) => wit::InfoAction::Stop(reason),
        };
        wit::InfoHandled {
            action,
            assigns: socket.into_changed_assigns(),
        }
    }

    fn terminate(reason: String, socket: wit_types::Socket) {
        crate::panic::install_hook();
        T::terminate(&reason, &Socket::from(socket));
    }

    fn intercepts() -> Vec<String> {
        crate::panic::install_hook();
        T::intercepts()
            .iter()
            .map(|event| (*event).to_owned())
            .collect()
    }

    fn upgrade(from_version: String, assigns: String) -> Result<Option<String>, String> {
        crate::panic::install_hook();
        let mut assigns = Assigns::from_json(assigns);
        T::upgrade(&from_version, &mut assigns)?;
        Ok(assigns.into_changed())
    }
}

impl From<Reply> for wit_types::Reply {
    fn from(reply: Reply) -> Self {
        let (status, payload) = reply.into_parts();
        let status = match status {
            ReplyStatus::Ok => wit_types::ReplyStatus::Ok,
            ReplyStatus::Error => wit_types::ReplyStatus::Error,
        };
        Self {
            status,
            payload: payload.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::wit::Guest;
    use super::*;
    use crate::{HandleIn, Stop, json};

    /// A channel that exercises each outcome without calling the host.
    struct Counter;

    impl Channel for Counter {
        fn join(topic: &str, _payload: Payload, socket: &mut Socket) -> Join {
            if topic == "counter:closed" {
                return Join::error(json!({"reason": "closed"}));
            }
            socket.assign("count", 0);
            Join::ok(json!({}))
        }

        fn handle_in(event: &str, payload: Payload, socket: &mut Socket) -> HandleIn {
            match event {
                "ping" => Reply::ok_raw(payload).into(),
                "bump" => {
                    let count = socket.get::<u64>("count").unwrap_or(0) + 1;
                    socket.assign("count", count);
                    HandleIn::NoReply
                }
                _ => Stop::new("bye").with_reply(Reply::error(json!({}))).into(),
            }
        }

        fn intercepts() -> &'static [&'static str] {
            &["new_msg"]
        }
    }

    type Export = ChannelExport<Counter>;

    fn json_payload(raw: &str) -> wit_types::Payload {
        wit_types::Payload::Json(raw.to_owned())
    }

    #[test]
    fn a_binary_ping_is_echoed_as_bytes() {
        let handled = Export::handle_in("ping".into(), wit_types::Payload::Binary(vec![1, 2]), socket("{}"));
        let wit::Action::Reply(reply) = handled.action else {
            panic!("expected a reply, got {:?}", handled.action);
        };
        assert_eq!(Payload::from(reply.payload), Payload::binary(vec![1, 2]));
    }

    fn socket(assigns: &str) -> wit_types::Socket {
        wit_types::Socket {
            topic: "counter:1".to_owned(),
            join_ref: Some("1".to_owned()),
            socket_id: None,
            assigns: assigns.to_owned(),
        }
    }

    #[test]
    fn a_join_that_assigns_hands_the_assigns_back() {
        let joined = Export::join("counter:1".into(), json_payload("{}"), socket(r#"{"user":1}"#));
        let Ok(joined) = joined else {
            panic!("the join was refused");
        };
        assert_eq!(joined.reply, "{}");
        assert_eq!(joined.assigns.as_deref(), Some(r#"{"count":0,"user":1}"#));
    }

    #[test]
    fn a_refused_join_is_an_error_with_its_response() {
        let refused = Export::join("counter:closed".into(), json_payload("{}"), socket("{}"));
        assert_eq!(refused.err().as_deref(), Some(r#"{"reason":"closed"}"#));
    }

    #[test]
    fn a_ping_echoes_and_leaves_the_assigns_alone() {
        let handled = Export::handle_in("ping".into(), json_payload(r#" {"b": 1} "#), socket("{}"));
        assert!(handled.assigns.is_none());
        let wit::Action::Reply(reply) = handled.action else {
            panic!("expected a reply, got {:?}", handled.action);
        };
        assert!(matches!(reply.status, wit_types::ReplyStatus::Ok));
        assert_eq!(Payload::from(reply.payload).raw(), r#" {"b": 1} "#);
    }

    #[test]
    fn a_noreply_that_assigns_hands_the_assigns_back() {
        let handled = Export::handle_in("bump".into(), json_payload("{}"), socket(r#"{"count":1}"#));
        assert!(matches!(handled.action, wit::Action::Noreply));
        assert_eq!(handled.assigns.as_deref(), Some(r#"{"count":2}"#));
    }

    #[test]
    fn a_stop_carries_its_reason_and_reply() {
        let handled = Export::handle_in("other".into(), json_payload("{}"), socket("{}"));
        let wit::Action::Stop(stop) = handled.action else {
            panic!("expected a stop, got {:?}", handled.action);
        };
        assert_eq!(stop.reason, "bye");
        assert!(
            stop.reply
                .is_some_and(|reply| matches!(reply.status, wit_types::ReplyStatus::Error))
        );
    }

    #[test]
    fn handle_out_pushes_unchanged_by_default() {
        let handled = Export::handle_out("new_msg".into(), json_payload("{}"), socket("{}"));
        assert!(matches!(handled.action, wit::OutAction::Push(None)));
        assert!(handled.assigns.is_none());
    }

    #[test]
    fn handle_info_does_nothing_by_default() {
        let handled = Export::handle_info(r#""tick""#.into(), socket("{}"));
        assert!(matches!(handled.action, wit::InfoAction::Noreply));
        assert!(handled.assigns.is_none());
    }

    #[test]
    fn intercepts_lists_the_declared_events() {
        assert_eq!(Export::intercepts(), ["new_msg"]);
    }

    #[test]
    fn upgrade_keeps_the_assigns_by_default() {
        assert_eq!(
            Export::upgrade("v1".into(), r#"{"count":1}"#.into()),
            Ok(None)
        );
    }
}
