//! CPU priority of long plugin calls.
//!
//! Nearly every plugin call lasts microseconds and runs on its socket's
//! async worker at normal priority. A call that still runs, using the CPU,
//! a tick after its first slice is a long one (see `pool`): its thread has
//! handed its worker on, and the rest of the call runs under Linux's
//! `SCHED_IDLE` policy. The kernel then gives it only CPU time no normal
//! thread wants, and a waking normal thread (an async worker with a
//! message for another tenant's socket) preempts it at once, instead of
//! waiting for its turn beside the hostile call. The tenant that runs long
//! calls is the one that waits.
//!
//! On a machine whose cores are all busy with other work there is no CPU
//! time nobody wants, and a demoted call would not run at all: not to its
//! end if it is an honest call that crossed a tick, and not to the epoch
//! check that traps it at its deadline if it spins. So the epoch clock
//! watches every demoted call (see [`super::clock`]) and gives its thread
//! normal priority back whenever it got almost no CPU over a few ticks.
//! Demotion then costs a call at most those few ticks where there is no
//! idle time, and the deadline holds on a busy machine as on a quiet one.
//!
//! Epochs count wall-clock time, so a short call whose thread the kernel
//! preempted on a busy machine looks long too, and would then wait at idle
//! priority on a machine with no idle time. So a call is only taken for a
//! long one when it got at least a tenth of the CPU between two looks, and
//! at each later look a call that got less (it was waiting, not spinning)
//! is put back to normal priority until it spins again.
//!
//! Setting `SCHED_IDLE` is always allowed; setting the normal policy back
//! needs `CAP_SYS_NICE` or an `RLIMIT_NICE` of at least 20 - nice. Without
//! either, a demoted thread would stay demoted when it later becomes an
//! async worker again, so [`available`] probes both steps once on a scratch
//! thread, and long calls keep normal priority where they cannot be undone.
//! A thread inherits its creator's policy, and a demoted call may start an
//! async worker thread (its hand-off), so every thread the async runtime
//! starts sets its own priority to normal first ([`reset_new_thread`]).

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::clock::Clock;

thread_local! {
    /// Whether this thread is demoted for the rest of the current call.
    static DEMOTED: Cell<bool> = const { Cell::new(false) };
    /// The clock's watch on this thread's current call, once demoted.
    static WATCHED: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Give this thread the lowest normal CPU priority (nice 19) for good: a
/// thread that only does background work (compiling a swap's optimized
/// code) and ends with it. Unlike `SCHED_IDLE` it still progresses on a
/// machine with no idle time, slowly. Failing to lower it only costs the
/// clients some latency, so that is logged, not returned.
pub(crate) fn lower_this_thread() {
    if let Err(error) = sys::set_lowest_nice() {
        tracing::debug!(%error, "cannot lower the background compile's CPU priority");
    }
}

/// Whether long calls can be demoted here (and back), probed once.
pub(crate) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        let works = std::thread::spawn(|| sys::set_idle().is_ok() && sys::set_normal().is_ok())
            .join()
            .unwrap_or(false);
        if works {
            tracing::debug!("long plugin calls run at idle CPU priority after their first slice");
        } else {
            tracing::info!(
                "long plugin calls keep normal CPU priority: this process may not restore a thread's \
                 priority (it needs CAP_SYS_NICE or RLIMIT_NICE of 20 or more)"
            );
        }
        works
    })
}

/// A moment of a plugin call: wall-clock time and this thread's CPU time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sample {
    wall: Instant,
    cpu: Option<Duration>,
}

impl Sample {
    pub fn now() -> Sample {
        Sample {
            wall: Instant::now(),
            cpu: sys::thread_cpu_time(),
        }
    }

    /// Wall-clock time since this sample.
    pub fn elapsed(&self) -> Duration {
        self.wall.elapsed()
    }

