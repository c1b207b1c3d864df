//! The in-process broker.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use parking_lot::RwLock;

use super::{Broadcast, Broker, ChannelKey, Delivery, SocketKey, Subscriber};

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
    fn subscribe(&self, topic: &str, subscriber: Subscriber) {
        let mut shard = self.shard(topic).write();
        let subscribers = shard.entry(topic.to_owned()).or_default();
        subscribers.retain(|s| !(s.socket == subscriber.socket && s.channel == subscriber.channel));
        subscribers.push(subscriber);
    }

    fn unsubscribe(&self, topic: &str, socket: SocketKey, channel: ChannelKey) {
        let mut shard = self.shard(topic).write();
        if let Some(subscribers) = shard.get_mut(topic) {
            if let Some(at) = subscribers
                .iter()
                .position(|s| s.socket == socket && s.channel == channel)
            {
                subscribers.swap_remove(at);
            }
            if subscribers.is_empty() {
                shard.remove(topic);
            }
        }
    }

    fn publish(&self, message: Arc<Broadcast>, skip: Option<SocketKey>) -> usize {
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
            if subscriber.mailbox.deliver(delivery) {
                delivered += 1;
            }
        }
        delivered
    }

    fn subscriber_count(&self, topic: &str) -> usize {
        self.shard(topic).read().get(topic).map_or(0, Vec::len)
    }
}
