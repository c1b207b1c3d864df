//! Calls into a socket plugin version: `connect` and `id`.

use std::time::SystemTime;

use super::bindings::socket::SocketPlugin;
use super::bindings::socket::exports::plume::plugin::socket_handler::ConnectInfo;
use super::context::CallContext;
use super::pool::Pool;
use super::{Fault, Loaded};

/// One loaded version of a socket plugin.
pub struct SocketVersion {
    id: String,
    loaded_at: SystemTime,
    loaded: Loaded,
    pool: Pool<SocketPlugin>,
}

type Outcome<T> = (CallContext, Result<T, Fault>);

impl SocketVersion {
    pub(crate) fn new(id: String, pool: Pool<SocketPlugin>, loaded: Loaded) -> Self {
        SocketVersion {
            id,
            loaded_at: SystemTime::now(),
            loaded,
            pool,
        }
    }

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

    /// `Ok(Ok(assigns))` accepts the connection; `Ok(Err(reason))` refuses it.
    pub fn connect(&self, ctx: CallContext, params: &str, info: &ConnectInfo) -> Outcome<Result<String, String>> {
        let (ctx, result) = self.pool.call(ctx, |p, store| {
            p.plume_plugin_socket_handler()
                .call_connect(store, params, info)
        });
        let result = result.and_then(|accepted| match accepted {
            Ok(assigns) if !assigns.trim_start().starts_with('{') => Err(Fault::InvalidOutput(
                "socket assigns that are not a JSON object".into(),
            )),
            Ok(assigns) => super::context::check_json(&assigns)
                .map(|()| Ok(assigns))
                .map_err(|e| Fault::InvalidOutput(format!("socket assigns that are {e}"))),
            Err(reason) => Ok(Err(reason)),
        });
        (ctx, result)
    }

    pub fn id_for(&self, ctx: CallContext, assigns: &str) -> Outcome<Option<String>> {
        self.pool
            .call(ctx, |p, store| p.plume_plugin_socket_handler().call_id(store, assigns))
    }
}
