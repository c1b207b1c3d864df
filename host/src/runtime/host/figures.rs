//! `figures`: the app's live figures.

use super::HostState;
use crate::runtime::bindings::imports::figures::{AppFigures, Host, PluginFigure};

impl Host for HostState {
    fn now(&mut self) -> AppFigures {
        let app = &self.call().app;
        let (connections, channels, users) = app.figures.app_wide();
        AppFigures {
            connections,
            channels,
            users,
            plugins: app
                .plugin_figures()
                .into_iter()
                .map(|p| PluginFigure {
                    name: p.name,
                    version: p.version,
                    channels: p.channels,
                })
                .collect(),
        }
    }

    fn connections_of(&mut self, socket_id: String) -> u64 {
        self.call().app.figures.app_wide_connections_of(&socket_id)
    }
}
