//! `plugin-config`: the plugin's configuration from `plume.toml`: its
//! route's `config` for a channel plugin, the app's `socket_config` for
//! the socket plugin.

use super::HostState;
use crate::runtime::bindings::imports::plugin_config::Host;

impl Host for HostState {
    fn get(&mut self) -> String {
        self.call().config.to_string()
    }
}
