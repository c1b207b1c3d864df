//! Between the SDK's bindings of `wit/plume.wit` (what native plugin code
//! speaks) and the host's (what the runtime speaks). Both are generated
//! from the same WIT by two generators, so each conversion maps a type to
//! its twin field by field.
//!
//! What the host lends a call (event, payload, socket view) is copied, as
//! lowering it into a component's memory copies it; what a call returns is
//! moved.

use plume_sdk::__bindings::channel_plugin::exports::plume::plugin::channel_handler as guest;
use plume_sdk::__bindings::host as guest_imports;
use plume_sdk::__bindings::host::types as guest_types;

use crate::runtime::bindings::channel::exports::plume::plugin::channel_handler as host;
use crate::runtime::bindings::imports as host_imports;
use crate::runtime::bindings::imports::types as host_types;
use crate::runtime::LentPayload;

impl From<LentPayload<'_>> for guest_types::Payload {
    fn from(payload: LentPayload<'_>) -> Self {
        match payload {
            LentPayload::Json(json) => Self::Json(json.to_owned()),
            LentPayload::Binary(bytes) => Self::Binary(bytes.to_vec()),
        }
    }
}

impl From<&guest_types::Payload> for host_types::Payload {
    fn from(payload: &guest_types::Payload) -> Self {
        match payload {
            guest_types::Payload::Json(json) => Self::Json(json.clone()),
            guest_types::Payload::Binary(bytes) => Self::Binary(bytes.clone()),
        }
    }
}

impl From<guest_types::Payload> for host_types::Payload {
    fn from(payload: guest_types::Payload) -> Self {
        match payload {
            guest_types::Payload::Json(json) => Self::Json(json),
            guest_types::Payload::Binary(bytes) => Self::Binary(bytes),
        }
    }
}

impl From<&host_types::Socket> for guest_types::Socket {
    fn from(socket: &host_types::Socket) -> Self {
        Self {
            topic: socket.topic.clone(),
            join_ref: socket.join_ref.clone(),
            socket_id: socket.socket_id.clone(),
            assigns: socket.assigns.clone(),
        }
    }
}

impl From<guest_types::Reply> for host_types::Reply {
    fn from(reply: guest_types::Reply) -> Self {
        Self {
            status: match reply.status {
                guest_types::ReplyStatus::Ok => host_types::ReplyStatus::Ok,
                guest_types::ReplyStatus::Error => host_types::ReplyStatus::Error,
            },
            payload: reply.payload.into(),
        }
    }
}

impl From<guest::Joined> for host::Joined {
    fn from(joined: guest::Joined) -> Self {
        Self {
            reply: joined.reply,
            assigns: joined.assigns,
        }
    }
}

impl From<guest::Handled> for host::Handled {
    fn from(handled: guest::Handled) -> Self {
        let action = match handled.action {
            guest::Action::Reply(reply) => host::Action::Reply(reply.into()),
            guest::Action::Noreply => host::Action::Noreply,
            guest::Action::Stop(stop) => host::Action::Stop(host::Stop {
                reason: stop.reason,
                reply: stop.reply.map(Into::into),
            }),
        };
        Self {
            action,
            assigns: handled.assigns,
        }
    }
}

impl From<guest::OutHandled> for host::OutHandled {
    fn from(handled: guest::OutHandled) -> Self {
        let action = match handled.action {
            guest::OutAction::Push(payload) => host::OutAction::Push(payload.map(Into::into)),
            guest::OutAction::Drop => host::OutAction::Drop,
        };
        Self {
            action,
            assigns: handled.assigns,
        }
    }
}

impl From<guest::InfoHandled> for host::InfoHandled {
    fn from(handled: guest::InfoHandled) -> Self {
        let action = match handled.action {
            guest::InfoAction::Noreply => host::InfoAction::Noreply,
            guest::InfoAction::Stop(reason) => host::InfoAction::Stop(reason),
        };
        Self {
            action,
            assigns: handled.assigns,
        }
    }
}

impl From<host_imports::channel::ChannelError> for guest_imports::channel::ChannelError {
    fn from(error: host_imports::channel::ChannelError) -> Self {
        use host_imports::channel::ChannelError as Host;
        match error {
            Host::NotInChannel => Self::NotInChannel,
            Host::InvalidJson(text) => Self::InvalidJson(text),
            Host::InvalidTopic(text) => Self::InvalidTopic(text),
            Host::Limit(text) => Self::Limit(text),
            Host::NotGranted(text) => Self::NotGranted(text),
            Host::Unavailable(text) => Self::Unavailable(text),
            Host::InvalidRef(text) => Self::InvalidRef(text),
            Host::StaleRef(text) => Self::StaleRef(text),
        }
    }
}

