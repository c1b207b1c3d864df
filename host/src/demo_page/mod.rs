//! The demo chat page at `/`: a room on `chat:lobby` with its messages, who
//! is online and who is typing, written against phoenix.js as any Phoenix
//! app's page would be.
//!
//! The page is served only with the demo app (`plume serve` without
//! `--config`), from `host/web` in this source tree: its own files
//! (`index.html`, `app.js`, `style.css`) and phoenix.js's ES module from
//! that folder's `node_modules`, installed by `npm ci` from the committed
//! lockfile (see [`DemoPage::prepare`]). Nothing of phoenix.js is copied
//! into the repository. When the package is missing, the page still loads
//! and says how to install it.
//!
//! The user socket wants a Phoenix.Token, so the page asks
//! `POST /demo/identity` for one ([`identity`]).

pub mod identity;
pub mod packages;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::app::App;
use crate::transport::{Body, text};

/// Where phoenix.js's ES module is inside the page's folder.
const PHOENIX_MODULE: &str = "node_modules/phoenix/priv/static/phoenix.mjs";

/// The largest identity request read: a name, as JSON.
const IDENTITY_BODY_LIMIT: usize = 1024;

/// What the page's URLs serve: (path, file in the page's folder, type).
const FILES: &[(&str, &str, &str)] = &[
    ("/", "index.html", "text/html; charset=utf-8"),
    ("/demo/app.js", "app.js", "text/javascript; charset=utf-8"),
    ("/demo/style.css", "style.css", "text/css; charset=utf-8"),
    (
        "/demo/phoenix.mjs",
        PHOENIX_MODULE,
        "text/javascript; charset=utf-8",
    ),
];

/// The path the page asks for a token at.
const IDENTITY_PATH: &str = "/demo/identity";

/// The demo page's folder, and how to answer its requests.
#[derive(Debug, Clone)]
pub struct DemoPage {
    dir: PathBuf,
}

impl DemoPage {
    /// The page in this source tree (`host/web`), when it is there: a
    /// `plume` binary moved away from its source tree serves no page.
    pub fn locate() -> Option<DemoPage> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
        dir.join("index.html").is_file().then_some(DemoPage { dir })
    }

    /// The page, with its npm packages installed first when `install` is
    /// set and they are missing or older than the lockfile. A failed
    /// install is reported and the page served anyway: it then explains
    /// what is missing in the browser.
    pub fn prepare(install: bool) -> Option<DemoPage> {
        let page = DemoPage::locate()?;
        if install && packages::needs_install(&page.dir) {
            eprintln!(
                "plume: installing the demo page's packages (npm ci in {})",
                page.dir.display()
            );
            match packages::install(&page.dir) {
                Ok(()) => eprintln!("plume: demo page packages installed"),
                Err(error) => eprintln!(
                    "plume: warning: {error}; the demo page will say phoenix.js is missing"
                ),
            }
        }
        Some(page)
    }

    /// Whether `path` is one of the page's URLs.
    pub fn serves(&self, path: &str) -> bool {
        path == IDENTITY_PATH || FILES.iter().any(|(url, _, _)| *url == path)
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
        let Some((_, file, content_type)) = FILES.iter().find(|(url, _, _)| *url == path) else {
            return text(StatusCode::NOT_FOUND, "not found\n");
        };
        match tokio::fs::read(self.dir.join(file)).await {
            Ok(bytes) => {
                let mut response = text(StatusCode::OK, bytes);
                let headers = response.headers_mut();
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
                // The page is edited in place during development: always
                // revalidate rather than show a stale copy.
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                response
            }
            Err(_) if *file == PHOENIX_MODULE => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "phoenix.js is not installed for the demo page. Install Node.js with npm and restart \
                     `plume serve`, or run `npm ci` in {}.\n",
                    self.dir.display()
                ),
            ),
            Err(error) => {
                tracing::warn!(%error, file, "cannot read a demo page file");
                text(StatusCode::NOT_FOUND, "not found\n")
            }
        }
    }
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
