//! The [`SocketHandler`] trait, and the glue that exports an implementation
//! as the `socket-handler` interface.

use std::marker::PhantomData;

use crate::__bindings::socket_plugin::exports::plume::plugin::socket_handler as wit;
use crate::{Assigns, Payload};

/// Who may connect: Phoenix's `Phoenix.Socket` behaviour (`connect/3` and
/// `id/1`).
///
/// Implement it on a unit struct and export that with
/// [`export_socket!`](crate::export_socket). The host calls
/// [`connect`](Self::connect) once per WebSocket (or long-poll session)
/// before any channel is joined.
///
/// ```no_run
/// use plume_sdk::{Assigns, ConnectInfo, Payload, SocketHandler, json};
///
/// struct Anonymous;
///
/// impl SocketHandler for Anonymous {
///     fn connect(_params: Payload, info: ConnectInfo) -> Result<Assigns, String> {
///         Ok(Assigns::new().with("peer", info.peer_address))
///     }
/// }
///
/// plume_sdk::export_socket!(Anonymous);
/// ```
pub trait SocketHandler {
    /// Accept or refuse a connection. `params` is a JSON object of the query
    /// parameters (`vsn` removed; phoenix.js's `params` option). `Ok`
    /// carries the socket's assigns, which every channel of the socket
    /// starts with; `Err` refuses the connection with HTTP 403, and its text
    /// is logged by the host, never sent to the client.
    ///
    /// plume's socket plugins assign the socket's [`User`](crate::User) as
    /// `user` (`{"id", "name", "role"}`), which channels read with
    /// [`Socket::user`](crate::Socket::user); do the same unless you have a
    /// reason not to.
    ///
    /// ```no_run
    /// use plume_sdk::{Assigns, ConnectInfo, Payload, SocketHandler, User, json, token};
    ///
    /// struct UserSocket;
    ///
    /// impl SocketHandler for UserSocket {
    ///     fn connect(params: Payload, _info: ConnectInfo) -> Result<Assigns, String> {
    ///         let token: String = params
    ///             .value()
    ///             .ok()
    ///             .and_then(|params| params["token"].as_str().map(str::to_owned))
    ///             .ok_or("no token param")?;
    ///         let user: User = token::verify("user socket", &token, None)
    ///             .map_err(|err| format!("token refused: {err}"))?;
    ///         let mut assigns = Assigns::new();
    ///         assigns.try_assign("user", &user).map_err(|err| err.to_string())?;
    ///         Ok(assigns)
    ///     }
    /// }
    /// ```
    fn connect(params: Payload, info: ConnectInfo) -> Result<Assigns, String>;

    /// The socket's id, given the assigns `connect` returned; sockets that
    /// share an id can be closed together with
    /// [`channel::disconnect`](crate::channel::disconnect). Default: `None`,
    /// an anonymous socket.
    ///
    /// ```no_run
    /// use plume_sdk::{Assigns, ConnectInfo, Payload, SocketHandler, User};
    ///
    /// struct UserSocket;
    ///
    /// impl SocketHandler for UserSocket {
    /// #   fn connect(_: Payload, _: ConnectInfo) -> Result<Assigns, String> { Ok(Assigns::new()) }
    ///     fn id(assigns: &Assigns) -> Option<String> {
    ///         let user: User = assigns.get("user")?;
    ///         Some(format!("user_socket:{}", user.id))
    ///     }
    /// }
    /// ```
    fn id(assigns: &Assigns) -> Option<String> {
        let _ = assigns;
        None
    }
}

/// What the host knows of a connection besides its params.
///
/// ```no_run
/// use plume_sdk::ConnectInfo;
///
/// fn from_our_site(info: &ConnectInfo) -> bool {
///     info.origin.as_deref() == Some("https://example.com")
/// }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectInfo {
    /// The peer's address, `ip:port`.
    pub peer_address: Option<String>,
    /// The `Origin` header, if sent.
    pub origin: Option<String>,
    /// The `User-Agent` header, if sent.
    pub user_agent: Option<String>,
    /// The token phoenix.js sends with its `authToken` option, decoded.
    pub auth_token: Option<String>,
    /// Every `x-` header, names lower-cased.
    pub x_headers: Vec<(String, String)>,
    /// The request path and query.
    pub uri: String,
}

impl ConnectInfo {
    /// The value of the `x-` header `name` (lower-case), if sent.
    ///
    /// ```
    /// # let info = plume_sdk::ConnectInfo::default();
    /// let tenant = info.x_header("x-tenant").unwrap_or("default");
    /// ```
    pub fn x_header(&self, name: &str) -> Option<&str> {
        self.x_headers
            .iter()
            .find(|(header, _)| header == name)
            .map(|(_, value)| value.as_str())
    }
}

impl From<wit::ConnectInfo> for ConnectInfo {
    fn from(info: wit::ConnectInfo) -> Self {
        Self {
            peer_address: info.peer_address,
            origin: info.origin,
            user_agent: info.user_agent,
            auth_token: info.auth_token,
            x_headers: info.x_headers,
            uri: info.uri,
        }
    }
}

/// Adapts a [`SocketHandler`] to the generated `socket-handler` export
/// trait. Named only by [`export_socket!`](crate::export_socket).
#[doc(hidden)]
pub struct SocketExport<T>(PhantomData<T>);

impl<T: SocketHandler> wit::Guest for SocketExport<T> {
    fn connect(params: String, info: wit::ConnectInfo) -> Result<String, String> {
        crate::panic::install_hook();
        T::connect(Payload::from_raw(params), info.into()).map(Assigns::into_json)
    }

    fn id(assigns: String) -> Option<String> {
        crate::panic::install_hook();
        T::id(&Assigns::from_json(assigns))
    }
}

#[cfg(test)]
mod tests {
    use super::wit::Guest;
    use super::*;
    use crate::json;

    /// Accepts a `name` param as the socket's assigns.
    struct Named;

    impl SocketHandler for Named {
        fn connect(params: Payload, _info: ConnectInfo) -> Result<Assigns, String> {
            let name: String = params
                .value()
                .ok()
                .and_then(|params| params["name"].as_str().map(str::to_owned))
                .ok_or("no name")?;
            Ok(Assigns::new().with("name", name))
        }
    }

    fn info() -> wit::ConnectInfo {
        wit::ConnectInfo {
            peer_address: None,
            origin: None,
            user_agent: None,
            auth_token: None,
            x_headers: Vec::new(),
            uri: "/socket/websocket".to_owned(),
        }
    }

    #[test]
    fn connect_returns_the_assigns_as_json() {
        let connected = SocketExport::<Named>::connect(r#"{"name":"ada"}"#.into(), info());
        assert_eq!(connected.as_deref(), Ok(r#"{"name":"ada"}"#));
    }

    #[test]
    fn a_refused_connect_carries_its_reason() {
        let refused = SocketExport::<Named>::connect("{}".into(), info());
        assert_eq!(refused.err().as_deref(), Some("no name"));
    }

    #[test]
    fn the_default_id_is_anonymous() {
        let assigns = json!({"name": "ada"}).to_string();
        assert_eq!(SocketExport::<Named>::id(assigns), None);
    }

    #[test]
    fn x_header_finds_a_header_by_name() {
        let info = ConnectInfo {
            x_headers: vec![("x-tenant".to_owned(), "acme".to_owned())],
            ..ConnectInfo::default()
        };
        assert_eq!(info.x_header("x-tenant"), Some("acme"));
        assert_eq!(info.x_header("x-other"), None);
    }
}
