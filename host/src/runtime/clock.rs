//! The epoch clock: deadlines and long-call checks for plugin calls.
//!
//! wasmtime interrupts a call when the engine's epoch passes the call's
//! deadline, and the epoch only moves when the host increments it. A
//! thread does that every [`EPOCH_TICK`] while plugin calls run. A server
//! with no call for [`PARK_AFTER_IDLE_TICKS`] ticks has nothing to
//! interrupt: the clock thread parks, and the next call to start wakes it,
//! so an idle server does not wake up thousands of times a second.
//!
//! The epoch check runs on the call's own thread, so a call traps only if
//! its thread runs. A long call runs at idle priority (see
//! [`super::priority`]), and on a machine whose cores are all busy it would
//! not run at all: so the clock also watches each demoted call, and gives
//! its thread normal priority back when it got almost no CPU for
//! [`STARVED_AFTER_TICKS`] ticks.
//!
//! [`EPOCH_TICK`]: super::EPOCH_TICK

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread::{self, Thread};
use std::time::Duration;

use parking_lot::Mutex;
use wasmtime::{Engine, EngineWeak};

use super::priority::{CallThread, Sample};

/// Ticks without a call in progress before the clock parks (50 ms at a
/// 0.5 ms tick).
const PARK_AFTER_IDLE_TICKS: u32 = 100;

/// How long a parked clock sleeps before it checks whether its engine is
/// gone (a call that starts wakes it at once).
const PARK_CHECK: Duration = Duration::from_secs(1);

/// Ticks over which a demoted call that got under a tenth of the CPU
/// (see [`super::priority::Sample::busy_since`]) is taken for a starved one,
/// and given normal priority back (2 ms at a 0.5 ms tick). A spinning call
/// that runs on idle CPU time, pausing one tick after each it runs, gets
/// about half; an honest call that crossed a tick and then found no idle
/// time gets nothing, and loses at most these ticks.
const STARVED_AFTER_TICKS: u32 = 4;

/// Shared between the clock thread and the pools whose calls it times.
pub(crate) struct Clock {
    in_flight: AtomicUsize,
    parked: AtomicBool,
    thread: Thread,
    /// The demoted calls in progress (see [`Clock::watch`]).
    watched: Mutex<Vec<Watched>>,
    next_watch: AtomicU64,
    tick: Duration,
}

/// A demoted call: the thread running it, its CPU time when the clock
/// last looked, and whether the clock has woken it since the call last
/// demoted itself.
struct Watched {
    id: u64,
    thread: CallThread,
    since: Sample,
    woken: bool,
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
            watched: Mutex::new(Vec::new()),
            next_watch: AtomicU64::new(0),
            tick,
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

    /// Watch a call that `thread` runs at idle priority until
    /// [`Clock::unwatch`]: whenever it gets under a tenth of the CPU over
    /// [`STARVED_AFTER_TICKS`] ticks, the clock gives the thread normal
    /// priority back (the call demotes it again if it spins on).
    pub fn watch(&self, thread: CallThread) -> u64 {
        let id = self.next_watch.fetch_add(1, Ordering::Relaxed);
        let since = thread.sample();
        self.watched.lock().push(Watched {
            id,
            thread,
            since,
            woken: false,
        });
        id
    }

    /// Whether the clock gave the watched call's thread normal priority
    /// back since the last time this was asked.
    pub fn take_woken(&self, id: u64) -> bool {
        self.watched
            .lock()
            .iter_mut()
            .find(|watched| watched.id == id)
            .is_some_and(|watched| std::mem::take(&mut watched.woken))
    }

    /// The call of [`Clock::watch`] ended. After this returns, the clock
    /// leaves its thread alone (it may run other calls by then).
    pub fn unwatch(&self, id: u64) {
        self.watched.lock().retain(|watched| watched.id != id);
    }

    /// Give every watched call that starved since the clock last looked
    /// its thread's normal priority back. The lock is held while it does,
    /// so a call that ends meanwhile waits in [`Clock::unwatch`] and its
    /// thread is not touched once it has moved on.
    fn wake_starved(&self) {
        let mut watched = self.watched.lock();
        if watched.is_empty() {
            return;
        }
        let window = self.tick * STARVED_AFTER_TICKS;
        for call in watched.iter_mut() {
            if call.since.elapsed() < window {
                continue;
            }
            let now = call.thread.sample();
            if !now.busy_since(&call.since) {
                call.thread.wake();
                call.woken = true;
            }
            call.since = now;
        }
    }

    /// How many calls the clock watches (for tests).
    #[cfg(test)]
    pub fn watched(&self) -> usize {
        self.watched.lock().len()
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
        clock.wake_starved();
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
