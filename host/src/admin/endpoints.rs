//! The admin pages. A page is a function and a line in [`ALL`].

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::{Admin, Answer, Endpoint};
use crate::transport::{Body, text};

/// Every admin page, by path.
pub const ALL: &[Endpoint] = &[
    Endpoint {
        path: "/metrics",
        about: "per-app figures in the Prometheus text format",
        answer: metrics,
        open: false,
    },
    Endpoint {
        path: "/_plume/plugins",
        about: "every plugin: file, routes, version, load time, channels, last load error (JSON)",
        answer: plugins,
        open: false,
    },
    Endpoint {
        path: "/dashboard",
        about: "the dashboard: live figures of every tenant and plugin (a web page; asks for the token)",
        answer: dashboard,
        // The page holds no data: it asks for the token and sends it with
        // each `/dashboard/data` request.
        open: true,
    },
    Endpoint {
        path: "/dashboard/data",
        about: "what the dashboard shows (JSON)",
        answer: dashboard_data,
        open: false,
    },
];

/// `GET /dashboard`: the page.
fn dashboard(_admin: &Admin, request: Request<Incoming>) -> Answer<'_> {
    Box::pin(async move {
        if let Some(refused) = only_get(&request) {
            return refused;
        }
        let mut response = typed(text(StatusCode::OK, super::dashboard::PAGE), "text/html; charset=utf-8");
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    })
}

/// `GET /dashboard/data`: the figures the page draws.
fn dashboard_data(admin: &Admin, request: Request<Incoming>) -> Answer<'_> {
    Box::pin(async move {
        if let Some(refused) = only_get(&request) {
            return refused;
        }
        let body = admin.sampler.data().to_string();
        let mut response = typed(text(StatusCode::OK, body), "application/json");
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    })
}

/// `GET /metrics`: the figures of every app, labelled by tenant.
fn metrics(admin: &Admin, request: Request<Incoming>) -> Answer<'_> {
    Box::pin(async move {
        if let Some(refused) = only_get(&request) {
            return refused;
        }
        let mut body: String = admin.apps.iter().map(|app| app.prometheus()).collect();
        if let Some(cluster) = &admin.cluster {
            body.push_str(&cluster.prometheus());
        }
        typed(text(StatusCode::OK, body), "text/plain; version=0.0.4")
    })
}

/// `GET /_plume/plugins`: each app's plugins and their state.
fn plugins(admin: &Admin, request: Request<Incoming>) -> Answer<'_> {
    Box::pin(async move {
        if let Some(refused) = only_get(&request) {
            return refused;
        }
        let status: Vec<serde_json::Value> = admin.apps.iter().map(|app| app.plugin_status()).collect();
        let body = serde_json::to_string_pretty(&serde_json::json!({ "apps": status })).unwrap_or_default();
        typed(text(StatusCode::OK, body), "application/json")
    })
}

fn only_get(request: &Request<Incoming>) -> Option<Response<Body>> {
    if request.method() == Method::GET || request.method() == Method::HEAD {
        return None;
    }
    let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    Some(response)
}

fn typed(mut response: Response<Body>, content_type: &'static str) -> Response<Body> {
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
