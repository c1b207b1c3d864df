//! Presences across the nodes of a cluster.
//!
//! Each topic's presences live in a Redis hash; each entry is owned by the
//! node whose channel tracks it (field `<node>|<phx_ref>`, value
//! `[key, meta]`), and a node also lists the topics it has entries on, so
//! that whoever sweeps it when it dies knows where to look. A change is
//! written to the hash first and announced after, through the broker, on
//! the same connection: Redis sees them in that order.
//!
//! A node keeps a copy of the other nodes' entries for the topics its
//! sockets joined: when it starts listening to a topic it subscribes first,
//! then reads the hash, then applies the diffs that arrived in between
//! (joins and leaves are keyed by `phx_ref`, so applying one twice changes
//! nothing); after that the diffs keep the copy current. phoenix.js dedupes
//! joins by `phx_ref` too, and ignores a leave of an unknown ref, so a
//! client shown a diff that its `presence_state` already held sees no
//! difference.
//!
//! Faults, and what repairs them:
//! - **A node dies** (SIGKILL, network cut): its heartbeat stops, and after
//!   `down_after` one live node claims it, removes its entries from every
//!   topic it listed, and publishes the `leaves`.
//! - **A node loses Redis and comes back**: what it tracked or untracked
//!   meanwhile did not reach Redis, or it may have been swept as dead. It
//!   compares its own entries in Redis with what it tracks, writes the
//!   difference, and tells the other nodes with one diff per topic.
//! - **A node's subscriber reconnects**: it missed the diffs published
//!   meanwhile, so it reads each copied topic again and shows its own
//!   clients the difference.
//! - **A clean stop**: every channel terminates first, so every presence
//!   leaves as usual, at once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use redis::{Cmd, Value};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::oneshot;

use super::{Diff, Meta, Presence, State, entries};
use crate::cluster::{Member, Task};
use crate::protocol::{Body, json_string};
use crate::pubsub::{Broadcast, Broker, ClusterBroker, Kind, Live, Replica};

/// Where a topic's copy of the other nodes' presences stands.
pub(super) enum Copy {
    /// Being read from Redis: diffs that arrive meanwhile wait here.
    Loading {
        buffered: Vec<Change>,
        waiters: Vec<oneshot::Sender<()>>,
    },
    Loaded,
}

/// A diff of another node, by `phx_ref`.
#[derive(Debug, Default)]
pub(super) struct Change {
    /// (key, phx_ref, meta JSON)
    joins: Vec<(String, String, String)>,
    /// (key, phx_ref)
    leaves: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct WireDiff<'a> {
    #[serde(borrow, default)]
    joins: HashMap<String, WireMetas<'a>>,
    #[serde(borrow, default)]
    leaves: HashMap<String, WireMetas<'a>>,
}

#[derive(Deserialize)]
struct WireMetas<'a> {
    #[serde(borrow)]
    metas: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct WireRef {
    phx_ref: String,
}

fn phx_ref(meta: &RawValue) -> Option<String> {
    serde_json::from_str::<WireRef>(meta.get()).ok().map(|r| r.phx_ref)
}

/// Presences that joined and left, as (key, meta) pairs.
type Joins = Vec<(String, String)>;
type Leaves = Vec<(String, String)>;

impl Change {
    /// The change a `presence_diff` payload describes.
    fn parse(payload: &str) -> Option<Change> {
        let wire: WireDiff<'_> = serde_json::from_str(payload).ok()?;
        let mut change = Change::default();
        for (key, metas) in wire.joins {
            for meta in metas.metas {
                if let Some(r) = phx_ref(meta) {
                    change.joins.push((key.clone(), r, meta.get().to_owned()));
                }
            }
        }
        for (key, metas) in wire.leaves {
            for meta in metas.metas {
                if let Some(r) = phx_ref(meta) {
                    change.leaves.push((key.clone(), r));
                }
            }
        }
        Some(change)
    }

