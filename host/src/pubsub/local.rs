//! The in-process broker.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use parking_lot::RwLock;

use super::{Broadcast, Broker, ChannelKey, Delivery, Live, PublishError, SocketKey, Subscriber};

/// Topics are spread over shards so that joins on one topic do not wait for
/// a fan-out on another. Publishing takes one shard's read lock.
const SHARDS: usize = 32;

/// One shard: the subscribers of each of its topics.
type Shard = RwLock<HashMap<String, Vec<Subscriber>>>;

/// Subscriptions held in memory, for one app on one node.
pub struct LocalBroker {
    hasher: RandomState,
    shards: Box<[Shard]>,
}

impl Default for LocalBroker {
    fn default() -> Self {
        LocalBroker {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
        }
    }
}

impl LocalBroker {
    fn shard(&self, topic: &str) -> &RwLock<HashMap<String, Vec<Subscriber>>> {
        let index = self.hasher.hash_one(topic) as usize % SHARDS;
        &self.shards[index]
    }
}

impl Broker for LocalBroker {
    fn subscribe(&self, topic: &str, subscriber: Subscriber) -> Option<Live> {
        self.add(topic, subscriber);
        None
    }

    fn unsubscribe(&self, topic: &str, socket: SocketKey, channel: ChannelKey) {
        self.remove(topic, socket, channel);
    }

    fn publish(&self, message: Arc<Broadcast>, skip: Option<SocketKey>) -> Result<usize, PublishError> {
        Ok(self.deliver(&message, skip))
    }

    fn subscriber_count(&self, topic: &str) -> usize {
        self.shard(topic).read().get(topic).map_or(0, Vec::len)
    }

    fn topics(&self, prefix: &str, limit: usize) -> Vec<(String, usize)> {
        // One shard's read lock at a time: a listing never holds up a
        // fan-out for longer than one shard's scan.
        let mut topics: Vec<(String, usize)> = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.read();
            topics.extend(
                shard
                    .iter()
                    .filter(|(topic, subscribers)| topic.starts_with(prefix) && !subscribers.is_empty())
                    .map(|(topic, subscribers)| (topic.clone(), subscribers.len())),
            );
        }
        topics.sort_unstable();
        topics.truncate(limit);
        topics
    }
}

impl LocalBroker {
    /// Add a subscription. Returns how many subscriptions the topic has now.
    pub(super) fn add(&self, topic: &str, subscriber: Subscriber) -> usize {
        let mut shard = self.shard(topic).write();
        let subscribers = shard.entry(topic.to_owned()).or_default();
        subscribers.retain(|s| !(s.socket == subscriber.socket && s.channel == subscriber.channel));
        subscribers.push(subscriber);
        subscribers.len()
    }

    /// Remove a subscription. Returns how many the topic has left, `None`
    /// when there was no such subscription.
    pub(super) fn remove(&self, topic: &str, socket: SocketKey, channel: ChannelKey) -> Option<usize> {
        let mut shard = self.shard(topic).write();
        let subscribers = shard.get_mut(topic)?;
        let at = subscribers
            .iter()
            .position(|s| s.socket == socket && s.channel == channel)?;
        subscribers.swap_remove(at);
        let left = subscribers.len();
        if left == 0 {
            shard.remove(topic);
        }
        Some(left)
    }

    /// Hand `message` to this node's subscribers of its topic, but those of
    /// socket `skip` and the channel it was sent from.
    pub(super) fn deliver(&self, message: &Arc<Broadcast>, skip: Option<SocketKey>) -> usize {
        let shard = self.shard(&message.topic).read();
        let Some(subscribers) = shard.get(&message.topic) else {
            return 0;
        };
        let mut delivered = 0;
        for subscriber in subscribers {
            if Some(subscriber.socket) == skip || message.from == Some(subscriber.channel) {
                continue;
            }
            let delivery = Delivery {
                message: message.clone(),
                channel: subscriber.channel,
                kind: subscriber.kind,
            };
            if subscriber.inbox.deliver(delivery) {
                delivered += 1;
            }
        }
        delivered
    }

}
