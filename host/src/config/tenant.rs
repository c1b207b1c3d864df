//! `[[tenants]]`: several apps on one server, each with its own socket
//! path, plugins, routes, secret, origins, capabilities and limits.
//!
//! The single-app form (`[app]` with top-level `[plugins]`, `[[routes]]`
//! and `[limits]`) is one tenant. With `[[tenants]]`, the top-level
//! `[limits]` and `[runtime]` give every tenant its defaults and
//! `[tenants.limits]` overrides them key by key.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{AppSection, CheckOrigin, ConfigError, Limits, Loaded, PluginSection, RouteSection};
use crate::app::Capability;

/// One `[[tenants]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSection {
    pub id: Spanned<String>,
    /// `"/acme/socket"` or a list of mount points.
    pub socket_path: Spanned<SocketPaths>,
    pub secret_key_base: Option<String>,
    pub socket_plugin: Option<Spanned<String>>,
    /// The socket plugin's configuration (see [`AppSection::socket_config`]).
    pub socket_config: Option<Spanned<toml::Table>>,
    #[serde(default)]
    pub check_origin: CheckOrigin,
    /// What its plugins may use beyond their own channel; all when absent.
    pub capabilities: Option<Vec<Capability>>,
    /// Bearer keys of its server API (`/api/...`).
    pub api_keys: Option<Spanned<Vec<String>>>,
    /// Origins its plugins may send HTTP requests to; grants `http`.
    pub http_allow: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub limits: LimitOverrides,
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginSection>,
    #[serde(default)]
    pub routes: Vec<RouteSection>,
}

/// One socket path or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SocketPaths {
    One(String),
    Many(Vec<String>),
}

impl SocketPaths {
    fn to_vec(&self) -> Vec<String> {
        match self {
            SocketPaths::One(path) => vec![path.clone()],
            SocketPaths::Many(paths) => paths.clone(),
        }
    }
}

/// Declares [`LimitOverrides`] (every `[limits]` key, optional) and how it
/// lays over the top-level [`Limits`], so the two never drift apart.
macro_rules! overrides {
    ($($field:ident: $ty:ty),* $(,)?) => {
        /// `[tenants.limits]`: any `[limits]` key, plus the runtime limits
        /// `deadline_ms` (wall-clock time per call) and `memory_limit_mb`.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct LimitOverrides {
            $(pub $field: Option<$ty>,)*
            pub deadline_ms: Option<u64>,
            pub memory_limit_mb: Option<u64>,
        }

        impl LimitOverrides {
            fn over(&self, base: &Limits) -> Limits {
                Limits {
                    $($field: self.$field.clone().unwrap_or_else(|| base.$field.clone()),)*
                }
            }
        }
    };
}

overrides! {
    max_frame_bytes: usize,
    max_payload_bytes: usize,
    max_kv_value_bytes: usize,
    max_kv_keys: u64,
    max_kv_bytes: u64,
    max_channels_per_socket: usize,
    max_timers_per_channel: usize,
    idle_timeout_ms: u64,
    outbound_queue: usize,
    presence_coalesce_ms: u64,
    max_connections: u64,
    max_events_per_second: u32,
    max_events_per_second_per_socket: u32,
    max_joins_per_second: u32,
    max_presence_events_per_second: u32,
    max_output_bytes_per_call: usize,
    max_instances_per_plugin: usize,
    max_history_bytes: u64,
    http_timeout_ms: u64,
    max_http_response_bytes: usize,
    max_http_in_flight: usize,
    max_http_in_flight_per_channel: usize,
}

/// Shortest server API key accepted: a key is a password for publishing
/// into every channel of its tenant.
const MIN_API_KEY: usize = 16;

