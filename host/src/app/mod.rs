//! An app: one tenant's plugins, routes, secret, limits, topics, presence
//! and key-value namespace.
//!
//! Everything a plugin can reach hangs off its [`App`]: its broker (topics),
//! its key-value namespace, its token secret. Two apps share nothing but the
//! process, so one app cannot name another's topics or keys.

mod capability;
mod cluster_figures;
mod figures;
mod plugin;
mod rate;
mod route;
pub mod telemetry;

use std::sync::Arc;
use std::time::Duration;

use crate::kv::Kv;
use crate::presence::Presence;
use crate::pubsub::Broker;
use crate::token::Tokens;

pub use capability::{Capabilities, Capability, not_granted};
pub use figures::Figures;
pub use plugin::{ChannelPlugin, Plugin, SocketPlugin, VersionInfo};
pub use rate::{Bucket, Rate};
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
    /// Keys the app's key-value namespace may hold.
    pub max_kv_keys: u64,
    /// Bytes (keys and values) the app's key-value namespace may hold.
    pub max_kv_bytes: u64,
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
    /// Open sockets of the app; the next upgrade is refused with 503.
    pub max_connections: u64,
    /// Client events (and plugin broadcasts) per second across the app.
    pub max_events_per_second: u32,
    /// Client events per second on one socket.
    pub max_events_per_second_per_socket: u32,
    /// Joins per second across the app.
    pub max_joins_per_second: u32,
    /// Presence track, update and untrack calls per second across the app.
    pub max_presence_events_per_second: u32,
    /// Payload bytes one plugin call may push and broadcast in all (and one
    /// server API request may publish).
    pub max_output_bytes_per_call: usize,
    /// Bytes the app's topic histories may hold in memory, together.
    pub max_history_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: 1024 * 1024,
            max_payload_bytes: 1024 * 1024,
            max_kv_value_bytes: 1024 * 1024,
            max_kv_keys: 100_000,
            max_kv_bytes: 64 * 1024 * 1024,
            max_channels_per_socket: 100,
            max_timers_per_channel: 1000,
            idle_timeout: Duration::from_secs(60),
            outbound_queue: 4096,
            max_connections: 50_000,
            max_events_per_second: 200_000,
            max_events_per_second_per_socket: 10_000,
            max_joins_per_second: 10_000,
            max_presence_events_per_second: 10_000,
            max_output_bytes_per_call: 8 * 1024 * 1024,
            max_history_bytes: 64 * 1024 * 1024,
        }
    }
}

/// A plugin's figures, for the `figures` import and the status page.
pub struct PluginFigure {
    pub name: String,
    pub version: String,
    pub channels: u64,
}

/// An app's rate limits, shared by all its sockets.
pub struct Rates {
    pub events: Rate,
    pub joins: Rate,
    pub presence: Rate,
}

impl Rates {
    pub fn new(limits: &Limits) -> Rates {
        Rates {
            events: Rate::per_second(limits.max_events_per_second),
            joins: Rate::per_second(limits.max_joins_per_second),
            presence: Rate::per_second(limits.max_presence_events_per_second),
        }
    }
}

