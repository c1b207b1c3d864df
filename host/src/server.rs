//! Start-up and shutdown: load the configuration's plugins, build the app,
//! listen, and on SIGTERM or Ctrl-C stop accepting, terminate every channel
//! with reason `shutdown` and close every socket with 1012 in bounded time.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::app::{App, ChannelPlugin, Plugin, Route, SocketPlugin, TopicPattern};
use crate::config::{self, Loaded};
use crate::demo_page::DemoPage;
use crate::kv::{self, Kv};
use crate::cluster::Cluster;
use crate::history::{History, MemoryHistory, RedisHistory};
use crate::pubsub::{ClusterBroker, LocalBroker};
use crate::runtime::{Runtime, Settings};
use crate::token::Tokens;
use crate::transport::{self, Server};

fn origin(loaded: crate::runtime::Loaded) -> &'static str {
    match loaded.origin {
        crate::runtime::Origin::Compiled => "compiled",
        crate::runtime::Origin::Cached => "loaded from the compile cache",
        crate::runtime::Origin::Native => "compiled into the host (not sandboxed)",
        crate::runtime::Origin::Baseline => "compiled by the baseline compiler",
    }
}

/// The compile cache a configuration asks for: `[runtime] cache_dir`, else
/// the default per-user cache, unless `compile_cache = false`.
pub fn compile_cache(loaded: &Loaded) -> Option<crate::runtime::CompileCache> {
    let runtime = &loaded.config.runtime;
    if !runtime.compile_cache {
        return None;
    }
    let dir = match &runtime.cache_dir {
        Some(dir) => loaded.base.join(dir),
        None => crate::runtime::CompileCache::default_dir()?,
    };
    Some(crate::runtime::CompileCache::new(dir))
}

/// Build every app (tenant) a configuration describes, compiling their
/// plugins. The apps share the key-value engine, each in its own namespace;
/// in a cluster, each app's broker and presence span the nodes.
pub fn build_apps(loaded: &Loaded, runtime: &Runtime, cluster: Option<&Arc<Cluster>>) -> anyhow::Result<Vec<Arc<App>>> {
    let mut engine = loaded.kv_engine()?;
    // The default engine of a cluster on a Redis Cluster reaches it through
    // the cluster client, seeded with the cluster's URL.
    if let (kv::Engine::Redis(url), Some(cluster)) = (&mut engine, cluster)
        && !loaded.kv_engine_named()
        && cluster.names().layout == crate::cluster::names::Layout::Sharded
        && let Some(rest) = url.strip_prefix("redis://")
    {
        *url = format!("redis+cluster://{rest}");
    }
    if let (kv::Engine::Redis(_), Some(_), false) = (&engine, cluster, loaded.kv_engine_named()) {
        eprintln!("plume: key-value store: the redis engine on the cluster's Redis (set [kv] engine to keep another)");
    }
    let engine = kv::open(&engine).with_context(|| format!("{}: [kv]", loaded.file))?;
    let tenants = loaded.tenants();
    tenants
        .iter()
        .map(|tenant| build_tenant(loaded, tenant, runtime, engine.clone(), cluster, tenants.len() > 1))
        .collect()
}

/// The first app a configuration describes, on one node (benchmarks and
/// the plugin test harness serve one).
pub fn build_app(loaded: &Loaded, runtime: &Runtime) -> anyhow::Result<Arc<App>> {
    build_apps(loaded, runtime, None)?
        .into_iter()
        .next()
        .context("the configuration describes no app")
}

/// Join the cluster the configuration (or `PLUME_REDIS_URL`) names, if any.
pub async fn join_cluster(loaded: &Loaded) -> anyhow::Result<Option<Arc<Cluster>>> {
    let Some(settings) = loaded.config.cluster.settings() else {
        return Ok(None);
    };
    eprintln!("plume: joining the cluster at {}", crate::kv::redacted_url(&settings.redis_url));
    let cluster = Cluster::join(&settings).await?;
    let layout = match cluster.names().layout {
        crate::cluster::Layout::Standalone => "one Redis",
        crate::cluster::Layout::Sharded => "a Redis Cluster, sharded pub/sub",
    };
    eprintln!("plume: joined the cluster as node {} ({layout})", cluster.node());
    Ok(Some(cluster))
}

