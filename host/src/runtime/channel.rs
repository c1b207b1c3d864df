//! Calls into a channel plugin version.
//!
//! Everything a plugin returns is checked here, at the boundary: assigns
//! must be a JSON object, payloads valid JSON. A plugin that returns garbage
//! fails its call with [`Fault::InvalidOutput`] instead of sending garbage on
//! to clients.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use super::bindings::channel::exports::plume::plugin::channel_handler::{
    Action, Handled, InfoHandled, Joined, OutAction, OutHandled,
};
use super::bindings::imports::types::{Payload, Socket};
use super::context::{CallContext, check_json};
use super::lent::{ChannelInstance, LentPayload};
use super::native::NativeChannel;
use super::pool::Pool;
use super::{Fault, Loaded};

/// One loaded version of a channel plugin.
pub struct ChannelVersion {
    id: String,
    loaded_at: SystemTime,
    loaded: Loaded,
    engine: Engine,
    intercepts: OnceLock<Arc<HashSet<String>>>,
}

/// What runs a version's calls. There is one per plugin version, so the
/// wasm variant's size costs nothing, while boxing it would add a pointer
/// chase to every call.
#[allow(clippy::large_enum_variant)]
enum Engine {
    /// Pooled instances of a WebAssembly component: the sandbox.
    Wasm(Pool<ChannelInstance>),
    /// The plugin's crate compiled into the host: the benchmarks' baseline
    /// (see [`super::native`]).
    Native(NativeChannel),
}

type Outcome<T> = (CallContext, Result<T, Fault>);

fn check_assigns(assigns: &Option<String>) -> Result<(), Fault> {
    match assigns {
        None => Ok(()),
        Some(text) if text.trim_start().starts_with('{') => {
            check_json(text).map_err(|e| Fault::InvalidOutput(format!("assigns that are {e}")))
        }
        Some(_) => Err(Fault::InvalidOutput("assigns that are not a JSON object".into())),
    }
}

fn check_json_payload(what: &str, payload: &str) -> Result<(), Fault> {
    check_json(payload).map_err(|e| Fault::InvalidOutput(format!("a {what} payload that is {e}")))
}

fn check_payload(what: &str, payload: &Payload) -> Result<(), Fault> {
    match payload {
        Payload::Json(json) => check_json_payload(what, json),
        Payload::Binary(_) => Ok(()),
    }
}

/// A reply bigger than the app's `max_payload_bytes` fails the call: the
/// host does not relay whatever a plugin hands back.
fn check_size(what: &str, len: usize, max: usize) -> Result<(), Fault> {
    if len > max {
        return Err(Fault::InvalidOutput(format!(
            "a {what} payload of {len} bytes, over the limit of {max} (max_payload_bytes)"
        )));
    }
    Ok(())
}

fn check_reply(payload: &Payload, max: usize) -> Result<(), Fault> {
    let len = match payload {
        Payload::Json(json) => json.len(),
        Payload::Binary(bytes) => bytes.len(),
    };
    check_size("reply", len, max)?;
    check_payload("reply", payload)
}

impl From<Payload> for crate::protocol::Body {
    fn from(payload: Payload) -> Self {
        match payload {
            Payload::Json(json) => crate::protocol::Body::Json(json),
            Payload::Binary(bytes) => crate::protocol::Body::Binary(bytes),
        }
    }
}

impl From<crate::protocol::Body> for Payload {
    fn from(body: crate::protocol::Body) -> Self {
        match body {
            crate::protocol::Body::Json(json) => Payload::Json(json),
            crate::protocol::Body::Binary(bytes) => Payload::Binary(bytes),
        }
    }
}

impl ChannelVersion {
    pub(crate) fn new(id: String, pool: Pool<ChannelInstance>, loaded: Loaded) -> Self {
        ChannelVersion {
            id,
            loaded_at: SystemTime::now(),
            loaded,
            engine: Engine::Wasm(pool),
            intercepts: OnceLock::new(),
        }
    }

    /// A version whose calls run `plugin`'s code compiled into the host.
    /// Its id is `native`.
    pub fn native(plugin: NativeChannel) -> Self {
        ChannelVersion {
            id: "native".to_owned(),
            loaded_at: SystemTime::now(),
            loaded: Loaded {
                origin: super::Origin::Native,
                elapsed: std::time::Duration::ZERO,
            },
            engine: Engine::Native(plugin),
            intercepts: OnceLock::new(),
        }
    }

    /// The version's id (a content hash; `native` for compiled-in code).
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn loaded_at(&self) -> SystemTime {
        self.loaded_at
    }

    /// Date the version as having gone live at `at` (an optimized copy of
    /// a version already serving keeps that version's date).
    pub fn set_loaded_at(&mut self, at: SystemTime) {
        self.loaded_at = at;
    }

    /// Whether this version was compiled or came from the compile cache,
    /// and how long loading it took.
    pub fn loaded(&self) -> Loaded {
        self.loaded
    }

