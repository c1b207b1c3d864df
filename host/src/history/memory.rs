//! History in this node's memory: gone when the node stops, and a restart
//! starts every topic on a new epoch, so nobody recovers from a history the
//! node no longer has.
//!
//! A topic's lock is held while a broadcast gets its offset and is handed
//! to the broker, so subscribers receive a topic's broadcasts in the order
//! of their offsets whichever thread published them. The app's history is
//! bounded twice: each topic by its route's `size` and `ttl_s`, and all of
//! them together by `max_history_bytes`; past that, the topic written to
//! drops its oldest messages first.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use super::{Policy, Published, Recovery, new_epoch};
use crate::pubsub::{Broadcast, Broker, Position, PublishError, SocketKey};

/// What a kept message costs beyond its payload, topic and event (the
/// entry, the broadcast's own fields).
const ENTRY_OVERHEAD: u64 = 160;

/// A topic with nothing kept and unused this long forgets its epoch and
/// offset (the next broadcast starts a new epoch).
const IDLE_META_MS: u64 = 3_600_000;

struct Entry {
    message: Arc<Broadcast>,
    /// When it was kept, in ms since the Unix epoch.
    at_ms: u64,
    bytes: u64,
}

struct Topic {
    epoch: u64,
    top: u64,
    entries: VecDeque<Entry>,
    /// The route's time to keep messages, as last published with.
    ttl_ms: u64,
    used_ms: u64,
}

impl Topic {
    fn new(now_ms: u64) -> Topic {
        Topic {
            epoch: new_epoch(),
            top: 0,
            entries: VecDeque::new(),
            ttl_ms: 0,
            used_ms: now_ms,
        }
    }

    /// Drop the oldest entry; its bytes.
    fn pop(&mut self) -> Option<u64> {
        self.entries.pop_front().map(|e| e.bytes)
    }

    /// Drop what expired; the bytes freed and entries dropped.
    fn expire(&mut self, now_ms: u64) -> (u64, u64) {
        let (mut bytes, mut count) = (0, 0);
        while self.entries.front().is_some_and(|e| e.at_ms + self.ttl_ms <= now_ms) {
            bytes += self.pop().unwrap_or(0);
            count += 1;
        }
        (bytes, count)
    }
}

/// An app's history on this node.
pub struct MemoryHistory {
    topics: RwLock<HashMap<String, Arc<Mutex<Topic>>>>,
    max_bytes: u64,
    bytes: AtomicU64,
    messages: AtomicU64,
}

impl MemoryHistory {
    /// A history holding at most `max_bytes` in all.
    pub fn new(max_bytes: u64) -> MemoryHistory {
        MemoryHistory {
            topics: RwLock::default(),
            max_bytes,
            bytes: AtomicU64::new(0),
            messages: AtomicU64::new(0),
        }
    }

