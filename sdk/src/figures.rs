//! Live figures of the app: connections, channels, users, plugins.

use crate::imports::figures as wit;

/// The app's figures at one moment.
///
/// ```no_run
/// let figures = plume_sdk::figures::now();
/// println!("{} sockets, {} users", figures.connections, figures.users);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppFigures {
    /// Open sockets.
    pub connections: u64,
    /// Joined channels.
    pub channels: u64,
    /// Distinct socket ids among open sockets.
    pub users: u64,
    /// One entry per loaded plugin.
    pub plugins: Vec<PluginFigure>,
}

/// What one plugin serves.
///
/// ```no_run
/// for plugin in plume_sdk::figures::now().plugins {
///     println!("{} {}: {} channels", plugin.name, plugin.version, plugin.channels);
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginFigure {
    /// The plugin's name.
    pub name: String,
    /// The id of the version serving now.
    pub version: String,
    /// Channels joined through this plugin.
    pub channels: u64,
}

/// The app's figures now.
///
/// ```no_run
/// let channels = plume_sdk::figures::now().channels;
/// ```
pub fn now() -> AppFigures {
    wit::now().into()
}

/// How many open sockets have the socket id `socket_id`.
///
/// ```no_run
/// let tabs = plume_sdk::figures::connections_of("user_socket:42");
/// ```
pub fn connections_of(socket_id: &str) -> u64 {
    wit::connections_of(socket_id)
}

impl From<wit::AppFigures> for AppFigures {
    fn from(figures: wit::AppFigures) -> Self {
        Self {
            connections: figures.connections,
            channels: figures.channels,
            users: figures.users,
            plugins: figures
                .plugins
                .into_iter()
                .map(PluginFigure::from)
                .collect(),
        }
    }
}

impl From<wit::PluginFigure> for PluginFigure {
    fn from(figure: wit::PluginFigure) -> Self {
        Self {
            name: figure.name,
            version: figure.version,
            channels: figure.channels,
        }
    }
}