    /// Apply to a topic's copy of the other nodes' metas. Joins come first,
    /// as phoenix.js applies them, so a meta that joined and left within
    /// one diff is gone.
    fn apply(self, state: &mut State, topic: &str) {
        // Delivered to this node's clients right after: joiners from now
        // on are shown the list with it.
        state.listed.remove(topic);
        let keys = state.topics.entry(topic.to_owned()).or_default();
        for (key, phx_ref, json) in self.joins {
            let metas = keys.entry(key).or_default();
            if !metas.iter().any(|m| m.phx_ref == phx_ref) {
                metas.push(Meta { owner: None, phx_ref, json });
            }
        }
        for (key, phx_ref) in self.leaves {
            if let Some(metas) = keys.get_mut(&key) {
                metas.retain(|m| !(m.owner.is_none() && m.phx_ref == phx_ref));
                if metas.is_empty() {
                    keys.remove(&key);
                }
            }
        }
        if keys.is_empty() {
            state.topics.remove(topic);
        }
    }
}

/// One entry of a topic's hash.
struct Entry {
    node: String,
    phx_ref: String,
    key: String,
    json: String,
}

/// The entries of an `HGETALL` reply; entries that do not parse are
/// skipped (another version's, or damaged).
fn parse_entries(value: Value) -> Vec<Entry> {
    let pairs: Vec<(String, String)> = match value {
        Value::Map(pairs) => pairs
            .into_iter()
            .filter_map(|(f, v)| Some((redis::from_redis_value(f).ok()?, redis::from_redis_value(v).ok()?)))
            .collect(),
        other => redis::from_redis_value::<HashMap<String, String>>(other)
            .map(|map| map.into_iter().collect())
            .unwrap_or_default(),
    };
    pairs
        .into_iter()
        .filter_map(|(field, value)| {
            let (node, phx_ref) = field.split_once('|')?;
            let (key, meta): (String, &RawValue) = serde_json::from_str(&value).ok()?;
            Some(Entry {
                node: node.to_owned(),
                phx_ref: phx_ref.to_owned(),
                key,
                json: meta.get().to_owned(),
            })
        })
        .collect()
}

/// A diff payload from (key, meta JSON) pairs.
fn diff_of(topic: &str, joins: Vec<(String, String)>, leaves: Vec<(String, String)>) -> Diff {
    Diff {
        topic: topic.to_owned(),
        joins,
        leaves,
    }
}

fn presence_diff(diff: Diff) -> Arc<Broadcast> {
    let payload = Body::Json(diff.payload());
    Arc::new(Broadcast::of_kind(diff.topic, "presence_diff".into(), payload, None, Kind::PresenceDiff))
}

/// This node's side of an app's presences in a cluster.
pub(super) struct Store {
    broker: Arc<ClusterBroker>,
    presence: Weak<Presence>,
    /// Topics this node has listed as having its entries.
    declared: Mutex<HashSet<String>>,
}

impl Store {
    pub(super) fn attach(presence: &Arc<Presence>, broker: &Arc<ClusterBroker>) {
        let store = Store {
            broker: broker.clone(),
            presence: Arc::downgrade(presence),
            declared: Mutex::default(),
        };
        if presence.cluster.set(store).is_err() {
            return;
        }
        broker.replicate(Arc::downgrade(presence) as Weak<dyn Replica>);
        broker
            .cluster()
            .register(broker.tenant(), Arc::downgrade(presence) as Weak<dyn Member>);
    }

    fn node(&self) -> &str {
        self.broker.cluster().node()
    }

    fn key(&self, topic: &str) -> String {
        self.broker.cluster().names().presence_key(self.broker.tenant(), topic)
    }

    fn topics_key(&self, node: &str) -> String {
        self.broker
            .cluster()
            .names()
            .tenant_meta_key(self.broker.tenant(), &format!("node:{node}:presence"))
    }

    fn field(&self, phx_ref: &str) -> String {
        format!("{}|{phx_ref}", self.node())
    }

    /// Send without waiting; a command that cannot go now is made good when
    /// the node reconnects ([`Member::reconnected`]).
    fn send(&self, cmd: Cmd, route: &str) {
        if let Err(error) = self.broker.cluster().link().send(cmd, Some(route)) {
            tracing::debug!(%error, "presence not stored in the cluster yet; it will be on reconnect");
        }
    }

