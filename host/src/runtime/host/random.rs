//! `random`: randomness from the host's generator.

use rand::RngCore;

use super::HostState;
use crate::runtime::bindings::imports::random::Host;

/// The most bytes one `random-bytes` call returns.
const MAX_RANDOM_BYTES: u32 = 64 * 1024;

impl Host for HostState {
    fn random_u64(&mut self) -> u64 {
        rand::rng().next_u64()
    }

    fn random_bytes(&mut self, len: u32) -> Vec<u8> {
        let mut bytes = vec![0; len.min(MAX_RANDOM_BYTES) as usize];
        rand::rng().fill_bytes(&mut bytes);
        bytes
    }
}
