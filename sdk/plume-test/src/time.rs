//! The harness's time: tokio's paused clock, the host's clocks following
//! it, and "settling" (running the app until it has nothing left to do at
//! the current instant).
//!
//! The app runs on a current-thread tokio runtime whose clock starts
//! paused, so virtual time moves only when the harness moves it
//! ([`Harness::advance`](crate::Harness::advance)). Timers (`send-after`,
//! presence windows) are tokio timers and fire as virtual time reaches them;
//! the host's wall and monotonic clocks ([`plume::clock`]) are replaced by a
//! [`VirtualClock`] on the harness's thread, so `clock::now-ms`, token ages
//! and key-value expiry move with it.
//!
//! Settling is exact rather than a timeout. The runtime calls a park hook
//! whenever it has no task to run; every socket task passes through its
//! transport at each turn of its loop, which the harness counts as
//! activity. The app is settled at the first park with no socket activity
//! since the previous one: everything already set in motion (replies,
//! broadcasts, their fan-out, timers due now) has been delivered, and time
//! has not moved. Waking the waiting future from the hook keeps tokio from
//! auto-advancing the paused clock.

use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use tokio::runtime::Handle;
use tokio::time::Instant;

/// Counts the runtime's parks and socket activity, and wakes a settling
/// harness at each park.
#[derive(Default)]
pub(crate) struct Quiet {
    parks: AtomicU64,
    activity: AtomicU64,
    waiting: Mutex<Option<Waker>>,
}

impl Quiet {
    /// The runtime is about to park: it has no task to run.
    pub fn parked(&self) {
        self.parks.fetch_add(1, Ordering::SeqCst);
        let waiting = self.waiting.lock().map(|mut w| w.take()).unwrap_or_default();
        if let Some(waker) = waiting {
            waker.wake();
        }
    }

    /// A socket task went round its loop.
    pub fn active(&self) {
        self.activity.fetch_add(1, Ordering::SeqCst);
    }

    /// Resolve at the runtime's next park.
    async fn next_park(&self) {
        let seen = self.parks.load(Ordering::SeqCst);
        poll_fn(|cx| {
            if self.parks.load(Ordering::SeqCst) > seen {
                return Poll::Ready(());
            }
            if let Ok(mut waiting) = self.waiting.lock() {
                *waiting = Some(cx.waker().clone());
            }
            Poll::Pending
        })
        .await;
    }

    /// Run until a park finds no socket activity since the one before.
    pub async fn settled(&self) {
        loop {
            let before = self.activity.load(Ordering::SeqCst);
            self.next_park().await;
            if self.activity.load(Ordering::SeqCst) == before {
                return;
            }
        }
    }
}

/// The host's clocks, following the runtime's paused tokio clock from the
/// moment the harness started (which reads as the real time it started at).
pub(crate) struct VirtualClock {
    handle: Handle,
    started: Instant,
    started_unix_ms: u64,
}

impl VirtualClock {
    pub fn new(handle: Handle) -> VirtualClock {
        let started = {
            let _context = handle.enter();
            Instant::now()
        };
        VirtualClock {
            handle,
            started,
            started_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        }
    }

    /// Virtual time since the harness started.
    pub fn elapsed(&self) -> std::time::Duration {
        let _context = self.handle.enter();
        Instant::now().duration_since(self.started)
    }
}

impl plume::clock::TimeSource for VirtualClock {
    fn unix_ms(&self) -> u64 {
        self.started_unix_ms + self.elapsed().as_millis() as u64
    }

    fn monotonic_ns(&self) -> u64 {
        self.elapsed().as_nanos() as u64
    }
}

/// The park hook for a runtime driven by `quiet`.
pub(crate) fn park_hook(quiet: &Arc<Quiet>) -> impl Fn() + Send + Sync + 'static {
    let quiet = quiet.clone();
    move || quiet.parked()
}
