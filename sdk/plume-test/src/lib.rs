//! Test plume plugins the way Phoenix.ChannelTest tests channels.
//!
//! A [`Harness`] runs the real plume app in the test process: the plugin's
//! real `.wasm` component (built for `wasm32-wasip2` as `plume build` builds
//! it) on the real runtime (wasmtime, pooled instances, deadlines), real
//! socket tasks, the real broker, presence and key-value store. Only the
//! network is missing: a [`Socket`] is a socket task whose transport is an
//! in-memory queue, so what a test sees is what phoenix.js would read, in
//! the same order. And time is virtual: timers fire when the test
//! [advances](Harness::advance) the clock, never by sleeping.
//!
//! ```no_run
//! use plume_test::{Harness, json};
//!
//! #[test]
//! fn new_msg_is_broadcast_to_the_room() {
//!     let harness = Harness::builder().channel("room").socket("user_socket").build();
//!     let token = harness.sign_token("user socket", json!(42));
//!     let socket = harness.connect(json!({"token": token})).expect("a valid token connects");
//!     let (_reply, lobby) = socket.subscribe_and_join("room:lobby", json!({})).expect("joined");
//!
//!     let sent = lobby.push("new_msg", json!({"body": "hi"}));
//!     lobby.assert_reply(sent, "ok", json!({}));
//!     lobby.assert_broadcast("new_msg", json!({"body": "hi", "user_id": 42}));
//!     lobby.assert_push("new_msg", json!({"body": "hi"}));
//! }
//! ```
//!
//! # How the pieces map to Phoenix.ChannelTest
//!
//! | Phoenix.ChannelTest | plume-test |
//! |---|---|
//! | `connect(UserSocket, params)` | [`Harness::connect`] |
//! | `subscribe_and_join(socket, topic, payload)` | [`Socket::subscribe_and_join`] |
//! | `push(socket, event, payload)` | [`Channel::push`] |
//! | `assert_reply ref, :ok, pattern` | [`Channel::assert_reply`] |
//! | `assert_push event, pattern` | [`Channel::assert_push`] |
//! | `assert_broadcast event, pattern` | [`Channel::assert_broadcast`] |
//! | `refute_reply`, `refute_push`, `refute_broadcast` | the `refute_*` twins |
//! | `leave(socket)`, `close(socket)` | [`Channel::leave`], [`Socket::close`] |
//! | `broadcast_from(socket, event, payload)` | [`Channel::broadcast_from`] |
//! | `Presence.list(topic)` | [`Harness::presence`] |
//!
//! Patterns are JSON subsets ([`matches`]): `json!({"body": "hi"})` matches
//! any object whose `body` is `"hi"`. A failed assertion panics with the
//! pattern and every message the channel received, as pretty JSON.
//!
//! # Time
//!
//! An assertion never waits on the clock. Before it looks, the harness runs
//! the app until it has nothing left to do *at the current instant*: every
//! push answered, every broadcast fanned out, every timer due now fired. So
//! `refute_push` is exact, and a test is as fast as the plugin. Time moves
//! only with [`Harness::advance`], which fires the timers it passes in order
//! (`send-after`, periodic updates, presence windows); the plugin's
//! `clock` imports, token ages and key-value expiry follow the same virtual
//! clock.
//!
//! ```no_run
//! # use plume_test::{Harness, json};
//! # use std::time::Duration;
//! let harness = Harness::builder()
//!     .route("admin:*", "admin", json!({"update_ms": 1000}))
//!     .socket("user_socket")
//!     .build();
//! # let admin = harness.connect(json!({})).unwrap();
//! let (_, dashboard) = admin.subscribe_and_join("admin:dashboard", json!({})).unwrap();
//! dashboard.assert_push("dashboard_data", json!({}));
//! dashboard.refute_push("dashboard_update", json!({}));
//! harness.advance(Duration::from_millis(1000));
//! dashboard.assert_push("dashboard_update", json!({}));
//! ```
//!
//! # Races
//!
//! Calls run one after another in the harness, so on its own it never shows
//! two clients' updates of one key interleaving, as they do on a server.
//! [`Harness::race`] pushes to several channels as if at the same instant:
//! every call reads the key-value store as it was before any of them wrote,
//! so a compare-and-swap conflicts and the plugin's retry runs, and a
//! read-then-write without one visibly loses an update. It returns how many
//! compare-and-swaps conflicted.
//!
//! # Plugin logs
//!
//! What the plugins log (`plume_sdk::log`) is printed to the test's
//! standard error as `[plugin NAME] LEVEL message`, so `cargo test` shows it
//! beside a failure, and kept for assertions ([`Harness::logs`]).
//!
//! # Building the plugins
//!
//! The harness builds the plugins it names, once per test process, with
//! `cargo build --target wasm32-wasip2 --profile plugin` into the plume
//! workspace's `target/plugins` (the workspace is found above the crate
//! under test). The first test of a run pays for the build; cargo's progress
//! shows on the terminal.

