//! `plume dev`: serve, and rebuild plugins whenever their source changes.
//!
//! A watcher on `plugins/` (sources and manifests, not build output) runs
//! `plume build` after the edits settle; the rebuilt `.wasm` files are then
//! picked up by the hot reloader like any other changed plugin file, so an
//! edit is live in seconds with every client still connected.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Quiet time after the last source edit before a rebuild.
const SETTLE: Duration = Duration::from_millis(300);

/// Whether a changed path is plugin source: a `.rs`, JavaScript or Python
/// file or a manifest, outside build output, installed npm packages and
/// Python's bytecode caches.
fn is_source(workspace: &Path, path: &Path) -> bool {
    let Ok(relative) = path.strip_prefix(workspace.join("plugins")) else {
        return false;
    };
    if relative.components().any(|c| matches!(c.as_os_str().to_str(), Some("target" | "node_modules" | "__pycache__"))) {
        return false;
    }
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("rs" | "toml" | "wit" | "js" | "mjs" | "json" | "py")
    )
}

/// Start rebuilding the plugins of `workspace` on every source change.
pub fn watch_sources(workspace: PathBuf) -> anyhow::Result<RecommendedWatcher> {
    let workspace = workspace.canonicalize()?;
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let root = workspace.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !matches!(event.kind, EventKind::Access(_))
            && event.paths.iter().any(|p| is_source(&root, p))
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
        }
    });
    Ok(watcher)
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
    }
}
