//! Real Redis servers for the cluster tests: `redis-server` processes on
//! free loopback ports, in temporary directories, with nothing saved to
//! disk, started and stopped by the tests themselves (never a system
//! service).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::TempDir;

/// How long a Redis server may take to accept connections.
const START_PATIENCE: Duration = Duration::from_secs(10);

/// A free TCP port on loopback (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One `redis-server`.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: TempDir,
    extra: Vec<String>,
}

fn redis_server() -> &'static str {
    if Command::new("redis-server").arg("--version").output().is_err() {
        panic!("redis-server is not installed: the cluster tests need it (Debian: apt-get install redis-server; .ci/run installs it)");
    }
    "redis-server"
}

impl Redis {
    /// A standalone Redis on a free port.
    pub fn start() -> Redis {
        Redis::start_with(&[])
    }

    /// A Redis with extra `--name value` arguments.
    pub fn start_with(extra: &[&str]) -> Redis {
        let mut redis = Redis {
            child: None,
            port: free_port(),
            dir: TempDir::new("redis"),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        redis.spawn();
        redis
    }

    fn spawn(&mut self) {
        let child = Command::new(redis_server())
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir.0)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let started = Instant::now();
        while started.elapsed() < START_PATIENCE {
            if self.ping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not answer on port {} within {START_PATIENCE:?}", self.port);
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Whether it answers PING.
    pub fn ping(&self) -> bool {
        matches!(self.command(&["PING"]), Some(Resp::Simple(pong)) if pong == "PONG")
    }

    /// Run one command; its reply.
    pub fn command(&self, args: &[&str]) -> Option<Resp> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes()).ok()?;
        Resp::read(&mut BufReader::new(stream))
    }

    /// How many clients listen to `channel` (PUBSUB NUMSUB).
    pub fn numsub(&self, channel: &str) -> i64 {
        match self.command(&["PUBSUB", "NUMSUB", channel]) {
            Some(Resp::Array(items)) => match items.get(1) {
                Some(Resp::Int(n)) => *n,
                _ => 0,
            },
            _ => 0,
        }
    }

    /// Kill it (SIGKILL): everything in it is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.0.clone()
    }
}

/// A Redis reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<String>),
    Array(Vec<Resp>),
}

impl Resp {
    fn read(reader: &mut impl BufRead) -> Option<Resp> {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end_matches("\r\n");
        let (kind, rest) = line.split_at_checked(1)?;
        Some(match kind {
            "+" => Resp::Simple(rest.to_owned()),
            "-" => Resp::Error(rest.to_owned()),
            ":" => Resp::Int(rest.parse().ok()?),
            "$" => {
                let len: i64 = rest.parse().ok()?;
                if len < 0 {
                    return Some(Resp::Bulk(None));
                }
                let mut body = vec![0u8; len as usize + 2];
                reader.read_exact(&mut body).ok()?;
                Resp::Bulk(Some(String::from_utf8_lossy(&body[..len as usize]).into_owned()))
            }
            "*" => {
                let len: i64 = rest.parse().ok()?;
                Resp::Array((0..len.max(0)).map(|_| Resp::read(reader)).collect::<Option<Vec<_>>>()?)
            }
            _ => return None,
        })
    }

    /// The text of a bulk or simple string.
    pub fn text(&self) -> &str {
        match self {
            Resp::Simple(s) | Resp::Error(s) | Resp::Bulk(Some(s)) => s,
            _ => "",
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis Cluster of three masters, joined with `redis-cli --cluster create`.
pub struct RedisCluster {
    pub nodes: Vec<Redis>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let nodes: Vec<Redis> = (0..3)
            .map(|_| Redis::start_with(&["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"]))
            .collect();
        let addresses: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let output = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli runs (Debian: apt-get install redis-tools)");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = RedisCluster { nodes };
        let started = Instant::now();
        while started.elapsed() < START_PATIENCE {
            if cluster.nodes.iter().all(|n| n.command(&["CLUSTER", "INFO"]).is_some_and(|info| info.text().contains("cluster_state:ok"))) {
                return cluster;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the Redis Cluster did not reach cluster_state:ok within {START_PATIENCE:?}");
    }

    /// The URL of one node, as plume is given it.
    pub fn url(&self) -> String {
        self.nodes[0].url()
    }
}
