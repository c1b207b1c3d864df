//! `plume.toml`: what plume serves and with which limits.
//!
//! Every mistake is reported with the file, the line and the key, and what
//! to do about it. With no file, plume serves the demo app ([`DEMO`]) from
//! the plugins built in this source tree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

mod keys;
mod secret;
mod tenant;

pub use secret::{MIN_SECRET_BYTES, Secret, SecretError, SecretOrigin, SecretRule};
pub use tenant::{LimitOverrides, SocketPaths, Tenant, TenantSection};

/// The demo app's configuration: `plume serve` with no `--config`.
/// Plugin paths are relative to the built plugins' directory.
pub const DEMO: &str = include_str!("demo.toml");

/// The development secret the demo app uses when `SECRET_KEY_BASE` gives
/// none. It is public: an app served from a configuration file refuses it
/// (see [`SecretRule`]).
pub const DEV_SECRET: &str =
    "plume-test-secret-key-base-0123456789abcdef0123456789abcdef0123456789abcdef";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: Server,
    #[serde(default)]
    pub runtime: Runtime,
    /// The single-app form; absent with `[[tenants]]`.
    pub app: Option<AppSection>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub kv: KvSection,
    /// Several plume nodes acting as one server, over Redis.
    #[serde(default)]
    pub cluster: ClusterSection,
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginSection>,
    #[serde(default)]
    pub routes: Vec<RouteSection>,
    /// Several apps on one server (see [`tenant`]).
    #[serde(default)]
    pub tenants: Vec<TenantSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// Address to listen on for clients.
    pub bind: String,
    /// Where the admin pages (`/metrics`, `/_plume/plugins`) are served;
    /// by default loopback, on the client port plus one (`127.0.0.1:4001`
    /// for `127.0.0.1:4000`; a port the OS picks when `bind`'s is 0).
    pub admin_bind: Option<String>,
    /// The bearer token the admin pages ask for (else `PLUME_ADMIN_TOKEN`);
    /// required when `admin_bind` is not on loopback.
    pub admin_token: Option<String>,
    /// How long shutdown waits for sockets to close, in milliseconds.
    pub shutdown_timeout_ms: u64,
    /// How long an empty long-poll request waits for messages before it is
    /// answered 204, in milliseconds (Phoenix's `window_ms`); a session
    /// nobody polls for two windows ends.
    pub longpoll_window_ms: u64,
    /// A path (such as `/_plume/echo`) where a plain WebSocket echoes every
    /// message back, on plume's production WebSocket stack, for conformance
    /// suites such as Autobahn. Off by default: it is a test fixture.
    pub websocket_echo_path: Option<String>,
    /// How long a client may take to send a whole request head (also how
    /// long a keep-alive connection may sit idle between requests), in
    /// milliseconds; slower connections are closed.
    pub header_read_timeout_ms: u64,
    /// TCP connections one client address (an IPv6 client: its /64) may
    /// hold open at once; the next is answered 503 and closed.
    pub max_connections_per_ip: u32,
    /// Addresses and networks (`"10.0.0.1"`, `"10.0.0.0/8"`) not counted
    /// by `max_connections_per_ip`: load balancers and reverse proxies.
    /// Loopback by default; a list replaces the default.
    pub trusted_proxies: Vec<Spanned<String>>,
}

/// The default `header_read_timeout_ms`: ten seconds. A browser sends its
/// request head in one packet, so a slow link needs far less; Cowboy's
/// `request_timeout` is five seconds, nginx's `client_header_timeout` and
/// Bandit's read timeout sixty.
const HEADER_READ_TIMEOUT_MS: u64 = 10_000;

/// The default `max_connections_per_ip`. A browser opens a socket or two
/// per tab; a thousand covers an office or a carrier NAT of busy users,
/// while one address alone cannot take more than a twentieth of a 20,000
/// open-files limit. Loopback (a reverse proxy on the same host, load
/// tests) is not counted at all by default.
const MAX_CONNECTIONS_PER_IP: u32 = 1000;

