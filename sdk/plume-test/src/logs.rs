//! Plugin log lines as the test sees them.
//!
//! A plugin's `log` import becomes a `tracing` event with target
//! `plume::plugin` on the server. In a test there is no subscriber to print
//! it, so the harness runs the app under its own: it keeps each plugin line
//! ([`Harness::logs`](crate::Harness::logs)) and prints it to the test's
//! standard error, which `cargo test` captures and shows when the test
//! fails (or always, with `-- --nocapture`).

use std::fmt;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::{Context, SubscriberExt};

/// The target of plugin log lines on the host.
const PLUGIN_TARGET: &str = "plume::plugin";

/// One line a plugin logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The plugin's name.
    pub plugin: String,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    pub level: Level,
    /// What it logged.
    pub message: String,
}

impl fmt::Display for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[plugin {}] {} {}", self.plugin, self.level, self.message)
    }
}

/// The lines logged so far, shared by the subscriber and the harness.
pub(crate) type Log = Arc<Mutex<Vec<LogLine>>>;

/// The subscriber the harness runs its app under.
pub(crate) fn dispatch(log: Log) -> tracing::Dispatch {
    let capture = Capture { log }.with_filter(filter_fn(|metadata| metadata.target() == PLUGIN_TARGET));
    tracing::Dispatch::new(tracing_subscriber::registry().with(capture))
}

struct Capture {
    log: Log,
}

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _context: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let line = LogLine {
            plugin: fields.plugin,
            level: *event.metadata().level(),
            message: fields.message,
        };
        eprintln!("{line}");
        if let Ok(mut log) = self.log.lock() {
            log.push(line);
        }
    }
}

/// The fields of a plugin line the test cares about.
#[derive(Default)]
struct Fields {
    plugin: String,
    message: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "plugin" => self.plugin = value.to_owned(),
            "message" => self.message = value.to_owned(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%plugin` and the formatted message arrive as Display wrappers,
        // whose Debug is their Display.
        self.record_str(field, &format!("{value:?}"));
    }
}