mod broadcasts;
mod http;
mod logs;
mod pattern;
mod plugins;
mod race;
mod socket;
mod time;

use std::rc::Rc;
use std::sync::{Arc, MutexGuard, OnceLock};
use std::time::Duration;

use plume::app::App;
use plume::protocol::Body;
use plume::pubsub::{Broadcast, SocketKey};
use tokio::sync::watch;

pub use http::HttpRequest;
pub use logs::LogLine;
pub use pattern::matches;
/// How a plugin's HTTP request failed, for [`Harness::fail_http`].
pub use plume::http::FailureKind as HttpFailure;
pub use serde_json::{Value, json};
pub use socket::{Channel, Message, Ref, Socket};

use broadcasts::{Published, Tap};
use time::{Quiet, VirtualClock};

/// A socket's idle timeout in the harness: no test client sends heartbeats,
/// and virtual time may run for hours, so sockets never time out.
const NO_IDLE_TIMEOUT_MS: u64 = 365 * 24 * 3600 * 1000;

/// The harness's shared state.
pub(crate) struct Inner {
    /// Declared first: dropped first, ending the socket tasks before the app.
    runtime: tokio::runtime::Runtime,
    app: Arc<App>,
    quiet: Arc<Quiet>,
    clock: Rc<VirtualClock>,
    shutdown: watch::Sender<bool>,
    published: broadcasts::Log,
    /// Where the plugins' HTTP requests wait for the test's answers.
    backend: Arc<http::Backend>,
    /// The app's key-value store, behind the referee of races.
    referee: Arc<race::Referee>,
    /// What the plugins logged.
    logs: logs::Log,
    /// The tracing subscriber the app runs under, which keeps `logs`.
    dispatch: tracing::Dispatch,
}

impl Inner {
    /// Run `f` with the host's clocks on virtual time and the runtime
    /// entered (plugin calls made outside a socket task need both).
    fn within<R>(&self, f: impl FnOnce() -> R) -> R {
        let _clock = plume::clock::use_on_this_thread(self.clock.clone());
        let _context = self.runtime.enter();
        tracing::dispatcher::with_default(&self.dispatch, f)
    }

    /// Drive the app until it is quiet at the current instant.
    fn settle(&self) {
        self.run(self.quiet.settled());
    }

    /// Run `future` on the app's runtime, on virtual time, with plugin log
    /// lines kept.
    fn run<F: std::future::Future>(&self, future: F) -> F::Output {
        let _clock = plume::clock::use_on_this_thread(self.clock.clone());
        tracing::dispatcher::with_default(&self.dispatch, || self.runtime.block_on(future))
    }

    fn published(&self) -> MutexGuard<'_, Vec<Published>> {
        self.published.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn published_count(&self) -> usize {
        self.published().len()
    }

    /// Publish on the app's broker, skipping socket `skip`'s subscriptions.
    fn publish(&self, topic: &str, event: &str, payload: &Value, skip: Option<SocketKey>) {
        let message = Broadcast::new(topic.to_owned(), event.to_owned(), Body::Json(payload.to_string()), None);
        let _ = self.within(|| self.app.broker.publish(Arc::new(message), skip));
        self.settle();
    }
}

/// The wasmtime runtime every harness of the process shares: one engine,
/// one epoch thread, and the on-disk compile cache, so a test loads its
/// plugins in milliseconds once they were compiled.
fn wasm_runtime() -> Result<Arc<plume::runtime::Runtime>, String> {
    static RUNTIME: OnceLock<Result<Arc<plume::runtime::Runtime>, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let cache = plume::runtime::CompileCache::default_dir().map(plume::runtime::CompileCache::new);
            plume::runtime::Runtime::new(plume::runtime::Settings::default(), cache)
                .map(Arc::new)
                .map_err(|e| format!("cannot start the WebAssembly runtime: {e:#}"))
        })
        .clone()
}

/// A route of the harness's app.
struct RouteSpec {
    topic: String,
    plugin: String,
    config: Value,
}