/// A tenant as the server builds it, from either form of the file.
pub struct Tenant<'a> {
    pub id: String,
    /// Where its keys are named in errors: `app.` or `tenants[2].`.
    app_key: String,
    /// Where its plugins and routes are named: empty or `tenants[2].`.
    table_key: String,
    /// Byte offset of the tenant in the file, for errors without a span.
    offset: usize,
    pub socket_paths: Vec<String>,
    pub secret_key_base: Option<String>,
    pub socket_plugin: Option<&'a Spanned<String>>,
    pub socket_config: Option<&'a Spanned<toml::Table>>,
    pub check_origin: &'a CheckOrigin,
    pub capabilities: Option<&'a [Capability]>,
    /// Its server API keys (with `PLUME_API_KEY` in the single-app form).
    pub api_keys: Vec<String>,
    /// Where they are written, for errors.
    api_keys_at: usize,
    pub http_allow: Option<&'a Spanned<Vec<String>>>,
    pub limits: Limits,
    pub runtime: crate::runtime::Settings,
    pub plugins: &'a BTreeMap<String, PluginSection>,
    pub routes: &'a [RouteSection],
}

impl Tenant<'_> {
    /// The capability set it was granted: `http` with an `http_allow`.
    pub fn capabilities(&self) -> crate::app::Capabilities {
        let granted = match self.capabilities {
            Some(list) => crate::app::Capabilities::of(list),
            None => crate::app::Capabilities::all(),
        };
        granted.with(Capability::Http, self.http_allow.is_some_and(|list| !list.get_ref().is_empty()))
    }

    /// Its `http_allow`, parsed (checked at load, so this holds then).
    pub fn allowlist(&self) -> Result<crate::http::Allowlist, String> {
        crate::http::Allowlist::parse(self.http_allow.map_or(&[][..], |list| list.get_ref()))
    }

    /// The tenant as messages name it: "the app `demo`" (the single-app
    /// form) or "tenant `acme`".
    pub fn describe(&self) -> String {
        if self.table_key.is_empty() {
            format!("the app `{}`", self.id)
        } else {
            format!("tenant `{}`", self.id)
        }
    }

    /// How `plugins.<name>` is written for this tenant.
    pub fn plugin_key(&self, name: &str) -> String {
        format!("{}plugins.{name}", self.table_key)
    }
}

fn runtime_settings(loaded: &Loaded, limits: &Limits, overrides: Option<&LimitOverrides>) -> crate::runtime::Settings {
    let r = &loaded.config.runtime;
    let deadline_ms = overrides.and_then(|o| o.deadline_ms).unwrap_or(r.deadline_ms);
    let memory_mb = overrides.and_then(|o| o.memory_limit_mb).unwrap_or(r.memory_limit_mb);
    crate::runtime::Settings {
        deadline: Duration::from_millis(deadline_ms.max(1)),
        memory_limit: (memory_mb.max(1) as usize) * 1024 * 1024,
        max_idle_instances: r.max_idle_instances,
        max_instances: limits.max_instances_per_plugin.max(1),
    }
}

