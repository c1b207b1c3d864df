//! RateLimitedChannel, for topics `limited:*`: at most ten messages a
//! second per channel.
//!
//! `echo` P replies ok P while the channel has answered fewer than
//! [`LIMIT`] messages in the last [`WINDOW_MS`] milliseconds (a sliding
//! window), and error `{"reason": "rate limit exceeded"}` otherwise. A
//! refused message does not count, so a client that keeps pushing gets
//! through again as soon as the window slides.
//!
//! The limit is per channel, so its window lives in the channel's assigns:
//! the times of the messages let through, on the host's monotonic clock.

use plume_sdk::{Channel, HandleIn, Join, Payload, Reply, Socket, clock, json};

/// Messages a channel may send per window.
pub const LIMIT: usize = 10;

/// The window's length.
pub const WINDOW_MS: u64 = 1000;

/// The rate-limited channel.
pub struct Limited;

/// Lets a message through at `now_ms` if fewer than [`LIMIT`] went through
/// in the [`WINDOW_MS`] before it, and records it; forgets what fell out of
/// the window either way.
pub fn admit(window: &mut Vec<u64>, now_ms: u64) -> bool {
    window.retain(|&at| at + WINDOW_MS > now_ms);
    if window.len() >= LIMIT {
        return false;
    }
    window.push(now_ms);
    true
}

impl Channel for Limited {
    fn join(_topic: &str, _payload: Payload, _socket: &mut Socket) -> Join {
        Join::ok(json!({}))
    }

    fn handle_in(event: &str, payload: Payload, socket: &mut Socket) -> HandleIn {
        if event != "echo" {
            return HandleIn::stop(format!("unknown event: {event}"));
        }
        let mut window = socket.get::<Vec<u64>>("window").unwrap_or_default();
        let admitted = admit(&mut window, clock::monotonic_ns() / 1_000_000);
        socket.assign("window", window);
        if admitted {
            Reply::ok_raw(payload).into()
        } else {
            Reply::error(json!({"reason": "rate limit exceeded"})).into()
        }
    }
}

plume_sdk::export_channel!(Limited);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_messages_pass_and_the_eleventh_in_the_window_does_not() {
        let mut window = Vec::new();
        for i in 0..10 {
            assert!(admit(&mut window, 5_000 + i), "message {}", i + 1);
        }
        assert!(!admit(&mut window, 5_010));
        assert!(!admit(&mut window, 5_999));
        assert_eq!(window.len(), 10, "refused messages do not count");
    }

    #[test]
    fn the_window_slides() {
        let mut window = Vec::new();
        for at in [0, 100, 200, 300, 400, 500, 600, 700, 800, 900] {
            assert!(admit(&mut window, at));
        }
        assert!(!admit(&mut window, 999));
        assert!(admit(&mut window, 1_000), "the message at 0 left the window");
        assert!(!admit(&mut window, 1_050));
        assert!(admit(&mut window, 1_100));
    }

    #[test]
    fn a_quiet_channel_starts_afresh() {
        let mut window: Vec<u64> = (0..10).collect();
        assert!(admit(&mut window, 60_000));
        assert_eq!(window, [60_000]);
    }
}
