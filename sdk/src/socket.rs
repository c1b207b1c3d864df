//! [`Socket`]: what a channel handler sees of its channel and socket.

use serde::Deserialize;
use serde_json::Value;

use crate::__bindings::host::types as wit;
use crate::Assigns;

/// The channel a call is made for: its topic, join reference, the socket's
/// id, and the channel's [`Assigns`].
///
/// Every [`Channel`](crate::Channel) callback gets one. Changes to the
/// assigns made through it are handed back to the host when the callback
/// returns, and only if there were changes.
///
/// ```
/// use plume_sdk::{Channel, HandleIn, Join, Payload, Reply, Socket, json};
///
/// struct Counter;
///
/// impl Channel for Counter {
///     fn join(_topic: &str, _payload: Payload, socket: &mut Socket) -> Join {
///         socket.assign("count", 0);
///         Join::ok(json!({}))
///     }
///
///     fn handle_in(_event: &str, _payload: Payload, socket: &mut Socket) -> HandleIn {
///         let count = socket.get::<u64>("count").unwrap_or(0) + 1;
///         socket.assign("count", count);
///         Reply::ok(json!({"count": count})).into()
///     }
/// }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Socket {
    topic: String,
    join_ref: Option<String>,
    socket_id: Option<String>,
    assigns: Assigns,
}

impl Socket {
    /// A socket joined to `topic` with `assigns`, for tests of a handler.
    ///
    /// ```
    /// use plume_sdk::{Assigns, Socket, json};
    ///
    /// let socket = Socket::new("room:lobby", Assigns::new().with("user", json!({"id": 1})));
    /// assert_eq!(socket.topic(), "room:lobby");
    /// ```
    pub fn new(topic: impl Into<String>, assigns: Assigns) -> Self {
        Self {
            topic: topic.into(),
            join_ref: None,
            socket_id: None,
            assigns,
        }
    }

    /// The channel's topic, such as `room:lobby`.
    ///
    /// ```
    /// # let socket = plume_sdk::Socket::new("room:42", plume_sdk::Assigns::new());
    /// let room = socket.topic().strip_prefix("room:");
    /// assert_eq!(room, Some("42"));
    /// ```
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The join reference the client sent with `phx_join`.
    ///
    /// ```no_run
    /// # let socket = plume_sdk::Socket::new("room:42", plume_sdk::Assigns::new());
    /// plume_sdk::log::debug(&format!("join ref {:?}", socket.join_ref()));
    /// ```
    pub fn join_ref(&self) -> Option<&str> {
        self.join_ref.as_deref()
    }

    /// The socket's id, as the socket plugin's
    /// [`id`](crate::SocketHandler::id) returned it; `None` for an
    /// anonymous socket.
    ///
    /// ```no_run
    /// # let socket = plume_sdk::Socket::new("room:42", plume_sdk::Assigns::new());
    /// if let Some(id) = socket.socket_id() {
    ///     let sockets = plume_sdk::figures::connections_of(id);
    ///     plume_sdk::log::info(&format!("{id} has {sockets} sockets open"));
    /// }
    /// ```
    pub fn socket_id(&self) -> Option<&str> {
        self.socket_id.as_deref()
    }

    /// The channel's assigns.
    ///
    /// ```
    /// # let socket = plume_sdk::Socket::new("room:42", plume_sdk::Assigns::new());
    /// let nickname = socket.assigns().as_map().get("nickname");
    /// ```
    pub fn assigns(&self) -> &Assigns {
        &self.assigns
    }

    /// The channel's assigns, to change them.
    ///
    /// ```
    /// # let mut socket = plume_sdk::Socket::new("room:42", plume_sdk::Assigns::new());
    /// socket.assigns_mut().remove("typing");
    /// ```
    pub fn assigns_mut(&mut self) -> &mut Assigns {
        &mut self.assigns
    }

