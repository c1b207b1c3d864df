//! What the host measures of every plugin, without plugin code: joins by
//! outcome, call durations, terminations by reason, faults by kind, swaps.
//! Exported on `/metrics` with `tenant` and `plugin` labels.
//!
//! The hot path (a `handle_in` per push) costs two clock reads and three
//! relaxed atomic adds: histograms have fixed buckets of atomics, and the
//! per-event histograms are found by a scan of a fixed array of slots,
//! lock-free once an event has its slot.
//!
//! Label cardinality is bounded: a plugin's first [`MAX_EVENTS`] distinct
//! event names (of at most [`MAX_LABEL_BYTES`] bytes) get a series each;
//! later ones, and longer ones, are counted under `event="other"`, so a
//! client sending made-up event names cannot grow `/metrics` without limit.
//! Termination reasons (which a plugin's `stop` chooses) are bounded the
//! same way, at [`MAX_REASONS`].

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

use crate::runtime::Fault;

/// Distinct `event` labels per plugin; the rest are `event="other"`.
pub const MAX_EVENTS: usize = 32;
/// Distinct termination `reason` labels per plugin; the rest are `"other"`.
pub const MAX_REASONS: usize = 16;
/// Longer event names or reasons are counted as `"other"`.
pub const MAX_LABEL_BYTES: usize = 64;
/// Swaps and load errors remembered per plugin, for the dashboard.
const HISTORY: usize = 16;

/// Upper bounds of the duration buckets, in seconds (`+Inf` follows).
const BOUNDS: [f64; 16] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1.0,
];
/// The same bounds in nanoseconds, for the hot path.
const BOUNDS_NS: [u64; 16] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
];

/// Call durations in fixed buckets.
#[derive(Default)]
pub struct Histogram {
    /// Per bucket (not cumulative); the last is `+Inf`.
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_ns: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BOUNDS_NS.iter().position(|&bound| ns <= bound).unwrap_or(BOUNDS_NS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Add this histogram's counts to `into` (per bucket, sum, count).
    fn add_to(&self, into: &mut Snapshot) {
        for (total, bucket) in into.buckets.iter_mut().zip(&self.buckets) {
            *total += bucket.load(Ordering::Relaxed);
        }
        into.sum_ns += self.sum_ns.load(Ordering::Relaxed);
        into.count += self.count.load(Ordering::Relaxed);
    }

    fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot::default();
        self.add_to(&mut snapshot);
        snapshot
    }
}

/// A histogram's counts at one moment.
#[derive(Default, Clone, Copy)]
pub struct Snapshot {
    buckets: [u64; BOUNDS.len() + 1],
    sum_ns: u64,
    pub count: u64,
}

impl Snapshot {
    /// The `q` quantile (0..1), as the upper bound of the bucket it falls
    /// in (what Prometheus' `histogram_quantile` would interpolate within);
    /// `None` with no observations, and the largest bound when it falls in
    /// `+Inf`.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = (q * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(BOUNDS.get(i).copied().unwrap_or(BOUNDS[BOUNDS.len() - 1]));
            }
        }
        Some(BOUNDS[BOUNDS.len() - 1])
    }

    /// Counts gained since `earlier`.
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        let mut delta = *self;
        for (d, e) in delta.buckets.iter_mut().zip(&earlier.buckets) {
            *d = d.saturating_sub(*e);
        }
        delta.sum_ns = delta.sum_ns.saturating_sub(earlier.sum_ns);
        delta.count = delta.count.saturating_sub(earlier.count);
        delta
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            cumulative += n;
            let le = BOUNDS.get(i).map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum_ns as f64 / 1e9);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// Values of type `T` by a label the plugin or its clients choose, at most
/// `N` distinct labels and `other` for the rest.
pub struct Labelled<T, const N: usize> {
    names: [OnceLock<Box<str>>; N],
    values: [T; N],
    /// Slots whose name is set (names are set in order, under `claim`).
    used: AtomicUsize,
    other: T,
    claim: Mutex<()>,
}

impl<T: Default, const N: usize> Default for Labelled<T, N> {
    fn default() -> Self {
        Labelled {
            names: std::array::from_fn(|_| OnceLock::new()),
            values: std::array::from_fn(|_| T::default()),
            used: AtomicUsize::new(0),
            other: T::default(),
            claim: Mutex::new(()),
        }
    }
}

impl<T, const N: usize> Labelled<T, N> {
    /// The value of `label`, taking a free slot for a new one.
    pub fn get(&self, label: &str) -> &T {
        if let Some(value) = self.find(label, self.used.load(Ordering::Acquire)) {
            return value;
        }
        if label.len() > MAX_LABEL_BYTES || label == "other" {
            return &self.other;
        }
        let _claim = self.claim.lock();
        let used = self.used.load(Ordering::Acquire);
        if let Some(value) = self.find(label, used) {
            return value;
        }
        if used == N {
            return &self.other;
        }
        let _ = self.names[used].set(label.into());
        self.used.store(used + 1, Ordering::Release);
        &self.values[used]
    }

