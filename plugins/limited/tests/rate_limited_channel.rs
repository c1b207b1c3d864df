//! RateLimitedChannel (`limited:*`) through the plume-test harness, on its
//! virtual clock: the sliding window is tested without sleeping.

use std::time::Duration;

use plume_test::{Channel, Harness, Ref, json};

fn join(harness: &Harness) -> Channel {
    let socket = harness.connect(json!({})).expect("no socket plugin: everyone connects");
    socket.subscribe_and_join("limited:echo", json!({})).expect("joined").1
}

fn echo(channel: &Channel, n: u32) -> Ref {
    channel.push("echo", json!({"n": n}))
}

#[test]
fn ten_messages_a_second_pass_and_the_eleventh_is_refused() {
    let harness = Harness::new("limited");
    let channel = join(&harness);
    for n in 1..=10 {
        let sent = echo(&channel, n);
        channel.assert_reply(sent, "ok", json!({"n": n}));
    }
    let eleventh = echo(&channel, 11);
    channel.assert_reply(eleventh, "error", json!({"reason": "rate limit exceeded"}));
}

#[test]
fn the_window_slides_with_the_clock() {
    let harness = Harness::new("limited");
    let channel = join(&harness);
    let mut sent: Vec<Ref> = (1..=5).map(|n| echo(&channel, n)).collect();
    harness.advance(Duration::from_millis(500));
    sent.extend((6..=10).map(|n| echo(&channel, n)));
    for (n, reference) in (1..=10).zip(sent) {
        channel.assert_reply(reference, "ok", json!({"n": n}));
    }

    harness.advance(Duration::from_millis(499));
    let still_full = echo(&channel, 11);
    channel.assert_reply(still_full, "error", json!({"reason": "rate limit exceeded"}));

    harness.advance(Duration::from_millis(1));
    let first_five_left = echo(&channel, 12);
    channel.assert_reply(first_five_left, "ok", json!({"n": 12}));
}

#[test]
fn a_quiet_channel_starts_afresh() {
    let harness = Harness::new("limited");
    let channel = join(&harness);
    for n in 1..=11 {
        echo(&channel, n);
    }
    let refused = echo(&channel, 12);
    channel.assert_reply(refused, "error", json!({}));
    harness.advance(Duration::from_secs(60));
    for n in 13..=22 {
        let sent = echo(&channel, n);
        channel.assert_reply(sent, "ok", json!({"n": n}));
    }
}
