//! `plugin-config`: the route's configuration from `plume.toml`.

use super::HostState;
use crate::runtime::bindings::imports::plugin_config::Host;

impl Host for HostState {
    fn get(&mut self) -> String {
        self.call().config.to_string()
    }
}