/// A tenant's channel plugins, by name.
type ChannelPlugins = Vec<(String, Arc<ChannelPlugin>)>;

/// Load a tenant's plugins: its socket plugin (when `with_socket`) and its
/// channel plugins. `reuse` hands back a channel plugin already serving
/// from the same file (when `plume dev` applies an edited configuration),
/// which keeps its version, channels and figures. Progress goes to stderr.
fn load_plugins(
    loaded: &Loaded,
    tenant: &config::Tenant<'_>,
    runtime: &Runtime,
    named: bool,
    reuse: impl Fn(&str, &Path) -> Option<Arc<ChannelPlugin>>,
    with_socket: bool,
) -> anyhow::Result<(Option<Arc<SocketPlugin>>, ChannelPlugins)> {
    let mut channel_plugins: ChannelPlugins = Vec::new();
    let mut socket_plugin: Option<Arc<SocketPlugin>> = None;
    let socket_name = tenant.socket_plugin.map(|s| s.get_ref().clone());
    let total = tenant.plugins.len();
    let who = if named { format!("tenant `{}`: ", tenant.id) } else { String::new() };
    let settings = tenant.runtime;
    for (i, (name, section)) in tenant.plugins.iter().enumerate() {
        let path = loaded.base.join(&section.path);
        let is_socket = socket_name.as_deref() == Some(name.as_str());
        if let Some(plugin) = reuse(name, &path).filter(|_| !is_socket) {
            channel_plugins.push((name.clone(), plugin));
            continue;
        }
        if is_socket && !with_socket {
            continue;
        }
        let started = Instant::now();
        eprintln!("plume: {who}[{}/{total}] loading plugin `{name}` from {}", i + 1, path.display());
        let key = tenant.plugin_key(name);
        if is_socket {
            let version = runtime
                .load_socket_file(name, &path, settings)
                .with_context(|| format!("{}: {key}", loaded.file))?;
            eprintln!("plume:       socket plugin `{name}` version {} {} in {:?}", version.id(), origin(version.loaded()), started.elapsed());
            socket_plugin = Some(Arc::new(Plugin::new(name, path, version)));
        } else {
            let version = runtime
                .load_channel_file(name, &path, settings)
                .with_context(|| format!("{}: {key}", loaded.file))?;
            eprintln!("plume:       channel plugin `{name}` version {} {} in {:?}", version.id(), origin(version.loaded()), started.elapsed());
            channel_plugins.push((name.clone(), Arc::new(Plugin::new(name, path, version))));
        }
    }
    Ok((socket_plugin, channel_plugins))
}

/// A tenant's routes, in order, over its loaded channel plugins.
fn routes(loaded: &Loaded, tenant: &config::Tenant<'_>, channel_plugins: &ChannelPlugins) -> Result<Vec<Route>, config::ConfigError> {
    tenant
        .routes
        .iter()
        .map(|route| {
            let plugin = channel_plugins
                .iter()
                .find(|(name, _)| name == route.plugin.get_ref())
                .map(|(_, plugin)| plugin.clone())
                .ok_or_else(|| {
                    loaded.error_at(
                        route.plugin.span().start,
                        format!("`{}` is the socket plugin; a route needs a channel plugin", route.plugin.get_ref()),
                    )
                })?;
            let history = route
                .history
                .as_ref()
                .map(|history| history.policy())
                .transpose()
                .map_err(|message| loaded.error_at(route.plugin.span().start, format!("routes (topic {}): {message}", route.topic)))?;
            Ok(Route {
                pattern: TopicPattern::parse(&route.topic),
                history,
                plugin,
                config: route
                    .config
                    .as_ref()
                    .map_or_else(|| "{}".to_owned(), config::table_to_json)
                    .into(),
            })
        })
        .collect()
}