    fn topic(&self, name: &str) -> Arc<Mutex<Topic>> {
        if let Some(topic) = self.topics.read().get(name) {
            return topic.clone();
        }
        self.topics
            .write()
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(Mutex::new(Topic::new(crate::clock::unix_ms()))))
            .clone()
    }

    fn freed(&self, bytes: u64, count: u64) {
        self.bytes.fetch_sub(bytes, Ordering::Relaxed);
        self.messages.fetch_sub(count, Ordering::Relaxed);
    }

    pub(super) fn publish(
        &self,
        broker: &dyn Broker,
        policy: &Policy,
        message: Broadcast,
        skip: Option<SocketKey>,
    ) -> Result<Published, PublishError> {
        let now = crate::clock::unix_ms();
        let topic = self.topic(&message.topic);
        let mut topic = topic.lock();
        topic.ttl_ms = policy.ttl.as_millis() as u64;
        topic.used_ms = now;
        topic.top += 1;
        let position = Position {
            epoch: topic.epoch,
            offset: topic.top,
        };
        let bytes = (message.payload.len() + message.topic.len() + message.event.len()) as u64 + ENTRY_OVERHEAD;
        let message = Arc::new(message.at(position));
        topic.entries.push_back(Entry {
            message: message.clone(),
            at_ms: now,
            bytes,
        });
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.messages.fetch_add(1, Ordering::Relaxed);
        let (mut freed, mut dropped) = topic.expire(now);
        while topic.entries.len() > policy.size.max(1)
            || (self.bytes.load(Ordering::Relaxed).saturating_sub(freed) > self.max_bytes && topic.entries.len() > 1)
        {
            freed += topic.pop().unwrap_or(0);
            dropped += 1;
        }
        self.freed(freed, dropped);
        // Delivered under the topic's lock: in offset order.
        let published = broker.publish(message.clone(), skip);
        drop(topic);
        published.map(|_| Published { here: Some(message) })
    }

    pub(super) fn recover(&self, name: &str, policy: &Policy, since: Position) -> Recovery {
        let now = crate::clock::unix_ms();
        let topic = self.topic(name);
        let mut topic = topic.lock();
        topic.ttl_ms = topic.ttl_ms.max(policy.ttl.as_millis() as u64);
        topic.used_ms = now;
        let (freed, dropped) = topic.expire(now);
        self.freed(freed, dropped);
        let found: Vec<Arc<Broadcast>> = if since.epoch == topic.epoch {
            topic
                .entries
                .iter()
                .filter(|e| e.message.position.is_some_and(|p| p.offset > since.offset))
                .take(super::MAX_RECOVERED + 1)
                .map(|e| e.message.clone())
                .collect()
        } else {
            Vec::new()
        };
        Recovery::decide(since, topic.epoch, topic.top, found)
    }

    /// Messages and bytes held.
    pub(super) fn held(&self) -> (u64, u64) {
        (self.messages.load(Ordering::Relaxed), self.bytes.load(Ordering::Relaxed))
    }

    /// Drop expired messages, and forget topics idle and empty for long.
    pub(super) fn sweep(&self) {
        let now = crate::clock::unix_ms();
        let topics: Vec<(String, Arc<Mutex<Topic>>)> =
            self.topics.read().iter().map(|(name, topic)| (name.clone(), topic.clone())).collect();
        let mut idle = Vec::new();
        for (name, topic) in topics {
            let mut topic = topic.lock();
            let (freed, dropped) = topic.expire(now);
            self.freed(freed, dropped);
            if topic.entries.is_empty() && topic.used_ms + IDLE_META_MS <= now {
                idle.push(name);
            }
        }
        if !idle.is_empty() {
            let mut topics = self.topics.write();
            for name in idle {
                // Used again since the look above: keep it.
                if topics.get(&name).is_some_and(|t| t.lock().entries.is_empty()) {
                    topics.remove(&name);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::protocol::Body;
    use crate::pubsub::LocalBroker;

    fn policy(size: usize) -> Policy {
        Policy {
            size,
            ttl: Duration::from_secs(600),
            recover: true,
        }
    }

    fn publish(history: &MemoryHistory, body: &str, policy: &Policy) -> Position {
        let message = Broadcast::new("t".into(), "e".into(), Body::Json(format!("\"{body}\"")), None);
        let published = history.publish(&LocalBroker::default(), policy, message, None).expect("published");
        published.here.and_then(|m| m.position).expect("a position")
    }

    #[test]
    fn offsets_grow_by_one_in_one_epoch_and_recovery_returns_what_was_missed() {
        let history = MemoryHistory::new(1 << 20);
        let p = policy(10);
        let first = publish(&history, "a", &p);
        let second = publish(&history, "b", &p);
        let third = publish(&history, "c", &p);
        assert_eq!((first.offset, second.offset, third.offset), (1, 2, 3));
        assert_eq!(first.epoch, third.epoch);
        let recovery = history.recover("t", &p, first);
        assert!(recovery.recovered);
        assert_eq!(recovery.position, third);
        let bodies: Vec<String> = recovery
            .messages
            .iter()
            .map(|m| match &m.payload {
                Body::Json(json) => json.clone(),
                Body::Binary(_) => String::new(),
            })
            .collect();
        assert_eq!(bodies, vec!["\"b\"", "\"c\""]);
        assert!(history.recover("t", &p, third).recovered, "nothing missed");
    }

    #[test]
    fn a_gap_longer_than_the_history_or_another_epoch_is_not_recovered() {
        let history = MemoryHistory::new(1 << 20);
        let p = policy(2);
        let first = publish(&history, "a", &p);
        for body in ["b", "c", "d"] {
            publish(&history, body, &p);
        }
        let recovery = history.recover("t", &p, first);
        assert!(!recovery.recovered);
        assert!(recovery.messages.is_empty());
        assert_eq!(recovery.position.offset, 4);
        let other_epoch = Position { epoch: first.epoch ^ 2, offset: 3 };
        assert!(!history.recover("t", &p, other_epoch).recovered);
        let (messages, bytes) = history.held();
        assert_eq!(messages, 2, "size bounds the topic");
        assert!(bytes > 0);
    }

    #[test]
    fn the_byte_limit_drops_the_oldest_of_the_topic_written() {
        let history = MemoryHistory::new(2 * (ENTRY_OVERHEAD + 8));
        let p = policy(100);
        for body in ["a", "b", "c", "d"] {
            publish(&history, body, &p);
        }
        let (messages, bytes) = history.held();
        assert!(messages <= 2, "{messages}");
        assert!(bytes <= 2 * (ENTRY_OVERHEAD + 8), "{bytes}");
    }
}
