//! `plume dev`: serve, rebuild plugins whenever their source changes, and
//! apply edits of the configuration file.
//!
//! A watcher on `plugins/` (sources and manifests, not build output) runs
//! `plume build` after the edits settle; the rebuilt `.wasm` files are then
//! picked up by the hot reloader like any other changed plugin file, so an
//! edit is live in seconds with every client still connected.
//!
//! A second watcher follows the configuration file (`plume new` appends a
//! plugin and its route to it while dev runs). Plugins and routes are
//! applied live: new channel plugins are loaded, the routes are swapped,
//! and connected clients stay connected (a joined channel keeps the plugin
//! it joined with; the next join takes the new routes). A plugin whose file
//! does not exist yet (its first build is running) is retried after each
//! build. Everything else (`[server]`, `[app]`, limits, the socket plugin,
//! tenants) is read once at start: an edit there is reported, plainly, as
//! needing a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use crate::app::App;
use crate::config;
use crate::runtime::Runtime;

/// Quiet time after the last source edit before a rebuild.
const SETTLE: Duration = Duration::from_millis(300);

/// Quiet time after the last write to the configuration before it is read:
/// an editor may write it in several steps.
const CONFIG_SETTLE: Duration = Duration::from_millis(100);

/// The sections of a configuration that `plume dev` applies live.
const LIVE_SECTIONS: [&str; 2] = ["plugins", "routes"];

/// What `plume dev` watches; dropping it stops the watching.
pub struct Dev {
    _sources: RecommendedWatcher,
    _config: Option<RecommendedWatcher>,
}

/// Whether a changed path is plugin source: a `.rs`, JavaScript or Python
/// file or a manifest, outside build output, installed npm packages and
/// Python's bytecode caches.
fn is_source(workspace: &Path, path: &Path) -> bool {
    in_plugins(workspace, path)
        && matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("rs" | "toml" | "wit" | "js" | "mjs" | "json" | "py")
        )
}

/// Whether `path` is under the workspace's `plugins/`, outside build
/// output, installed npm packages and Python's bytecode caches.
fn in_plugins(workspace: &Path, path: &Path) -> bool {
    path.strip_prefix(workspace.join("plugins")).is_ok_and(|relative| {
        !relative
            .components()
            .any(|c| matches!(c.as_os_str().to_str(), Some("target" | "node_modules" | "__pycache__")))
    })
}

/// Whether `event` calls for a build: a changed source file, or a new
/// folder under `plugins/`. The watcher only starts watching a new folder
/// once it sees it created, so the files `plume new` writes into it at once
/// may come before that and go unseen; the folder's own creation starts
/// the build, which reads whatever the folder holds after [`SETTLE`].
fn calls_for_build(workspace: &Path, event: &notify::Event) -> bool {
    let new_folder = matches!(event.kind, EventKind::Create(notify::event::CreateKind::Folder));
    event
        .paths
        .iter()
        .any(|p| is_source(workspace, p) || (new_folder && in_plugins(workspace, p)))
}

/// Start `plume dev`'s watchers: rebuild the plugins of `workspace` on
/// every source change and, when the apps were read from the file
/// `config`, apply its edits to `apps` (read from `loaded`).
pub fn watch(
    workspace: PathBuf,
    config: Option<PathBuf>,
    loaded: &config::Loaded,
    apps: Vec<Arc<App>>,
    runtime: Arc<Runtime>,
) -> anyhow::Result<Dev> {
    let (built, builds) = watch::channel(0u64);
    let sources = watch_sources(workspace, built)?;
    let config = match config {
        Some(path) => Some(watch_config(path, loaded.text().to_owned(), apps, runtime, builds)?),
        None => None,
    };
    Ok(Dev {
        _sources: sources,
        _config: config,
    })
}

/// Rebuild the plugins of `workspace` on every source change; `built`
/// counts the builds that finished.
fn watch_sources(workspace: PathBuf, built: watch::Sender<u64>) -> anyhow::Result<RecommendedWatcher> {
    let workspace = workspace.canonicalize()?;
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let root = workspace.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !matches!(event.kind, EventKind::Access(_))
            && calls_for_build(&root, &event)
        {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(&workspace.join("plugins"), RecursiveMode::Recursive)?;
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Let a burst of saves settle into one build.
            while let Ok(Some(())) = tokio::time::timeout(SETTLE, rx.recv()).await {}
            eprintln!("plume dev: plugin sources changed, rebuilding");
            let workspace = workspace.clone();
            match tokio::task::spawn_blocking(move || crate::build::build_plugins(&workspace)).await {
                Ok(Ok(_)) => eprintln!("plume dev: build finished; changed plugins go live now"),
                Ok(Err(error)) => eprintln!("plume dev: {error:#}; the running versions keep serving"),
                Err(error) => eprintln!("plume dev: the build task failed: {error}"),
            }
            built.send_modify(|count| *count += 1);
        }
    });
    Ok(watcher)
}

