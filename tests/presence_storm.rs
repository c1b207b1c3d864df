//! Presence in a crowded room, over real sockets: a join storm on one chat
//! topic goes out as few merged `presence_diff`s, every member's list
//! (its shared `presence_state` plus the diffs, applied as phoenix.js
//! applies them) agrees exactly, and the host's presence-driven
//! `user_joined` / `user_left` (no `handle_out` per member) reach the
//! members the chat spec says, after the diff that shows the join.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use futures_util::future::join_all;
use serde_json::{Value, json};
use support::{Client, Server};

/// The members that join at once.
const STORM: i64 = 40;
/// The observer's user; a second tab of it joins during the storm.
const OBSERVER: i64 = 1;

/// A presence list as phoenix.js keeps it: key → phx_ref → meta.
#[derive(Debug, Default, Clone, PartialEq)]
struct List(BTreeMap<String, BTreeMap<String, Value>>);

impl List {
    fn metas(payload: &Value) -> impl Iterator<Item = (String, String, Value)> + '_ {
        payload.as_object().into_iter().flatten().flat_map(|(key, presence)| {
            presence["metas"].as_array().into_iter().flatten().map(move |meta| {
                let phx_ref = meta["phx_ref"].as_str().expect("a phx_ref").to_owned();
                (key.clone(), phx_ref, meta.clone())
            })
        })
    }

    /// `Presence.syncState`: the state replaces the list; diffs that came
    /// before it are applied after it (phoenix.js buffers them).
    fn state(&mut self, payload: &Value, pending: &mut Vec<Value>) {
        self.0.clear();
        for (key, phx_ref, meta) in Self::metas(payload) {
            self.0.entry(key).or_default().insert(phx_ref, meta);
        }
        for diff in pending.drain(..) {
            self.diff(&diff);
        }
    }

    /// `Presence.syncDiff`: joins first, then leaves.
    fn diff(&mut self, payload: &Value) {
        for (key, phx_ref, meta) in Self::metas(&payload["joins"]) {
            self.0.entry(key).or_default().insert(phx_ref, meta);
        }
        for (key, phx_ref, _) in Self::metas(&payload["leaves"]) {
            if let Some(metas) = self.0.get_mut(&key) {
                metas.remove(&phx_ref);
                if metas.is_empty() {
                    self.0.remove(&key);
                }
            }
        }
    }
}

/// What one member saw.
#[derive(Default)]
struct Seen {
    list: List,
    got_state: bool,
    pending: Vec<Value>,
    diffs: usize,
    /// Keys in the order their joins first showed up in a diff or state.
    shown: BTreeSet<String>,
    /// `user_joined` user ids, each checked to come after a list showing it.
    joined: Vec<i64>,
    left: Vec<Value>,
}

impl Seen {
    fn take(&mut self, frame: &Value) {
        match frame[3].as_str() {
            Some("presence_state") => {
                assert_eq!(frame[1], Value::Null, "{frame}");
                self.list.state(&frame[4], &mut self.pending);
                self.got_state = true;
                self.shown.extend(self.list.0.keys().cloned());
            }
            Some("presence_diff") => {
                assert_eq!(frame[0], Value::Null, "a broadcast: {frame}");
                self.diffs += 1;
                self.shown
                    .extend(frame[4]["joins"].as_object().into_iter().flatten().map(|(k, _)| k.clone()));
                if self.got_state {
                    self.list.diff(&frame[4]);
                } else {
                    self.pending.push(frame[4].clone());
                }
            }
            Some("user_joined") => {
                assert_ne!(frame[0], Value::Null, "pushed on the channel, with its join_ref: {frame}");
                let user = frame[4]["user_id"].as_i64().expect("a user id");
                assert_eq!(frame[4]["name"], format!("user-{user}"));
                assert!(
                    self.shown.contains(&user.to_string()),
                    "user_joined for {user} came before any diff or state showing it"
                );
                self.joined.push(user);
            }
            Some("user_left") => self.left.push(frame[4].clone()),
            _ => {}
        }
    }
}

/// Read frames until `done` holds of what `client` saw.
async fn read_until(client: &mut Client, seen: &mut Seen, done: impl Fn(&Seen) -> bool) {
    while !done(seen) {
        let frame = client.recv().await;
        seen.take(&frame);
    }
}

/// Futures of different types, awaited together.
fn boxed<'a>(future: impl std::future::Future<Output = ()> + 'a) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>> {
    Box::pin(future)
}

/// Join `topic` as `user`; returns the join reference.
async fn join_as(client: &mut Client, topic: &str, user: i64) -> String {
    let (join_ref, reply) = client.join(topic, json!({"token": support::user_token(user)})).await;
    assert_eq!(reply, json!([join_ref, join_ref, topic, "phx_reply", {"response": {}, "status": "ok"}]));
    join_ref
}

async fn join(client: &mut Client, topic: &str, user: i64) {
    join_as(client, topic, user).await;
}

