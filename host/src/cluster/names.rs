//! Redis names: the pub/sub channel of each topic, and the keys the
//! cluster's state lives under.
//!
//! Every topic has its own channel, so a node subscribes to the topics its
//! own sockets joined and hears nothing else (one shared bus, as
//! phoenix_pubsub_redis uses, makes every node pay for all the traffic).
//!
//! On a Redis Cluster, channels are sharded (`SPUBLISH`/`SSUBSCRIBE`): a
//! topic's channel, and the keys of the state that goes with it (its
//! presences), carry a hash tag `{pNNN}` that puts them in one of
//! [`PARTITIONS`] partitions. One `SSUBSCRIBE` must stay within one slot,
//! so subscriptions are batched per partition; and a script that writes a
//! topic's state can publish on its channel. The tags are chosen so that the
//! partitions fall on evenly spaced slots: naive tags (`{p0}`, `{p1}`, ...)
//! hash unevenly, and then shards do.

use std::sync::OnceLock;

/// Partitions topics are spread over on a Redis Cluster. 128, as
/// Centrifugo: enough to spread over any sensible number of shards, few
/// enough that each partition's subscriptions batch well.
pub const PARTITIONS: u16 = 128;

/// Slots of a Redis Cluster.
const SLOTS: u16 = 16384;

/// How a deployment's Redis is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One Redis (with replicas, perhaps): `PUBLISH`/`SUBSCRIBE`.
    Standalone,
    /// A Redis Cluster: sharded pub/sub over hash-tagged partitions.
    Sharded,
}

/// A tenant id as it appears inside a Redis name: the characters that
/// separate parts of a name, or make hash tags, are escaped.
fn escape(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for c in part.chars() {
        match c {
            '%' => out.push_str("%25"),
            ':' => out.push_str("%3A"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            c => out.push(c),
        }
    }
    out
}

/// The Redis Cluster slot of a name (CRC16/XMODEM of its hash tag, or of
/// the whole name without one).
pub fn slot(name: &[u8]) -> u16 {
    let tagged = name
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &name[open + 1..];
            rest.iter().position(|&b| b == b'}').filter(|&close| close > 0).map(|close| &rest[..close])
        })
        .unwrap_or(name);
    crc16::State::<crc16::XMODEM>::calculate(tagged) % SLOTS
}

/// The hash tag of each partition: partition `p` gets the first tag
/// `p<p>.<n>` whose slot falls in the `p`-th of [`PARTITIONS`] equal slot
/// ranges, so partitions spread over a cluster's shards as evenly as its
/// slots do.
fn tags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        let width = SLOTS / PARTITIONS;
        (0..PARTITIONS)
            .map(|p| {
                (0u32..)
                    .map(|n| format!("p{p}.{n}"))
                    .find(|tag| slot(tag.as_bytes()) / width == p)
                    .expect("some tag falls in every slot range")
            })
            .collect()
    })
}

