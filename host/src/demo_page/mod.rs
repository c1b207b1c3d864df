//! The demo chat page at `/`: a room on `chat:lobby` with its messages, who
//! is online and who is typing, written against phoenix.js as any Phoenix
//! app's page would be.
//!
//! The page is served only with the demo app (`plume serve` without
//! `--config`), from the binary itself: its own files (`web/index.html`,
//! `app.js`, `style.css`) and phoenix.js's ES module, which the build
//! script takes from the `phoenix` npm package (installed in
//! `web/node_modules` by `npm ci` from the committed lockfile; see
//! `build.rs`). So an installed or copied `plume` serves the page with no
//! source tree around it. Nothing of phoenix.js is copied into the
//! repository. A binary built without npm serves the page anyway, and the
//! page says what is missing.
//!
//! The user socket wants a Phoenix.Token, so the page asks
//! `POST /demo/identity` for one ([`identity`]).

pub mod identity;
pub mod packages;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::app::App;
use crate::transport::{Body, text};

/// The largest identity request read: a name, as JSON.
const IDENTITY_BODY_LIMIT: usize = 1024;

/// The page's own files: (path, contents, type).
const FILES: &[(&str, &[u8], &str)] = &[
    ("/", include_bytes!("../../web/index.html"), "text/html; charset=utf-8"),
    ("/demo/app.js", include_bytes!("../../web/app.js"), "text/javascript; charset=utf-8"),
    ("/demo/style.css", include_bytes!("../../web/style.css"), "text/css; charset=utf-8"),
];

/// Where phoenix.js's ES module is served.
const PHOENIX_PATH: &str = "/demo/phoenix.mjs";

/// phoenix.js's ES module, as the build script found it (empty when it
/// could not: see [`PHOENIX_MISSING`]).
const PHOENIX_JS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/phoenix.mjs"));

/// Why this binary has no phoenix.js (empty when it has).
const PHOENIX_MISSING: &str = env!("PLUME_PHOENIX_JS_MISSING");

/// The path the page asks for a token at.
const IDENTITY_PATH: &str = "/demo/identity";

/// The demo page, and how to answer its requests.
#[derive(Debug, Clone, Copy, Default)]
pub struct DemoPage;

impl DemoPage {
    /// Whether `path` is one of the page's URLs.
    pub fn serves(&self, path: &str) -> bool {
        path == IDENTITY_PATH || path == PHOENIX_PATH || FILES.iter().any(|(url, _, _)| *url == path)
    }

    /// Answer a request for one of the page's URLs (see [`serves`]);
    /// identities are signed with `app`'s secret.
    ///
    /// [`serves`]: DemoPage::serves
    pub async fn respond(&self, app: &App, request: Request<Incoming>) -> Response<Body> {
        let path = request.uri().path();
        if path == IDENTITY_PATH {
            if request.method() != Method::POST {
                return not_allowed("POST");
            }
            return mint_identity(app, request).await;
        }
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return not_allowed("GET, HEAD");
        }
        if path == PHOENIX_PATH {
            return match PHOENIX_MISSING {
                "" => file(PHOENIX_JS, "text/javascript; charset=utf-8"),
                reason => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "This plume was built without phoenix.js ({reason}). Install Node.js with npm, \
                         then build plume again: its build installs the page's packages.\n"
                    ),
                ),
            };
        }
        match FILES.iter().find(|(url, _, _)| *url == path) {
            Some((_, bytes, content_type)) => file(bytes, content_type),
            None => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }
}

/// One of the page's files.
fn file(bytes: &'static [u8], content_type: &'static str) -> Response<Body> {
    let mut response = text(StatusCode::OK, Bytes::from_static(bytes));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Unversioned URLs: revalidate, so a new binary's page is seen at once.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `POST /demo/identity` with `{"name": N}`: a user token for a new user
/// named N, as JSON.
async fn mint_identity(app: &App, request: Request<Incoming>) -> Response<Body> {
    let body: Bytes = match Limited::new(request.into_body(), IDENTITY_BODY_LIMIT)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return json(
                StatusCode::PAYLOAD_TOO_LARGE,
                &serde_json::json!({"error": "the request is too large"}),
            );
        }
    };
    let minted = identity::name_from_request(&body)
        .and_then(|name| identity::mint(&app.tokens, &app.socket_path, &name));
    match minted {
        Ok(identity) => json(StatusCode::OK, &identity),
        Err(error) => json(
            error.status(),
            &serde_json::json!({"error": error.to_string()}),
        ),
    }
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut response = text(status, value.to_string());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn not_allowed(allow: &'static str) -> Response<Body> {
    let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}
