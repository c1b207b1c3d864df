//! Phoenix.Presence: who is on a topic, as phoenix.js's `Presence` expects.
//!
//! A topic holds keys (a user id, say); a key holds one meta per tracking
//! channel (two tabs, two metas), each with a unique `phx_ref`. Every change
//! produces one `presence_diff` payload (`{"joins": ..., "leaves": ...}`)
//! that the caller broadcasts on the topic, encoded once for all members.
//!
//! Cost: tracking, updating or untracking one meta is a map insert or
//! removal plus one diff of that meta, whatever the topic's size; only
//! `list` (the `presence_state` a joiner receives) is proportional to it.
//! Metas are kept as their final JSON text (with `phx_ref`, and
//! `phx_ref_prev` after an update), so diffs and lists are concatenations.
//! Everything stored is plain data, ready to cross nodes.
//!
//! Scale (a join storm on one topic): a topic's `presence_state` is encoded
//! once and its frame shared by every joiner until the topic's next
//! published diff (see [`Presence::state_frame`]), and changes that follow
//! a published diff within the coalescing window wait and go out as one
//! merged diff when it ends; a change on a quiet topic goes out at once, so
//! small rooms see exactly Phoenix's frames.
//!
//! In a cluster ([`cluster`]), each node keeps the presences of every node
//! for the topics its sockets joined: its own, which it also writes to
//! Redis, and the others', copied from Redis when it starts listening to a
//! topic and kept current by the diffs the other nodes publish.

mod announce;
mod cluster;

pub use announce::{Announcement, AnnouncementError};

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use parking_lot::Mutex;
use rand::RngCore;
use serde_json::{Map, Value};

use tokio_tungstenite::tungstenite::Message;

use crate::protocol::{self, Outbound, Payload, Serializer, json_string};
use crate::pubsub::{Broadcast, ChannelKey, SocketKey};

/// The channel a meta belongs to: it goes when that channel goes.
pub type Owner = (SocketKey, ChannelKey);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresenceError {
    #[error("a presence meta must be a JSON object: {0}")]
    InvalidMeta(String),
    #[error("this channel already tracks `{0}` on this topic; use update")]
    AlreadyTracked(String),
    #[error("this channel does not track `{0}` on this topic")]
    NotTracked(String),
}

/// One tracked meta.
#[derive(Debug, Clone)]
struct Meta {
    /// The channel that tracks it; `None` for a meta another node tracks.
    owner: Option<Owner>,
    phx_ref: String,
    /// The meta as sent to clients: the plugin's object plus `phx_ref`.
    json: String,
}

/// A change to publish: `presence_diff` on `topic`, as (key, meta JSON)
/// pairs. Diffs of one topic merge by concatenation: phoenix.js applies
/// joins before leaves, so a meta that joined and left within one merged
/// diff nets out, and an update (leave old ref, join new ref) stays one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    pub topic: String,
    pub joins: Vec<(String, String)>,
    pub leaves: Vec<(String, String)>,
}

impl Diff {
    /// `{"joins": {...}, "leaves": {...}}`, keys sorted as Phoenix sends them.
    pub fn payload(&self) -> String {
        let mut payload = String::from("{\"joins\":");
        entries(&mut payload, group(&pairs(&self.joins)).into_iter());
        payload.push_str(",\"leaves\":");
        entries(&mut payload, group(&pairs(&self.leaves)).into_iter());
        payload.push('}');
        payload
    }

    fn merge(&mut self, other: Diff) {
        self.joins.extend(other.joins);
        self.leaves.extend(other.leaves);
    }
}

/// Borrowed (key, meta) pairs.
fn pairs(items: &[(String, String)]) -> Vec<(&str, &str)> {
    items.iter().map(|(k, m)| (k.as_str(), m.as_str())).collect()
}

/// What to do with a diff: publish it now, or it waits in a window.
#[derive(Debug)]
pub enum Staged {
    Now(Diff),
    /// The first diff of a new window: publish the topic's merged diff
    /// (`take_pending`) when the window ends, after this long.
    OpenedWindow(String, Duration),
    /// Merged into a window already open.
    Merged,
}