    /// CPU time this thread used since `before` (a sample of the same
    /// thread); `None` without a CPU clock.
    pub fn ran_since(&self, before: &Sample) -> Option<Duration> {
        Some(self.cpu?.saturating_sub(before.cpu?))
    }

    /// Whether this thread ran for at least a tenth of the wall-clock time
    /// since `before` (a sample of the same thread): a call that uses the CPU,
    /// if only the idle time it is left, not one that waits for a CPU.
    /// Without a CPU clock, every call counts as busy.
    pub fn busy_since(&self, before: &Sample) -> bool {
        self.ran_since(before)
            .is_none_or(|ran| ran * 10 >= self.wall.saturating_duration_since(before.wall))
    }
}

/// Run the rest of this thread's current plugin call at idle priority,
/// watched by `clock` until the call ends (see [`Clock::watch`]).
pub(crate) fn demote(clock: &Clock) {
    if !available() {
        return;
    }
    match WATCHED.get() {
        // Watched before demoted: the clock must know of every thread it
        // may have to wake.
        None => WATCHED.set(Some(clock.watch(CallThread::current()))),
        // Still demoted, unless the clock has woken the thread since.
        Some(watch) if DEMOTED.get() && !clock.take_woken(watch) => return,
        Some(_) => {}
    }
    if sys::set_idle().is_ok() {
        DEMOTED.set(true);
    }
}

/// Undo [`demote`] now, if this thread is demoted; the clock keeps
/// watching the call until it ends.
pub(crate) fn restore() {
    if DEMOTED.replace(false)
        && let Err(error) = sys::set_normal()
    {
        tracing::warn!("could not restore a thread's CPU priority after a long plugin call: {error}");
    }
}

/// Held for the length of a plugin call: when dropped, the clock stops
/// watching the call and its thread is back at normal priority.
pub(crate) struct RestoreOnDrop<'a>(pub &'a Clock);

impl Drop for RestoreOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(watch) = WATCHED.take() {
            self.0.unwatch(watch);
        }
        restore();
    }
}

/// A thread running a plugin call, as another thread (the epoch clock)
/// sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CallThread {
    id: sys::Tid,
    cpu_clock: Option<sys::CpuClock>,
}

impl CallThread {
    /// The calling thread.
    fn current() -> CallThread {
        CallThread {
            id: sys::this_thread(),
            cpu_clock: sys::this_thread_cpu_clock(),
        }
    }

    /// A sample of this thread's CPU time, taken from any thread.
    pub fn sample(&self) -> Sample {
        Sample {
            wall: Instant::now(),
            cpu: self.cpu_clock.and_then(sys::cpu_time),
        }
    }

    /// Give this thread normal priority back.
    pub fn wake(&self) {
        if let Err(error) = sys::set_normal_of(self.id) {
            tracing::warn!("could not give a starved plugin call its CPU priority back: {error}");
        }
    }
}

/// Set the calling thread, just started by the async runtime, to normal
/// priority: it inherited its creator's, and the creator may be a demoted
/// call handing off its async worker. Pass it to tokio's
/// `Builder::on_thread_start`.
pub fn reset_new_thread() {
    if available() {
        let _ = sys::set_normal();
    }
}

#[cfg(target_os = "linux")]
mod sys {
    use std::io;
    use std::time::Duration;

    /// A thread's id (Linux schedules threads, not processes).
    pub type Tid = libc::pid_t;

    fn set(thread: Tid, policy: libc::c_int) -> io::Result<()> {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: sched_setscheduler reads `param` and changes no memory of
        // this process.
        match unsafe { libc::sched_setscheduler(thread, policy, &param) } {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        }
    }

    /// Thread 0 is the calling thread.
    pub fn set_idle() -> io::Result<()> {
        set(0, libc::SCHED_IDLE)
    }

    pub fn set_normal() -> io::Result<()> {
        set(0, libc::SCHED_OTHER)
    }