#[tokio::test]
async fn a_join_storm_is_merged_into_few_diffs_and_every_list_agrees() {
    let config = support::demo_config_with("[limits]\npresence_coalesce_ms = 200");
    let server = Server::start_config(&config).expect("starts");
    let topic = "chat:storm";
    let mut observer = server.client(OBSERVER).await;
    join(&mut observer, topic, OBSERVER).await;
    let mut clients = Vec::new();
    for user in 2..=STORM + 1 {
        clients.push((user, server.client(user).await));
    }
    let mut second_tab = server.client(OBSERVER).await;
    // Every join at once, the observer's second tab among them.
    join_all(
        clients
            .iter_mut()
            .map(|(user, client)| boxed(join(client, topic, *user)))
            .chain([boxed(join(&mut second_tab, topic, OBSERVER))]),
    )
    .await;
    let everyone = STORM as usize + 1;
    let complete = |seen: &Seen| seen.got_state && seen.list.0.len() == everyone && seen.list.0[&OBSERVER.to_string()].len() == 2;
    let mut observed = Seen::default();
    let mut members: Vec<Seen> = (0..clients.len()).map(|_| Seen::default()).collect();
    let mut tab = Seen::default();
    let observer_done = |seen: &Seen| complete(seen) && seen.joined.len() == STORM as usize;
    join_all(
        clients
            .iter_mut()
            .zip(members.iter_mut())
            .map(|((_, client), seen)| boxed(read_until(client, seen, complete)))
            .chain([
                boxed(read_until(&mut observer, &mut observed, observer_done)),
                boxed(read_until(&mut second_tab, &mut tab, complete)),
            ]),
    )
    .await;

    // One list everywhere, metas and phx_refs included.
    for seen in members.iter().chain([&tab]) {
        assert_eq!(seen.list, observed.list);
    }
    assert!(
        observed.diffs < STORM as usize,
        "{} joins reached the observer in {} diffs: a busy topic's diffs are merged",
        STORM + 1,
        observed.diffs
    );
    // user_joined: every other user once, never the observer's own user
    // (its second tab joined), and never a member's own.
    let mut joined = observed.joined.clone();
    joined.sort_unstable();
    assert_eq!(joined, (2..=STORM + 1).collect::<Vec<_>>());
    for ((user, _), seen) in clients.iter().zip(&members) {
        assert!(!seen.joined.contains(user), "user {user} was told it joined");
    }

    // Half the members leave at once: each is announced once with
    // `left_at`, and every list loses it.
    let leaving: Vec<i64> = clients.iter().take(STORM as usize / 2).map(|(user, _)| *user).collect();
    let staying = clients.split_off(STORM as usize / 2);
    drop(clients);
    let remaining = everyone - leaving.len();
    let mut observed = Seen {
        got_state: true,
        ..observed
    };
    read_until(&mut observer, &mut observed, |seen| seen.list.0.len() == remaining && seen.left.len() == leaving.len()).await;
    let mut left: Vec<i64> = observed.left.iter().map(|p| p["user_id"].as_i64().expect("a user id")).collect();
    left.sort_unstable();
    assert_eq!(left, leaving);
    for payload in &observed.left {
        assert!(payload["left_at"].as_u64().is_some_and(|at| at > 1_700_000_000), "{payload}");
    }
    assert!(leaving.iter().all(|user| !observed.list.0.contains_key(&user.to_string())));
    drop(staying);
}

#[tokio::test]
async fn a_quiet_room_sees_the_frames_phoenix_sends_in_order() {
    let server = Server::start();
    let topic = "chat:quiet";
    let mut a = server.client(42).await;
    let join_ref = join_as(&mut a, topic, 42).await;
    let own = a.recv().await;
    assert_eq!(own[3], "presence_diff", "the joiner's own diff first: {own}");
    let state = a.recv().await;
    assert_eq!(state[3], "presence_state", "{state}");
    let mut b = server.client(7).await;
    join(&mut b, topic, 7).await;
    let (diff, state) = (b.recv().await, b.recv().await);
    assert_eq!((diff[3].as_str(), state[3].as_str()), (Some("presence_diff"), Some("presence_state")));
    assert_eq!(state[4].as_object().map(|o| o.len()), Some(2));
    // The member already there: the diff, then user_joined on the channel.
    let diff = a.recv().await;
    assert_eq!(diff[3], "presence_diff");
    assert!(diff[4]["joins"].get("7").is_some(), "{diff}");
    let joined = a.recv().await;
    assert_eq!(joined, json!([join_ref, null, topic, "user_joined", {"name": "user-7", "user_id": 7}]));
    // b leaves: a hears user_left (stamped) before the leaves diff.
    drop(b);
    let left = a.recv().await;
    assert_eq!(left[3], "user_left", "{left}");
    assert_eq!(left[4]["user_id"], 7);
    assert!(left[4]["left_at"].as_u64().is_some());
    let diff = a.recv().await;
    assert!(diff[4]["leaves"].get("7").is_some(), "{diff}");
    // a is told nothing else (its heartbeat answer comes next).
    a.send_text(r#"[null,"hb","phoenix","heartbeat",{}]"#).await;
    assert_eq!(a.recv().await[1], "hb");
}
