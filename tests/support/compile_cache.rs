//! A compile cache of its own for every server a test starts.
//!
//! A server with no cache of its own would use `~/.cache/plume`: the
//! user's, shared by every test and every run, where one test's entries (or
//! damage) reach the next. A server with an empty cache compiles every
//! plugin at start, which costs seconds on two cores (the JavaScript room
//! alone about fifteen). So the plugins are compiled once into a template
//! under `target/test-compile-cache` (kept between runs; entries are named
//! by content hash and engine settings, so a stale one is never loaded),
//! and each server's own cache starts as hard links to the template's
//! entries. The cache replaces an entry by writing aside and renaming, and
//! drops a bad one by unlinking it, so what a server does to its cache
//! never reaches the template or another server's.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plume::runtime::{CompileCache, Runtime, Settings};

/// The template: every plugin of [`super::plugin_dir`], compiled once per
/// test binary (loaded from the template itself after the first run).
pub fn template() -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let dir = super::workspace().join("target/test-compile-cache");
        let runtime = Runtime::new(Settings::default(), Some(CompileCache::new(dir.clone())))
            .expect("a runtime to compile the plugins with");
        let plugins = std::fs::read_dir(super::plugin_dir()).expect("the built plugins");
        for entry in plugins.filter_map(Result::ok) {
            let path = entry.path();
            if path.extension().is_some_and(|ext| ext == "wasm") {
                let name = path.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
                // Loading compiles into the cache before it checks the
                // world, so a socket plugin loaded as a channel one is cached
                // all the same.
                if runtime.load_channel_file(&name, &path, Settings::default()).is_err() {
                    let _ = runtime.load_socket_file(&name, &path, Settings::default());
                }
            }
        }
        dir
    })
}

/// Make `dir` a compile cache holding every entry of the template.
pub fn seed(dir: &Path) {
    std::fs::create_dir_all(dir).expect("a compile-cache folder");
    let Ok(entries) = std::fs::read_dir(template()) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let from = entry.path();
        if from.extension().is_some_and(|ext| ext == "cwasm") {
            let to = dir.join(entry.file_name());
            if std::fs::hard_link(&from, &to).is_err() {
                std::fs::copy(&from, &to).expect("copy a compile-cache entry");
            }
        }
    }
}