    /// This node's channels track `entries` (key, phx_ref, meta) on `topic`.
    pub(super) fn joined(&self, topic: &str, entries: &[(&str, &str, &str)]) {
        let key = self.key(topic);
        let mut hset = Cmd::new();
        hset.arg("HSET").arg(&key);
        for (presence_key, phx_ref, json) in entries {
            hset.arg(self.field(phx_ref)).arg(format!("[{},{json}]", json_string(presence_key)));
        }
        self.send(hset, &key);
        if self.declared.lock().insert(topic.to_owned()) {
            let topics = self.topics_key(self.node());
            let mut sadd = Cmd::new();
            sadd.arg("SADD").arg(&topics).arg(topic);
            self.send(sadd, &topics);
        }
    }

    /// This node's channels no longer track `refs` on `topic`.
    pub(super) fn left(&self, topic: &str, refs: &[&str]) {
        if refs.is_empty() {
            return;
        }
        let key = self.key(topic);
        let mut hdel = Cmd::new();
        hdel.arg("HDEL").arg(&key);
        for phx_ref in refs {
            hdel.arg(self.field(phx_ref));
        }
        self.send(hdel, &key);
    }

    /// The presences of a topic no socket of this node joined, read from
    /// Redis; `None` for a topic copied here (the copy is current).
    pub(super) fn list_elsewhere(&self, presence: &Presence, topic: &str) -> Option<String> {
        if presence.state.lock().replicas.contains_key(topic) {
            return None;
        }
        let key = self.key(topic);
        let mut hgetall = Cmd::new();
        hgetall.arg("HGETALL").arg(&key);
        let value = match self.broker.cluster().link().query_blocking(hgetall, Some(&key)) {
            Ok(value) => value,
            Err(error) => {
                tracing::warn!(%error, topic, "presences of another node's topic unavailable; listing this node's");
                return None;
            }
        };
        let mut grouped: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for entry in parse_entries(value) {
            grouped.entry(entry.key).or_default().push(entry.json);
        }
        let mut out = String::new();
        entries(&mut out, grouped.iter().map(|(k, metas)| (k.as_str(), metas.iter().map(String::as_str).collect())));
        Some(out)
    }

    async fn read(&self, topic: &str) -> Result<Vec<Entry>, crate::cluster::LinkError> {
        let key = self.key(topic);
        let mut hgetall = Cmd::new();
        hgetall.arg("HGETALL").arg(&key);
        Ok(parse_entries(self.broker.cluster().link().query(hgetall, Some(&key)).await?))
    }
}

impl Presence {
    fn store(&self) -> Option<&Store> {
        self.cluster.get()
    }

    /// Replace the copy of `topic` with `entries` (the other nodes' ones),
    /// then apply what was buffered. Returns the difference to the copy as
    /// it was, for this node's clients.
    fn replace_copy(&self, topic: &str, snapshot: Vec<Entry>, node: &str) -> (Joins, Leaves) {
        let mut state = self.state.lock();
        state.listed.remove(topic);
        let keys = state.topics.entry(topic.to_owned()).or_default();
        let mut before: HashMap<String, (String, String)> = HashMap::new();
        for (key, metas) in keys.iter_mut() {
            for meta in metas.iter().filter(|m| m.owner.is_none()) {
                before.insert(meta.phx_ref.clone(), (key.clone(), meta.json.clone()));
            }
            metas.retain(|m| m.owner.is_some());
        }
        let mut joins = Vec::new();
        for entry in snapshot.into_iter().filter(|e| e.node != node) {
            if before.remove(&entry.phx_ref).is_none() {
                joins.push((entry.key.clone(), entry.json.clone()));
            }
            keys.entry(entry.key).or_default().push(Meta {
                owner: None,
                phx_ref: entry.phx_ref,
                json: entry.json,
            });
        }
        keys.retain(|_, metas| !metas.is_empty());
        if keys.is_empty() {
            state.topics.remove(topic);
        }
        let leaves = before.into_values().collect();
        if let Some(Copy::Loading { buffered, waiters }) = state.replicas.insert(topic.to_owned(), Copy::Loaded) {
            for change in buffered {
                change.apply(&mut state, topic);
            }
            for waiter in waiters {
                let _ = waiter.send(());
            }
        }
        (joins, leaves)
    }
}

