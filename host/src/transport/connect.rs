//! `connect` through the app's socket plugin, shared by every transport.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::app::App;
use crate::runtime::{CallContext, ConnectInfo};

/// Whether the request's `Origin` passes the app's `check_origin`; a
/// refusal is logged.
pub fn origin_allowed(app: &App, headers: &hyper::HeaderMap, peer: SocketAddr) -> bool {
    let header = |name| headers.get(name).and_then(|v: &hyper::header::HeaderValue| v.to_str().ok());
    let origin = header(hyper::header::ORIGIN);
    let allowed = app.origins.allows(origin, header(hyper::header::HOST));
    if !allowed {
        tracing::info!(app = %app.id, %peer, origin = origin.unwrap_or_default(), "refused: origin not allowed by check_origin");
    }
    allowed
}

/// The connect params (a JSON object of the query string, `vsn` removed)
/// and the `vsn` asked for. Repeated names keep the last value, as Plug does.
pub fn query_params(query: Option<&str>) -> (String, Option<String>) {
    let mut params = serde_json::Map::new();
    let mut vsn = None;
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if name == "vsn" {
            vsn = Some(value.into_owned());
        } else {
            params.insert(name.into_owned(), serde_json::Value::String(value.into_owned()));
        }
    }
    (serde_json::Value::Object(params).to_string(), vsn)
}

/// Run the socket plugin's `connect` and `id`. `None` refuses the connection.
pub fn connect(app: &Arc<App>, params: &str, info: &ConnectInfo, peer: SocketAddr) -> Option<(String, Option<String>)> {
    let Some(plugin) = &app.socket_plugin else {
        return Some(("{}".to_owned(), None));
    };
    let version = plugin.current();
    let ctx = CallContext::new(app.clone(), plugin.name.clone(), "{}".into(), None);
    let (ctx, accepted) = version.connect(ctx, params, info);
    let assigns = match accepted {
        Ok(Ok(assigns)) => assigns,
        Ok(Err(reason)) => {
            tracing::info!(app = %app.id, %peer, reason, "connection refused");
            return None;
        }
        Err(fault) => {
            tracing::warn!(app = %app.id, plugin = %plugin.name, %peer, %fault, "connect crashed; connection refused");
            return None;
        }
    };
    let (_, id) = version.id_for(ctx, &assigns);
    match id {
        Ok(id) => Some((assigns, id)),
        Err(fault) => {
            tracing::warn!(app = %app.id, plugin = %plugin.name, %peer, %fault, "id crashed; connection refused");
            None
        }
    }
}
