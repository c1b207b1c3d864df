//! CPU priority of long plugin calls.
//!
//! Nearly every plugin call lasts microseconds and runs on its socket's
//! async worker at normal priority. A call still running at the end of its
//! first slice is a long one (see `pool`): its thread has handed its worker
//! on, and for the rest of the call it runs under Linux's `SCHED_IDLE`
//! policy. The kernel then gives it only CPU time no normal thread wants, and
//! a waking normal thread (an async worker with a message for another
//! tenant's socket) preempts it at once, instead of waiting for its turn
//! beside the hostile call. The call keeps its wall-clock deadline, so a
//! plugin that loops on a busy server reaches it sooner: the tenant that
//! runs long calls is the one that waits.
//!
//! Setting `SCHED_IDLE` is always allowed; setting the normal policy back
//! needs `CAP_SYS_NICE` or an `RLIMIT_NICE` of at least 20 - nice. Without
//! either, a demoted thread would stay demoted when it later becomes an
//! async worker again, so [`available`] probes both steps once on a scratch
//! thread, and long calls keep normal priority where they cannot be undone.

use std::cell::Cell;
use std::sync::OnceLock;

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
        if DEMOTED.replace(false)
            && let Err(error) = sys::set_normal()
        {
            tracing::warn!("could not restore a thread's CPU priority after a long plugin call: {error}");
        }
    }
}

#[cfg(target_os = "linux")]
mod sys {
    use std::io;

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
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn policy() -> libc::c_int {
        unsafe { libc::sched_getscheduler(0) }
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
