//! Channel history and recovery: nothing missed across a reconnect.
//!
//! A route may keep the last broadcasts of each of its topics
//! (`history = { size = 100, ttl_s = 600 }`). Every broadcast on such a
//! topic gets a [`Position`] (an epoch and an offset), sent to clients in
//! the `ref` slot of its frame. A client that comes back joins with
//! `"_recover": "<epoch>:<offset>"`, the last position it saw, and gets
//! what it missed, in order, each once, before anything newer, followed by
//! `plume_recovery` `{"recovered", "count", "position"}`.
//!
//! The rule for "recovered" is Centrifuge's, and recovery is never partial:
//! the epoch must be the topic's, and the history must hold every message
//! after the client's offset up to the topic's newest (or there must be
//! none), at most [`MAX_RECOVERED`] of them. Otherwise the client gets
//! `"recovered": false`, no messages, and the position to go on from.
//!
//! Nothing slips between the history and live traffic: the channel
//! subscribes before the history is read, and then skips live broadcasts
//! at or below the position the read reached (see `socket`).
//!
//! Two engines: in memory on one node ([`memory`]), and Redis streams in a
//! cluster ([`redis`]), so a client that comes back on another node
//! recovers there too.

mod memory;
mod redis;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::pubsub::{Broadcast, Broker, Position, PublishError, SocketKey};

pub use memory::MemoryHistory;
pub use redis::RedisHistory;

/// The most messages one recovery replays; a client further behind is not
/// recovered (Centrifuge's limit too).
pub const MAX_RECOVERED: usize = 300;

/// What a route keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The last this many broadcasts of each topic.
    pub size: usize,
    /// For this long each.
    pub ttl: Duration,
    /// Whether a join may ask to recover (`"_recover"`).
    pub recover: bool,
}

/// What a client asking to recover gets.
#[derive(Debug, Clone)]
pub struct Recovery {
    pub recovered: bool,
    /// The missed broadcasts, in order: none unless recovered.
    pub messages: Vec<Arc<Broadcast>>,
    /// The newest position of the topic when it was read: where the client
    /// goes on from.
    pub position: Position,
}

impl Recovery {
    /// Centrifuge's rule (`isStreamRecovered`), given the topic's epoch and
    /// newest offset and the messages found after the client's offset.
    pub fn decide(since: Position, epoch: u64, top: u64, found: Vec<Arc<Broadcast>>) -> Recovery {
        let position = Position { epoch, offset: top };
        let complete = since.epoch == epoch
            && since.offset <= top
            && match (found.first(), found.last()) {
                (None, _) | (_, None) => top == since.offset,
                (Some(first), Some(last)) => {
                    first.position.map(|p| p.offset) == Some(since.offset + 1)
                        && last.position.map(|p| p.offset) == Some(top)
                        && found.len() <= MAX_RECOVERED
                }
            };
        Recovery {
            recovered: complete,
            messages: if complete { found } else { Vec::new() },
            position,
        }
    }
}

/// A recovery read: at once (memory), or after a round trip (Redis).
pub enum Read {
    Done(Recovery),
    Pending(Pin<Box<dyn Future<Output = Recovery> + Send>>),
}

/// What a publish on a history topic did.
pub struct Published {
    /// The broadcast, at its position, when it was delivered on this node
    /// at once (memory): the publishing socket delivers it to itself, in
    /// order with its replies. `None` when it reaches this node's
    /// subscribers through the cluster, like everyone's (Redis).
    pub here: Option<Arc<Broadcast>>,
}

/// An app's history engine.
pub enum History {
    Memory(MemoryHistory),
    Redis(RedisHistory),
}

impl History {
    /// Keep `message` in its topic's history, give it a position, and
    /// deliver it through `broker`, so that subscribers see positions in
    /// order.
    pub fn publish(
        &self,
        broker: &dyn Broker,
        policy: &Policy,
        message: Broadcast,
        skip: Option<SocketKey>,
    ) -> Result<Published, PublishError> {
        match self {
            History::Memory(memory) => memory.publish(broker, policy, message, skip),
            History::Redis(redis) => redis.publish(policy, message),
        }
    }

    /// What a client that last saw `since` on `topic` missed.
    pub fn recover(&self, topic: &str, policy: &Policy, since: Position) -> Read {
        match self {
            History::Memory(memory) => Read::Done(memory.recover(topic, policy, since)),
            History::Redis(redis) => Read::Pending(redis.recover(topic, policy, since)),
        }
    }

    /// Messages and bytes held on this node, for `/metrics`.
    pub fn held(&self) -> (u64, u64) {
        match self {
            History::Memory(memory) => memory.held(),
            History::Redis(_) => (0, 0),
        }
    }

    /// Drop what has expired (run periodically).
    pub fn sweep(&self) {
        if let History::Memory(memory) = self {
            memory.sweep();
        }
    }
}

/// A fresh epoch: 64 random bits, so two histories (before and after a
/// restart, or two topics) never share one by chance.
pub fn new_epoch() -> u64 {
    rand::random::<u64>() | 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Body;

    fn at(epoch: u64, offset: u64) -> Arc<Broadcast> {
        Arc::new(Broadcast::new("t".into(), "e".into(), Body::Json("{}".into()), None).at(Position { epoch, offset }))
    }

    #[test]
    fn recovered_only_when_every_missed_message_is_there_in_the_same_epoch() {
        let since = Position { epoch: 7, offset: 10 };
        // Nothing missed.
        assert!(Recovery::decide(since, 7, 10, vec![]).recovered);
        // Missed 11..=12, all there.
        let full = Recovery::decide(since, 7, 12, vec![at(7, 11), at(7, 12)]);
        assert!(full.recovered);
        assert_eq!(full.messages.len(), 2);
        assert_eq!(full.position, Position { epoch: 7, offset: 12 });
        // 11 expired: never partial.
        let gap = Recovery::decide(since, 7, 12, vec![at(7, 12)]);
        assert!(!gap.recovered);
        assert!(gap.messages.is_empty());
        // The history was lost: another epoch.
        assert!(!Recovery::decide(since, 8, 10, vec![]).recovered);
        // A position from the future (forged): not recovered.
        assert!(!Recovery::decide(Position { epoch: 7, offset: 99 }, 7, 12, vec![]).recovered);
        // Missed messages, none found.
        assert!(!Recovery::decide(since, 7, 12, vec![]).recovered);
        // Too many to replay.
        let many: Vec<_> = (11..=11 + MAX_RECOVERED as u64).map(|o| at(7, o)).collect();
        assert!(!Recovery::decide(since, 7, 11 + MAX_RECOVERED as u64, many).recovered);
    }
}
