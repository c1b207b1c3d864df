//! The epoch clock: deadlines and long-call checks for plugin calls.
//!
//! wasmtime interrupts a call when the engine's epoch passes the call's
//! deadline, and the epoch only moves when the host increments it. A
//! thread does that every [`EPOCH_TICK`] while plugin calls run. A server
//! with no call for [`PARK_AFTER_IDLE_TICKS`] ticks has nothing to
//! interrupt: the clock thread parks, and the next call to start wakes it,
//! so an idle server does not wake up thousands of times a second.
//!
//! [`EPOCH_TICK`]: super::EPOCH_TICK

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread::{self, Thread};
use std::time::Duration;

use wasmtime::{Engine, EngineWeak};

/// Ticks without a call in progress before the clock parks (50 ms at a
/// 0.5 ms tick).
const PARK_AFTER_IDLE_TICKS: u32 = 100;

/// How long a parked clock sleeps before it checks whether its engine is
/// gone (a call that starts wakes it at once).
const PARK_CHECK: Duration = Duration::from_secs(1);

/// Shared between the clock thread and the pools whose calls it times.
pub(crate) struct Clock {
    in_flight: AtomicUsize,
    parked: AtomicBool,
    thread: Thread,
}

impl Clock {
    /// Start the clock thread of `engine`; it ends when the engine is dropped.
    pub fn start(engine: &Engine, tick: Duration) -> std::io::Result<Arc<Clock>> {
        let weak = engine.weak();
        let (sender, receiver) = std::sync::mpsc::channel::<Weak<Clock>>();
        let handle = thread::Builder::new()
            .name("plume-epoch".into())
            .spawn(move || {
                if let Ok(clock) = receiver.recv() {
                    run(&weak, &clock, tick);
                }
            })?;
        let clock = Arc::new(Clock {
            in_flight: AtomicUsize::new(0),
            parked: AtomicBool::new(false),
            thread: handle.thread().clone(),
        });
        let _ = sender.send(Arc::downgrade(&clock));
        Ok(clock)
    }

    /// Count a plugin call (or instantiation) in progress until the guard
    /// drops, waking the clock if it is parked.
    pub fn enter(&self) -> InFlight<'_> {
        // SeqCst on both sides: either this sees `parked` and wakes the
        // clock, or the clock sees this call before it parks.
        if self.in_flight.fetch_add(1, Ordering::SeqCst) == 0 && self.parked.load(Ordering::SeqCst) {
            self.thread.unpark();
        }
        InFlight(self)
    }

    /// Whether the clock thread is parked (for tests).
    #[cfg(test)]
    fn is_parked(&self) -> bool {
        self.parked.load(Ordering::SeqCst)
    }
}

/// A call in progress; see [`Clock::enter`].
pub(crate) struct InFlight<'a>(&'a Clock);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn run(engine: &EngineWeak, clock: &Weak<Clock>, tick: Duration) {
    let mut idle_ticks = 0u32;
    loop {
        // Sleep first: a call that wakes a parked clock gets a whole tick
        // before its first check, as every call does.
        thread::sleep(tick);
        let (Some(engine), Some(clock)) = (engine.upgrade(), clock.upgrade()) else {
            return;
        };
        engine.increment_epoch();
        if clock.in_flight.load(Ordering::SeqCst) != 0 {
            idle_ticks = 0;
            continue;
        }
        idle_ticks += 1;
        if idle_ticks < PARK_AFTER_IDLE_TICKS {
            continue;
        }
        idle_ticks = 0;
        drop(engine);
        clock.parked.store(true, Ordering::SeqCst);
        while clock.in_flight.load(Ordering::SeqCst) == 0 && Arc::strong_count(&clock) > 1 {
            thread::park_timeout(PARK_CHECK);
        }
        clock.parked.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let until = Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(Instant::now() < until, "timed out waiting until {what}");
            thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn the_clock_parks_when_idle_and_a_call_wakes_it() {
        let engine = Engine::default();
        let clock = Clock::start(&engine, Duration::from_micros(200)).unwrap();
        wait_until("the idle clock parks", || clock.is_parked());
        let call = clock.enter();
        wait_until("the call wakes the clock", || !clock.is_parked());
        // It stays awake while the call runs.
        thread::sleep(Duration::from_millis(60));
        assert!(!clock.is_parked());
        drop(call);
        wait_until("the clock parks again", || clock.is_parked());
    }
}
