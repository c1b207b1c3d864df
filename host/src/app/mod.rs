//! An app: one tenant's plugins, routes, secret, limits, topics, presence
//! and key-value namespace.
//!
//! Everything a plugin can reach hangs off its [`App`]: its broker (topics),
//! its key-value namespace, its token secret. Two apps share nothing but the
//! process, so one app cannot name another's topics or keys.

mod figures;
mod plugin;
mod route;

use std::sync::Arc;
use std::time::Duration;

use crate::kv::Kv;
use crate::presence::Presence;
use crate::pubsub::Broker;
use crate::token::Tokens;

pub use figures::Figures;
pub use plugin::{ChannelPlugin, Plugin, SocketPlugin, VersionInfo};
pub use route::{Route, TopicPattern};

/// Limits that apply to every socket and channel of an app.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest frame a client may send; larger closes the socket with 1009.
    pub max_frame_bytes: usize,
    /// Largest payload a plugin may push or broadcast.
    pub max_payload_bytes: usize,
    /// Largest value a plugin may store in the key-value store.
    pub max_kv_value_bytes: usize,
    /// Channels one socket may join at once.
    pub max_channels_per_socket: usize,
    /// Pending timers one channel may have.
    pub max_timers_per_channel: usize,
    /// A socket that sends nothing (not even a heartbeat) for this long is
    /// closed.
    pub idle_timeout: Duration,
    /// Events queued for one socket before it counts as not reading and is
    /// closed with 1008.
    pub outbound_queue: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: 1024 * 1024,
            max_payload_bytes: 1024 * 1024,
            max_kv_value_bytes: 1024 * 1024,
            max_channels_per_socket: 100,
            max_timers_per_channel: 1000,
            idle_timeout: Duration::from_secs(60),
            outbound_queue: 4096,
        }
    }
}

/// A plugin's figures, for the `figures` import and the status page.
pub struct PluginFigure {
    pub name: String,
    pub version: String,
    pub channels: u64,
}

pub struct App {
    pub id: String,
    /// The socket's mount point, e.g. `/socket` (WebSocket at
    /// `/socket/websocket`).
    pub socket_path: String,
    pub socket_plugin: Option<Arc<SocketPlugin>>,
    pub routes: Vec<Route>,
    /// Which web pages may connect (`check_origin`).
    pub origins: crate::transport::origin::OriginPolicy,
    pub broker: Arc<dyn Broker>,
    pub kv: Kv,
    pub presence: Presence,
    pub tokens: Tokens,
    pub figures: Figures,
    pub limits: Limits,
}

impl App {
    /// The route serving `topic`: the first whose pattern matches.
    pub fn route(&self, topic: &str) -> Option<&Route> {
        self.routes.iter().find(|route| route.pattern.matches(topic))
    }

    /// Publish a presence change on its topic, now or at the end of the
    /// topic's coalescing window. Returns the broadcast when it went out
    /// now, so the calling socket can deliver it to itself in order (the
    /// broker skips `skip`).
    pub fn announce_presence(self: &Arc<Self>, diff: crate::presence::Diff, skip: Option<crate::pubsub::SocketKey>) -> Option<Arc<crate::pubsub::Broadcast>> {
        use crate::presence::Staged;
        let publish = |diff: crate::presence::Diff| {
            Arc::new(crate::pubsub::Broadcast::new(diff.topic.clone(), "presence_diff".into(), diff.payload(), None))
        };
        match self.presence.stage(diff) {
            Staged::Now(diff) => {
                let message = publish(diff);
                self.broker.publish(message.clone(), skip);
                Some(message)
            }
            Staged::OpenedWindow(topic, window) => {
                let app = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(window).await;
                    if let Some(diff) = app.presence.take_pending(&topic) {
                        app.broker.publish(publish(diff), None);
                    }
                });
                None
            }
            Staged::Merged => None,
        }
    }

    /// Every channel plugin once, in route order.
    pub fn channel_plugins(&self) -> Vec<Arc<ChannelPlugin>> {
        let mut plugins: Vec<Arc<ChannelPlugin>> = Vec::new();
        for route in &self.routes {
            if !plugins.iter().any(|p| Arc::ptr_eq(p, &route.plugin)) {
                plugins.push(route.plugin.clone());
            }
        }
        plugins
    }

    /// Every plugin with its file, routes, version, load time, channels and
    /// last load error: the body of `GET /_plume/plugins`.
    pub fn plugin_status(&self) -> serde_json::Value {
        let mut plugins: Vec<serde_json::Value> = self
            .socket_plugin
            .iter()
            .map(|p| p.status("socket", Vec::new()))
            .collect();
        for plugin in self.channel_plugins() {
            let routes = self
                .routes
                .iter()
                .filter(|route| Arc::ptr_eq(&route.plugin, &plugin))
                .map(|route| route.pattern.to_string())
                .collect();
            plugins.push(plugin.status("channel", routes));
        }
        serde_json::json!({ "app": self.id, "plugins": plugins })
    }

    pub fn plugin_figures(&self) -> Vec<PluginFigure> {
        let mut figures: Vec<PluginFigure> = self
            .socket_plugin
            .iter()
            .map(|p| PluginFigure {
                name: p.name.to_string(),
                version: p.current().id().to_owned(),
                channels: 0,
            })
            .collect();
        figures.extend(self.channel_plugins().into_iter().map(|p| PluginFigure {
            name: p.name.to_string(),
            version: p.current().id().to_owned(),
            channels: p.channels(),
        }));
        figures
    }
}