impl Default for Server {
    fn default() -> Self {
        Server {
            bind: "127.0.0.1:4000".into(),
            admin_bind: None,
            admin_token: None,
            shutdown_timeout_ms: 5000,
            longpoll_window_ms: crate::transport::DEFAULT_LONGPOLL_WINDOW.as_millis() as u64,
            websocket_echo_path: None,
            header_read_timeout_ms: HEADER_READ_TIMEOUT_MS,
            max_connections_per_ip: MAX_CONNECTIONS_PER_IP,
            trusted_proxies: crate::transport::peers::LOOPBACK
                .iter()
                .map(|network| Spanned::new(0..0, (*network).to_owned()))
                .collect(),
        }
    }
}

impl Server {
    /// `trusted_proxies`, parsed (checked when the file was read).
    pub fn trusted_networks(&self) -> Vec<crate::transport::peers::Network> {
        self.trusted_proxies.iter().filter_map(|network| network.get_ref().parse().ok()).collect()
    }

    /// The admin token: `admin_token`, else `PLUME_ADMIN_TOKEN`.
    pub fn admin_token(&self) -> Option<String> {
        self.admin_token
            .clone()
            .or_else(|| std::env::var("PLUME_ADMIN_TOKEN").ok())
            .filter(|token| !token.is_empty())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Runtime {
    /// Wall-clock time one plugin call may take, in milliseconds, from its
    /// start (not CPU time: waiting for a core counts too).
    pub deadline_ms: u64,
    /// Linear memory one plugin instance may use.
    pub memory_limit_mb: u64,
    /// Idle instances kept per plugin version.
    pub max_idle_instances: usize,
    /// Keep compiled components on disk, so restarts do not recompile.
    pub compile_cache: bool,
    /// Watch plugin files and swap in new versions while serving.
    pub hot_reload: bool,
    /// Where (relative to the config file); default `$PLUME_CACHE_DIR`,
    /// `$XDG_CACHE_HOME/plume` or `~/.cache/plume`.
    pub cache_dir: Option<PathBuf>,
}

impl Default for Runtime {
    fn default() -> Self {
        let d = crate::runtime::Settings::default();
        Runtime {
            deadline_ms: d.deadline.as_millis() as u64,
            memory_limit_mb: (d.memory_limit / (1024 * 1024)) as u64,
            max_idle_instances: d.max_idle_instances,
            compile_cache: true,
            hot_reload: true,
            cache_dir: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppSection {
    pub id: String,
    /// Where the socket is mounted: WebSocket at `<socket_path>/websocket`.
    pub socket_path: String,
    /// The Phoenix `secret_key_base` for tokens (64 bytes or more). Falls
    /// back to the `SECRET_KEY_BASE` environment variable; without either,
    /// only the demo app starts, on the development secret.
    pub secret_key_base: Option<String>,
    /// The plugin that authenticates connections; none accepts everyone.
    pub socket_plugin: Option<Spanned<String>>,
    /// Any table: the socket plugin's configuration, which its `connect`
    /// and `id` read as JSON through `plugin-config` (`{}` when absent),
    /// as a route's `config` is its channel plugin's.
    pub socket_config: Option<Spanned<toml::Table>>,
    /// `false` (any page may connect), `true` (only pages of the host the
    /// client connected to), or a list like `["https://example.com",
    /// "//*.example.org"]`. A client that sends no `Origin` is allowed.
    pub check_origin: CheckOrigin,
    /// What its plugins may use beyond their own channel (`kv`,
    /// `presence`, `broadcast_to`, `disconnect`); all when absent.
    pub capabilities: Option<Vec<crate::app::Capability>>,
    /// Bearer keys of the server API (`/api/...`); `PLUME_API_KEY` adds
    /// one. Several, so keys can rotate; none turns the API off.
    pub api_keys: Option<Spanned<Vec<String>>>,
    /// Origins its plugins may send HTTP requests to; grants `http`.
    pub http_allow: Option<Spanned<Vec<String>>>,
}

/// `check_origin` as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CheckOrigin {
    Flag(bool),
    List(Vec<String>),
}

impl Default for CheckOrigin {
    fn default() -> Self {
        CheckOrigin::Flag(false)
    }
}

impl CheckOrigin {
    pub fn policy(&self) -> crate::transport::origin::OriginPolicy {
        use crate::transport::origin::OriginPolicy;
        match self {
            CheckOrigin::Flag(false) => OriginPolicy::Any,
            CheckOrigin::Flag(true) => OriginPolicy::SameHost,
            CheckOrigin::List(list) => OriginPolicy::List(list.clone()),
        }
    }
}

impl Default for AppSection {
    fn default() -> Self {
        AppSection {
            id: "demo".into(),
            socket_path: "/socket".into(),
            secret_key_base: None,
            socket_plugin: None,
            socket_config: None,
            check_origin: CheckOrigin::default(),
            capabilities: None,
            api_keys: None,
            http_allow: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_frame_bytes: usize,
    pub max_payload_bytes: usize,
    pub max_kv_value_bytes: usize,
    pub max_kv_keys: u64,
    pub max_kv_bytes: u64,
    pub max_channels_per_socket: usize,
    pub max_timers_per_channel: usize,
    pub idle_timeout_ms: u64,
    pub outbound_queue: usize,
    /// A busy topic's presence diffs within this many milliseconds go out
    /// as one `presence_diff` (0: each at once). A topic is busy after a
    /// few changes in a row each within this window of the last; until
    /// then every change goes out at once, as in Phoenix.
    pub presence_coalesce_ms: u64,
    pub max_connections: u64,
    pub max_events_per_second: u32,
    pub max_events_per_second_per_socket: u32,
    pub max_joins_per_second: u32,
    pub max_presence_events_per_second: u32,
    pub max_output_bytes_per_call: usize,
    /// Instances of one plugin version alive at once (the pool's cap).
    pub max_instances_per_plugin: usize,
    /// Bytes the app's topic histories may hold in memory, together.
    pub max_history_bytes: u64,
    /// A plugin HTTP request's default and longest timeout.
    pub http_timeout_ms: u64,
    /// Largest HTTP response body a plugin receives.
    pub max_http_response_bytes: usize,
    /// Plugin HTTP requests of the app in flight at once.
    pub max_http_in_flight: usize,
    /// Plugin HTTP requests of one channel in flight at once.
    pub max_http_in_flight_per_channel: usize,
}

impl Default for Limits {
    fn default() -> Self {
        let d = crate::app::Limits::default();
        Limits {
            max_frame_bytes: d.max_frame_bytes,
            max_payload_bytes: d.max_payload_bytes,
            max_kv_value_bytes: d.max_kv_value_bytes,
            max_kv_keys: d.max_kv_keys,
            max_kv_bytes: d.max_kv_bytes,
            max_channels_per_socket: d.max_channels_per_socket,
            max_timers_per_channel: d.max_timers_per_channel,
            idle_timeout_ms: d.idle_timeout.as_millis() as u64,
            outbound_queue: d.outbound_queue,
            presence_coalesce_ms: 0,
            max_connections: d.max_connections,
            max_events_per_second: d.max_events_per_second,
            max_events_per_second_per_socket: d.max_events_per_second_per_socket,
            max_joins_per_second: d.max_joins_per_second,
            max_presence_events_per_second: d.max_presence_events_per_second,
            max_output_bytes_per_call: d.max_output_bytes_per_call,
            max_instances_per_plugin: crate::runtime::Settings::default().max_instances,
            max_history_bytes: d.max_history_bytes,
            http_timeout_ms: crate::http::Limits::default().timeout.as_millis() as u64,
            max_http_response_bytes: crate::http::Limits::default().max_response_bytes,
            max_http_in_flight: crate::http::Limits::default().max_in_flight,
            max_http_in_flight_per_channel: crate::http::Limits::default().max_in_flight_per_channel,
        }
    }
}

impl Limits {
    /// The limits of the app's plugin HTTP requests.
    pub fn to_http_limits(&self) -> crate::http::Limits {
        crate::http::Limits {
            timeout: std::time::Duration::from_millis(self.http_timeout_ms.max(1)),
            max_response_bytes: self.max_http_response_bytes,
            max_in_flight: self.max_http_in_flight,
            max_in_flight_per_channel: self.max_http_in_flight_per_channel,
            max_request_bytes: self.max_payload_bytes,
        }
    }

    pub fn to_app_limits(&self) -> crate::app::Limits {
        crate::app::Limits {
            max_frame_bytes: self.max_frame_bytes,
            max_payload_bytes: self.max_payload_bytes,
            max_kv_value_bytes: self.max_kv_value_bytes,
            max_kv_keys: self.max_kv_keys,
            max_kv_bytes: self.max_kv_bytes,
            max_channels_per_socket: self.max_channels_per_socket,
            max_timers_per_channel: self.max_timers_per_channel,
            idle_timeout: std::time::Duration::from_millis(self.idle_timeout_ms),
            outbound_queue: self.outbound_queue,
            max_connections: self.max_connections,
            max_events_per_second: self.max_events_per_second,
            max_events_per_second_per_socket: self.max_events_per_second_per_socket,
            max_joins_per_second: self.max_joins_per_second,
            max_presence_events_per_second: self.max_presence_events_per_second,
            max_output_bytes_per_call: self.max_output_bytes_per_call,
            max_history_bytes: self.max_history_bytes,
        }
    }
}

/// `[cluster]`: several nodes as one server, over a shared Redis. Off
/// unless a Redis URL is given, here or in `PLUME_REDIS_URL`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    /// `redis://host:port` (a single Redis, or any node of a Redis
    /// Cluster: plume tells which).
    pub redis_url: Option<String>,
    /// A node silent this long is down: its presences leave on every node.
    pub down_after_ms: u64,
}

impl Default for ClusterSection {
    fn default() -> Self {
        ClusterSection {
            redis_url: None,
            down_after_ms: crate::cluster::DOWN_AFTER.as_millis() as u64,
        }
    }
}

/// The environment variable that turns the cluster on (and names its
/// Redis) when the configuration does not: it works for the demo app too.
pub const REDIS_URL_ENV: &str = "PLUME_REDIS_URL";

impl ClusterSection {
    /// The cluster to join, if any: `redis_url`, else `PLUME_REDIS_URL`.
    pub fn settings(&self) -> Option<crate::cluster::Settings> {
        let url = self
            .redis_url
            .clone()
            .or_else(|| std::env::var(REDIS_URL_ENV).ok())
            .filter(|url| !url.trim().is_empty())?;
        Some(crate::cluster::Settings {
            redis_url: url,
            down_after: std::time::Duration::from_millis(self.down_after_ms),
        })
    }
}

/// `[kv]`: where the key-value store keeps its data.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KvSection {
    /// Unset: `memory`, or `redis` on the cluster's Redis in a cluster.
    pub engine: Option<Spanned<KvEngineName>>,
    /// The redb file, relative to the config file; used by `redb` only.
    pub path: PathBuf,
    /// The Redis of the `redis` engine, such as `redis://127.0.0.1:6379`;
    /// unset, [`REDIS_URL_VAR`] names it (see [`Loaded::kv_redis_url`]).
    pub url: Option<String>,
}

impl Default for KvSection {
    fn default() -> Self {
        KvSection {
            engine: None,
            path: "plume.redb".into(),
            url: None,
        }
    }
}

/// The engines `[kv] engine` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KvEngineName {
    /// In memory: fast, and gone on restart.
    Memory,
    /// An embedded on-disk database: survives restarts.
    Redb,
    /// A Redis server: shared by every plume node pointed at it.
    Redis,
}

/// The environment variable naming the Redis when `plume.toml` does not
/// (the cluster's, which the `redis` key-value engine uses too).
pub const REDIS_URL_VAR: &str = REDIS_URL_ENV;

impl Loaded {
    /// The key-value engine to open. A relative redb `path` starts at the
    /// config file's folder; the `redis` engine needs a URL
    /// ([`Loaded::kv_redis_url`]). With no engine named, a cluster's nodes
    /// share the `redis` engine on the cluster's Redis (a store local to
    /// one node cannot be shared state), and a single node keeps `memory`.
    pub fn kv_engine(&self) -> Result<crate::kv::Engine, ConfigError> {
        let kv = &self.config.kv;
        let Some(engine) = &kv.engine else {
            return Ok(match self.cluster_redis_url() {
                Some(cluster) => crate::kv::Engine::Redis(kv.url.clone().unwrap_or(cluster)),
                None => crate::kv::Engine::Memory,
            });
        };
        Ok(match engine.get_ref() {
            KvEngineName::Memory => crate::kv::Engine::Memory,
            KvEngineName::Redb => crate::kv::Engine::Redb(self.base.join(&kv.path)),
            KvEngineName::Redis => crate::kv::Engine::Redis(self.kv_redis_url().ok_or_else(|| {
                self.error_at(
                    engine.span().start,
                    format!(
                        "kv.engine: the `redis` engine needs a Redis to use: set `url = \"redis://host:6379\"` under [kv], or the {REDIS_URL_VAR} environment variable"
                    ),
                )
            })?),
        })
    }

    /// The Redis the `redis` engine uses: `[kv] url`, else the
    /// [`REDIS_URL_VAR`] environment variable (when not empty). The one
    /// place that decides it.
    pub fn kv_redis_url(&self) -> Option<String> {
        self.config
            .kv
            .url
            .clone()
            .or_else(|| std::env::var(REDIS_URL_VAR).ok().filter(|url| !url.is_empty()))
    }

    /// The cluster's Redis, when this node is in a cluster.
    fn cluster_redis_url(&self) -> Option<String> {
        self.config.cluster.settings().map(|settings| settings.redis_url)
    }

    /// Whether `[kv]` names its engine (else [`Loaded::kv_engine`] chose).
    pub fn kv_engine_named(&self) -> bool {
        self.config.kv.engine.is_some()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSection {
    /// The component file, relative to the config file.
    pub path: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    /// `room:*` (a prefix) or `admin:dashboard` (one topic).
    pub topic: String,
    pub plugin: Spanned<String>,
    /// Any table: the plugin reads it as JSON through `plugin-config`.
    #[serde(default)]
    pub config: Option<toml::Table>,
    /// Keep the last broadcasts of each topic, so that clients coming back
    /// recover what they missed: `{ size = 100, ttl_s = 600 }`.
    #[serde(default)]
    pub history: Option<HistorySection>,
}

/// A route's `history`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistorySection {
    /// The last this many broadcasts of each topic (1 to 10,000).
    pub size: usize,
    /// For this many seconds each (1 to 30 days).
    pub ttl_s: u64,
    /// Whether a join may ask to recover with `"_recover"` (default true).
    #[serde(default = "yes")]
    pub recover: bool,
}

fn yes() -> bool {
    true
}

/// The most a route's history may keep per topic.
pub const MAX_HISTORY_SIZE: usize = 10_000;

/// The longest a route's history may keep a message, in seconds.
pub const MAX_HISTORY_TTL_S: u64 = 30 * 24 * 3600;

impl HistorySection {
    /// The policy, or why the values cannot be one.
    pub fn policy(&self) -> Result<crate::history::Policy, String> {
        if self.size == 0 || self.size > MAX_HISTORY_SIZE {
            return Err(format!("history.size is {}: keep 1 to {MAX_HISTORY_SIZE} messages per topic", self.size));
        }
        if self.ttl_s == 0 || self.ttl_s > MAX_HISTORY_TTL_S {
            return Err(format!("history.ttl_s is {}: keep messages 1 to {MAX_HISTORY_TTL_S} seconds", self.ttl_s));
        }
        Ok(crate::history::Policy {
            size: self.size,
            ttl: std::time::Duration::from_secs(self.ttl_s),
            recover: self.recover,
        })
    }
}

/// A configuration mistake, with where it is.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// A parsed configuration and the directory its relative paths start from.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub base: PathBuf,
    pub file: String,
    /// Whether its apps may run on the development secret.
    pub secrets: SecretRule,
    text: String,
}

impl Loaded {
    /// The text the configuration was parsed from.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The 1-based line of a byte offset in the file.
    pub fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())].matches('\n').count() + 1
    }

