//! The host's clocks: tokens, plugin timestamps (`clock` imports),
//! key-value expiry and long-poll sessions all read time here.
//!
//! Both clocks are the system's unless a [`TimeSource`] is installed on the
//! current thread with [`use_on_this_thread`]. That is for test harnesses
//! (`plume-test`) that drive a whole app on one thread under a virtual
//! clock: a plugin's `clock::now-ms`, a token's `signed_at` and a key's
//! expiry then follow the harness's time, not the wall clock, so timed
//! behaviour is tested without sleeping. Only the installing thread is
//! affected; a server never installs one.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A stand-in for the system clocks.
pub trait TimeSource {
    /// Milliseconds since the Unix epoch.
    fn unix_ms(&self) -> u64;
    /// Nanoseconds on a clock that never goes back.
    fn monotonic_ns(&self) -> u64;
}

thread_local! {
    static SOURCE: RefCell<Option<Rc<dyn TimeSource>>> = const { RefCell::new(None) };
}

fn installed() -> Option<Rc<dyn TimeSource>> {
    SOURCE.with_borrow(Clone::clone)
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_ms() -> u64 {
    if let Some(source) = installed() {
        return source.unix_ms();
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Nanoseconds since an arbitrary moment of this process; never goes back.
pub fn monotonic_ns() -> u64 {
    if let Some(source) = installed() {
        return source.monotonic_ns();
    }
    static START: OnceLock<Instant> = OnceLock::new();
    u64::try_from(START.get_or_init(Instant::now).elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Milliseconds on the monotonic clock.
pub fn monotonic_ms() -> u64 {
    monotonic_ns() / 1_000_000
}

/// Read time from `source` on this thread until the guard is dropped; the
/// previous source (usually the system clocks) comes back then.
#[must_use = "the source is uninstalled when the guard is dropped"]
pub fn use_on_this_thread(source: Rc<dyn TimeSource>) -> ThreadSourceGuard {
    let previous = SOURCE.with_borrow_mut(|slot| slot.replace(source));
    ThreadSourceGuard { previous }
}

/// Restores the previous time source of its thread when dropped.
pub struct ThreadSourceGuard {
    previous: Option<Rc<dyn TimeSource>>,
}

impl Drop for ThreadSourceGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        SOURCE.with_borrow_mut(|slot| *slot = previous);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;

    impl TimeSource for Fixed {
        fn unix_ms(&self) -> u64 {
            1_000
        }

        fn monotonic_ns(&self) -> u64 {
            7
        }
    }

    #[test]
    fn an_installed_source_replaces_the_system_clocks_until_dropped() {
        let system = unix_ms();
        {
            let _guard = use_on_this_thread(Rc::new(Fixed));
            assert_eq!(unix_ms(), 1_000);
            assert_eq!(monotonic_ns(), 7);
            let other_thread = std::thread::spawn(unix_ms).join().expect("thread");
            assert!(other_thread >= system, "other threads keep the system clock");
        }
        assert!(unix_ms() >= system);
    }
}
