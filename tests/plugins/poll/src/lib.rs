//! A poll, as the guide teaches writing one: the test fixture of the
//! key-value store's versioned updates, its per-plugin scope, plume-test's
//! races, and deadlines that outlive every channel.
//!
//! Topic `poll:<id>`; the user is the socket's `user` assign
//! (`{"id", "name", "role"}`, from the demo's socket plugin). The poll is
//! one JSON value under `<id>` in this plugin's key scope (`poll/<id>`).
//!
//! - join: ok `{"poll": P}` where P is `{"options", "tally", "closed",
//!   "closes_at"}`, or `{"poll": null}` before it is created. A member of
//!   an open poll with a deadline gets a timer for it.
//! - `create` `{"options": [..], "duration_ms": N}`: the joiner becomes its
//!   creator; it closes N ms from now. Reply ok P, or error
//!   `{"reason": "exists"}`.
//! - `vote` `{"option": O}`: one vote per user, counted by compare-and-swap.
//!   Reply ok `{"tally", "retries"}` (how many times another vote landed
//!   first), or error `{"reason": R}`, R one of `no_such_poll`, `closed`,
//!   `already_voted`, `no_such_option`.
//! - `vote_unchecked` `{"option": O}`: the same vote by read-then-write,
//!   without compare-and-swap: deliberately wrong (a racing vote is lost),
//!   so the tests can show that a race catches it.
//! - `close`: only the creator; broadcasts `closed` `{"tally"}` and replies
//!   ok, or error `{"reason": "not_creator" | "closed" | "no_such_poll"}`.
//! - The deadline: the poll is closed from `closes_at` on, whether or not a
//!   timer fired: every call reads it from the stored poll. Each member's
//!   timer tries to close it at that instant; the one whose write wins
//!   broadcasts `closed` once. When every member has left, no code runs at
//!   the deadline, and none needs to: the next join or vote sees it closed.

use std::collections::BTreeMap;
use std::time::Duration;

use plume_sdk::kv::{self, Scope, UpdateError};
use plume_sdk::{Channel, HandleIn, HandleInfo, Join, Payload, Reply, Socket, Value, channel, clock, json, log, timers};
use serde::{Deserialize, Serialize};

/// The channel handler.
pub struct Poll;

/// The stored poll.
#[derive(Serialize, Deserialize)]
struct State {
    creator: i64,
    options: Vec<String>,
    /// Each voter's choice, by user id.
    votes: BTreeMap<String, String>,
    closes_at: u64,
    closed: bool,
}

impl State {
    fn is_closed(&self, now: u64) -> bool {
        self.closed || now >= self.closes_at
    }

    fn tally(&self) -> BTreeMap<&str, u64> {
        let mut tally: BTreeMap<&str, u64> = self.options.iter().map(|o| (o.as_str(), 0)).collect();
        for choice in self.votes.values() {
            *tally.entry(choice).or_default() += 1;
        }
        tally
    }

    fn view(&self) -> Value {
        json!({
            "options": self.options,
            "tally": self.tally(),
            "closed": self.is_closed(clock::now_ms()),
            "closes_at": self.closes_at,
        })
    }
}

/// The user of the socket, as the socket plugin assigned it.
#[derive(Deserialize)]
struct User {
    id: i64,
}

/// Why a vote or a close wrote nothing.
enum Refused {
    NoSuchPoll,
    Closed,
    AlreadyVoted,
    NoSuchOption,
    NotCreator,
}

impl Refused {
    fn reason(&self) -> &'static str {
        match self {
            Refused::NoSuchPoll => "no_such_poll",
            Refused::Closed => "closed",
            Refused::AlreadyVoted => "already_voted",
            Refused::NoSuchOption => "no_such_option",
            Refused::NotCreator => "not_creator",
        }
    }
}

/// The message of the deadline timer.
const DEADLINE: &str = "deadline";

fn store() -> Scope {
    kv::plugin_scope!()
}

fn poll_id(topic: &str) -> &str {
    topic.strip_prefix("poll:").unwrap_or(topic)
}

fn user(socket: &Socket) -> Option<i64> {
    socket.get::<User>("user").map(|user| user.id)
}

fn error(reason: &str) -> HandleIn {
    Reply::error(json!({ "reason": reason })).into()
}

fn failed(update: UpdateError<Refused>) -> HandleIn {
    match update {
        UpdateError::Declined(refused) => error(refused.reason()),
        other => error(&other.to_string()),
    }
}

/// Set a timer for the poll's deadline, if it is still ahead.
fn arm_deadline(state: &State) {
    let now = clock::now_ms();
    if !state.is_closed(now) {
        let _ = timers::send_after(Duration::from_millis(state.closes_at - now), DEADLINE);
    }
}

