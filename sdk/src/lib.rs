//! Write plume plugins: the logic of Phoenix channels, run by the plume
//! server as sandboxed WebAssembly components.
//!
//! plume speaks the Phoenix Channels protocol, so phoenix.js and every other
//! Phoenix client work unchanged. What a Phoenix app writes as a
//! `Phoenix.Socket` module or a `Phoenix.Channel` module, a plume app
//! writes as a plugin: a Rust crate built for `wasm32-wasip2` that
//! implements [`SocketHandler`] or [`Channel`] and exports it with
//! [`export_socket!`] or [`export_channel!`]. The server owns the
//! connections; the plugin decides.
//!
//! New to plume? Start with the plugin author's guide, `sdk/GUIDE.md` in
//! the plume source tree.
//!
//! # A whole plugin
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "room"
//! version = "0.1.0"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! plume-sdk = { path = "../../sdk" }
//! serde = { version = "1", features = ["derive"] }
//!
//! # Plugins are loaded, compiled and pooled by the server: ship them small.
//! [profile.release]
//! opt-level = "s"
//! strip = true
//! ```
//!
//! `src/lib.rs`:
//!
//! ```no_run
//! use plume_sdk::{Channel, HandleIn, Join, Payload, Reply, Socket, channel, json};
//! use serde::Deserialize;
//!
//! struct Room;
//!
//! #[derive(Deserialize)]
//! struct NewMsg {
//!     body: String,
//! }
//!
//! impl Channel for Room {
//!     fn join(topic: &str, _payload: Payload, _socket: &mut Socket) -> Join {
//!         match topic {
//!             "room:private" => Join::error(json!({"reason": "unauthorized"})),
//!             _ => Join::ok(json!({})),
//!         }
//!     }
//!
//!     fn handle_in(event: &str, payload: Payload, socket: &mut Socket) -> HandleIn {
//!         match event {
//!             "new_msg" => match payload.parse::<NewMsg>() {
//!                 Ok(msg) => {
//!                     // The socket plugin's `user` assign (plume_sdk::User).
//!                     let user_id = socket.user().map(|user| user.id);
//!                     match channel::broadcast("new_msg", &json!({"body": msg.body, "user_id": user_id})) {
//!                         Ok(()) => Reply::ok(json!({})).into(),
//!                         Err(err) => Reply::error(json!({"reason": err.to_string()})).into(),
//!                     }
//!                 }
//!                 Err(_) => Reply::error(json!({"reason": "invalid message"})).into(),
//!             },
//!             "ping" => Reply::ok_raw(payload).into(),
//!             _ => HandleIn::stop(format!("unknown event: {event}")),
//!         }
//!     }
//! }
//!
//! plume_sdk::export_channel!(Room);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` (once:
//! `rustup target add wasm32-wasip2`): `target/wasm32-wasip2/release/room.wasm`
//! is a WebAssembly component implementing the `channel-plugin` world of
//! `wit/plume.wit`, ready for plume to load and route `room:*` topics to.
//!
//! # The life of a channel
//!
//! 1. A client connects. The app's socket plugin gets
//!    [`SocketHandler::connect`] with the connection's params and
//!    [`ConnectInfo`]: it refuses (HTTP 403), or accepts with the socket's
//!    [`Assigns`] (typically the user). [`SocketHandler::id`] names the
//!    socket, so that all of a user's sockets can be closed together.
//! 2. The client joins a topic. The host routes it to a channel plugin by
//!    topic pattern and calls [`Channel::join`], with the socket's assigns.
//!    A [`Join::error`] refuses; a [`Join::ok`] makes the channel live.
//! 3. While joined, the client's pushes arrive in [`Channel::handle_in`],
//!    which replies ([`Reply`]), doesn't ([`HandleIn::NoReply`]) or stops the
//!    channel ([`Stop`]). Broadcasts of the events the plugin
//!    [intercepts](Channel::intercepts) pass through [`Channel::handle_out`];
//!    timers, messages to self and subscribed topics arrive in
//!    [`Channel::handle_info`].
//! 4. The channel ends (the client leaves, the socket closes, a [`Stop`], a
//!    crash, the server stops): [`Channel::terminate`] runs last.
//!
//! A panic (or a trap, or running out of time or memory) crashes only the
//! channel in hand: its client gets `phx_error` and phoenix.js rejoins, as
//! with a crashed Phoenix channel process. The socket and its other channels
//! live on.
//!
//! During a call, a handler acts through the host: [`channel`] pushes and
//! broadcasts, [`timers`] schedules messages, [`presence`] tracks who is
//! here, [`kv`] reads and writes shared state, [`http`] calls the app's
//! backend and other services (the answer comes back later, in
//! `handle_info`), [`token`] signs and verifies Phoenix tokens, and
//! [`config`], [`log`], [`clock`], [`random`] and [`figures`] do what their
//! names say. A push can be answered later, from another call, with
//! [`channel::socket_ref`] and [`channel::reply`].
//!
//! # Where state lives
//!
//! A plugin instance keeps **nothing** between calls: the host pools
//! instances, gives any call to any instance, throws away an instance that
//! crashed, and swaps in a new version of the plugin while channels stay
//! joined. A `static` that seems to remember something will forget it at a
//! random moment. Instead:
//!
//! - **Per channel** state lives in the channel's [`Assigns`], held by the
//!   host, sent with every call and reachable through the [`Socket`]
//!   (`socket.get`, `socket.assign`). They are parsed only when read and
//!   sent back only when changed, so untouched assigns cost nothing.
//!   [`Channel::upgrade`] migrates them when a new version goes live.
//! - **Shared** state (a chat history, a game board seen by two players, a
//!   ban list) lives in the app's key-value store, [`kv`]. Its versions make
//!   concurrent updates safe: [`kv::try_update_json`] retries a change until
//!   it applies to the latest value, and says how it ended. A plugin's own
//!   keys go in its scope, [`kv::plugin_scope!`].
//! - **Who** the socket belongs to is the socket plugin's `user` assign,
//!   [`Socket::user`] (see [`User`]).
//! - **Work due when no channel is joined** (a poll that closes at a
//!   deadline) keeps its deadline in the key-value store, where every call
//!   reads it; see the guide's "Deadlines that outlive a channel".
//!
//! # JSON
//!
//! Everything crosses the boundary as JSON text. What the host sends is a
//! [`Payload`], parsed only on demand ([`Payload::parse`] into your own
//! `Deserialize` types). What a plugin sends is built with [`json!`] or any
//! `Serialize` type and encoded with object keys sorted, as a Phoenix server
//! encodes maps, so output is deterministic.