/// Apply the edits of the configuration file `path` (whose text, as
/// served, is `served`) to `apps`, now and after each build while some
/// could not be applied yet.
fn watch_config(
    path: PathBuf,
    served: String,
    apps: Vec<Arc<App>>,
    runtime: Arc<Runtime>,
    mut builds: watch::Receiver<u64>,
) -> anyhow::Result<RecommendedWatcher> {
    let path = std::path::absolute(&path)?;
    let folder = path.parent().map_or_else(|| PathBuf::from("."), Path::to_owned);
    let name = path.file_name().map(ToOwned::to_owned);
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Editors often write a new file and rename it over the old one:
        // watch the folder, and take any change to a file of that name.
        if let Ok(event) = event
            && !matches!(event.kind, EventKind::Access(_))
            && event.paths.iter().any(|p| p.file_name() == name.as_deref())
        {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(&folder, RecursiveMode::NonRecursive)?;
    eprintln!("plume dev: watching {}: added plugins and routes are served without a restart", path.display());
    tokio::spawn(async move {
        let mut applied = Applied { served, pending: false };
        loop {
            tokio::select! {
                changed = rx.recv() => {
                    if changed.is_none() {
                        return;
                    }
                    while let Ok(Some(())) = tokio::time::timeout(CONFIG_SETTLE, rx.recv()).await {}
                }
                built = builds.changed() => {
                    if built.is_err() || !applied.pending {
                        continue;
                    }
                }
            }
            let (path, apps, runtime) = (path.clone(), apps.clone(), runtime.clone());
            let previous = applied.clone();
            // Loading a plugin compiles it: keep it off the async threads.
            match tokio::task::spawn_blocking(move || apply(&path, previous, &apps, &runtime)).await {
                Ok(next) => applied = next,
                Err(error) => eprintln!("plume dev: applying the configuration failed: {error}"),
            }
        }
    });
    Ok(watcher)
}

/// The configuration as `plume dev` last applied it.
#[derive(Clone)]
struct Applied {
    /// The text whose plugins and routes are served.
    served: String,
    /// Whether the file holds plugins or routes not served yet (a plugin
    /// file that did not exist yet): retried after the next build.
    pending: bool,
}

/// Read the configuration at `path` and serve its plugins and routes,
/// saying what changed, what could not be applied yet, and what needs a
/// restart.
fn apply(path: &Path, applied: Applied, apps: &[Arc<App>], runtime: &Runtime) -> Applied {
    let file = path.display();
    let loaded = match config::load(path) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("plume dev: {error}; fix it and save again (the running configuration keeps serving)");
            return applied;
        }
    };
    let text = loaded.text().to_owned();
    if text == applied.served && !applied.pending {
        return applied;
    }
    let restart = needs_restart(&applied.served, &text, &loaded);
    if !restart.is_empty() {
        eprintln!(
            "plume dev: {file} changed {}: restart plume dev to apply that (it is read once at start; the server keeps the values it started with)",
            restart.join(", ")
        );
    }
    let [app] = apps else {
        eprintln!("plume dev: {file} serves several tenants: restart plume dev to apply changes to their plugins and routes");
        return Applied { served: text, pending: false };
    };
    match crate::server::reroute(app, &loaded, runtime) {
        Ok(routes) => {
            eprintln!("plume dev: {file} applied; routes now served:");
            for route in routes {
                eprintln!("plume dev:   {route}");
            }
            Applied { served: text, pending: false }
        }
        Err(error) => {
            eprintln!("plume dev: cannot serve the plugins and routes of {file} yet: {error:#}; retrying after the next build (the previous routes keep serving)");
            Applied { served: applied.served, pending: true }
        }
    }
}

