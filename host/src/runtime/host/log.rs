//! `log`: plugin log lines, attributed to the plugin and tenant.

use super::HostState;
use crate::runtime::bindings::imports::log::{Host, Level};

/// Longest log line kept; the rest is cut so a plugin cannot flood the log.
const MAX_LINE: usize = 4096;

impl Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        let call = self.call();
        let mut message = message;
        if message.len() > MAX_LINE {
            let mut cut = MAX_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let plugin = &*call.plugin;
        let app = &*call.app.id;
        match level {
            Level::Trace => tracing::trace!(target: "plume::plugin", app = %app, plugin = %plugin, "{message}"),
            Level::Debug => tracing::debug!(target: "plume::plugin", app = %app, plugin = %plugin, "{message}"),
            Level::Info => tracing::info!(target: "plume::plugin", app = %app, plugin = %plugin, "{message}"),
            Level::Warn => tracing::warn!(target: "plume::plugin", app = %app, plugin = %plugin, "{message}"),
            Level::Error => tracing::error!(target: "plume::plugin", app = %app, plugin = %plugin, "{message}"),
        }
    }
}
