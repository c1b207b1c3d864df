//! Plugins as the app sees them: a name, a file, and the version serving now.
//!
//! The serving version sits behind an [`ArcSwap`]: a call loads the pointer
//! once and runs to the end on that version, so replacing it (hot reload) is
//! one atomic store and never waits for calls in flight.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;

use crate::runtime::{ChannelVersion, SocketVersion};

/// A loaded plugin of either kind.
pub struct Plugin<V> {
    pub name: Arc<str>,
    pub path: PathBuf,
    current: ArcSwap<V>,
    channels: AtomicU64,
}

pub type ChannelPlugin = Plugin<ChannelVersion>;
pub type SocketPlugin = Plugin<SocketVersion>;

impl<V> Plugin<V> {
    pub fn new(name: &str, path: PathBuf, version: V) -> Self {
        Plugin {
            name: name.into(),
            path,
            current: ArcSwap::from_pointee(version),
            channels: AtomicU64::new(0),
        }
    }

    /// The version serving now.
    pub fn current(&self) -> Arc<V> {
        self.current.load_full()
    }

    /// Make `version` the one serving; calls in flight finish on the old one.
    pub fn swap(&self, version: V) -> Arc<V> {
        self.current.swap(Arc::new(version))
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