/// Describes the app a [`Harness`] runs: which plugins serve which topics,
/// the socket plugin, the token secret.
///
/// ```no_run
/// # use plume_test::{Harness, json};
/// let harness = Harness::builder()
///     .channel("chat")                                   // chat:* -> chat
///     .route("limited:*", "limited", json!({}))          // an explicit route
///     .socket("user_socket")                             // runs connect and id
///     .build();
/// ```
#[must_use = "a builder does nothing until build() is called"]
pub struct HarnessBuilder {
    routes: Vec<RouteSpec>,
    socket: Option<String>,
    socket_config: Option<Value>,
    secret: Option<String>,
    http_allow: Vec<String>,
}

impl HarnessBuilder {
    /// Grant the app's plugins the `http` capability for these origins
    /// (`http_allow` in plume.toml, e.g. `["http://backend.test"]`). Their
    /// requests never reach a network: the test answers them
    /// ([`Harness::respond`]), fails them ([`Harness::fail_http`]) or lets
    /// them time out ([`Harness::advance`]).
    pub fn http_allow(mut self, origins: &[&str]) -> Self {
        self.http_allow.extend(origins.iter().map(|origin| (*origin).to_owned()));
        self
    }

    /// Serve `NAME:*` with the channel plugin of package `NAME`, with an
    /// empty configuration.
    pub fn channel(self, plugin: &str) -> Self {
        self.route(&format!("{plugin}:*"), plugin, json!({}))
    }

    /// Serve topics matching `topic` (`room:*` for a prefix, or one exact
    /// topic) with the channel plugin of package `plugin`, which reads
    /// `config` (a JSON object) through `plume_sdk::config`.
    pub fn route(mut self, topic: &str, plugin: &str, config: Value) -> Self {
        self.routes.push(RouteSpec {
            topic: topic.to_owned(),
            plugin: plugin.to_owned(),
            config,
        });
        self
    }

    /// Run `connect` and `id` with the socket plugin of package `plugin`.
    /// Without one, every connection is accepted with empty assigns.
    pub fn socket(mut self, plugin: &str) -> Self {
        self.socket = Some(plugin.to_owned());
        self
    }

    /// Give the socket plugin `config` (a JSON object), which its
    /// `connect` and `id` read through `plume_sdk::config`, as a server
    /// gives it `socket_config`.
    pub fn socket_config(mut self, config: Value) -> Self {
        self.socket_config = Some(config);
        self
    }

    /// Sign and verify tokens with this `secret_key_base` (default: the
    /// development secret a server uses when none is configured).
    pub fn secret_key_base(mut self, secret: &str) -> Self {
        self.secret = Some(secret.to_owned());
        self
    }

    /// Build the plugins (once per process), load them, and start the app.
    /// Panics with the reason if any step fails.
    #[track_caller]
    pub fn build(self) -> Harness {
        match self.try_build() {
            Ok(harness) => harness,
            Err(error) => panic!("plume-test: cannot start the harness: {error}"),
        }
    }

