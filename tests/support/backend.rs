//! An app's backend for the end-to-end tests: a real HTTP/1.1 server on a
//! free loopback port (hyper, on its own thread and runtime), answering
//! each request as the test says and recording what it received.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// How the backend answers one request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// This status and JSON body.
    Json(u16, Value),
    /// This status and body, as bytes.
    Bytes(u16, Vec<u8>),
    /// A redirect to this URL.
    Redirect(String),
    /// Never answer (the connection stays open).
    Hang,
    /// Wait, then answer.
    After(Duration, Box<Answer>),
}

/// A request the backend received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

type Handler = dyn Fn(&Received) -> Answer + Send + Sync;

/// A running backend; it stops when dropped.
pub struct Backend {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Backend {
    /// Start a backend answering with `handler`.
    pub fn start(handler: impl Fn(&Received) -> Answer + Send + Sync + 'static) -> Backend {
        let handler: Arc<Handler> = Arc::new(handler);
        let received = Arc::new(Mutex::new(Vec::new()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("local address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let log = received.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime for the backend");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                let serve = async {
                    loop {
                        let Ok((stream, _)) = listener.accept().await else { continue };
                        let (handler, log) = (handler.clone(), log.clone());
                        tokio::spawn(async move {
                            let service = service_fn(move |request| answer(request, handler.clone(), log.clone()));
                            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                        });
                    }
                };
                tokio::select! {
                    _ = serve => {}
                    _ = stopped => {}
                }
            });
        });
        Backend { addr, received, _stop: stop }
    }

    /// `http://127.0.0.1:PORT`, the origin to allow and the `backend_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("log").clone()
    }

    /// Wait up to 5 s until `n` requests have arrived.
    pub fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..500 {
            let received = self.received();
            if received.len() >= n {
                return received;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the backend got {} requests, expected {n}", self.received().len());
    }
}

async fn answer(
    request: Request<hyper::body::Incoming>,
    handler: Arc<Handler>,
    log: Arc<Mutex<Vec<Received>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let headers = request
        .headers()
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or_default().to_owned()))
        .collect();
    let body = request.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
    let received = Received { method, path, headers, body };
    let mut answer = handler(&received);
    log.lock().expect("log").push(received);
    loop {
        match answer {
            Answer::After(wait, then) => {
                tokio::time::sleep(wait).await;
                answer = *then;
            }
            Answer::Hang => std::future::pending::<()>().await,
            Answer::Json(status, value) => return Ok(respond(status, "application/json", value.to_string().into_bytes())),
            Answer::Bytes(status, bytes) => return Ok(respond(status, "application/octet-stream", bytes)),
            Answer::Redirect(to) => {
                let mut response = respond(302, "text/plain", Vec::new());
                response.headers_mut().insert(hyper::header::LOCATION, to.parse().expect("a location"));
                return Ok(response);
            }
        }
    }
}

fn respond(status: u16, content_type: &'static str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = hyper::StatusCode::from_u16(status).expect("a status");
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    response
}

/// An HTTPS server whose certificate is self-signed (`openssl s_server`
/// with a certificate made for the test): what a client that checks
/// certificates must refuse. It stops when dropped.
pub struct SelfSigned {
    child: std::process::Child,
    port: u16,
    _dir: super::TempDir,
}

impl SelfSigned {
    pub fn start() -> SelfSigned {
        let dir = super::TempDir::new("tls");
        let (cert, key) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
        let made = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl (Debian: apt-get install openssl) makes a certificate");
        assert!(made.status.success(), "openssl req: {}", String::from_utf8_lossy(&made.stderr));
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
        let mut child = std::process::Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("openssl s_server");
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return SelfSigned { child, port, _dir: dir };
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("openssl s_server did not listen on {port}");
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

impl Drop for SelfSigned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