impl From<host_imports::timers::TimerError> for guest_imports::timers::TimerError {
    fn from(error: host_imports::timers::TimerError) -> Self {
        use host_imports::timers::TimerError as Host;
        match error {
            Host::NotInChannel => Self::NotInChannel,
            Host::InvalidJson(text) => Self::InvalidJson(text),
            Host::Limit(text) => Self::Limit(text),
        }
    }
}

impl From<host_imports::presence::PresenceError> for guest_imports::presence::PresenceError {
    fn from(error: host_imports::presence::PresenceError) -> Self {
        use host_imports::presence::PresenceError as Host;
        match error {
            Host::NotEnabled => Self::NotEnabled,
            Host::NotInChannel => Self::NotInChannel,
            Host::InvalidJson(text) => Self::InvalidJson(text),
            Host::NotTracked => Self::NotTracked,
            Host::Limit(text) => Self::Limit(text),
            Host::NotGranted(text) => Self::NotGranted(text),
            Host::Unavailable(text) => Self::Unavailable(text),
        }
    }
}

impl From<host_imports::kv::KvError> for guest_imports::kv::KvError {
    fn from(error: host_imports::kv::KvError) -> Self {
        use host_imports::kv::KvError as Host;
        match error {
            Host::InvalidKey(text) => Self::InvalidKey(text),
            Host::NotANumber => Self::NotANumber,
            Host::Quota(text) => Self::Quota(text),
            Host::Unavailable(text) => Self::Unavailable(text),
            Host::NotGranted(text) => Self::NotGranted(text),
        }
    }
}

impl From<host_imports::http::HttpError> for guest_imports::http::HttpError {
    fn from(error: host_imports::http::HttpError) -> Self {
        use host_imports::http::HttpError as Host;
        match error {
            Host::NotGranted(text) => Self::NotGranted(text),
            Host::NotAllowed(text) => Self::NotAllowed(text),
            Host::Limit(text) => Self::Limit(text),
            Host::Invalid(text) => Self::Invalid(text),
            Host::NotInChannel => Self::NotInChannel,
        }
    }
}

impl From<&guest_imports::http::Request> for host_imports::http::Request {
    fn from(request: &guest_imports::http::Request) -> Self {
        Self {
            method: request.method.clone(),
            url: request.url.clone(),
            headers: request.headers.clone(),
            body: request.body.clone(),
            timeout_ms: request.timeout_ms,
        }
    }
}

impl From<&guest_types::Reply> for host_types::Reply {
    fn from(reply: &guest_types::Reply) -> Self {
        Self {
            status: match reply.status {
                guest_types::ReplyStatus::Ok => host_types::ReplyStatus::Ok,
                guest_types::ReplyStatus::Error => host_types::ReplyStatus::Error,
            },
            payload: (&reply.payload).into(),
        }
    }
}

impl From<host_imports::kv::Entry> for guest_imports::kv::Entry {
    fn from(entry: host_imports::kv::Entry) -> Self {
        Self {
            value: entry.value,
            version: entry.version,
        }
    }
}

impl From<host_imports::token::TokenError> for guest_imports::token::TokenError {
    fn from(error: host_imports::token::TokenError) -> Self {
        use host_imports::token::TokenError as Host;
        match error {
            Host::Invalid => Self::Invalid,
            Host::Expired => Self::Expired,
            Host::Missing => Self::Missing,
            Host::InvalidData(text) => Self::InvalidData(text),
        }
    }
}

impl From<guest_imports::log::Level> for host_imports::log::Level {
    fn from(level: guest_imports::log::Level) -> Self {
        use guest_imports::log::Level as Guest;
        match level {
            Guest::Trace => Self::Trace,
            Guest::Debug => Self::Debug,
            Guest::Info => Self::Info,
            Guest::Warn => Self::Warn,
            Guest::Error => Self::Error,
        }
    }
}