    /// Nice 19 for the calling thread (Linux's niceness is per thread).
    pub fn set_lowest_nice() -> io::Result<()> {
        // SAFETY: setpriority changes a scheduling attribute of this
        // thread only; no memory is touched.
        match unsafe { libc::setpriority(libc::PRIO_PROCESS, this_thread() as libc::id_t, 19) } {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        }
    }

    pub fn set_normal_of(thread: Tid) -> io::Result<()> {
        set(thread, libc::SCHED_OTHER)
    }

    pub fn this_thread() -> Tid {
        // SAFETY: gettid has no preconditions.
        unsafe { libc::gettid() }
    }

    /// A clock of one thread's CPU time.
    pub type CpuClock = libc::clockid_t;

    /// The CPU time on `clock` (a system call, not a vDSO read: taken only
    /// when a call has run a whole epoch tick).
    pub fn cpu_time(clock: CpuClock) -> Option<Duration> {
        let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime writes the timespec it is given.
        match unsafe { libc::clock_gettime(clock, &mut now) } {
            0 => Some(Duration::new(now.tv_sec as u64, now.tv_nsec as u32)),
            _ => None,
        }
    }

    /// The CPU time this thread has used.
    pub fn thread_cpu_time() -> Option<Duration> {
        cpu_time(libc::CLOCK_THREAD_CPUTIME_ID)
    }

    /// The clock of this thread's CPU time, readable from other threads.
    pub fn this_thread_cpu_clock() -> Option<CpuClock> {
        let mut clock: libc::clockid_t = 0;
        // SAFETY: pthread_getcpuclockid writes the clock id it is given.
        match unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) } {
            0 => Some(clock),
            _ => None,
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    use std::io;

    pub fn set_idle() -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "SCHED_IDLE is Linux's"))
    }

    pub fn set_normal() -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "SCHED_IDLE is Linux's"))
    }

    pub fn set_lowest_nice() -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "per-thread niceness is Linux's"))
    }

    pub type Tid = i32;

    pub fn set_normal_of(_thread: Tid) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "SCHED_IDLE is Linux's"))
    }

    pub fn this_thread() -> Tid {
        0
    }

    pub type CpuClock = i32;

    pub fn cpu_time(_clock: CpuClock) -> Option<std::time::Duration> {
        None
    }

    pub fn thread_cpu_time() -> Option<std::time::Duration> {
        None
    }

    pub fn this_thread_cpu_clock() -> Option<CpuClock> {
        None
    }
}

#[cfg(all(test, target_os = "linux"))]
pub(crate) mod tests {
    use super::*;

    /// This thread's scheduling policy.
    pub(crate) fn policy() -> libc::c_int {
        unsafe { libc::sched_getscheduler(0) }
    }

    /// Spin until this thread has used `time` of CPU, however long the
    /// kernel preempts it meanwhile.
    pub(crate) fn spin_for_cpu(time: Duration) {
        let cpu = || sys::thread_cpu_time().expect("a thread CPU clock");
        let start = cpu();
        while cpu() - start < time {
            std::hint::spin_loop();
        }
    }

    #[test]
    fn a_call_is_busy_when_its_thread_ran_a_tenth_of_the_time_or_more() {
        let then = Instant::now();
        let at = |wall_us, cpu_us| Sample {
            wall: then + Duration::from_micros(wall_us),
            cpu: Some(Duration::from_micros(cpu_us)),
        };
        assert!(at(2000, 11_000).busy_since(&at(1000, 10_000)));
        assert!(at(2000, 10_100).busy_since(&at(1000, 10_000)));
        assert!(!at(2000, 10_099).busy_since(&at(1000, 10_000)));
        assert!(!at(2000, 10_000).busy_since(&at(1000, 10_000)));
        let no_clock = Sample { wall: then, cpu: None };
        assert!(no_clock.busy_since(&at(0, 0)), "without a CPU clock every call counts as busy");
        assert_eq!(at(2000, 10_150).ran_since(&at(1000, 10_000)), Some(Duration::from_micros(150)));
        assert_eq!(no_clock.ran_since(&at(0, 0)), None);
    }