impl Loaded {
    /// Every tenant the file describes: its `[[tenants]]`, or the one app
    /// of the single-app form.
    pub fn tenants(&self) -> Vec<Tenant<'_>> {
        let config = &self.config;
        if config.tenants.is_empty() {
            static DEFAULT_APP: std::sync::OnceLock<AppSection> = std::sync::OnceLock::new();
            let app = config.app.as_ref().unwrap_or_else(|| DEFAULT_APP.get_or_init(AppSection::default));
            let mut api_keys: Vec<String> = app.api_keys.as_ref().map_or_else(Vec::new, |keys| keys.get_ref().clone());
            if let Ok(key) = std::env::var("PLUME_API_KEY")
                && !key.is_empty()
            {
                api_keys.push(key);
            }
            return vec![Tenant {
                id: app.id.clone(),
                app_key: "app.".into(),
                table_key: String::new(),
                offset: 0,
                socket_paths: vec![app.socket_path.clone()],
                secret_key_base: app.secret_key_base.clone(),
                socket_plugin: app.socket_plugin.as_ref(),
                socket_config: app.socket_config.as_ref(),
                check_origin: &app.check_origin,
                capabilities: app.capabilities.as_deref(),
                api_keys,
                api_keys_at: app.api_keys.as_ref().map_or(0, |keys| keys.span().start),
                http_allow: app.http_allow.as_ref(),
                limits: config.limits.clone(),
                runtime: runtime_settings(self, &config.limits, None),
                plugins: &config.plugins,
                routes: &config.routes,
            }];
        }
        config
            .tenants
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let limits = t.limits.over(&config.limits);
                Tenant {
                    id: t.id.get_ref().clone(),
                    app_key: format!("tenants[{i}]."),
                    table_key: format!("tenants[{i}]."),
                    offset: t.id.span().start,
                    socket_paths: t.socket_path.get_ref().to_vec(),
                    secret_key_base: t.secret_key_base.clone(),
                    socket_plugin: t.socket_plugin.as_ref(),
                    socket_config: t.socket_config.as_ref(),
                    check_origin: &t.check_origin,
                    capabilities: t.capabilities.as_deref(),
                    api_keys: t.api_keys.as_ref().map_or_else(Vec::new, |keys| keys.get_ref().clone()),
                    api_keys_at: t.api_keys.as_ref().map_or(t.id.span().start, |keys| keys.span().start),
                    http_allow: t.http_allow.as_ref(),
                    runtime: runtime_settings(self, &limits, Some(&t.limits)),
                    limits,
                    plugins: &t.plugins,
                    routes: &t.routes,
                }
            })
            .collect()
    }

    /// Check the tenants: one form only, unique ids and socket paths, and
    /// every route and socket plugin naming a plugin of the same tenant.
    pub(super) fn validate_tenants(&self) -> Result<(), ConfigError> {
        let config = &self.config;
        if let Some(first) = config.tenants.first() {
            let mixed = [
                (config.app.is_some(), "[app]"),
                (!config.plugins.is_empty(), "top-level [plugins]"),
                (!config.routes.is_empty(), "top-level [[routes]]"),
            ];
            if let Some((_, what)) = mixed.iter().find(|(present, _)| *present) {
                return Err(self.error_at(
                    first.id.span().start,
                    format!("tenants: {what} belongs to the single-app form; with [[tenants]], move it into a tenant ([tenants.plugins.<name>], [[tenants.routes]])"),
                ));
            }
        }
        let mut ids: HashMap<&str, usize> = HashMap::new();
        let mut paths: HashMap<String, String> = HashMap::new();
        let mut keys: HashMap<String, String> = HashMap::new();
        let tenants = self.tenants();
        for (i, tenant) in tenants.iter().enumerate() {
            if tenant.id.is_empty() {
                return Err(self.error_at(tenant.offset, format!("{}id: a tenant id must not be empty", tenant.app_key)));
            }
            if let Some(first) = ids.insert(&tenant.id, i) {
                return Err(self.error_at(
                    tenant.offset,
                    format!("{}id: `{}` is already the id of tenants[{first}]; tenant ids must be unique", tenant.app_key, tenant.id),
                ));
            }
            let path_offset = config.tenants.get(i).map_or(tenant.offset, |t| t.socket_path.span().start);
            if tenant.socket_paths.is_empty() {
                return Err(self.error_at(path_offset, format!("{}socket_path: give at least one path, e.g. \"/socket\"", tenant.app_key)));
            }
            for path in &tenant.socket_paths {
                if !path.starts_with('/') {
                    return Err(self.error_at(
                        path_offset,
                        format!("{}socket_path: `{path}` must start with `/`, e.g. \"/socket\"", tenant.app_key),
                    ));
                }
                let normalized = path.trim_end_matches('/').to_owned();
                if let Some(owner) = paths.insert(normalized, tenant.id.clone()) {
                    return Err(self.error_at(
                        path_offset,
                        format!("{}socket_path: `{path}` is already served by tenant `{owner}`; each socket path belongs to one tenant", tenant.app_key),
                    ));
                }
            }
            self.validate_references(tenant)?;
            self.validate_backend(tenant, &mut keys)?;
        }
        Ok(())
    }

    /// Its server API keys (long enough, each opening one tenant) and its
    /// `http_allow` (origins; `http` is granted by the list, not by
    /// `capabilities`).
    fn validate_backend(&self, tenant: &Tenant<'_>, keys: &mut HashMap<String, String>) -> Result<(), ConfigError> {
        for key in &tenant.api_keys {
            if key.len() < MIN_API_KEY {
                return Err(self.error_at(
                    tenant.api_keys_at,
                    format!(
                        "{}api_keys (or PLUME_API_KEY): a key has at least {MIN_API_KEY} characters; make one with `openssl rand -hex 32`",
                        tenant.app_key
                    ),
                ));
            }
            if let Some(owner) = keys.insert(key.clone(), tenant.id.clone()) {
                return Err(self.error_at(
                    tenant.api_keys_at,
                    format!("{}api_keys: a key of tenant `{owner}` is listed again; a key opens exactly one tenant", tenant.app_key),
                ));
            }
        }
        if tenant.capabilities.is_some_and(|list| list.contains(&Capability::Http)) {
            return Err(self.error_at(
                tenant.offset,
                format!("{}capabilities: `http` is granted by listing origins in `http_allow`, not in `capabilities`", tenant.app_key),
            ));
        }
        if let Some(list) = tenant.http_allow {
            tenant
                .allowlist()
                .map_err(|e| self.error_at(list.span().start, format!("{}http_allow: {e}", tenant.app_key)))?;
        }
        Ok(())
    }

    fn validate_references(&self, tenant: &Tenant<'_>) -> Result<(), ConfigError> {
        let known = || tenant.plugins.keys().cloned().collect::<Vec<_>>().join(", ");
        let check = |name: &Spanned<String>, key: &str| {
            if tenant.plugins.contains_key(name.get_ref()) {
                Ok(())
            } else {
                Err(self.error_at(
                    name.span().start,
                    format!(
                        "{key}: no plugin named `{}`; declare it as [{}] with a `path` (declared: {})",
                        name.get_ref(),
                        tenant.plugin_key(name.get_ref()),
                        known()
                    ),
                ))
            }
        };
        if let Some(name) = tenant.socket_plugin {
            check(name, &format!("{}socket_plugin", tenant.app_key))?;
        }
        if let (Some(config), None) = (tenant.socket_config, tenant.socket_plugin) {
            return Err(self.error_at(
                config.span().start,
                format!("{}socket_config: there is no socket_plugin to configure; name one (socket_plugin = \"...\") or remove socket_config", tenant.app_key),
            ));
        }
        for (i, route) in tenant.routes.iter().enumerate() {
            check(&route.plugin, &format!("{}routes[{i}].plugin", tenant.table_key))?;
            if route.topic.is_empty() {
                return Err(self.error_at(
                    route.plugin.span().start,
                    format!("{}routes[{i}].topic: a topic pattern must not be empty", tenant.table_key),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::parse;

    const TWO: &str = r#"
[limits]
max_channels_per_socket = 7

[[tenants]]
id = "alpha"
socket_path = "/alpha/socket"
capabilities = ["kv"]

[tenants.limits]
max_connections = 3
deadline_ms = 50

[tenants.plugins.room]
path = "room.wasm"

[[tenants.routes]]
topic = "room:*"
plugin = "room"

[[tenants]]
id = "beta"
socket_path = ["/beta/socket", "/socket"]

[tenants.plugins.room]
path = "room.wasm"

[[tenants.routes]]
topic = "room:*"
plugin = "room"
"#;

    #[test]
    fn tenants_get_their_paths_capabilities_and_limits_over_the_top_level_ones() {
        let loaded = parse(TWO, "plume.toml", Path::new(".")).expect("valid");
        let tenants = loaded.tenants();
        assert_eq!(tenants.len(), 2);
        let (alpha, beta) = (&tenants[0], &tenants[1]);
        assert_eq!(alpha.socket_paths, ["/alpha/socket"]);
        assert_eq!(beta.socket_paths, ["/beta/socket", "/socket"]);
        assert_eq!(alpha.limits.max_connections, 3);
        assert_eq!(alpha.limits.max_channels_per_socket, 7, "inherited from [limits]");
        assert_eq!(beta.limits.max_channels_per_socket, 7);
        assert_eq!(alpha.runtime.deadline, std::time::Duration::from_millis(50));
        assert!(alpha.capabilities().allows(crate::app::Capability::Kv));
        assert!(!alpha.capabilities().allows(crate::app::Capability::Presence));
        assert!(beta.capabilities().allows(crate::app::Capability::Presence), "all by default");
    }

    #[test]
    fn the_single_app_form_is_one_tenant() {
        let loaded = parse(super::super::DEMO, "demo.toml", Path::new(".")).expect("valid");
        let tenants = loaded.tenants();
        assert_eq!(tenants.len(), 1);
        assert_eq!(tenants[0].id, "demo");
        assert_eq!(tenants[0].socket_paths, ["/socket"]);
    }

    #[test]
    fn a_duplicate_tenant_id_names_its_line() {
        let text = TWO.replace("id = \"beta\"", "id = \"alpha\"");
        let e = parse(&text, "plume.toml", Path::new(".")).unwrap_err();
        assert_eq!(e.line, 22, "{e}");
        assert!(e.message.contains("tenants[1].id") && e.message.contains("alpha"), "{e}");
    }

    #[test]
    fn a_socket_path_served_twice_names_its_line_and_owner() {
        let text = TWO.replace("[\"/beta/socket\", \"/socket\"]", "[\"/beta/socket\", \"/alpha/socket/\"]");
        let e = parse(&text, "plume.toml", Path::new(".")).unwrap_err();
        assert_eq!(e.line, 23, "{e}");
        assert!(e.message.contains("tenants[1].socket_path") && e.message.contains("`alpha`"), "{e}");
    }

    #[test]
    fn a_route_to_a_plugin_of_another_tenant_is_refused() {
        let text = TWO.replacen("path = \"room.wasm\"", "path = \"room.wasm\"\n\n[tenants.plugins.extra]\npath = \"x.wasm\"", 1)
            + "\n[[tenants.routes]]\ntopic = \"x:*\"\nplugin = \"extra\"\n";
        let e = parse(&text, "plume.toml", Path::new(".")).unwrap_err();
        assert!(e.message.contains("tenants[1].routes[1].plugin"), "{e}");
        assert!(e.message.contains("[tenants[1].plugins.extra]"), "{e}");
        assert_eq!(e.line, text.lines().count(), "{e}");
    }

    #[test]
    fn mixing_the_single_app_form_with_tenants_is_refused() {
        let text = format!("[app]\nid = \"x\"\n{TWO}");
        let e = parse(&text, "plume.toml", Path::new(".")).unwrap_err();
        assert!(e.message.contains("[app]") && e.message.contains("[[tenants]]"), "{e}");
    }

    #[test]
    fn an_unknown_capability_or_tenant_limit_is_reported_with_its_line() {
        let e = parse(&TWO.replace("[\"kv\"]", "[\"kv\", \"files\"]"), "plume.toml", Path::new(".")).unwrap_err();
        assert_eq!(e.line, 8, "{e}");
        assert!(e.message.contains("presence"), "names the choices: {e}");
        let e = parse(&TWO.replace("max_connections = 3", "max_conections = 3"), "plume.toml", Path::new(".")).unwrap_err();
        assert_eq!(e.line, 11, "{e}");
        assert!(e.message.contains("max_conections"), "{e}");
    }
}
