//! Pooled plugin instances.
//!
//! Instantiating a component costs tens of microseconds; calling a warm
//! instance costs well under one. A plugin instance keeps no channel state
//! between calls (the host passes the state in), so any idle instance of a
//! version can serve any call: a call takes one from the pool, and gives it
//! back unless it trapped. A trapped instance is dropped with its store, so
//! nothing a failed call left in its memory can reach a later call.
//!
//! A version has at most `max_instances` instances alive. A call that finds
//! them all busy waits up to [`INSTANCE_WAIT`] for one to come back, then
//! fails with [`Fault::Busy`]: the pool never grows without bound, and a
//! caller never waits long on the socket task it blocks.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, Trap};

use super::clock::Clock;
use super::context::CallContext;
use super::host::HostState;
use super::limits::MemoryLimitExceeded;
use super::{Fault, Settings};

thread_local! {
    /// Whether this thread is inside a plugin call: a panic there is the
    /// plugin's fault (e.g. a blocking WASI call), not the host's.
    static IN_PLUGIN_CALL: Cell<bool> = const { Cell::new(false) };
}

/// Keep the default panic report for the host's own panics, and reduce a
/// panic caught inside a plugin call to a debug line: the call fails with a
/// [`Fault`] that is logged where the channel crashes.
pub(crate) fn install_panic_filter() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_PLUGIN_CALL.get() {
                tracing::debug!("a host function panicked during a plugin call: {info}");
            } else {
                default(info);
            }
        }));
    });
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// Run `f`, a plugin call, catching a panic inside it: the panic's message
/// comes back as the error, and the panic filter keeps it off stderr.
pub(crate) fn catch_plugin_panic<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    IN_PLUGIN_CALL.set(true);
    let result = catch_unwind(AssertUnwindSafe(f));
    IN_PLUGIN_CALL.set(false);
    result.map_err(|payload| panic_message(&*payload))
}

/// Typed bindings of one world, instantiable from a pre-linked component.
pub(crate) trait World: Sized + Send + 'static {
    type Pre: Send + Sync;

    fn prepare(linker: &Linker<HostState>, component: &Component) -> Result<Self::Pre, String>;

    fn instantiate(pre: &Self::Pre, store: &mut Store<HostState>) -> wasmtime::Result<Self>;
}

/// How long a call waits for an instance when all are busy.
pub const INSTANCE_WAIT: Duration = Duration::from_millis(100);

/// Epoch ticks a call runs before the host first looks at it. A call
/// still running then may be a long one, or a short one whose thread the
/// kernel preempted: epochs count wall-clock time, and on a busy machine a
/// 2 µs call whose thread loses its core for a scheduler tick (4 ms here)
/// crosses epoch ticks as surely as a spinning one. Only a call that used
/// the CPU is a long one (see [`look_at_long_call`]): its thread hands its
/// place among the async workers to another thread (see
/// [`hand_off_worker`]) and runs at idle CPU priority while it keeps
/// running (see [`super::priority`]).
///
/// Telling them apart takes the thread's CPU time at two moments, and
/// reading it costs about 0.3 µs, as much as a short call: so a plugin's
/// calls are only timed from their start once one of them was found long
/// (a hostile plugin's next spin is then handed off at its first tick, as
/// before). Until then the first look only notes the CPU time and the next
/// one, a tick later, decides: a spinning call of a plugin that never
/// spun before holds its worker for one to two ticks (0.5 to 1 ms).
///
/// Handing off at the first look, by wall-clock time alone, took every
/// preempted short call for a long one: 441 hand-offs and demotions in 6 s
/// of the rpc benchmark (50 sockets pinging, on 2 cores shared with the
/// load tool), each a 200 µs wait, a worker moved to another thread and a
/// call left at idle priority on a machine with no idle time. They set
/// plume's maximum latency (13 to 17 ms, against 9 to 11 ms for the same
/// logic compiled natively; BENCHMARKS.md).
const FIRST_SLICE_TICKS: u64 = 1;

/// Epoch ticks between the host's looks at a long call after the first.
const SLICE_TICKS: u64 = 1;

