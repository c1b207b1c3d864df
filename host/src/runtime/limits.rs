//! Per-instance resource limits.

use wasmtime::ResourceLimiter;

/// Most table elements an instance may have; tables hold function
/// references, and no sane plugin needs more.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Caps an instance's linear memory. Growth past the cap traps at once with a
/// message that names the limit, instead of leaving a guest allocator to
/// fail in some less readable way.
///
/// It also notes when a memory grows past three quarters of the cap, so the
/// pool can retire the instance after a call that succeeded rather than let
/// a later call fail. A garbage-collected guest (JavaScript in SpiderMonkey)
/// lets its heap grow well past what it keeps alive before it collects, so
/// its memory only climbs from call to call: retired near the cap, its
/// instance is replaced by a fresh one instead of crashing a channel.
pub struct MemoryLimiter {
    limit: usize,
    nearly_full: bool,
}

impl MemoryLimiter {
    pub fn new(limit: usize) -> Self {
        MemoryLimiter {
            limit,
            nearly_full: false,
        }
    }

    /// Whether a memory of the instance grew past three quarters of the cap.
    pub fn nearly_full(&self) -> bool {
        self.nearly_full
    }
}

/// The trap raised when an instance outgrows its memory limit.
#[derive(Debug, thiserror::Error)]
#[error("the plugin instance exceeded its memory limit of {limit} bytes")]
pub struct MemoryLimitExceeded {
    pub limit: usize,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            return Err(wasmtime::Error::new(MemoryLimitExceeded { limit: self.limit }));
        }
        // `current` is 0 when the memory is created: only growth counts.
        if current > 0 && desired > self.limit / 4 * 3 {
            self.nearly_full = true;
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    #[test]
    fn growth_past_three_quarters_of_the_limit_marks_the_instance_nearly_full() {
        let mut limiter = MemoryLimiter::new(64 * MIB);
        assert!(limiter.memory_growing(9 * MIB, 40 * MIB, None).expect("allowed"));
        assert!(!limiter.nearly_full());
        assert!(limiter.memory_growing(40 * MIB, 49 * MIB, None).expect("allowed"));
        assert!(limiter.nearly_full());
    }

    #[test]
    fn a_memory_created_large_is_not_growth() {
        let mut limiter = MemoryLimiter::new(64 * MIB);
        assert!(limiter.memory_growing(0, 60 * MIB, None).expect("allowed"));
        assert!(!limiter.nearly_full());
    }

    #[test]
    fn growth_past_the_limit_fails_with_the_limit() {
        let mut limiter = MemoryLimiter::new(64 * MIB);
        let error = limiter.memory_growing(60 * MIB, 65 * MIB, None).unwrap_err();
        assert_eq!(error.downcast_ref::<MemoryLimitExceeded>().map(|e| e.limit), Some(64 * MIB));
    }
}
