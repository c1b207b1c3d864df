//! Log lines, attributed to the plugin (and its version) by the host. A
//! plugin has no stdout worth reading: log through these.
//!
//! ```no_run
//! use plume_sdk::log;
//!
//! let topic = "room:lobby";
//! log::info(&format!("joined {topic}"));
//! ```

use crate::imports::log::{self as wit, Level};

/// Log `message` at trace level: step-by-step detail.
///
/// ```no_run
/// plume_sdk::log::trace("entering handle_in");
/// ```
pub fn trace(message: &str) {
    wit::log(Level::Trace, message);
}

/// Log `message` at debug level.
///
/// ```no_run
/// plume_sdk::log::debug("cache miss for room:lobby");
/// ```
pub fn debug(message: &str) {
    wit::log(Level::Debug, message);
}

/// Log `message` at info level.
///
/// ```no_run
/// plume_sdk::log::info("game 7 finished");
/// ```
pub fn info(message: &str) {
    wit::log(Level::Info, message);
}

/// Log `message` at warn level: something went wrong, and the plugin
/// carried on.
///
/// ```no_run
/// plume_sdk::log::warn("broadcast refused: limit reached");
/// ```
pub fn warn(message: &str) {
    wit::log(Level::Warn, message);
}

/// Log `message` at error level.
///
/// ```no_run
/// plume_sdk::log::error("stored game state is corrupt");
/// ```
pub fn error(message: &str) {
    wit::log(Level::Error, message);
}