/// How long a call waiting for an instance waits between hand-off checks.
const BUSY_WAIT_STEP: Duration = Duration::from_millis(2);

/// How long a handing-off thread waits for the new thread to take over.
const HANDOFF_GRACE: Duration = Duration::from_micros(200);

/// Past its first slice, a call that ran through a slice pauses one epoch
/// tick after it: a plugin that runs to its deadline gets at most half a
/// core, and the sockets of every other tenant keep the rest. The pause
/// counts against the call's deadline.
const LONG_CALL_PAUSE_TICKS: u32 = 1;

/// Let the async runtime carry on without this thread, which is stuck in a
/// long plugin call (or waiting for an instance). Plugin calls run on the
/// socket task's worker thread, which is the right place for the
/// microsecond calls that are nearly all of them; but a call that runs to
/// a deadline of a second would hold one of few workers, and with it every
/// other tenant's sockets and the I/O driver. `block_in_place` moves this
/// worker's queue to a fresh thread; this thread finishes the call alone.
pub(crate) fn hand_off_worker() {
    use tokio::runtime::{Handle, RuntimeFlavor};
    if Handle::try_current().is_ok_and(|handle| handle.runtime_flavor() == RuntimeFlavor::MultiThread) {
        tokio::task::block_in_place(|| std::thread::sleep(HANDOFF_GRACE));
    }
}

/// CPU time a call must have used since the last look (or its start) to
/// be judged at all: a tenth of an epoch tick. Two looks can come
/// microseconds apart (a short call whose thread the kernel preempted is
/// first looked at when it runs again, which may be just before the next
/// tick), and over so short a span any running call used more than a
/// tenth of the time. Judged that way, a 2 µs call now and then counted as
/// long, and its plugin was marked for good (see [`Pool::spun`]), each of
/// its calls then paying a read of the thread's CPU clock: a system call,
/// 4.5% of the server's CPU in the rpc benchmark. A spinning call uses a
/// tick of CPU between two looks a tick apart, or a tenth of one when
/// the other threads leave it no more.
const LONG_RUN: Duration = Duration::from_micros(50);

/// What two samples of a call's thread tell of the call.
enum Judged {
    /// It used at least a tenth of the time, and [`LONG_RUN`]: a long call.
    /// Without a CPU clock, every call that crosses a tick is one, once
    /// [`LONG_RUN`] has passed since the last look.
    Long,
    /// It used under a tenth of the time: it waited for the CPU.
    Waited,
    /// It ran, but under [`LONG_RUN`]: too soon to tell, so the next look
    /// measures from the same sample.
    TooSoon,
}

fn judge(now: &super::priority::Sample, before: &super::priority::Sample) -> Judged {
    if !now.busy_since(before) {
        return Judged::Waited;
    }
    // Without a CPU clock, wall-clock time stands in for CPU time.
    if now.ran_since(before).unwrap_or_else(|| before.elapsed()) < LONG_RUN {
        Judged::TooSoon
    } else {
        Judged::Long
    }
}

/// One look at a call that has run past its first slice (see
/// [`FIRST_SLICE_TICKS`]), on the thread running it. `spun` is its pool's
/// mark of a plugin that has made long calls.
fn look_at_long_call(state: &mut HostState, clock: &Clock, spun: &AtomicBool) {
    use super::priority::{self, Sample};
    // A call is judged by the CPU it used since the last look; at the first
    // look, since its start if the thread's CPU time was read then (a
    // plugin that has spun before), else the first look only notes it. A
    // long call hands off its worker and is demoted, and at every later
    // look it pauses; one that waited for the CPU (a short call preempted
    // on a busy machine looks long too) keeps, or is given back, normal
    // priority.
    let now = Sample::now();
    let first = state.last_look.is_none();
    let Some(before) = state.last_look.or(state.started) else {
        state.last_look = Some(now);
        return;
    };
    match judge(&now, &before) {
        Judged::TooSoon => return,
        Judged::Waited => {
            if !first {
                priority::restore();
            }
            state.last_look = Some(now);
            return;
        }
        Judged::Long => {}
    }
    spun.store(true, Ordering::Relaxed);
    // At every long look, not only the first: a hand-off can lose its race
    // (the new worker thread not started when the grace ends, and this
    // thread takes its worker back), and once it has succeeded this thread
    // holds no worker and the call is free.
    hand_off_worker();
    priority::demote(clock);
    if first {
        state.last_look = Some(now);
        return;
    }
    std::thread::sleep(super::EPOCH_TICK * LONG_CALL_PAUSE_TICKS);
    // The next look measures from after the pause.
    state.last_look = Some(Sample::now());
}