    fn find(&self, label: &str, used: usize) -> Option<&T> {
        (0..used)
            .find(|&i| self.names[i].get().is_some_and(|name| **name == *label))
            .map(|i| &self.values[i])
    }

    /// Every label with its value, `other` last.
    pub fn each(&self) -> impl Iterator<Item = (&str, &T)> {
        let used = self.used.load(Ordering::Acquire);
        (0..used)
            .filter_map(|i| self.names[i].get().map(|name| (&**name, &self.values[i])))
            .chain(std::iter::once(("other", &self.other)))
    }
}

/// How a join that reached the plugin ended.
#[derive(Clone, Copy)]
pub enum JoinOutcome {
    Ok,
    /// The plugin answered with an error.
    Refused,
    /// The plugin faulted.
    Crashed,
}

const JOIN_OUTCOMES: [&str; 3] = ["ok", "refused", "crashed"];
const FAULT_KINDS: [&str; 5] = ["deadline", "memory", "trap", "invalid_output", "busy"];

fn fault_index(fault: &Fault) -> usize {
    match fault {
        Fault::Deadline(_) => 0,
        Fault::Memory(_) => 1,
        Fault::Trap(_) => 2,
        Fault::InvalidOutput(_) => 3,
        Fault::Busy(_) => 4,
    }
}

/// One swap of a plugin's version (hot reload).
#[derive(Clone, serde::Serialize)]
pub struct Swap {
    pub at_ms: u64,
    pub from: String,
    pub to: String,
}

