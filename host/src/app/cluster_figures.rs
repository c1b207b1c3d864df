//! An app's figures across the nodes of a cluster: what plugins read
//! through the `figures` import (the admin dashboard's counts, a user's
//! connections) is cluster-wide; `/metrics` stays per node.
//!
//! Each node keeps, in Redis, how many sockets each socket id has open on
//! it (a hash per node, written as the count changes: the value is the
//! node's own count, so a write is idempotent and a reconnect rewrites the
//! lot), and its connection and channel totals (written with every
//! heartbeat). Every heartbeat, one script sums the live nodes' totals and
//! counts their distinct ids; plugins read that (at most one heartbeat
//! old). A user's connections are summed on demand, exactly. A dead node's
//! figures stop counting as soon as it is down, and go when it is swept.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use redis::Cmd;

use super::Figures;
use crate::cluster::{Cluster, HEARTBEAT, Member, Task};

/// Sums the live nodes' totals and counts their distinct socket ids.
/// KEYS: the node registry. ARGV: the tenant's key prefix, down_after (ms).
const AGGREGATE: &str = r#"
local nodes = redis.call('ZRANGEBYSCORE', KEYS[1], now_ms - tonumber(ARGV[2]), '+inf')
local connections, channels, users, seen = 0, 0, 0, {}
for _, node in ipairs(nodes) do
  local totals = redis.call('HGET', ARGV[1] .. 'totals', node)
  if totals then
    local c, h = string.match(totals, '^(%d+) (%d+)$')
    if c then
      connections = connections + tonumber(c)
      channels = channels + tonumber(h)
    end
  end
  local ids = redis.call('HKEYS', ARGV[1] .. 'ids:' .. node)
  for _, id in ipairs(ids) do
    if not seen[id] then
      seen[id] = true
      users = users + 1
    end
  end
end
return {connections, channels, users}
"#;

/// The live nodes' open sockets with one socket id. KEYS: the node
/// registry. ARGV: the tenant's key prefix, down_after (ms), the id.
const CONNECTIONS_OF: &str = r#"
local nodes = redis.call('ZRANGEBYSCORE', KEYS[1], now_ms - tonumber(ARGV[2]), '+inf')
local total = 0
for _, node in ipairs(nodes) do
  local n = redis.call('HGET', ARGV[1] .. 'ids:' .. node, ARGV[3])
  if n then total = total + tonumber(n) end
end
return total
"#;

/// A tenant's figures in the cluster.
pub struct ClusterFigures {
    cluster: Arc<Cluster>,
    tenant: String,
    figures: Weak<Figures>,
    /// The cluster-wide figures at the last heartbeat.
    connections: AtomicU64,
    channels: AtomicU64,
    users: AtomicU64,
}

impl ClusterFigures {
    /// Start keeping `figures` in the cluster.
    pub fn attach(figures: &Arc<Figures>, cluster: &Arc<Cluster>, tenant: &str) {
        let shared = Arc::new(ClusterFigures {
            cluster: cluster.clone(),
            tenant: tenant.to_owned(),
            figures: Arc::downgrade(figures),
            connections: AtomicU64::new(0),
            channels: AtomicU64::new(0),
            users: AtomicU64::new(0),
        });
        if figures.cluster.set(shared.clone()).is_err() {
            return;
        }
        cluster.register(tenant, Arc::downgrade(&shared) as Weak<dyn Member>);
        tokio::spawn(refresh(Arc::downgrade(&shared)));
    }

    fn prefix(&self) -> String {
        self.cluster.names().tenant_meta_key(&self.tenant, "")
    }

    fn ids_key(&self, node: &str) -> String {
        self.cluster.names().tenant_meta_key(&self.tenant, &format!("ids:{node}"))
    }

    fn totals_key(&self) -> String {
        self.cluster.names().tenant_meta_key(&self.tenant, "totals")
    }

    fn nodes_key(&self) -> String {
        self.cluster.names().meta_key("nodes")
    }

    fn down_after_ms(&self) -> u64 {
        self.cluster.down_after().as_millis() as u64
    }

