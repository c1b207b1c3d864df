//! Channel plugins compiled into the host: the same plugin crate a
//! component is built from, linked natively and called through the SDK's
//! export glue (`plume_sdk::__private::ChannelExport<T>`), behind the API
//! of a WebAssembly [`ChannelVersion`](super::ChannelVersion).
//!
//! It exists to measure what the sandbox costs (the `plume-native`
//! baseline of the benchmarks). Host imports reach the same
//! implementations on [`HostState`] a component's do, and what a call
//! returns is checked the same way, so only the engine differs. But a
//! native plugin is not sandboxed: a panic is caught and fails the call as
//! a trap does, yet nothing bounds its time or memory, and a hot reload of
//! its file does not replace it.

mod convert;
mod imports;

use std::cell::Cell;

use plume_sdk::__bindings::channel_plugin::exports::plume::plugin::channel_handler as guest;
use plume_sdk::__bindings::host::types as guest_types;

use super::bindings::channel::exports::plume::plugin::channel_handler::{Handled, InfoHandled, Joined, OutHandled};
use super::bindings::imports::types::Socket;
use super::LentPayload;
use super::context::CallContext;
use super::host::HostState;
use super::pool::catch_plugin_panic;
use super::Fault;

type Outcome<T> = (CallContext, Result<T, Fault>);

/// A channel plugin's export functions, compiled into this process.
#[derive(Clone, Copy)]
pub struct NativeChannel {
    join: fn(String, guest_types::Payload, guest_types::Socket) -> Result<guest::Joined, String>,
    handle_in: fn(String, guest_types::Payload, guest_types::Socket) -> guest::Handled,
    handle_out: fn(String, guest_types::Payload, guest_types::Socket) -> guest::OutHandled,
    handle_info: fn(String, guest_types::Socket) -> guest::InfoHandled,
    terminate: fn(String, guest_types::Socket),
    intercepts: fn() -> Vec<String>,
    upgrade: fn(String, String) -> Result<Option<String>, String>,
}

thread_local! {
    /// The host state native calls on this thread run against, made once:
    /// a call lends it its context, as a pooled store is lent one.
    static STATE: Cell<Option<Box<HostState>>> = const { Cell::new(None) };
}

impl NativeChannel {
    /// The channel plugin `G`: `ChannelExport<MyChannel>` for the SDK's
    /// `Channel` implementation `MyChannel`.
    pub fn of<G: guest::Guest>() -> NativeChannel {
        NativeChannel {
            join: G::join,
            handle_in: G::handle_in,
            handle_out: G::handle_out,
            handle_info: G::handle_info,
            terminate: G::terminate,
            intercepts: G::intercepts,
            upgrade: G::upgrade,
        }
    }

    pub(crate) fn join(&self, ctx: CallContext, topic: &str, payload: LentPayload<'_>, socket: &Socket) -> Outcome<Result<Joined, String>> {
        let (join, topic, payload, socket) = (self.join, topic.to_owned(), payload.into(), socket.into());
        call(ctx, move || join(topic, payload, socket).map(Into::into))
    }

    pub(crate) fn handle_in(&self, ctx: CallContext, event: &str, payload: LentPayload<'_>, socket: &Socket) -> Outcome<Handled> {
        let (handle_in, event, payload, socket) = (self.handle_in, event.to_owned(), payload.into(), socket.into());
        call(ctx, move || handle_in(event, payload, socket).into())
    }

    pub(crate) fn handle_out(&self, ctx: CallContext, event: &str, payload: LentPayload<'_>, socket: &Socket) -> Outcome<OutHandled> {
        let (handle_out, event, payload, socket) = (self.handle_out, event.to_owned(), payload.into(), socket.into());
        call(ctx, move || handle_out(event, payload, socket).into())
    }

    pub(crate) fn handle_info(&self, ctx: CallContext, message: &str, socket: &Socket) -> Outcome<InfoHandled> {
        let (handle_info, message, socket) = (self.handle_info, message.to_owned(), socket.into());
        call(ctx, move || handle_info(message, socket).into())
    }

    pub(crate) fn terminate(&self, ctx: CallContext, reason: &str, socket: &Socket) -> Outcome<()> {
        let (terminate, reason, socket) = (self.terminate, reason.to_owned(), socket.into());
        call(ctx, move || terminate(reason, socket))
    }

    pub(crate) fn intercepts(&self, ctx: CallContext) -> Outcome<Vec<String>> {
        call(ctx, self.intercepts)
    }

    pub(crate) fn upgrade(&self, ctx: CallContext, from_version: &str, assigns: &str) -> Outcome<Result<Option<String>, String>> {
        let (upgrade, from_version, assigns) = (self.upgrade, from_version.to_owned(), assigns.to_owned());
        call(ctx, move || upgrade(from_version, assigns))
    }
}

/// Run `f`, native plugin code, with `ctx` as its call's context: its host
/// imports go to this thread's [`HostState`], and a panic fails the call.
fn call<R>(ctx: CallContext, f: impl FnOnce() -> R) -> Outcome<R> {
    // Taken out for the call, so a call made from inside a call (there is
    // none today) would get its own state rather than alias this one. The
    // limiter is unused: native code has no linear memory to limit.
    let mut state = STATE.take().unwrap_or_else(|| Box::new(HostState::new(0)));
    state.call = Some(ctx);
    let result = catch_plugin_panic(|| plume_sdk::native::with_host(&mut *state, f));
    let ctx = state.call.take().expect("the context was set before the call");
    STATE.set(Some(state));
    (ctx, result.map_err(|panic| Fault::Trap(format!("the plugin panicked: {panic}"))))
}
