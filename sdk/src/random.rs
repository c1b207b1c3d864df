//! Randomness from the host (message ids, game seeds). Not for secrets a
//! plugin invents: sign with [`token`](crate::token) instead.

use crate::imports::random as wit;

/// A random `u64`.
///
/// ```no_run
/// let id = format!("{:016x}", plume_sdk::random::u64());
/// ```
pub fn u64() -> u64 {
    wit::random_u64()
}

/// `len` random bytes.
///
/// ```no_run
/// let nonce = plume_sdk::random::bytes(16);
/// assert_eq!(nonce.len(), 16);
/// ```
pub fn bytes(len: u32) -> Vec<u8> {
    wit::random_bytes(len)
}
