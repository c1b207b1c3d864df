//! The host capabilities plugins import, one module per WIT interface.
//!
//! Each module implements one generated `Host` trait on [`HostState`]; the
//! runtime core knows nothing of any capability. A capability reaches the
//! call's [`CallContext`] through [`HostState::call`].

mod channel;
mod clock;
mod figures;
mod http;
mod kv;
mod log;
mod plugin_config;
mod presence;
mod random;
mod timers;
mod token;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::imports;
use super::context::CallContext;
use super::limits::MemoryLimiter;

/// The data of one pooled store: WASI with nothing granted, the memory
/// limiter, and the context of the call in progress (none between calls).
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) call: Option<CallContext>,
    /// When the host last looked at the call in progress, if it has run
    /// past its first slice: see `pool`.
    pub(crate) last_look: Option<super::priority::Sample>,
    /// The thread's CPU time when the call in progress started, read only
    /// for a plugin that has made long calls: see `pool`.
    pub(crate) started: Option<super::priority::Sample>,
    /// When the call in progress traps: its start plus its deadline.
    pub(crate) deadline: std::time::Instant,
}

impl HostState {
    pub fn new(memory_limit: usize) -> Self {
        HostState {
            // No files, network, environment, arguments or stdio: a plugin
            // reaches the world only through the plume imports.
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(memory_limit),
            call: None,
            last_look: None,
            started: None,
            deadline: std::time::Instant::now(),
        }
    }

    /// The call in progress. Imports run only inside a call, so this holds
    /// unless the host itself misuses a store.
    fn call(&mut self) -> &mut CallContext {
        self.call
            .as_mut()
            .expect("plugin imports are only reachable during a call")
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl imports::types::Host for HostState {}