    #[test]
    fn a_thread_that_sleeps_is_not_busy() {
        let before = Sample::now();
        std::thread::sleep(Duration::from_millis(5));
        assert!(!Sample::now().busy_since(&before));
    }

    /// Whether this process may change thread priorities. A test of
    /// priorities fails where it may not, unless `PLUME_TEST_SKIP_PRIORITY=1`
    /// says to skip it (a machine without `CAP_SYS_NICE` or an
    /// `RLIMIT_NICE` of 20).
    pub(crate) fn priorities_or_skip() -> bool {
        if available() {
            return true;
        }
        assert!(
            std::env::var("PLUME_TEST_SKIP_PRIORITY").is_ok_and(|v| v == "1"),
            "this process may not restore a thread's priority (it needs CAP_SYS_NICE or RLIMIT_NICE of 20); \
             set PLUME_TEST_SKIP_PRIORITY=1 to skip the tests that need it"
        );
        eprintln!("skipped (PLUME_TEST_SKIP_PRIORITY=1): this process may not restore priorities");
        false
    }

    /// A clock, and the engine it ticks (it stops when the engine goes).
    pub(crate) fn clock() -> (wasmtime::Engine, std::sync::Arc<Clock>) {
        let engine = wasmtime::Engine::default();
        let clock = Clock::start(&engine, Duration::from_micros(500)).unwrap();
        (engine, clock)
    }

    #[test]
    fn a_demoted_call_gets_its_priority_back_when_it_ends() {
        let (_engine, clock) = clock();
        std::thread::spawn(move || {
            if !priorities_or_skip() {
                return;
            }
            assert_eq!(policy(), libc::SCHED_OTHER);
            {
                let _restore = RestoreOnDrop(&clock);
                demote(&clock);
                assert_eq!(policy(), libc::SCHED_IDLE);
                demote(&clock);
                assert_eq!(policy(), libc::SCHED_IDLE);
                assert_eq!(clock.watched(), 1);
            }
            assert_eq!(policy(), libc::SCHED_OTHER);
            assert!(!DEMOTED.get());
            assert_eq!(clock.watched(), 0, "the call's end ends the watch");
        })
        .join()
        .unwrap();
    }

    /// A thread that only sleeps gets no CPU, as a demoted one on a busy
    /// machine: the clock gives it normal priority back.
    #[test]
    fn the_clock_gives_a_demoted_call_that_gets_no_cpu_normal_priority() {
        let (_engine, clock) = clock();
        std::thread::spawn(move || {
            if !priorities_or_skip() {
                return;
            }
            let _running = clock.enter();
            let _restore = RestoreOnDrop(&clock);
            demote(&clock);
            assert_eq!(policy(), libc::SCHED_IDLE);
            let until = Instant::now() + Duration::from_secs(10);
            while policy() == libc::SCHED_IDLE {
                assert!(Instant::now() < until, "the clock never restored the starved call's priority");
                std::thread::sleep(Duration::from_millis(1));
            }
            assert_eq!(policy(), libc::SCHED_OTHER);
            // A call that spins on demotes itself again.
            demote(&clock);
            assert_eq!(policy(), libc::SCHED_IDLE);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_thread_the_runtime_starts_runs_at_normal_priority_whoever_started_it() {
        std::thread::spawn(|| {
            if !priorities_or_skip() {
                return;
            }
            sys::set_idle().unwrap();
            let started = std::thread::spawn(|| {
                let inherited = policy();
                reset_new_thread();
                (inherited, policy())
            })
            .join()
            .unwrap();
            sys::set_normal().unwrap();
            assert_eq!(started, (libc::SCHED_IDLE, libc::SCHED_OTHER));
        })
        .join()
        .unwrap();
    }
}
