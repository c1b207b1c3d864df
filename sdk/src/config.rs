//! The plugin's configuration from `plume.toml`, as JSON: a channel
//! plugin's is its route's `config`, a socket plugin's the app's
//! `socket_config` (beside `socket_plugin`).

use serde::de::DeserializeOwned;

use crate::imports::plugin_config as wit;

/// The configuration this call runs with, decoded into `T`: the route's
/// `config` in a channel plugin, `socket_config` in a socket plugin's
/// `connect` and `id` (`{}` when there is none, so give `T` defaults).
///
/// ```no_run
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// #[serde(default)]
/// struct Config {
///     update_ms: u64,
/// }
///
/// impl Default for Config {
///     fn default() -> Self {
///         Self { update_ms: 30_000 }
///     }
/// }
///
/// let config: Config = plume_sdk::config::get()?;
/// # Ok::<(), plume_sdk::config::ConfigError>(())
/// ```
pub fn get<T: DeserializeOwned>() -> Result<T, ConfigError> {
    serde_json::from_str(&wit::get()).map_err(ConfigError)
}

/// The configuration does not have the shape the plugin expects.
#[derive(Debug, thiserror::Error)]
#[error("the plugin's configuration in plume.toml does not have the expected shape: {0}")]
pub struct ConfigError(#[source] serde_json::Error);
