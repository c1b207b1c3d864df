//! Hot reload: a changed plugin file becomes the serving version while its
//! channels stay joined.
//!
//! A `notify` watcher reports changes to the folders holding plugin files.
//! Changes to one file are debounced: a file renamed into place or closed
//! by its writer is taken after a few milliseconds, one still being written
//! in place after it has been quiet for [`DEBOUNCE`]. Then the new bytes are compiled on a blocking
//! thread (or taken from the compile cache), checked against the plugin's
//! world, and swapped in with one atomic store: calls in flight finish on
//! the old version, the next call uses the new one, and each live channel
//! passes its assigns through the new version's `upgrade` before that call.
//! A file that fails to load leaves the old version serving; the error is
//! logged with the plugin's name and shown on `/_plume/plugins`.
//!
//! New code goes live in two steps, so that it serves within tens of
//! milliseconds: Cranelift takes 200 to 300 ms to compile a small plugin on
//! two busy cores, Winch (the baseline compiler) a tenth of that. A version
//! whose optimized code is in the compile cache is loaded from there, as
//! before. Otherwise Winch's code is swapped in first, and a background
//! thread compiles the same bytes with Cranelift (and stores them in the
//! cache), then replaces the baseline code with it: the same version, so
//! channels keep their assigns without a second `upgrade`, telemetry counts
//! one swap, and the status page shows one version, its `compiler` going
//! from `baseline` to `optimized`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use parking_lot::Mutex;

use crate::app::{App, Plugin, VersionInfo};
use crate::runtime::{LoadError, Origin, Runtime, Tier, version_id};

/// Quiet time after a file's last in-place modification before it is
/// loaded: a writer may still be adding chunks.
pub const DEBOUNCE: Duration = Duration::from_millis(50);

/// Quiet time after a change that completes a file (its writer closed it,
/// or it was renamed into place): only to let a burst of events settle.
pub const SETTLE: Duration = Duration::from_millis(5);

/// Watches an app's plugin files; dropping it stops the watching.
pub struct Reloader {
    _watcher: RecommendedWatcher,
}

/// A path as the watcher reports it: its folder resolved, so that
/// `./target/x.wasm` and `/abs/target/x.wasm` compare equal.
fn normalize(path: &Path) -> PathBuf {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return path.to_owned();
    };
    let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
    parent
        .canonicalize()
        .map_or_else(|_| path.to_owned(), |dir| dir.join(name))
}

/// Start watching every plugin file of `app`.
pub fn watch(app: Arc<App>, runtime: Arc<Runtime>) -> anyhow::Result<Reloader> {
    let (tx, rx) = mpsc::unbounded_channel::<(PathBuf, Duration)>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        let wait = match event.kind {
            // The writer closed the file, or the file was renamed into
            // place: it is complete.
            EventKind::Access(AccessKind::Close(AccessMode::Write))
            | EventKind::Modify(ModifyKind::Name(_))
            | EventKind::Create(_) => SETTLE,
            EventKind::Access(_) => return,
            _ => DEBOUNCE,
        };
        for path in event.paths {
            let _ = tx.send((path, wait));
        }
    })?;
    let folders: HashSet<PathBuf> = plugin_files(&app)
        .iter()
        .filter_map(|path| path.parent().map(Path::to_owned))
        .collect();
    for folder in &folders {
        watcher.watch(folder, RecursiveMode::NonRecursive)?;
    }
    tokio::spawn(debounce(rx, app, runtime));
    Ok(Reloader { _watcher: watcher })
}

/// The files of the plugins `app` serves now, normalized. Asked afresh for
/// each change: `plume dev` may add plugins to a running app (a new plugin
/// in a folder watched already, as `target/plugins` is, reloads too).
fn plugin_files(app: &App) -> HashSet<PathBuf> {
    let mut paths: HashSet<PathBuf> = app.channel_plugins().iter().map(|p| normalize(&p.path)).collect();
    paths.extend(app.socket_plugin.iter().map(|p| normalize(&p.path)));
    paths
}