/// One refused load of a new version.
#[derive(Clone, serde::Serialize)]
pub struct LoadFailure {
    pub at_ms: u64,
    pub error: String,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One plugin's telemetry.
#[derive(Default)]
pub struct Telemetry {
    joins: [AtomicU64; 3],
    handle_in: Labelled<Histogram, MAX_EVENTS>,
    handle_out: Histogram,
    handle_info: Histogram,
    terminations: Labelled<AtomicU64, MAX_REASONS>,
    faults: [AtomicU64; 5],
    swaps: AtomicU64,
    swap_history: Mutex<std::collections::VecDeque<Swap>>,
    load_failures: Mutex<std::collections::VecDeque<LoadFailure>>,
}

/// A call the host times.
#[derive(Clone, Copy)]
pub enum Call<'a> {
    HandleIn(&'a str),
    HandleOut,
    HandleInfo,
}

impl Telemetry {
    pub fn joined(&self, outcome: JoinOutcome) {
        self.joins[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn timed(&self, call: Call<'_>, elapsed: Duration) {
        match call {
            Call::HandleIn(event) => self.handle_in.get(event).observe(elapsed),
            Call::HandleOut => self.handle_out.observe(elapsed),
            Call::HandleInfo => self.handle_info.observe(elapsed),
        }
    }

    pub fn terminated(&self, reason: &str) {
        self.terminations.get(reason).fetch_add(1, Ordering::Relaxed);
    }

    pub fn faulted(&self, fault: &Fault) {
        self.faults[fault_index(fault)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn swapped(&self, from: &str, to: &str) {
        self.swaps.fetch_add(1, Ordering::Relaxed);
        let mut history = self.swap_history.lock();
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back(Swap {
            at_ms: now_ms(),
            from: from.to_owned(),
            to: to.to_owned(),
        });
    }

    pub fn load_failed(&self, error: &str) {
        let mut failures = self.load_failures.lock();
        if failures.len() == HISTORY {
            failures.pop_front();
        }
        failures.push_back(LoadFailure {
            at_ms: now_ms(),
            error: error.to_owned(),
        });
    }

    pub fn swaps(&self) -> u64 {
        self.swaps.load(Ordering::Relaxed)
    }

    pub fn swap_history(&self) -> Vec<Swap> {
        self.swap_history.lock().iter().cloned().collect()
    }

    pub fn load_failures(&self) -> Vec<LoadFailure> {
        self.load_failures.lock().iter().cloned().collect()
    }

    /// Faults by kind.
    pub fn faults(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        FAULT_KINDS
            .iter()
            .zip(&self.faults)
            .map(|(kind, n)| (*kind, n.load(Ordering::Relaxed)))
    }

    /// Joins by outcome.
    pub fn joins(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        JOIN_OUTCOMES
            .iter()
            .zip(&self.joins)
            .map(|(outcome, n)| (*outcome, n.load(Ordering::Relaxed)))
    }

    /// Every call timed (`handle_in` of all events, `handle_out`,
    /// `handle_info`) in one histogram.
    pub fn all_calls(&self) -> Snapshot {
        let mut all = Snapshot::default();
        for (_, histogram) in self.handle_in.each() {
            histogram.add_to(&mut all);
        }
        self.handle_out.add_to(&mut all);
        self.handle_info.add_to(&mut all);
        all
    }
}

/// Escape a label value for the Prometheus text format.
pub fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The telemetry of an app's plugins (`(name, telemetry)`), in the
/// Prometheus text format, each metric once with every plugin's series.
pub fn prometheus(tenant: &str, plugins: &[(&str, &Telemetry)]) -> String {
    let tenant = label(tenant);
    let mut out = String::new();
    let head = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    let labels = |plugin: &str| format!("tenant=\"{tenant}\",plugin=\"{}\"", label(plugin));

    head(&mut out, "plume_plugin_joins_total", "counter", "Joins that reached the plugin, by outcome (ok, refused by the plugin, crashed).");
    for (plugin, t) in plugins {
        for (outcome, n) in t.joins() {
            let _ = writeln!(out, "plume_plugin_joins_total{{{},outcome=\"{outcome}\"}} {n}", labels(plugin));
        }
    }
    let name = "plume_plugin_handle_in_seconds";
    head(&mut out, name, "histogram", "handle_in duration by event (a plugin's first 32 event names; the rest are event=\"other\").");
    for (plugin, t) in plugins {
        for (event, histogram) in t.handle_in.each() {
            if event == "other" && histogram.count() == 0 {
                continue;
            }
            let labels = format!("{},event=\"{}\"", labels(plugin), label(event));
            histogram.snapshot().write(&mut out, name, &labels);
        }
    }
    for (name, help, pick) in [
        ("plume_plugin_handle_out_seconds", "handle_out duration (intercepted broadcasts).", (|t: &Telemetry| &t.handle_out) as fn(&Telemetry) -> &Histogram),
        ("plume_plugin_handle_info_seconds", "handle_info duration (timers, messages to self, HTTP outcomes, subscribed topics).", |t: &Telemetry| &t.handle_info),
    ] {
        head(&mut out, name, "histogram", help);
        for (plugin, t) in plugins {
            pick(t).snapshot().write(&mut out, name, &labels(plugin));
        }
    }
    head(&mut out, "plume_plugin_terminations_total", "counter", "Channels ended, by reason (leave, shutdown, crash, a stop's reason; 16 distinct reasons, the rest reason=\"other\").");
    for (plugin, t) in plugins {
        for (reason, n) in t.terminations.each() {
            let n = n.load(Ordering::Relaxed);
            if reason == "other" && n == 0 {
                continue;
            }
            let _ = writeln!(out, "plume_plugin_terminations_total{{{},reason=\"{}\"}} {n}", labels(plugin), label(reason));
        }
    }
    head(&mut out, "plume_plugin_call_faults_total", "counter", "Plugin calls that failed, by kind (deadline, memory, trap, invalid_output, busy).");
    for (plugin, t) in plugins {
        for (kind, n) in t.faults() {
            let _ = writeln!(out, "plume_plugin_call_faults_total{{{},kind=\"{kind}\"}} {n}", labels(plugin));
        }
    }
    head(&mut out, "plume_plugin_swaps_total", "counter", "Versions swapped in while serving (hot reload).");
    for (plugin, t) in plugins {
        let _ = writeln!(out, "plume_plugin_swaps_total{{{}}} {}", labels(plugin), t.swaps());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_labels_are_bounded_and_the_rest_are_other() {
        let events: Labelled<AtomicU64, 3> = Labelled::default();
        for name in ["a", "b", "c", "d", "e", "a", &"x".repeat(MAX_LABEL_BYTES + 1)] {
            events.get(name).fetch_add(1, Ordering::Relaxed);
        }
        let seen: Vec<(String, u64)> = events
            .each()
            .map(|(name, n)| (name.to_owned(), n.load(Ordering::Relaxed)))
            .collect();
        assert_eq!(
            seen,
            vec![("a".into(), 2), ("b".into(), 1), ("c".into(), 1), ("other".into(), 3)]
        );
    }

    #[test]
    fn a_histogram_buckets_and_quantiles() {
        let histogram = Histogram::default();
        for _ in 0..98 {
            histogram.observe(Duration::from_micros(20));
        }
        histogram.observe(Duration::from_millis(3));
        histogram.observe(Duration::from_secs(2));
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.count, 100);
        assert_eq!(snapshot.quantile(0.5), Some(0.000_025));
        assert_eq!(snapshot.quantile(0.99), Some(0.005));
        assert_eq!(snapshot.quantile(1.0), Some(1.0), "+Inf reads as the largest bound");
        let mut out = String::new();
        snapshot.write(&mut out, "h", "p=\"x\"");
        assert!(out.contains("h_bucket{p=\"x\",le=\"0.000025\"} 98\n"), "{out}");
        assert!(out.contains("h_bucket{p=\"x\",le=\"0.005\"} 99\n"), "{out}");
        assert!(out.contains("h_bucket{p=\"x\",le=\"+Inf\"} 100\n"), "{out}");
        assert!(out.contains("h_count{p=\"x\"} 100\n"), "{out}");
    }
}
