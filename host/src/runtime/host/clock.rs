//! `clock`: wall-clock and monotonic time, from the host's clocks
//! ([`crate::clock`]).

use super::HostState;
use crate::runtime::bindings::imports::clock::Host;

impl Host for HostState {
    fn now_ms(&mut self) -> u64 {
        crate::clock::unix_ms()
    }

    fn monotonic_ns(&mut self) -> u64 {
        crate::clock::monotonic_ns()
    }
}