/// What a window that ended publishes, in this order: the merged diff,
/// then the broadcasts that waited for it (a `user_joined` announced after
/// a track follows that track's diff, as it does in Phoenix).
#[derive(Debug, Default)]
pub struct Pending {
    pub diff: Option<Diff>,
    pub after: Vec<Arc<Broadcast>>,
}

/// Changes a topic publishes at once, one within a window of the last,
/// before it counts as busy and its changes wait for windows: a small room
/// (a few joins and leaves in quick succession) sees Phoenix's frames
/// exactly, a join storm is merged.
const BURST: u32 = 5;

/// The longest a busy topic's window grows to.
const LONGEST_WINDOW: Duration = Duration::from_secs(1);

/// A topic that published lately.
#[derive(Clone, Copy)]
struct Recent {
    /// Until when a change counts as part of the burst.
    until: Instant,
    /// Changes the burst published so far.
    count: u32,
    /// The topic's window now: it doubles with each window a busy topic
    /// fills, up to [`LONGEST_WINDOW`], so that a long join storm sends
    /// fewer, larger diffs and its joiners share fewer versions of the
    /// list; it is back to the configured window once the topic is quiet.
    window: Duration,
}

/// The coalescing state of an app's topics.
#[derive(Default)]
struct Windows {
    /// Topics whose window is open: what it will publish.
    open: HashMap<String, Pending>,
    /// Topics that published lately.
    recent: HashMap<String, Recent>,
    /// `recent` is swept of past entries when it grows beyond this.
    sweep_at: usize,
}

impl Windows {
    /// `topic` published now; `filled`: a window's merged diff.
    fn published(&mut self, topic: &str, base: Duration, filled: bool) {
        let now = Instant::now();
        if self.recent.len() >= self.sweep_at {
            self.recent.retain(|_, recent| recent.until > now);
            self.sweep_at = (self.recent.len() * 2).max(1024);
        }
        let recent = self.recent.entry(topic.to_owned()).or_insert(Recent {
            until: now,
            count: 0,
            window: base,
        });
        if recent.until > now {
            recent.count = recent.count.saturating_add(1);
            if filled {
                recent.window = (recent.window * 2).min(LONGEST_WINDOW.max(base));
            }
        } else {
            recent.count = 1;
            recent.window = base;
        }
        recent.until = now + recent.window;
    }
}

/// How many encodings of one `presence_state` (per join reference, topic
/// spelling and serializer) are kept for sharing.
const SHARED_FRAMES: usize = 8;

/// A topic's `presence_state` as last listed, and the frames made of it,
/// shared until the topic publishes its next diff.
struct Listed {
    json: Arc<str>,
    /// (join reference, topic as JSON, serializer) → the encoded push.
    frames: Vec<(String, String, Serializer, Message)>,
}

#[derive(Default)]
struct State {
    /// topic → key → metas, oldest first. Sorted maps give the key order
    /// Phoenix sends.
    topics: HashMap<String, BTreeMap<String, Vec<Meta>>>,
    /// What each channel tracks, to untrack it in one go.
    owners: HashMap<Owner, Vec<(String, String)>>,
    /// In a cluster: the topics whose other nodes' presences are copied here.
    replicas: HashMap<String, cluster::Copy>,
    /// Each topic's `presence_state`, encoded once (see [`Presence::state_frame`]).
    listed: HashMap<String, Listed>,
}

/// The presences of one app.
#[derive(Default)]
pub struct Presence {
    state: Mutex<State>,
    /// Coalescing: diffs of one topic within this window go out as one.
    window: Option<Duration>,
    windows: Mutex<Windows>,
    /// Set in a cluster: where this node's presences are stored and how
    /// the other nodes' are copied.
    cluster: std::sync::OnceLock<cluster::Store>,
}

/// A fresh `phx_ref`: 12 random bytes, 16 base64url characters, like
/// Phoenix's.
fn new_ref() -> String {
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The plugin's meta with the reference fields added, as sorted JSON.
fn meta_json(meta: &str, phx_ref: &str, phx_ref_prev: Option<&str>) -> Result<String, PresenceError> {
    let mut map: Map<String, Value> = match serde_json::from_str(meta) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(PresenceError::InvalidMeta("got another JSON value".into())),
        Err(e) => return Err(PresenceError::InvalidMeta(e.to_string())),
    };
    map.insert("phx_ref".into(), Value::String(phx_ref.into()));
    match phx_ref_prev {
        Some(prev) => map.insert("phx_ref_prev".into(), Value::String(prev.into())),
        None => map.remove("phx_ref_prev"),
    };
    serde_json::to_string(&map).map_err(|e| PresenceError::InvalidMeta(e.to_string()))
}

