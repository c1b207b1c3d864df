//! `figures`: the app's live figures.

use super::HostState;
use crate::runtime::bindings::imports::figures::{AppFigures, Host, PluginFigure};

impl Host for HostState {
    fn now(&mut self) -> AppFigures {
        let app = &self.call().app;
        let figures = &app.figures;
        AppFigures {
            connections: figures.connections(),
            channels: figures.channels(),
            users: figures.users(),
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
        self.call().app.figures.connections_of(&socket_id)
    }
}
