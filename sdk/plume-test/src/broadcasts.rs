//! Broadcasts as the test sees them: every message published on the app's
//! broker, in order.
//!
//! Phoenix.ChannelTest subscribes the test process to the topic it joins, so
//! `assert_broadcast` sees every broadcast on it, `broadcast_from` ones
//! included. The harness does the same by putting a [`Tap`] in front of the
//! app's real broker: it records each published message, then hands it on
//! unchanged, so fan-out is the broker's own.

use std::sync::{Arc, Mutex};

use plume::pubsub::{Broadcast, Broker, ChannelKey, Live, PublishError, SocketKey, Subscriber};
use serde_json::Value;

/// One published message.
#[derive(Debug, Clone)]
pub(crate) struct Published {
    pub topic: String,
    pub event: String,
    pub payload: Value,
}

/// The log of published messages, shared by the tap and the harness.
pub(crate) type Log = Arc<Mutex<Vec<Published>>>;

/// A broker that records what is published on the broker behind it.
pub(crate) struct Tap {
    pub inner: Arc<dyn Broker>,
    pub log: Log,
}

impl Broker for Tap {
    fn subscribe(&self, topic: &str, subscriber: Subscriber) -> Option<Live> {
        self.inner.subscribe(topic, subscriber)
    }

    fn unsubscribe(&self, topic: &str, socket: SocketKey, channel: ChannelKey) {
        self.inner.unsubscribe(topic, socket, channel);
    }

    fn publish(&self, message: Arc<Broadcast>, skip: Option<SocketKey>) -> Result<usize, PublishError> {
        let published = Published {
            topic: message.topic.clone(),
            event: message.event.clone(),
            payload: crate::socket::body_value(&message.payload),
        };
        if let Ok(mut log) = self.log.lock() {
            log.push(published);
        }
        self.inner.publish(message, skip)
    }

    fn subscriber_count(&self, topic: &str) -> usize {
        self.inner.subscriber_count(topic)
    }

    fn topics(&self, prefix: &str, limit: usize) -> Vec<(String, usize)> {
        self.inner.topics(prefix, limit)
    }
}