/// `{"<key>":{"metas":[...]},...}` for `(key, metas)` pairs in key order.
fn entries<'a>(out: &mut String, pairs: impl Iterator<Item = (&'a str, Vec<&'a str>)>) {
    out.push('{');
    for (i, (key, metas)) in pairs.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&json_string(key));
        out.push_str(":{\"metas\":[");
        out.push_str(&metas.join(","));
        out.push_str("]}");
    }
    out.push('}');
}

/// Metas grouped by key, keys in order.
fn group<'a>(items: &[(&'a str, &'a str)]) -> BTreeMap<&'a str, Vec<&'a str>> {
    let mut grouped: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (key, meta) in items {
        grouped.entry(key).or_default().push(meta);
    }
    grouped
}

fn diff(topic: &str, joins: &[(&str, &str)], leaves: &[(&str, &str)]) -> Diff {
    let owned = |items: &[(&str, &str)]| items.iter().map(|(k, m)| ((*k).to_owned(), (*m).to_owned())).collect();
    Diff {
        topic: topic.to_owned(),
        joins: owned(joins),
        leaves: owned(leaves),
    }
}

impl Presence {
    /// Presences whose diffs are coalesced over `window` (`None`: every
    /// change is published at once).
    pub fn new(window: Option<Duration>) -> Self {
        Presence {
            window,
            ..Presence::default()
        }
    }

    /// Decide how `diff` goes out (see [`Staged`]): at once unless the
    /// topic is busy (it published [`BURST`] changes, each within a window
    /// of the one before); a busy topic's change waits in the topic's
    /// window, which ends a window after its last publish (the window
    /// grows while the topic stays busy: see [`Recent`]).
    pub fn stage(&self, diff: Diff) -> Staged {
        let Some(window) = self.window else {
            return Staged::Now(diff);
        };
        let mut windows = self.windows.lock();
        if let Some(open) = windows.open.get_mut(&diff.topic) {
            match &mut open.diff {
                Some(merged) => merged.merge(diff),
                None => open.diff = Some(diff),
            }
            return Staged::Merged;
        }
        let now = Instant::now();
        match windows.recent.get(&diff.topic).copied() {
            Some(Recent { until, count, .. }) if until > now && count >= BURST => {
                let topic = diff.topic.clone();
                windows.open.insert(
                    topic.clone(),
                    Pending {
                        diff: Some(diff),
                        after: Vec::new(),
                    },
                );
                Staged::OpenedWindow(topic, until - now)
            }
            _ => {
                windows.published(&diff.topic, window, false);
                Staged::Now(diff)
            }
        }
    }

    /// `message` goes out after the diffs staged so far on its topic: at
    /// once (returned) when no window is open there, else when it ends.
    pub fn after_pending(&self, message: Arc<Broadcast>) -> Option<Arc<Broadcast>> {
        let mut windows = self.windows.lock();
        match windows.open.get_mut(&message.topic) {
            Some(open) => {
                open.after.push(message);
                None
            }
            None => Some(message),
        }
    }

    /// What a window that ended publishes; changes within the next window
    /// wait for it in turn.
    pub fn take_pending(&self, topic: &str) -> Pending {
        let mut windows = self.windows.lock();
        let pending = windows.open.remove(topic).unwrap_or_default();
        if let Some(window) = self.window {
            windows.published(topic, window, pending.diff.is_some());
        }
        pending
    }

    /// A diff of `topic` is about to be published: joiners from now on are
    /// shown the list as it is now. (Until then they may be shown the list
    /// as it was at the topic's last publish: they are subscribed already,
    /// so the diffs published since reach them too, and phoenix.js applies
    /// those after the state, whichever comes first.)
    pub fn publishing(&self, topic: &str) {
        self.state.lock().listed.remove(topic);
    }