    pub fn error_at(&self, offset: usize, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: self.line_of(offset),
            message: message.into(),
        }
    }

    /// Check references between sections: every route and the socket plugin
    /// name a plugin of the same tenant; tenant ids and socket paths are
    /// unique.
    fn validate(&self) -> Result<(), ConfigError> {
        self.validate_tenants()?;
        let least = 2 * crate::cluster::HEARTBEAT.as_millis() as u64;
        if self.config.cluster.down_after_ms < least {
            let at = self.text.find("down_after_ms").unwrap_or(0);
            return Err(self.error_at(
                at,
                format!("cluster.down_after_ms: {} is too short: nodes beat every {} ms, so at least {least}", self.config.cluster.down_after_ms, least / 2),
            ));
        }
        self.validate_server()?;
        if let Some(path) = &self.config.server.websocket_echo_path
            && !path.starts_with('/')
        {
            return Err(ConfigError {
                file: self.file.clone(),
                line: 1,
                message: format!("server.websocket_echo_path: `{path}` must start with `/`, e.g. \"/_plume/echo\""),
            });
        }
        if self.config.server.longpoll_window_ms == 0 {
            let offset = self.text.find("longpoll_window_ms").unwrap_or(0);
            return Err(self.error_at(
                offset,
                "server.longpoll_window_ms must be at least 1: it is how long an empty poll waits (Phoenix's default is 10000)",
            ));
        }
        Ok(())
    }
}