mod assigns;
mod channel_handler;
mod outcome;
mod panic;
mod payload;
mod socket;
mod socket_handler;
mod user;

pub mod channel;
pub mod clock;
pub mod config;
pub mod figures;
pub mod http;
pub mod kv;
pub mod log;
pub mod presence;
pub mod random;
pub mod timers;
pub mod token;

#[cfg(not(target_arch = "wasm32"))]
pub mod native;

#[doc(hidden)]
#[path = "bindings.rs"]
pub mod __bindings;

// The host imports the safe modules call: the component's own in a
// WebAssembly build (untouched by the native backend), the installed
// native host's otherwise. Both have the same signatures.
#[cfg(target_arch = "wasm32")]
use __bindings::host as imports;
#[cfg(not(target_arch = "wasm32"))]
use native::imports;

pub use assigns::Assigns;
pub use channel_handler::Channel;
pub use outcome::{HandleIn, HandleInfo, HandleOut, Join, Reply, ReplyStatus, Stop};
pub use payload::{Payload, PayloadError};
pub use serde_json::{Value, json};
pub use socket::Socket;
pub use socket_handler::{ConnectInfo, SocketHandler};
pub use user::User;

/// What the export macros name; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::channel_handler::ChannelExport;
    pub use crate::socket_handler::SocketExport;
}

/// Exports a [`SocketHandler`] as the plugin's `socket-handler`: the
/// component then implements the `socket-plugin` world. Use it once, in the
/// plugin's `lib.rs`.
///
/// ```no_run
/// use plume_sdk::{Assigns, ConnectInfo, Payload, SocketHandler};
///
/// struct Open;
///
/// impl SocketHandler for Open {
///     fn connect(_params: Payload, _info: ConnectInfo) -> Result<Assigns, String> {
///         Ok(Assigns::new())
///     }
/// }
///
/// plume_sdk::export_socket!(Open);
/// ```
#[macro_export]
macro_rules! export_socket {
    ($handler:ty) => {
        // The component exports exist only in the WebAssembly build; a
        // native build of the plugin (its unit tests, a benchmark) links
        // without them.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type PlumeSocketExport = $crate::__private::SocketExport<$handler>;
            $crate::__bindings::socket_plugin::export_socket_plugin!(
                PlumeSocketExport with_types_in $crate::__bindings::socket_plugin
            );
        };
    };
}

/// Exports a [`Channel`] as the plugin's `channel-handler`: the component
/// then implements the `channel-plugin` world. Use it once, in the plugin's
/// `lib.rs`.
///
/// ```no_run
/// use plume_sdk::{Channel, HandleIn, Join, Payload, Socket, json};
///
/// struct Quiet;
///
/// impl Channel for Quiet {
///     fn join(_topic: &str, _payload: Payload, _socket: &mut Socket) -> Join {
///         Join::ok(json!({}))
///     }
///
///     fn handle_in(_event: &str, _payload: Payload, _socket: &mut Socket) -> HandleIn {
///         HandleIn::NoReply
///     }
/// }
///
/// plume_sdk::export_channel!(Quiet);
/// ```
#[macro_export]
macro_rules! export_channel {
    ($handler:ty) => {
        // The component exports exist only in the WebAssembly build; a
        // native build of the plugin (its unit tests, a benchmark) links
        // without them.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type PlumeChannelExport = $crate::__private::ChannelExport<$handler>;
            $crate::__bindings::channel_plugin::export_channel_plugin!(
                PlumeChannelExport with_types_in $crate::__bindings::channel_plugin
            );
        };
    };
}