async fn debounce(mut changes: mpsc::UnboundedReceiver<(PathBuf, Duration)>, app: Arc<App>, runtime: Arc<Runtime>) {
    let mut due: HashMap<PathBuf, Instant> = HashMap::new();
    let optimizing = Arc::new(Mutex::new(()));
    loop {
        let next = due.values().min().copied();
        tokio::select! {
            change = changes.recv() => {
                let Some((path, wait)) = change else { return };
                let path = normalize(&path);
                if plugin_files(&app).contains(&path) {
                    due.insert(path, Instant::now() + wait);
                }
            }
            () = sleep_until(next), if next.is_some() => {
                let now = Instant::now();
                let ready: Vec<PathBuf> = due.iter().filter(|(_, at)| **at <= now).map(|(p, _)| p.clone()).collect();
                for path in ready {
                    due.remove(&path);
                    let (app, runtime, optimizing) = (app.clone(), runtime.clone(), optimizing.clone());
                    // Compiling is CPU work: keep it off the async threads.
                    let _ = tokio::task::spawn_blocking(move || reload_path(&app, &runtime, &path, &optimizing)).await;
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at.into()).await;
    }
}

/// Load the file at `path` for every plugin that uses it. `optimizing` is
/// held by the background compile of optimized code, so that one runs at a
/// time (see [`optimize_later`]).
fn reload_path(app: &App, runtime: &Arc<Runtime>, path: &Path, optimizing: &Arc<Mutex<()>>) {
    let settings = app.runtime;
    for plugin in app.channel_plugins() {
        if normalize(&plugin.path) == *path {
            let (runtime, name) = (runtime.clone(), plugin.name.clone());
            reload(&plugin, path, optimizing, move |bytes, tier| runtime.load_channel(&name, bytes, settings, tier));
        }
    }
    if let Some(plugin) = &app.socket_plugin
        && normalize(&plugin.path) == *path
    {
        let (runtime, name) = (runtime.clone(), plugin.name.clone());
        reload(plugin, path, optimizing, move |bytes, tier| runtime.load_socket(&name, bytes, settings, tier));
    }
}

fn reload<V, L>(plugin: &Arc<Plugin<V>>, path: &Path, optimizing: &Arc<Mutex<()>>, load: L)
where
    V: VersionInfo + Send + Sync + 'static,
    L: Fn(&[u8], Tier) -> Result<V, LoadError> + Send + 'static,
{
    let name = &plugin.name;
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(plugin = %name, path = %path.display(), "the plugin file was deleted; the last version keeps serving");
            return;
        }
        Err(error) => {
            tracing::error!(plugin = %name, path = %path.display(), %error, "cannot read the new plugin file; the old version keeps serving");
            plugin.set_last_error(format!("cannot read {}: {error}", path.display()));
            return;
        }
    };
    let old = plugin.current();
    if version_id(&bytes) == old.id() {
        return;
    }
    let started = Instant::now();
    match load(&bytes, Tier::Baseline) {
        Ok(version) => {
            let baseline = version.loaded().origin == Origin::Baseline;
            let live = plugin.swap(version);
            tracing::info!(plugin = %name, version = %live.id(), previous = %old.id(), baseline, took = ?started.elapsed(), "new plugin version is live");
            if baseline {
                optimize_later(plugin.clone(), live, bytes, optimizing.clone(), load);
            }
        }
        Err(error) => {
            tracing::error!(plugin = %name, %error, "the new plugin version was refused; the old version keeps serving");
            plugin.set_last_error(error.to_string());
        }
    }
}

/// Compile `bytes`, serving as `baseline`, with Cranelift on a thread of
/// its own, and put that code in its place. One such compile runs at a
/// time (`optimizing`), so a burst of swaps does not pile compiles onto
/// the cores that serve; a version replaced before its turn is skipped.
fn optimize_later<V, L>(plugin: Arc<Plugin<V>>, baseline: Arc<V>, bytes: Vec<u8>, optimizing: Arc<Mutex<()>>, load: L)
where
    V: VersionInfo + Send + Sync + 'static,
    L: Fn(&[u8], Tier) -> Result<V, LoadError> + Send + 'static,
{
    let spawned = std::thread::Builder::new().name("plume-optimize".into()).spawn(move || {
        let _turn = optimizing.lock();
        if !Arc::ptr_eq(&plugin.current(), &baseline) {
            return;
        }
        let started = Instant::now();
        match load(&bytes, Tier::Background) {
            Ok(version) => {
                if plugin.optimize(&baseline, version) {
                    tracing::info!(plugin = %plugin.name, version = %baseline.id(), took = ?started.elapsed(), "the version's optimized code is live");
                }
            }
            // The bytes compiled with Winch and linked; Cranelift failing
            // on them is the runtime's fault, not the plugin's: the
            // baseline code keeps serving.
            Err(error) => {
                tracing::error!(plugin = %plugin.name, version = %baseline.id(), %error, "the optimized code failed to load; the baseline code keeps serving");
            }
        }
    });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the thread that compiles optimized code; the baseline code keeps serving");
    }
}
