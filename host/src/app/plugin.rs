//! Plugins as the app sees them: a name, a file, and the version serving now.
//!
//! The serving version sits behind an [`ArcSwap`]: a call loads the pointer
//! once and runs to the end on that version, so replacing it (hot reload) is
//! one atomic store and never waits for calls in flight.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use crate::runtime::{ChannelVersion, Loaded, Origin, SocketVersion};

/// A loaded plugin of either kind.
pub struct Plugin<V> {
    pub name: Arc<str>,
    pub path: PathBuf,
    current: ArcSwap<V>,
    channels: AtomicU64,
    /// Why the last attempt to load a new version failed, if it did; the
    /// version serving is unaffected.
    last_error: Mutex<Option<String>>,
    /// What the host measures of its calls (see [`super::telemetry`]).
    pub telemetry: super::telemetry::Telemetry,
}

pub type ChannelPlugin = Plugin<ChannelVersion>;
pub type SocketPlugin = Plugin<SocketVersion>;

impl<V: VersionInfo> Plugin<V> {
    pub fn new(name: &str, path: PathBuf, version: V) -> Self {
        Plugin {
            name: name.into(),
            path,
            current: ArcSwap::from_pointee(version),
            channels: AtomicU64::new(0),
            last_error: Mutex::new(None),
            telemetry: super::telemetry::Telemetry::default(),
        }
    }

    /// The version serving now.
    pub fn current(&self) -> Arc<V> {
        self.current.load_full()
    }

    /// Make `version` the one serving; calls in flight finish on the old
    /// one. Returns the version now serving.
    pub fn swap(&self, version: V) -> Arc<V> {
        *self.last_error.lock() = None;
        let version = Arc::new(version);
        let old = self.current.swap(version.clone());
        self.telemetry.swapped(old.id(), version.id());
        version
    }

    /// Replace `baseline`, serving since a hot swap, with `optimized`: the
    /// same bytes compiled by the optimizing compiler. That is no new
    /// version: no swap is counted, the time it went live stays, and
    /// channels move to it without `upgrade` (see `socket::channel`).
    /// Does nothing, and returns false, when another version was swapped
    /// in meanwhile.
    pub fn optimize(&self, baseline: &Arc<V>, mut optimized: V) -> bool {
        debug_assert_eq!(baseline.id(), optimized.id());
        optimized.set_loaded_at(baseline.loaded_at());
        let previous = self.current.compare_and_swap(baseline, Arc::new(optimized));
        Arc::ptr_eq(&previous, baseline)
    }

    /// Remember why a new version was refused.
    pub fn set_last_error(&self, error: String) {
        self.telemetry.load_failed(&error);
        *self.last_error.lock() = Some(error);
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
    }

    pub fn channel_joined(&self) {
        self.channels.fetch_add(1, Ordering::Relaxed);
    }

    pub fn channel_left(&self) {
        self.channels.fetch_sub(1, Ordering::Relaxed);
    }

    /// Channels joined through this plugin now.
    pub fn channels(&self) -> u64 {
        self.channels.load(Ordering::Relaxed)
    }
}

/// What the status page and the reloader need to know of a version.
pub trait VersionInfo {
    /// The content hash that names the version.
    fn id(&self) -> &str;
    /// When the version went live.
    fn loaded_at(&self) -> SystemTime;
    fn set_loaded_at(&mut self, at: SystemTime);
    /// How its code was obtained.
    fn loaded(&self) -> Loaded;
}

impl VersionInfo for ChannelVersion {
    fn id(&self) -> &str {
        ChannelVersion::id(self)
    }

    fn loaded_at(&self) -> SystemTime {
        ChannelVersion::loaded_at(self)
    }

    fn set_loaded_at(&mut self, at: SystemTime) {
        ChannelVersion::set_loaded_at(self, at);
    }

    fn loaded(&self) -> Loaded {
        ChannelVersion::loaded(self)
    }
}

impl VersionInfo for SocketVersion {
    fn id(&self) -> &str {
        SocketVersion::id(self)
    }

    fn loaded_at(&self) -> SystemTime {
        SocketVersion::loaded_at(self)
    }

    fn set_loaded_at(&mut self, at: SystemTime) {
        SocketVersion::set_loaded_at(self, at);
    }

    fn loaded(&self) -> Loaded {
        SocketVersion::loaded(self)
    }
}

impl<V: VersionInfo> Plugin<V> {
    /// The plugin's entry on `GET /_plume/plugins`.
    pub fn status(&self, kind: &str, routes: Vec<String>) -> serde_json::Value {
        let current = self.current();
        let loaded_at_ms = current
            .loaded_at()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        serde_json::json!({
            "name": &*self.name,
            "kind": kind,
            "path": self.path.display().to_string(),
            "routes": routes,
            "version": current.id(),
            "compiler": compiler_name(current.loaded().origin),
            "loaded_at_ms": loaded_at_ms,
            "channels": self.channels(),
            "last_error": self.last_error(),
        })
    }
}

/// Which compiler made the code serving, as the status page names it: a
/// hot swap runs on `baseline` code until its `optimized` code is ready.
fn compiler_name(origin: Origin) -> &'static str {
    match origin {
        Origin::Compiled | Origin::Cached => "optimized",
        Origin::Baseline => "baseline",
        Origin::Native => "native",
    }
}