struct Instance<W> {
    store: Store<HostState>,
    bindings: W,
}

/// Idle instances, and how many exist in all (idle and in calls).
struct Slots<W> {
    idle: Vec<Instance<W>>,
    live: usize,
}

pub(crate) struct Pool<W: World> {
    engine: Engine,
    clock: Arc<Clock>,
    pre: W::Pre,
    slots: Mutex<Slots<W>>,
    /// Signalled whenever an instance comes back or is dropped.
    returned: Condvar,
    settings: Settings,
    /// Set once a call of this plugin is found long: from then on each
    /// call reads its thread's CPU time at its start (about 0.3 µs), so
    /// that its next long call is told from a preempted short one at the
    /// first look (see [`FIRST_SLICE_TICKS`]).
    spun: Arc<AtomicBool>,
}

impl<W: World> Pool<W> {
    pub fn new(engine: Engine, clock: Arc<Clock>, pre: W::Pre, settings: Settings) -> Self {
        Pool {
            engine,
            clock,
            pre,
            slots: Mutex::new(Slots { idle: Vec::new(), live: 0 }),
            returned: Condvar::new(),
            settings,
            spun: Arc::new(AtomicBool::new(false)),
        }
    }

    fn fresh(&self) -> Result<Instance<W>, Fault> {
        let mut store = Store::new(&self.engine, HostState::new(self.settings.memory_limit));
        store.limiter(|state| &mut state.limiter);
        // The deadline is wall-clock time, checked at every epoch tick the
        // call's thread reaches: a call found long at a tick hands off its
        // worker, and at the first tick past its deadline it traps.
        // Ticks a starved thread missed count all the same.
        let (clock, spun) = (self.clock.clone(), self.spun.clone());
        store.epoch_deadline_callback(move |mut ctx| {
            let state = ctx.data_mut();
            if Instant::now() >= state.deadline {
                return Err(wasmtime::Error::new(Trap::Interrupt));
            }
            look_at_long_call(state, &clock, &spun);
            if Instant::now() >= state.deadline {
                return Err(wasmtime::Error::new(Trap::Interrupt));
            }
            Ok(wasmtime::UpdateDeadline::Continue(SLICE_TICKS))
        });
        self.start_clock(&mut store);
        let _restore = super::priority::RestoreOnDrop(&self.clock);
        let bindings = W::instantiate(&self.pre, &mut store)
            .map_err(|e| Fault::classify(e, self.settings.deadline))?;
        Ok(Instance { store, bindings })
    }

    /// Start a store's call: its deadline from now, first slice first.
    fn start_clock(&self, store: &mut Store<HostState>) {
        let state = store.data_mut();
        state.last_look = None;
        state.started = self.spun.load(Ordering::Relaxed).then(super::priority::Sample::now);
        state.deadline = Instant::now() + self.settings.deadline;
        store.set_epoch_deadline(FIRST_SLICE_TICKS);
    }

    /// Create one instance now, so that a broken component is reported at
    /// load time rather than at its first call.
    pub fn warm(&self) -> Result<(), Fault> {
        let _in_flight = self.clock.enter();
        let instance = self.fresh()?;
        let mut slots = self.slots.lock();
        slots.live += 1;
        slots.idle.push(instance);
        Ok(())
    }

