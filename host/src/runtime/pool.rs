//! Pooled plugin instances.
//!
//! Instantiating a component costs tens of microseconds; calling a warm
//! instance costs well under one. A plugin instance keeps no channel state
//! between calls (the host passes the state in), so any idle instance of a
//! version can serve any call: a call takes one from the pool, and gives it
//! back unless it trapped. A trapped instance is dropped with its store, so
//! nothing a failed call left in its memory can reach a later call.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;
use std::time::Duration;

use parking_lot::Mutex;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, Trap};

use super::context::CallContext;
use super::host::HostState;
use super::limits::MemoryLimitExceeded;
use super::{Fault, Settings};

thread_local! {
    /// Whether this thread is inside a plugin call: a panic there is the
    /// plugin's fault (e.g. a blocking WASI call), not the host's.
    static IN_PLUGIN_CALL: Cell<bool> = const { Cell::new(false) };
}

/// Keep the default panic report for the host's own panics, and reduce a
/// panic caught inside a plugin call to a debug line: the call fails with a
/// [`Fault`] that is logged where the channel crashes.
pub(crate) fn install_panic_filter() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_PLUGIN_CALL.get() {
                tracing::debug!("a host function panicked during a plugin call: {info}");
            } else {
                default(info);
            }
        }));
    });
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// Typed bindings of one world, instantiable from a pre-linked component.
pub(crate) trait World: Sized + Send + 'static {
    type Pre: Send + Sync;

    fn prepare(linker: &Linker<HostState>, component: &Component) -> Result<Self::Pre, String>;

    fn instantiate(pre: &Self::Pre, store: &mut Store<HostState>) -> wasmtime::Result<Self>;
}

struct Instance<W> {
    store: Store<HostState>,
    bindings: W,
}

pub(crate) struct Pool<W: World> {
    engine: Engine,
    pre: W::Pre,
    idle: Mutex<Vec<Instance<W>>>,
    settings: Settings,
}

impl<W: World> Pool<W> {
    pub fn new(engine: Engine, pre: W::Pre, settings: Settings) -> Self {
        Pool {
            engine,
            pre,
            idle: Mutex::new(Vec::new()),
            settings,
        }
    }

    fn fresh(&self) -> Result<Instance<W>, Fault> {
        let mut store = Store::new(&self.engine, HostState::new(self.settings.memory_limit));
        store.limiter(|state| &mut state.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(self.settings.deadline_ticks());
        let bindings = W::instantiate(&self.pre, &mut store)
            .map_err(|e| Fault::classify(e, self.settings.deadline))?;
        Ok(Instance { store, bindings })
    }

    /// Create one instance now, so that a broken component is reported at
    /// load time rather than at its first call.
    pub fn warm(&self) -> Result<(), Fault> {
        let instance = self.fresh()?;
        self.idle.lock().push(instance);
        Ok(())
    }

    /// Run `f` on an idle instance (or a fresh one) with `ctx` as the call's
    /// context. The context comes back with the effects the call recorded,
    /// whether the call succeeded or not.
    pub fn call<R>(
        &self,
        ctx: CallContext,
        f: impl FnOnce(&W, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> (CallContext, Result<R, Fault>) {
        let popped = self.idle.lock().pop();
        let mut instance = match popped {
            Some(instance) => instance,
            None => match self.fresh() {
                Ok(instance) => instance,
                Err(fault) => return (ctx, Err(fault)),
            },
        };
        instance.store.data_mut().call = Some(ctx);
        instance.store.set_epoch_deadline(self.settings.deadline_ticks());
        // A host function that panics (wasmtime-wasi's blocking streams do
        // when called on an async worker) must fail this call, not the
        // socket task: the panic is caught here and the instance dropped.
        IN_PLUGIN_CALL.set(true);
        let result = catch_unwind(AssertUnwindSafe(|| f(&instance.bindings, &mut instance.store)));
        IN_PLUGIN_CALL.set(false);
        let result = match result {
            Ok(result) => result,
            Err(payload) => {
                let ctx = instance
                    .store
                    .data_mut()
                    .call
                    .take()
                    .expect("the context was set before the call");
                let fault = Fault::Trap(format!("a host call failed: {}", panic_message(&*payload)));
                return (ctx, Err(fault));
            }
        };
        let ctx = instance
            .store
            .data_mut()
            .call
            .take()
            .expect("the context was set before the call");
        match result {
            Ok(value) => {
                let mut idle = self.idle.lock();
                if idle.len() < self.settings.max_idle_instances {
                    idle.push(instance);
                }
                (ctx, Ok(value))
            }
            Err(error) => (ctx, Err(Fault::classify(error, self.settings.deadline))),
        }
    }

    /// Instances currently idle in the pool.
    pub fn idle_count(&self) -> usize {
        self.idle.lock().len()
    }
}

impl Fault {
    /// Turn a wasmtime error into the fault it stands for.
    pub(crate) fn classify(error: wasmtime::Error, deadline: Duration) -> Fault {
        if let Some(limit) = error.downcast_ref::<MemoryLimitExceeded>() {
            return Fault::Memory(limit.limit);
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => Fault::Deadline(deadline),
            Some(Trap::StackOverflow) => Fault::Trap("stack overflow".into()),
            Some(Trap::UnreachableCodeReached) => {
                Fault::Trap("the plugin panicked or aborted (unreachable executed)".into())
            }
            Some(trap) => Fault::Trap(trap.to_string()),
            None => Fault::Trap(format!("{error:#}")),
        }
    }
}
