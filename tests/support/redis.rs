//! A real `redis-server` for a test: its own process on a free port, in its
//! own temporary directory, with persistence off (`--save ''`,
//! `--appendonly no`), stopped when dropped; and a real Redis Cluster of
//! three such servers joined with `redis-cli --cluster create`. No system
//! service is used.
//!
//! The end-to-end tests reach this file as `support::redis`; the key-value
//! engine's unit tests and its bench include it too (`host/src/kv/mod.rs`,
//! `host/benches/kv.rs`), so all of them start Redis the same way.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a fresh `redis-server` may take to answer PING.
const START_PATIENCE: Duration = Duration::from_secs(10);

/// A running `redis-server`.
pub struct Redis {
    child: Child,
    port: u16,
    dir: PathBuf,
    /// Arguments beyond the defaults (cluster mode).
    extra: Vec<String>,
}

impl Redis {
    /// Start a Redis on a free port. Panics, with the reason, when
    /// `redis-server` is missing or does not come up: the test cannot run.
    pub fn start() -> Redis {
        Redis::start_with(Vec::new, free_port)
    }

    /// Start a server with `extra()` arguments on a port `port()` picks.
    fn start_with(extra: impl Fn() -> Vec<String>, port: impl Fn() -> u16) -> Redis {
        let dir = std::env::temp_dir().join(format!("plume-redis-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).expect("a temporary directory for redis-server");
        // Another process may take the free port between the probe and
        // redis-server's bind: try a few ports.
        let mut last = String::new();
        for _ in 0..5 {
            let (port, extra) = (port(), extra());
            match spawn(port, &dir, &extra) {
                Ok(child) => return Redis { child, port, dir, extra },
                Err(why) => last = why,
            }
        }
        panic!("redis-server did not start: {last}");
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kill the server (SIGKILL) and start a new, empty one on the same
    /// port: what a plume sees when its Redis restarts without persistence.
    pub fn restart(&mut self) {
        self.stop();
        self.resume();
    }

    /// Kill the server (SIGKILL): Redis is gone until [`Redis::resume`].
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start a new, empty server on the port of the stopped one.
    pub fn resume(&mut self) {
        let started = Instant::now();
        // The port is free again once the killed server's socket is closed.
        loop {
            match spawn(self.port, &self.dir, &self.extra) {
                Ok(child) => {
                    self.child = child;
                    return;
                }
                Err(why) if started.elapsed() > START_PATIENCE => panic!("redis-server did not restart: {why}"),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of three masters (no replicas) on loopback, the slots
/// split evenly, ready when `start` returns.
pub struct RedisCluster {
    nodes: Vec<Redis>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let nodes: Vec<Redis> = (0..3)
            .map(|_| {
                Redis::start_with(
                    || {
                        ["--cluster-enabled", "yes", "--cluster-config-file", &format!("nodes-{}.conf", unique())]
                            .map(String::from)
                            .to_vec()
                    },
                    free_cluster_port,
                )
            })
            .collect();
        let addresses: Vec<String> = nodes.iter().map(|node| format!("127.0.0.1:{}", node.port)).collect();
        let output = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli runs (Debian: apt-get install redis-tools; .ci/run installs it)");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let mut connections: Vec<::redis::Connection> = nodes.iter().map(|node| node.connection()).collect();
        let started = Instant::now();
        while !connections.iter_mut().all(|connection| {
            ::redis::cmd("CLUSTER")
                .arg("INFO")
                .query::<String>(connection)
                .is_ok_and(|info| info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3"))
        }) {
            assert!(started.elapsed() < START_PATIENCE, "the cluster did not form within {START_PATIENCE:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        RedisCluster { nodes }
    }

    /// `redis+cluster://127.0.0.1:<port>,...`, every node: the key-value
    /// engine's form. A plume node is given one node's plain URL instead
    /// (`nodes()[i].url()`) and finds the cluster itself.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self.nodes.iter().map(|node| format!("127.0.0.1:{}", node.port)).collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// The nodes, for tests that move slots between them.
    pub fn nodes(&self) -> &[Redis] {
        &self.nodes
    }
}

impl Redis {
    /// A plain connection to this one server.
    pub fn connection(&self) -> ::redis::Connection {
        ::redis::Client::open(self.url())
            .and_then(|client| client.get_connection())
            .expect("a connection to the test's redis-server")
    }

    /// How many clients listen to `channel` (`PUBSUB NUMSUB`).
    pub fn numsub(&self, channel: &str) -> i64 {
        let (_, count): (String, i64) = ::redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel)
            .query(&mut self.connection())
            .expect("PUBSUB NUMSUB");
        count
    }

    /// The shard channels this server carries (`PUBSUB SHARDCHANNELS`).
    pub fn shard_channels(&self) -> Vec<String> {
        ::redis::cmd("PUBSUB")
            .arg("SHARDCHANNELS")
            .query(&mut self.connection())
            .expect("PUBSUB SHARDCHANNELS")
    }
}

/// A free port whose cluster bus port (10000 above) is free too.
fn free_cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

fn unique() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A free TCP port on loopback (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Start `redis-server` on `port` and wait until it answers there.
fn spawn(port: u16, dir: &std::path::Path, extra: &[String]) -> Result<Child, String> {
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run redis-server ({e}); install it (apt-get install redis-server)"))?;
    let started = Instant::now();
    while started.elapsed() < START_PATIENCE {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("redis-server on port {port} exited with {status}"));
        }
        if serves(port, child.id()) {
            return Ok(child);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(format!("redis-server on port {port} did not answer within {START_PATIENCE:?}"))
}

/// Whether the Redis answering on `port` is the process `pid`, and not
/// another test's server that took the port first.
fn serves(port: u16, pid: u32) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream.write_all(b"INFO server\r\n").is_err() {
        return false;
    }
    let wanted = format!("process_id:{pid}\r\n");
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(read) = stream.read(&mut chunk) {
        if read == 0 {
            break;
        }
        reply.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&reply);
        if text.contains(&wanted) {
            return true;
        }
        if text.contains("process_id:") && text.contains("\r\nprocess_supervised") {
            return false;
        }
    }
    false
}
