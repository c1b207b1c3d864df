//! What the `plume` command and the binaries built on the library (the
//! benchmark's `plume-native`) share: the `serve` flags and logging.

use std::path::PathBuf;

use crate::config;

/// The flags of `plume serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// A plume.toml; without it, the demo app from the built plugins.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Listen here instead of the configured address (e.g. 127.0.0.1:0).
    #[arg(long)]
    pub bind: Option<String>,
    /// Serve the admin pages (/metrics, /_plume/plugins) here instead of
    /// [server] admin_bind (default: loopback, the client port plus one).
    #[arg(long)]
    pub admin_bind: Option<String>,
    /// Where the demo app's plugins are (default: this source tree's
    /// target/plugins/wasm32-wasip2/plugin, built first).
    #[arg(long)]
    pub plugin_dir: Option<PathBuf>,
    /// Do not build the demo plugins before serving.
    #[arg(long)]
    pub no_build: bool,
}

impl ServeArgs {
    /// The configuration these flags name: the file, or the built-in demo
    /// app over the plugin directory (built first unless `--no-build`).
    pub fn load(&self) -> anyhow::Result<config::Loaded> {
        let mut loaded = load_config(self.config.as_deref(), self.plugin_dir.clone(), !self.no_build)?;
        override_admin_bind(&mut loaded, self.admin_bind.as_deref());
        Ok(loaded)
    }
}

/// `path`'s configuration, or the demo app's over `plugin_dir`.
pub fn load_config(path: Option<&std::path::Path>, plugin_dir: Option<PathBuf>, build: bool) -> anyhow::Result<config::Loaded> {
    Ok(match path {
        Some(path) => config::load(path)?,
        None => config::demo(&crate::server::demo_plugin_dir(plugin_dir.as_deref(), build)?)?,
    })
}

/// `--admin-bind`, over the configuration's `admin_bind`.
pub fn override_admin_bind(loaded: &mut config::Loaded, admin_bind: Option<&str>) {
    if let Some(admin_bind) = admin_bind {
        loaded.config.server.admin_bind = Some(admin_bind.to_owned());
    }
}

/// Log to stderr at the level `PLUME_LOG` names (`info` by default), in
/// colour on a terminal.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PLUME_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
