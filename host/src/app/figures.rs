//! Live figures of one app: open sockets, joined channels, distinct users.
//!
//! Counters are atomics, touched once per connect, join, leave and close;
//! nothing here sits on the message path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

#[derive(Default)]
pub struct Figures {
    connections: AtomicU64,
    channels: AtomicU64,
    /// Frames received from clients.
    pub messages_in: AtomicU64,
    /// Frames written to clients.
    pub messages_out: AtomicU64,
    /// Plugin calls that failed (trap, deadline, memory, bad output).
    pub plugin_faults: AtomicU64,
    /// Of those, calls stopped at their CPU deadline.
    pub deadline_hits: AtomicU64,
    /// Of those, instances stopped at their memory limit.
    pub memory_limit_hits: AtomicU64,
    /// Sockets closed for a limit: frame size, slow reader, garbage.
    pub limit_closes: AtomicU64,
    /// Requests refused for a limit without closing anything: connections
    /// over `max_connections`, events and joins over their rates, plugin
    /// imports over theirs.
    pub limit_refusals: AtomicU64,
    /// Plugin HTTP requests started.
    pub http_requests: AtomicU64,
    /// Of those, requests that got no response (timeout, refused, ...).
    pub http_failures: AtomicU64,
    /// Outcomes dropped because their channel had left.
    pub http_dropped: AtomicU64,
    /// Messages published through the server API.
    pub api_broadcasts: AtomicU64,
    /// Open sockets per socket id.
    ids: Mutex<HashMap<String, u64>>,
    /// In a cluster: the app's figures on every node.
    pub(super) cluster: std::sync::OnceLock<std::sync::Arc<super::cluster_figures::ClusterFigures>>,
}

impl Figures {
    pub fn socket_opened(&self, id: Option<&str>) {
        self.connections.fetch_add(1, Ordering::Relaxed);
        if let Some(id) = id {
            let mut ids = self.ids.lock();
            let count = ids.entry(id.to_owned()).or_default();
            *count += 1;
            if let Some(cluster) = self.cluster.get() {
                cluster.id_count(id, *count);
            }
        }
    }

    pub fn socket_closed(&self, id: Option<&str>) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
        if let Some(id) = id {
            let mut ids = self.ids.lock();
            if let Some(count) = ids.get_mut(id) {
                *count -= 1;
                let left = *count;
                if left == 0 {
                    ids.remove(id);
                }
                if let Some(cluster) = self.cluster.get() {
                    cluster.id_count(id, left);
                }
            }
        }
    }

    /// Open sockets per socket id, on this node.
    pub fn id_counts(&self) -> Vec<(String, u64)> {
        self.ids.lock().iter().map(|(id, n)| (id.clone(), *n)).collect()
    }

    /// The figures plugins read: cluster-wide in a cluster (open sockets,
    /// joined channels, distinct socket ids), this node's otherwise.
    pub fn app_wide(&self) -> (u64, u64, u64) {
        match self.cluster.get() {
            Some(cluster) => (cluster.connections(), cluster.channels(), cluster.users()),
            None => (self.connections(), self.channels(), self.users()),
        }
    }

    /// Open sockets with id `id` in the whole app: across the cluster in a
    /// cluster (this node's when Redis cannot be asked).
    pub fn app_wide_connections_of(&self, id: &str) -> u64 {
        self.cluster
            .get()
            .and_then(|cluster| cluster.connections_of(id))
            .unwrap_or_else(|| self.connections_of(id))
    }

    /// Keep these figures across the cluster too.
    pub fn cluster(self: &std::sync::Arc<Self>, cluster: &std::sync::Arc<crate::cluster::Cluster>, tenant: &str) {
        super::cluster_figures::ClusterFigures::attach(self, cluster, tenant);
    }

    pub fn channel_joined(&self) {
        self.channels.fetch_add(1, Ordering::Relaxed);
    }

    pub fn channel_left(&self) {
        self.channels.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    pub fn channels(&self) -> u64 {
        self.channels.load(Ordering::Relaxed)
    }

    /// Count one of the event counters above.
    pub fn count(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The figures in the Prometheus text format, labelled with the app.
    pub fn prometheus(&self, app: &str) -> String {
        let app = app.replace('\\', "\\\\").replace('"', "\\\"");
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let rows: [(&str, &str, &str, u64); 15] = [
            ("plume_connections", "gauge", "Open sockets.", self.connections()),
            ("plume_channels", "gauge", "Joined channels.", self.channels()),
            ("plume_users", "gauge", "Distinct socket ids among open sockets.", self.users()),
            ("plume_messages_in_total", "counter", "Frames received from clients.", load(&self.messages_in)),
            ("plume_messages_out_total", "counter", "Frames written to clients.", load(&self.messages_out)),
            ("plume_plugin_faults_total", "counter", "Plugin calls that failed.", load(&self.plugin_faults)),
            ("plume_deadline_hits_total", "counter", "Plugin calls stopped at their CPU deadline.", load(&self.deadline_hits)),
            ("plume_memory_limit_hits_total", "counter", "Plugin instances stopped at their memory limit.", load(&self.memory_limit_hits)),
            ("plume_limit_closes_total", "counter", "Sockets closed for exceeding a limit.", load(&self.limit_closes)),
            ("plume_limit_refusals_total", "counter", "Connections, events, joins and plugin imports refused for a limit.", load(&self.limit_refusals)),
            ("plume_http_requests_total", "counter", "Plugin HTTP requests started.", load(&self.http_requests)),
            ("plume_http_failures_total", "counter", "Plugin HTTP requests that got no response (timeout, refused, too large, ...).", load(&self.http_failures)),
            ("plume_http_dropped_total", "counter", "Plugin HTTP outcomes dropped because their channel had left.", load(&self.http_dropped)),
            ("plume_api_broadcasts_total", "counter", "Messages published through the server API.", load(&self.api_broadcasts)),
            ("plume_up", "gauge", "1 while the app serves.", 1),
        ];
        let mut out = String::new();
        for (name, kind, help, value) in rows {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{tenant=\"{app}\"}} {value}\n"));
        }
        out
    }

    /// Distinct socket ids among open sockets.
    pub fn users(&self) -> u64 {
        self.ids.lock().len() as u64
    }

    /// Open sockets with this socket id.
    pub fn connections_of(&self, id: &str) -> u64 {
        self.ids.lock().get(id).copied().unwrap_or(0)
    }
}
