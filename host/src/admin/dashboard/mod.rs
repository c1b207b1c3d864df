//! The operator's dashboard: `/dashboard`, a page that polls
//! `/dashboard/data` every second.
//!
//! The page is static (embedded in the binary, no external assets) and
//! holds no data, so it is served without the admin token; it asks for the
//! token and sends it with every data request, which the token check guards
//! like any admin page. Polling a JSON page, rather than a phoenix.js client
//! of an internal admin channel, keeps the admin listener free of a socket
//! stack of its own and the page free of a bundled client, and a one-second
//! poll meets the "within a second or two" a swap, fault or storm must show.
//!
//! The rates over the last minutes come from a sampler that reads each
//! app's counters once a second into a ring of [`KEEP`] samples, so a page
//! opened now shows the minutes before it too.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::app::App;
use crate::app::telemetry::{Snapshot, now_ms};

/// Samples kept per app: five minutes, one a second.
const KEEP: usize = 300;
/// The window of the call latencies shown: the last minute.
const LATENCY_WINDOW: usize = 60;
/// Busiest topics listed per app.
const TOP_TOPICS: usize = 10;

/// The page itself.
pub const PAGE: &str = include_str!("page.html");

/// One app's counters at one second.
#[derive(Clone, Copy)]
struct Sample {
    at_ms: u64,
    connections: u64,
    channels: u64,
    users: u64,
    messages_in: u64,
    messages_out: u64,
}

/// What the sampler keeps of one app.
#[derive(Default)]
struct AppHistory {
    samples: VecDeque<Sample>,
    /// Each plugin's calls, all timed calls together, a sample a second.
    calls: HashMap<String, VecDeque<Snapshot>>,
}

/// Every app's recent samples.
pub struct Sampler {
    apps: Vec<Arc<App>>,
    history: Mutex<HashMap<String, AppHistory>>,
}

impl Sampler {
    pub fn new(apps: Vec<Arc<App>>) -> Sampler {
        let sampler = Sampler {
            apps,
            history: Mutex::new(HashMap::new()),
        };
        sampler.sample();
        sampler
    }

    /// Sample every second until `shutdown` flips.
    pub async fn run(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.sample(),
                _ = shutdown.changed() => return,
            }
        }
    }

    fn sample(&self) {
        use std::sync::atomic::Ordering;
        let mut history = self.history.lock();
        for app in &self.apps {
            let figures = &app.figures;
            let entry = history.entry(app.id.clone()).or_default();
            if entry.samples.len() == KEEP {
                entry.samples.pop_front();
            }
            entry.samples.push_back(Sample {
                at_ms: now_ms(),
                connections: figures.connections(),
                channels: figures.channels(),
                users: figures.users(),
                messages_in: figures.messages_in.load(Ordering::Relaxed),
                messages_out: figures.messages_out.load(Ordering::Relaxed),
            });
            for plugin in app.channel_plugins() {
                let calls = entry.calls.entry(plugin.name.to_string()).or_default();
                if calls.len() == LATENCY_WINDOW + 1 {
                    calls.pop_front();
                }
                calls.push_back(plugin.telemetry.all_calls());
            }
        }
    }

    /// The body of `/dashboard/data`.
    pub fn data(&self) -> Value {
        let history = self.history.lock();
        let apps: Vec<Value> = self
            .apps
            .iter()
            .map(|app| app_data(app, history.get(&app.id)))
            .collect();
        json!({ "now_ms": now_ms(), "apps": apps })
    }
}

fn app_data(app: &App, history: Option<&AppHistory>) -> Value {
    use std::sync::atomic::Ordering;
    let figures = &app.figures;
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    // Per second: what each counter gained since the sample before.
    let series: Vec<Value> = history
        .map(|h| {
            h.samples
                .iter()
                .zip(h.samples.iter().skip(1))
                .map(|(before, after)| {
                    let seconds = (after.at_ms.saturating_sub(before.at_ms).max(1)) as f64 / 1000.0;
                    json!({
                        "at_ms": after.at_ms,
                        "connections": after.connections,
                        "channels": after.channels,
                        "users": after.users,
                        "in_per_s": (after.messages_in.saturating_sub(before.messages_in)) as f64 / seconds,
                        "out_per_s": (after.messages_out.saturating_sub(before.messages_out)) as f64 / seconds,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let mut topics = app.broker.topics("", usize::MAX);
    topics.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    topics.truncate(TOP_TOPICS);
    let topics: Vec<Value> = topics
        .into_iter()
        .map(|(topic, subscribers)| {
            let presences = app.presence.count(&topic);
            json!({ "topic": topic, "subscribers": subscribers, "presences": presences })
        })
        .collect();
    let plugins: Vec<Value> = app
        .channel_plugins()
        .iter()
        .map(|plugin| {
            let current = plugin.current();
            let loaded_at_ms = current
                .loaded_at()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let telemetry = &plugin.telemetry;
            // Latency over the last minute (or since the sampler began).
            let recent = history
                .and_then(|h| h.calls.get(&*plugin.name))
                .and_then(|calls| calls.front())
                .map_or_else(|| telemetry.all_calls(), |oldest| telemetry.all_calls().since(oldest));
            let faults: serde_json::Map<String, Value> = telemetry.faults().map(|(kind, n)| (kind.to_owned(), json!(n))).collect();
            let joins: serde_json::Map<String, Value> = telemetry.joins().map(|(outcome, n)| (outcome.to_owned(), json!(n))).collect();
            json!({
                "name": &*plugin.name,
                "version": current.id(),
                "loaded_at_ms": loaded_at_ms,
                "load_ms": current.loaded().elapsed.as_secs_f64() * 1000.0,
                "channels": plugin.channels(),
                "swaps": telemetry.swap_history(),
                "swap_count": telemetry.swaps(),
                "last_error": plugin.last_error(),
                "load_failures": telemetry.load_failures(),
                "calls_last_minute": recent.count,
                "p50_ms": recent.quantile(0.5).map(|s| s * 1000.0),
                "p99_ms": recent.quantile(0.99).map(|s| s * 1000.0),
                "faults": faults,
                "joins": joins,
            })
        })
        .collect();
    json!({
        "tenant": app.id,
        "connections": figures.connections(),
        "channels": figures.channels(),
        "users": figures.users(),
        "messages_in": load(&figures.messages_in),
        "messages_out": load(&figures.messages_out),
        "series": series,
        "topics": topics,
        "plugins": plugins,
        "limits": {
            "closes": load(&figures.limit_closes),
            "refusals": load(&figures.limit_refusals),
            "deadline_hits": load(&figures.deadline_hits),
            "memory_limit_hits": load(&figures.memory_limit_hits),
        },
    })
}