/// Serve the plugins and routes of `loaded` (an edited configuration of
/// the single app `app` serves) from now on: channel plugins whose file is
/// unchanged keep serving as they are, new ones are loaded, and the routes
/// are swapped in one store. Joined channels keep the plugin they joined
/// with; the next join takes the new routes. Returns the routes now served.
pub fn reroute(app: &App, loaded: &Loaded, runtime: &Runtime) -> anyhow::Result<Vec<String>> {
    let tenants = loaded.tenants();
    let [tenant] = tenants.as_slice() else {
        anyhow::bail!("{} declares tenants", loaded.file);
    };
    let serving = app.channel_plugins();
    let reuse = |name: &str, path: &Path| {
        serving
            .iter()
            .find(|plugin| &*plugin.name == name && plugin.path == path)
            .cloned()
    };
    let (_, channel_plugins) = load_plugins(loaded, tenant, runtime, false, reuse, false)?;
    let routes = routes(loaded, tenant, &channel_plugins)?;
    let shown = routes.iter().map(|route| format!("{} -> plugin `{}`", route.pattern, route.plugin.name)).collect();
    app.routes.store(Arc::new(routes));
    Ok(shown)
}

/// Build one tenant's app. Progress goes to stderr: compiling a component
/// takes a moment.
fn build_tenant(
    loaded: &Loaded,
    tenant: &config::Tenant<'_>,
    runtime: &Runtime,
    engine: Arc<dyn kv::KvEngine>,
    cluster: Option<&Arc<Cluster>>,
    named: bool,
) -> anyhow::Result<Arc<App>> {
    let (socket_plugin, channel_plugins) = load_plugins(loaded, tenant, runtime, named, |_, _| None, true)?;
    let routes = routes(loaded, tenant, &channel_plugins)?;

    let secret = loaded.secret(tenant)?;
    if secret.origin == config::SecretOrigin::Development {
        tracing::warn!(tenant = %tenant.id, "SECRET_KEY_BASE is unset: {} signs tokens with the public development secret (only the demo app may; an app served with --config needs a secret of its own)", tenant.describe());
    } else if secret.key.len() < config::MIN_SECRET_BYTES {
        tracing::warn!(tenant = %tenant.id, origin = %secret.origin, "the secret is shorter than {} bytes; Phoenix requires at least that", config::MIN_SECRET_BYTES);
    }
    let limits = tenant.limits.to_app_limits();
    let presence = Arc::new(crate::presence::Presence::new(
        (tenant.limits.presence_coalesce_ms > 0).then(|| Duration::from_millis(tenant.limits.presence_coalesce_ms)),
    ));
    let figures = Arc::new(crate::app::Figures::default());
    let (broker, history): (Arc<dyn crate::pubsub::Broker>, _) = match cluster {
        Some(cluster) => {
            let broker = ClusterBroker::new(cluster.clone(), &tenant.id);
            presence.cluster(&broker);
            figures.cluster(cluster, &tenant.id);
            (broker, History::Redis(RedisHistory::new(cluster.clone(), &tenant.id)))
        }
        None => (
            Arc::new(LocalBroker::default()) as Arc<dyn crate::pubsub::Broker>,
            History::Memory(MemoryHistory::new(limits.max_history_bytes)),
        ),
    };
    let http = crate::http::Outbound::new(tenant.allowlist().map_err(anyhow::Error::msg)?, tenant.limits.to_http_limits())
        .map_err(|e| anyhow::anyhow!(e))
        .with_context(|| format!("tenant `{}`: outbound HTTP", tenant.id))?;
    let socket_paths: Vec<String> = tenant
        .socket_paths
        .iter()
        .map(|path| path.trim_end_matches('/').to_owned())
        .collect();
    Ok(Arc::new(App {
        id: tenant.id.clone(),
        socket_path: socket_paths.first().cloned().unwrap_or_default(),
        socket_paths,
        socket_plugin,
        socket_config: tenant
            .socket_config
            .map_or_else(|| "{}".to_owned(), |table| config::table_to_json(table.get_ref()))
            .into(),
        routes: arc_swap::ArcSwap::from_pointee(routes),
        origins: tenant.check_origin.policy(),
        broker,
        history,
        kv: Kv::new(engine, &tenant.id).with_quota(kv::Quota {
            max_keys: limits.max_kv_keys,
            max_bytes: limits.max_kv_bytes,
        }),
        presence,
        tokens: Tokens::new(secret.key.as_bytes()),
        figures,
        rates: crate::app::Rates::new(&limits),
        limits,
        capabilities: tenant.capabilities(),
        runtime: tenant.runtime,
        admitted: Default::default(),
        http,
        api_keys: crate::api::Keys::new(&tenant.api_keys),
    }))
}

