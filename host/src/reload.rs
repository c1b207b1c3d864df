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

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::app::{App, Plugin, VersionInfo};
use crate::runtime::{LoadError, Runtime, version_id};

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
                    let (app, runtime) = (app.clone(), runtime.clone());
                    // Compiling is CPU work: keep it off the async threads.
                    let _ = tokio::task::spawn_blocking(move || reload_path(&app, &runtime, &path)).await;
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

/// Load the file at `path` for every plugin that uses it.
pub fn reload_path(app: &App, runtime: &Runtime, path: &Path) {
    for plugin in app.channel_plugins() {
        if normalize(&plugin.path) == *path {
            reload(&plugin, path, |bytes| runtime.load_channel(&plugin.name, bytes, app.runtime));
        }
    }
    if let Some(plugin) = &app.socket_plugin
        && normalize(&plugin.path) == *path
    {
        reload(plugin, path, |bytes| runtime.load_socket(&plugin.name, bytes, app.runtime));
    }
}

fn reload<V: VersionInfo>(plugin: &Plugin<V>, path: &Path, load: impl FnOnce(&[u8]) -> Result<V, LoadError>) {
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
    match load(&bytes) {
        Ok(version) => {
            let new_id = version.id().to_owned();
            plugin.swap(version);
            tracing::info!(plugin = %name, version = %new_id, previous = %old.id(), took = ?started.elapsed(), "new plugin version is live");
        }
        Err(error) => {
            tracing::error!(plugin = %name, %error, "the new plugin version was refused; the old version keeps serving");
            plugin.set_last_error(error.to_string());
        }
    }
}