impl Loaded {
    /// `[server]`'s keys that serde cannot check alone.
    fn validate_server(&self) -> Result<(), ConfigError> {
        let server = &self.config.server;
        for network in &server.trusted_proxies {
            if let Err(error) = network.get_ref().parse::<crate::transport::peers::Network>() {
                return Err(self.error_at(network.span().start, format!("server.trusted_proxies: {error}")));
            }
        }
        let at_least_one = [
            ("header_read_timeout_ms", server.header_read_timeout_ms),
            ("max_connections_per_ip", u64::from(server.max_connections_per_ip)),
        ];
        if let Some((key, _)) = at_least_one.iter().find(|(_, value)| *value == 0) {
            return Err(self.error_at(self.text.find(key).unwrap_or(0), format!("server.{key}: must be at least 1")));
        }
        if server.admin_token.as_deref() == Some("") {
            return Err(self.error_at(
                self.text.find("admin_token").unwrap_or(0),
                "server.admin_token: an empty token protects nothing; remove the key, or set a long random one (plume secret makes one)",
            ));
        }
        Ok(())
    }
}

/// Parse configuration text. `file` names it in errors; `base` is where
/// relative plugin paths start.
pub fn parse(text: &str, file: &str, base: &Path) -> Result<Loaded, ConfigError> {
    let config: Config = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map_or(1, |span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        let message = match keys::where_it_belongs(e.message()) {
            Some(hint) => format!("{}; {hint}", e.message()),
            None => e.message().to_owned(),
        };
        ConfigError {
            file: file.to_owned(),
            line,
            message,
        }
    })?;
    let loaded = Loaded {
        config,
        base: base.to_owned(),
        file: file.to_owned(),
        secrets: SecretRule::Required,
        text: text.to_owned(),
    };
    loaded.validate()?;
    Ok(loaded)
}