/// The runtime settings a configuration asks for: its first tenant's.
pub fn runtime_settings(loaded: &Loaded) -> Settings {
    loaded.tenants().first().map_or_else(Settings::default, |tenant| tenant.runtime)
}

/// Serve until SIGTERM or Ctrl-C. With `dev_workspace`, also rebuild that
/// source tree's plugins whenever their sources change (`plume dev`). With
/// `demo_page`, serve the demo chat page at `/` (the demo app only: the
/// page needs its chat channel and user socket).
pub async fn serve(
    loaded: Loaded,
    bind: Option<String>,
    dev_workspace: Option<std::path::PathBuf>,
    demo_page: Option<DemoPage>,
) -> anyhow::Result<()> {
    let runtime = Runtime::new(runtime_settings(&loaded), compile_cache(&loaded))?;
    serve_on(runtime, loaded, bind, dev_workspace, demo_page).await
}

/// [`serve`] on a runtime the caller made, e.g. one with channel plugins
/// compiled in ([`Runtime::register_native`]).
pub async fn serve_on(
    runtime: Runtime,
    loaded: Loaded,
    bind: Option<String>,
    dev_workspace: Option<std::path::PathBuf>,
    demo_page: Option<DemoPage>,
) -> anyhow::Result<()> {
    let runtime = Arc::new(runtime);
    let cluster = join_cluster(&loaded).await?;
    let apps = build_apps(&loaded, &runtime, cluster.as_ref())?;
    let _reloaders = if loaded.config.runtime.hot_reload {
        let reloaders = apps
            .iter()
            .map(|app| crate::reload::watch(app.clone(), runtime.clone()))
            .collect::<anyhow::Result<Vec<_>>>()
            .context("cannot watch the plugin files (set [runtime] hot_reload = false to serve without)")?;
        eprintln!("plume: watching plugin files: a changed file goes live without a restart");
        reloaders
    } else {
        Vec::new()
    };
    let _dev = match dev_workspace {
        Some(workspace) => {
            eprintln!("plume dev: watching {}/plugins: saved changes are rebuilt and go live", workspace.display());
            // The demo app is built in, not read from a file.
            let file = Path::new(&loaded.file);
            let config = file.is_file().then(|| file.to_owned());
            Some(crate::dev::watch(workspace, config, &loaded, apps.clone(), runtime.clone())?)
        }
        None => None,
    };
    let bind = bind.unwrap_or_else(|| loaded.config.server.bind.clone());
    let listener = listen(&bind)
        .await
        .with_context(|| format!("cannot listen on {bind} (is another server using it? pass --bind)"))?;
    let address = listener.local_addr()?;
    let admin_bind = crate::admin::address(loaded.config.server.admin_bind.as_deref(), &bind)?;
    let admin_listener = listen(&admin_bind).await.with_context(|| {
        format!("cannot listen for the admin pages on {admin_bind} (is another server using it? set [server] admin_bind or pass --admin-bind)")
    })?;
    let admin_address = admin_listener.local_addr()?;
    let admin = Arc::new(crate::admin::Admin::new(apps.clone(), cluster.clone(), &loaded, admin_address)?);
    let http = transport::listener::Http {
        header_read_timeout: Duration::from_millis(loaded.config.server.header_read_timeout_ms),
        peers: None,
    };

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let server = Arc::new(Server {
        apps: apps.clone(),
        shutdown: shutdown_rx.clone(),
        sockets_alive: alive_tx,
        longpoll: crate::transport::Sessions::new(Duration::from_millis(loaded.config.server.longpoll_window_ms)),
        websocket_echo_path: loaded.config.server.websocket_echo_path.clone(),
        demo_page,
        forwarder: cluster.clone().map(transport::longpoll::Forwarder::new),
        cluster: cluster.clone(),
    });
    if let Some(forwarder) = &server.forwarder {
        forwarder.serve(&server);
    }
    for app in &apps {
        if apps.len() > 1 {
            eprintln!("plume: tenant `{}` at {}", app.id, app.socket_paths.join(", "));
        }
        for route in app.routes.load().iter() {
            eprintln!("plume: route {} -> plugin `{}`", route.pattern, route.plugin.name);
        }
    }
    // Tests and scripts wait for this exact line, and read the admin
    // address from the next (after it, so that a script taking the first
    // "listening on" line gets the client address).
    println!("plume: listening on http://{address} (WebSocket at ws://{address}{}/websocket)", apps[0].socket_path);
    println!("plume: admin listening on http://{admin_address} ({})", admin.describe());
    if server.demo_page.is_some() {
        eprintln!("plume: the demo chat page is at http://{address}/");
    }
    for app in &apps {
        let who = if apps.len() > 1 { format!("tenant `{}`: ", app.id) } else { String::new() };
        if !app.api_keys.is_empty() {
            eprintln!("plume: {who}server API at http://{address}/api (Authorization: Bearer <key>)");
        }
        if app.http.granted() {
            eprintln!("plume: {who}plugins may call HTTP services (http_allow)");
        }
    }

    // One engine holds every tenant's namespace: one sweep covers them all.
    // Histories are per app. A sweep waits on the engine (a disk, a Redis
    // over the network), so it runs on a blocking thread, not on a worker
    // that serves sockets.
    let kv = apps[0].kv.clone();
    let histories: Vec<Arc<App>> = apps.clone();
    let sweeper = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tick.tick().await;
            let kv = kv.clone();
            let _ = tokio::task::spawn_blocking(move || kv.sweep()).await;
            for app in &histories {
                app.history.sweep();
            }
        }
    });
    let admin_accept = tokio::spawn(admin.serve(admin_listener, shutdown_rx.clone(), http.clone()));
    let peers = transport::peers::PeerLimit::new(
        loaded.config.server.max_connections_per_ip,
        loaded.config.server.trusted_networks(),
    );
    let accept = tokio::spawn(transport::accept_loop(listener, server.clone(), transport::listener::Http { peers: Some(peers), ..http }));

    wait_for_signal().await;
    eprintln!("plume: shutting down: closing sockets (1012)");
    let _ = shutdown_tx.send(true);
    let _ = accept.await;
    let _ = admin_accept.await;
    sweeper.abort();
    drop(server);
    let timeout = Duration::from_millis(loaded.config.server.shutdown_timeout_ms);
    if tokio::time::timeout(timeout, alive_rx.recv()).await.is_err() {
        eprintln!("plume: some sockets did not close within {timeout:?}; exiting anyway");
    }
    if let Some(cluster) = cluster {
        // The channels have terminated and their presences left; what they
        // sent reaches Redis before the node leaves.
        cluster.leave().await;
    }
    Ok(())
}

