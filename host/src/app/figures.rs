//! Live figures of one app: open sockets, joined channels, distinct users.
//!
//! Counters are atomics, touched once per connect, join, leave and close;
//! nothing here sits on the message path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

#[derive(Default)]
pub struct Figures {
    connections: AtomicU64,
    channels: AtomicU64,
    /// Open sockets per socket id.
    ids: Mutex<HashMap<String, u64>>,
}

impl Figures {
    pub fn socket_opened(&self, id: Option<&str>) {
        self.connections.fetch_add(1, Ordering::Relaxed);
        if let Some(id) = id {
            *self.ids.lock().entry(id.to_owned()).or_default() += 1;
        }
    }

    pub fn socket_closed(&self, id: Option<&str>) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
        if let Some(id) = id {
            let mut ids = self.ids.lock();
            if let Some(count) = ids.get_mut(id) {
                *count -= 1;
                if *count == 0 {
                    ids.remove(id);
                }
            }
        }
    }

    pub fn channel_joined(&self) {
        self.channels.fetch_add(1, Ordering::Relaxed);
    }

    pub fn channel_left(&self) {
        self.channels.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    pub fn channels(&self) -> u64 {
        self.channels.load(Ordering::Relaxed)
    }

    /// Distinct socket ids among open sockets.
    pub fn users(&self) -> u64 {
        self.ids.lock().len() as u64
    }

    /// Open sockets with this socket id.
    pub fn connections_of(&self, id: &str) -> u64 {
        self.ids.lock().get(id).copied().unwrap_or(0)
    }
}