    /// An idle instance, or a fresh one while under `max_instances`, or
    /// [`Fault::Busy`] after waiting [`INSTANCE_WAIT`] for one.
    fn take(&self) -> Result<Instance<W>, Fault> {
        let max = self.settings.max_instances.max(1);
        let mut slots = self.slots.lock();
        // Read the clock only when there is a wait to bound: nearly every
        // call finds an idle instance at once.
        let mut give_up = None;
        loop {
            if let Some(instance) = slots.idle.pop() {
                return Ok(instance);
            }
            if slots.live < max {
                slots.live += 1;
                drop(slots);
                return self.fresh().inspect_err(|_| self.dropped());
            }
            let give_up = *give_up.get_or_insert_with(|| Instant::now() + INSTANCE_WAIT);
            if Instant::now() >= give_up {
                return Err(Fault::Busy(max));
            }
            // Give up the async worker before waiting (again after each
            // short wait, in case a hand-off lost its race).
            drop(slots);
            hand_off_worker();
            slots = self.slots.lock();
            if slots.idle.is_empty() && slots.live >= max {
                let _ = self.returned.wait_until(&mut slots, (Instant::now() + BUSY_WAIT_STEP).min(give_up));
            }
        }
    }

    /// An instance was thrown away: its place is free.
    fn dropped(&self) {
        self.slots.lock().live -= 1;
        self.returned.notify_one();
    }

    /// A call finished cleanly: keep its instance for the next call, unless
    /// its memory grew near the limit (see [`MemoryLimiter`]): then a fresh
    /// instance serves the next call, instead of this one failing it.
    ///
    /// [`MemoryLimiter`]: super::limits::MemoryLimiter
    fn give_back(&self, instance: Instance<W>) {
        if instance.store.data().limiter.nearly_full() {
            tracing::debug!("retiring a plugin instance whose memory grew near its limit");
            drop(instance);
            self.dropped();
            return;
        }
        let mut slots = self.slots.lock();
        if slots.idle.len() < self.settings.max_idle_instances {
            slots.idle.push(instance);
        } else {
            slots.live -= 1;
        }
        drop(slots);
        self.returned.notify_one();
    }

