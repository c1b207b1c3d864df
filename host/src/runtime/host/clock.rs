//! `clock`: wall-clock and monotonic time.

use std::sync::OnceLock;
use std::time::Instant;

use super::HostState;
use crate::runtime::bindings::imports::clock::Host;

impl Host for HostState {
    fn now_ms(&mut self) -> u64 {
        crate::clock::unix_ms()
    }

    fn monotonic_ns(&mut self) -> u64 {
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }
}