    /// Track `owner` under `key` on `topic` with `meta` (a JSON object).
    /// Returns the new `phx_ref` and the diff to broadcast.
    pub fn track(&self, topic: &str, key: &str, meta: &str, owner: Owner) -> Result<(String, Diff), PresenceError> {
        let phx_ref = new_ref();
        let json = meta_json(meta, &phx_ref, None)?;
        let mut state = self.state.lock();
        let metas = state
            .topics
            .entry(topic.to_owned())
            .or_default()
            .entry(key.to_owned())
            .or_default();
        if metas.iter().any(|m| m.owner == Some(owner)) {
            return Err(PresenceError::AlreadyTracked(key.to_owned()));
        }
        metas.push(Meta {
            owner: Some(owner),
            phx_ref: phx_ref.clone(),
            json: json.clone(),
        });
        state
            .owners
            .entry(owner)
            .or_default()
            .push((topic.to_owned(), key.to_owned()));
        drop(state);
        if let Some(store) = self.cluster.get() {
            store.joined(topic, &[(key, &phx_ref, &json)]);
        }
        Ok((phx_ref, diff(topic, &[(key, &json)], &[])))
    }

    /// Replace `owner`'s meta under `key`: the diff has the old meta under
    /// `leaves` and the new one, with `phx_ref_prev`, under `joins`.
    pub fn update(&self, topic: &str, key: &str, meta: &str, owner: Owner) -> Result<(String, Diff), PresenceError> {
        let mut state = self.state.lock();
        let slot = state
            .topics
            .get_mut(topic)
            .and_then(|keys| keys.get_mut(key))
            .and_then(|metas| metas.iter_mut().find(|m| m.owner == Some(owner)))
            .ok_or_else(|| PresenceError::NotTracked(key.to_owned()))?;
        let phx_ref = new_ref();
        let json = meta_json(meta, &phx_ref, Some(&slot.phx_ref))?;
        let old = std::mem::replace(
            slot,
            Meta {
                owner: Some(owner),
                phx_ref: phx_ref.clone(),
                json: json.clone(),
            },
        );
        drop(state);
        if let Some(store) = self.cluster.get() {
            store.left(topic, &[&old.phx_ref]);
            store.joined(topic, &[(key, &phx_ref, &json)]);
        }
        Ok((phx_ref, diff(topic, &[(key, &json)], &[(key, &old.json)])))
    }

    /// Stop tracking `owner` under `key` on `topic`.
    pub fn untrack(&self, topic: &str, key: &str, owner: Owner) -> Result<Diff, PresenceError> {
        let mut state = self.state.lock();
        let removed = Self::remove(&mut state, topic, key, owner).ok_or_else(|| PresenceError::NotTracked(key.to_owned()))?;
        if let Some(tracked) = state.owners.get_mut(&owner) {
            tracked.retain(|(t, k)| !(t == topic && k == key));
            if tracked.is_empty() {
                state.owners.remove(&owner);
            }
        }
        drop(state);
        if let Some(store) = self.cluster.get() {
            store.left(topic, &[&removed.phx_ref]);
        }
        Ok(diff(topic, &[], &[(key, &removed.json)]))
    }

    /// Everything `owner` tracks goes: its channel left, crashed or its
    /// socket closed. One diff per topic.
    pub fn untrack_owner(&self, owner: Owner) -> Vec<Diff> {
        let mut state = self.state.lock();
        let Some(tracked) = state.owners.remove(&owner) else {
            return Vec::new();
        };
        let mut by_topic: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        let mut refs: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (topic, key) in tracked {
            if let Some(meta) = Self::remove(&mut state, &topic, &key, owner) {
                refs.entry(topic.clone()).or_default().push(meta.phx_ref);
                by_topic.entry(topic).or_default().push((key, meta.json));
            }
        }
        drop(state);
        if let Some(store) = self.cluster.get() {
            for (topic, refs) in &refs {
                store.left(topic, &refs.iter().map(String::as_str).collect::<Vec<_>>());
            }
        }
        by_topic
            .into_iter()
            .map(|(topic, leaves)| {
                let leaves: Vec<(&str, &str)> = leaves.iter().map(|(k, m)| (k.as_str(), m.as_str())).collect();
                diff(&topic, &[], &leaves)
            })
            .collect()
    }

