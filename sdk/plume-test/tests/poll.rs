//! What a new plugin author needs from plume-test and the key-value store,
//! shown on the poll they wrote (`tests/plugins/poll`): `expect_err` on
//! joins and connects, plugin log lines, racing votes, update outcomes, the
//! plugin's own key scope, and a deadline that outlives every channel.

use std::time::Duration;

use plume_test::{Channel, Harness, Socket, json};

fn harness() -> Harness {
    Harness::builder().channel("poll").channel("room").socket("user_socket").build()
}

/// A socket of user `id` (the demo's socket plugin: `{"user": {"id", ...}}`).
fn user(harness: &Harness, id: i64) -> Socket {
    let token = harness.sign_token("user socket", json!(id));
    harness.connect(json!({"token": token})).expect("a user token connects")
}

fn join(socket: &Socket, topic: &str) -> Channel {
    socket.subscribe_and_join(topic, json!({})).expect("joins").1
}

/// A poll `poll:1` created by user 1, open for `duration_ms`.
fn created(harness: &Harness, duration_ms: u64) -> (Socket, Channel) {
    let creator = user(harness, 1);
    let poll = join(&creator, "poll:1");
    let create = poll.push("create", json!({"options": ["tea", "coffee"], "duration_ms": duration_ms}));
    poll.assert_reply(create, "ok", json!({"tally": {"tea": 0, "coffee": 0}, "closed": false}));
    (creator, poll)
}

#[test]
fn expect_err_works_on_refused_joins_and_connects() {
    let harness = harness();
    let refused = harness.connect(json!({"token": "forged"})).expect_err("a forged token is refused");
    assert!(refused.contains("token"), "{refused}");
    let socket = user(&harness, 1);
    let reason = socket.subscribe_and_join("room:private", json!({})).expect_err("room:private is refused");
    assert_eq!(reason, json!({"reason": "unauthorized"}));
    let debug = format!("{socket:?} {:?}", join(&socket, "room:lobby"));
    assert!(debug.contains("user_socket:1") && debug.contains("room:lobby"), "{debug}");
}

#[test]
fn plugin_log_lines_are_kept_and_printed() {
    let harness = harness();
    let (_creator, poll) = created(&harness, 60_000);
    let vote = poll.push("vote", json!({"option": "tea"}));
    poll.assert_reply(vote, "ok", json!({"retries": 0}));
    let logs = harness.logs();
    let line = logs
        .iter()
        .find(|line| line.message == "user 1 voted \"tea\" after 0 retries")
        .unwrap_or_else(|| panic!("the vote's log line is kept: {logs:?}"));
    assert_eq!(line.plugin, "poll");
    assert_eq!(line.level, tracing::Level::INFO);
    assert_eq!(line.to_string(), "[plugin poll] INFO user 1 voted \"tea\" after 0 retries");
}

#[test]
fn a_race_catches_the_lost_update_of_a_read_then_write() {
    let harness = harness();
    let (_creator, _) = created(&harness, 60_000);
    let (ann, bob) = (user(&harness, 2), user(&harness, 3));
    let (ann_poll, bob_poll) = (join(&ann, "poll:1"), join(&bob, "poll:1"));

    let race = harness.race(&[
        (&ann_poll, "vote_unchecked", json!({"option": "tea"})),
        (&bob_poll, "vote_unchecked", json!({"option": "coffee"})),
    ]);
    assert_eq!(race.conflicts, 0, "no compare-and-swap, so no conflict is even noticed");
    ann_poll.assert_reply(race.refs[0], "ok", json!({"tally": {"tea": 1, "coffee": 0}}));
    // Bob read the poll before Ann's vote landed, and wrote over it.
    bob_poll.assert_reply(race.refs[1], "ok", json!({"tally": {"tea": 0, "coffee": 1}}));
    let (reply, _) = ann.subscribe_and_join("poll:1", json!({})).expect("joins again");
    assert_eq!(reply["poll"]["tally"], json!({"tea": 0, "coffee": 1}), "Ann's vote is lost: the bug is caught");
}

#[test]
fn without_a_race_the_same_bug_passes() {
    let harness = harness();
    let (_creator, _) = created(&harness, 60_000);
    let (ann, bob) = (user(&harness, 2), user(&harness, 3));
    let (ann_poll, bob_poll) = (join(&ann, "poll:1"), join(&bob, "poll:1"));
    let first = ann_poll.push("vote_unchecked", json!({"option": "tea"}));
    let second = bob_poll.push("vote_unchecked", json!({"option": "coffee"}));
    ann_poll.assert_reply(first, "ok", json!({}));
    bob_poll.assert_reply(second, "ok", json!({"tally": {"tea": 1, "coffee": 1}}));
}

