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

/// A place among the app's `max_connections`, or the 503 that refuses
/// the connection and says why (boxed: a response is large, and most
/// connections are admitted).
pub fn admit(app: &Arc<App>, peer: SocketAddr) -> Result<crate::app::Admission, Box<hyper::Response<super::Body>>> {
    app.admit().ok_or_else(|| {
        crate::app::Figures::count(&app.figures.limit_refusals, 1);
        tracing::info!(app = %app.id, %peer, limit = app.limits.max_connections, "refused: the app is at its connection limit");
        let mut response = super::text(
            hyper::StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "too many connections: this app allows {} at once (max_connections); try again later\n",
                app.limits.max_connections
            ),
        );
        response
            .headers_mut()
            .insert(hyper::header::RETRY_AFTER, hyper::header::HeaderValue::from_static("5"));
        Box::new(response)
    })
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

/// Why the socket plugin refused a connection.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Refused {
    /// `connect` said no, for this reason.
    #[error("connect refused the connection: {0}")]
    ByPlugin(String),
    /// `connect` or `id` crashed.
    #[error("the socket plugin crashed: {0}")]
    Crashed(crate::runtime::Fault),
}

/// Run the socket plugin's `connect` and `id`: the socket's assigns and id,
/// or why the connection is refused. Every transport, and the test harness
/// (`plume-test`), connects through here.
pub fn accept(app: &Arc<App>, params: &str, info: &ConnectInfo) -> Result<(String, Option<String>), Refused> {
    let Some(plugin) = &app.socket_plugin else {
        return Ok(("{}".to_owned(), None));
    };
    let version = plugin.current();
    let ctx = CallContext::new(app.clone(), plugin.name.clone(), app.socket_config.clone(), None);
    let (ctx, accepted) = version.connect(ctx, params, info);
    let assigns = accepted.map_err(Refused::Crashed)?.map_err(Refused::ByPlugin)?;
    let (_, id) = version.id_for(ctx, &assigns);
    Ok((assigns, id.map_err(Refused::Crashed)?))
}

/// [`accept`], logging a refusal. `None` refuses the connection.
pub fn connect(app: &Arc<App>, params: &str, info: &ConnectInfo, peer: SocketAddr) -> Option<(String, Option<String>)> {
    match accept(app, params, info) {
        Ok(accepted) => Some(accepted),
        Err(Refused::ByPlugin(reason)) => {
            tracing::info!(app = %app.id, %peer, reason, "connection refused");
            None
        }
        Err(Refused::Crashed(fault)) => {
            if let Some(plugin) = &app.socket_plugin {
                plugin.telemetry.faulted(&fault);
            }
            let plugin = app.socket_plugin.as_ref().map(|p| p.name.clone()).unwrap_or_default();
            tracing::warn!(app = %app.id, %plugin, %peer, %fault, "the socket plugin crashed; connection refused");
            None
        }
    }
}