impl Replica for Presence {
    fn load(&self, topic: &str) -> Option<Live> {
        let store = self.store()?;
        let mut state = self.state.lock();
        let (tx, rx) = oneshot::channel();
        match state.replicas.get_mut(topic) {
            Some(Copy::Loaded) => return None,
            Some(Copy::Loading { waiters, .. }) => waiters.push(tx),
            None => {
                state.replicas.insert(
                    topic.to_owned(),
                    Copy::Loading {
                        buffered: Vec::new(),
                        waiters: vec![tx],
                    },
                );
                let presence = store.presence.clone();
                let topic = topic.to_owned();
                tokio::spawn(async move {
                    let Some(presence) = presence.upgrade() else { return };
                    let Some(store) = presence.store() else { return };
                    let snapshot = store.read(&topic).await.unwrap_or_else(|error| {
                        // Listening still works; the copy is made good when
                        // the node hears the cluster again.
                        tracing::warn!(%error, topic, "cluster: the presences of other nodes could not be read; they will be when Redis is back");
                        Vec::new()
                    });
                    presence.replace_copy(&topic, snapshot, store.node());
                });
            }
        }
        Some(Box::pin(async move {
            let _ = rx.await;
        }))
    }

    fn apply(&self, topic: &str, message: &Broadcast) {
        let Body::Json(payload) = &message.payload else { return };
        let Some(change) = Change::parse(payload) else { return };
        let mut state = self.state.lock();
        match state.replicas.get_mut(topic) {
            Some(Copy::Loading { buffered, .. }) => buffered.push(change),
            Some(Copy::Loaded) => change.apply(&mut state, topic),
            None => {}
        }
    }

    fn forget(&self, topic: &str) {
        let mut state = self.state.lock();
        state.listed.remove(topic);
        if let Some(Copy::Loading { waiters, .. }) = state.replicas.remove(topic) {
            for waiter in waiters {
                let _ = waiter.send(());
            }
        }
        if let Some(keys) = state.topics.get_mut(topic) {
            for metas in keys.values_mut() {
                metas.retain(|m| m.owner.is_some());
            }
            keys.retain(|_, metas| !metas.is_empty());
            if keys.is_empty() {
                state.topics.remove(topic);
            }
        }
    }
}

impl Member for Presence {
    /// Diffs published while the subscriber was away were missed: read each
    /// copied topic again, and show this node's clients the difference.
    fn resubscribed(&self) {
        let Some(store) = self.store() else { return };
        let topics: Vec<String> = self.state.lock().replicas.keys().cloned().collect();
        let presence = store.presence.clone();
        tokio::spawn(async move {
            for topic in topics {
                let Some(presence) = presence.upgrade() else { return };
                let Some(store) = presence.store() else { return };
                let Ok(snapshot) = store.read(&topic).await else { return };
                let (joins, leaves) = presence.replace_copy(&topic, snapshot, store.node());
                if !joins.is_empty() || !leaves.is_empty() {
                    store.broker.deliver_here(presence_diff(diff_of(&topic, joins, leaves)));
                }
            }
        });
    }