impl From<host_imports::figures::AppFigures> for guest_imports::figures::AppFigures {
    fn from(figures: host_imports::figures::AppFigures) -> Self {
        Self {
            connections: figures.connections,
            channels: figures.channels,
            users: figures.users,
            plugins: figures
                .plugins
                .into_iter()
                .map(|plugin| guest_imports::figures::PluginFigure {
                    name: plugin.name,
                    version: plugin.version,
                    channels: plugin.channels,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host payload's kind (JSON or not) and bytes: the bindings derive
    /// no equality.
    fn parts(payload: host_types::Payload) -> (bool, Vec<u8>) {
        match payload {
            host_types::Payload::Json(json) => (true, json.into_bytes()),
            host_types::Payload::Binary(bytes) => (false, bytes),
        }
    }

    #[test]
    fn payloads_keep_their_kind_and_bytes_both_ways() {
        let json = host_types::Payload::Json(r#" {"b": 1} "#.into());
        let binary = host_types::Payload::Binary(vec![0, 255, 7]);
        for payload in [json, binary] {
            let guest = guest_types::Payload::from(LentPayload::from(&payload));
            assert_eq!(parts(host_types::Payload::from(&guest)), parts(payload.clone()));
            assert_eq!(parts(host_types::Payload::from(guest)), parts(payload));
        }
    }

    #[test]
    fn a_socket_view_crosses_with_every_field() {
        let view = host_types::Socket {
            topic: "room:lobby".into(),
            join_ref: Some("3".into()),
            socket_id: None,
            assigns: r#"{"user":{"id":1}}"#.into(),
        };
        let guest = guest_types::Socket::from(&view);
        assert_eq!(
            (guest.topic.as_str(), guest.join_ref.as_deref(), guest.socket_id.as_deref(), guest.assigns.as_str()),
            ("room:lobby", Some("3"), None, r#"{"user":{"id":1}}"#)
        );
    }

    #[test]
    fn a_stop_keeps_its_reason_reply_status_and_assigns() {
        let handled = host::Handled::from(guest::Handled {
            action: guest::Action::Stop(guest::Stop {
                reason: "shutdown".into(),
                reply: Some(guest_types::Reply {
                    status: guest_types::ReplyStatus::Error,
                    payload: guest_types::Payload::Json("{}".into()),
                }),
            }),
            assigns: Some(r#"{"n":1}"#.into()),
        });
        let host::Action::Stop(stop) = handled.action else {
            panic!("expected a stop, got {:?}", handled.action);
        };
        assert_eq!(stop.reason, "shutdown");
        let reply = stop.reply.expect("the stop's reply");
        assert!(matches!(reply.status, host_types::ReplyStatus::Error));
        assert_eq!(parts(reply.payload), (true, b"{}".to_vec()));
        assert_eq!(handled.assigns.as_deref(), Some(r#"{"n":1}"#));
    }

    #[test]
    fn a_reply_keeps_its_status() {
        for (guest_status, ok) in [(guest_types::ReplyStatus::Ok, true), (guest_types::ReplyStatus::Error, false)] {
            let reply = host_types::Reply::from(guest_types::Reply {
                status: guest_status,
                payload: guest_types::Payload::Binary(vec![1]),
            });
            assert_eq!(matches!(reply.status, host_types::ReplyStatus::Ok), ok);
            assert_eq!(parts(reply.payload), (false, vec![1]));
        }
    }

    #[test]
    fn handle_out_distinguishes_unchanged_changed_and_dropped() {
        let unchanged = host::OutHandled::from(guest::OutHandled {
            action: guest::OutAction::Push(None),
            assigns: None,
        });
        assert!(matches!(unchanged.action, host::OutAction::Push(None)));
        let changed = host::OutHandled::from(guest::OutHandled {
            action: guest::OutAction::Push(Some(guest_types::Payload::Json("1".into()))),
            assigns: None,
        });
        assert!(matches!(changed.action, host::OutAction::Push(Some(host_types::Payload::Json(ref json))) if json == "1"));
        let dropped = host::OutHandled::from(guest::OutHandled {
            action: guest::OutAction::Drop,
            assigns: Some("{}".into()),
        });
        assert!(matches!(dropped.action, host::OutAction::Drop));
        assert_eq!(dropped.assigns.as_deref(), Some("{}"));
    }

    #[test]
    fn import_errors_keep_their_variant_and_text() {
        use guest_imports::channel::ChannelError as Guest;
        use host_imports::channel::ChannelError as Host;
        assert!(matches!(Guest::from(Host::InvalidTopic("long".into())), Guest::InvalidTopic(text) if text == "long"));
        assert!(matches!(Guest::from(Host::Limit("rate".into())), Guest::Limit(text) if text == "rate"));
        assert!(matches!(Guest::from(Host::NotGranted("kv".into())), Guest::NotGranted(text) if text == "kv"));
        assert!(matches!(Guest::from(Host::StaleRef("gone".into())), Guest::StaleRef(text) if text == "gone"));
        assert!(matches!(
            guest_imports::kv::KvError::from(host_imports::kv::KvError::NotANumber),
            guest_imports::kv::KvError::NotANumber
        ));
        assert!(matches!(
            guest_imports::presence::PresenceError::from(host_imports::presence::PresenceError::NotTracked),
            guest_imports::presence::PresenceError::NotTracked
        ));
    }
}