    pub fn idle_instances(&self) -> usize {
        match &self.engine {
            Engine::Wasm(pool) => pool.idle_count(),
            Engine::Native(_) => 0,
        }
    }

    /// The events this version intercepts, asked once per version.
    pub fn intercepts(&self, ctx: CallContext) -> Outcome<Arc<HashSet<String>>> {
        if let Some(known) = self.intercepts.get() {
            return (ctx, Ok(known.clone()));
        }
        let (ctx, result) = match &self.engine {
            Engine::Wasm(pool) => pool.call(ctx, |p, store| p.bindings.plume_plugin_channel_handler().call_intercepts(store)),
            Engine::Native(native) => native.intercepts(ctx),
        };
        let result = result.map(|events| {
            self.intercepts
                .get_or_init(|| Arc::new(events.into_iter().collect()))
                .clone()
        });
        (ctx, result)
    }

    pub fn join(&self, ctx: CallContext, topic: &str, payload: LentPayload<'_>, socket: &Socket) -> Outcome<Result<Joined, String>> {
        let (ctx, result) = match &self.engine {
            Engine::Wasm(pool) => pool.call(ctx, |p, store| p.call_join(store, topic, payload, socket)),
            Engine::Native(native) => native.join(ctx, topic, payload, socket),
        };
        let max = ctx.app.limits.max_payload_bytes;
        let result = result.and_then(|joined| {
            match &joined {
                Ok(ok) => {
                    check_size("join reply", ok.reply.len(), max)?;
                    check_json_payload("join reply", &ok.reply)?;
                    check_assigns(&ok.assigns)?;
                }
                Err(error) => check_json_payload("join error", error)?,
            }
            Ok(joined)
        });
        (ctx, result)
    }

    pub fn handle_in(&self, ctx: CallContext, event: &str, payload: LentPayload<'_>, socket: &Socket) -> Outcome<Handled> {
        let (ctx, result) = match &self.engine {
            Engine::Wasm(pool) => pool.call(ctx, |p, store| p.call_handle_in(store, event, payload, socket)),
            Engine::Native(native) => native.handle_in(ctx, event, payload, socket),
        };
        let max = ctx.app.limits.max_payload_bytes;
        let result = result.and_then(|handled| {
            check_assigns(&handled.assigns)?;
            match &handled.action {
                Action::Reply(reply) => check_reply(&reply.payload, max)?,
                Action::Stop(stop) => {
                    if let Some(reply) = &stop.reply {
                        check_reply(&reply.payload, max)?;
                    }
                }
                Action::Noreply => {}
            }
            Ok(handled)
        });
        (ctx, result)
    }

    pub fn handle_out(&self, ctx: CallContext, event: &str, payload: LentPayload<'_>, socket: &Socket) -> Outcome<OutHandled> {
        let (ctx, result) = match &self.engine {
            Engine::Wasm(pool) => pool.call(ctx, |p, store| p.call_handle_out(store, event, payload, socket)),
            Engine::Native(native) => native.handle_out(ctx, event, payload, socket),
        };
        let result = result.and_then(|handled| {
            check_assigns(&handled.assigns)?;
            if let OutAction::Push(Some(payload)) = &handled.action {
                check_payload("handle-out", payload)?;
            }
            Ok(handled)
        });
        (ctx, result)
    }

    pub fn handle_info(&self, ctx: CallContext, message: &str, socket: &Socket) -> Outcome<InfoHandled> {
        let (ctx, result) = match &self.engine {
            Engine::Wasm(pool) => pool.call(ctx, |p, store| {
                p.bindings
                    .plume_plugin_channel_handler()
                    .call_handle_info(store, message, socket)
            }),
            Engine::Native(native) => native.handle_info(ctx, message, socket),
        };
        let result = result.and_then(|handled| {
            check_assigns(&handled.assigns)?;
            Ok(handled)
        });
        (ctx, result)
    }

    pub fn terminate(&self, ctx: CallContext, reason: &str, socket: &Socket) -> Outcome<()> {
        match &self.engine {
            Engine::Wasm(pool) => pool.call(ctx, |p, store| {
                p.bindings
                    .plume_plugin_channel_handler()
                    .call_terminate(store, reason, socket)
            }),
            Engine::Native(native) => native.terminate(ctx, reason, socket),
        }
    }

    /// Migrate a channel's assigns from `from_version`. `Ok(None)` keeps them.
    pub fn upgrade(&self, ctx: CallContext, from_version: &str, assigns: &str) -> Outcome<Result<Option<String>, String>> {
        let (ctx, result) = match &self.engine {
            Engine::Wasm(pool) => pool.call(ctx, |p, store| {
                p.bindings
                    .plume_plugin_channel_handler()
                    .call_upgrade(store, from_version, assigns)
            }),
            Engine::Native(native) => native.upgrade(ctx, from_version, assigns),
        };
        let result = result.and_then(|upgraded| {
            if let Ok(assigns) = &upgraded {
                check_assigns(assigns)?;
            }
            Ok(upgraded)
        });
        (ctx, result)
    }
}
