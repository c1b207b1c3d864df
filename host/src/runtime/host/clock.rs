//! `clock`: wall-clock and monotonic time.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::HostState;
use crate::runtime::bindings::imports::clock::Host;

/// Milliseconds since the Unix epoch, as the host sees them.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Host for HostState {
    fn now_ms(&mut self) -> u64 {
        unix_ms()
    }

    fn monotonic_ns(&mut self) -> u64 {
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }
}