/// The partition of a tenant's topic.
pub fn partition(tenant: &str, topic: &str) -> u16 {
    // FNV-1a: stable across processes and versions, unlike std's hasher.
    let mut hash: u32 = 0x811c_9dc5;
    for byte in tenant.bytes().chain([0]).chain(topic.bytes()) {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    (hash % u32::from(PARTITIONS)) as u16
}

/// Names for one deployment.
#[derive(Debug, Clone, Copy)]
pub struct Names {
    pub layout: Layout,
}

impl Names {
    /// `plume:` and, when sharded, the topic's partition tag.
    fn topic_prefix(&self, tenant: &str, topic: &str) -> String {
        match self.layout {
            Layout::Standalone => "plume:".to_owned(),
            Layout::Sharded => format!("plume:{{{}}}:", tags()[usize::from(partition(tenant, topic))]),
        }
    }

    /// The pub/sub channel of a tenant's topic.
    pub fn topic_channel(&self, tenant: &str, topic: &str) -> String {
        format!("{}t:{}:{topic}", self.topic_prefix(tenant, topic), escape(tenant))
    }

    /// The tenant and topic a channel name stands for.
    pub fn parse_topic_channel(channel: &str) -> Option<(String, &str)> {
        let rest = channel.strip_prefix("plume:")?;
        // Sharded names carry the partition tag first.
        let rest = match rest.strip_prefix('{') {
            Some(tagged) => tagged.split_once("}:")?.1,
            None => rest,
        };
        let (tenant, topic) = rest.strip_prefix("t:")?.split_once(':')?;
        let tenant = tenant.replace("%3A", ":").replace("%7B", "{").replace("%7D", "}").replace("%25", "%");
        Some((tenant, topic))
    }

    /// The hash holding a tenant's topic's presences: in the topic's slot.
    pub fn presence_key(&self, tenant: &str, topic: &str) -> String {
        format!("{}p:{}:{topic}", self.topic_prefix(tenant, topic), escape(tenant))
    }

    /// The channel a node receives messages addressed to it on (liveness
    /// probes, long-poll requests forwarded by other nodes).
    pub fn node_channel(&self, node: &str) -> String {
        match self.layout {
            Layout::Standalone => format!("plume:n:{node}"),
            Layout::Sharded => format!("plume:{{n:{node}}}:n"),
        }
    }

    /// The node a node channel belongs to.
    pub fn parse_node_channel(channel: &str) -> Option<&str> {
        channel
            .strip_prefix("plume:n:")
            .or_else(|| channel.strip_prefix("plume:{n:").and_then(|rest| rest.strip_suffix("}:n")))
    }

    /// A key of the cluster's own bookkeeping (nodes, their tracked topics,
    /// figures): all in one slot, so scripts may read several at once.
    pub fn meta_key(&self, rest: &str) -> String {
        format!("plume:{{meta}}:{rest}")
    }

    /// [`Self::meta_key`] for a tenant's part of the bookkeeping.
    pub fn tenant_meta_key(&self, tenant: &str, rest: &str) -> String {
        self.meta_key(&format!("{}:{rest}", escape(tenant)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_channels_round_trip_with_awkward_tenant_ids_in_both_layouts() {
        for layout in [Layout::Standalone, Layout::Sharded] {
            let names = Names { layout };
            for (tenant, topic) in [("demo", "room:lobby"), ("a:b{c}%", "x:{y}:z"), ("t", "")] {
                let channel = names.topic_channel(tenant, topic);
                assert_eq!(Names::parse_topic_channel(&channel), Some((tenant.to_owned(), topic)), "{channel}");
            }
        }
        assert_eq!(Names::parse_topic_channel("other:thing"), None);
    }

    #[test]
    fn node_channels_round_trip() {
        for layout in [Layout::Standalone, Layout::Sharded] {
            let names = Names { layout };
            assert_eq!(Names::parse_node_channel(&names.node_channel("n1-ab")), Some("n1-ab"));
        }
    }

    #[test]
    fn slots_follow_redis_hash_tags() {
        // Values from the Redis Cluster specification's examples.
        assert_eq!(slot(b"123456789"), 12739);
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_eq!(slot(b"foo{}{bar}"), slot(b"foo{}{bar}"));
        assert_ne!(slot(b"foo{}{bar}"), slot(b"bar"), "an empty tag does not count");
    }

    #[test]
    fn partition_tags_fall_on_evenly_spaced_slots() {
        let width = SLOTS / PARTITIONS;
        for (p, tag) in tags().iter().enumerate() {
            assert_eq!(usize::from(slot(tag.as_bytes()) / width), p, "{tag}");
        }
        // A topic's presences and channel share a slot, so one script can
        // write the one and publish on the other.
        let names = Names { layout: Layout::Sharded };
        assert_eq!(
            slot(names.topic_channel("demo", "chat:lobby").as_bytes()),
            slot(names.presence_key("demo", "chat:lobby").as_bytes())
        );
    }
}