    /// Run `f` on an idle instance (or a fresh one) with `ctx` as the call's
    /// context. The context comes back with the effects the call recorded,
    /// whether the call succeeded or not.
    pub fn call<R>(
        &self,
        ctx: CallContext,
        f: impl FnOnce(&W, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> (CallContext, Result<R, Fault>) {
        let _in_flight = self.clock.enter();
        let mut instance = match self.take() {
            Ok(instance) => instance,
            Err(fault) => return (ctx, Err(fault)),
        };
        instance.store.data_mut().call = Some(ctx);
        self.start_clock(&mut instance.store);
        // A host function that panics (wasmtime-wasi's blocking streams do
        // when called on an async worker) must fail this call, not the
        // socket task: the panic is caught here and the instance dropped.
        let restore = super::priority::RestoreOnDrop(&self.clock);
        let result = catch_plugin_panic(|| f(&instance.bindings, &mut instance.store));
        drop(restore);
        let result = match result {
            Ok(result) => result,
            Err(panic) => {
                let ctx = instance
                    .store
                    .data_mut()
                    .call
                    .take()
                    .expect("the context was set before the call");
                let fault = Fault::Trap(format!("a host call failed: {panic}"));
                drop(instance);
                self.dropped();
                return (ctx, Err(fault));
            }
        };
        let ctx = instance
            .store
            .data_mut()
            .call
            .take()
            .expect("the context was set before the call");
        match result {
            Ok(value) => {
                self.give_back(instance);
                (ctx, Ok(value))
            }
            Err(error) => {
                drop(instance);
                self.dropped();
                (ctx, Err(Fault::classify(error, self.settings.deadline)))
            }
        }
    }

    /// Instances currently idle in the pool.
    pub fn idle_count(&self) -> usize {
        self.slots.lock().idle.len()
    }
}

impl Fault {
    /// Turn a wasmtime error into the fault it stands for.
    pub(crate) fn classify(error: wasmtime::Error, deadline: Duration) -> Fault {
        if let Some(limit) = error.downcast_ref::<MemoryLimitExceeded>() {
            return Fault::Memory(limit.limit);
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => Fault::Deadline(deadline),
            Some(Trap::StackOverflow) => Fault::Trap("stack overflow".into()),
            Some(Trap::UnreachableCodeReached) => {
                Fault::Trap("the plugin panicked or aborted (unreachable executed)".into())
            }
            Some(trap) => Fault::Trap(trap.to_string()),
            None => Fault::Trap(format!("{error:#}")),
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod long_call_tests {
    use super::*;
    use crate::runtime::priority::tests::{clock, policy, priorities_or_skip, spin_for_cpu};
    use crate::runtime::priority::{RestoreOnDrop, Sample};

    /// Run `test` on a thread of its own (its priority is the test's to
    /// change) with a call's state, an epoch clock and its plugin's mark,
    /// set to `marked` at the start; skipped where priorities cannot change.
    fn on_a_call_thread(marked: bool, test: impl FnOnce(&mut HostState, &Clock, &AtomicBool) + Send + 'static) {
        std::thread::spawn(move || {
            if !priorities_or_skip() {
                return;
            }
            let (_engine, clock) = clock();
            let spun = AtomicBool::new(marked);
            let mut state = HostState::new(1 << 20);
            let _restore = RestoreOnDrop(&clock);
            test(&mut state, &clock, &spun);
        })
        .join()
        .unwrap();
    }

    /// A short call preempted across ticks (its thread waits) is never
    /// demoted; one that uses the CPU between two looks is, and its plugin
    /// is marked.
    #[test]
    fn only_a_call_that_used_the_cpu_between_two_looks_is_a_long_one() {
        on_a_call_thread(false, |state, clock, spun| {
            look_at_long_call(state, clock, spun);
            assert_eq!(policy(), libc::SCHED_OTHER, "the first look only notes the CPU time");
            std::thread::sleep(Duration::from_millis(3));
            look_at_long_call(state, clock, spun);
            assert_eq!(policy(), libc::SCHED_OTHER, "a call that waited for 3 ms is no long one");
            assert!(!spun.load(Ordering::Relaxed));
            spin_for_cpu(Duration::from_millis(1));
            look_at_long_call(state, clock, spun);
            assert_eq!(policy(), libc::SCHED_IDLE, "a call that spun since the last look is demoted");
            assert!(spun.load(Ordering::Relaxed), "and its plugin marked");
        });
    }

    /// Two looks close together (the first when a preempted short call ran
    /// again just before a tick, the next just after it) see a call that
    /// ran all the time between them, but only for microseconds: no long
    /// call yet, and its plugin stays unmarked; if it spins on, a later
    /// look finds it long.
    #[test]
    fn a_call_that_ran_microseconds_between_looks_is_no_long_one() {
        on_a_call_thread(false, |state, clock, spun| {
            look_at_long_call(state, clock, spun);
            spin_for_cpu(Duration::from_micros(5));
            look_at_long_call(state, clock, spun);
            assert_eq!(policy(), libc::SCHED_OTHER, "5 µs of CPU is a short call's");
            assert!(!spun.load(Ordering::Relaxed), "and its plugin is not marked");
            // A call that goes on spinning is judged at a later look.
            spin_for_cpu(Duration::from_millis(1));
            look_at_long_call(state, clock, spun);
            assert_eq!(policy(), libc::SCHED_IDLE, "a call that spun on is demoted");
            assert!(spun.load(Ordering::Relaxed));
        });
    }

    /// A plugin that has spun before has its calls timed from their start:
    /// a spinning call is demoted at the first look, a waiting one is not.
    #[test]
    fn a_marked_plugins_call_is_judged_at_the_first_look() {
        on_a_call_thread(true, |state, clock, spun| {
            state.started = Some(Sample::now());
            std::thread::sleep(Duration::from_millis(3));
            look_at_long_call(state, clock, spun);
            assert_eq!(policy(), libc::SCHED_OTHER, "it waited: no long call");
            // The next call.
            *state = HostState::new(1 << 20);
            state.started = Some(Sample::now());
            spin_for_cpu(Duration::from_micros(300));
            look_at_long_call(state, clock, spun);
            assert_eq!(policy(), libc::SCHED_IDLE, "it spun from its start: demoted at once");
        });
    }
}
