//! Calls that lend the plugin the payload they pass.
//!
//! The generated bindings take the WIT `payload` variant as their own
//! `Payload`, which owns its bytes: passing an inbound frame's payload
//! cost a copy of it on the host's heap per call, made only to be copied
//! again into the instance's memory when the call lowers its arguments.
//! [`LentPayload`] is the same variant borrowing the frame's bytes where
//! they are, and [`ChannelInstance`] calls `join`, `handle-in` and
//! `handle-out` with it; every other export goes through the generated
//! bindings.

use wasmtime::Store;
use wasmtime::component::{Component, ComponentExportIndex, Func, InstancePre, Linker, TypedFunc};

use super::bindings::channel::exports::plume::plugin::channel_handler::{Handled, Joined, OutHandled};
use super::bindings::channel::{ChannelPlugin, ChannelPluginIndices};
use super::bindings::imports::types::{Payload, Socket};
use super::host::HostState;
use super::pool::World;

/// The interface whose functions take a payload.
const HANDLER: &str = "plume:plugin/channel-handler@0.3.0";

/// The WIT `payload` variant, borrowing its bytes (see the module docs).
#[derive(wasmtime::component::ComponentType, wasmtime::component::Lower, Clone, Copy, Debug)]
#[component(variant)]
pub enum LentPayload<'a> {
    #[component(name = "json")]
    Json(&'a str),
    #[component(name = "binary")]
    Binary(&'a [u8]),
}

impl<'a> From<&'a Payload> for LentPayload<'a> {
    fn from(payload: &'a Payload) -> Self {
        match payload {
            Payload::Json(json) => LentPayload::Json(json),
            Payload::Binary(bytes) => LentPayload::Binary(bytes),
        }
    }
}

impl<'a> From<crate::protocol::InPayload<'a>> for LentPayload<'a> {
    fn from(payload: crate::protocol::InPayload<'a>) -> Self {
        match payload {
            crate::protocol::InPayload::Json(raw) => LentPayload::Json(raw.get()),
            crate::protocol::InPayload::Binary(bytes) => LentPayload::Binary(bytes),
        }
    }
}

impl LentPayload<'_> {
    /// An owned copy, for the calls that need one (a native plugin's).
    pub fn to_owned(self) -> Payload {
        match self {
            LentPayload::Json(json) => Payload::Json(json.to_owned()),
            LentPayload::Binary(bytes) => Payload::Binary(bytes.to_vec()),
        }
    }
}

/// The arguments of `join`, `handle-in` and `handle-out`.
type Params<'a> = (&'a str, LentPayload<'a>, &'a Socket);

/// A pooled channel-plugin instance.
pub(crate) struct ChannelInstance {
    /// The generated bindings, for the calls that take no payload.
    pub bindings: ChannelPlugin,
    join: Func,
    handle_in: Func,
    handle_out: Func,
}

/// A channel-plugin component, linked and checked, ready to instantiate.
pub(crate) struct ChannelInstancePre {
    instance_pre: InstancePre<HostState>,
    indices: ChannelPluginIndices,
    join: ComponentExportIndex,
    handle_in: ComponentExportIndex,
    handle_out: ComponentExportIndex,
}

impl World for ChannelInstance {
    type Pre = ChannelInstancePre;

    fn prepare(linker: &Linker<HostState>, component: &Component) -> Result<Self::Pre, String> {
        let instance_pre = linker.instantiate_pre(component).map_err(super::world_mismatch)?;
        // Checks every export the world names, with its type.
        let indices = ChannelPluginIndices::new(&instance_pre).map_err(|e| format!("{e:#}"))?;
        let export = |name: &str| {
            component
                .get_export_index(None, HANDLER)
                .and_then(|interface| component.get_export_index(Some(&interface), name))
                .ok_or_else(|| format!("no export `{name}` in `{HANDLER}`"))
        };
        Ok(ChannelInstancePre {
            join: export("join")?,
            handle_in: export("handle-in")?,
            handle_out: export("handle-out")?,
            instance_pre,
            indices,
        })
    }

    fn instantiate(pre: &Self::Pre, store: &mut Store<HostState>) -> wasmtime::Result<Self> {
        let instance = pre.instance_pre.instantiate(&mut *store)?;
        let bindings = pre.indices.load(&mut *store, &instance)?;
        let mut func = |index: ComponentExportIndex| {
            instance
                .get_func(&mut *store, index)
                .ok_or_else(|| wasmtime::format_err!("a channel-handler export is not a function"))
        };
        let (join, handle_in, handle_out) = (func(pre.join)?, func(pre.handle_in)?, func(pre.handle_out)?);
        // Checked once per instance (instances are pooled), so that a
        // call can skip the check.
        join.typed::<Params<'_>, (Result<Joined, String>,)>(&*store)?;
        handle_in.typed::<Params<'_>, (Handled,)>(&*store)?;
        handle_out.typed::<Params<'_>, (OutHandled,)>(&*store)?;
        Ok(ChannelInstance {
            bindings,
            join,
            handle_in,
            handle_out,
        })
    }
}

impl ChannelInstance {
    pub fn call_join(&self, store: &mut Store<HostState>, topic: &str, payload: LentPayload<'_>, socket: &Socket) -> wasmtime::Result<Result<Joined, String>> {
        // SAFETY: `instantiate` checked the type.
        let func = unsafe { TypedFunc::<Params<'_>, (Result<Joined, String>,)>::new_unchecked(self.join) };
        func.call(store, (topic, payload, socket)).map(|(joined,)| joined)
    }

    pub fn call_handle_in(&self, store: &mut Store<HostState>, event: &str, payload: LentPayload<'_>, socket: &Socket) -> wasmtime::Result<Handled> {
        // SAFETY: `instantiate` checked the type.
        let func = unsafe { TypedFunc::<Params<'_>, (Handled,)>::new_unchecked(self.handle_in) };
        func.call(store, (event, payload, socket)).map(|(handled,)| handled)
    }

    pub fn call_handle_out(&self, store: &mut Store<HostState>, event: &str, payload: LentPayload<'_>, socket: &Socket) -> wasmtime::Result<OutHandled> {
        // SAFETY: `instantiate` checked the type.
        let func = unsafe { TypedFunc::<Params<'_>, (OutHandled,)>::new_unchecked(self.handle_out) };
        func.call(store, (event, payload, socket)).map(|(handled,)| handled)
    }
}