#[test]
fn a_race_makes_compare_and_swap_retry_and_no_vote_is_lost() {
    let harness = harness();
    let (_creator, _) = created(&harness, 60_000);
    let voters: Vec<Socket> = (2..=5).map(|id| user(&harness, id)).collect();
    let polls: Vec<Channel> = voters.iter().map(|socket| join(socket, "poll:1")).collect();

    let pushes: Vec<_> = polls.iter().map(|poll| (poll, "vote", json!({"option": "tea"}))).collect();
    let race = harness.race(&pushes);
    assert_eq!(race.conflicts, 3, "every vote after the first found the poll changed once");
    polls[0].assert_reply(race.refs[0], "ok", json!({"tally": {"tea": 1}, "retries": 0}));
    for (n, (poll, sent)) in polls.iter().zip(&race.refs).enumerate().skip(1) {
        poll.assert_reply(*sent, "ok", json!({"tally": {"tea": n + 1}, "retries": 1}));
    }
    let retried = harness.logs().iter().filter(|line| line.message.ends_with("after 1 retries")).count();
    assert_eq!(retried, 3);
}

#[test]
fn an_update_that_writes_nothing_says_why() {
    let harness = harness();
    let stranger = user(&harness, 9);
    let nothing = join(&stranger, "poll:2");
    let vote = nothing.push("vote", json!({"option": "tea"}));
    nothing.assert_reply(vote, "error", json!({"reason": "no_such_poll"}));

    let (_creator, poll) = created(&harness, 60_000);
    let voter = join(&stranger, "poll:1");
    let first = voter.push("vote", json!({"option": "tea"}));
    let again = voter.push("vote", json!({"option": "coffee"}));
    let unknown = poll.push("vote", json!({"option": "milk"}));
    let close = voter.push("close", json!({}));
    voter.assert_reply(first, "ok", json!({}));
    voter.assert_reply(again, "error", json!({"reason": "already_voted"}));
    poll.assert_reply(unknown, "error", json!({"reason": "no_such_option"}));
    voter.assert_reply(close, "error", json!({"reason": "not_creator"}));

    let close = poll.push("close", json!({}));
    poll.assert_reply(close, "ok", json!({"tally": {"tea": 1, "coffee": 0}}));
    voter.assert_push("closed", json!({"tally": {"tea": 1}}));
    let late = poll.push("vote", json!({"option": "coffee"}));
    poll.assert_reply(late, "error", json!({"reason": "closed"}));
}

#[test]
fn the_plugins_keys_live_in_its_own_scope() {
    let harness = harness();
    let (_creator, _) = created(&harness, 60_000);
    let kv = &harness.app().kv;
    let stored = kv.get("poll/1").expect("kv").expect("the poll is stored under poll/1");
    assert!(stored.value.contains("\"tea\""), "{}", stored.value);
    assert_eq!(kv.get("1").expect("kv"), None, "nothing under the bare key");
}

#[test]
fn a_poll_closes_at_its_deadline_after_every_member_left() {
    let harness = harness();
    let (creator, poll) = created(&harness, 1_000);
    let vote = poll.push("vote", json!({"option": "coffee"}));
    poll.assert_reply(vote, "ok", json!({}));
    creator.close();

    harness.advance(Duration::from_millis(1_500));
    let latecomer = user(&harness, 7);
    let (reply, late) = latecomer.subscribe_and_join("poll:1", json!({})).expect("joins");
    assert_eq!(reply["poll"]["closed"], json!(true), "{reply}");
    assert_eq!(reply["poll"]["tally"], json!({"tea": 0, "coffee": 1}));
    let vote = late.push("vote", json!({"option": "tea"}));
    late.assert_reply(vote, "error", json!({"reason": "closed"}));
}

#[test]
fn members_are_told_once_when_the_deadline_passes() {
    let harness = harness();
    let (_creator, poll) = created(&harness, 1_000);
    let member = user(&harness, 2);
    let other = join(&member, "poll:1");

    harness.advance(Duration::from_millis(999));
    other.refute_push("closed", json!({}));
    harness.advance(Duration::from_millis(1));
    for channel in [&poll, &other] {
        channel.assert_push("closed", json!({"tally": {"tea": 0, "coffee": 0}}));
        channel.refute_push("closed", json!({}));
    }
}