    /// [`build`](Self::build), returning the reason instead of panicking.
    pub fn try_build(self) -> Result<Harness, String> {
        let mut names: Vec<String> = self.routes.iter().map(|r| r.plugin.clone()).collect();
        names.extend(self.socket.clone());
        names.sort();
        names.dedup();
        let files = plugins::build(&names)?;
        let text = self.config_text(&names, &files)?;
        let workspace = plugins::workspace()?;
        let mut loaded = plume::config::parse(&text, "the plume-test harness configuration", &workspace)
            .map_err(|e| e.to_string())?;
        // A harness is no deployment: without a secret_key_base it signs
        // with the development secret, as the demo app does.
        loaded.secrets = plume::config::SecretRule::DevelopmentAllowed;
        let runtime = wasm_runtime()?;
        let app = plume::server::build_app(&loaded, &runtime).map_err(|e| format!("{e:#}"))?;
        let app = Arc::try_unwrap(app).map_err(|_| "the app is shared before the harness could wrap its broker".to_owned())?;
        let published = broadcasts::Log::default();
        let tap = Tap {
            inner: app.broker.clone(),
            log: published.clone(),
        };
        let backend = Arc::new(http::Backend::default());
        let mut referee = None;
        let kv = app.kv.clone().wrap_engine(|engine| {
            let wrapped = Arc::new(race::Referee::new(engine));
            referee = Some(wrapped.clone());
            wrapped
        });
        let referee = referee.ok_or("the key-value store was not wrapped")?;
        let app = Arc::new(App {
            broker: Arc::new(tap),
            http: app.http.with_fetcher(backend.clone()),
            kv,
            ..app
        });
        let logs = logs::Log::default();

        let quiet = Arc::new(Quiet::default());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .on_thread_park(time::park_hook(&quiet))
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))?;
        let clock = Rc::new(VirtualClock::new(runtime.handle().clone()));
        let (shutdown, _) = watch::channel(false);
        Ok(Harness {
            inner: Rc::new(Inner {
                runtime,
                app,
                quiet,
                clock,
                shutdown,
                published,
                backend,
                referee,
                dispatch: logs::dispatch(logs.clone()),
                logs,
            }),
        })
    }

    /// The app's `plume.toml`, as a server would read it.
    fn config_text(&self, names: &[String], files: &[std::path::PathBuf]) -> Result<String, String> {
        let mut app = toml::Table::new();
        app.insert("id".into(), "test".into());
        if let Some(socket) = &self.socket {
            app.insert("socket_plugin".into(), socket.clone().into());
        }
        if let Some(secret) = &self.secret {
            app.insert("secret_key_base".into(), secret.clone().into());
        }
        if !self.http_allow.is_empty() {
            app.insert("http_allow".into(), self.http_allow.clone().into());
        }
        if let Some(config) = &self.socket_config {
            let config = toml::Value::try_from(config)
                .map_err(|e| format!("the socket config is not representable in TOML (no nulls): {e}"))?;
            if !config.is_table() {
                return Err("the socket config must be a JSON object".into());
            }
            app.insert("socket_config".into(), config);
        }
        let mut plugins = toml::Table::new();
        for (name, file) in names.iter().zip(files) {
            let mut section = toml::Table::new();
            section.insert("path".into(), file.display().to_string().into());
            plugins.insert(name.clone(), section.into());
        }
        let mut routes = Vec::new();
        for route in &self.routes {
            let config = toml::Value::try_from(&route.config)
                .map_err(|e| format!("the config of route {} is not representable in TOML (no nulls): {e}", route.topic))?;
            if !config.is_table() {
                return Err(format!("the config of route {} must be a JSON object", route.topic));
            }
            let mut section = toml::Table::new();
            section.insert("topic".into(), route.topic.clone().into());
            section.insert("plugin".into(), route.plugin.clone().into());
            section.insert("config".into(), config);
            routes.push(toml::Value::Table(section));
        }
        let mut runtime = toml::Table::new();
        runtime.insert("hot_reload".into(), false.into());
        let mut limits = toml::Table::new();
        limits.insert("idle_timeout_ms".into(), toml::Value::Integer(NO_IDLE_TIMEOUT_MS as i64));
        let mut config = toml::Table::new();
        config.insert("runtime".into(), runtime.into());
        config.insert("app".into(), app.into());
        config.insert("limits".into(), limits.into());
        config.insert("plugins".into(), plugins.into());
        config.insert("routes".into(), toml::Value::Array(routes));
        toml::to_string(&config).map_err(|e| format!("cannot write the harness configuration: {e}"))
    }
}

/// A plume app running in the test process, on a virtual clock.
///
/// Not `Send`: a harness belongs to its test's thread. Each test makes its
/// own; plugins are built and compiled once per process, so that is cheap.
pub struct Harness {
    inner: Rc<Inner>,
}

impl Harness {
    /// A harness serving `NAME:*` with the channel plugin of package `NAME`
    /// and no socket plugin.
    ///
    /// ```no_run
    /// # use plume_test::{Harness, json};
    /// let harness = Harness::new("room");
    /// let socket = harness.connect(json!({})).unwrap();
    /// assert!(socket.subscribe_and_join("room:lobby", json!({})).is_ok());
    /// ```
    #[track_caller]
    pub fn new(plugin: &str) -> Harness {
        Harness::builder().channel(plugin).build()
    }

    /// Describe the app to run.
    pub fn builder() -> HarnessBuilder {
        HarnessBuilder {
            routes: Vec::new(),
            socket: None,
            socket_config: None,
            secret: None,
            http_allow: Vec::new(),
        }
    }

