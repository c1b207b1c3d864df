//! Per-instance resource limits.

use wasmtime::ResourceLimiter;

/// Most table elements an instance may have; tables hold function
/// references, and no sane plugin needs more.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Caps an instance's linear memory. Growth past the cap traps at once with a
/// message that names the limit, instead of leaving a guest allocator to
/// fail in some less readable way.
pub struct MemoryLimiter {
    limit: usize,
}

impl MemoryLimiter {
    pub fn new(limit: usize) -> Self {
        MemoryLimiter { limit }
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
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            return Err(wasmtime::Error::new(MemoryLimitExceeded { limit: self.limit }));
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