    fn remove(state: &mut State, topic: &str, key: &str, owner: Owner) -> Option<Meta> {
        let keys = state.topics.get_mut(topic)?;
        let metas = keys.get_mut(key)?;
        let at = metas.iter().position(|m| m.owner == Some(owner))?;
        let meta = metas.remove(at);
        if metas.is_empty() {
            keys.remove(key);
            if keys.is_empty() {
                state.topics.remove(topic);
            }
        }
        Some(meta)
    }

    /// The topic's presences in the phoenix.js format (`presence_state`).
    /// In a cluster, a topic no socket of this node joined is read from
    /// Redis (a round trip); the others are known here.
    pub fn list(&self, topic: &str) -> String {
        if let Some(listed) = self.cluster.get().and_then(|store| store.list_elsewhere(self, topic)) {
            return listed;
        }
        Self::encode_list(&self.state.lock(), topic)
    }

    fn encode_list(state: &State, topic: &str) -> String {
        Self::encode_list_of(&state.topics, topic)
    }

    fn encode_list_of(topics: &HashMap<String, BTreeMap<String, Vec<Meta>>>, topic: &str) -> String {
        let mut out = String::new();
        match topics.get(topic) {
            Some(keys) => entries(
                &mut out,
                keys.iter()
                    .map(|(key, metas)| (key.as_str(), metas.iter().map(|m| m.json.as_str()).collect())),
            ),
            None => out.push_str("{}"),
        }
        out
    }

    /// The `presence_state` push to a channel of `topic` joined with
    /// `join_ref` (raw JSON), encoded once and shared (a clone of the
    /// frame is a reference count) by every channel that joined with the
    /// same reference until the topic publishes its next diff: in a join
    /// storm, thousands of joiners get one frame of the whole list rather
    /// than a copy each. `None` if the serializer cannot carry it.
    pub fn state_frame(&self, topic: &str, join_ref: &str, topic_json: &str, serializer: Serializer) -> Option<Message> {
        let encode = |list: &str| {
            let message = Outbound {
                join_ref,
                reference: protocol::NULL,
                topic: topic_json,
                event: "presence_state",
                payload: Payload::Raw(list),
            };
            protocol::encode_frame(serializer, &message)
                .inspect_err(|error| tracing::warn!(topic, %error, "presence_state not sent"))
                .ok()
        };
        if let Some(listed) = self.cluster.get().and_then(|store| store.list_elsewhere(self, topic)) {
            return encode(&listed);
        }
        let mut state = self.state.lock();
        let state = &mut *state;
        let listed = match state.listed.entry(topic.to_owned()) {
            std::collections::hash_map::Entry::Occupied(listed) => listed.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => slot.insert(Listed {
                json: Self::encode_list_of(&state.topics, topic).into(),
                frames: Vec::new(),
            }),
        };
        if let Some((.., frame)) = listed
            .frames
            .iter()
            .find(|(r, t, s, _)| r == join_ref && t == topic_json && *s == serializer)
        {
            return Some(frame.clone());
        }
        let frame = encode(&listed.json)?;
        // Joiners normally share a reference ("1" from a fresh phoenix.js
        // socket); a few others are kept, the rest encoded each time.
        if listed.frames.len() < SHARED_FRAMES {
            listed
                .frames
                .push((join_ref.to_owned(), topic_json.to_owned(), serializer, frame.clone()));
        }
        Some(frame)
    }

    /// The number of keys present on `topic`.
    pub fn count(&self, topic: &str) -> u64 {
        if let Some(listed) = self.cluster.get().and_then(|store| store.list_elsewhere(self, topic)) {
            return serde_json::from_str::<Map<String, Value>>(&listed).map_or(0, |keys| keys.len() as u64);
        }
        self.state.lock().topics.get(topic).map_or(0, |keys| keys.len() as u64)
    }

