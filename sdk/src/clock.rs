//! Time as the host sees it. A plugin has no clock of its own worth
//! trusting: use these.

use std::time::Duration;

use crate::__bindings::host::clock as wit;

/// Milliseconds since the Unix epoch: wall-clock time, for timestamps.
///
/// ```no_run
/// let unix_seconds = plume_sdk::clock::now_ms() / 1000;
/// ```
pub fn now_ms() -> u64 {
    wit::now_ms()
}

/// Nanoseconds from an arbitrary fixed point; never goes back. For
/// measuring intervals (rate limits), not for timestamps.
///
/// ```no_run
/// use plume_sdk::clock;
///
/// let start = clock::monotonic_ns();
/// let elapsed_ms = (clock::monotonic_ns() - start) / 1_000_000;
/// ```
pub fn monotonic_ns() -> u64 {
    wit::monotonic_ns()
}

/// A duration in whole milliseconds, saturating: the unit of the host's
/// timers and expiries.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_rounds_down_and_saturates() {
        assert_eq!(millis(Duration::from_micros(1_999)), 1);
        assert_eq!(millis(Duration::MAX), u64::MAX);
    }
}