/// The demo app ([`DEMO`]) over the built plugins in `plugin_dir`: the one
/// configuration that may run on the development secret.
pub fn demo(plugin_dir: &Path) -> Result<Loaded, ConfigError> {
    let mut loaded = parse(DEMO, "the built-in demo configuration", plugin_dir)?;
    loaded.secrets = SecretRule::DevelopmentAllowed;
    Ok(loaded)
}

/// Read and parse a configuration file.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.display().to_string(),
        line: 0,
        message: format!("cannot read the configuration: {e}"),
    })?;
    let base = path.parent().map_or_else(|| PathBuf::from("."), Path::to_owned);
    parse(&text, &path.display().to_string(), &base)
}

/// Convert a TOML table to JSON text, for `plugin-config`.
pub fn table_to_json(table: &toml::Table) -> String {
    serde_json::to_string(table).unwrap_or_else(|_| "{}".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_config_parses() {
        let loaded = parse(DEMO, "demo.toml", Path::new(".")).expect("demo config is valid");
        assert!(loaded.config.routes.iter().any(|r| r.topic == "room:*"));
    }

    #[test]
    fn an_unknown_key_names_file_line_and_key() {
        let text = "[server]\nbind = \"127.0.0.1:1\"\nbnd = 3\n";
        let e = parse(text, "plume.toml", Path::new(".")).unwrap_err();
        assert_eq!(e.file, "plume.toml");
        assert_eq!(e.line, 3);
        assert!(e.message.contains("bnd"), "{}", e.message);
    }

    #[test]
    fn a_key_in_the_wrong_section_names_the_section_it_belongs_to() {
        let e = parse("[server]\nmax_connections = 5\n", "plume.toml", Path::new(".")).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("belongs under [limits]"), "{}", e.message);
        let e = parse("[app]\nbind = \"0.0.0.0:4000\"\n", "plume.toml", Path::new(".")).unwrap_err();
        assert!(e.message.contains("`bind` belongs under [server]"), "{}", e.message);
    }

    #[test]
    fn a_socket_config_without_a_socket_plugin_is_refused_with_its_line() {
        let e = parse("[app]\nid = \"x\"\nsocket_config = { key = \"k\" }\n", "plume.toml", Path::new(".")).unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("app.socket_config") && e.message.contains("socket_plugin"), "{e}");
    }

    #[test]
    fn a_route_to_an_undeclared_plugin_is_refused_with_its_line() {
        let text = "[plugins.room]\npath = \"room.wasm\"\n\n[[routes]]\ntopic = \"chat:*\"\nplugin = \"chat\"\n";
        let e = parse(text, "plume.toml", Path::new(".")).unwrap_err();
        assert_eq!(e.line, 6);
        assert!(e.message.contains("routes[0].plugin"), "{}", e.message);
        assert!(e.message.contains("room"), "{}", e.message);
    }

    #[test]
    fn the_demo_app_has_exactly_the_spec_channels_and_the_backend_example_is_valid() {
        let demo = parse(DEMO, "demo.toml", Path::new("/plugins")).expect("the demo config is valid");
        let names: Vec<&str> = demo.config.plugins.keys().map(String::as_str).collect();
        for name in ["calculator", "resilient", "batch"] {
            assert!(!names.contains(&name), "the demo app lists only the spec's plugins: {names:?}");
        }
        let example = include_str!("../../../examples/backend.toml");
        let loaded = parse(example, "examples/backend.toml", Path::new("/srv/examples")).expect("the example is valid");
        for name in ["calculator", "resilient", "batch", "room", "chat"] {
            assert!(loaded.config.plugins.contains_key(name), "{name} in examples/backend.toml");
        }
    }

    #[test]
    fn the_longpoll_window_defaults_to_phoenixs_and_zero_is_refused_with_its_line() {
        let loaded = parse("", "plume.toml", Path::new(".")).expect("empty config is valid");
        assert_eq!(loaded.config.server.longpoll_window_ms, 10_000);
        let loaded = parse("[server]\nlongpoll_window_ms = 250\n", "plume.toml", Path::new(".")).expect("valid");
        assert_eq!(loaded.config.server.longpoll_window_ms, 250);
        let e = parse("[server]\nbind = \"127.0.0.1:1\"\nlongpoll_window_ms = 0\n", "plume.toml", Path::new(".")).unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("longpoll_window_ms"), "{}", e.message);
    }

    #[test]
    fn the_kv_engine_defaults_to_memory() {
        let loaded = parse("", "plume.toml", Path::new("/srv")).expect("empty config is valid");
        assert_eq!(loaded.kv_engine().expect("an engine"), crate::kv::Engine::Memory);
    }

    #[test]
    fn a_redb_path_is_relative_to_the_config_file() {
        let loaded = parse("[kv]\nengine = \"redb\"\n", "plume.toml", Path::new("/srv")).expect("valid");
        assert_eq!(
            loaded.kv_engine().expect("an engine"),
            crate::kv::Engine::Redb("/srv/plume.redb".into())
        );
        let loaded = parse("[kv]\nengine = \"redb\"\npath = \"/var/lib/plume/kv.redb\"\n", "plume.toml", Path::new("/srv"))
            .expect("valid");
        assert_eq!(
            loaded.kv_engine().expect("an engine"),
            crate::kv::Engine::Redb("/var/lib/plume/kv.redb".into())
        );
    }

    #[test]
    fn an_unknown_kv_engine_names_the_choices() {
        let e = parse("[kv]\nengine = \"sqlite\"\n", "plume.toml", Path::new(".")).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("memory") && e.message.contains("redb") && e.message.contains("redis"), "{}", e.message);
    }

    #[test]
    fn in_a_cluster_the_kv_engine_defaults_to_the_clusters_redis() {
        let loaded = parse("[cluster]\nredis_url = \"redis://10.0.0.7:6379\"\n", "plume.toml", Path::new("/srv")).expect("valid");
        assert!(!loaded.kv_engine_named());
        assert_eq!(loaded.kv_engine().expect("an engine"), crate::kv::Engine::Redis("redis://10.0.0.7:6379".into()));
        // A named engine stays, and `[kv] url` picks another Redis.
        let named = "[cluster]\nredis_url = \"redis://10.0.0.7:6379\"\n[kv]\nengine = \"memory\"\n";
        assert_eq!(parse(named, "plume.toml", Path::new("/srv")).expect("valid").kv_engine().expect("an engine"), crate::kv::Engine::Memory);
        let own = "[cluster]\nredis_url = \"redis://10.0.0.7:6379\"\n[kv]\nurl = \"redis://10.0.0.8:6379\"\n";
        assert_eq!(
            parse(own, "plume.toml", Path::new("/srv")).expect("valid").kv_engine().expect("an engine"),
            crate::kv::Engine::Redis("redis://10.0.0.8:6379".into())
        );
    }

    #[test]
    fn the_redis_engine_uses_the_url_under_kv() {
        let loaded = parse("[kv]\nengine = \"redis\"\nurl = \"redis://10.0.0.5:6380/2\"\n", "plume.toml", Path::new("/srv"))
            .expect("valid");
        assert_eq!(
            loaded.kv_engine().expect("an engine"),
            crate::kv::Engine::Redis("redis://10.0.0.5:6380/2".into())
        );
    }

    #[test]
    fn a_wrong_type_is_reported() {
        let e = parse("[limits]\nmax_frame_bytes = \"big\"\n", "p.toml", Path::new(".")).unwrap_err();
        assert_eq!(e.line, 2);
    }
}
