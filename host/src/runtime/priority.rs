//! CPU priority of long plugin calls.
//!
//! Nearly every plugin call lasts microseconds and runs on its socket's
//! async worker at normal priority. A call still running at the end of its
//! first slice is a long one (see `pool`): its thread has handed its worker
//! on, and the rest of the call runs under Linux's `SCHED_IDLE` policy. The
//! kernel then gives it only CPU time no normal thread wants, and a waking
//! normal thread (an async worker with a message for another tenant's
//! socket) preempts it at once, instead of waiting for its turn beside the
//! hostile call. The call keeps its wall-clock deadline, so a plugin that
//! loops on a busy server reaches it sooner: the tenant that runs long
//! calls is the one that waits.
//!
//! Epochs count wall-clock time, so a short call whose thread the kernel
//! preempted on a busy machine looks long too, and would then wait at idle
//! priority on a machine with no idle time. So at each later look a call
//! that got under a tenth of the CPU since the one before (it was waiting,
//! not spinning) is put back to normal priority until it spins again.
//!
//! Setting `SCHED_IDLE` is always allowed; setting the normal policy back
//! needs `CAP_SYS_NICE` or an `RLIMIT_NICE` of at least 20 - nice. Without
//! either, a demoted thread would stay demoted when it later becomes an
//! async worker again, so [`available`] probes both steps once on a scratch
//! thread, and long calls keep normal priority where they cannot be undone.

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

thread_local! {
    /// Whether this thread is demoted for the rest of the current call.
    static DEMOTED: Cell<bool> = const { Cell::new(false) };
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

    /// Whether this thread ran for at least a tenth of the wall-clock time
    /// since `before` (taken on the same thread): a call that uses the CPU,
    /// if only the idle time it is left, not one that waits for a CPU.
    /// Without a CPU clock, every call counts as busy.
    pub fn busy_since(&self, before: &Sample) -> bool {
        match (self.cpu, before.cpu) {
            (Some(now), Some(then)) => {
                let ran = now.saturating_sub(then);
                ran * 10 >= self.wall.saturating_duration_since(before.wall)
            }
            _ => true,
        }
    }
}

/// Run the rest of this thread's current plugin call at idle priority.
pub(crate) fn demote() {
    if DEMOTED.get() || !available() {
        return;
    }
    if sys::set_idle().is_ok() {
        DEMOTED.set(true);
    }
}

/// Undoes [`demote`] when dropped: held for the length of a plugin call.
pub(crate) struct RestoreOnDrop;

impl Drop for RestoreOnDrop {
    fn drop(&mut self) {
        restore();
    }
}

/// Undo [`demote`] now, if this thread is demoted.
pub(crate) fn restore() {
    if DEMOTED.replace(false)
        && let Err(error) = sys::set_normal()
    {
        tracing::warn!("could not restore a thread's CPU priority after a long plugin call: {error}");
    }
}

#[cfg(target_os = "linux")]
mod sys {
    use std::io;
    use std::time::Duration;

    fn set(policy: libc::c_int) -> io::Result<()> {
        let param = libc::sched_param { sched_priority: 0 };
        // Pid 0 is the calling thread: Linux schedules threads, not processes.
        match unsafe { libc::sched_setscheduler(0, policy, &param) } {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        }
    }

    pub fn set_idle() -> io::Result<()> {
        set(libc::SCHED_IDLE)
    }

    pub fn set_normal() -> io::Result<()> {
        set(libc::SCHED_OTHER)
    }

    /// The CPU time this thread has used (a system call, not a vDSO read:
    /// taken only when a call has run a whole epoch tick).
    pub fn thread_cpu_time() -> Option<Duration> {
        let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        match unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } {
            0 => Some(Duration::new(now.tv_sec as u64, now.tv_nsec as u32)),
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

    pub fn thread_cpu_time() -> Option<std::time::Duration> {
        None
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn policy() -> libc::c_int {
        unsafe { libc::sched_getscheduler(0) }
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
    }

    #[test]
    fn a_thread_that_sleeps_is_not_busy() {
        let before = Sample::now();
        std::thread::sleep(Duration::from_millis(5));
        assert!(!Sample::now().busy_since(&before));
    }

    #[test]
    fn a_demoted_call_gets_its_priority_back_when_it_ends() {
        std::thread::spawn(|| {
            if !available() {
                eprintln!("skipped: this process may not restore priorities");
                return;
            }
            assert_eq!(policy(), libc::SCHED_OTHER);
            {
                let _restore = RestoreOnDrop;
                demote();
                assert_eq!(policy(), libc::SCHED_IDLE);
                demote();
                assert_eq!(policy(), libc::SCHED_IDLE);
            }
            assert_eq!(policy(), libc::SCHED_OTHER);
            assert!(!DEMOTED.get());
        })
        .join()
        .unwrap();
    }
}
