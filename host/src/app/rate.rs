//! Rate limits: a token bucket per limit, refilled continuously.
//!
//! A bucket holds at most one second's worth of tokens, so a quiet client
//! may burst up to the rate and no further. Taking a token is a few
//! arithmetic operations under an uncontended lock (one bucket per socket)
//! or a briefly contended one (one per tenant).

use std::time::Instant;

use parking_lot::Mutex;

/// Events allowed per second, with a burst of one second's worth.
pub struct Rate {
    per_second: f64,
    state: Mutex<Bucket>,
}

/// A bucket owned by one task, without a lock.
pub struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl Bucket {
    pub fn full(per_second: u32) -> Bucket {
        Bucket {
            tokens: f64::from(per_second),
            refilled: Instant::now(),
        }
    }

    /// Take one token if there is one.
    pub fn take(&mut self, per_second: u32) -> bool {
        let rate = f64::from(per_second);
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Rate {
    pub fn per_second(per_second: u32) -> Rate {
        Rate {
            per_second: f64::from(per_second),
            state: Mutex::new(Bucket::full(per_second)),
        }
    }

    /// The configured rate.
    pub fn limit(&self) -> u32 {
        self.per_second as u32
    }

    /// Take one token if there is one.
    pub fn take(&self) -> bool {
        self.state.lock().take(self.per_second as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_a_burst_of_one_second_then_refuses() {
        let rate = Rate::per_second(5);
        assert!((0..5).all(|_| rate.take()));
        assert!(!rate.take());
    }

    #[test]
    fn a_bucket_refills_with_time() {
        let mut bucket = Bucket::full(1000);
        while bucket.take(1000) {}
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(bucket.take(1000));
    }
}