    /// Keep this app's presences in a cluster: store this node's in Redis,
    /// and copy the other nodes' for the topics the broker listens to.
    pub fn cluster(self: &Arc<Self>, broker: &Arc<crate::pubsub::ClusterBroker>) {
        cluster::Store::attach(self, broker);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).expect("valid JSON")
    }

    #[test]
    fn track_diffs_one_join_and_lists_sorted_keys_with_metas_oldest_first() {
        let p = Presence::default();
        let (r42, d) = p.track("t", "42", r#"{"online_at":1,"name":"a"}"#, (1, 1)).unwrap();
        assert_eq!(
            d.payload(),
            format!(r#"{{"joins":{{"42":{{"metas":[{{"name":"a","online_at":1,"phx_ref":"{r42}"}}]}}}},"leaves":{{}}}}"#)
        );
        let (r7, _) = p.track("t", "7", r#"{"name":"b"}"#, (2, 2)).unwrap();
        let (r42b, _) = p.track("t", "42", r#"{"name":"a2"}"#, (3, 3)).unwrap();
        assert_eq!(
            parse(&p.list("t")),
            serde_json::json!({
                "42": {"metas": [{"name": "a", "online_at": 1, "phx_ref": r42}, {"name": "a2", "phx_ref": r42b}]},
                "7": {"metas": [{"name": "b", "phx_ref": r7}]},
            })
        );
        assert!(p.list("t").starts_with(r#"{"42":"#), "keys in Phoenix's order");
        assert_eq!(p.count("t"), 2);
        assert_eq!(r42.len(), 16);
        assert_ne!(r42, r42b);
    }

    #[test]
    fn update_leaves_the_old_meta_and_joins_the_new_with_phx_ref_prev() {
        let p = Presence::default();
        let (first, _) = p.track("t", "10", r#"{"typing":false}"#, (1, 1)).unwrap();
        let (second, d) = p.update("t", "10", r#"{"typing":true}"#, (1, 1)).unwrap();
        assert_eq!(
            parse(&d.payload()),
            serde_json::json!({
                "joins": {"10": {"metas": [{"typing": true, "phx_ref": second, "phx_ref_prev": first}]}},
                "leaves": {"10": {"metas": [{"typing": false, "phx_ref": first}]}},
            })
        );
        let (_, d) = p.update("t", "10", r#"{"typing":false}"#, (1, 1)).unwrap();
        assert_eq!(parse(&d.payload())["leaves"]["10"]["metas"][0]["phx_ref_prev"], first.as_str());
        assert_eq!(
            p.update("t", "10", "{}", (9, 9)),
            Err(PresenceError::NotTracked("10".into()))
        );
    }

    #[test]
    fn untrack_owner_removes_every_meta_of_a_channel_with_one_diff_per_topic() {
        let p = Presence::default();
        p.track("a", "1", "{}", (1, 1)).unwrap();
        p.track("b", "1", "{}", (1, 1)).unwrap();
        p.track("a", "1", "{}", (2, 2)).unwrap();
        let diffs = p.untrack_owner((1, 1));
        assert_eq!(diffs.len(), 2);
        assert_eq!(parse(&diffs[0].payload())["joins"], serde_json::json!({}));
        assert_eq!(p.count("a"), 1, "the other tab stays");
        assert_eq!(p.count("b"), 0);
        assert_eq!(p.list("b"), "{}");
        assert!(p.untrack_owner((1, 1)).is_empty());
    }

    #[test]
    fn a_quiet_topic_publishes_at_once_and_a_busy_one_merges_its_diffs_into_one() {
        let p = Presence::new(Some(Duration::from_secs(60)));
        for n in 0..BURST {
            let (_, first) = p.track("t", &format!("early{n}"), "{}", (10 + u64::from(n), 1)).unwrap();
            assert!(matches!(p.stage(first), Staged::Now(_)), "a quiet topic's first changes go out at once");
        }
        let (_, first) = p.track("t", "1", "{}", (1, 1)).unwrap();
        assert!(matches!(p.stage(first), Staged::OpenedWindow(..)), "a busy topic's wait");
        p.take_pending("t");
        let (_, other) = p.track("u", "1", "{}", (1, 1)).unwrap();
        assert!(matches!(p.stage(other), Staged::Now(_)), "windows are per topic");
        let (_, second) = p.track("t", "2", "{}", (2, 2)).unwrap();
        assert!(matches!(p.stage(second), Staged::OpenedWindow(ref t, wait) if t == "t" && wait <= Duration::from_secs(60)));
        let (_, third) = p.track("t", "3", "{}", (3, 3)).unwrap();
        assert!(matches!(p.stage(third), Staged::Merged));
        let left = p.untrack("t", "1", (1, 1)).unwrap();
        assert!(matches!(p.stage(left), Staged::Merged));
        let announced = Arc::new(Broadcast::new("t".into(), "user_joined".into(), protocol::Body::Json("{}".into()), None));
        assert!(p.after_pending(announced).is_none(), "waits for the window's diff");
        let quiet = Arc::new(Broadcast::new("v".into(), "user_joined".into(), protocol::Body::Json("{}".into()), None));
        assert!(p.after_pending(quiet).is_some(), "no window open on that topic");
        let pending = p.take_pending("t");
        let merged = parse(&pending.diff.expect("merged").payload());
        assert_eq!(merged["joins"].as_object().map(|o| o.len()), Some(2));
        assert_eq!(merged["leaves"].as_object().map(|o| o.len()), Some(1));
        assert_eq!(pending.after.len(), 1);
        assert!(p.take_pending("t").diff.is_none());
        let (_, fourth) = p.track("t", "4", "{}", (4, 4)).unwrap();
        assert!(matches!(p.stage(fourth), Staged::OpenedWindow(..)), "a window after the last publish");
        let short = Presence::new(Some(Duration::from_millis(100)));
        for n in 0..=BURST {
            let (_, d) = short.track("s", &n.to_string(), "{}", (u64::from(n), 9)).unwrap();
            short.stage(d);
        }
        short.take_pending("s");
        let (_, d) = short.track("s", "x", "{}", (99, 9)).unwrap();
        assert!(
            matches!(short.stage(d), Staged::OpenedWindow(_, wait) if wait > Duration::from_millis(100)),
            "a busy topic's window grows"
        );
        let unbatched = Presence::default();
        let (_, now) = unbatched.track("t", "1", "{}", (1, 1)).unwrap();
        assert!(matches!(unbatched.stage(now), Staged::Now(_)));
        assert!(matches!(unbatched.stage(diff("t", &[], &[])), Staged::Now(_)));
    }

    #[test]
    fn the_state_frame_is_shared_until_the_topic_publishes() {
        let p = Presence::default();
        p.track("t", "1", r#"{"n":1}"#, (1, 1)).unwrap();
        let first = p.state_frame("t", "\"1\"", "\"t\"", Serializer::V2).expect("frame");
        let Message::Text(text) = &first else { panic!("a text frame") };
        assert!(text.as_str().starts_with(r#"["1",null,"t","presence_state",{"1":{"metas":[{"n":1,"phx_ref":"#), "{text}");
        p.track("t", "2", "{}", (2, 2)).unwrap();
        let again = p.state_frame("t", "\"1\"", "\"t\"", Serializer::V2).expect("frame");
        let (Message::Text(a), Message::Text(b)) = (&first, &again) else { panic!("text frames") };
        assert_eq!(a.as_str().as_ptr(), b.as_str().as_ptr(), "the same bytes, not a copy");
        let other_ref = p.state_frame("t", "\"2\"", "\"t\"", Serializer::V2).expect("frame");
        let Message::Text(c) = &other_ref else { panic!("a text frame") };
        assert!(c.as_str().starts_with(r#"["2",null,"t","#));
        assert!(!c.as_str().contains(r#""2":{"metas""#), "the list as it was when first listed");
        p.publishing("t");
        let Message::Text(d) = p.state_frame("t", "\"1\"", "\"t\"", Serializer::V2).expect("frame") else { panic!("a text frame") };
        assert!(d.as_str().contains(r#""2":{"metas""#), "relisted after a publish: {d}");
        assert!(p.list("t").contains(r#""2":{"metas""#), "`list` is always the live list");
    }

    #[test]
    fn bad_metas_and_double_tracks_are_refused() {
        let p = Presence::default();
        assert!(matches!(p.track("t", "k", "[1]", (1, 1)), Err(PresenceError::InvalidMeta(_))));
        assert!(matches!(p.track("t", "k", "nope", (1, 1)), Err(PresenceError::InvalidMeta(_))));
        p.track("t", "k", "{}", (1, 1)).unwrap();
        assert_eq!(p.track("t", "k", "{}", (1, 1)).err(), Some(PresenceError::AlreadyTracked("k".into())));
        p.untrack("t", "k", (1, 1)).unwrap();
        assert_eq!(p.untrack("t", "k", (1, 1)).err(), Some(PresenceError::NotTracked("k".into())));
    }
}
