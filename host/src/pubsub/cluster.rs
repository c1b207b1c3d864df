//! The broker of a node in a cluster: the local broker, plus one Redis
//! channel per topic that the node listens to while its own sockets are
//! subscribed.
//!
//! A broadcast is delivered here at once (in order with the publisher's
//! replies, as on one node), and published once on the topic's channel,
//! never once per subscriber. Every other node that listens delivers it to
//! its own subscribers, encoded once per serializer there, through
//! `handle-out` where a channel intercepts it. A node skips the messages it
//! published itself, so each subscriber gets each broadcast once. Redis
//! keeps a publisher's order on a channel, so subscribers see one node's
//! broadcasts on a topic in the order they were made.
//!
//! The first local subscription to a topic subscribes the node to its
//! channel; the last one to leave unsubscribes it. A join waits until Redis
//! confirmed the subscription, and until the topic's replicated state
//! (presences, see [`Replica`]) is loaded: read after subscribing, so no
//! change falls between the two.

use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;

use super::local::LocalBroker;
use super::{Broadcast, Broker, ChannelKey, Kind, Live, PublishError, SocketKey, Subscriber};
use crate::cluster::{Cluster, Member, envelope};

/// State a node copies from the cluster for the topics it listens to.
pub trait Replica: Send + Sync {
    /// The node listens to `topic` now: load its state, unless it is loaded
    /// (or loading) already. `Some` resolves once it is.
    fn load(&self, topic: &str) -> Option<Live>;
    /// A state change from another node, before it is delivered here.
    fn apply(&self, topic: &str, message: &Broadcast);
    /// The node stopped listening to `topic`: its copy is stale from now on.
    fn forget(&self, topic: &str);
}

/// Locks that make a topic's local subscription count and the node's
/// Redis subscription change together.
const LOCKS: usize = 32;

/// A tenant's broker on a node of a cluster.
pub struct ClusterBroker {
    tenant: String,
    local: LocalBroker,
    cluster: Arc<Cluster>,
    replica: OnceLock<Weak<dyn Replica>>,
    hasher: RandomState,
    locks: Box<[Mutex<()>]>,
}

impl ClusterBroker {
    /// A tenant's broker, listening to the cluster.
    pub fn new(cluster: Arc<Cluster>, tenant: &str) -> Arc<ClusterBroker> {
        let broker = Arc::new(ClusterBroker {
            tenant: tenant.to_owned(),
            local: LocalBroker::default(),
            cluster: cluster.clone(),
            replica: OnceLock::new(),
            hasher: RandomState::new(),
            locks: (0..LOCKS).map(|_| Mutex::new(())).collect(),
        });
        let member: Weak<dyn Member> = Arc::downgrade(&broker) as Weak<dyn Member>;
        cluster.register(tenant, member);
        broker
    }

    /// Keep `replica` up to date with the topics this node listens to.
    pub fn replicate(&self, replica: Weak<dyn Replica>) {
        let _ = self.replica.set(replica);
    }

    fn replica(&self) -> Option<Arc<dyn Replica>> {
        self.replica.get().and_then(Weak::upgrade)
    }

    fn channel(&self, topic: &str) -> String {
        self.cluster.names().topic_channel(&self.tenant, topic)
    }

    fn lock(&self, topic: &str) -> parking_lot::MutexGuard<'_, ()> {
        self.locks[self.hasher.hash_one(topic) as usize % LOCKS].lock()
    }
}

impl Broker for ClusterBroker {
    fn subscribe(&self, topic: &str, subscriber: Subscriber) -> Option<Live> {
        let confirmed = {
            let _topic = self.lock(topic);
            self.local.add(topic, subscriber);
            self.cluster.link().subscribe(&self.channel(topic))
        };
        let replica = self.replica();
        if confirmed.is_none() {
            // Listening already: only the replica may still have to load.
            return replica.and_then(|replica| replica.load(topic));
        }
        let topic = topic.to_owned();
        Some(Box::pin(async move {
            if let Some(confirmed) = confirmed {
                let _ = confirmed.await;
            }
            if let Some(loading) = replica.and_then(|replica| replica.load(&topic)) {
                loading.await;
            }
        }))
    }

    fn unsubscribe(&self, topic: &str, socket: SocketKey, channel: ChannelKey) {
        let _topic = self.lock(topic);
        if self.local.remove(topic, socket, channel) == Some(0) {
            self.cluster.link().unsubscribe(&self.channel(topic));
            if let Some(replica) = self.replica() {
                replica.forget(topic);
            }
        }
    }

    fn publish(&self, message: Arc<Broadcast>, skip: Option<SocketKey>) -> Result<usize, PublishError> {
        let delivered = self.local.deliver(&message, skip);
        let envelope = envelope::encode(self.cluster.node(), &message.event, &message.payload, message.kind, message.except.as_deref());
        self.cluster
            .link()
            .publish(self.channel(&message.topic), envelope)
            .map_err(|error| PublishError::Unavailable(error.to_string()))?;
        Ok(delivered)
    }

    fn subscriber_count(&self, topic: &str) -> usize {
        self.local.subscriber_count(topic)
    }

    /// This node's topics and subscriptions: nodes keep no count of each
    /// other's subscribers.
    fn topics(&self, prefix: &str, limit: usize) -> Vec<(String, usize)> {
        self.local.topics(prefix, limit)
    }
}

impl Member for ClusterBroker {
    fn receive(&self, topic: &str, message: envelope::Received) {
        // A node delivered its own broadcasts when it published them; but
        // one with a position got it in Redis, and reaches every node,
        // this one too, from there.
        if message.origin == self.cluster.node() && message.position.is_none() {
            return;
        }
        let mut broadcast = Broadcast::of_kind(topic.to_owned(), message.event, message.payload, None, message.kind).except(message.except);
        if let Some(position) = message.position {
            broadcast = broadcast.at(position);
        }
        let broadcast = Arc::new(broadcast);
        if broadcast.kind == Kind::PresenceDiff
            && let Some(replica) = self.replica()
        {
            replica.apply(topic, &broadcast);
        }
        self.local.deliver(&broadcast, None);
    }
}

impl ClusterBroker {
    /// Deliver `message` to this node's subscribers only: a correction of
    /// state they were shown (presences that changed while the node could
    /// not hear the cluster).
    pub fn deliver_here(&self, message: Arc<Broadcast>) -> usize {
        self.local.deliver(&message, None)
    }

    /// Publish `message` to the other nodes only, without delivering it
    /// here (the node's own subscribers saw it already).
    pub fn publish_elsewhere(&self, message: &Broadcast) -> Result<(), PublishError> {
        let envelope = envelope::encode(self.cluster.node(), &message.event, &message.payload, message.kind, message.except.as_deref());
        self.cluster
            .link()
            .publish(self.channel(&message.topic), envelope)
            .map_err(|error| PublishError::Unavailable(error.to_string()))
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }
}