/// Connections waiting to be accepted. Tokio's default (128) overflows in
/// a connect storm, and each overflow costs the client a 1 s SYN retry.
const LISTEN_BACKLOG: u32 = 4096;

async fn listen(bind: &str) -> anyhow::Result<TcpListener> {
    let address = tokio::net::lookup_host(bind)
        .await?
        .next()
        .with_context(|| format!("{bind} names no address"))?;
    let socket = if address.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    Ok(socket.listen(LISTEN_BACKLOG)?)
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// The built plugins' directory for the demo config, building them first
/// when plume runs from its source tree.
pub fn demo_plugin_dir(explicit: Option<&Path>, build: bool) -> anyhow::Result<std::path::PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir.to_owned());
    }
    if let Ok(dir) = std::env::var("PLUME_PLUGIN_DIR") {
        return Ok(dir.into());
    }
    let cwd = std::env::current_dir()?;
    let exe_dir = std::env::current_exe().ok().and_then(|exe| exe.parent().map(Path::to_owned));
    let workspace = crate::build::find_workspace(&cwd)
        .or_else(|| exe_dir.as_deref().and_then(crate::build::find_workspace));
    match workspace {
        Some(workspace) if build => crate::build::build_plugins(&workspace),
        Some(workspace) => Ok(crate::build::plugin_dir(&workspace)),
        None => anyhow::bail!(
            "plume serve without --config serves the demo app, whose plugins are not in this binary and no \
             plume source tree is around (here or beside the binary) to build them. Pass --plugin-dir DIR, a \
             folder with the built demo plugins (user_socket.wasm, room.wasm, chat.wasm, ...: `plume build` in \
             plume's source tree writes them to target/plugins/wasm32-wasip2/plugin), or --config FILE to serve \
             your own app"
        ),
    }
}