    /// Connect a socket with `params` (the connect params phoenix.js sends,
    /// a JSON object), through the socket plugin's `connect` and `id`: the
    /// socket, or why the connection was refused.
    ///
    /// ```no_run
    /// # use plume_test::{Harness, json};
    /// let harness = Harness::builder().channel("room").socket("user_socket").build();
    /// assert!(harness.connect(json!({"token": "forged"})).is_err());
    /// let token = harness.sign_token("user socket", json!(7));
    /// let socket = harness.connect(json!({"token": token})).unwrap();
    /// assert_eq!(socket.id(), Some("user_socket:7"));
    /// ```
    pub fn connect(&self, params: Value) -> Result<Socket, String> {
        let info = plume::runtime::ConnectInfo {
            peer_address: Some("127.0.0.1:0".into()),
            origin: None,
            user_agent: Some("plume-test".into()),
            auth_token: None,
            x_headers: Vec::new(),
            uri: "/socket/websocket?vsn=2.0.0".into(),
        };
        let admission = self
            .inner
            .app
            .admit()
            .ok_or("the app is at its connection limit (max_connections)")?;
        let accepted = self
            .inner
            .within(|| plume::transport::connect::accept(&self.inner.app, &params.to_string(), &info));
        let (assigns, id) = accepted.map_err(|refused| refused.to_string())?;
        Ok(socket::open(&self.inner, admission, assigns, id))
    }

    /// A Phoenix.Token for `data` with `salt`, signed now (virtual time)
    /// with the app's secret.
    pub fn sign_token(&self, salt: &str, data: Value) -> String {
        self.inner
            .within(|| self.inner.app.tokens.sign(salt, &data, plume::clock::unix_ms(), 86_400))
            .unwrap_or_else(|e| panic!("cannot sign {data}: {e}"))
    }

    /// Broadcast `event` on `topic` to every subscriber, as
    /// `Endpoint.broadcast` does.
    pub fn broadcast(&self, topic: &str, event: &str, payload: Value) {
        self.inner.publish(topic, event, &payload, None);
    }

    /// The presences on `topic` in phoenix.js's format:
    /// `{"<key>": {"metas": [{"phx_ref": ..., ...}]}}`.
    pub fn presence(&self, topic: &str) -> Value {
        self.inner.settle();
        serde_json::from_str(&self.inner.app.presence.list(topic)).unwrap_or(Value::Null)
    }

    /// Let `duration` of virtual time pass: timers fire in order as their
    /// time comes (a periodic timer fires once per period), and the app
    /// settles at the end. Takes no real time.
    pub fn advance(&self, duration: Duration) {
        self.inner.settle();
        self.inner.run(async move { tokio::time::sleep(duration).await });
        self.inner.settle();
    }

    /// Virtual time since the harness started.
    pub fn elapsed(&self) -> Duration {
        self.inner.clock.elapsed()
    }

    /// The host's wall clock now, in milliseconds since the Unix epoch: the
    /// real time the harness started, plus [`elapsed`](Self::elapsed). This
    /// is what plugins read from `clock::now_ms`.
    pub fn now_ms(&self) -> u64 {
        plume::clock::TimeSource::unix_ms(&*self.inner.clock)
    }

    /// The plugins' HTTP requests waiting for an answer, in the order they
    /// were made. A request leaves the list when it is answered, failed or
    /// timed out.
    pub fn http_requests(&self) -> Vec<HttpRequest> {
        self.inner.settle();
        self.inner.backend.waiting()
    }

    /// Assert that a `method` request to `url` is waiting for an answer
    /// (the first, if several); returns it, to answer with
    /// [`respond`](Self::respond).
    ///
    /// ```no_run
    /// # use plume_test::{Harness, json};
    /// let harness = Harness::builder()
    ///     .route("calculator:*", "calculator", json!({"backend_url": "http://backend.test"}))
    ///     .http_allow(&["http://backend.test"])
    ///     .build();
    /// # let socket = harness.connect(json!({})).unwrap();
    /// # let (_, calc) = socket.subscribe_and_join("calculator:1", json!({})).unwrap();
    /// calc.push("complex_calculation", json!({"n": 3}));
    /// let request = harness.expect_http("POST", "http://backend.test/complex_calculation");
    /// assert_eq!(request.json(), json!({"n": 3}));
    /// harness.respond(&request, 200, json!({"answer": 42}));
    /// calc.assert_push("calculation_complete", json!({"result": {"answer": 42}}));
    /// ```
    #[track_caller]
    pub fn expect_http(&self, method: &str, url: &str) -> HttpRequest {
        let waiting = self.http_requests();
        match waiting.into_iter().find(|r| r.method.eq_ignore_ascii_case(method) && r.url == url) {
            Some(request) => request,
            None => panic!(
                "expect_http: no {method} {url} is waiting for an answer. Waiting:\n{}",
                self.inner.backend.report()
            ),
        }
    }