    /// The socket's user: the `user` assign `{"id", "name", "role"}` of
    /// plume's socket plugins (see [`User`](crate::User)); `None` when the
    /// socket has none (no socket plugin, another convention).
    ///
    /// ```
    /// # use plume_sdk::{Assigns, Socket, json};
    /// let socket = Socket::new("room:42", Assigns::new().with("user", json!({"id": 1, "name": "ada", "role": "user"})));
    /// assert_eq!(socket.user().map(|user| user.id), Some(1));
    /// ```
    pub fn user(&self) -> Option<crate::User> {
        self.get("user")
    }

    /// Shorthand for [`Assigns::get`] on the channel's assigns.
    ///
    /// ```
    /// # let socket = plume_sdk::Socket::new("room:42", plume_sdk::Assigns::new());
    /// let name: Option<String> = socket.get("nickname");
    /// ```
    pub fn get<'a, T: Deserialize<'a>>(&'a self, key: &str) -> Option<T> {
        self.assigns.get(key)
    }

    /// Shorthand for [`Assigns::assign`] on the channel's assigns.
    ///
    /// ```
    /// # let mut socket = plume_sdk::Socket::new("room:42", plume_sdk::Assigns::new());
    /// socket.assign("nickname", "ada").assign("typing", false);
    /// ```
    pub fn assign(&mut self, key: impl Into<String>, value: impl Into<Value>) -> &mut Self {
        self.assigns.assign(key, value);
        self
    }

    /// Remove `key` from the assigns and return its value as a `T`:
    /// `None` when absent or of another shape (it is removed either way).
    /// For what is used once, such as a [`SocketRef`](crate::channel::SocketRef)
    /// kept until an HTTP outcome arrives.
    ///
    /// ```
    /// # let mut socket = plume_sdk::Socket::new("room:42", plume_sdk::Assigns::new());
    /// socket.assign("pending", 3);
    /// assert_eq!(socket.take::<u64>("pending"), Some(3));
    /// assert_eq!(socket.take::<u64>("pending"), None);
    /// ```
    pub fn take<T: serde::de::DeserializeOwned>(&mut self, key: &str) -> Option<T> {
        self.assigns.remove(key).and_then(|value| serde_json::from_value(value).ok())
    }

    /// The assigns to hand back to the host: `None` when unchanged.
    pub(crate) fn into_changed_assigns(self) -> Option<String> {
        self.assigns.into_changed()
    }
}

impl From<wit::Socket> for Socket {
    fn from(socket: wit::Socket) -> Self {
        Self {
            topic: socket.topic,
            join_ref: socket.join_ref,
            socket_id: socket.socket_id,
            assigns: Assigns::from_json(socket.assigns),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn received(assigns: Value) -> Socket {
        Socket::from(wit::Socket {
            topic: "room:lobby".to_owned(),
            join_ref: Some("1".to_owned()),
            socket_id: Some("user_socket:1".to_owned()),
            assigns: assigns.to_string(),
        })
    }

    #[test]
    fn a_socket_carries_what_the_host_sent() {
        let socket = received(json!({"user": {"id": 1}}));
        assert_eq!(socket.topic(), "room:lobby");
        assert_eq!(socket.join_ref(), Some("1"));
        assert_eq!(socket.socket_id(), Some("user_socket:1"));
        assert_eq!(socket.get::<Value>("user"), Some(json!({"id": 1})));
    }

    #[test]
    fn a_handler_that_only_reads_sends_no_assigns() {
        let socket = received(json!({"user": {"id": 1}}));
        assert_eq!(socket.get::<u64>("missing"), None);
        assert_eq!(socket.into_changed_assigns(), None);
    }

    #[test]
    fn an_assign_through_the_socket_is_sent_back() {
        let mut socket = received(json!({}));
        socket.assign("typing", true);
        assert_eq!(
            socket.into_changed_assigns().as_deref(),
            Some(r#"{"typing":true}"#)
        );
    }
}
