//! Calls into a channel plugin version.
//!
//! Everything a plugin returns is checked here, at the boundary: assigns
//! must be a JSON object, payloads valid JSON. A plugin that returns garbage
//! fails its call with [`Fault::InvalidOutput`] instead of sending garbage on
//! to clients.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use super::bindings::channel::ChannelPlugin;
use super::bindings::channel::exports::plume::plugin::channel_handler::{
    Action, Handled, InfoHandled, Joined, OutAction, OutHandled,
};
use super::bindings::imports::types::Socket;
use super::context::{CallContext, check_json};
use super::pool::Pool;
use super::{Fault, Loaded};

/// One loaded version of a channel plugin.
pub struct ChannelVersion {
    id: String,
    loaded_at: SystemTime,
    loaded: Loaded,
    pool: Pool<ChannelPlugin>,
    intercepts: OnceLock<Arc<HashSet<String>>>,
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

fn check_payload(what: &str, payload: &str) -> Result<(), Fault> {
    check_json(payload).map_err(|e| Fault::InvalidOutput(format!("a {what} payload that is {e}")))
}

impl ChannelVersion {
    pub(crate) fn new(id: String, pool: Pool<ChannelPlugin>, loaded: Loaded) -> Self {
        ChannelVersion {
            id,
            loaded_at: SystemTime::now(),
            loaded,
            pool,
            intercepts: OnceLock::new(),
        }
    }

    /// The version's id (a content hash).
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn loaded_at(&self) -> SystemTime {
        self.loaded_at
    }

    /// Whether this version was compiled or came from the compile cache,
    /// and how long loading it took.
    pub fn loaded(&self) -> Loaded {
        self.loaded
    }

    pub fn idle_instances(&self) -> usize {
        self.pool.idle_count()
    }

    /// The events this version intercepts, asked once per version.
    pub fn intercepts(&self, ctx: CallContext) -> Outcome<Arc<HashSet<String>>> {
        if let Some(known) = self.intercepts.get() {
            return (ctx, Ok(known.clone()));
        }
        let (ctx, result) = self
            .pool
            .call(ctx, |p, store| p.plume_plugin_channel_handler().call_intercepts(store));
        let result = result.map(|events| {
            self.intercepts
                .get_or_init(|| Arc::new(events.into_iter().collect()))
                .clone()
        });
        (ctx, result)
    }

    pub fn join(&self, ctx: CallContext, topic: &str, payload: &str, socket: &Socket) -> Outcome<Result<Joined, String>> {
        let (ctx, result) = self.pool.call(ctx, |p, store| {
            p.plume_plugin_channel_handler()
                .call_join(store, topic, payload, socket)
        });
        let result = result.and_then(|joined| {
            match &joined {
                Ok(ok) => {
                    check_payload("join reply", &ok.reply)?;
                    check_assigns(&ok.assigns)?;
                }
                Err(error) => check_payload("join error", error)?,
            }
            Ok(joined)
        });
        (ctx, result)
    }

    pub fn handle_in(&self, ctx: CallContext, event: &str, payload: &str, socket: &Socket) -> Outcome<Handled> {
        let (ctx, result) = self.pool.call(ctx, |p, store| {
            p.plume_plugin_channel_handler()
                .call_handle_in(store, event, payload, socket)
        });
        let result = result.and_then(|handled| {
            check_assigns(&handled.assigns)?;
            match &handled.action {
                Action::Reply(reply) => check_payload("reply", &reply.payload)?,
                Action::Stop(stop) => {
                    if let Some(reply) = &stop.reply {
                        check_payload("reply", &reply.payload)?;
                    }
                }
                Action::Noreply => {}
            }
            Ok(handled)
        });
        (ctx, result)
    }

    pub fn handle_out(&self, ctx: CallContext, event: &str, payload: &str, socket: &Socket) -> Outcome<OutHandled> {
        let (ctx, result) = self.pool.call(ctx, |p, store| {
            p.plume_plugin_channel_handler()
                .call_handle_out(store, event, payload, socket)
        });
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
        let (ctx, result) = self.pool.call(ctx, |p, store| {
            p.plume_plugin_channel_handler()
                .call_handle_info(store, message, socket)
        });
        let result = result.and_then(|handled| {
            check_assigns(&handled.assigns)?;
            Ok(handled)
        });
        (ctx, result)
    }

    pub fn terminate(&self, ctx: CallContext, reason: &str, socket: &Socket) -> Outcome<()> {
        self.pool.call(ctx, |p, store| {
            p.plume_plugin_channel_handler()
                .call_terminate(store, reason, socket)
        })
    }

    /// Migrate a channel's assigns from `from_version`. `Ok(None)` keeps them.
    pub fn upgrade(&self, ctx: CallContext, from_version: &str, assigns: &str) -> Outcome<Result<Option<String>, String>> {
        let (ctx, result) = self.pool.call(ctx, |p, store| {
            p.plume_plugin_channel_handler()
                .call_upgrade(store, from_version, assigns)
        });
        let result = result.and_then(|upgraded| {
            if let Ok(assigns) = &upgraded {
                check_assigns(assigns)?;
            }
            Ok(upgraded)
        });
        (ctx, result)
    }
}