    /// What this node wrote while Redis was away did not arrive, and it may
    /// have been swept as dead: make Redis hold exactly this node's
    /// presences again, and tell the other nodes the difference.
    fn reconnected(&self) {
        let Some(store) = self.store() else { return };
        store.declared.lock().clear();
        let presence = store.presence.clone();
        tokio::spawn(async move {
            let Some(presence) = presence.upgrade() else { return };
            let Some(store) = presence.store() else { return };
            let mine: HashMap<String, Vec<(String, String, String)>> = {
                let state = presence.state.lock();
                let mut mine: HashMap<String, Vec<(String, String, String)>> = HashMap::new();
                for (topic, keys) in &state.topics {
                    for (key, metas) in keys {
                        for meta in metas.iter().filter(|m| m.owner.is_some()) {
                            mine.entry(topic.clone()).or_default().push((key.clone(), meta.phx_ref.clone(), meta.json.clone()));
                        }
                    }
                }
                mine
            };
            // Topics Redis lists for this node, tracked or not any more.
            let topics_key = store.topics_key(store.node());
            let mut smembers = Cmd::new();
            smembers.arg("SMEMBERS").arg(&topics_key);
            let listed: Vec<String> = match store.broker.cluster().link().query(smembers, Some(&topics_key)).await {
                Ok(value) => redis::from_redis_value(value).unwrap_or_default(),
                Err(_) => return,
            };
            let topics: HashSet<String> = listed.into_iter().chain(mine.keys().cloned()).collect();
            for topic in topics {
                let Ok(stored) = store.read(&topic).await else { return };
                let stored: HashMap<String, Entry> = stored
                    .into_iter()
                    .filter(|e| e.node == store.node())
                    .map(|e| (e.phx_ref.clone(), e))
                    .collect();
                let tracked = mine.get(&topic).cloned().unwrap_or_default();
                let missing: Vec<&(String, String, String)> = tracked.iter().filter(|(_, r, _)| !stored.contains_key(r)).collect();
                let tracked_refs: HashSet<&str> = tracked.iter().map(|(_, r, _)| r.as_str()).collect();
                let extra: Vec<&Entry> = stored.values().filter(|e| !tracked_refs.contains(e.phx_ref.as_str())).collect();
                if !missing.is_empty() {
                    let entries: Vec<(&str, &str, &str)> = missing.iter().map(|(k, r, j)| (k.as_str(), r.as_str(), j.as_str())).collect();
                    store.joined(&topic, &entries);
                } else if !tracked.is_empty() {
                    store.joined(&topic, &[]);
                }
                store.left(&topic, &extra.iter().map(|e| e.phx_ref.as_str()).collect::<Vec<_>>());
                if !missing.is_empty() || !extra.is_empty() {
                    let joins = missing.iter().map(|(k, _, j)| (k.clone(), j.clone())).collect();
                    let leaves = extra.iter().map(|e| (e.key.clone(), e.json.clone())).collect();
                    let diff = presence_diff(diff_of(&topic, joins, leaves));
                    let _ = store.broker.publish_elsewhere(&diff);
                }
            }
        });
    }

    /// Remove a dead node's presences from every topic it listed, and
    /// announce the `leaves` everywhere.
    fn sweep(&self, dead: &str) -> Option<Task> {
        let store = self.store()?;
        let presence = store.presence.clone();
        let dead = dead.to_owned();
        Some(Box::pin(async move {
            let Some(presence) = presence.upgrade() else { return };
            let Some(store) = presence.store() else { return };
            let link = store.broker.cluster().link();
            let topics_key = store.topics_key(&dead);
            let mut smembers = Cmd::new();
            smembers.arg("SMEMBERS").arg(&topics_key);
            let Ok(value) = link.query(smembers, Some(&topics_key)).await else { return };
            let topics: Vec<String> = redis::from_redis_value(value).unwrap_or_default();
            let mut swept = 0usize;
            for topic in topics {
                let Ok(entries) = store.read(&topic).await else { return };
                let gone: Vec<Entry> = entries.into_iter().filter(|e| e.node == dead).collect();
                if gone.is_empty() {
                    continue;
                }
                let key = store.key(&topic);
                let mut hdel = Cmd::new();
                hdel.arg("HDEL").arg(&key);
                for entry in &gone {
                    hdel.arg(format!("{dead}|{}", entry.phx_ref));
                }
                if link.query(hdel, Some(&key)).await.is_err() {
                    return;
                }
                swept += gone.len();
                let change = Change {
                    joins: Vec::new(),
                    leaves: gone.iter().map(|e| (e.key.clone(), e.phx_ref.clone())).collect(),
                };
                {
                    let mut state = presence.state.lock();
                    if matches!(state.replicas.get(&topic), Some(Copy::Loaded)) {
                        change.apply(&mut state, &topic);
                    }
                }
                let leaves = gone.into_iter().map(|e| (e.key, e.json)).collect();
                let _ = store.broker.publish(presence_diff(diff_of(&topic, Vec::new(), leaves)), None);
            }
            let mut del = Cmd::new();
            del.arg("DEL").arg(&topics_key);
            let _ = link.query(del, Some(&topics_key)).await;
            if swept > 0 {
                tracing::info!(node = dead, presences = swept, "cluster: removed a dead node's presences");
            }
        }))
    }
}