/// What changed between the configuration texts `old` and `new` that is
/// not applied live: top-level sections other than plugins and routes,
/// and the socket plugin's entry. Named as the file names them.
fn needs_restart(old: &str, new: &str, loaded: &config::Loaded) -> Vec<String> {
    let (Ok(old), Ok(new)) = (old.parse::<toml::Table>(), new.parse::<toml::Table>()) else {
        return vec!["in a way plume dev cannot compare".into()];
    };
    let mut changed: Vec<String> = old
        .keys()
        .chain(new.keys())
        .filter(|key| !LIVE_SECTIONS.contains(&key.as_str()))
        .filter(|key| old.get(*key) != new.get(*key))
        .map(|key| format!("[{key}]"))
        .collect();
    changed.sort();
    changed.dedup();
    let socket = loaded.tenants().first().and_then(|tenant| tenant.socket_plugin.map(|name| name.get_ref().clone()));
    if let Some(socket) = socket {
        let entry = |table: &toml::Table| table.get("plugins").and_then(|plugins| plugins.get(&socket)).cloned();
        if entry(&old) != entry(&new) {
            changed.push(format!("[plugins.{socket}] (the socket plugin)"));
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plugin_sources_trigger_a_build() {
        let ws = Path::new("/w");
        assert!(is_source(ws, Path::new("/w/plugins/room/src/lib.rs")));
        assert!(is_source(ws, Path::new("/w/plugins/room/Cargo.toml")));
        assert!(!is_source(ws, Path::new("/w/plugins/room/target/x.rs")));
        assert!(!is_source(ws, Path::new("/w/host/src/main.rs")));
        assert!(!is_source(ws, Path::new("/w/plugins/room/src/lib.rs.swp")));
        assert!(is_source(ws, Path::new("/w/plugins/room-js/src/room.js")));
        assert!(is_source(ws, Path::new("/w/plugins/room-js/package.json")));
        assert!(!is_source(ws, Path::new("/w/plugins/room-js/node_modules/x/index.js")));
        assert!(is_source(ws, Path::new("/w/plugins/room-py/src/room.py")));
        assert!(is_source(ws, Path::new("/w/plugins/room-py/pyproject.toml")));
        assert!(!is_source(ws, Path::new("/w/plugins/room-py/src/__pycache__/room.cpython-311.pyc")));
        let created = |kind, path: &str| notify::Event::new(EventKind::Create(kind)).add_path(PathBuf::from(path));
        use notify::event::CreateKind;
        assert!(calls_for_build(ws, &created(CreateKind::Folder, "/w/plugins/added")), "a new plugin folder");
        assert!(calls_for_build(ws, &created(CreateKind::File, "/w/plugins/added/src/lib.rs")));
        assert!(!calls_for_build(ws, &created(CreateKind::Folder, "/w/plugins/room/target/debug")));
        assert!(!calls_for_build(ws, &created(CreateKind::Folder, "/w/host/src/x")));
        assert!(!calls_for_build(ws, &created(CreateKind::File, "/w/plugins/added/README")));
    }

    #[test]
    fn plugins_and_routes_apply_live_and_the_rest_needs_a_restart() {
        let old = "[app]\nid = \"a\"\n\n[plugins.room]\npath = \"room.wasm\"\n\n[[routes]]\ntopic = \"room:*\"\nplugin = \"room\"\n";
        let loaded = config::parse(old, "plume.toml", Path::new(".")).expect("valid");
        let added = format!("{old}\n[plugins.poll]\npath = \"poll.wasm\"\n\n[[routes]]\ntopic = \"poll:*\"\nplugin = \"poll\"\n");
        assert!(needs_restart(old, &added, &loaded).is_empty());
        let limited = format!("{added}\n[limits]\nmax_connections = 5\n");
        assert_eq!(needs_restart(old, &limited, &loaded), ["[limits]"]);
        let renamed = old.replace("id = \"a\"", "id = \"b\"");
        assert_eq!(needs_restart(old, &renamed, &loaded), ["[app]"]);
    }

    #[test]
    fn a_changed_socket_plugin_needs_a_restart() {
        let old = "[app]\nsocket_plugin = \"gate\"\n\n[plugins.gate]\npath = \"gate.wasm\"\n";
        let loaded = config::parse(old, "plume.toml", Path::new(".")).expect("valid");
        let moved = old.replace("gate.wasm", "gate2.wasm");
        assert_eq!(needs_restart(old, &moved, &loaded), ["[plugins.gate] (the socket plugin)"]);
    }
}