    /// This node now has `count` sockets with id `id`.
    pub(super) fn id_count(&self, id: &str, count: u64) {
        let key = self.ids_key(self.cluster.node());
        let mut cmd = Cmd::new();
        if count == 0 {
            cmd.arg("HDEL").arg(&key).arg(id);
        } else {
            cmd.arg("HSET").arg(&key).arg(id).arg(count);
        }
        // A write that cannot go now is made good at the reconnect.
        let _ = self.cluster.link().send(cmd, Some(&key));
    }

    /// Open sockets across the cluster.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Joined channels across the cluster.
    pub fn channels(&self) -> u64 {
        self.channels.load(Ordering::Relaxed)
    }

    /// Distinct socket ids across the cluster.
    pub fn users(&self) -> u64 {
        self.users.load(Ordering::Relaxed)
    }

    /// Open sockets with id `id` across the cluster, counted now; `None`
    /// when Redis cannot be asked.
    pub fn connections_of(&self, id: &str) -> Option<u64> {
        let nodes_key = self.nodes_key();
        let mut cmd = crate::cluster::timed(CONNECTIONS_OF, &[&nodes_key]);
        cmd.arg(self.prefix()).arg(self.down_after_ms()).arg(id);
        let value = self.cluster.link().query_blocking(cmd, Some(&nodes_key)).ok()?;
        redis::from_redis_value(value).ok()
    }

    /// Write this node's totals, and read the cluster's.
    async fn beat(&self, figures: &Figures) {
        let key = self.totals_key();
        let mut hset = Cmd::new();
        hset.arg("HSET")
            .arg(&key)
            .arg(self.cluster.node())
            .arg(format!("{} {}", figures.connections(), figures.channels()));
        let _ = self.cluster.link().send(hset, Some(&key));
        let nodes_key = self.nodes_key();
        let mut cmd = crate::cluster::timed(AGGREGATE, &[&nodes_key]);
        cmd.arg(self.prefix()).arg(self.down_after_ms());
        match self.cluster.link().query(cmd, Some(&nodes_key)).await {
            Ok(value) => {
                if let Ok((connections, channels, users)) = redis::from_redis_value::<(u64, u64, u64)>(value) {
                    self.connections.store(connections, Ordering::Relaxed);
                    self.channels.store(channels, Ordering::Relaxed);
                    self.users.store(users, Ordering::Relaxed);
                }
            }
            Err(error) => tracing::debug!(%error, "cluster: figures not refreshed"),
        }
    }
}

impl Member for ClusterFigures {
    /// The per-id counts written while Redis was away are lost: write them
    /// all again.
    fn reconnected(&self) {
        let Some(figures) = self.figures.upgrade() else { return };
        let key = self.ids_key(self.cluster.node());
        let mut del = Cmd::new();
        del.arg("DEL").arg(&key);
        let _ = self.cluster.link().send(del, Some(&key));
        let counts = figures.id_counts();
        if !counts.is_empty() {
            let mut hset = Cmd::new();
            hset.arg("HSET").arg(&key);
            for (id, count) in counts {
                hset.arg(id).arg(count);
            }
            let _ = self.cluster.link().send(hset, Some(&key));
        }
    }

    fn sweep(&self, dead: &str) -> Option<Task> {
        let link_key = self.ids_key(dead);
        let totals = self.totals_key();
        let cluster = self.cluster.clone();
        let dead = dead.to_owned();
        Some(Box::pin(async move {
            let mut del = Cmd::new();
            del.arg("DEL").arg(&link_key);
            let _ = cluster.link().query(del, Some(&link_key)).await;
            let mut hdel = Cmd::new();
            hdel.arg("HDEL").arg(&totals).arg(&dead);
            let _ = cluster.link().query(hdel, Some(&totals)).await;
        }))
    }
}

/// Every heartbeat: write this node's totals, read the cluster's.
async fn refresh(shared: Weak<ClusterFigures>) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else { return };
        let Some(figures) = shared.figures.upgrade() else { return };
        shared.beat(&figures).await;
    }
}