impl Channel for Poll {
    fn join(topic: &str, _payload: Payload, _socket: &mut Socket) -> Join {
        match store().get_json::<State>(poll_id(topic)) {
            Ok(Some(state)) => {
                arm_deadline(&state);
                Join::ok(json!({ "poll": state.view() }))
            }
            Ok(None) => Join::ok(json!({ "poll": null })),
            Err(err) => Join::error(json!({ "reason": err.to_string() })),
        }
    }

    fn handle_in(event: &str, payload: Payload, socket: &mut Socket) -> HandleIn {
        let Some(user) = user(socket) else {
            return error("no user: connect with a user token");
        };
        let id = poll_id(socket.topic()).to_owned();
        let body: Value = payload.parse().unwrap_or(Value::Null);
        match event {
            "create" => create(&id, user, &body),
            "vote" => vote(&id, user, &body),
            "vote_unchecked" => vote_unchecked(&id, user, &body),
            "close" => close(&id, Some(user)),
            _ => error("unknown event"),
        }
    }

    fn handle_info(message: Payload, socket: &mut Socket) -> HandleInfo {
        if message.parse::<String>().is_ok_and(|m| m == DEADLINE) {
            let _ = close(poll_id(socket.topic()), None);
        }
        HandleInfo::NoReply
    }
}

fn create(id: &str, user: i64, body: &Value) -> HandleIn {
    let options: Vec<String> = body["options"]
        .as_array()
        .map(|list| list.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    let duration = body["duration_ms"].as_u64().unwrap_or(60_000);
    let state = State {
        creator: user,
        options,
        votes: BTreeMap::new(),
        closes_at: clock::now_ms() + duration,
        closed: false,
    };
    let text = match serde_json::to_string(&state) {
        Ok(text) => text,
        Err(err) => return error(&err.to_string()),
    };
    match store().compare_and_swap(id, None, &text, None) {
        Ok(Some(_)) => {
            arm_deadline(&state);
            Reply::ok(state.view()).into()
        }
        Ok(None) => error("exists"),
        Err(err) => error(&err.to_string()),
    }
}

fn vote(id: &str, user: i64, body: &Value) -> HandleIn {
    let option = body["option"].as_str().unwrap_or_default().to_owned();
    let voted = store().try_update_json(id, None, |state: Option<State>| {
        let mut state = state.ok_or(Refused::NoSuchPoll)?;
        check_vote(&state, user, &option)?;
        state.votes.insert(user.to_string(), option.clone());
        Ok(state)
    });
    match voted {
        Ok(updated) => {
            log::info(&format!("user {user} voted {option:?} after {} retries", updated.retries));
            Reply::ok(json!({ "tally": updated.value.tally(), "retries": updated.retries })).into()
        }
        Err(err) => failed(err),
    }
}

fn check_vote(state: &State, user: i64, option: &str) -> Result<(), Refused> {
    if state.is_closed(clock::now_ms()) {
        return Err(Refused::Closed);
    }
    if state.votes.contains_key(&user.to_string()) {
        return Err(Refused::AlreadyVoted);
    }
    if !state.options.iter().any(|o| o == option) {
        return Err(Refused::NoSuchOption);
    }
    Ok(())
}

/// Read, change, write: the lost-update bug compare-and-swap prevents.
fn vote_unchecked(id: &str, user: i64, body: &Value) -> HandleIn {
    let option = body["option"].as_str().unwrap_or_default();
    let mut state = match store().get_json::<State>(id) {
        Ok(Some(state)) => state,
        Ok(None) => return error(Refused::NoSuchPoll.reason()),
        Err(err) => return error(&err.to_string()),
    };
    if let Err(refused) = check_vote(&state, user, option) {
        return error(refused.reason());
    }
    state.votes.insert(user.to_string(), option.to_owned());
    match store().set_json(id, &state, None) {
        Ok(_) => Reply::ok(json!({ "tally": state.tally() })).into(),
        Err(err) => error(&err.to_string()),
    }
}

/// Close the poll: by its creator (`by`), or by the deadline (`None`,
/// allowed once the deadline passed). The caller whose write wins
/// broadcasts `closed`.
fn close(id: &str, by: Option<i64>) -> HandleIn {
    let closed = store().try_update_json(id, None, |state: Option<State>| {
        let mut state = state.ok_or(Refused::NoSuchPoll)?;
        if state.closed {
            return Err(Refused::Closed);
        }
        match by {
            Some(user) if user != state.creator => return Err(Refused::NotCreator),
            None if clock::now_ms() < state.closes_at => return Err(Refused::NotCreator),
            _ => {}
        }
        state.closed = true;
        Ok(state)
    });
    match closed {
        Ok(updated) => {
            let tally = json!({ "tally": updated.value.tally() });
            match channel::broadcast("closed", &tally) {
                Ok(()) => Reply::ok(tally).into(),
                Err(err) => error(&err.to_string()),
            }
        }
        Err(err) => failed(err),
    }
}

plume_sdk::export_channel!(Poll);