/// A place among an app's `max_connections`, held for a socket's life.
pub struct Admission(Arc<App>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

pub struct App {
    pub id: String,
    /// The socket's mount point, e.g. `/socket` (WebSocket at
    /// `/socket/websocket`).
    pub socket_path: String,
    /// Every mount point of the app, `socket_path` first.
    pub socket_paths: Vec<String>,
    pub socket_plugin: Option<Arc<SocketPlugin>>,
    /// The socket plugin's configuration as JSON (`socket_config`), what
    /// `plugin-config` returns in its `connect` and `id`.
    pub socket_config: Arc<str>,
    /// Its routes, in order. Swapped whole when `plume dev` applies an
    /// edited configuration: a join looks its route up once, so a channel
    /// keeps the plugin it joined with.
    pub routes: arc_swap::ArcSwap<Vec<Route>>,
    /// Which web pages may connect (`check_origin`).
    pub origins: crate::transport::origin::OriginPolicy,
    pub broker: Arc<dyn Broker>,
    /// The histories of the routes that keep one.
    pub history: crate::history::History,
    pub kv: Kv,
    pub presence: Arc<Presence>,
    pub tokens: Tokens,
    pub figures: Arc<Figures>,
    pub limits: Limits,
    /// What its plugins may use beyond their own channel.
    pub capabilities: Capabilities,
    /// Per-call limits of its plugins (deadline, memory, instances).
    pub runtime: crate::runtime::Settings,
    pub rates: Rates,
    /// Sockets admitted and not yet closed (see [`App::admit`]).
    pub admitted: std::sync::atomic::AtomicU64,
    /// Its plugins' outbound HTTP (`http_allow`, limits, requests in
    /// flight).
    pub http: crate::http::Outbound,
    /// The keys of its server API (`api_keys`); none turns the API off.
    pub api_keys: crate::api::Keys,
}

impl App {
    /// The transport a request path asks of this app: what follows one of
    /// its socket paths (`/websocket`, `/longpoll`), if any.
    pub fn mounted<'p>(&self, path: &'p str) -> Option<&'p str> {
        self.socket_paths
            .iter()
            .filter_map(|mount| path.strip_prefix(mount.as_str()))
            .find(|rest| rest.strip_prefix('/').is_some_and(|name| !name.contains('/')))
    }

    /// Take a place among the app's `max_connections`; `None` when full.
    pub fn admit(self: &Arc<Self>) -> Option<Admission> {
        use std::sync::atomic::Ordering;
        let before = self.admitted.fetch_add(1, Ordering::Relaxed);
        if before >= self.limits.max_connections {
            self.admitted.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Admission(self.clone()))
    }

    /// The route serving `topic`: the first whose pattern matches.
    pub fn route(&self, topic: &str) -> Option<Route> {
        self.routes.load().iter().find(|route| route.pattern.matches(topic)).cloned()
    }

    /// Publish a broadcast, through its topic's history when its route
    /// keeps one (it gets a position then). Returns the broadcast when the
    /// publishing socket `skip` should deliver it to itself, in order with
    /// its replies (the broker skips that socket); on a history topic in a
    /// cluster, that socket gets it through the cluster like everyone.
    pub fn broadcast(&self, message: crate::pubsub::Broadcast, skip: Option<crate::pubsub::SocketKey>) -> Result<Option<Arc<crate::pubsub::Broadcast>>, crate::pubsub::PublishError> {
        match self.route(&message.topic).and_then(|route| route.history) {
            Some(policy) => Ok(self.history.publish(self.broker.as_ref(), &policy, message, skip)?.here),
            None => {
                let message = Arc::new(message);
                self.broker.publish(message.clone(), skip)?;
                Ok(Some(message))
            }
        }
    }

    /// Publish a presence change on its topic, now or at the end of the
    /// topic's coalescing window. Returns the broadcast when it went out
    /// now, so the calling socket can deliver it to itself in order (the
    /// broker skips `skip`).
    pub fn announce_presence(self: &Arc<Self>, diff: crate::presence::Diff, skip: Option<crate::pubsub::SocketKey>) -> Option<Arc<crate::pubsub::Broadcast>> {
        use crate::presence::Staged;
        use crate::pubsub::{Broadcast, Kind};
        let publish = |diff: crate::presence::Diff| {
            let payload = crate::protocol::Body::Json(diff.payload());
            Arc::new(Broadcast::of_kind(diff.topic, "presence_diff".into(), payload, None, Kind::PresenceDiff))
        };
        // A diff that cannot reach the other nodes is still this node's
        // truth: the cluster catches up when it reconnects (see `cluster`).
        match self.presence.stage(diff) {
            Staged::Now(diff) => {
                let message = publish(diff);
                self.presence.publishing(&message.topic);
                let _ = self.broker.publish(message.clone(), skip);
                Some(message)
            }
            Staged::OpenedWindow(topic, wait) => {
                let app = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    let pending = app.presence.take_pending(&topic);
                    if let Some(diff) = pending.diff {
                        app.presence.publishing(&topic);
                        let _ = app.broker.publish(publish(diff), None);
                    }
                    for message in pending.after {
                        let _ = app.broker.publish(message, None);
                    }
                });
                None
            }
            Staged::Merged => None,
        }
    }

    /// Publish a presence announcement (`user_joined`, say) after the
    /// presence diffs staged so far on its topic. Returns it when it went
    /// out now, for the calling socket to deliver to itself in order.
    pub fn announce_after_presence(&self, message: crate::pubsub::Broadcast, skip: Option<crate::pubsub::SocketKey>) -> Option<Arc<crate::pubsub::Broadcast>> {
        let message = self.presence.after_pending(Arc::new(message))?;
        let _ = self.broker.publish(message.clone(), skip);
        Some(message)
    }

    /// The app's figures in the Prometheus text format, for `/metrics`.
    pub fn prometheus(&self) -> String {
        let mut out = self.figures.prometheus(&self.id);
        let (messages, bytes) = self.history.held();
        let tenant = self.id.replace('\\', "\\\\").replace('"', "\\\"");
        for (name, help, value) in [
            ("plume_history_messages", "Broadcasts kept in topic histories on this node.", messages),
            ("plume_history_bytes", "Bytes of the broadcasts kept in topic histories on this node (max_history_bytes bounds them).", bytes),
        ] {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{tenant=\"{tenant}\"}} {value}\n"));
        }
        let channel_plugins = self.channel_plugins();
        let mut plugins: Vec<(&str, &telemetry::Telemetry)> = Vec::new();
        if let Some(socket) = &self.socket_plugin {
            plugins.push((&socket.name, &socket.telemetry));
        }
        plugins.extend(channel_plugins.iter().map(|p| (&*p.name, &p.telemetry)));
        out.push_str(&telemetry::prometheus(&self.id, &plugins));
        out
    }

    /// Every channel plugin once, in route order.
    pub fn channel_plugins(&self) -> Vec<Arc<ChannelPlugin>> {
        let mut plugins: Vec<Arc<ChannelPlugin>> = Vec::new();
        for route in self.routes.load().iter() {
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
                .load()
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
