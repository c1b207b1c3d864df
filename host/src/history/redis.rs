//! History in Redis, for a cluster: a client that comes back on another
//! node recovers there.
//!
//! The layout is Centrifuge's: a stream per topic whose entry ids are the
//! offsets (`<offset>-1`), and a hash beside it with the epoch (`e`) and the
//! newest offset (`s`). One script assigns the offset, appends to the
//! stream, and publishes the broadcast with its position on the topic's
//! channel, so positions, history and delivery agree, whichever node
//! published. The hash outlives the stream by far ([`META_TTL`]): a topic
//! whose messages expired keeps its epoch and offsets, and a client behind
//! it is told it is behind. If the hash itself is gone (evicted, or a Redis
//! that lost its data), the next broadcast starts a new epoch and clears
//! the stream, so old positions can never match new messages.
//!
//! A topic's stream, hash and channel share a hash tag on a Redis Cluster,
//! so the script may touch all three.
//!
//! Left as it is: after an asynchronous failover, a promoted replica may
//! hold an older offset under the same epoch, and hand out offsets again.
//! Run Redis with AOF (`appendfsync everysec`) where that matters.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use redis::Value;

use super::{Policy, Published, Recovery, new_epoch};
use crate::cluster::{Cluster, envelope};
use crate::pubsub::{Broadcast, Position, PublishError};

/// How long a topic's epoch and offset outlive its last broadcast.
const META_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// KEYS: stream, meta, channel. ARGV: size, ttl ms, meta ttl ms, a new
/// epoch (16 hex digits), the publish verb, the envelope.
const PUBLISH: &str = r#"
local epoch = redis.call('HGET', KEYS[2], 'e')
if not epoch then
  epoch = ARGV[4]
  redis.call('HSET', KEYS[2], 'e', epoch)
  redis.call('DEL', KEYS[1])
end
local offset = redis.call('HINCRBY', KEYS[2], 's', 1)
redis.call('PEXPIRE', KEYS[2], ARGV[3])
local now = redis.call('TIME')
local ms = now[1] * 1000 + math.floor(now[2] / 1000)
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], offset .. '-1', 'd', ARGV[6], 't', ms)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call(ARGV[5], KEYS[3], '{"h":"' .. epoch .. ':' .. offset .. '",' .. string.sub(ARGV[6], 2))
return offset
"#;

/// KEYS: stream, meta. ARGV: the client's offset, how many to read at
/// most, a new epoch, meta ttl ms. Returns the epoch, the newest offset,
/// the time now (ms) and the entries after the client's offset.
const READ: &str = r#"
local epoch = redis.call('HGET', KEYS[2], 'e')
if not epoch then
  epoch = ARGV[3]
  redis.call('HSET', KEYS[2], 'e', epoch, 's', 0)
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
local top = redis.call('HGET', KEYS[2], 's') or '0'
local now = redis.call('TIME')
local ms = now[1] * 1000 + math.floor(now[2] / 1000)
local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1] .. '-1', '+', 'COUNT', ARGV[2])
return {epoch, top, ms, entries}
"#;

/// An app's history in the cluster's Redis.
pub struct RedisHistory {
    cluster: Arc<Cluster>,
    tenant: String,
}

impl RedisHistory {
    pub fn new(cluster: Arc<Cluster>, tenant: &str) -> RedisHistory {
        RedisHistory {
            cluster,
            tenant: tenant.to_owned(),
        }
    }

    fn keys(&self, topic: &str) -> (String, String) {
        let names = self.cluster.names();
        let channel = names.topic_channel(&self.tenant, topic);
        // The stream and its hash take the channel's name (and so its
        // hash tag) with a suffix.
        (format!("{channel}:history"), format!("{channel}:history-meta"))
    }

    pub(super) fn publish(&self, policy: &Policy, message: Broadcast) -> Result<Published, PublishError> {
        let names = self.cluster.names();
        let channel = names.topic_channel(&self.tenant, &message.topic);
        let (stream, meta) = self.keys(&message.topic);
        let envelope = envelope::encode(self.cluster.node(), &message.event, &message.payload, message.kind, message.except.as_deref());
        let verb = match names.layout {
            crate::cluster::Layout::Standalone => "PUBLISH",
            crate::cluster::Layout::Sharded => "SPUBLISH",
        };
        let mut cmd = crate::cluster::eval(PUBLISH, &[&stream, &meta, &channel]);
        cmd.arg(policy.size.max(1))
            .arg(policy.ttl.as_millis() as u64)
            .arg(META_TTL.as_millis() as u64)
            .arg(format!("{:016x}", new_epoch()))
            .arg(verb)
            .arg(envelope);
        self.cluster
            .link()
            .send(cmd, Some(&stream))
            .map_err(|error| PublishError::Unavailable(error.to_string()))?;
        Ok(Published { here: None })
    }

    pub(super) fn recover(&self, topic: &str, policy: &Policy, since: Position) -> Pin<Box<dyn std::future::Future<Output = Recovery> + Send>> {
        let cluster = self.cluster.clone();
        let (stream, meta) = self.keys(topic);
        let topic = topic.to_owned();
        let ttl_ms = policy.ttl.as_millis() as u64;
        Box::pin(async move {
            let mut cmd = crate::cluster::eval(READ, &[&stream, &meta]);
            cmd.arg(since.offset)
                .arg(super::MAX_RECOVERED + 1)
                .arg(format!("{:016x}", new_epoch()))
                .arg(META_TTL.as_millis() as u64);
            match cluster.link().query(cmd, Some(&stream)).await {
                Ok(value) => read_reply(value, &topic, since, ttl_ms),
                Err(error) => {
                    tracing::warn!(%error, topic, "history unavailable; the client is not recovered");
                    // No position to give: the client's own, with another
                    // epoch it cannot match, so it starts over.
                    Recovery {
                        recovered: false,
                        messages: Vec::new(),
                        position: Position { epoch: 0, offset: 0 },
                    }
                }
            }
        })
    }
}

/// The recovery a read script's reply describes. Entries older than the
/// route's `ttl_s` count as gone, as in memory.
fn read_reply(value: Value, topic: &str, since: Position, ttl_ms: u64) -> Recovery {
    let not_read = Recovery {
        recovered: false,
        messages: Vec::new(),
        position: Position { epoch: 0, offset: 0 },
    };
    let Ok((epoch, top, now_ms, entries)) = redis::from_redis_value::<(String, u64, u64, Vec<(String, Vec<(String, Vec<u8>)>)>)>(value) else {
        return not_read;
    };
    let Ok(epoch) = u64::from_str_radix(&epoch, 16) else {
        return not_read;
    };
    let mut found = Vec::new();
    for (id, fields) in entries {
        let Some(offset) = id.strip_suffix("-1").and_then(|o| o.parse::<u64>().ok()) else {
            continue;
        };
        let mut data = None;
        let mut at = 0u64;
        for (name, value) in fields {
            match name.as_str() {
                "d" => data = Some(value),
                "t" => at = String::from_utf8_lossy(&value).parse().unwrap_or(0),
                _ => {}
            }
        }
        if at + ttl_ms <= now_ms {
            continue;
        }
        let Some(received) = data.and_then(|d| envelope::decode(&d).ok()) else {
            continue;
        };
        let broadcast = Broadcast::of_kind(topic.to_owned(), received.event, received.payload, None, received.kind)
            .at(Position { epoch, offset });
        found.push(Arc::new(broadcast));
    }
    Recovery::decide(since, epoch, top, found)
}