    /// Answer `request` with `status` and a JSON `body`
    /// (`content-type: application/json`); the outcome reaches the plugin's
    /// `handle_info` before this returns.
    #[track_caller]
    pub fn respond(&self, request: &HttpRequest, status: u16, body: Value) {
        let headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        self.respond_with(request, status, headers, body.to_string().into_bytes());
    }

    /// Answer `request` with `status`, `headers` and `body` as given.
    #[track_caller]
    pub fn respond_with(&self, request: &HttpRequest, status: u16, headers: Vec<(String, String)>, body: Vec<u8>) {
        self.answer(request, Ok(plume::http::Response { status, headers, body }));
    }

    /// Fail `request` as the network would (`HttpFailure::Refused`,
    /// `Tls`, ...); `reason` is the text the plugin gets.
    #[track_caller]
    pub fn fail_http(&self, request: &HttpRequest, kind: HttpFailure, reason: &str) {
        self.answer(request, Err(plume::http::Failure::new(kind, reason)));
    }

    #[track_caller]
    fn answer(&self, request: &HttpRequest, result: Result<plume::http::Response, plume::http::Failure>) {
        if !self.inner.backend.answer(request, result) {
            panic!("{request} is no longer waiting for an answer (answered, or timed out)");
        }
        self.inner.settle();
    }

    /// Push to several channels as clients pushing at the same instant: on
    /// a server their calls would run at once, each reading the key-value
    /// store before any of them writes. Each `(channel, event, payload)` is
    /// handled in turn, but every call's first read of a key sees the key
    /// as it was when the race began, so a compare-and-swap against it
    /// conflicts as on a server and the plugin must retry, and a
    /// read-then-write without one loses the other calls' updates. Returns
    /// the pushes' refs, in order, and how many compare-and-swaps
    /// conflicted.
    ///
    /// ```no_run
    /// # use plume_test::{Harness, json};
    /// # let harness = Harness::builder().channel("poll").socket("user_socket").build();
    /// # let ann = harness.connect(json!({"token": harness.sign_token("user socket", json!(1))})).unwrap();
    /// # let bob = harness.connect(json!({"token": harness.sign_token("user socket", json!(2))})).unwrap();
    /// # let (_, ann_poll) = ann.subscribe_and_join("poll:1", json!({})).unwrap();
    /// # let (_, bob_poll) = bob.subscribe_and_join("poll:1", json!({})).unwrap();
    /// let race = harness.race(&[
    ///     (&ann_poll, "vote", json!({"option": "tea"})),
    ///     (&bob_poll, "vote", json!({"option": "tea"})),
    /// ]);
    /// assert_eq!(race.conflicts, 1, "bob's first compare-and-swap lost to ann's");
    /// bob_poll.assert_reply(race.refs[1], "ok", json!({"tally": {"tea": 2}, "retries": 1}));
    /// ```
    pub fn race(&self, pushes: &[(&Channel, &str, Value)]) -> Race {
        self.inner.settle();
        self.inner.referee.begin();
        let refs = pushes
            .iter()
            .map(|(channel, event, payload)| {
                self.inner.referee.next_call();
                let sent = channel.push(event, payload.clone());
                self.inner.settle();
                sent
            })
            .collect();
        let conflicts = self.inner.referee.end();
        Race { refs, conflicts }
    }

    /// Every line the app's plugins logged so far, in order. Each is also
    /// printed to the test's standard error as it is logged, so a failing
    /// test shows them.
    pub fn logs(&self) -> Vec<LogLine> {
        self.inner.settle();
        self.inner.logs.lock().map(|log| log.clone()).unwrap_or_default()
    }

    /// The app itself, for what the harness has no method for (live
    /// figures, the key-value store).
    pub fn app(&self) -> &Arc<App> {
        &self.inner.app
    }
}

/// What [`Harness::race`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Race {
    /// The refs of the pushes, in the order given.
    pub refs: Vec<Ref>,
    /// How many compare-and-swaps found the key written since it was read.
    pub conflicts: u64,
}

impl Drop for Harness {
    /// Stop the app as a server stops: every channel terminates with
    /// reason `shutdown`.
    fn drop(&mut self) {
        let _ = self.inner.shutdown.send(true);
        self.inner.settle();
    }
}
